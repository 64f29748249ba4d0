"""The watch over the waiting period: attempts to use a key since ksdelete put it on the way
out, read from CloudTrail Event history. Pure: records in, findings out.

AWS's advice before deleting a KMS key is to alarm on any attempt to use it while it is
pending deletion (kms-reference 7.1): such a call fails, and CloudTrail records the failure
with the error code. Which lookup attribute finds a key's events is not documented for KMS
(kms-gates-facts 4), so ksdelete looks events up by the key's ARN as resource name, keeps only
records whose `resources[].ARN` (or `responseElements.keyId`) is the key, and proves the lookup
works on every run: the key's own ScheduleKeyDeletion (or, during a soak, DisableKey) event
must be among the results. When it is not, the watch says it cannot see, and the gate refuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ksdelete.models import Attempt, CancelEvent, Watch

# Cryptographic operations (the ones GetKeyLastUsage tracks, and ReEncrypt's two halves):
# a failed one on a key pending deletion or disabled is someone still using the key.
CRYPTO_OPERATIONS = frozenset({
    "Decrypt", "DeriveSharedSecret", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext", "GenerateMac",
    "ReEncrypt", "Sign", "Verify", "VerifyMac", "Encapsulate", "Decapsulate",
})
# The errors such a call gets from a key that is pending deletion, disabled or unavailable
# (kms-gates-facts 1, footnotes 1, 2, 3, 11).
USE_ERRORS = frozenset({"KMSInvalidStateException", "DisabledException"})
# The LookupEvents attribute by which the watch finds a key's use attempts (the executor's
# _watch_key reads ResourceName = the key's ARN). `ksdelete probe` judges the watch by the
# same lookup: change both together (tests/cli/test_probe.py checks they agree).
USE_LOOKUP = "ResourceName"


def is_for(record: dict[str, Any], key_arn: str) -> bool:
    """Whether a CloudTrail record is about this key (by ARN, never by a lookup's say-so)."""
    for resource in record.get("resources") or ():
        if isinstance(resource, dict) and resource.get("ARN") == key_arn:
            return True
    response = record.get("responseElements")
    return isinstance(response, dict) and response.get("keyId") == key_arn


def read_trail(records: Iterable[dict[str, Any]], key_arn: str, *,
               anchors: frozenset[str] = frozenset({"ScheduleKeyDeletion"})) -> Watch:
    """From records newest first: the key's latest successful anchor event (its current
    scheduling) and every failed use of the key after it. Attempts before the anchor do not
    count: they belong to an earlier scheduling, already dealt with."""
    attempts: list[Attempt] = []
    since: datetime | None = None
    for record in records:
        when = _time(record.get("eventTime"))
        if since is not None and (when is None or when < since):
            break  # past the anchor's second: an earlier scheduling's business
        if not is_for(record, key_arn):
            continue
        name = str(record.get("eventName", ""))
        error = record.get("errorCode")
        if name in anchors and not error:
            if since is None:
                # eventTime has one-second resolution and events of one second come in no
                # promised order: read on through the anchor's second (a use in that second
                # counts; the cautious side).
                since = when
                if since is None:
                    break
            continue
        if name in CRYPTO_OPERATIONS and error in USE_ERRORS:
            attempts.append(Attempt(
                operation=name, caller=_caller(record.get("userIdentity")),
                time=when, error_code=str(error),
                message=str(record.get("errorMessage") or ""),
                event_id=str(record.get("eventID") or "")))
    return Watch(since=since, attempts=tuple(attempts))


def read_cancels(records: Iterable[dict[str, Any]], keys: dict[str, str], since: datetime
                 ) -> tuple[CancelEvent, ...]:
    """From records newest first: the successful CancelKeyDeletion of each key (ARN -> key ID
    in `keys`) at or after `since` (to the second: eventTime has no finer resolution), the
    latest one per key."""
    floor = since.replace(microsecond=0)
    found: dict[str, CancelEvent] = {}
    for record in records:
        when = _time(record.get("eventTime"))
        if when is not None and when < floor:
            break
        if record.get("eventName") != "CancelKeyDeletion" or record.get("errorCode"):
            continue
        arns = {r.get("ARN") for r in record.get("resources") or () if isinstance(r, dict)}
        response = record.get("responseElements")
        if isinstance(response, dict):
            arns.add(response.get("keyId"))
        for arn in arns:
            key_id = keys.get(arn) if isinstance(arn, str) else None
            if key_id is not None and key_id not in found:
                found[key_id] = CancelEvent(key_id, _caller(record.get("userIdentity")), when,
                                            str(record.get("eventID") or ""))
    return tuple(found.values())


def merge(earlier: Watch, later: Watch) -> Watch:
    """An earlier reading extended by a later one over the events since (a --wait run reads
    only what is new). A newer anchor (the key was scheduled again) drops older attempts."""
    since = later.since or earlier.since
    seen: dict[str, Attempt] = {}
    for attempt in (*earlier.attempts, *later.attempts):
        if since is None or attempt.time is None or attempt.time >= since:
            seen.setdefault(attempt.event_id or repr(attempt), attempt)
    ordered = sorted(seen.values(), key=lambda a: a.time or datetime.min, reverse=True)
    return Watch(since=since, attempts=tuple(ordered))


def _caller(identity: Any) -> str:
    if not isinstance(identity, dict):
        return "unknown caller"
    return str(identity.get("arn") or identity.get("invokedBy")
               or identity.get("principalId") or identity.get("type") or "unknown caller")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
