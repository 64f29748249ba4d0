"""CloudTrail for the emulator: KMS events recorded per call, and ``LookupEvents`` to read them.

Facts and their sources: kms-gates-facts §3-§6 and "What an emulator must do" items 7 and 9.
Every KMS call that names a key, ``CreateKey`` and the custom key store operations become an event
record (``AwsApiCall``; failed calls carry ``errorCode``/``errorMessage`` and a null
``responseElements``); a key purged when its waiting period ends becomes a ``DeleteKey``
``AwsServiceEvent``. Events live in memory per Region, newest 90 emulated days, at most
:data:`MAX_EVENTS` per Region (oldest dropped first).

Pure bookkeeping: no moto import, so ``models`` can call it without an import cycle. Keys are
duck-typed (``arn``, ``id``, ``account_id`` and the extra attributes ``models`` sets).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import parse_instant
from .realism import RUNTIME

TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
EVENT_VERSION = "1.08"
RETENTION_SECONDS = 90 * 86400
MAX_EVENTS = 200_000
KEY_RESOURCE_TYPE = "AWS::KMS::Key"
AWS_INTERNAL = "AWS Internal"
LOOKUP_KEYS = (
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
)
# The 14 KeyLastUsageTrackingOperation values (botocore 1.44.8 KMS model).
TRACKED_OPERATIONS = frozenset(
    {
        "Decrypt",
        "DeriveSharedSecret",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "ReEncrypt",
        "Sign",
        "Verify",
        "VerifyMac",
        "Encapsulate",
        "Decapsulate",
    }
)
# Management operations that change a key: the only events LookupEvents finds by ResourceName
# (and ResourceType), and only when they succeeded (a failed call changed nothing). KMS:
# "populates the Resource type and Resource name attributes in all management operations that
# change a particular KMS key" (kms-gates-facts, correction 1). Cryptographic events are not
# indexed (real output: "Resources": []), unless the `cloudtrail_index_crypto` knob says so;
# their record keeps its `resources` either way. Grants are not counted as changing the key
# (UNCONFIRMED; the side less convenient for a reader by ResourceName).
KEY_CHANGING_OPERATIONS = frozenset(
    {
        "CreateKey",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "DisableKey",
        "EnableKey",
        "TagResource",
        "UntagResource",
        "PutKeyPolicy",
        "UpdateKeyDescription",
        "EnableKeyRotation",
        "DisableKeyRotation",
        "RotateKeyOnDemand",
        "ImportKeyMaterial",
        "DeleteImportedKeyMaterial",
        "ReplicateKey",
        "UpdatePrimaryRegion",
        "DeleteKey",
    }
)
STORE_OPERATIONS = frozenset(
    {
        "CreateCustomKeyStore",
        "ConnectCustomKeyStore",
        "DisconnectCustomKeyStore",
        "DeleteCustomKeyStore",
        "UpdateCustomKeyStore",
        "DescribeCustomKeyStores",
    }
)
# Request members never logged (secrets and payloads); AWS logs none of them.
_SECRET_MEMBERS = frozenset(
    {
        "Plaintext",
        "CiphertextBlob",
        "Message",
        "Signature",
        "Mac",
        "KeyStorePassword",
        "XksProxyAuthenticationCredential",
        "TrustAnchorCertificate",
        "PublicKey",
        "GrantTokens",
    }
)
# Members whose values are maps of user data: their keys are not camel-cased.
_MAP_MEMBERS = frozenset(
    {
        "EncryptionContext",
        "SourceEncryptionContext",
        "DestinationEncryptionContext",
        "EncryptionContextSubset",
        "EncryptionContextEquals",
    }
)


# ---------------------------------------------------------------------------- call context
@dataclass
class CallContext:
    """What the KMS action learned about the call, for its event (one per request thread)."""

    keys: list[Any] = field(default_factory=list)
    used: list[Any] = field(default_factory=list)


_local = threading.local()


def begin_call() -> CallContext:
    ctx = CallContext()
    _local.ctx = ctx
    return ctx


def end_call() -> None:
    _local.ctx = None


def current() -> CallContext | None:
    ctx: CallContext | None = getattr(_local, "ctx", None)
    return ctx


def note_key(key: Any, *, used: bool = False) -> None:
    """Record that the running call names ``key`` (``used``: it is the key of a crypto op)."""
    ctx = current()
    if ctx is None:
        return
    if all(k is not key for k in ctx.keys):
        ctx.keys.append(key)
    if used and all(k is not key for k in ctx.used):
        ctx.used.append(key)


# ---------------------------------------------------------------------------- formatting
def event_time(epoch: float) -> str:
    """CloudTrail's ``eventTime``: ISO-8601 UTC to the second with a ``Z``."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_date(epoch: float) -> str:
    """``responseElements`` dates as KMS logs them, e.g. ``Nov 2, 2021, 11:25:25 PM``."""
    d = datetime.fromtimestamp(epoch, tz=UTC)
    hour = d.hour % 12 or 12
    return f"{d:%b} {d.day}, {d.year}, {hour}:{d:%M:%S} {d:%p}"


