"""The probe's verdicts from what it saw (pure): the report must tell a blind watch, late
delivery and a working watch apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ksdelete import watch
from ksdelete.errors import ExitStatus
from ksdelete.probe import (
    CONFIRMED,
    REFUTED,
    UNKNOWN,
    Observations,
    Sighting,
    exit_status,
    findings,
)

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _obs(*, use: float | None, use_rn: float | None, anchor: float | None,
         waited: float = 1200.0) -> Observations:
    def seen(after: float | None, lookup: str, event: str) -> Sighting:
        return Sighting(lookup, event, T0 if after is not None else None,
                        T0 + timedelta(seconds=after) if after is not None else None)

    return Observations(
        key_id="1234abcd-12ab-34cd-56ef-1234567890ab", key_arn=ARN, created_at=T0,
        failure_code="KMSInvalidStateException", failure_message=f"{ARN} is pending deletion.",
        waited=waited, sightings={
            "use_by_event_name": seen(use, "EventName=Encrypt", "failed Encrypt"),
            "use_by_resource_name": seen(use_rn, "ResourceName=<key ARN>", "failed Encrypt"),
            "anchor_by_event_name": seen(anchor, "EventName=ScheduleKeyDeletion", "anchor"),
            "anchor_by_resource_name": seen(anchor, "ResourceName=<key ARN>", "anchor"),
        })


def _verdicts(obs: Observations) -> dict[str, str]:
    return {f.name: f.verdict for f in findings(obs)}


def test_a_watch_that_reads_by_event_name_sees_the_attempt_as_aws_documents(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "USE_LOOKUP", "EventName")
    found = findings(_obs(use=240.0, use_rn=None, anchor=200.0))
    verdicts = {f.name: f.verdict for f in found}
    assert verdicts["watch_sees_use_attempts"] == CONFIRMED
    assert verdicts["resource_name_indexes_use"] == REFUTED  # AWS's documented behaviour
    assert "4.0 min" in next(f.figure for f in found if f.name == "delivery_delay")
    assert exit_status(found) is ExitStatus.OK


def test_a_watch_that_reads_by_resource_name_is_blind_where_aws_is_as_documented(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ResourceName does not find the failed call, EventName does: a watch that read by
    ResourceName (as it did before 0.3) could not see use attempts; "confirmed" (exit 0) from
    the EventName lookup would have certified a blind watch."""
    monkeypatch.setattr(watch, "USE_LOOKUP", "ResourceName")
    found = findings(_obs(use=240.0, use_rn=None, anchor=200.0))
    verdicts = {f.name: f.verdict for f in found}
    assert verdicts["watch_sees_use_attempts"] == REFUTED
    assert verdicts["resource_name_indexes_use"] == REFUTED
    assert exit_status(found) is ExitStatus.REFUSED


def test_an_account_where_resource_name_finds_crypto_events_too() -> None:
    verdicts = _verdicts(_obs(use=5.0, use_rn=5.0, anchor=5.0))
    assert verdicts["resource_name_indexes_use"] == CONFIRMED
    assert verdicts["watch_sees_use_attempts"] == CONFIRMED


def test_late_delivery_is_not_blindness() -> None:
    found = findings(_obs(use=None, use_rn=None, anchor=None, waited=600.0))
    assert {f.name: f.verdict for f in found}["watch_sees_use_attempts"] == UNKNOWN
    assert exit_status(found) is ExitStatus.PENDING


def test_a_blind_watch_is_refuted_once_other_events_arrive() -> None:
    found = findings(_obs(use=None, use_rn=None, anchor=30.0))
    assert {f.name: f.verdict for f in found}["watch_sees_use_attempts"] == REFUTED
    assert exit_status(found) is ExitStatus.REFUSED


def test_a_call_on_the_pending_key_that_succeeded_refutes_nothing() -> None:
    """Right after ScheduleKeyDeletion a call can still succeed (AWS is eventually
    consistent): then there was no failed call to find, and "the watch cannot see use
    attempts" (exit 4) was a verdict on no evidence."""
    obs = _obs(use=None, use_rn=None, anchor=30.0)
    obs.failure_code, obs.failure_message, obs.failed_at = "none: the call succeeded", None, None
    found = findings(obs)
    assert {f.name: f.verdict for f in found}["watch_sees_use_attempts"] == UNKNOWN
    assert exit_status(found) is ExitStatus.PENDING


