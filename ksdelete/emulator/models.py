"""``EmulatorKmsBackend``: moto's KMS backend plus custom key stores, key states and real deletion.

moto finds the URL module of a backend as ``type(backend).__module__.rstrip("models") + "urls"``, so
this module must stay named ``models.py`` next to ``urls.py``. :func:`install` swaps the class into
moto's ``kms_backends``; every place moto resolves KMS (server routing, ``mock_aws``, reset)
then uses it.
"""

from __future__ import annotations

import fnmatch
import heapq
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.kms import models as moto_kms_models
from moto.kms.models import Key, KmsBackend, kms_backends
from moto.kms.utils import generate_private_key as _real_generate_private_key

from . import cloudtrail
from .realism import RUNTIME

HSM_ERROR_ON_FAIL = "NETWORK_ERRORS"
XKS_ERROR_ON_FAIL = "XKS_PROXY_NOT_REACHABLE"
FAIL_CONNECT_MARKER = "fail-connect"
STORE_QUOTA = 10
STORE_STATES = ("CONNECTED", "CONNECTING", "DISCONNECTED", "DISCONNECTING", "FAILED")


class KmsError(JsonRESTError):
    """A KMS error answered as ``{"__type": code, "message": msg}`` (HTTP 400 unless a fault)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message)
        self.code = status


@dataclass
class CustomKeyStore:
    id: str
    name: str
    type: str
    creation_date: float
    state: str = "DISCONNECTED"
    error_code: str | None = None
    cluster_id: str | None = None
    trust_anchor: str | None = None
    password: str | None = None
    xks: dict[str, Any] = field(default_factory=dict)
    # (target state, emulated epoch when reached, error code for FAILED)
    pending: tuple[str, float, str | None] | None = None
    # CloudHSM key handles issued so far (each key's backing key gets the next one).
    handles_issued: int = 0

    def entry(self) -> dict[str, Any]:
        """The ``CustomKeyStoresListEntry`` as AWS returns it (absent members omitted)."""
        out: dict[str, Any] = {
            "CustomKeyStoreId": self.id,
            "CustomKeyStoreName": self.name,
            "CustomKeyStoreType": self.type,
            "ConnectionState": self.state,
            "CreationDate": self.creation_date,
        }
        if self.state == "FAILED" and self.error_code:
            out["ConnectionErrorCode"] = self.error_code
        if self.type == "AWS_CLOUDHSM":
            out["CloudHsmClusterId"] = self.cluster_id
            out["TrustAnchorCertificate"] = self.trust_anchor
        else:
            cfg = {
                "Connectivity": self.xks.get("Connectivity"),
                "AccessKeyId": self.xks.get("AccessKeyId"),
                "UriEndpoint": self.xks.get("UriEndpoint"),
                "UriPath": self.xks.get("UriPath"),
                "VpcEndpointServiceName": self.xks.get("VpcEndpointServiceName"),
                "VpcEndpointServiceOwner": self.xks.get("VpcEndpointServiceOwner"),
            }
            out["XksProxyConfiguration"] = {k: v for k, v in cfg.items() if v is not None}
        return out


class _LazyPrivateKey:
    """Defers moto's RSA-2048 generation (≈40 ms per key) until something uses the key."""

    __slots__ = ("_spec", "_real")

    def __init__(self, key_spec: str) -> None:
        self._spec = key_spec
        self._real: Any = None

    def __getattr__(self, name: str) -> Any:
        real = object.__getattribute__(self, "_real")
        if real is None:
            real = _real_generate_private_key(object.__getattribute__(self, "_spec"))
            object.__setattr__(self, "_real", real)
        return getattr(real, name)


def _lazy_generate_private_key(key_spec: str) -> Any:
    return _LazyPrivateKey(key_spec)


def _action_matches(patterns: Any, action: str) -> bool:
    items = [patterns] if isinstance(patterns, str) else list(patterns or [])
    return any(fnmatch.fnmatchcase(action.lower(), str(p).lower()) for p in items)