def new_uuid() -> str:
    """A random version-4 UUID (not from the seeded source: events never shift seeded IDs)."""
    return str(uuid.uuid4())


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def camel_members(value: Any, parent: str = "") -> Any:
    """Request/response members as CloudTrail logs them: lowerCamelCase names, secrets dropped."""
    if isinstance(value, dict):
        if parent in _MAP_MEMBERS:
            return dict(value)
        return {
            _camel(k): camel_members(v, k) for k, v in value.items() if k not in _SECRET_MEMBERS
        }
    if isinstance(value, list):
        return [camel_members(v, parent) for v in value]
    return value


# ---------------------------------------------------------------------------- identities
def account_of(access_key_id: str, default: str) -> str:
    """The account of a caller: that of the principal the ``principals`` knob maps its access
    key to, else `default` (the emulator's account)."""
    session = RUNTIME.sessions.get(access_key_id)
    if session is not None:
        return session.account
    parts = RUNTIME.config.principals.get(access_key_id, "").split(":")
    if len(parts) > 4 and len(parts[4]) == 12 and parts[4].isdigit():
        return parts[4]
    return default


def principal_arn(access_key_id: str, account: str) -> str:
    """The caller's ARN: the role session STS AssumeRole gave the access key, else the
    ``principals`` mapping, else ``arn:aws:iam::<acct>:user/<AKID>``."""
    session = RUNTIME.sessions.get(access_key_id)
    if session is not None:
        return session.arn
    mapped = RUNTIME.config.principals.get(access_key_id)
    return mapped or f"arn:aws:iam::{account}:user/{access_key_id}"


def _principal_id(access_key_id: str, prefix: str) -> str:
    digest = hashlib.sha256(access_key_id.encode()).hexdigest().upper()
    return prefix + "".join(c for c in digest if c.isalnum())[:17]


def user_identity(access_key_id: str, account: str) -> tuple[dict[str, Any], str]:
    """``userIdentity`` for a caller signing with ``access_key_id``, and its LookupEvents
    ``Username``.

    ``:user/NAME`` -> IAMUser (userName NAME); ``:assumed-role/ROLE/SESSION`` and ``:role/ROLE``
    -> AssumedRole (Username: the session, or the role); ``:root`` -> Root.
    """
    arn = principal_arn(access_key_id, account)
    parts = arn.split(":", 5)
    arn_account = parts[4] if len(parts) > 4 and parts[4] else account
    resource = parts[5] if len(parts) > 5 else ""
    ident: dict[str, Any]
    if resource.startswith("user/"):
        name = resource.rsplit("/", 1)[-1]
        ident = {
            "type": "IAMUser",
            "principalId": _principal_id(access_key_id, "AIDA"),
            "arn": arn,
            "accountId": arn_account,
            "accessKeyId": access_key_id,
            "userName": name,
        }
        return ident, name
    assumed = RUNTIME.sessions.get(access_key_id)
    if assumed is not None:
        name = assumed.arn.rsplit("/", 1)[-1]
        ident = {
            "type": "AssumedRole",
            "principalId": f"{assumed.role_id}:{name}",
            "arn": assumed.arn,
            "accountId": assumed.account,
            "accessKeyId": access_key_id,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": assumed.role_id,
                    "arn": assumed.issuer_arn(),
                    "accountId": assumed.account,
                    "userName": assumed.role_arn.rsplit("/", 1)[-1],
                },
                "attributes": {"creationDate": event_time(assumed.created),
                               "mfaAuthenticated": "false"},
            },
        }
        if assumed.source_identity:
            ident["sessionContext"]["sourceIdentity"] = assumed.source_identity
        return ident, name
    if resource.startswith(("assumed-role/", "role/")):
        segments = resource.split("/")
        session = segments[2] if len(segments) > 2 else segments[-1]
        ident = {
            "type": "AssumedRole",
            "principalId": f"{_principal_id(access_key_id, 'AROA')}:{session}",
            "arn": arn,
            "accountId": arn_account,
            "accessKeyId": access_key_id,
        }
        return ident, session
    ident = {
        "type": "Root",
        "principalId": arn_account,
        "arn": arn,
        "accountId": arn_account,
        "accessKeyId": access_key_id,
    }
    return ident, "root"


