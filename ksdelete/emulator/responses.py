"""``EmulatorKmsResponse``: KMS actions added to or replaced in moto's ``KmsResponse``.

Every public method here is callable as a KMS action (moto maps ``TrentService.FooBar`` to
``foo_bar``), so helpers are private. Each action runs under the runtime lock.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import time
from collections.abc import Callable
from typing import Any

from moto.kms.responses import KmsResponse
from moto.kms.utils import RESERVED_ALIASES, _deserialize_ciphertext_blob

from . import cloudtrail, shapes
from .models import (
    FAIL_CONNECT_MARKER,
    HSM_ERROR_ON_FAIL,
    STORE_QUOTA,
    XKS_ERROR_ON_FAIL,
    CustomKeyStore,
    EmulatorKmsBackend,
    KmsError,
    policy_denies,
)
from .realism import RUNTIME

_KEY_ID_RE = re.compile(
    r"^(mrk-)?[A-F0-9]{8}-[A-F0-9]{4}-[A-F0-9]{4}-[A-F0-9]{4}-[A-F0-9]{12}$|^mrk-[a-f0-9]{32}$",
    re.IGNORECASE,
)


def _encode_marker(kind: str, last: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last}".encode()).decode()


def _decode_marker(kind: str, marker: str) -> str:
    try:
        text = base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        text = ""
    prefix = f"{kind}:"
    if not text.startswith(prefix):
        raise KmsError("InvalidMarkerException", "Invalid marker")
    return text[len(prefix) :]


def _page(
    items: list[tuple[str, Any]],
    kind: str,
    limit: int,
    marker: str | None,
) -> tuple[list[Any], str | None]:
    """Page over ``(sort_key, item)`` pairs sorted by sort_key; marker = last sort key served."""
    if marker:
        last = _decode_marker(kind, marker)
        items = [pair for pair in items if pair[0] > last]
    page = items[:limit]
    more = len(items) > limit
    return [item for _, item in page], (_encode_marker(kind, page[-1][0]) if more else None)


def _listing(member: str, items: list[Any], next_marker: str | None) -> str:
    body: dict[str, Any] = {member: items, "Truncated": next_marker is not None}
    if next_marker is not None:
        body["NextMarker"] = next_marker
    return json.dumps(body)


def stamp_grant(
    grant: Any, created: float, service: str | None = None, retiring_service: str | None = None
) -> None:
    """Fields moto's Grant lacks (read back by :func:`grant_entry`)."""
    setattr(grant, "creation_date", created)  # noqa: B010
    setattr(grant, "grantee_service_principal", service)  # noqa: B010
    setattr(grant, "retiring_service_principal", retiring_service)  # noqa: B010


def grant_entry(key: Any, grant: Any) -> dict[str, Any]:
    """A ``GrantListEntry`` as AWS returns it (absent members omitted)."""
    out: dict[str, Any] = {
        "KeyId": key.arn,
        "GrantId": grant.id,
        "CreationDate": getattr(grant, "creation_date", None) or float(key.creation_date),
        "GranteePrincipal": grant.grantee_principal,
        "IssuingAccount": f"arn:aws:iam::{key.account_id}:root",
        "Operations": list(grant.operations or []),
    }
    if grant.name:
        out["Name"] = grant.name
    if grant.retiring_principal:
        out["RetiringPrincipal"] = grant.retiring_principal
    if grant.constraints:
        out["Constraints"] = grant.constraints
    for attr, member in (
        ("grantee_service_principal", "GranteeServicePrincipal"),
        ("retiring_service_principal", "RetiringServicePrincipal"),
    ):
        value = getattr(grant, attr, None)
        if value:
            out[member] = value
    return out


def _locked(fn: Callable[..., str]) -> Callable[..., str]:
    def wrapper(self: EmulatorKmsResponse) -> str:
        with RUNTIME.lock:
            return fn(self)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