_NUMERIC = {
    "NumericEquals": lambda a, b: a == b,
    "NumericNotEquals": lambda a, b: a != b,
    "NumericLessThan": lambda a, b: a < b,
    "NumericLessThanEquals": lambda a, b: a <= b,
    "NumericGreaterThan": lambda a, b: a > b,
    "NumericGreaterThanEquals": lambda a, b: a >= b,
}


def _condition_holds(condition: Any, context: dict[str, float]) -> bool:
    """An IAM Condition block over numeric context keys (every operator must hold). A key
    absent from the context fails the operator, except with ...IfExists; an operator the
    emulator does not evaluate holds (a Deny then applies: the side less convenient for the
    caller)."""
    if not isinstance(condition, dict):
        return True
    for operator, entries in condition.items():
        name = str(operator)
        if_exists = name.endswith("IfExists")
        compare = _NUMERIC.get(name.removesuffix("IfExists"))
        if compare is None or not isinstance(entries, dict):
            continue
        for key, wanted in entries.items():
            have = next((v for k, v in context.items() if k.lower() == str(key).lower()), None)
            if have is None:
                if not if_exists:
                    return False
                continue
            values = wanted if isinstance(wanted, list) else [wanted]
            try:
                if not any(compare(have, float(v)) for v in values):
                    return False
            except (TypeError, ValueError):
                continue
    return True


def key_material_id(key: Key) -> str:
    """A stable 64-hex-digit ID of the key's (one) key material."""
    found = getattr(key, "key_material_id", None)
    if found is None:
        found = uuid.uuid5(uuid.NAMESPACE_URL, f"material:{key.arn}").hex * 2
        setattr(key, "key_material_id", found)  # noqa: B010 - moto's Key has no such field
    return str(found)