# ---------------------------------------------------------------------------- the trail
@dataclass
class Event:
    """One stored event: its record and the attributes LookupEvents filters on."""

    time: float
    seq: int
    record: dict[str, Any]
    username: str | None
    access_key_id: str | None
    resources: list[tuple[str, str]]  # (ResourceType, ResourceName)

    def indexed(self) -> list[tuple[str, str]]:
        """The resources LookupEvents shows and finds this event by (see
        :data:`KEY_CHANGING_OPERATIONS`)."""
        name = self.record.get("eventName")
        if name in KEY_CHANGING_OPERATIONS and not self.record.get("errorCode"):
            return self.resources
        if RUNTIME.config.cloudtrail_index_crypto and name in TRACKED_OPERATIONS:
            return self.resources
        return []

    def lookup_entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "EventId": self.record["eventID"],
            "EventName": self.record["eventName"],
            "ReadOnly": "true" if self.record.get("readOnly") else "false",
            "EventTime": self.time,
            "EventSource": self.record["eventSource"],
            "Resources": [{"ResourceType": t, "ResourceName": n} for t, n in self.indexed()],
            "CloudTrailEvent": json.dumps(self.record, separators=(",", ":")),
        }
        if self.access_key_id:
            out["AccessKeyId"] = self.access_key_id
        if self.username:
            out["Username"] = self.username
        return out

    def matches(self, key: str, value: str) -> bool:
        rec = self.record
        if key == "EventId":
            return bool(rec["eventID"] == value)
        if key == "EventName":
            return bool(rec["eventName"] == value)
        if key == "EventSource":
            return bool(rec["eventSource"] == value)
        if key == "ReadOnly":
            return ("true" if rec.get("readOnly") else "false") == value
        if key == "Username":
            return self.username == value
        if key == "AccessKeyId":
            return self.access_key_id == value
        if key == "ResourceType":
            return any(t == value for t, _ in self.indexed())
        if key == "ResourceName":
            return any(n == value for _, n in self.indexed())
        return False


class Trail:
    """Events per Region, kept sorted by (time, sequence)."""

    def __init__(self) -> None:
        self._events: dict[str, list[tuple[float, int, Event]]] = {}
        self._seq = 0

    def clear(self) -> None:
        with RUNTIME.lock:
            self._events.clear()
            self._seq = 0

    def add(
        self,
        region: str,
        when: float,
        record: dict[str, Any],
        *,
        username: str | None,
        access_key_id: str | None,
        keys: list[Any],
    ) -> Event:
        when = float(int(when))  # CloudTrail times have whole seconds (eventTime, EventTime)
        with RUNTIME.lock:
            self._seq += 1
            resources = [(KEY_RESOURCE_TYPE, resource_name(k)) for k in keys]
            event = Event(when, self._seq, record, username, access_key_id, resources)
            events = self._events.setdefault(region, [])
            bisect.insort(events, (when, self._seq, event), key=lambda t: (t[0], t[1]))
            cutoff = RUNTIME.clock.epoch() - RETENTION_SECONDS
            drop = 0
            while drop < len(events) and (
                events[drop][0] < cutoff or len(events) - drop > MAX_EVENTS
            ):
                drop += 1
            if drop:
                del events[:drop]
            return event

    def events(self, region: str, account: str | None = None) -> list[Event]:
        """Newest first; with `account`, only the events of that account (its Event history)."""
        with RUNTIME.lock:
            return [e for _, _, e in reversed(self._events.get(region, []))
                    if account is None or e.record.get("recipientAccountId") == account]

    def all_records(self, region: str) -> list[dict[str, Any]]:
        return [e.record for e in self.events(region)]


TRAIL = Trail()


def resource_name(key: Any) -> str:
    return str(key.id if RUNTIME.config.cloudtrail_resource_name == "key_id" else key.arn)


def key_resources(keys: list[Any]) -> list[dict[str, Any]]:
    return [{"accountId": k.account_id, "type": KEY_RESOURCE_TYPE, "ARN": k.arn} for k in keys]


def backing_keys(key: Any) -> list[dict[str, str]]:
    """AWS's current examples (ct-delete-key.html) carry only ``backingKeyId``, which AWS
    calls "the key handle of the key material"; no ``keyHandle``."""
    return [{"backingKeyId": key.backing_key_id}]


