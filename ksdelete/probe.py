"""`ksdelete probe`: check, on the operator's own account and Region, what ksdelete relies on.

The watch (and the soak) rest on AWS behaviours that no public document fully settles: that
CloudTrail Event history finds a failed cryptographic call on a key pending deletion, by which
lookup, and how late. The probe makes one throwaway key, uses it once, schedules its deletion
with the shortest window, makes one cryptographic call that fails because the key is pending
deletion, and reads back what ksdelete reads. It never touches another key, and leaves its key
pending deletion.

`run` does the AWS calls (through the gateway); `findings` turns what it saw into verdicts (pure).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ksdelete import signals, watch
from ksdelete.errors import AwsError, ExitStatus, KsdeleteError
from ksdelete.models import Usage
from ksdelete.planner import MIN_WINDOW_DAYS

TAG = "ksdelete:probe"
# The events the watch reads by event name: the probe's failed call is one of them.
USE = "Encrypt"
ANCHOR = "ScheduleKeyDeletion"
# A page budget per lookup chain: the probe reads a few minutes of history; a chain longer
# than this (a busy account) is reported, not read to its end.
MAX_PAGES = 40
# How far before the probe key's creation the lookups start (clock skew between callers).
MARGIN = timedelta(minutes=5)

# The failure_code of a call on the pending key that did not fail (AWS is eventually
# consistent: right after ScheduleKeyDeletion a call may still succeed).
SUCCEEDED = "none: the call succeeded"

CONFIRMED, REFUTED, UNKNOWN, UNCONFIRMED = ("confirmed", "refuted", "could not tell",
                                            "still unconfirmed")


@dataclass
class Sighting:
    """One event the probe looks for through one lookup: when it happened, when AWS's clock
    first showed it through that lookup (None: not found)."""

    lookup: str
    event: str
    event_time: datetime | None = None
    seen_at: datetime | None = None

    @property
    def delay(self) -> float | None:
        if self.seen_at is None or self.event_time is None:
            return None
        return max(0.0, (self.seen_at - self.event_time).total_seconds())


@dataclass
class Observations:
    """What the probe did and saw (the JSON's `probe.observed`)."""

    key_id: str = ""
    key_arn: str = ""
    created_at: datetime | None = None
    used_at: datetime | None = None
    scheduled_at: datetime | None = None
    deletion_date: datetime | None = None
    failed_at: datetime | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    last_usage: Usage | None = None
    last_usage_error: str | None = None
    sightings: dict[str, Sighting] = field(default_factory=dict)
    waited: float = 0.0  # seconds of AWS's clock the probe waited for events
    lookup_error: str | None = None
    busy: bool = False  # a lookup chain was longer than MAX_PAGES
    stopped: str | None = None  # why the probe stopped before reading back, if it did


@dataclass(frozen=True)
class Finding:
    name: str
    verdict: str
    figure: str
    meaning: str


def _time(record: dict[str, Any]) -> datetime | None:
    text = record.get("eventTime")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _names_key(record: dict[str, Any], key_arn: str) -> bool:
    """The record is about the probe key, as the watch tells it (watch.is_for): a record the
    watch could not attribute to a key must not confirm that the watch sees it."""
    return watch.is_for(record, key_arn)


def _failed_use(record: dict[str, Any]) -> bool:
    """A failed call the watch counts as a use attempt (watch.USE_ERRORS)."""
    return record.get("eventName") == USE and record.get("errorCode") in watch.USE_ERRORS


def _anchor(record: dict[str, Any]) -> bool:
    return record.get("eventName") == ANCHOR and not record.get("errorCode")


Lookup = Callable[[tuple[str, str], datetime], Iterator[dict[str, Any]]]


class Probe:
    """The AWS side of the probe. `gateway` needs create_probe_key, encrypt,
    schedule_key_deletion, get_key_last_usage, lookup_events and server_now."""

    def __init__(self, gateway: Any, *, note: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.gateway = gateway
        self.note = note
        self.sleep = sleep
        self.monotonic = monotonic
        self.obs = Observations()

    def run(self, *, run_id: str, max_wait: float, poll: float,
            record: Callable[[str, str | None], Any]) -> Observations:
        """Create, use, schedule, fail, read back. `record(operation, key_id)` is the journal's
        context manager for each change. Stops reading back after `max_wait` seconds (of AWS's
        clock, or of this machine's, whichever passes first)."""
        obs = self.obs
        gw = self.gateway
        try:
            # Ctrl-C while CreateKey is in flight is held until the key's ID is known, so
            # that the `finally` below schedules it (it used to be left Enabled, unnamed).
            with signals.held(), record("CreateKey", None) as outcome:
                key = gw.create_probe_key(
                    f"ksdelete probe {run_id}: a throwaway key to check CloudTrail; pending "
                    "deletion, safe to leave", {TAG: run_id})
                obs.key_id, obs.key_arn = key.id, key.arn
                outcome.detail = {"key_id": key.id, "key_arn": key.arn}
            obs.created_at = gw.server_now()
            self.note(f"created the probe key {key.id}")
            with record("Encrypt", key.id):
                gw.encrypt(key.id, b"ksdelete probe")
            obs.used_at = gw.server_now()
        finally:
            # Whatever happened, the probe key does not outlive the probe.
            if obs.key_id:
                with signals.held(), record("ScheduleKeyDeletion", obs.key_id):
                    called = gw.schedule_key_deletion(obs.key_id, MIN_WINDOW_DAYS)
                    obs.scheduled_at = gw.server_now()
                deletion = called.response.get("DeletionDate")
                obs.deletion_date = deletion if isinstance(deletion, datetime) else None
                self.note(f"scheduled its deletion ({MIN_WINDOW_DAYS}-day window)")
        try:
            gw.encrypt(obs.key_id, b"ksdelete probe")
            obs.failure_code = SUCCEEDED
        except AwsError as exc:
            obs.failed_at = gw.server_now()
            obs.failure_code, obs.failure_message = exc.aws_code, exc.what
        self.note(f"made one {USE} call on it, pending deletion: {obs.failure_code}")
        self._read_back(max_wait, poll)
        return obs

    def _read_back(self, max_wait: float, poll: float) -> None:
        obs = self.obs
        wanted = {
            "use_by_event_name": Sighting(f"EventName={USE}", f"failed {USE}"),
            "use_by_resource_name": Sighting("ResourceName=<key ARN>", f"failed {USE}"),
            "anchor_by_event_name": Sighting(f"EventName={ANCHOR}", ANCHOR),
            "anchor_by_resource_name": Sighting("ResourceName=<key ARN>", ANCHOR),
        }
        obs.sightings = wanted
        start_aws = self.gateway.server_now()
        start_real = self.monotonic()
        since = (obs.created_at or start_aws) - MARGIN
        self.note(f"reading CloudTrail and GetKeyLastUsage back (at most {max_wait:.0f} s)")
        while True:
            now = self.gateway.server_now()
            try:
                self._look(since, now)
                if obs.last_usage is None or obs.last_usage.last_used is None:
                    obs.last_usage = self.gateway.get_key_last_usage(obs.key_id)
                    obs.last_usage_error = None
            except KsdeleteError as exc:
                obs.lookup_error = str(exc)
            waited = (self.gateway.server_now() - start_aws).total_seconds()
            obs.waited = waited
            found = all(s.seen_at for s in wanted.values())
            used = obs.last_usage is not None and obs.last_usage.last_used is not None
            if (found and used) or waited >= max_wait \
                    or self.monotonic() - start_real >= max_wait:
                return
            self.sleep(poll)

    def _look(self, since: datetime, now: datetime) -> None:
        obs = self.obs
        s = obs.sightings
        # Each chain ends a few minutes after the probe's own call (events carry the time of
        # the call, however late they arrive): a busy account's later calls neither bury it
        # below the page budget nor cost a growing number of pages per poll.
        used = min(now, (obs.failed_at or now) + MARGIN)
        anchored = min(now, (obs.scheduled_at or now) + MARGIN)
        chains: list[tuple[tuple[str, str], datetime,
                           list[tuple[str, Callable[[dict[str, Any]], bool]]]]]
        chains = [
            (("EventName", USE), used, [("use_by_event_name", _failed_use)]),
            (("EventName", ANCHOR), anchored, [("anchor_by_event_name", _anchor)]),
            (("ResourceName", obs.key_arn), max(used, anchored),
             [("use_by_resource_name", _failed_use), ("anchor_by_resource_name", _anchor)]),
        ]
        for attribute, end, looking in chains:
            if all(s[name].seen_at for name, _ in looking):
                continue
            pages = 0
            for index, record in enumerate(self.gateway.lookup_events(attribute, since, end)):
                pages = index // 50 + 1
                if pages > MAX_PAGES:
                    obs.busy = True
                    break
                if not _names_key(record, obs.key_arn):
                    continue
                for name, match in looking:
                    if s[name].seen_at is None and match(record):
                        s[name].event_time = _time(record)
                        s[name].seen_at = now


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def findings(obs: Observations) -> list[Finding]:
    """Each assumption, its verdict, the measured figure and what it means here (pure)."""
    s = obs.sightings
    use_en, use_rn = s.get("use_by_event_name"), s.get("use_by_resource_name")
    anchor_en, anchor_rn = s.get("anchor_by_event_name"), s.get("anchor_by_resource_name")
    # The watch is judged by the lookup it really reads (watch.USE_LOOKUP): a failed call
    # found by another lookup says nothing about what the watch sees.
    by_name = watch.USE_LOOKUP == "EventName"
    use, anchor = (use_en, anchor_en) if by_name else (use_rn, anchor_rn)
    out: list[Finding] = []
    _watch_finding(obs, use, anchor, out)
    _delay_finding(use, anchor, out)
    _lookup_findings(s, by_name, out)
    _error_and_usage_findings(obs, out)
    return out


def _watch_finding(obs: Observations, use: Sighting | None, anchor: Sighting | None,
                   out: list[Finding]) -> None:
    """Whether the watch sees a failed call on a pending key here."""
    delivered = anchor is not None and anchor.seen_at is not None
    if use is not None and use.seen_at:
        out.append(Finding(
            "watch_sees_use_attempts", CONFIRMED,
            f"{use.lookup} found the failed call after {_fmt(use.delay)}",
            f"the watch can see use attempts here; events arrived after {_fmt(use.delay)}"))
    elif obs.failure_code is None or obs.failure_code == SUCCEEDED:
        # No failed call was made: there was nothing to find, so nothing is refuted.
        out.append(Finding(
            "watch_sees_use_attempts", UNKNOWN,
            f"the {USE} call on the pending key did not fail ({obs.failure_code or 'not made'})",
            "there was no failed call to look for (AWS may still have served the key right "
            "after ScheduleKeyDeletion): run the probe again"))
    elif delivered and not obs.busy and obs.lookup_error is None:
        out.append(Finding(
            "watch_sees_use_attempts", REFUTED,
            f"{ANCHOR} arrived after {_fmt(anchor.delay if anchor else None)}; the failed "
            f"{USE} was not found in {_fmt(obs.waited)}",
            "the watch cannot see use attempts on this account and Region: its check "
            "no_use_while_pending proves nothing here; rely on --unused-for and a soak "
            "reviewed by a person, or run the probe again with a longer --max-wait"))
    else:
        why = obs.lookup_error or ("a lookup chain was too long to read (a busy account)"
                                   if obs.busy else f"nothing arrived in {_fmt(obs.waited)}")
        out.append(Finding("watch_sees_use_attempts", UNKNOWN, why,
                           "run the probe again with a longer --max-wait (CloudTrail may be "
                           "late), or grant cloudtrail:LookupEvents"))


def _delay_finding(use: Sighting | None, anchor: Sighting | None, out: list[Finding]) -> None:
    delays = [x.delay for x in (use, anchor) if x is not None and x.delay is not None]
    if delays:
        out.append(Finding(
            "delivery_delay", CONFIRMED,
            f"{_fmt(max(delays))} at most (failed {USE}: {_fmt(use.delay if use else None)}, "
            f"{ANCHOR}: {_fmt(anchor.delay if anchor else None)})",
            "the watch's allowance for late events must be longer than this on this account"))
    else:
        out.append(Finding("delivery_delay", UNKNOWN, "no event arrived",
                           "nothing measured"))


def _lookup_findings(s: dict[str, Sighting], by_name: bool, out: list[Finding]) -> None:
    """What each lookup (EventName, ResourceName) finds."""
    use_en, use_rn = s.get("use_by_event_name"), s.get("use_by_resource_name")
    anchor_en, anchor_rn = s.get("anchor_by_event_name"), s.get("anchor_by_resource_name")
    if anchor_en is not None and anchor_rn is not None:
        both = bool(anchor_en.seen_at and anchor_rn.seen_at)
        out.append(Finding(
            "anchor_visible", CONFIRMED if both else UNKNOWN,
            f"{ANCHOR} found by EventName: {'yes' if anchor_en.seen_at else 'no'}, by "
            f"ResourceName: {'yes' if anchor_rn.seen_at else 'no'}",
            "the watch can prove it reads a key's history (its own scheduling)" if both
            else "the watch's proof that it sees a key could not be checked"))
    if use_rn is not None:
        relies = "ksdelete's watch reads by it" if not by_name else "ksdelete does not rely on it"
        if use_rn.seen_at:
            verdict, meaning = CONFIRMED, ("ResourceName finds failed cryptographic calls "
                                           f"here too ({relies})")
        elif use_en is not None and use_en.seen_at:
            verdict, meaning = REFUTED, ("ResourceName does not find failed cryptographic "
                                         f"calls, as AWS documents ({relies})")
        else:
            verdict, meaning = UNKNOWN, "nothing to compare with"
        out.append(Finding("resource_name_indexes_use", verdict,
                           f"{use_rn.lookup}: {'found' if use_rn.seen_at else 'not found'}",
                           meaning))


def _error_and_usage_findings(obs: Observations, out: list[Finding]) -> None:
    """The error a pending key's use gets, and what GetKeyLastUsage and IAM tell."""
    pending_words = obs.failure_message is not None and "pending deletion" in \
        obs.failure_message and obs.failure_message.startswith(obs.key_arn)
    out.append(Finding(
        "use_error_on_pending_key", CONFIRMED if pending_words else UNKNOWN,
        f"{obs.failure_code}: {obs.failure_message or '-'}",
        "a call on a key pending deletion fails with an error that names the key and says "
        "'pending deletion' (what the watch and AWS's own alarm match)" if pending_words
        else "the error did not say 'pending deletion': the watch may not count it"))
    usage = obs.last_usage
    if usage is not None and usage.last_used is not None:
        out.append(Finding(
            "last_usage_records_use", CONFIRMED,
            f"{usage.operation} at {usage.last_used.isoformat()}",
            "GetKeyLastUsage records a standard key's use here (the gate not_recently_used)"))
    else:
        out.append(Finding(
            "last_usage_records_use", UNKNOWN,
            obs.last_usage_error or f"no use recorded in {_fmt(obs.waited)} (AWS: up to 1 h)",
            "GetKeyLastUsage may record the use later; not_recently_used treats a key with "
            "no recorded use as unused only past its tracking start"))
    out.append(Finding(
        "last_usage_custom_key_stores", UNCONFIRMED, "a standard key cannot show it",
        "whether GetKeyLastUsage tracks keys in custom key stores is not documented"))
    out.append(Finding(
        "trailing_days_never_used", UNCONFIRMED, "not tested (needs an IAM condition)",
        "how kms:TrailingDaysWithoutKeyUsage counts a never-used key is not documented"))


def exit_status(found: list[Finding]) -> ExitStatus:
    """0: the watch can be trusted here; 4: it cannot; 3: not yet known (run again)."""
    verdict = next(f.verdict for f in found if f.name == "watch_sees_use_attempts")
    return {CONFIRMED: ExitStatus.OK, REFUTED: ExitStatus.REFUSED}.get(verdict,
                                                                       ExitStatus.PENDING)


def as_json(obs: Observations, found: list[Finding]) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "key_id": obs.key_id or None, "key_arn": obs.key_arn or None,
        "deletion_date": iso(obs.deletion_date),
        "findings": [{"name": f.name, "verdict": f.verdict, "figure": f.figure,
                      "meaning": f.meaning} for f in found],
        "observed": {
            "created_at": iso(obs.created_at), "used_at": iso(obs.used_at),
            "scheduled_at": iso(obs.scheduled_at), "failed_at": iso(obs.failed_at),
            "failure_code": obs.failure_code, "failure_message": obs.failure_message,
            "waited_seconds": round(obs.waited, 1), "busy": obs.busy,
            "lookup_error": obs.lookup_error,
            "sightings": {name: {"lookup": x.lookup, "event": x.event,
                                 "event_time": iso(x.event_time), "seen_at": iso(x.seen_at),
                                 "delay_seconds": x.delay}
                          for name, x in obs.sightings.items()},
        },
        "cost": "one KMS key, pending deletion for at most 7 days",
    }


def lines(obs: Observations, found: list[Finding]) -> list[str]:
    """The report a person reads at a glance: the answer first, then each assumption."""
    watch = next(f for f in found if f.name == "watch_sees_use_attempts")
    out = [f"probe: {watch.meaning}", "",
           f"{'verdict':<18} {'assumption':<30} figure"]
    out += [f"{f.verdict:<18} {f.name:<30} {f.figure}" for f in found]
    out.append("")
    out += [f"{f.name}: {f.meaning}" for f in found
            if f.verdict in (CONFIRMED, REFUTED, UNKNOWN) and f is not watch]
    if obs.key_id:
        out.append(f"the probe key {obs.key_id} is pending deletion"
                   + (f" (gone after {obs.deletion_date:%Y-%m-%d})" if obs.deletion_date
                      else "") + "; nothing else was created, used or scheduled")
    return out
