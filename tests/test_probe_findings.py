"""The probe's verdicts from what it saw (pure): the report must tell a blind watch, late
delivery and a working watch apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


def test_a_watch_that_sees_the_attempt_as_aws_documents() -> None:
    found = findings(_obs(use=240.0, use_rn=None, anchor=200.0))
    verdicts = {f.name: f.verdict for f in found}
    assert verdicts["watch_sees_use_attempts"] == CONFIRMED
    assert verdicts["resource_name_indexes_use"] == REFUTED  # AWS's documented behaviour
    assert "4.0 min" in next(f.figure for f in found if f.name == "delivery_delay")
    assert exit_status(found) is ExitStatus.OK


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