def store_event_data(key: Any, *, with_backing_keys: bool) -> dict[str, Any] | None:
    """``additionalEventData`` of an event on a custom-key-store key (None for other keys)."""
    store_id = getattr(key, "custom_key_store_id", None)
    if store_id is None:
        return None
    data: dict[str, Any] = {"customKeyStoreId": store_id}
    cluster = getattr(key, "cloud_hsm_cluster_id", None)
    if cluster:
        data["clusterId"] = cluster
        if with_backing_keys and getattr(key, "key_handle", None):
            data["backingKeys"] = json.dumps(backing_keys(key), separators=(",", ":"))
    xks_id = getattr(key, "xks_key_id", None)
    if xks_id:
        data["xksKeyId"] = xks_id
    return data


def read_only(operation: str) -> bool:
    return operation.startswith(("Describe", "List", "Get")) or operation in TRACKED_OPERATIONS


@dataclass
class Caller:
    """Who made a request and from where."""

    access_key_id: str
    account: str
    source_ip: str
    user_agent: str


def api_event(
    *,
    operation: str,
    region: str,
    when: float,
    caller: Caller,
    request_id: str,
    event_id: str,
    request_parameters: dict[str, Any] | None,
    response_elements: dict[str, Any] | None,
    keys: list[Any],
    error: tuple[str, str] | None,
) -> dict[str, Any]:
    """An ``AwsApiCall`` record (kms-gates-facts §4-§6)."""
    ident, _ = user_identity(caller.access_key_id, caller.account)
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": ident,
        "eventTime": event_time(when),
        "eventSource": "kms.amazonaws.com",
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": caller.source_ip,
        "userAgent": caller.user_agent,
    }
    if error is not None:
        record["errorCode"], record["errorMessage"] = error
    record["requestParameters"] = request_parameters
    record["responseElements"] = None if error is not None else response_elements
    record["requestID"] = request_id
    record["eventID"] = event_id
    record["readOnly"] = read_only(operation)
    if keys:
        record["resources"] = key_resources(keys)
        extra = store_event_data(
            keys[0],
            with_backing_keys=operation in TRACKED_OPERATIONS or operation == "ScheduleKeyDeletion",
        )
        if extra is not None and (
            operation in TRACKED_OPERATIONS or operation == "ScheduleKeyDeletion"
        ):
            record["additionalEventData"] = extra
    record["eventType"] = "AwsApiCall"
    record["managementEvent"] = True
    record["recipientAccountId"] = caller.account
    record["eventCategory"] = "Management"
    return record


def record_api_event(
    region: str, when: float, caller: Caller, record: dict[str, Any], keys: list[Any]
) -> Event:
    _, username = user_identity(caller.access_key_id, caller.account)
    return TRAIL.add(
        region, when, record, username=username, access_key_id=caller.access_key_id, keys=keys
    )


def record_deletion(region: str, key: Any, when: float, store: Any | None) -> Event:
    """The ``DeleteKey`` ``AwsServiceEvent`` KMS logs when a key's waiting period ends (§5).

    CloudHSM keys: ``backingKeysDeletionStatus`` is SUCCESS when the store is CONNECTED at that
    moment, else FAILURE (the key material stays in the cluster, orphaned). External key store
    keys: ``{customKeyStoreId, xksKeyId}`` (no documented example: UNCONFIRMED).
    """
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": {"accountId": key.account_id, "invokedBy": AWS_INTERNAL},
        "eventTime": event_time(when),
        "eventSource": "kms.amazonaws.com",
        "eventName": "DeleteKey",
        "awsRegion": region,
        "sourceIPAddress": AWS_INTERNAL,
        "userAgent": AWS_INTERNAL,
        "requestParameters": None,
        "responseElements": {"keyId": key.arn},
    }
    store_id = getattr(key, "custom_key_store_id", None)
    if store_id is not None:
        data: dict[str, Any] = {"customKeyStoreId": store_id}
        cluster = getattr(key, "cloud_hsm_cluster_id", None)
        if cluster:
            connected = store is not None and store.state == "CONNECTED"
            backing = backing_keys(key)
            outcome = "SUCCESS" if connected else "FAILURE"
            status = [dict(b, deletionStatus=outcome) for b in backing]
            data["clusterId"] = cluster
            data["backingKeys"] = json.dumps(backing, separators=(",", ":"))
            data["backingKeysDeletionStatus"] = json.dumps(status, separators=(",", ":"))
        xks_id = getattr(key, "xks_key_id", None)
        if xks_id:
            data["xksKeyId"] = xks_id
        record["additionalEventData"] = data
    record["eventID"] = new_uuid()
    record["readOnly"] = False
    record["resources"] = key_resources([key])
    record["eventType"] = "AwsServiceEvent"
    record["managementEvent"] = True
    record["recipientAccountId"] = key.account_id
    record["eventCategory"] = "Management"
    return TRAIL.add(region, when, record, username=None, access_key_id=None, keys=[key])


