"""The planner is a pure function: table-driven cases and hypothesis invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ksdelete.models import (
    ApprovedStore,
    ConnectionState,
    Context,
    Identity,
    Key,
    KeyStore,
    Pin,
    PlanOptions,
    RefusalReason,
    Snapshot,
    Status,
    StepKind,
    StoreType,
    UndescribableKey,
)
from ksdelete.planner import plan

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STORE = "cks-1234567890abcdef0"


def store(kind: StoreType = StoreType.CLOUDHSM,
          state: ConnectionState = ConnectionState.CONNECTED) -> KeyStore:
    return KeyStore(STORE, "payments", kind, state)


def key(n: int, state: str = "Enabled", days: int | None = None) -> Key:
    return Key(
        id=f"k{n}", arn=f"arn:aws:kms:us-east-1:111122223333:key/k{n}", state=state,
        custom_key_store_id=STORE,
        deletion_date=NOW + timedelta(days=days) if days is not None else None,
        external_key_id=f"ext-{n}",
    )


def kinds(snapshot: Snapshot, **options: object) -> list[StepKind]:
    return [s.kind for s in plan(snapshot, PlanOptions(**options), NOW).steps]  # type: ignore[arg-type]


FULL = [StepKind.SCHEDULE_KEY_DELETION, StepKind.AWAIT_KEYS_DELETED, StepKind.DISCONNECT_STORE,
        StepKind.AWAIT_DISCONNECTED, StepKind.DELETE_STORE, StepKind.VERIFY_DELETED]


@pytest.mark.parametrize(
    ("snapshot", "options", "expected"),
    [
        (Snapshot(store(), (key(1), key(2))), {}, FULL),
        (Snapshot(store(), (key(1, "PendingDeletion", 5),)), {}, FULL[1:]),
        (Snapshot(store(), ()), {}, FULL[2:]),
        (Snapshot(store(state=ConnectionState.DISCONNECTED), ()), {}, FULL[4:]),
        (Snapshot(store(state=ConnectionState.DISCONNECTING), ()), {},
         [StepKind.AWAIT_DISCONNECTED, *FULL[4:]]),
        (Snapshot(store(state=ConnectionState.FAILED), ()), {}, FULL[2:]),
        # External key stores need not stay connected during the window.
        (Snapshot(store(StoreType.EXTERNAL, ConnectionState.DISCONNECTED), (key(1),)), {},
         [StepKind.SCHEDULE_KEY_DELETION, StepKind.AWAIT_KEYS_DELETED, *FULL[4:]]),
        (Snapshot(store(state=ConnectionState.DISCONNECTED), (key(1, "Unavailable"),)),
         {"connect": True},
         [StepKind.CONNECT_STORE, StepKind.AWAIT_CONNECTED, *FULL]),
        (Snapshot(store(state=ConnectionState.CONNECTING), (key(1),)), {"connect": True},
         [StepKind.AWAIT_CONNECTED, *FULL]),
        (Snapshot(store(state=ConnectionState.DISCONNECTED), (key(1, "Unavailable"),)),
         {"allow_orphaned_key_material": True},
         [StepKind.SCHEDULE_KEY_DELETION, StepKind.AWAIT_KEYS_DELETED, *FULL[4:]]),
    ],
)
def test_steps(snapshot: Snapshot, options: dict[str, bool], expected: list[StepKind]) -> None:
    assert kinds(snapshot, **options) == expected


def test_disconnected_cloudhsm_store_with_keys_is_refused() -> None:
    result = plan(Snapshot(store(state=ConnectionState.DISCONNECTED), (key(1, "Unavailable"),)),
                  PlanOptions(), NOW)
    assert result.steps == ()
    assert result.refusal is not None
    assert result.refusal.reason is RefusalReason.ORPHANED_KEY_MATERIAL
    assert "--connect" in result.refusal.message


def test_undescribable_keys_refuse_everything() -> None:
    bad = UndescribableKey("kx", "arn:kx", "AccessDeniedException", "denied", access_denied=True)
    result = plan(Snapshot(store(), (key(1),), (bad,)), PlanOptions(), NOW)
    assert result.steps == ()
    assert result.refusal is not None
    assert result.refusal.reason is RefusalReason.UNKNOWN_MEMBERSHIP
    assert result.refusal.key_ids == ("kx",)


def test_only_keys_not_yet_pending_are_scheduled() -> None:
    result = plan(Snapshot(store(), (key(1), key(2, "PendingDeletion", 3), key(3, "Disabled"))),
                  PlanOptions(pending_window_days=7), NOW)
    assert result.to_schedule == ("k1", "k3")


def test_earliest_gone_is_the_latest_deletion_date_or_the_new_window() -> None:
    pending = Snapshot(store(), (key(1, "PendingDeletion", 3), key(2, "PendingDeletion", 20)))
    assert plan(pending, PlanOptions(), NOW).earliest_gone == NOW + timedelta(days=20)
    mixed = Snapshot(store(), (key(1, "PendingDeletion", 3), key(2)))
    assert plan(mixed, PlanOptions(pending_window_days=7), NOW).earliest_gone == \
        NOW + timedelta(days=7)


def test_external_key_ids_are_listed_for_external_stores() -> None:
    result = plan(Snapshot(store(StoreType.EXTERNAL), (key(1), key(2))), PlanOptions(), NOW)
    assert result.external_key_ids == ("ext-1", "ext-2")
    assert any("external" in w for w in result.warnings)


@pytest.mark.parametrize("days", [6, 31])
def test_window_out_of_range_is_rejected(days: int) -> None:
    with pytest.raises(ValueError):
        plan(Snapshot(store(), ()), PlanOptions(pending_window_days=days), NOW)


# ---- invariants ------------------------------------------------------------------------------

STATES = ["Enabled", "Disabled", "PendingDeletion", "Unavailable"]


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    kind = draw(st.sampled_from(list(StoreType)))
    state = draw(st.sampled_from(list(ConnectionState)))
    n = draw(st.integers(0, 6))
    keys = tuple(
        key(i, s, draw(st.integers(1, 30)) if s == "PendingDeletion" else None)
        for i, s in enumerate(draw(st.lists(st.sampled_from(STATES), min_size=n, max_size=n)))
    )
    return Snapshot(store(kind, state), keys)


@given(snapshots(), st.booleans(), st.booleans(), st.integers(7, 30))
@settings(max_examples=300)
def test_a_plan_never_touches_a_key_outside_the_snapshot(
    snapshot: Snapshot, connect: bool, allow: bool, days: int
) -> None:
    result = plan(snapshot, PlanOptions(days, connect, allow), NOW)
    for step in result.steps:
        assert set(step.key_ids) <= snapshot.key_ids()
    pending = {k.id for k in snapshot.keys if k.pending}
    assert not set(result.to_schedule) & pending


@given(snapshots(), st.booleans(), st.integers(7, 30))
@settings(max_examples=300)
def test_applying_a_plan_and_replanning_converges(
    snapshot: Snapshot, connect: bool, days: int
) -> None:
    """Simulate AWS doing what each step asks; re-planning must reach 'delete' in few rounds."""
    options = PlanOptions(days, connect, allow_orphaned_key_material=False)
    current = snapshot
    for _ in range(4):
        result = plan(current, options, NOW)
        if result.refusal:
            # Only a disconnected CloudHSM store with keys and no --connect is refused here.
            assert not connect and current.store.type is StoreType.CLOUDHSM and current.keys
            return
        steps = [s.kind for s in result.steps]
        assert steps[-2:] == [StepKind.DELETE_STORE, StepKind.VERIFY_DELETED]
        if steps == [StepKind.DELETE_STORE, StepKind.VERIFY_DELETED]:
            return
        state = current.store.connection_state
        keys = current.keys
        if StepKind.AWAIT_CONNECTED in steps:
            state = ConnectionState.CONNECTED
        if StepKind.AWAIT_KEYS_DELETED in steps:
            keys = ()  # the window passed and KMS deleted them
        if StepKind.AWAIT_DISCONNECTED in steps:
            state = ConnectionState.DISCONNECTED
        current = Snapshot(KeyStore(STORE, "payments", current.store.type, state), keys)
    raise AssertionError(f"no convergence from {snapshot}")


def test_keys_not_covered_by_an_earlier_confirmation_are_refused() -> None:
    snapshot = Snapshot(store(), (key(1, "PendingDeletion", 5), key(2)))
    earlier = Context(confirmed_before=frozenset({"k1"}))
    refused = plan(snapshot, PlanOptions(), NOW, earlier)
    assert refused.refusal is not None
    assert refused.refusal.reason is RefusalReason.UNPLANNED_KEYS
    assert refused.refusal.key_ids == ("k2",)
    waived = plan(snapshot, PlanOptions(include_new_keys=True), NOW, earlier)
    assert waived.to_schedule == ("k2",)
    assert ("covered_by_confirmation", "waived") in {(v.gate, v.verdict) for v in waived.verdicts}
    # Keys of the confirmed plan that were not scheduled yet (an interrupted run) are fine.
    resumed = Context(confirmed_before=frozenset({"k1", "k2"}))
    assert plan(snapshot, PlanOptions(), NOW, resumed).to_schedule == ("k2",)


def test_an_aws_failure_while_describing_is_an_error_not_a_policy_problem() -> None:
    failed = UndescribableKey("kx", "arn:kx", "KMSInternalException", "boom")
    result = plan(Snapshot(store(), (key(1),), (failed,)), PlanOptions(), NOW)
    assert result.refusal is not None
    assert result.refusal.reason is RefusalReason.DESCRIBE_FAILED and result.refusal.error
    assert "KMSInternalException" in result.refusal.message
    assert "kms:DescribeKey" not in result.refusal.message
    assert result.status is Status.ERROR
    assert result.phase.startswith("membership-unknown")


def test_the_account_guard() -> None:
    snap = Snapshot(store(), (key(1),), identity=Identity("111122223333", "us-east-1", "arn:me"))
    ok = plan(snap, PlanOptions(), NOW, Context(allowed_accounts=frozenset({"111122223333"})))
    assert ok.refusal is None
    refused = plan(snap, PlanOptions(), NOW, Context(allowed_accounts=frozenset({"999"})))
    assert refused.refusal is not None
    assert refused.refusal.reason is RefusalReason.ACCOUNT_NOT_ALLOWED
    assert "111122223333" in refused.refusal.message and refused.steps == ()


def test_a_name_stays_pinned_to_the_store_it_was_confirmed_as() -> None:
    pin = Pin("payments", "cks-0ld", "2026-11-01T00:00:00+00:00")
    by_name = Snapshot(store(), (key(1),), matched_by="name")
    refused = plan(by_name, PlanOptions(), NOW, Context(pin=pin))
    assert refused.refusal is not None
    assert refused.refusal.reason is RefusalReason.NAME_RETARGETED
    assert "cks-0ld" in refused.refusal.message and STORE in refused.refusal.message
    # By ID, or when the pin is this very store, nothing is refused.
    by_id = Snapshot(store(), (key(1),), matched_by="id")
    assert plan(by_id, PlanOptions(), NOW, Context(pin=pin)).refusal is None
    same = Pin("payments", STORE, "2026-11-01T00:00:00+00:00")
    assert plan(by_name, PlanOptions(), NOW, Context(pin=same)).refusal is None


def test_keys_that_appear_after_this_runs_confirmation_are_refused_even_if_pending() -> None:
    snap = Snapshot(store(), (key(1, "PendingDeletion", 5), key(2, "PendingDeletion", 5)))
    ctx = Context(planned=frozenset({"k1"}))
    for options in (PlanOptions(), PlanOptions(include_new_keys=True)):
        refused = plan(snap, options, NOW, ctx)
        assert refused.refusal is not None
        assert refused.refusal.reason is RefusalReason.KEYS_APPEARED
        assert refused.refusal.key_ids == ("k2",)


def test_a_disconnected_cloudhsm_store_names_the_keys_whose_material_is_at_risk() -> None:
    snap = Snapshot(store(state=ConnectionState.DISCONNECTED), (key(1, "PendingDeletion", 5),))
    refused = plan(snap, PlanOptions(), NOW)
    assert refused.refusal is not None
    assert "k1" in refused.refusal.message and "ksdelete cancel" in refused.refusal.message
    assert refused.status is Status.REFUSED and refused.phase == "refused (orphaned-key-material)"
    waived = plan(snap, PlanOptions(allow_orphaned_key_material=True), NOW)
    assert ("cloudhsm_connected", "waived") in {(v.gate, v.verdict) for v in waived.verdicts}


def test_the_schedule_step_carries_its_window() -> None:
    result = plan(Snapshot(store(), (key(1),)), PlanOptions(pending_window_days=9), NOW)
    step = result.step(StepKind.SCHEDULE_KEY_DELETION)
    assert step is not None and step.window_days == 9


@given(snapshots(), st.booleans(), st.booleans())
@settings(max_examples=300)
def test_a_refused_plan_has_no_steps_and_status_follows_the_verdicts(
    snapshot: Snapshot, connect: bool, allow: bool
) -> None:
    result = plan(snapshot, PlanOptions(30, connect, allow), NOW)
    refused = [v for v in result.verdicts if v.verdict == "refused"]
    assert bool(refused) == (result.refusal is not None)
    if result.refusal:
        assert result.steps == () and result.status in (Status.REFUSED, Status.ERROR)
    else:
        assert result.status is Status.PENDING and result.steps


@given(snapshots(), st.frozensets(st.sampled_from([f"k{i}" for i in range(6)])))
@settings(max_examples=300)
def test_after_the_confirmation_no_plan_acts_on_a_key_outside_it(
    snapshot: Snapshot, planned: frozenset[str]
) -> None:
    result = plan(snapshot, PlanOptions(connect=True), NOW, Context(planned=planned))
    for step in result.steps:
        assert set(step.key_ids) <= planned


def test_a_saved_plan_admits_only_its_store_type_and_its_keys() -> None:
    approved = ApprovedStore(STORE, "payments", StoreType.CLOUDHSM, frozenset({"k1", "k2"}))
    ctx = Context(approved=approved)
    ok = plan(Snapshot(store(), (key(1), key(2), key(3, "PendingDeletion", 5))), PlanOptions(),
              NOW, ctx)
    assert ok.refusal is None and ok.to_schedule == ("k1", "k2")
    extra = plan(Snapshot(store(), (key(1), key(3))), PlanOptions(), NOW, ctx)
    assert extra.refusal is not None and extra.refusal.reason is RefusalReason.OUTSIDE_SAVED_PLAN
    assert extra.refusal.key_ids == ("k3",)
    retyped = plan(Snapshot(store(StoreType.EXTERNAL), (key(1),)), PlanOptions(), NOW, ctx)
    assert retyped.refusal is not None
    assert retyped.refusal.reason is RefusalReason.OUTSIDE_SAVED_PLAN
    assert "EXTERNAL_KEY_STORE store" in retyped.refusal.message


def test_a_saved_plan_refuses_a_key_it_saw_pending_that_is_pending_no_more() -> None:
    approved = ApprovedStore(STORE, "payments", StoreType.CLOUDHSM, frozenset({"k1", "k2"}),
                             pending_key_ids=frozenset({"k2"}))
    ctx = Context(approved=approved)
    still = plan(Snapshot(store(), (key(1), key(2, "PendingDeletion", 5))), PlanOptions(), NOW,
                 ctx)
    assert still.refusal is None and still.to_schedule == ("k1",)
    cancelled = plan(Snapshot(store(), (key(1), key(2, "Disabled"))), PlanOptions(), NOW, ctx)
    assert cancelled.refusal is not None
    assert cancelled.refusal.reason is RefusalReason.CANCELLED_KEYS
    assert cancelled.refusal.key_ids == ("k2",)