class EmulatorKmsResponse(KmsResponse):
    """KMS JSON actions; unlisted ones fall through to moto."""

    # ------------------------------------------------------------------ plumbing
    @property
    def kms_backend(self) -> EmulatorKmsBackend:
        backend = super().kms_backend
        assert isinstance(backend, EmulatorKmsBackend), "install() was not called"
        backend.tick()
        return backend

    def _params(self) -> dict[str, Any]:
        cached: dict[str, Any] | None = getattr(self, "_emu_params", None)
        if cached is None:
            try:
                loaded = json.loads(self.body) if self.body else {}
            except ValueError:
                loaded = {}
            cached = loaded if isinstance(loaded, dict) else {}
            self._emu_params = cached
        return cached

    def _p(self, name: str, default: Any = None) -> Any:
        return self._params().get(name, default)

    def _key(self, backend: EmulatorKmsBackend, key_id: Any, *, aliases: bool = False) -> Any:
        """Resolve a key ID / key ARN (and alias name / alias ARN if allowed) or raise NotFound."""
        if not isinstance(key_id, str):
            raise KmsError("ValidationException", "KeyId is required")
        if aliases and (key_id.startswith("alias/") or ":alias/" in key_id):
            name = backend.get_alias_name(key_id)
            target = None
            for key in list(backend.keys.values()):
                if name in key.aliases:
                    target = key
                    break
            if target is None:
                raise KmsError(
                    "NotFoundException", f"Alias {self._display_arn(key_id)} is not found."
                )
            cloudtrail.note_key(target)
            return target
        if key_id.startswith("arn:"):
            if ":key/" not in key_id:
                raise KmsError("InvalidArnException", f"Invalid ARN {key_id}")
            arn_region = key_id.split(":")[3] if key_id.count(":") >= 5 else ""
            if arn_region != self.region:
                # Recorded from AWS (LocalStack's test_get_key_in_different_region).
                raise KmsError("NotFoundException", f"Invalid arn {arn_region}")
            raw = key_id.split(":key/", 1)[1]
        else:
            raw = key_id
            if not _KEY_ID_RE.match(raw):
                raise KmsError("NotFoundException", f"Invalid keyId '{key_id}'")
        found = backend.keys.get(raw)
        if found is None:
            raise KmsError("NotFoundException", f"Key '{self._display_arn(key_id)}' does not exist")
        cloudtrail.note_key(found)
        return found

    def _usable(self, backend: EmulatorKmsBackend, key: Any) -> None:
        """Refuse a cryptographic operation (or CreateGrant) per the key-state table
        (kms-gates-facts §1): Disabled -> DisabledException, PendingDeletion -> the
        ``pending_deletion_crypto_error`` knob, Unavailable -> KMSInvalidStateException."""
        state = backend.visible_state(key)
        if state == "Enabled":
            return
        if state == "Disabled":
            raise KmsError("DisabledException", f"{key.arn} is disabled.")
        if state == "PendingDeletion":
            code = RUNTIME.config.pending_deletion_crypto_error
            raise KmsError(code, f"{key.arn} is pending deletion.")
        if state == "Unavailable":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is unavailable.")
        words = re.sub(r"(?<!^)([A-Z])", r" \1", state).lower()
        raise KmsError("KMSInvalidStateException", f"{key.arn} is {words}.")

    def _crypto_key(self, member: str = "KeyId") -> Any:
        """The key a cryptographic call names (ID, ARN, alias), checked usable; a key that
        does not resolve gets the emulator's NotFoundException (AWS's recorded wording), a
        missing KeyId moto's own answer (None)."""
        backend = self.kms_backend
        if not isinstance(self._p(member), str):
            return None
        key = self._key(backend, self._p(member), aliases=True)
        self._usable(backend, key)
        cloudtrail.note_key(key, used=True)
        return key

    def _ciphertext_key(self) -> Any:
        """The key a ciphertext was made with, checked usable; None if the blob is not ours."""
        backend = self.kms_backend
        try:
            blob = base64.b64decode(str(self._p("CiphertextBlob", "")))
            key_id = _deserialize_ciphertext_blob(blob).key_id
        except (binascii.Error, ValueError, struct.error):
            return None
        key = backend.keys.get(key_id)
        if key is None:
            return None
        cloudtrail.note_key(key)
        self._usable(backend, key)
        cloudtrail.note_key(key, used=True)
        return key

    def _authorize(self, key: Any, operation: str) -> None:
        action = f"kms:{operation}"
        context: dict[str, float] = {}
        if operation in ("ScheduleKeyDeletion", "DisableKey"):
            context["kms:TrailingDaysWithoutKeyUsage"] = self.kms_backend.trailing_days(key)
        if policy_denies(key.policy, action, key.arn, context):
            raise KmsError(
                "AccessDeniedException",
                f"User: arn:aws:iam::{self.current_account}:root is not authorized to perform: "
                f"{action} on resource: {key.arn} with an explicit deny in a resource-based policy",
            )

    def _view_time(self) -> float | None:
        """Monotonic time this read observes, or None when reads are consistent."""
        lag = RUNTIME.staleness()
        return time.monotonic() - lag if lag > 0 else None

    # ------------------------------------------------------------------ keys
    @_locked
    def create_key(self) -> str:
        backend = self.kms_backend
        store_id = self._p("CustomKeyStoreId")
        origin = self._p("Origin") or "AWS_KMS"
        key_spec = self._p("KeySpec") or self._p("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
        key_usage = self._p("KeyUsage") or "ENCRYPT_DECRYPT"
        multi_region = bool(self._p("MultiRegion", False))
        xks_key_id = self._p("XksKeyId")
        store: CustomKeyStore | None = None
        if store_id is not None:
            store = backend.store_by_id(store_id)
            wanted = "AWS_CLOUDHSM" if store.type == "AWS_CLOUDHSM" else "EXTERNAL_KEY_STORE"
            if origin != wanted:
                raise KmsError(
                    "UnsupportedOperationException",
                    f"To create a KMS key in custom key store {store.id}, Origin must be {wanted}.",
                )
            if key_spec != "SYMMETRIC_DEFAULT" or key_usage != "ENCRYPT_DECRYPT":
                raise KmsError(
                    "UnsupportedOperationException",
                    "Custom key stores support only SYMMETRIC_DEFAULT encryption keys.",
                )
            if multi_region:
                raise KmsError(
                    "UnsupportedOperationException",
                    "You cannot create a multi-Region key in a custom key store.",
                )
            if store.state != "CONNECTED":
                raise KmsError(
                    "CustomKeyStoreInvalidStateException",
                    f"Custom key store {store.id} is not connected.",
                )
            if store.type == "EXTERNAL_KEY_STORE":
                if not xks_key_id:
                    raise KmsError(
                        "ValidationException",
                        "XksKeyId is required for a key in an external key store.",
                    )
                for other in backend.keys_in_store(store.id):
                    if getattr(other, "xks_key_id", None) == xks_key_id:
                        raise KmsError(
                            "XksKeyAlreadyInUseException",
                            f"External key {xks_key_id} is already associated with a KMS key "
                            f"in custom key store {store.id}.",
                        )
            elif xks_key_id:
                raise KmsError(
                    "ValidationException",
                    "XksKeyId is valid only for keys in an external key store.",
                )
        elif origin in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"):
            raise KmsError(
                "ValidationException", f"CustomKeyStoreId is required when Origin is {origin}."
            )
        elif xks_key_id:
            raise KmsError(
                "ValidationException", "XksKeyId is valid only for keys in an external key store."
            )
        check_tags([], self._p("Tags") or [])
        spec = self._p("KeySpec")
        specs = shapes.kms_model().shape_for("KeySpec").enum
        if spec in specs and spec != "SYMMETRIC_DEFAULT" and self._p("KeyUsage") is None:
            raise KmsError("ValidationException", "You must specify a KeyUsage value for all KMS "
                           "keys except for symmetric encryption keys.")
        key = backend.new_key(
            policy=self._p("Policy"),
            description=self._p("Description") or "",
            key_usage=key_usage,
            key_spec=key_spec,
            tags=self._p("Tags"),
            multi_region=multi_region,
            origin=origin,
            store=store,
            xks_key_id=xks_key_id,
        )
        return json.dumps({"KeyMetadata": backend.key_metadata(key)})

    @_locked
    def describe_key(self) -> str:
        backend = self.kms_backend
        key_id = self._p("KeyId")
        view = self._view_time()
        if view is not None and backend.has_history():
            try:
                key = self._key(backend, key_id, aliases=True)
                raw = key.id
            except KmsError:
                key, raw = None, backend.get_key_id(str(key_id))
            live = None if key is None else {"meta": backend.key_metadata(key)}
            seen = backend.as_of(f"key:{raw}", view, live)
            if seen is None:
                raise KmsError(
                    "NotFoundException", f"Key '{self._display_arn(str(key_id))}' does not exist"
                )
            if key is not None:
                self._authorize(key, "DescribeKey")
            return json.dumps({"KeyMetadata": seen["meta"]})
        key = self._key(backend, key_id, aliases=True)
        self._authorize(key, "DescribeKey")
        return json.dumps({"KeyMetadata": backend.key_metadata(key)})

    @_locked
    def list_keys(self) -> str:
        backend = self.kms_backend
        limit = int(self._p("Limit") or 100)
        view = self._view_time()
        live = list(backend.keys.values())
        if view is not None and backend.has_history():
            entries: dict[str, str] = {}
            known = {k.id: k for k in live}
            for kid in set(known) | set(backend.stale_names("key:")):
                cur = known.get(kid)
                seen = backend.as_of(f"key:{kid}", view, {} if cur is not None else None)
                if seen is not None:
                    entries[kid] = cur.arn if cur is not None else seen["meta"]["Arn"]
            items = [(kid, {"KeyId": kid, "KeyArn": arn}) for kid, arn in sorted(entries.items())]
        else:
            ordered = sorted(live, key=lambda k: str(k.id))
            items = [(k.id, {"KeyId": k.id, "KeyArn": k.arn}) for k in ordered]
        hidden = RUNTIME.config.listkeys_hide  # an incomplete scan (a test knob)
        if hidden:
            items = [item for item in items if item[0] not in hidden]
        page, marker = _page(items, "ListKeys", limit, self._p("Marker"))
        return _listing("Keys", page, marker)

    @_locked
    def list_aliases(self) -> str:
        backend = self.kms_backend
        limit = int(self._p("Limit") or 50)
        key_id = self._p("KeyId")
        view = self._view_time()
        only: str | None = None
        if key_id is not None:
            if key_id.startswith("alias/") or ":alias/" in key_id:
                raise KmsError("InvalidArnException", f"Invalid key ID or ARN {key_id}")
            only = self._key(backend, key_id).id
        entries: list[dict[str, Any]] = []
        stale = view is not None and backend.has_history()
        keys = {k.id: k for k in list(backend.keys.values())}
        ids = set(keys) | (set(backend.stale_names("key:")) if stale else set())
        for kid in ids:
            if only is not None and kid != only:
                continue
            cur = keys.get(kid)
            if stale and view is not None:
                live = None if cur is None else {"aliases": backend.alias_entries(cur)}
                seen = backend.as_of(f"key:{kid}", view, live)
                if seen is not None:
                    entries.extend(seen["aliases"])
            elif cur is not None and cur.aliases:
                entries.extend(backend.alias_entries(cur))
        if only is None:
            taken = {e["AliasName"] for e in entries}
            entries.extend(
                {
                    "AliasName": name,
                    "AliasArn": f"arn:aws:kms:{self.region}:{self.current_account}:{name}",
                }
                for name in RESERVED_ALIASES
                if name not in taken
            )
        items = sorted(((e["AliasName"], e) for e in entries), key=lambda pair: pair[0])
        page, marker = _page(items, "ListAliases", limit, self._p("Marker"))
        return _listing("Aliases", page, marker)

    @_locked
    def create_alias(self) -> str:
        name = self._p("AliasName")
        if isinstance(name, str) and not name.startswith("alias/"):
            raise KmsError("ValidationException", 'Alias must start with the prefix "alias/". '
                           "Please see https://docs.aws.amazon.com/kms/latest/developerguide/"
                           "kms-alias.html")
        return super().create_alias()

    @_locked
    def generate_random(self) -> str:
        if self._p("NumberOfBytes") is None:
            raise KmsError("ValidationException", "NumberOfBytes is required.")
        return super().generate_random()

    @_locked
    def schedule_key_deletion(self) -> str:
        backend = self.kms_backend
        key = self._key(backend, self._p("KeyId"))
        days = self._p("PendingWindowInDays")
        days = 30 if days is None else days
        if not isinstance(days, int) or not 7 <= days <= 30:
            raise KmsError("ValidationException", "PendingWindowInDays must be between 7 and 30")
        self._authorize(key, "ScheduleKeyDeletion")
        if key.key_state == "PendingDeletion":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
        backend.schedule(key, days)
        return json.dumps(
            {
                "KeyId": key.arn,
                "DeletionDate": key.deletion_date.timestamp(),
                "KeyState": "PendingDeletion",
                "PendingWindowInDays": days,
            }
        )

    @_locked
    def cancel_key_deletion(self) -> str:
        backend = self.kms_backend
        key = self._key(backend, self._p("KeyId"))
        self._authorize(key, "CancelKeyDeletion")
        if key.key_state != "PendingDeletion":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is not pending deletion.")
        backend.cancel(key)
        # Eventual consistency (kms-gates-facts correction 6): the next TagResource calls on
        # the key may still see it pending deletion.
        setattr(key, "tag_failures_left",  # noqa: B010 - moto's Key has no such field
                int(RUNTIME.config.tag_after_cancel_failures))
        return json.dumps({"KeyId": key.arn})

    @_locked
    def get_public_key(self) -> str:
        """AWS's member set: key ARN, KeySpec, and only the algorithm list of the key's usage.

        moto's own answer sends the bare key ID, ``null`` for the other usage's algorithms, and
        a public key even for symmetric keys.
        """
        backend = self.kms_backend
        key = self._key(backend, self._p("KeyId"), aliases=True)
        self._authorize(key, "GetPublicKey")
        state = backend.visible_state(key)
        if state == "PendingDeletion":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
        if state == "Disabled":
            raise KmsError("DisabledException", f"{key.arn} is disabled.")
        if state != "Enabled":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is {state}.")
        spec = str(key.key_spec)
        usage = str(key.key_usage or "ENCRYPT_DECRYPT")
        if spec == "SYMMETRIC_DEFAULT" or spec.startswith("HMAC_"):
            raise KmsError(
                "UnsupportedOperationException",
                f"{key.arn} is not an asymmetric KMS key; it has no public key.",
            )
        out: dict[str, Any] = {
            "KeyId": key.arn,
            "PublicKey": base64.b64encode(key.private_key.public_key()).decode("ascii"),
            "CustomerMasterKeySpec": spec,
            "KeySpec": spec,
            "KeyUsage": usage,
        }
        if usage == "ENCRYPT_DECRYPT":
            out["EncryptionAlgorithms"] = key.encryption_algorithms
        elif usage == "SIGN_VERIFY":
            out["SigningAlgorithms"] = key.signing_algorithms
        return json.dumps(out)

    @_locked
    def replicate_key(self) -> str:
        """moto's replication, answered with the replica's own metadata (MultiRegionKeyType
        REPLICA, absent members omitted); the key may be given by ID or key ARN."""
        backend = self.kms_backend
        key = self._key(backend, self._p("KeyId"))
        replica = backend.replicate_key(key.id, str(self._p("ReplicaRegion")))
        return json.dumps(
            {
                "ReplicaKeyMetadata": backend.key_metadata(replica),
                "ReplicaPolicy": replica.generate_default_policy(),
            }
        )

    # ------------------------------------------------------------------ cryptographic operations
    # moto performs them; the emulator first refuses keys that are not usable and notes the
    # key(s) for the CloudTrail event and GetKeyLastUsage (recorded by the server on success).
    @_locked
    def encrypt(self) -> str:
        self._crypto_key()
        return super().encrypt()

    @_locked
    def decrypt(self) -> str:
        self._ciphertext_key()
        return super().decrypt()

    @_locked
    def re_encrypt(self) -> str:
        self._ciphertext_key()
        self._crypto_key("DestinationKeyId")
        return super().re_encrypt()

    @_locked
    def generate_data_key(self) -> str:
        self._crypto_key()
        return super().generate_data_key()

    @_locked
    def sign(self) -> str:
        self._crypto_key()
        return super().sign()

    @_locked
    def verify(self) -> str:
        self._crypto_key()
        return super().verify()

    @_locked
    def generate_mac(self) -> str:
        self._crypto_key()
        return super().generate_mac()

    @_locked
    def verify_mac(self) -> str:
        self._crypto_key()
        return super().verify_mac()

    # ------------------------------------------------------------------ key last usage
    @_locked
    def get_key_last_usage(self) -> str:
        """GetKeyLastUsage (kms-gates-facts §2): never refused for the key's state; a key ID or
        key ARN only (an alias name -> NotFoundException, an alias ARN -> InvalidArnException:
        AWS's codes are UNCONFIRMED)."""
        backend = self.kms_backend
        key = self._key(backend, self._p("KeyId"))
        self._authorize(key, "GetKeyLastUsage")
        created = float(key.creation_date)
        start = max(RUNTIME.config.tracking_start(), created)
        return json.dumps(
            {
                "KeyId": key.id,
                "KeyLastUsage": backend.last_usage(key, start),
                "TrackingStartDate": start,
                "KeyCreationDate": created,
            }
        )

    # ------------------------------------------------------------------ grants
    @_locked
    def create_grant(self) -> str:
        """moto's grant, refused on Disabled/PendingDeletion keys (key-state table: CreateGrant
        fails there, succeeds on Unavailable), with a creation date and the service principals."""
        backend = self.kms_backend
        # An unknown key: NotFoundException (AWS-validated: LocalStack's
        # test_create_grant_with_invalid_key), never moto's crash (HTTP 500).
        key = self._key(backend, self._p("KeyId"))
        self._authorize(key, "CreateGrant")
        state = backend.visible_state(key)
        if state in ("Disabled", "PendingDeletion"):
            self._usable(backend, key)
        answer = super().create_grant()
        grant = key.grants.get(json.loads(answer)["GrantId"])
        if grant is not None:
            stamp_grant(
                grant,
                RUNTIME.clock.epoch(),
                self._p("GranteeServicePrincipal"),
                self._p("RetiringServicePrincipal"),
            )
        return answer

    @_locked
    def list_grants(self) -> str:
        """AWS's member set (moto adds GrantCount and sends nulls), key ARN as KeyId, real
        Limit/Marker paging; succeeds in every key state."""
        backend = self.kms_backend
        key = self._key(backend, self._p("KeyId"))
        self._authorize(key, "ListGrants")
        grant_id = self._p("GrantId")
        grantee = self._p("GranteePrincipal")
        service = self._p("GranteeServicePrincipal")
        grants = list(key.grants.values())
        if grant_id is not None:
            grants = [g for g in grants if g.id == grant_id]
            if not grants:
                raise KmsError("InvalidGrantIdException", f"Invalid grant ID {grant_id}")
        if grantee is not None:
            grants = [g for g in grants if g.grantee_principal == grantee]
        if service is not None:
            grants = [g for g in grants if getattr(g, "grantee_service_principal", None) == service]
        entries = [grant_entry(key, g) for g in grants]
        items = sorted(
            ((f"{e.get('CreationDate', 0):020.6f}/{e['GrantId']}", e) for e in entries),
            key=lambda pair: pair[0],
        )
        limit = int(self._p("Limit") or 50)
        page, marker = _page(items, "ListGrants", limit, self._p("Marker"))
        return _listing("Grants", page, marker)

    def _tags(self, operation: str, moto_action: Callable[[], str]) -> str:
        """TagResource / UntagResource fail on a key pending deletion (kms-gates-facts 1, [3])
        and work in every other state; the tagging itself is moto's."""
        try:
            key = self._key(self.kms_backend, self._p("KeyId"))
        except KmsError:
            return moto_action()  # an unknown key: moto's own NotFoundException
        self._authorize(key, operation)
        if key.key_state == "PendingDeletion":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
        if operation == "TagResource":
            left = int(getattr(key, "tag_failures_left", 0) or 0)
            if left > 0:
                setattr(key, "tag_failures_left", left - 1)  # noqa: B010
                raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
            check_tags(self.kms_backend.list_resource_tags(key.id).get("Tags", []),
                       self._p("Tags") or [])
        return moto_action()

    @_locked
    def tag_resource(self) -> str:
        return self._tags("TagResource", super().tag_resource)

    @_locked
    def untag_resource(self) -> str:
        return self._tags("UntagResource", super().untag_resource)

    @_locked
    def list_resource_tags(self) -> str:
        """moto's answer without its null NextMarker (absent members are omitted on the wire);
        a key policy can deny kms:ListResourceTags, as in AWS."""
        try:
            key = self._key(self.kms_backend, self._p("KeyId"))
        except KmsError:
            key = None  # an unknown key: moto's own NotFoundException
        if key is not None:
            self._authorize(key, "ListResourceTags")
        body = json.loads(super().list_resource_tags())
        return json.dumps({k: v for k, v in body.items() if v is not None})

    def _set_enabled(self, enabled: bool) -> str:
        backend = self.kms_backend
        key = self._key(backend, self._p("KeyId"))
        self._authorize(key, "EnableKey" if enabled else "DisableKey")
        if key.key_state == "PendingDeletion":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
        # On an Unavailable key this changes only the hidden state (shown after reconnect).
        backend.set_enabled(key, enabled)
        return ""

    @_locked
    def enable_key(self) -> str:
        return self._set_enabled(True)

    @_locked
    def disable_key(self) -> str:
        return self._set_enabled(False)

    # ------------------------------------------------------------------ custom key stores
    @_locked
    def create_custom_key_store(self) -> str:
        backend = self.kms_backend
        name = self._p("CustomKeyStoreName")
        kind = self._p("CustomKeyStoreType") or "AWS_CLOUDHSM"
        if backend.store_by_name(name) is not None:
            raise KmsError(
                "CustomKeyStoreNameInUseException",
                f"Custom key store name '{name}' is already in use.",
            )
        if len(backend.custom_key_stores) >= STORE_QUOTA:
            raise KmsError(
                "LimitExceededException",
                f"You have reached the limit of {STORE_QUOTA} custom key stores "
                "in this account and Region.",
            )
        store = CustomKeyStore(
            id=backend.new_store_id(), name=name, type=kind, creation_date=RUNTIME.clock.epoch()
        )
        if kind == "AWS_CLOUDHSM":
            self._forbid(kind, [p for p in self._params() if p.startswith("XksProxy")])
            cluster = self._require(kind, "CloudHsmClusterId")
            for other in list(backend.custom_key_stores.values()):
                if other.cluster_id == cluster:
                    raise KmsError(
                        "CloudHsmClusterInUseException",
                        f"Cluster {cluster} is already associated with a custom key store.",
                    )
            store.cluster_id = cluster
            store.trust_anchor = self._require(kind, "TrustAnchorCertificate")
            store.password = self._require(kind, "KeyStorePassword")
        else:
            self._forbid(
                kind,
                [
                    p
                    for p in ("CloudHsmClusterId", "TrustAnchorCertificate", "KeyStorePassword")
                    if p in self._params()
                ],
            )
            connectivity = self._require(kind, "XksProxyConnectivity")
            cred = self._require(kind, "XksProxyAuthenticationCredential")
            store.xks = {
                "Connectivity": connectivity,
                "AccessKeyId": cred.get("AccessKeyId"),
                "UriEndpoint": self._require(kind, "XksProxyUriEndpoint"),
                "UriPath": self._require(kind, "XksProxyUriPath"),
            }
            if connectivity == "VPC_ENDPOINT_SERVICE":
                store.xks["VpcEndpointServiceName"] = self._require(
                    kind, "XksProxyVpcEndpointServiceName"
                )
                owner = self._p("XksProxyVpcEndpointServiceOwner")
                if owner:
                    store.xks["VpcEndpointServiceOwner"] = owner
            self._check_xks_uri(backend, store, store.xks["UriEndpoint"], store.xks["UriPath"])
        backend.add_store(store)
        return json.dumps({"CustomKeyStoreId": store.id})

    def _require(self, kind: str, name: str) -> Any:
        value = self._p(name)
        if value in (None, "", {}):
            raise KmsError("ValidationException", f"{name} is required for a {kind} key store.")
        return value

    def _forbid(self, kind: str, present: list[str]) -> None:
        if present:
            raise KmsError(
                "ValidationException",
                f"{', '.join(sorted(present))} is not valid for a {kind} key store.",
            )

    def _check_xks_uri(
        self, backend: EmulatorKmsBackend, store: CustomKeyStore, endpoint: str, path: str
    ) -> None:
        for other in list(backend.custom_key_stores.values()):
            if other.id == store.id or other.type != "EXTERNAL_KEY_STORE":
                continue
            if other.xks.get("UriEndpoint") == endpoint and other.xks.get("UriPath") == path:
                raise KmsError(
                    "XksProxyUriInUseException",
                    f"The URI {endpoint}{path} is already used by another external "
                    "key store in this Region.",
                )

    @_locked
    def describe_custom_key_stores(self) -> str:
        backend = self.kms_backend
        store_id = self._p("CustomKeyStoreId")
        name = self._p("CustomKeyStoreName")
        if store_id is not None and name is not None:
            raise KmsError(
                "ValidationException",
                "Specify either CustomKeyStoreId or CustomKeyStoreName, but not both.",
            )
        view = self._view_time()
        stale = view is not None and backend.has_history()
        current = {s.id: s.entry() for s in list(backend.custom_key_stores.values())}
        order = {s.id: (s.creation_date, s.id) for s in list(backend.custom_key_stores.values())}
        if stale and view is not None:
            seen: dict[str, dict[str, Any]] = {}
            for sid in set(current) | set(backend.stale_names("store:")):
                entry = backend.as_of(f"store:{sid}", view, current.get(sid))
                if entry is not None:
                    seen[sid] = entry
                    order.setdefault(sid, (entry["CreationDate"], sid))
            current = seen
        entries = list(current.values())
        if store_id is not None:
            entries = [e for e in entries if e["CustomKeyStoreId"] == store_id]
            if not entries:
                raise KmsError(
                    "CustomKeyStoreNotFoundException",
                    f"Custom key store '{store_id}' does not exist.",
                )
        elif name is not None:
            entries = [e for e in entries if e["CustomKeyStoreName"] == name]
            if not entries:
                raise KmsError(
                    "CustomKeyStoreNotFoundException", f"Custom key store '{name}' does not exist."
                )
        items = sorted(
            (
                (f"{order[e['CustomKeyStoreId']][0]:020.6f}/{e['CustomKeyStoreId']}", e)
                for e in entries
            ),
            key=lambda pair: pair[0],
        )
        limit = int(self._p("Limit") or 1000)
        page, marker = _page(items, "DescribeCustomKeyStores", limit, self._p("Marker"))
        return _listing("CustomKeyStores", page, marker)

    @_locked
    def connect_custom_key_store(self) -> str:
        backend = self.kms_backend
        store = backend.store_by_id(self._p("CustomKeyStoreId"))
        if store.state in ("DISCONNECTING", "FAILED"):
            raise KmsError(
                "CustomKeyStoreInvalidStateException",
                f"Custom key store {store.id} is {store.state}; "
                + (
                    "disconnect it before connecting it again."
                    if store.state == "FAILED"
                    else "wait until it is DISCONNECTED."
                ),
            )
        if store.state in ("CONNECTED", "CONNECTING"):
            return "{}"  # allowed by the exception doc; no effect
        if FAIL_CONNECT_MARKER in store.name:
            err = HSM_ERROR_ON_FAIL if store.type == "AWS_CLOUDHSM" else XKS_ERROR_ON_FAIL
            backend.start_transition(
                store, "CONNECTING", "FAILED", RUNTIME.config.connect_seconds, err
            )
        else:
            backend.start_transition(
                store, "CONNECTING", "CONNECTED", RUNTIME.config.connect_seconds
            )
        return "{}"

    @_locked
    def disconnect_custom_key_store(self) -> str:
        backend = self.kms_backend
        store = backend.store_by_id(self._p("CustomKeyStoreId"))
        if store.state in ("DISCONNECTING", "DISCONNECTED"):
            raise KmsError(
                "CustomKeyStoreInvalidStateException",
                f"Custom key store {store.id} is already {store.state}.",
            )
        backend.start_transition(
            store, "DISCONNECTING", "DISCONNECTED", RUNTIME.config.disconnect_seconds
        )
        return "{}"

    @_locked
    def delete_custom_key_store(self) -> str:
        backend = self.kms_backend
        store = backend.store_by_id(self._p("CustomKeyStoreId"))
        if store.state != "DISCONNECTED":
            raise KmsError(
                "CustomKeyStoreInvalidStateException",
                f"Custom key store {store.id} must be DISCONNECTED to be deleted; "
                f"it is {store.state}.",
            )
        if backend.keys_in_store(store.id):
            raise KmsError(
                "CustomKeyStoreHasCMKsException",
                f"Custom key store {store.id} contains KMS keys. Schedule their "
                "deletion and wait until they are deleted.",
            )
        backend.remove_store(store)
        return "{}"

    @_locked
    def update_custom_key_store(self) -> str:
        backend = self.kms_backend
        params = self._params()
        store = backend.store_by_id(str(params.get("CustomKeyStoreId")))
        changes = [p for p in params if p != "CustomKeyStoreId"]
        hsm_only = {"KeyStorePassword", "CloudHsmClusterId"}
        if store.type == "AWS_CLOUDHSM":
            self._forbid(store.type, [p for p in changes if p.startswith("XksProxy")])
        else:
            self._forbid(store.type, [p for p in changes if p in hsm_only])
        while_connected = {
            "NewCustomKeyStoreName",
            "XksProxyAuthenticationCredential",
            "XksProxyUriPath",
        }
        if store.state == "CONNECTED":
            blocked = [p for p in changes if p not in while_connected]
            if blocked:
                raise KmsError(
                    "CustomKeyStoreInvalidStateException",
                    f"Custom key store {store.id} must be DISCONNECTED to change "
                    f"{', '.join(sorted(blocked))}.",
                )
        elif store.state != "DISCONNECTED":
            raise KmsError(
                "CustomKeyStoreInvalidStateException",
                f"Custom key store {store.id} is {store.state}; it must be "
                "CONNECTED or DISCONNECTED to be updated.",
            )
        new_name = params.get("NewCustomKeyStoreName")
        if (
            new_name is not None
            and new_name != store.name
            and backend.store_by_name(new_name) is not None
        ):
            raise KmsError(
                "CustomKeyStoreNameInUseException",
                f"Custom key store name '{new_name}' is already in use.",
            )
        if store.type == "EXTERNAL_KEY_STORE":
            endpoint = str(params.get("XksProxyUriEndpoint", store.xks.get("UriEndpoint")))
            path = str(params.get("XksProxyUriPath", store.xks.get("UriPath")))
            self._check_xks_uri(backend, store, endpoint, path)
        backend._remember_store(store)
        if new_name is not None:
            store.name = new_name
        if "CloudHsmClusterId" in params:
            store.cluster_id = params["CloudHsmClusterId"]
        if "KeyStorePassword" in params:
            store.password = params["KeyStorePassword"]
        mapping = {
            "XksProxyUriEndpoint": "UriEndpoint",
            "XksProxyUriPath": "UriPath",
            "XksProxyConnectivity": "Connectivity",
            "XksProxyVpcEndpointServiceName": "VpcEndpointServiceName",
            "XksProxyVpcEndpointServiceOwner": "VpcEndpointServiceOwner",
        }
        for param, member in mapping.items():
            if param in params:
                store.xks[member] = params[param]
        if "XksProxyAuthenticationCredential" in params:
            store.xks["AccessKeyId"] = params["XksProxyAuthenticationCredential"]["AccessKeyId"]
        return "{}"


# AWS's limit of tags per KMS key (kms-gates-facts correction 6).
MAX_TAGS = 50


def check_tags(existing: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """TagException as recorded from real AWS (LocalStack's AWS-validated snapshots):
    "Duplicate tag keys", "Tags beginning with aws: are reserved", "Too many tags" (more than
    50 once the new tags are added; rewriting an existing tag adds none)."""
    names = [str(t.get("TagKey", "")) for t in new if isinstance(t, dict)]
    if len(set(names)) != len(names):
        raise KmsError("TagException", "Duplicate tag keys")
    if any(n.lower().startswith("aws:") for n in names):
        raise KmsError("TagException", "Tags beginning with aws: are reserved")
    have = {str(t.get("TagKey")) for t in existing if isinstance(t, dict)}
    if len(have | set(names)) > MAX_TAGS:
        raise KmsError("TagException", "Too many tags")
