"""The watch over the waiting period: attempts to use a key since ksdelete put it on the way
out, read from CloudTrail Event history the way AWS records them.

LookupEvents finds an event by `ResourceName` only for management operations that change a
key; cryptographic events (Decrypt, Encrypt, GenerateDataKey, ...) are not indexed that way
(kms-gates-facts, correction 1). So the watch reads, per account and Region and for all keys at
once, one LookupEvents chain per event name (`EventName` = Decrypt, Encrypt, ..., CreateGrant,
and the anchors ScheduleKeyDeletion / DisableKey), newest first, and keeps the records about a
watched key: its ARN in `resources[].ARN`, or an `errorMessage` that starts with it. The number
of calls follows the number of events, not the number of keys.

A key's *anchor* is its own latest successful ScheduleKeyDeletion (or, during a soak,
DisableKey) event: it proves that the read sees that key, and only attempts from its second on
count. A failed call whose error says the key is pending deletion, disabled or unavailable is
an attempt to use it, unless ksdelete's own caller made it in an operation ksdelete itself
makes (it never calls a cryptographic operation or CreateGrant).

A chain not read to its end (the run's budget ran out, a page failed) leaves every key it did
not cover blind, never "no use"; what was found before is kept. How far each chain was read
completely for each key is remembered between runs (`positions`): the next read starts there
minus an overlap for late delivery. A missing position only makes a read longer.

Pure: the pages come from a `fetch` function the caller gives (the gateway's LookupEvents).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ksdelete.models import Attempt, CancelEvent, Watch

# Cryptographic operations (the ones GetKeyLastUsage tracks, and ReEncrypt's two halves):
# a failed one on a key pending deletion or disabled is someone still using the key.
CRYPTO_OPERATIONS = frozenset({
    "Decrypt", "DeriveSharedSecret", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext", "GenerateMac",
    "ReEncrypt", "Sign", "Verify", "VerifyMac", "Encapsulate", "Decapsulate",
})
# The event names read for uses, busiest first (each is one LookupEvents chain per read). Keys
# in custom key stores are symmetric encryption keys only, so of the cryptographic operations
# only these five can be called on them; CreateGrant is what EBS- and RDS-style integrations
# call first (no Decrypt follows when it fails). AWS's own alarm matches any KMS call whose
# error says "is pending deletion" (kms-gates-facts, correction 3).
USE_EVENTS: tuple[str, ...] = ("Decrypt", "Encrypt", "GenerateDataKey",
                               "GenerateDataKeyWithoutPlaintext", "ReEncrypt", "CreateGrant")
SCHEDULED = "ScheduleKeyDeletion"
DISABLED = "DisableKey"
# Operations ksdelete itself makes: its own failures there are not someone else's use.
OWN_OPERATIONS = frozenset({SCHEDULED, DISABLED, "EnableKey", "CancelKeyDeletion",
                            "TagResource", "UntagResource"})
# The errors such a call gets from a key that is pending deletion, disabled or unavailable
# (kms-gates-facts 1, footnotes 1, 2, 3, 11), and the words of their messages.
USE_ERRORS = frozenset({"KMSInvalidStateException", "DisabledException",
                        "KeyUnavailableException"})
USE_WORDS = ("is pending deletion", "is pending replica deletion", "is disabled",
             "is unavailable")
# The one chain of a CloudWatch Logs group (--watch-log-group), and the filter pattern that
# makes AWS return only what the watch needs: failures that say a KMS key is pending deletion,
# disabled or unavailable (AWS's own alarm, kms-gates-facts correction 3), and the anchors.
LOG_CHAIN = "log group"
LOG_PATTERN = ('{ ($.eventSource = "kms.amazonaws.com") && ('
               + " || ".join(f'($.errorMessage = "* {word}*")' for word in (
                   "is pending deletion", "is pending replica deletion", "is disabled",
                   "is unavailable"))
               + ' || ($.eventName = "ScheduleKeyDeletion") || ($.eventName = "DisableKey")) }')
# Event history keeps 90 days.
RETENTION = timedelta(days=90)
# How late an event may reach Event history: each read goes back this far before the last
# complete one, and a key scheduled less than this ago whose anchor is not there yet is "not
# visible yet" rather than blind (no figure is documented; kms-gates-facts correction 2).
ALLOWANCE = timedelta(hours=1)

# fetch(event name, start, end, token) -> (records newest first, next token or None)
Fetch = Callable[[str, datetime, datetime, "str | None"], "tuple[list[dict[str, Any]], str | None]"]
# The LookupEvents attribute by which the watch finds a key's use attempts: one chain per
# event name (EventName). `ksdelete probe` judges the watch by the same lookup
# (tests/cli/test_probe.py checks they agree).
USE_LOOKUP = "EventName"


def is_for(record: dict[str, Any], key_arn: str) -> bool:
    """Whether a CloudTrail record is about this key (by ARN, never by a lookup's say-so)."""
    return key_arn in about(record)


def about(record: dict[str, Any]) -> set[str]:
    """The key ARNs a record is about: `resources[].ARN`, `responseElements.keyId`, and the
    ARN an `errorMessage` starts with ("<key ARN> is pending deletion.")."""
    arns = {str(r["ARN"]) for r in record.get("resources") or ()
            if isinstance(r, dict) and isinstance(r.get("ARN"), str)}
    response = record.get("responseElements")
    if isinstance(response, dict) and isinstance(response.get("keyId"), str):
        arns.add(response["keyId"])
    message = record.get("errorMessage")
    if isinstance(message, str) and message.startswith("arn:"):
        arns.add(message.split(" ", 1)[0])
    return arns


def is_use_error(record: dict[str, Any]) -> bool:
    """A failure that says the key is pending deletion, disabled or unavailable."""
    error = record.get("errorCode")
    if not error:
        return False
    message = str(record.get("errorMessage") or "")
    return error in USE_ERRORS or any(word in message for word in USE_WORDS)


@dataclass(frozen=True)
class Watched:
    """A key the watch looks for."""

    arn: str
    anchor: str  # SCHEDULED (pending) or DISABLED (soaking)
    bound: datetime  # its current scheduling (or soak) began no earlier than this
    since: datetime | None = None  # its anchor, remembered from an earlier read
    scheduled: datetime | None = None  # when it was put on the way out, if known


@dataclass
class Chain:
    """One LookupEvents chain (one event name), read newest first from `end` to `start`."""

    name: str
    start: datetime
    end: datetime
    token: str | None = None
    pages: int = 0
    events: int = 0
    done: bool = False
    error: str | None = None  # why it stopped short of `start`
    reached: datetime | None = None  # the oldest event read so far

    def covers(self, start: datetime) -> bool:
        """Read completely back to `start` (events of one second may span two pages; a log
        group is read oldest first: only its end proves anything)."""
        if self.name == LOG_CHAIN:
            return self.done
        return self.done or (self.reached is not None and self.reached < start)


@dataclass
class Sweep:
    """One reading of the account's CloudTrail for a set of keys."""

    keys: list[Watched]
    now: datetime
    own_caller: str = ""
    positions: dict[str, dict[str, datetime]] = field(default_factory=dict)
    overlap: timedelta = ALLOWANCE
    chains: dict[str, Chain] = field(default_factory=dict)
    anchors: dict[str, datetime] = field(default_factory=dict)
    found: dict[str, list[Attempt]] = field(default_factory=dict)
    calls: int = 0
    # Read one CloudWatch Logs group (FilterLogEvents, filtered by AWS, oldest first) instead
    # of one LookupEvents chain per event name: one chain, complete only when read to its end.
    log_group: bool = False

    def __post_init__(self) -> None:
        names = list(USE_EVENTS)
        names += sorted({k.anchor for k in self.keys})
        if self.log_group:
            names = [LOG_CHAIN]
        floor = self.now - RETENTION
        for name in names:
            starts = [self._start(name, k) for k in self.keys]
            start = max(floor, min(starts)) if starts else self.now
            self.chains[name] = Chain(name, min(start, self.now), self.now)

    def _start(self, chain: str, key: Watched) -> datetime:
        """Where this key needs `chain` read from: its anchor (or bound), or its last
        complete read minus the overlap, whichever is later. A position counts only with a
        remembered anchor (else the anchor itself must be read again), and a position in the
        future is nobody's: it is ignored."""
        start = key.since or key.bound
        seen = self.positions.get(chain, {}).get(key.arn)
        if seen is not None and key.since is not None and seen <= self.now:
            start = max(start, seen - self.overlap)
        return start

    def _need(self, chain: str, key: Watched) -> datetime:
        """How far back `chain` must have been read for this key: to where it started, or
        to its anchor found in this read (what came before does not count)."""
        start = self._start(chain, key)
        since = self.since(key)
        return max(start, since) if since is not None else start

    # ---- reading ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return all(c.done or c.error for c in self.chains.values())

    def read(self, fetch: Fetch, *, deadline: float, first_round_only: bool = False,
             clock: Callable[[], float] = time.monotonic) -> None:
        """Read the chains page by page, one page of each in turn, until every chain is done
        or `deadline` (monotonic) passes. With `first_round_only`, stop after a round that
        found an attempt: the caller acts on it first, then calls `read` again for the rest."""
        while not self.finished:
            found_before = self.attempt_count()
            for chain in list(self.chains.values()):
                if chain.done or chain.error:
                    continue
                if clock() >= deadline:
                    for rest in self.chains.values():
                        if not rest.done and not rest.error:
                            rest.error = "budget"
                    return
                self._page(chain, fetch)
            if first_round_only and self.attempt_count() > found_before:
                return

    def _page(self, chain: Chain, fetch: Fetch) -> None:
        from ksdelete.errors import AwsError

        self.calls += 1
        try:
            records, token = fetch(chain.name, chain.start, chain.end, chain.token)
        except AwsError as exc:
            chain.error = exc.aws_code or exc.code
            return
        chain.pages += 1
        chain.events += len(records)
        for record in records:
            self.take(chain.name, record)
            when = _time(record.get("eventTime"))
            if when is not None:
                chain.reached = when if chain.reached is None else min(chain.reached, when)
        chain.token = token
        if not token:
            chain.done = True

    def take(self, chain: str, record: dict[str, Any]) -> None:
        """One record of `chain` (newest first)."""
        arns = about(record) & {k.arn for k in self.keys}
        if not arns:
            return
        name = str(record.get("eventName", ""))
        when = _time(record.get("eventTime"))
        anchors = {k.arn: k.anchor for k in self.keys}
        for arn in arns:
            if name == anchors[arn] and not record.get("errorCode"):
                if when is not None and (arn not in self.anchors or when > self.anchors[arn]):
                    self.anchors[arn] = when
                continue
            if not is_use_error(record) or name in (SCHEDULED, DISABLED):
                continue
            caller = _caller(record.get("userIdentity"))
            if self.own_caller and caller == self.own_caller and name in OWN_OPERATIONS:
                continue
            self.found.setdefault(arn, []).append(Attempt(
                operation=name, caller=caller, time=when, error_code=str(record["errorCode"]),
                message=str(record.get("errorMessage") or ""),
                event_id=str(record.get("eventID") or "")))

    def attempt_count(self) -> int:
        return sum(len(self.attempts(k)) for k in self.keys)

    # ---- what it saw ---------------------------------------------------------------------

    def since(self, key: Watched) -> datetime | None:
        found = self.anchors.get(key.arn)
        if found is not None and (key.since is None or found > key.since):
            return found
        return key.since

    def attempts(self, key: Watched) -> list[Attempt]:
        """The key's attempts from its anchor's second on (all of them while its anchor is
        not known: the cautious side), newest first."""
        since = self.since(key)
        seen: dict[str, Attempt] = {}
        for attempt in self.found.get(key.arn, ()):
            if since is None or attempt.time is None or attempt.time >= since:
                seen.setdefault(attempt.event_id or repr(attempt), attempt)
        return sorted(seen.values(), key=lambda a: a.time or datetime.min, reverse=True)

    def watch(self, key: Watched) -> Watch:
        attempts = tuple(self.attempts(key))
        since = self.since(key)
        short = [c for c in self.chains.values() if not c.covers(self._need(c.name, key))]
        error = None
        if short and not attempts:
            error = "; ".join(_why(c) for c in short)
        late = since is None and error is None and self._late(key)
        return Watch(since=since, attempts=attempts, error=error, late=late,
                     anchor=key.anchor, scheduled=key.scheduled)

    def _late(self, key: Watched) -> bool:
        """Its anchor may simply not be delivered yet: it was put on the way out less than
        the allowance ago (as far as anyone can tell)."""
        began = key.scheduled or key.bound
        return began > self.now - self.overlap

    def watches(self) -> dict[str, Watch]:
        return {k.arn: self.watch(k) for k in self.keys}

    def new_positions(self) -> dict[str, dict[str, datetime]]:
        """The positions after this read: a chain read to its end is complete up to its end
        for every key whose anchor is known and that showed no attempt (a key someone tried
        to use is read again until that is acted on)."""
        out = {name: dict(keys) for name, keys in self.positions.items()}
        for chain in self.chains.values():
            if not chain.done:
                continue
            for key in self.keys:
                if self.since(key) is None or self.attempts(key):
                    continue
                out.setdefault(chain.name, {})[key.arn] = chain.end
        return out

    def summary(self) -> str:
        events = sum(c.events for c in self.chains.values())
        return (f"{self.calls} LookupEvents call(s) over {len(self.chains)} event name(s), "
                f"{events} event(s)")


def _why(chain: Chain) -> str:
    if chain.error == "budget":
        back = f" (read back to {chain.reached:%Y-%m-%d %H:%M:%S}Z)" if chain.reached else ""
        return (f"the {chain.name} events could not be read to the end within the watch "
                f"budget{back}: {chain.events} read in {chain.pages} page(s)")
    if chain.name == LOG_CHAIN and chain.error == "budget":
        return (f"the log group could not be read to the end within the watch budget: "
                f"{chain.events} event(s) read in {chain.pages} page(s)")
    if chain.name == LOG_CHAIN and chain.error is not None:
        return f"FilterLogEvents on the log group failed ({chain.error})"
    if chain.error is None:
        return f"the {chain.name} events were not read to the end yet"
    if chain.error in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
        return f"no permission to read CloudTrail ({chain.error} on LookupEvents {chain.name})"
    return f"LookupEvents {chain.name} failed ({chain.error}) after {chain.pages} page(s)"


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


def scheduled_bound(deletion_date: datetime | None, now: datetime) -> datetime:
    """The earliest a key pending deletion can have been scheduled: the longest window (30
    days) before its DeletionDate, one more day for good measure."""
    return (deletion_date or now) - timedelta(days=31)


def remembered(anchor: datetime | None, deletion_date: datetime | None) -> datetime | None:
    """A remembered anchor, if it can be the scheduling behind this DeletionDate (7 to 30
    days before it): anything else is another scheduling's, or nobody's."""
    if anchor is None or deletion_date is None:
        return None
    if deletion_date - timedelta(days=31) <= anchor <= deletion_date - timedelta(days=7) \
            + timedelta(minutes=1):
        return anchor
    return None


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
