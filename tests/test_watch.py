"""The watch's reading of CloudTrail (pure: pages in, findings out; the pages from a fake)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ksdelete.errors import AccessDenied
from ksdelete.watch import DISABLED, SCHEDULED, USE_EVENTS, Sweep, Watched, is_for, remembered

ARN = "arn:aws:kms:eu-west-1:111122223333:key/k1"
OTHER = "arn:aws:kms:eu-west-1:111122223333:key/k2"
ME = "arn:aws:iam::111122223333:role/ksdelete"
APP = "arn:aws:iam::111122223333:role/app"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=3)


def record(name: str, hours: float, *, arn: str = ARN, error: str | None = None,
           caller: str = APP, event_id: str = "", resources: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "eventName": name, "eventTime": (T0 + timedelta(hours=hours)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "eventID": event_id or f"{name}-{arn[-2:]}-{hours}", "userIdentity": {"arn": caller},
    }
    if resources:
        out["resources"] = [{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": arn}]
    if error:
        message = (f"{arn} is pending deletion." if error != "AccessDeniedException"
                   else f"User: {caller} is not authorized to perform: kms:{name}")
        out.update(errorCode=error, errorMessage=message, responseElements=None)
    return out


class Trail:
    """LookupEvents by EventName over a list of records, `size` a page; `fail` makes the
    n-th page of a chain fail."""

    def __init__(self, records: list[dict[str, Any]], size: int = 50,
                 fail: dict[str, int] | None = None) -> None:
        self.records = sorted(records, key=lambda r: r["eventTime"], reverse=True)
        self.size = size
        self.fail = fail or {}
        self.calls: list[str] = []

    def __call__(self, name: str, start: datetime, end: datetime, token: str | None
                 ) -> tuple[list[dict[str, Any]], str | None]:
        self.calls.append(name)
        page = int(token or 0)
        if self.fail.get(name) == page:
            raise AccessDenied("denied", operation="LookupEvents",
                               aws_code="AccessDeniedException")
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        chain = [r for r in self.records if r["eventName"] == name
                 and start.strftime(stamp) <= r["eventTime"] <= end.strftime(stamp)]
        part = chain[page * self.size:(page + 1) * self.size]
        more = len(chain) > (page + 1) * self.size
        return part, str(page + 1) if more else None


def pending(arn: str = ARN, **extra: Any) -> Watched:
    return Watched(arn=arn, anchor=SCHEDULED, bound=T0 - timedelta(days=1), **extra)


FOREVER = float("inf")


def test_attempts_after_the_scheduling_count_whatever_chain_they_are_in() -> None:
    trail = Trail([
        record("Decrypt", 50, error="KMSInvalidStateException"),
        record("CreateGrant", 49, error="KMSInvalidStateException"),
        record("Encrypt", 48, error="AccessDeniedException"),  # not about the key's state
        record("Decrypt", 47),  # a success (another key's ciphertext? still not a failure)
        record("Decrypt", 46, arn=OTHER, error="KMSInvalidStateException"),  # not watched
        record(SCHEDULED, 40),
        record(SCHEDULED, 41, error="KMSInvalidStateException", caller=ME),  # ksdelete's own
        record("GenerateDataKey", 30, error="KMSInvalidStateException"),  # before it
        record(SCHEDULED, 10),
    ])
    sweep = Sweep([pending()], NOW, own_caller=ME)
    sweep.read(trail, deadline=FOREVER)
    watch = sweep.watch(sweep.keys[0])
    assert watch.since == T0 + timedelta(hours=40) and watch.error is None
    assert [(a.operation, a.caller) for a in watch.attempts] == [
        ("Decrypt", APP), ("CreateGrant", APP)]
    # One chain per event name, whatever the number of keys.
    assert sorted(trail.calls) == sorted([*USE_EVENTS, SCHEDULED])


def test_a_record_without_resources_is_matched_by_its_error_message() -> None:
    bare = record("Encrypt", 50, error="KMSInvalidStateException", resources=False)
    assert is_for(bare, ARN) and not is_for(bare, OTHER)
    sweep = Sweep([pending()], NOW)
    sweep.read(Trail([bare, record(SCHEDULED, 40)]), deadline=FOREVER)
    assert [a.operation for a in sweep.watch(sweep.keys[0]).attempts] == ["Encrypt"]


def test_own_caller_is_left_out_only_where_ksdelete_itself_calls() -> None:
    """ksdelete never calls Decrypt: a failed Decrypt with its caller's ARN is someone using
    the same credentials, and counts."""
    sweep = Sweep([pending()], NOW, own_caller=ME)
    sweep.read(Trail([record("Decrypt", 50, error="KMSInvalidStateException", caller=ME),
                      record(SCHEDULED, 40)]), deadline=FOREVER)
    assert [a.caller for a in sweep.watch(sweep.keys[0]).attempts] == [ME]


def test_first_round_only_stops_at_the_first_attempt_and_a_later_failure_keeps_it() -> None:
    many = [record("Decrypt", 50 + i / 100, error="KMSInvalidStateException") for i in range(200)]
    trail = Trail([*many, record(SCHEDULED, 40)], fail={"Decrypt": 1})
    sweep = Sweep([pending()], NOW)
    sweep.read(trail, deadline=FOREVER, first_round_only=True)
    assert len(trail.calls) == len(USE_EVENTS) + 1  # one round, one page each
    assert sweep.watch(sweep.keys[0]).attempts  # acted on at once
    sweep.read(trail, deadline=FOREVER)  # the rest: page 2 of Decrypt fails
    watch = sweep.watch(sweep.keys[0])
    assert len(watch.attempts) == 50 and watch.error is None  # what was found is kept


def test_a_chain_cut_short_leaves_the_keys_it_did_not_cover_blind() -> None:
    old = record("Decrypt", 1, arn=OTHER)
    busy = [record("Decrypt", 61 + i / 10, arn=OTHER) for i in range(120)]  # 61 h to 73 h
    keys = [pending(), pending(OTHER)]
    records = [*busy, old, record(SCHEDULED, 40), record(SCHEDULED, 65, arn=OTHER)]
    failing = Sweep(keys, NOW)
    failing.read(Trail(records, fail={"Decrypt": 1}), deadline=FOREVER)
    watch = failing.watch(failing.keys[0])
    assert watch.attempts == () and "no permission" in str(watch.error)
    assert "AccessDeniedException on LookupEvents Decrypt" in str(watch.error)
    ticks = iter(range(1000))
    budget = Sweep(keys, NOW)
    budget.read(Trail(records), deadline=8, clock=lambda: next(ticks))
    watch = budget.watch(budget.keys[0])
    assert "could not be read to the end within the watch budget" in str(watch.error)
    # The other key was scheduled at hour 65: the part read (back to hour 63) covers it.
    assert budget.watch(budget.keys[1]).error is None


def test_positions_shorten_the_next_read_and_only_for_seen_keys() -> None:
    trail = Trail([record(SCHEDULED, 40), record("Decrypt", 20, error="DisabledException")])
    first = Sweep([pending()], NOW)
    first.read(trail, deadline=FOREVER)
    positions = first.new_positions()
    assert positions["Decrypt"][ARN] == NOW
    later = NOW + timedelta(days=1)
    again = Sweep([pending(since=T0 + timedelta(hours=40))], later, positions=positions)
    assert {c.start for c in again.chains.values()} == {NOW - timedelta(hours=1)}
    # A position in the future is nobody's; a missing one reads from the anchor (or bound).
    future = {"Decrypt": {ARN: later + timedelta(days=5)}}
    odd = Sweep([pending(since=T0 + timedelta(hours=40))], later, positions=future)
    assert odd.chains["Decrypt"].start == T0 + timedelta(hours=40)
    assert odd.chains["Encrypt"].start == T0 + timedelta(hours=40)
    # A key someone tried to use, or one not seen yet, gets no position.
    used = Sweep([pending()], NOW)
    used.read(Trail([record(SCHEDULED, 40), record("Decrypt", 41, error="DisabledException")]),
              deadline=FOREVER)
    assert used.new_positions() == {}


def test_a_key_scheduled_within_the_allowance_is_not_visible_yet_then_blind() -> None:
    just = Watched(ARN, SCHEDULED, bound=NOW - timedelta(days=31),
                   scheduled=NOW - timedelta(minutes=5))
    sweep = Sweep([just], NOW)
    sweep.read(Trail([]), deadline=FOREVER)
    watch = sweep.watch(just)
    assert watch.since is None and watch.late and watch.error is None
    later = Sweep([just], NOW + timedelta(hours=2))
    later.read(Trail([]), deadline=FOREVER)
    assert not later.watch(just).late


def test_a_soak_is_anchored_by_its_disable_key_event() -> None:
    soak = Watched(ARN, DISABLED, bound=T0)
    sweep = Sweep([soak], NOW)
    sweep.read(Trail([record("Encrypt", 30, error="DisabledException"), record(DISABLED, 20)]),
               deadline=FOREVER)
    watch = sweep.watch(soak)
    assert watch.since == T0 + timedelta(hours=20) and len(watch.attempts) == 1
    assert DISABLED in sweep.chains and SCHEDULED not in sweep.chains


def test_a_remembered_anchor_must_fit_the_deletion_date() -> None:
    deletion = T0 + timedelta(days=30)
    assert remembered(T0, deletion) == T0
    assert remembered(T0 + timedelta(days=25), deletion) is None  # 5 days before: not ours
    assert remembered(T0 - timedelta(days=2), deletion) is None
