"""The planner's view of "cancelled", "new" and orphaned material (issue 17): pure cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ksdelete.models import (
    ApprovedStore,
    CancelEvent,
    CancelTrail,
    ConnectionState,
    Context,
    Key,
    KeyStore,
    Marks,
    PlanOptions,
    RefusalReason,
    Snapshot,
    StoreType,
    Usage,
    Watch,
)
from ksdelete.planner import cancelled_keys, plan

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STORE = "cks-1234567890abcdef0"


def store(state: ConnectionState = ConnectionState.CONNECTED) -> KeyStore:
    return KeyStore(STORE, "payments", StoreType.CLOUDHSM, state)


def key(n: int, state: str = "Enabled", days: int | None = None) -> Key:
    """As discovery reads it: never used, no grants; a pending key watched, no use seen."""
    pending = state == "PendingDeletion"
    return Key(id=f"k{n}", arn=f"arn:aws:kms:us-east-1:111122223333:key/k{n}", state=state,
               custom_key_store_id=STORE,
               deletion_date=NOW + timedelta(days=days) if days is not None else None,
               grants=None if pending else (),
               usage=None if pending else Usage(tracking_start=NOW - timedelta(days=200)),
               watch=Watch(since=NOW - timedelta(days=1)) if pending else None)


SINCE = NOW - timedelta(days=3)


def refusal(snap: Snapshot, ctx: Context, **options: object) -> RefusalReason | None:
    result = plan(snap, PlanOptions(**options), NOW, ctx)  # type: ignore[arg-type]
    return result.refusal.reason if result.refusal else None


def test_every_record_of_pending_makes_a_key_no_longer_pending_cancelled() -> None:
    disabled = key(1, "Disabled")
    snap = Snapshot(store(), (disabled, key(2, "PendingDeletion", 5)))
    def ids(s: Snapshot, c: Context) -> list[str]:
        return [k.id for k in cancelled_keys(s, c)]

    assert ids(snap, Context()) == []
    assert ids(snap, Context(pending_before={"k1": "2026-11-20T00:00:00+00:00"})) == ["k1"]
    assert ids(snap, Context(scheduled_before=frozenset({"k1"}))) == ["k1"]
    approved = ApprovedStore(STORE, "payments", StoreType.CLOUDHSM, frozenset({"k1", "k2"}),
                             frozenset({"k1"}))
    assert ids(snap, Context(approved=approved)) == ["k1"]
    trail = CancelTrail(SINCE, (CancelEvent("k1", "arn:aws:iam::1:user/owner", NOW),))
    assert ids(replace(snap, cancel_trail=trail), Context()) == ["k1"]
    # A pending key is never cancelled, whatever the records say.
    assert ids(snap, Context(pending_before={"k2": "x"})) == []


def test_a_mark_whose_scheduling_was_never_sent_is_no_cancel() -> None:
    marked = replace(key(1), marks=Marks(scheduled="2026-11-27T00:00:00Z prior=Enabled run=r1"))
    snap = Snapshot(store(), (marked,))
    assert [k.id for k in cancelled_keys(snap, Context())] == ["k1"]
    never = Context(unscheduled_marks=frozenset({("k1", "r1")}))
    assert cancelled_keys(snap, never) == []
    assert cancelled_keys(snap, Context(unscheduled_marks=frozenset({("k1", "r2")})))
    # A cancel mark is a cancel, whatever the journal says of the scheduling.
    both = replace(marked, marks=replace(marked.marks or Marks(), cancelled="t by=someone"))
    assert cancelled_keys(Snapshot(store(), (both,)), never)


def test_an_unreadable_trail_refuses_only_where_there_is_no_local_memory() -> None:
    snap = Snapshot(store(), (key(1),), cancel_trail=CancelTrail(SINCE, error="AccessDenied"))
    assert refusal(snap, Context()) is RefusalReason.CANCELLED_KEYS
    assert refusal(snap, Context(remembered=True)) is None
    assert refusal(snap, Context(interactive=True)) is None
    assert refusal(snap, Context(), on_use="ignore") is None
    verdicts = {v.gate: v for v in plan(snap, PlanOptions(on_use="ignore"), NOW).verdicts}
    assert verdicts["not_cancelled"].verdict == "waived"


def test_a_key_without_a_mark_in_a_marked_store_is_new_without_the_journal() -> None:
    marked = replace(key(1, "PendingDeletion", 5),
                     marks=Marks(scheduled="2026-11-27T00:00:00Z prior=Enabled run=r1"))
    snap = Snapshot(store(), (marked, key(2)))
    result = plan(snap, PlanOptions(), NOW, Context())
    assert result.refusal is not None
    assert result.refusal.reason is RefusalReason.UNPLANNED_KEYS
    assert result.refusal.key_ids == ("k2",)
    assert refusal(snap, Context(), include_new_keys=True) is None
    assert refusal(snap, Context(interactive=True)) is None  # a person sees it listed
    assert refusal(Snapshot(store(), (key(2),)), Context()) is None  # no mark: first time
    # A store whose marks are all cancels (`ksdelete cancel`) holds no confirmation in force.
    withdrawn = replace(key(1), marks=Marks(cancelled="2026-11-27T00:00:00Z by=someone"))
    assert refusal(Snapshot(store(), (withdrawn, key(2))), Context(interactive=True)) is None


def test_orphaned_material_refuses_until_the_waiver() -> None:
    gone = Snapshot(store(state=ConnectionState.DISCONNECTED), (), orphaned=("k1", "k2"))
    assert refusal(gone, Context()) is RefusalReason.ORPHANED_KEY_MATERIAL
    result = plan(gone, PlanOptions(allow_orphaned_key_material=True), NOW, Context())
    assert result.refusal is None
    assert {v.gate: v.verdict for v in result.verdicts}["material_deleted"] == "waived"
    assert refusal(replace(gone, orphaned=()), Context()) is None
    assert refusal(replace(gone, orphaned=None), Context()) is None


def test_cancels_plan_shows_every_step_it_takes() -> None:
    """`ksdelete cancel` is planned like the rest: the brake, the cancel marks, the store
    connected again (--connect) and the keys restored (--enable) are each a step."""
    from ksdelete.models import StepKind
    from ksdelete.planner import plan_cancel

    bare = plan_cancel("cks-1", ("k1", "k2"), detail="", enable=False, connect=False)
    assert [s.kind for s in bare.steps] == [StepKind.CANCEL_KEY_DELETION,
                                            StepKind.MARK_CANCELLED]
    assert bare.steps[1].key_ids == ("k1", "k2")
    full = plan_cancel("cks-1", ("k1",), detail="", enable=True, connect=True,
                       restore=("k1", "k3"))
    assert [s.kind for s in full.steps] == [StepKind.CANCEL_KEY_DELETION,
                                            StepKind.MARK_CANCELLED, StepKind.CONNECT_STORE,
                                            StepKind.ENABLE_KEYS]
    assert full.steps[-1].key_ids == ("k1", "k3")