def test_the_probe_counts_only_records_the_watch_itself_would_count() -> None:
    """The probe matched a failed call by its request parameters too, and any error; the
    watch (watch.is_for, watch.USE_ERRORS) does not. A record the watch cannot attribute to
    the key, or a failure it does not count, confirmed the watch."""
    from collections.abc import Iterator
    from typing import Any

    from ksdelete.models import Usage
    from ksdelete.probe import Probe

    key_id = ARN.rsplit("/", 1)[-1]
    records: list[dict[str, Any]] = [
        # A failed Encrypt named only by its request parameters: the watch cannot tell which
        # key it was (no resources[].ARN, no error message that starts with the ARN).
        {"eventName": "Encrypt", "eventTime": "2026-12-03T10:00:05Z",
         "errorCode": "KMSInvalidStateException", "errorMessage": "The key is pending deletion.",
         "requestParameters": {"keyId": key_id}},
        # A failure the watch does not count as a use attempt (throttled).
        {"eventName": "Encrypt", "eventTime": "2026-12-03T10:00:06Z",
         "errorCode": "ThrottlingException", "resources": [{"ARN": ARN}]},
        {"eventName": "ScheduleKeyDeletion", "eventTime": "2026-12-03T10:00:04Z",
         "resources": [{"ARN": ARN}]},
    ]

    class Trail:
        def server_now(self) -> datetime:
            return T0 + timedelta(minutes=1)

        def lookup_events(self, attribute: tuple[str, str], start: datetime,
                          end: datetime | None = None) -> Iterator[dict[str, Any]]:
            return iter(records)

        def get_key_last_usage(self, key: str) -> Usage:
            return Usage(last_used=None)

    probe = Probe(Trail(), note=lambda text: None, sleep=lambda s: None)
    probe.obs.key_id, probe.obs.key_arn, probe.obs.created_at = key_id, ARN, T0
    probe.obs.failure_code = "KMSInvalidStateException"
    probe.obs.failure_message = f"{ARN} is pending deletion."
    probe._read_back(max_wait=0, poll=0)
    assert probe.obs.sightings["anchor_by_event_name"].seen_at is not None
    assert probe.obs.sightings["use_by_event_name"].seen_at is None
    assert {f.name: f.verdict for f in findings(probe.obs)}["watch_sees_use_attempts"] \
        != CONFIRMED


def test_a_busy_account_does_not_bury_the_failed_call_under_later_events() -> None:
    """The probe read each chain from the key's creation up to now, newest first, with a
    40-page budget: in an account with 2,000+ Encrypt calls during the read-back, its own
    failed call sank below the budget on every poll ("a busy account", could not tell), and
    every poll spent 40 pages of the account's 2-a-second LookupEvents quota. The chains end
    a few minutes after the probe's own calls."""
    from collections.abc import Iterator
    from typing import Any

    from ksdelete.models import Usage
    from ksdelete.probe import Probe

    failed_at = T0 + timedelta(seconds=10)
    own = {"eventName": "Encrypt", "eventTime": "2026-12-03T10:00:10Z",
           "errorCode": "KMSInvalidStateException", "errorMessage": f"{ARN} is pending deletion.",
           "resources": [{"ARN": ARN}]}
    others = [{"eventName": "Encrypt", "resources": [{"ARN": ARN[:-4] + "ffff"}],
               "eventTime": (T0 + timedelta(minutes=10, seconds=i % 600)).strftime(
                   "%Y-%m-%dT%H:%M:%SZ")} for i in range(2500)]
    pages: list[int] = []

    class Busy:
        def server_now(self) -> datetime:
            return T0 + timedelta(minutes=25)

        def lookup_events(self, attribute: tuple[str, str], start: datetime,
                          end: datetime | None = None) -> Iterator[dict[str, Any]]:
            def when(r: dict[str, Any]) -> datetime:
                return datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00"))

            found = [r for r in (*others, own) if start <= when(r) <= (end or T0)
                     and attribute == ("EventName", "Encrypt")]
            found.sort(key=when, reverse=True)
            pages.append(len(found) // 50 + 1)
            return iter(found)

        def get_key_last_usage(self, key: str) -> Usage:
            return Usage(last_used=T0)

    probe = Probe(Busy(), note=lambda text: None, sleep=lambda s: None)
    probe.obs.key_id, probe.obs.key_arn, probe.obs.created_at = "k", ARN, T0
    probe.obs.scheduled_at, probe.obs.failed_at = failed_at, failed_at
    probe.obs.failure_code = "KMSInvalidStateException"
    probe._read_back(max_wait=0, poll=0)
    assert probe.obs.sightings["use_by_event_name"].seen_at is not None
    assert not probe.obs.busy and max(pages) <= 2, pages
