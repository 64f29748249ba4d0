"""The watch's reading of CloudTrail records (pure: records in, findings out)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ksdelete.models import Attempt, Watch
from ksdelete.watch import merge, read_trail

ARN = "arn:aws:kms:eu-west-1:111122223333:key/k1"
OTHER = "arn:aws:kms:eu-west-1:111122223333:key/k2"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(name: str, hours: float, *, arn: str = ARN, error: str | None = None,
           caller: str = "arn:aws:iam::111122223333:role/app", event_id: str = ""
           ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "eventName": name, "eventTime": (T0 + timedelta(hours=hours)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "eventID": event_id or f"{name}-{hours}", "userIdentity": {"arn": caller},
        "resources": [{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": arn}],
    }
    if error:
        out.update(errorCode=error, errorMessage=f"{arn} is pending deletion.",
                   responseElements=None)
    return out


def test_attempts_after_the_latest_scheduling_count_and_earlier_ones_do_not() -> None:
    newest_first = [
        record("Decrypt", 50, error="KMSInvalidStateException"),
        record("Encrypt", 49, error="DisabledException"),
        record("Decrypt", 48, error="AccessDeniedException"),  # not about the key's state
        record("DescribeKey", 47),
        record("Decrypt", 46, arn=OTHER, error="KMSInvalidStateException"),  # another key
        record("ScheduleKeyDeletion", 40),
        record("Decrypt", 30, error="KMSInvalidStateException"),  # before this scheduling
        record("ScheduleKeyDeletion", 10),
    ]
    watch = read_trail(newest_first, ARN)
    assert watch.since == T0 + timedelta(hours=40)
    assert [(a.operation, a.error_code) for a in watch.attempts] == [
        ("Decrypt", "KMSInvalidStateException"), ("Encrypt", "DisabledException")]
    assert watch.attempts[0].caller == "arn:aws:iam::111122223333:role/app"


def test_a_failed_scheduling_is_not_the_anchor_and_no_anchor_means_blind() -> None:
    watch = read_trail([record("ScheduleKeyDeletion", 5, error="KMSInvalidStateException")], ARN)
    assert watch.since is None
    assert read_trail([], ARN).since is None


def test_the_key_is_matched_by_arn_in_resources_or_the_response() -> None:
    by_response = {"eventName": "ScheduleKeyDeletion", "eventTime": "2026-11-01T00:00:00Z",
                   "responseElements": {"keyId": ARN}}
    assert read_trail([by_response], ARN).since == T0
    assert read_trail([json.loads(json.dumps(by_response))], OTHER).since is None


def test_merge_keeps_attempts_after_the_newest_anchor_once_each() -> None:
    a1 = Attempt("Decrypt", "app", T0 + timedelta(hours=2), "KMSInvalidStateException",
                 event_id="e1")
    a2 = Attempt("Decrypt", "app", T0 + timedelta(hours=5), "KMSInvalidStateException",
                 event_id="e2")
    earlier = Watch(since=T0, attempts=(a1,))
    assert merge(earlier, Watch(since=None, attempts=(a2, a1))).attempts == (a2, a1)
    rescheduled = merge(earlier, Watch(since=T0 + timedelta(hours=3), attempts=()))
    assert rescheduled.attempts == () and rescheduled.since == T0 + timedelta(hours=3)


def test_an_attempt_in_the_same_second_as_the_scheduling_counts_in_any_order() -> None:
    """eventTime has one-second resolution and LookupEvents does not promise an order within
    a second: an attempt in the scheduling's second may be listed after it, and a later
    reading (merge) must not drop it either."""
    used = record("Decrypt", 40, error="KMSInvalidStateException")
    anchor = record("ScheduleKeyDeletion", 40)
    before = record("Decrypt", 39, error="KMSInvalidStateException")
    for newest_first in ([used, anchor], [anchor, used, before]):
        watch = read_trail(newest_first, ARN)
        assert watch.since == T0 + timedelta(hours=40)
        assert [a.time for a in watch.attempts] == [T0 + timedelta(hours=40)]
        again = merge(Watch(since=watch.since), watch)
        assert [a.time for a in again.attempts] == [T0 + timedelta(hours=40)]