def policy_denies(policy: str | None, action: str, arn: str,
                  context: dict[str, float] | None = None) -> bool:
    """True if the key policy has an explicit Deny statement covering ``action`` on the key
    whose Condition (numeric operators over ``context``, e.g. kms:TrailingDaysWithoutKeyUsage)
    holds."""
    if not policy:
        return False
    try:
        doc = json.loads(policy)
    except ValueError:
        return False
    statements = doc.get("Statement", []) if isinstance(doc, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        if not isinstance(st, dict) or str(st.get("Effect", "")).lower() != "deny":
            continue
        if "NotAction" in st:
            if not _action_matches(st["NotAction"], action):
                return True
            continue
        resources = st.get("Resource", "*")
        res_list = [resources] if isinstance(resources, str) else list(resources)
        if _action_matches(st.get("Action", []), action) and any(
            fnmatch.fnmatchcase(arn, str(r)) for r in res_list
        ) and _condition_holds(st.get("Condition"), context or {}):
            return True
    return False


def multi_region_view(key: Key) -> dict[str, Any]:
    """``MultiRegionConfiguration`` as seen from ``key``: PRIMARY on the primary, else REPLICA.

    moto's ``replicate_key`` shallow-copies the primary, so primary and replicas share one
    configuration dict (one ``ReplicaKeys`` list, as AWS shows on every member); the key type
    is therefore derived from the key's own ARN rather than stored. Not a backend method: moto's
    ``replicate_key`` assigns a ``multi_region_configuration`` attribute on the backend.
    """
    cfg = key.multi_region_configuration
    primary = dict(cfg["PrimaryKey"])
    return {
        "MultiRegionKeyType": "PRIMARY" if key.arn == primary["Arn"] else "REPLICA",
        "PrimaryKey": primary,
        "ReplicaKeys": [dict(replica) for replica in cfg["ReplicaKeys"]],
    }


class EmulatorKmsBackend(KmsBackend):
    """moto's KMS backend with custom key stores, hidden key state, real deletion, stale reads."""

    def __init__(self, region_name: str, account_id: str | None = None) -> None:
        super().__init__(region_name=region_name, account_id=account_id)
        self.custom_key_stores: dict[str, CustomKeyStore] = {}
        self._deletions: list[tuple[float, str]] = []
        # "key:<id>" / "store:<id>" -> [(monotonic write time, snapshot before the write or None)]
        self._history: dict[str, list[tuple[float, Any]]] = {}
        self._store_seq = 0
        # Keys deleted when their window ended: id -> (creation, deletion, store ID), for
        # AWS Config's lagging view (emulator.awsconfig).
        self.deleted_keys: dict[str, tuple[float, float, str | None]] = {}

    # ------------------------------------------------------------------ time-driven changes
    def tick(self) -> None:
        """Apply everything the emulated clock has made due, in time order: store transitions
        and key deletions (a key deleted while its CloudHSM store is not CONNECTED leaves its key
        material in the cluster: FAILURE in its DeleteKey event)."""
        now = RUNTIME.clock.epoch()
        heap = self._deletions
        while True:
            due_stores = [
                (s.pending[1], s.id)
                for s in list(self.custom_key_stores.values())
                if s.pending is not None and s.pending[1] <= now
            ]
            next_store = min(due_stores) if due_stores else None
            next_key = heap[0] if heap and heap[0][0] <= now else None
            if next_store is None and next_key is None:
                return
            if next_store is not None and (next_key is None or next_store[0] <= next_key[0]):
                moving = self.custom_key_stores[next_store[1]]
                assert moving.pending is not None
                target, _, err = moving.pending
                self._remember_store(moving, with_keys=True)
                moving.state, moving.error_code, moving.pending = target, err, None
                continue
            due, key_id = heapq.heappop(heap)
            key = self.keys.get(key_id)
            if key is None or getattr(key, "vanish_at", None) != due:
                continue  # cancelled or already gone
            self._remember_key(key)
            store_id = getattr(key, "custom_key_store_id", None)
            store = self.custom_key_stores.get(store_id) if store_id else None
            cloudtrail.record_deletion(self.region_name, key, due, store)
            self.deleted_keys[key_id] = (float(key.creation_date), due, store_id)
            self.delete_key(key_id)

    # ------------------------------------------------------------------ key last usage
    def record_usage(
        self, key: Key, operation: str, when: float, event_id: str, request_id: str
    ) -> None:
        """Note a successful cryptographic operation for GetKeyLastUsage (visible after the
        ``last_usage_delay`` knob)."""
        log: list[tuple[float, dict[str, Any]]] = getattr(key, "usage_log", None) or []
        entry = {
            "Operation": operation,
            "Timestamp": when,
            "CloudTrailEventId": event_id,
            "KmsRequestId": request_id,
        }
        log.append((when + RUNTIME.config.last_usage_delay, entry))
        setattr(key, "usage_log", log)  # noqa: B010 - moto's Key has no such field

    def last_usage(self, key: Key, tracking_start: float) -> dict[str, Any]:
        """The latest recorded use visible now and made since ``tracking_start``, or ``{}``."""
        log: list[tuple[float, dict[str, Any]]] = getattr(key, "usage_log", None) or []
        now = RUNTIME.clock.epoch()
        visible = [e for at, e in log if at <= now and e["Timestamp"] >= tracking_start]
        if not visible:
            return {}
        best = max(visible, key=lambda e: float(e["Timestamp"]))
        setattr(  # noqa: B010 - keep only what can still matter
            key, "usage_log", [(at, e) for at, e in log if at > now or e is best]
        )
        return dict(best)

    def trailing_days(self, key: Key) -> float:
        """``kms:TrailingDaysWithoutKeyUsage``: whole days since the key's last successful
        cryptographic use. For a key never used AWS's value is not documented; the emulator
        counts from max(creation, tracking start), as one 3rd-party test found (so a young
        key that was never used counts as recently used: the side less convenient for a
        deleter)."""
        log: list[tuple[float, dict[str, Any]]] = getattr(key, "usage_log", None) or []
        start = max(RUNTIME.config.tracking_start(), float(key.creation_date))
        last = max((float(e["Timestamp"]) for _, e in log), default=start)
        return float(int(max(0.0, RUNTIME.clock.epoch() - max(last, start)) // 86400))

    # ------------------------------------------------------------------ rendering
    def visible_state(self, key: Key) -> str:
        state: str = key.key_state
        if state == "PendingDeletion":
            return state
        store_id = getattr(key, "custom_key_store_id", None)
        if store_id is not None:
            store = self.custom_key_stores.get(store_id)
            if store is None or store.state != "CONNECTED":
                return "Unavailable"
        return state

    def key_metadata(self, key: Key) -> dict[str, Any]:
        """``KeyMetadata`` with AWS's member set: absent members omitted, never null."""
        state = self.visible_state(key)
        usage = key.key_usage or "ENCRYPT_DECRYPT"
        meta: dict[str, Any] = {
            "AWSAccountId": key.account_id,
            "KeyId": key.id,
            "Arn": key.arn,
            "CreationDate": key.creation_date,
            "Enabled": state == "Enabled",
            "Description": key.description or "",
            "KeyUsage": usage,
            "KeyState": state,
            "Origin": key.origin,
            "KeyManager": key.key_manager,
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            "MultiRegion": bool(key.multi_region),
        }
        if state == "PendingDeletion" and key.deletion_date is not None:
            meta["DeletionDate"] = key.deletion_date.timestamp()
        store_id = getattr(key, "custom_key_store_id", None)
        if store_id is not None:
            meta["CustomKeyStoreId"] = store_id
            cluster = getattr(key, "cloud_hsm_cluster_id", None)
            if cluster:
                meta["CloudHsmClusterId"] = cluster
            xks_id = getattr(key, "xks_key_id", None)
            if xks_id:
                meta["XksKeyConfiguration"] = {"Id": xks_id}
        if usage == "ENCRYPT_DECRYPT":
            algs = key.encryption_algorithms
            if algs:
                meta["EncryptionAlgorithms"] = algs
        elif usage == "SIGN_VERIFY":
            meta["SigningAlgorithms"] = key.signing_algorithms
        if key.multi_region:
            meta["MultiRegionConfiguration"] = multi_region_view(key)
        if key.origin == "AWS_KMS" and key.key_spec == "SYMMETRIC_DEFAULT":
            # Recorded from AWS for AWS_KMS symmetric keys (LocalStack's test_create_key);
            # absent for custom key store keys and for EXTERNAL keys without material.
            meta["CurrentKeyMaterialId"] = key_material_id(key)
        return meta

    def alias_entries(self, key: Key) -> list[dict[str, Any]]:
        out = []
        for alias in list(key.aliases.values()):
            entry = {
                "AliasName": alias.alias_name,
                "AliasArn": alias.alias_arn,
                "TargetKeyId": key.id,
            }
            created = getattr(alias, "creation_date", None)
            if created is not None:
                entry["CreationDate"] = created
                entry["LastUpdatedDate"] = getattr(alias, "last_updated_date", created)
            out.append(entry)
        return out

    def create_alias(self, target_key_id: str, alias_name: str) -> Any:
        alias = super().create_alias(target_key_id, alias_name)
        stamp = RUNTIME.clock.epoch()
        setattr(alias, "creation_date", stamp)  # noqa: B010 - moto's Alias has no such field
        setattr(alias, "last_updated_date", stamp)  # noqa: B010
        return alias

    # ------------------------------------------------------------------ consistency history
    def _remember(self, name: str, snapshot: Any) -> None:
        lag = RUNTIME.config.consistency_lag
        if lag <= 0.0:
            if self._history:
                self._history.clear()
            return
        now = time.monotonic()
        entries = self._history.setdefault(name, [])
        entries.append((now, snapshot))
        cutoff = now - lag
        while entries and entries[0][0] < cutoff:
            entries.pop(0)

    def _remember_key(self, key: Key | None, key_id: str | None = None) -> None:
        if RUNTIME.config.consistency_lag <= 0.0:
            return
        if key is None:
            self._remember(f"key:{key_id}", None)
        else:
            snap = {"meta": self.key_metadata(key), "aliases": self.alias_entries(key)}
            self._remember(f"key:{key.id}", snap)

    def _remember_store(
        self, store: CustomKeyStore | None, store_id: str | None = None, with_keys: bool = False
    ) -> None:
        if RUNTIME.config.consistency_lag <= 0.0:
            return
        if store is None:
            self._remember(f"store:{store_id}", None)
            return
        self._remember(f"store:{store.id}", store.entry())
        if with_keys:
            for key in list(self.keys.values()):
                if getattr(key, "custom_key_store_id", None) == store.id:
                    self._remember_key(key)

    def as_of(self, name: str, view: float, live: Any) -> Any:
        """The object's state as seen at monotonic time ``view`` (``live`` if nothing newer)."""
        entries = self._history.get(name)
        if not entries:
            return live
        for written, before in entries:
            if written > view:
                return before
        return live

    def stale_names(self, prefix: str) -> list[str]:
        return [n[len(prefix) :] for n in list(self._history) if n.startswith(prefix)]

    def has_history(self) -> bool:
        return bool(self._history)

    # ------------------------------------------------------------------ keys
    def new_key(
        self,
        *,
        policy: str | None,
        description: str,
        key_usage: str,
        key_spec: str,
        tags: list[dict[str, str]] | None,
        multi_region: bool,
        origin: str,
        store: CustomKeyStore | None = None,
        xks_key_id: str | None = None,
    ) -> Key:
        key = self.create_key(policy, key_usage, key_spec, description, tags, multi_region, origin)
        key.key_usage = key_usage
        key.multi_region = multi_region
        key.creation_date = RUNTIME.clock.epoch()
        # Extra per-key fields moto's Key lacks (read back with getattr).
        extra: dict[str, Any] = {"vanish_at": None, "usage_log": []}
        if store is not None:
            extra["custom_key_store_id"] = store.id
            if store.type == "AWS_CLOUDHSM":
                extra["cloud_hsm_cluster_id"] = store.cluster_id
                # The key material in the cluster: shown only in CloudTrail events.
                store.handles_issued += 1
                extra["key_handle"] = f"{store.handles_issued:02d}"
                extra["backing_key_id"] = uuid.uuid4().hex + uuid.uuid4().hex
            else:
                extra["xks_key_id"] = xks_key_id
        for name, value in extra.items():
            setattr(key, name, value)
        self._remember_key(None, key.id)
        return key

    def replicate_key(self, key_id: str, replica_region: str) -> Key:
        """moto's replica, minus what its shallow copy shares with the primary by mistake.

        AWS: "All other properties of a replica key can differ, including its key policy, tags,
        aliases, and key state." So the replica starts with no aliases and no grants of its own.
        """
        replica: Key = super().replicate_key(key_id, replica_region)
        replica.aliases = {}
        replica.grants = {}
        replica.creation_date = RUNTIME.clock.epoch()
        setattr(replica, "vanish_at", None)  # noqa: B010
        setattr(replica, "usage_log", [])  # noqa: B010 - "track last usage independently"
        target = kms_backends[self.account_id][replica_region]
        if isinstance(target, EmulatorKmsBackend):
            target._remember_key(None, replica.id)
        return replica

    def schedule(self, key: Key, days: int) -> None:
        from datetime import timedelta

        self._remember_key(key)
        key.enabled = False
        key.key_state = "PendingDeletion"
        key.deletion_date = RUNTIME.clock.now() + timedelta(days=days)
        lateness = RUNTIME.config.deletion_lateness
        extra = RUNTIME.rng.uniform(0.0, lateness) if lateness > 0 else 0.0
        vanish_at = key.deletion_date.timestamp() + extra
        setattr(key, "vanish_at", vanish_at)  # noqa: B010
        heapq.heappush(self._deletions, (vanish_at, key.id))

    def cancel(self, key: Key) -> None:
        self._remember_key(key)
        key.key_state = "Disabled"
        key.enabled = False
        key.deletion_date = None
        setattr(key, "vanish_at", None)  # noqa: B010

    def set_enabled(self, key: Key, enabled: bool) -> None:
        self._remember_key(key)
        key.enabled = enabled
        key.key_state = "Enabled" if enabled else "Disabled"

    # ------------------------------------------------------------------ stores
    def new_store_id(self) -> str:
        return "cks-" + "".join(RUNTIME.rng.choice("0123456789abcdef") for _ in range(17))

    def store_by_id(self, store_id: str) -> CustomKeyStore:
        store = self.custom_key_stores.get(store_id)
        if store is None:
            raise KmsError(
                "CustomKeyStoreNotFoundException", f"Custom key store '{store_id}' does not exist."
            )
        return store

    def store_by_name(self, name: str) -> CustomKeyStore | None:
        for store in list(self.custom_key_stores.values()):
            if store.name == name:
                return store
        return None

    def keys_in_store(self, store_id: str) -> list[Key]:
        return [
            k
            for k in list(self.keys.values())
            if getattr(k, "custom_key_store_id", None) == store_id
        ]

    def add_store(self, store: CustomKeyStore) -> None:
        self._remember_store(None, store.id)
        self.custom_key_stores[store.id] = store

    def start_transition(
        self,
        store: CustomKeyStore,
        transient: str,
        target: str,
        seconds: float,
        error: str | None = None,
    ) -> None:
        self._remember_store(store, with_keys=True)
        if seconds <= 0:
            store.state, store.error_code, store.pending = target, error, None
            return
        store.state, store.error_code = transient, None
        store.pending = (target, RUNTIME.clock.epoch() + seconds, error)

    def force_state(self, store: CustomKeyStore, state: str, error: str | None) -> None:
        self._remember_store(store, with_keys=True)
        store.state, store.pending = state, None
        store.error_code = error if state == "FAILED" else None

    def remove_store(self, store: CustomKeyStore) -> None:
        self._remember_store(store)
        del self.custom_key_stores[store.id]

    # ------------------------------------------------------------------ dump
    def dump(self) -> dict[str, Any]:
        stores = []
        for store in sorted(self.custom_key_stores.values(), key=lambda s: s.id):
            entry = store.entry()
            entry["PendingTransition"] = (
                None
                if store.pending is None
                else {"to": store.pending[0], "at": store.pending[1], "error": store.pending[2]}
            )
            stores.append(entry)
        keys = []
        for key in sorted(self.keys.values(), key=lambda k: str(k.id)):
            meta = self.key_metadata(key)
            meta["UnderlyingState"] = key.key_state
            meta["VanishAt"] = getattr(key, "vanish_at", None)
            meta["Aliases"] = sorted(a.alias_name for a in list(key.aliases.values()))
            keys.append(meta)
        return {"stores": stores, "keys": keys}


_installed = False


def install() -> None:
    """Make moto use :class:`EmulatorKmsBackend` (idempotent), with lazy RSA generation."""
    global _installed
    if _installed:
        return
    kms_backends.backend = EmulatorKmsBackend
    for account_backends in list(kms_backends.values()):
        account_backends.backend = EmulatorKmsBackend
        account_backends.clear()
    setattr(moto_kms_models, "generate_private_key", _lazy_generate_private_key)  # noqa: B010
    _installed = True
