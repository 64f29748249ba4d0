"""What AWS leaves behind when a custom key store's keys are deleted (the leftovers report).

- CloudHSM key store: KMS makes a best effort to delete each key's material from the cluster
  when the key's waiting period ends, and reports the result in the key's `DeleteKey`
  CloudTrail event (`additionalEventData.backingKeysDeletionStatus`, a JSON string). It fails
  when the store is not connected then: that material stays in the cluster, orphaned, until
  someone deletes it by its key handle. KMS never deletes material from cluster backups:
  every backup taken after a key was created still holds it.
- External key store: KMS never touches the external key manager; every external key that
  backed a KMS key is still there.

Pure: the journal's records and CloudTrail records in, a report out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ksdelete.models import FAILED, SUCCEEDED, KeyLeftover, Leftovers, StoreType
from ksdelete.watch import is_for


def report(store: dict[str, Any], keys: dict[str, dict[str, Any]],
           delete_events: Iterable[dict[str, Any]] = (), *, by_store: bool = False
           ) -> Leftovers:
    """The leftovers of one store from what the journal kept (`store`: id, name, type and
    cluster; `keys`: each key's record as confirmed) and, for a CloudHSM store, the account's
    DeleteKey events (CloudTrail records, newest first; matched to the keys by ARN, and to
    the store by `additionalEventData.customKeyStoreId`). With `by_store`, every event is
    read (the journal may not know every key); else reading stops once each key is found."""
    raw_type = store.get("store_type")
    store_type = StoreType(raw_type) if raw_type in {t.value for t in StoreType} else None
    newest: dict[str, dict[str, Any]] = {}
    keys = dict(keys)
    if store_type is StoreType.CLOUDHSM:
        arns = {str(r.get("arn") or k) for k, r in keys.items()}
        store_id = store.get("store_id")
        for record in delete_events:
            if record.get("eventName") != "DeleteKey":
                continue
            for arn in arns - newest.keys():
                if is_for(record, arn):
                    newest[arn] = record
            # A key of this store the journal never kept (the run that confirmed it wrote
            # another journal): its DeleteKey event names the store.
            other = _store_key_arn(record, store_id)
            if other and other not in arns:
                key_id = other.rsplit("/", 1)[-1]
                keys[key_id] = {"id": key_id, "arn": other}
                arns.add(other)
                newest[other] = record
            if keys and not by_store and len(newest) == len(arns):
                break  # the rest of the account's history is not needed
    found: list[KeyLeftover] = []
    for key_id, record in sorted(keys.items()):
        arn = str(record.get("arn") or key_id)
        left = KeyLeftover(key_id, arn, created=record.get("creation_date"),
                           external_key_id=record.get("external_key_id"))
        if arn in newest:
            left = _with_delete_event(left, newest[arn])
        found.append(left)
    notes: list[str] = []
    if store_type is StoreType.CLOUDHSM:
        cluster = store.get("cluster_id") or "the store's CloudHSM cluster"
        oldest = min((k.created for k in found if k.created), default=None)
        notes.append(
            f"KMS does not delete key material from CloudHSM cluster backups: every backup of "
            f"{cluster} taken after a key was created still holds that key's material"
            + (f" (the oldest key here was created {oldest})" if oldest else "")
            + "; delete those backups if crypto-shredding is the goal")
    elif store_type is StoreType.EXTERNAL:
        notes.append("KMS never deletes external keys: each external key ID listed is still "
                     "in your external key manager; delete it there if nothing else uses it")
    return Leftovers(str(store.get("store_id") or ""), str(store.get("store_name") or ""),
                     store_type, store.get("cluster_id"), tuple(found), tuple(notes))


def _store_key_arn(record: dict[str, Any], store_id: Any) -> str | None:
    """The ARN of the key a DeleteKey event deleted, if the event says it was in this store."""
    extra = record.get("additionalEventData")
    if not store_id or not isinstance(extra, dict) or extra.get("customKeyStoreId") != store_id:
        return None
    response = record.get("responseElements")
    arn = response.get("keyId") if isinstance(response, dict) else None
    if not arn:
        arn = next((r.get("ARN") for r in record.get("resources") or ()
                    if isinstance(r, dict) and r.get("ARN")), None)
    return str(arn) if arn else None


def _with_delete_event(left: KeyLeftover, record: dict[str, Any]) -> KeyLeftover:
    extra = record.get("additionalEventData") or {}
    statuses = _json_list(extra.get("backingKeysDeletionStatus"))
    backing = _json_list(extra.get("backingKeys")) or statuses
    # AWS documents SUCCESS and FAILURE only: anything else (or no status at all) is not a
    # confirmed deletion.
    found = [str(s.get("deletionStatus")) for s in statuses]
    if any(f == FAILED for f in found):
        status = FAILED
    elif found and all(f == SUCCEEDED for f in found):
        status = SUCCEEDED
    else:
        status = next((f for f in found if f != SUCCEEDED), None) or "NO-STATUS"
    # AWS's current DeleteKey example carries only backingKeyId, which AWS calls "the key
    # handle of the key material": the handle to delete it by when keyHandle is absent.
    handles = tuple(str(b["keyHandle"]) if b.get("keyHandle") is not None
                    else str(b["backingKeyId"])
                    for b in (*statuses, *backing)
                    if isinstance(b, dict) and (b.get("keyHandle") is not None
                                                or b.get("backingKeyId") is not None))
    ids = tuple(str(b["backingKeyId"]) for b in (*statuses, *backing)
                if isinstance(b, dict) and b.get("backingKeyId") is not None)
    return KeyLeftover(left.id, left.arn, left.created, left.external_key_id,
                       deleted_at=record.get("eventTime"), material=status,
                       key_handles=tuple(dict.fromkeys(handles)),
                       backing_key_ids=tuple(dict.fromkeys(ids)))


def _json_list(value: Any) -> list[dict[str, Any]]:
    """backingKeys and backingKeysDeletionStatus are JSON strings holding arrays."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def lines(left: Leftovers) -> list[str]:
    """The report as plain text lines."""
    out = [f"leftovers of {left.store_id} ({left.store_name}), "
           f"{left.store_type or 'type unknown'}"
           + (f", cluster {left.cluster_id}" if left.cluster_id else "")]
    if not left.keys:
        out.append("  no keys recorded for this store in the journal")
    if left.store_type is StoreType.CLOUDHSM:
        out.extend(f"  ORPHANED key material of {key.id}: deleted from KMS "
                   f"{key.deleted_at or '-'}, but not from the cluster; key handle(s) "
                   f"{', '.join(key.key_handles) or '-'}, backing key "
                   f"{', '.join(key.backing_key_ids) or '-'}" for key in left.orphaned)
        if left.orphaned:
            out.append("  delete orphaned material from the cluster by key handle with the "
                       "CloudHSM CLI (key delete), as AWS documents under 'How to delete "
                       "orphaned key material'")
        out.extend(f"  {key.id}: deletion of its material from the cluster not confirmed: "
                   f"its DeleteKey event ({key.deleted_at or '-'}) reports {key.material}, not "
                   f"SUCCESS; key handle(s) {', '.join(key.key_handles) or '-'}: check the "
                   "cluster, and delete the material by key handle if it is still there"
                   for key in left.unconfirmed)
        out.extend(f"  {key.id}: no DeleteKey event in CloudTrail (not deleted yet, or older "
                   "than 90 days): whether its material left the cluster is unknown"
                   for key in left.unknown)
        done = sum(1 for key in left.keys if key.material == SUCCEEDED)
        if done:
            out.append(f"  {done} key(s): material deleted from the cluster (SUCCESS)")
    elif left.store_type is StoreType.EXTERNAL:
        out.extend(f"  {key.id}: external key {key.external_key_id or '(not recorded)'}"
                   for key in left.keys)
    out.extend(f"  note: {note}" for note in left.notes)
    return out


def as_json(left: Leftovers) -> dict[str, Any]:
    return {
        "store_id": left.store_id, "store_name": left.store_name,
        "store_type": left.store_type.value if left.store_type else None,
        "cluster_id": left.cluster_id,
        "keys": [{"id": k.id, "arn": k.arn, "creation_date": k.created,
                  "external_key_id": k.external_key_id, "deleted_at": k.deleted_at,
                  "material_deletion": k.material, "key_handles": list(k.key_handles),
                  "backing_key_ids": list(k.backing_key_ids)} for k in left.keys],
        "orphaned": [k.id for k in left.orphaned],
        "unknown": [k.id for k in left.unknown],
        "unconfirmed": [k.id for k in left.unconfirmed],
        "notes": list(left.notes),
    }
