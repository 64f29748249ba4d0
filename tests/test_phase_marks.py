"""Data, not prose: a store's phase is a value (read as its text), and ksdelete's marks on
keys are written and read by one codec."""

from __future__ import annotations

from datetime import UTC, datetime

from ksdelete import marks
from ksdelete.models import (
    ConnectionState,
    Key,
    KeyStore,
    Marks,
    Refusal,
    RefusalReason,
    Snapshot,
    StoreType,
)
from ksdelete.phase import PhaseName, StorePhase, phase_name
from ksdelete.planner import phase_of

STORE = KeyStore("cks-1", "target", StoreType.CLOUDHSM, ConnectionState.CONNECTED)
WHEN = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def key(key_id: str, state: str = "Enabled", deletion: datetime | None = None) -> Key:
    return Key(key_id, f"arn:aws:kms:us-east-1:111122223333:key/{key_id}", state, "cks-1",
               deletion_date=deletion)


def test_a_phase_carries_its_counts_dates_and_reason() -> None:
    snap = Snapshot(STORE, (key("a", "PendingDeletion", WHEN), key("b")))
    phase = phase_of(snap, None)[1]
    assert isinstance(phase, StorePhase)
    assert (phase.name, phase.keys, phase.pending, phase.earliest_deletion) == (
        PhaseName.KEYS_NOT_SCHEDULED, 2, 1, WHEN)
    assert phase == "keys-not-scheduled 1/2"
    refused = phase_of(snap, Refusal(RefusalReason.KEYS_APPEARED, "no"))[1]
    assert (refused.name, refused.reason, str(refused)) == (
        PhaseName.REFUSED, "keys-appeared", "refused (keys-appeared)")
    # A phase written down before (a journal's Report line) is told by its first word.
    assert phase_name("keys-pending 3/3, earliest deletion -") == PhaseName.KEYS_PENDING
    assert phase_name(refused) == PhaseName.REFUSED


def test_marks_round_trip_through_the_codec() -> None:
    when = marks.stamp(WHEN)
    tags = {marks.SCHEDULED_TAG: marks.scheduled(when, prior="Enabled", run_id="r1"),
            marks.DISABLED_TAG: marks.disabled(when, prior="Disabled", days=7, run_id="r1"),
            marks.CANCELLED_TAG: marks.restored(
                marks.cancelled(when, by="arn:aws:iam::1:user/x", watch="Decrypt"), when)}
    read = Marks.from_tags(tags)
    assert read.field("prior") == "Disabled"  # the soak's, first: the state before anything
    assert read.field("run") == "r1" and read.soak_days == 7 and read.disabled_at == WHEN
    assert read.cancelled is not None and marks.is_restored(read.cancelled)
    assert marks.field(read.cancelled, "watch") == "Decrypt"
    assert marks.parse_time(marks.time_text(read.cancelled)) == WHEN
    assert all(v == marks.tag_value(v) for v in tags.values())  # AWS accepts them as written