# ---------------------------------------------------------------------------- LookupEvents
class TrailError(Exception):
    """A CloudTrail error answered as ``{"__type": code, "message": msg}`` (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _token_hash(params: dict[str, Any]) -> str:
    same = {k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}
    return hashlib.sha256(json.dumps(same, sort_keys=True).encode()).hexdigest()[:24]


def _encode_token(params: dict[str, Any], last: Event) -> str:
    doc = {"h": _token_hash(params), "t": last.time, "s": last.seq}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def _decode_token(params: dict[str, Any], token: Any) -> tuple[float, int]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        ok = isinstance(doc, dict) and doc.get("h") == _token_hash(params)
        cursor = (float(doc["t"]), int(doc["s"])) if ok else None
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        cursor = None
    if cursor is None:
        raise TrailError(
            "InvalidNextTokenException",
            "Invalid NextToken: it must come from a call with the same parameters.",
        )
    return cursor


def check_lookup(params: dict[str, Any]) -> None:
    """The checks AWS makes before generic validation, with their own error codes."""
    attrs = params.get("LookupAttributes")
    if attrs is not None:
        if not isinstance(attrs, list) or len(attrs) > 1:
            raise TrailError(
                "InvalidLookupAttributesException",
                "You can specify only one lookup attribute.",
            )
        for attr in attrs:
            if not isinstance(attr, dict) or attr.get("AttributeKey") not in LOOKUP_KEYS:
                raise TrailError(
                    "InvalidLookupAttributesException",
                    f"AttributeKey must be one of {', '.join(LOOKUP_KEYS)}.",
                )
            value = attr.get("AttributeValue")
            if not isinstance(value, str) or not 1 <= len(value) <= 2000:
                raise TrailError(
                    "InvalidLookupAttributesException",
                    "AttributeValue must be 1 to 2000 characters.",
                )
    if "MaxResults" in params:
        n = params["MaxResults"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 50:
            raise TrailError("InvalidMaxResultsException", "MaxResults must be 1 through 50.")
    if "EventCategory" in params and params["EventCategory"] != "insight":
        raise TrailError("InvalidEventCategoryException", "EventCategory must be insight.")


def lookup_events(region: str, params: dict[str, Any], account: str | None = None
                  ) -> dict[str, Any]:
    """The ``LookupEvents`` answer for ``params`` (already checked by :func:`check_lookup`)."""
    now = RUNTIME.clock.epoch()
    try:
        start = parse_instant(params["StartTime"]) if "StartTime" in params else None
        end = parse_instant(params["EndTime"]) if "EndTime" in params else None
    except ValueError as exc:
        raise TrailError("InvalidTimeRangeException", str(exc)) from exc
    if start is not None and end is not None and start > end:
        raise TrailError(
            "InvalidTimeRangeException", "The start time must not be after the end time."
        )
    floor = now - RETENTION_SECONDS
    # Events reach Event history late (cloudtrail_delay emulated seconds; AWS documents no
    # figure for Event history, and "about 5 minutes ... not guaranteed" for trails).
    visible = now - RUNTIME.config.cloudtrail_delay
    limit = int(params.get("MaxResults", 50))
    cursor = _decode_token(params, params["NextToken"]) if params.get("NextToken") else None
    attrs = params.get("LookupAttributes") or []
    if params.get("EventCategory") == "insight":
        return {"Events": []}  # no Insights events are emulated
    found: list[Event] = []
    more = False
    for event in TRAIL.events(region, account):
        if event.time < floor:
            break
        if cursor is not None and (event.time, event.seq) >= cursor:
            continue
        if event.time > visible or (end is not None and event.time > end):
            continue
        if start is not None and event.time < start:
            break
        if any(not event.matches(a["AttributeKey"], a["AttributeValue"]) for a in attrs):
            continue
        if len(found) == limit:
            more = True
            break
        found.append(event)
    out: dict[str, Any] = {"Events": [e.lookup_entry() for e in found]}
    if more:
        out["NextToken"] = _encode_token(params, found[-1])
    return out
