"""The planner is a pure function: table-driven cases and hypothesis invariants."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ksdelete.models import (
    MAX_SOAK_DAYS,
    ApprovedStore,
    Attempt,
    ConnectionState,
    Context,
    Grant,
    Identity,
    Key,
    KeyStore,
    Marks,
    Pin,
    PlanOptions,
    RefusalReason,
    Snapshot,
    Status,
    StepKind,
    StoreType,
    UndescribableKey,
    Usage,
    Watch,
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
        # As discovery reads them for a key about to be scheduled: never used, no grants.
        grants=() if state != "PendingDeletion" else None,
        usage=Usage(tracking_start=NOW - timedelta(days=200))
        if state != "PendingDeletion" else None,
        # As the watch reads a pending key: scheduled a day ago, nobody tried to use it.
        watch=Watch(since=NOW - timedelta(days=1)) if state == "PendingDeletion" else None,
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


# ---- preflight gates: last use, grants, protected tags, expected key count ----------------

def refused(snapshot: Snapshot, **options: object) -> RefusalReason | None:
    result = plan(snapshot, PlanOptions(**options), NOW)  # type: ignore[arg-type]
    return result.refusal.reason if result.refusal else None


def verdict(snapshot: Snapshot, gate: str, **options: object) -> str:
    result = plan(snapshot, PlanOptions(**options), NOW)  # type: ignore[arg-type]
    return next(v.verdict for v in result.verdicts if v.gate == gate)


def used(n: int, days_ago: float, state: str = "Enabled") -> Key:
    return replace(key(n, state), usage=Usage(
        tracking_start=NOW - timedelta(days=200), last_used=NOW - timedelta(days=days_ago),
        operation="Decrypt", event_id="ev-1"))


def test_a_key_used_within_the_window_is_refused_and_a_smaller_window_waives_it() -> None:
    snap = Snapshot(store(), (key(1), used(2, days_ago=10)))
    result = plan(snap, PlanOptions(), NOW)
    assert result.refusal is not None
    assert result.refusal.reason is RefusalReason.RECENTLY_USED
    assert result.refusal.key_ids == ("k2",)
    assert "Decrypt" in result.refusal.message and "ev-1" in result.refusal.message
    assert "--unused-for" in result.refusal.message
    assert refused(snap, unused_for_days=7) is None
    assert verdict(snap, "not_recently_used", unused_for_days=0) == "waived"


def test_a_key_pending_deletion_is_not_refused_for_its_use_before_scheduling() -> None:
    snap = Snapshot(store(), (used(1, days_ago=1, state="PendingDeletion"),))
    assert refused(snap) is None


def test_unknown_last_use_is_refused_not_taken_for_unused() -> None:
    unread = replace(key(1), usage=None)
    denied = replace(key(2), usage=Usage(error="AccessDeniedException"))
    for k in (unread, denied):
        assert refused(Snapshot(store(), (k,))) is RefusalReason.RECENTLY_USED
        assert refused(Snapshot(store(), (k,)), unused_for_days=0) is None


def test_no_recorded_use_on_a_key_older_than_tracking_is_said_but_not_refused() -> None:
    old = replace(key(1), creation_date=NOW - timedelta(days=400))
    result = plan(Snapshot(store(), (old,)), PlanOptions(), NOW)
    assert result.refusal is None
    detail = next(v.detail for v in result.verdicts if v.gate == "not_recently_used")
    assert "older than KMS's usage tracking" in detail and "k1" in detail


def test_grants_to_aws_services_are_refused_unless_allowed() -> None:
    service = Grant("g1", "rds.eu-west-1.amazonaws.com", ("Decrypt",))
    person = Grant("g2", "arn:aws:iam::111122223333:role/app", ("Encrypt",))
    snap = Snapshot(store(), (replace(key(1), grants=(service, person)),
                              replace(key(2), grants=(person,))))
    result = plan(snap, PlanOptions(), NOW)
    assert result.refusal is not None and result.refusal.reason is RefusalReason.SERVICE_GRANTS
    assert result.refusal.key_ids == ("k1",)
    assert "rds.eu-west-1.amazonaws.com" in result.refusal.message
    assert verdict(snap, "no_service_grants", allow_service_grants=True) == "waived"
    assert refused(Snapshot(store(), (replace(key(2), grants=(person,)),))) is None
    assert refused(Snapshot(store(), (replace(key(1), grants=None),))) \
        is RefusalReason.SERVICE_GRANTS
    # The waiver covers the grants it names, never grants nobody could read (issue 17).
    unread = Snapshot(store(), (replace(key(1), grants=None),))
    assert verdict(unread, "no_service_grants", allow_service_grants=True) == "refused"


def test_protected_tags_refuse_by_key_or_by_key_and_value() -> None:
    tagged = replace(key(1), tags=(("env", "prod"), ("keep", "yes")))
    snap = Snapshot(store(), (tagged, key(2)))
    assert refused(snap, protect_tags=(("keep", None),)) is RefusalReason.PROTECTED
    assert refused(snap, protect_tags=(("env", "prod"),)) is RefusalReason.PROTECTED
    assert refused(snap, protect_tags=(("env", "dev"),)) is None
    assert refused(snap) is None
    pending = replace(tagged, state="PendingDeletion", deletion_date=NOW + timedelta(days=3),
                      watch=Watch(since=NOW))
    assert refused(Snapshot(store(), (pending,)), protect_tags=(("keep", None),)) is None


def test_expect_keys_counts_every_key_of_the_store() -> None:
    snap = Snapshot(store(), (key(1), key(2, "PendingDeletion", 5)))
    assert refused(snap, expect_keys=2) is None
    assert refused(snap, expect_keys=3) is RefusalReason.KEY_COUNT
    assert refused(Snapshot(store(), ()), expect_keys=0) is None
    assert refused(Snapshot(store(), ()), expect_keys=1) is RefusalReason.KEY_COUNT


def test_expect_keys_is_checked_at_the_confirmation_so_later_runs_converge() -> None:
    gone = Snapshot(store(), ())  # AWS deleted the keys the deletion was confirmed for
    confirmed = Context(confirmed_before=frozenset({"k1", "k2"}))
    assert plan(gone, PlanOptions(expect_keys=2), NOW, confirmed).refusal is None
    this_run = Context(planned=frozenset({"k1", "k2"}))
    assert plan(gone, PlanOptions(expect_keys=2), NOW, this_run).refusal is None
    wrong = plan(gone, PlanOptions(expect_keys=3), NOW, confirmed).refusal
    assert wrong is not None and wrong.reason is RefusalReason.KEY_COUNT
    assert "confirmed for deletion with 2 key(s)" in wrong.message
    assert "--expect-keys 2" in wrong.headline
    saved = Context(approved=ApprovedStore(STORE, "p", StoreType.CLOUDHSM,
                                           frozenset({"k1", "k2"})))
    assert plan(gone, PlanOptions(expect_keys=2), NOW, saved).refusal is None


# ---- the watch over the waiting period ------------------------------------------------------

def attempted(n: int, hours_ago: float) -> Key:
    attempt = Attempt("Decrypt", "arn:aws:iam::111122223333:role/app",
                      NOW - timedelta(hours=hours_ago), "KMSInvalidStateException")
    return replace(key(n, "PendingDeletion", 5),
                   watch=Watch(since=NOW - timedelta(days=1), attempts=(attempt,)))


def test_an_attempt_to_use_a_pending_key_refuses_and_cancels_that_key_only() -> None:
    snap = Snapshot(store(), (attempted(1, 2), key(2, "PendingDeletion", 5)))
    result = plan(snap, PlanOptions(), NOW)
    assert result.refusal is not None
    assert result.refusal.reason is RefusalReason.USED_WHILE_PENDING
    assert "Decrypt by arn:aws:iam::111122223333:role/app" in result.refusal.message
    assert result.remedy is not None and result.remedy.kind is StepKind.CANCEL_KEY_DELETION
    assert result.remedy.key_ids == ("k1",)
    only_report = plan(snap, PlanOptions(on_use="refuse"), NOW)
    assert only_report.refusal is not None and only_report.remedy is None
    assert refused(snap, on_use="ignore") is None


def test_the_watch_comes_before_other_refusals_so_its_remedy_is_never_held_back() -> None:
    snap = Snapshot(store(), (attempted(1, 2), key(2)))
    result = plan(snap, PlanOptions(expect_keys=5), NOW)
    assert result.refusal is not None and result.remedy is not None


def test_a_pending_key_the_watch_cannot_see_stops_the_run() -> None:
    for watch in (None, Watch(since=None), Watch(since=NOW, error="AccessDeniedException")):
        k = replace(key(1, "PendingDeletion", 5), watch=watch)
        result = plan(Snapshot(store(), (k,)), PlanOptions(), NOW)
        assert result.refusal is not None
        assert result.refusal.reason is RefusalReason.WATCH_BLIND and result.remedy is None
        assert refused(Snapshot(store(), (k,)), on_use="ignore") is None


# ---- --disable-first: the soak ------------------------------------------------------------

def soaking(n: int, days_ago: float, *, attempts: tuple[Attempt, ...] = ()) -> Key:
    start = NOW - timedelta(days=days_ago)
    mark = f"{start:%Y-%m-%dT%H:%M:%SZ} prior=Enabled days=14 run=r1"
    return replace(key(n, "Disabled"), marks=Marks(disabled=mark),
                   watch=Watch(since=start, attempts=attempts))


def test_the_first_soaking_run_disables_and_schedules_nothing_yet() -> None:
    result = plan(Snapshot(store(), (key(1), key(2))), PlanOptions(disable_first_days=14), NOW)
    assert result.refusal is None
    assert [s.kind for s in result.steps][:2] == [StepKind.DISABLE_KEYS, StepKind.AWAIT_SOAK]
    assert result.soak_until == NOW + timedelta(days=14)
    assert result.phase.startswith("soaking 2 key(s) disabled until")


def test_a_soak_in_progress_waits_and_an_ended_clean_soak_schedules() -> None:
    options = PlanOptions(disable_first_days=14)
    waiting = plan(Snapshot(store(), (soaking(1, 3), soaking(2, 5))), options, NOW)
    assert [s.kind for s in waiting.steps][0] is StepKind.AWAIT_SOAK
    assert waiting.soak_until == NOW + timedelta(days=11)
    over = plan(Snapshot(store(), (soaking(1, 15), soaking(2, 20))), options, NOW)
    assert over.refusal is None
    assert [s.kind for s in over.steps][0] is StepKind.SCHEDULE_KEY_DELETION


def test_a_use_attempt_during_the_soak_refuses_with_nothing_to_undo() -> None:
    attempt = Attempt("Decrypt", "arn:aws:iam::111122223333:role/app", NOW - timedelta(days=1),
                      "DisabledException")
    result = plan(Snapshot(store(), (soaking(1, 20, attempts=(attempt,)),)),
                  PlanOptions(disable_first_days=14), NOW)
    assert result.refusal is not None
    assert result.refusal.reason is RefusalReason.USED_WHILE_DISABLED
    assert result.remedy is None and "DisabledException" in result.refusal.message


def test_a_soak_needs_a_connected_store_and_a_re_enabled_key_needs_a_person() -> None:
    disconnected = Snapshot(store(StoreType.EXTERNAL, ConnectionState.DISCONNECTED), (key(1),))
    assert refused(disconnected, disable_first_days=7) is RefusalReason.SOAK_IMPOSSIBLE
    reenabled = replace(soaking(1, 3), state="Enabled")
    snap = Snapshot(store(), (reenabled,))
    assert refused(snap, disable_first_days=7) is RefusalReason.SOAK_BROKEN
    again = plan(snap, PlanOptions(disable_first_days=7), NOW, Context(interactive=True))
    assert again.refusal is None and again.steps[0].kind is StepKind.DISABLE_KEYS


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


def test_a_soak_mark_without_readable_days_or_confirmed_start_is_not_over() -> None:
    """The mark can be edited by anyone who may tag the key: without days= the soak lasts the
    longest ksdelete allows (unless the journal knows); without CloudTrail's DisableKey or the
    journal to confirm its start it is not over at all."""
    options = PlanOptions()  # a later run without --disable-first
    began = NOW - timedelta(days=20)
    no_days = replace(soaking(1, 20),
                      marks=Marks(disabled=f"{began:%Y-%m-%dT%H:%M:%SZ} prior=Enabled run=r1"))
    waiting = plan(Snapshot(store(), (no_days,)), options, NOW)
    assert waiting.soak_until == NOW - timedelta(days=20) + timedelta(days=MAX_SOAK_DAYS)
    journal = Context(soaks={"k1": (NOW - timedelta(days=20), 14)})
    assert plan(Snapshot(store(), (no_days,)), options, NOW, journal).to_schedule == ("k1",)
    unconfirmed = replace(soaking(1, 20), watch=Watch(since=None))
    blind = plan(Snapshot(store(), (unconfirmed,)), PlanOptions(on_use="ignore"), NOW)
    assert blind.soak_until is not None and blind.soak_until > NOW
    assert any("not confirmed" in w for w in blind.warnings)
    later = plan(Snapshot(store(), (soaking(1, 20),)), options, NOW,
                 Context(soaks={"k1": (NOW - timedelta(days=2), 14)}))
    assert later.soak_until == NOW + timedelta(days=12)  # the journal's later start counts


# ---- hints name options of the command that prints them ------------------------------------

def _refusals(ctx: Context) -> list[str]:
    """The refusal of each gate whose hint names an option, in the context given."""
    hsm_down = store(state=ConnectionState.DISCONNECTED)
    service = Grant("g1", "rds.eu-west-1.amazonaws.com", ("Decrypt",))
    cases: list[tuple[Snapshot, PlanOptions, Context]] = [
        (Snapshot(store(), (key(1), key(2))), PlanOptions(),
         replace(ctx, planned=frozenset({"k1"}))),
        (Snapshot(store(), (key(1), key(2))), PlanOptions(),
         replace(ctx, confirmed_before=frozenset({"k1"}))),
        (Snapshot(hsm_down, (key(1),)), PlanOptions(), ctx),
        (Snapshot(store(), (replace(key(1), tags=(("keep", "yes"),)),)),
         PlanOptions(protect_tags=(("keep", None),)), ctx),
        (Snapshot(store(), (replace(key(1), grants=None),)), PlanOptions(), ctx),
        (Snapshot(store(), (replace(key(1), grants=(service,)),)), PlanOptions(), ctx),
        (Snapshot(store(), (replace(key(1), usage=None),)), PlanOptions(), ctx),
        (Snapshot(store(), (used(1, 2),)), PlanOptions(), ctx),
        (Snapshot(store(), (replace(key(1, "PendingDeletion", 5), watch=None),)),
         PlanOptions(), ctx),
        (Snapshot(hsm_down, (key(1),)), PlanOptions(disable_first_days=7), ctx),
    ]
    out = []
    for snap, options, context in cases:
        result = plan(snap, options, NOW, context)
        assert result.refusal is not None, (snap, options)
        assert result.refusal.reason is not RefusalReason.OUTSIDE_SAVED_PLAN
        out.append(result.refusal.message)
    return out


def _options_named(message: str) -> set[str]:
    """The options a hint tells the operator to use with the command that printed it: not
    those of another command it names (`ksdelete cancel`, a dry run that saves a new plan, an
    option "in a new plan", a run "without --yes"), nor the option a message starts by
    explaining."""
    message = re.sub(r"to save a new plan: ksdelete \S+ --dry-run.*", "", message)
    message = re.sub(r"--[a-z-]+(?: [A-Za-z0-9]+)? in a new plan", "", message)
    message = re.sub(r"new plan without --[a-z-]+", "", message)
    message = re.sub(r"`[^`]*`", "", message).replace("without --yes", "")
    message = re.sub(r"^--[a-z-]+ needs", "", message)  # what the plan's option needs
    return set(re.findall(r"--[a-z][a-z-]*", message))


def test_every_hint_names_an_option_of_the_command_that_prints_it() -> None:
    from ksdelete.cli import cli

    def options_of(command: str) -> set[str]:
        return {o for p in cli.commands[command].params for o in p.opts if o.startswith("--")}

    for message in _refusals(Context()):  # delete, status, a dry run
        assert _options_named(message) <= options_of("delete") & options_of("status"), message
    approved = ApprovedStore(STORE, "payments", StoreType.CLOUDHSM, frozenset({"k1", "k2"}))
    for message in _refusals(Context(approved=approved)):  # apply
        assert _options_named(message) <= options_of("apply"), message
