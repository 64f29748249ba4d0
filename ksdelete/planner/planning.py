"""The plan: every gate's verdict, then the steps from what AWS shows now to deleted, and the
phase the store is in."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ksdelete.models import (
    MAX_SOAK_DAYS,
    ConnectionState,
    Context,
    Key,
    Plan,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    Status,
    Step,
    StepKind,
    StoreType,
    Verdict,
)
from ksdelete.phase import PhaseName, StorePhase
from ksdelete.planner.base import MAX_WINDOW_DAYS, MIN_WINDOW_DAYS, Gate
from ksdelete.planner.cancels import cancelled_keys, not_cancelled, trail_blind
from ksdelete.planner.evidence import (
    cloudhsm_connected,
    expected_key_count,
    key_cap,
    material_deleted,
    no_service_grants,
    not_protected,
    not_recently_used,
    room_for_marks,
)
from ksdelete.planner.membership import (
    account_allowed,
    covered_by_confirmation,
    membership_known,
    name_pinned,
    no_keys_appeared,
    within_saved_plan,
)
from ksdelete.planner.watching import (
    cancel_not_requested,
    no_use_while_disabled,
    no_use_while_pending,
    soak_possible,
)
from ksdelete.planner.wording import id_list
from ksdelete.reporting import fmt_time

GATES: tuple[Gate, ...] = (account_allowed, name_pinned, no_use_while_pending,
                           no_use_while_disabled, cancel_not_requested, membership_known,
                           within_saved_plan,
                           expected_key_count, key_cap,
                           no_keys_appeared, covered_by_confirmation, not_cancelled,
                           soak_possible, not_protected, no_service_grants, not_recently_used,
                           room_for_marks, cloudhsm_connected, material_deleted)


def evaluate(snap: Snapshot, options: PlanOptions, ctx: Context
             ) -> tuple[tuple[Verdict, ...], Refusal | None]:
    """Every gate's verdict, and the first refusal (gates are ordered by what they protect)."""
    verdicts: list[Verdict] = []
    refusal: Refusal | None = None
    for gate in GATES:
        answer = gate(snap, options, ctx)
        if isinstance(answer, Refusal):
            verdicts.append(Verdict(gate.__name__, "refused", answer.reason.value))
            refusal = refusal or answer
        else:
            verdicts.append(answer)
    return tuple(verdicts), refusal


# ---- the plan -----------------------------------------------------------------------------

def plan(snapshot: Snapshot, options: PlanOptions, now: datetime,
         context: Context | None = None) -> Plan:
    """The steps that take this store from what AWS shows now to deleted, or a refusal.

    Every step is safe to repeat, and the executor re-plans from a fresh snapshot before
    each point of no return, so a plan built from a slightly stale snapshot still converges.
    """
    if not MIN_WINDOW_DAYS <= options.pending_window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"pending window must be 7..30 days, got {options.pending_window_days}")
    ctx = context or Context()
    store = snapshot.store
    if snapshot.observed_at is None:
        snapshot = replace(snapshot, observed_at=now)
    verdicts, refusal = evaluate(snapshot, options, ctx)
    if refusal:
        status, phase = phase_of(snapshot, refusal)
        remedy = None
        if refusal.reason is RefusalReason.USED_WHILE_PENDING and options.on_use == "cancel" \
                and not ctx.read_only:
            remedy = Step(StepKind.CANCEL_KEY_DELETION, key_ids=refusal.key_ids,
                          detail="someone tried to use them while pending deletion")
        return Plan(store_id=store.id, steps=(), refusal=refusal, verdicts=verdicts,
                    phase=phase, status=status, remedy=remedy)

    keys = snapshot.keys
    to_schedule = tuple(k.id for k in keys if not k.pending)
    state = store.connection_state
    steps: list[Step] = []
    warnings: list[str] = []

    # A soak needs the store CONNECTED whatever its type (its keys are Unavailable
    # otherwise, and every use fails anyway): --connect connects an external key store too.
    soak = bool(to_schedule) and (options.disable_first_days > 0
                                  or any(k.soaking or k.soak_broken for k in keys))
    connecting = _connect_first(snapshot, options, soak, steps, warnings)

    soak_until = None
    if soak:
        soak_until = _soak(snapshot, options, ctx, now, steps, warnings)
    if to_schedule:
        steps.append(Step(StepKind.SCHEDULE_KEY_DELETION, key_ids=to_schedule,
                          window_days=options.pending_window_days))
    if keys:
        steps.append(Step(StepKind.AWAIT_KEYS_DELETED, key_ids=tuple(k.id for k in keys)))
    if connecting or state is not ConnectionState.DISCONNECTED:
        if state is ConnectionState.DISCONNECTING and not connecting:
            steps.append(Step(StepKind.AWAIT_DISCONNECTED, detail="already disconnecting"))
        else:
            steps.append(Step(StepKind.DISCONNECT_STORE))
            steps.append(Step(StepKind.AWAIT_DISCONNECTED))
    steps.append(Step(StepKind.DELETE_STORE))
    steps.append(Step(StepKind.VERIFY_DELETED))

    external_ids = _left_in_key_managers(snapshot, warnings)

    status, phase = phase_of(snapshot, None)
    if soak_until is not None and soak_until > now:
        phase = StorePhase.of(
            PhaseName.SOAKING, f"{len(to_schedule)} key(s) disabled until "
            f"{fmt_time(soak_until)}", keys=phase.keys, pending=phase.pending,
            earliest_deletion=phase.earliest_deletion, until=soak_until)
    cancelled = cancelled_keys(snapshot, ctx)
    reconfirm = tuple(k.id for k in [*cancelled, *trail_blind(snapshot, ctx, cancelled)]
                      if ctx.reconfirmed is None or k.id not in ctx.reconfirmed)
    return Plan(
        store_id=store.id,
        steps=tuple(steps),
        verdicts=verdicts,
        warnings=tuple(warnings),
        earliest_gone=_earliest_gone(snapshot, options, soak_until or now, bool(to_schedule)),
        external_key_ids=external_ids,
        phase=phase,
        status=status,
        reconfirm=reconfirm,
        soak_until=soak_until,
    )


def _connect_first(snap: Snapshot, options: PlanOptions, soak: bool, steps: list[Step],
                   warnings: list[str]) -> bool:
    """With --connect, a store whose keys need it CONNECTED (CloudHSM, or a soak) is
    connected first; returns whether it is. A CloudHSM store left unconnected is a warning."""
    store, keys = snap.store, snap.keys
    state = store.connection_state
    connecting = ((store.type is StoreType.CLOUDHSM or soak) and bool(keys)
                  and state is not ConnectionState.CONNECTED and options.connect)
    if connecting:
        if state is not ConnectionState.CONNECTING:
            steps.append(Step(StepKind.CONNECT_STORE, detail=f"from {state}"))
        steps.append(Step(StepKind.AWAIT_CONNECTED))
    elif store.type is StoreType.CLOUDHSM and keys and state is not ConnectionState.CONNECTED:
        warnings.append(
            f"the CloudHSM key store is {state}: when the waiting period ends KMS cannot "
            "delete the HSM key material, which stays orphaned in the cluster "
            "(--allow-orphaned-key-material)"
        )
    return connecting


def _left_in_key_managers(snap: Snapshot, warnings: list[str]) -> tuple[str, ...]:
    """What KMS never deletes: an external key store's keys in the external key manager
    (their IDs, returned), a CloudHSM store's key material in the cluster's backups."""
    keys = snap.keys
    external_ids: tuple[str, ...] = ()
    if snap.store.type is StoreType.EXTERNAL:
        external_ids = tuple(k.external_key_id for k in keys if k.external_key_id)
        if external_ids:
            warnings.append(
                f"KMS never deletes external keys: {len(external_ids)} external key(s) stay in "
                "your external key manager (listed as external_key_id)"
            )
    elif keys:
        warnings.append(
            "KMS does not delete key material from CloudHSM cluster backups; delete backups "
            "that hold it if crypto-shredding is the goal"
        )
    return external_ids


def _soak(snap: Snapshot, options: PlanOptions, ctx: Context, now: datetime,
          steps: list[Step], warnings: list[str]) -> datetime:
    """--disable-first: disable the keys not yet soaking and wait out the soak; returns when
    the last key's soak ends (a key whose soak starts now ends DAYS from now). A soak under
    way lasts at least the DAYS it began with, whatever later runs pass: leaving out
    --disable-first, or passing fewer days, does not cut it short.

    The key's mark can be edited by anyone who may tag the key, so its end is checked against
    what ksdelete did not write on the key: CloudTrail's DisableKey event (the watch's anchor)
    and this journal's DisableKey. The soak began at the latest of them and of the mark's
    time; it lasts the longest of the days known. A mark that cannot be read, with nothing to
    confirm when the soak began, means the soak is not over. A key someone enabled again
    during its soak (a person confirmed it at the prompt) is soaked again, for at least the
    days of its first soak, even without --disable-first."""
    days = options.disable_first_days
    broken = {k.id: k for k in snap.keys if k.soak_broken and not k.pending}
    to_disable = tuple(k.id for k in snap.keys if not k.pending and not k.soaking
                       and (days > 0 or k.id in broken))
    again = max([_soak_days(k, ctx, days) for k in broken.values()], default=0)
    ends: list[datetime] = []
    unknown: list[str] = []
    for key in snap.keys:
        if not key.soaking or key.marks is None:
            continue
        journal = ctx.soaks.get(key.id)
        trail = key.watch.since if key.watch and not key.watch.error else None
        confirmed = [t for t in (trail, journal[0] if journal else None) if t is not None]
        if not confirmed:
            unknown.append(key.id)
            ends.append(now + timedelta(days=max(days, 1)))  # not over; looked at again
            continue
        start = max([*confirmed, *([key.marks.disabled_at] if key.marks.disabled_at else [])])
        ends.append(start + timedelta(days=_soak_days(key, ctx, days)))
    if unknown:
        warnings.append(
            f"the soak of {len(unknown)} key(s) is not over: when it began is not confirmed "
            f"(neither CloudTrail's DisableKey nor this journal shows it): {id_list(unknown)}; "
            "let the watch read CloudTrail (not --on-use ignore), or run from the machine "
            "whose journal began the soak")
    soak_days = max(days, again)
    until = max([*ends, *([now + timedelta(days=soak_days)] if to_disable else [])],
                default=now)
    if to_disable:
        steps.append(Step(StepKind.DISABLE_KEYS, key_ids=to_disable,
                          detail=f"{soak_days}-day soak", soak_days=soak_days))
    if until > now:
        steps.append(Step(StepKind.AWAIT_SOAK, detail=f"until {fmt_time(until)}"))
    return until


def _soak_days(key: Key, ctx: Context, days: int) -> int:
    """How long a key's soak lasts: the longest of this run's DAYS, the mark's days= and
    the journal's. A mark whose days cannot be read, with no journal to tell, means the
    longest soak ksdelete allows."""
    journal = ctx.soaks.get(key.id)
    known = [days, *([journal[1]] if journal and journal[1] else [])]
    mark_days = key.marks.soak_days if key.marks else None
    if mark_days is None and not (journal and journal[1]):
        known.append(MAX_SOAK_DAYS)
    elif mark_days is not None:
        known.append(mark_days)
    return max(known)


def phase_of(snap: Snapshot, refusal: Refusal | None) -> tuple[Status, StorePhase]:
    """Where the store stands in the pipeline, and the status `status` reports for it."""
    keys = snap.keys
    pending = [k for k in keys if k.pending]
    dates = [k.deletion_date for k in pending if k.deletion_date]
    counts = {"keys": len(keys), "pending": len(pending),
              "earliest_deletion": min(dates) if dates else None}
    if refusal is not None:
        status = Status.ERROR if refusal.error else Status.REFUSED
        if refusal.reason in (RefusalReason.UNKNOWN_MEMBERSHIP, RefusalReason.DESCRIBE_FAILED):
            return status, StorePhase.of(
                PhaseName.MEMBERSHIP_UNKNOWN, f"({len(snap.undescribable)} key(s) cannot be "
                "described)", reason=refusal.reason.value, **counts)
        return status, refused_phase(refusal, **counts)
    soaking = [k for k in keys if k.soaking]
    if soaking:
        return Status.PENDING, StorePhase.of(
            PhaseName.SOAKING, f"{len(soaking)}/{len(keys)} key(s) disabled", **counts)
    if keys and len(pending) < len(keys):
        return Status.PENDING, StorePhase.of(
            PhaseName.KEYS_NOT_SCHEDULED, f"{len(keys) - len(pending)}/{len(keys)}", **counts)
    if keys:
        earliest = fmt_time(min(dates)) if dates else "-"
        return Status.PENDING, StorePhase.of(
            PhaseName.KEYS_PENDING, f"{len(pending)}/{len(keys)}, earliest deletion "
            f"{earliest}", **counts)
    state = snap.store.connection_state
    if state is ConnectionState.DISCONNECTING:
        return Status.PENDING, StorePhase.of(PhaseName.DISCONNECTING)
    if state is ConnectionState.DISCONNECTED:
        return Status.PENDING, StorePhase.of(PhaseName.READY_TO_DELETE)
    return Status.PENDING, StorePhase.of(PhaseName.READY_TO_DISCONNECT)


def refused_phase(refusal: Refusal, **counts: Any) -> StorePhase:
    """The phase of a store a gate refused: "refused (<reason>)"."""
    return StorePhase.of(PhaseName.REFUSED, f"({refusal.reason})",
                         reason=refusal.reason.value, **counts)


def _earliest_gone(
    snapshot: Snapshot, options: PlanOptions, now: datetime, scheduling: bool
) -> datetime:
    dates = [k.deletion_date for k in snapshot.keys if k.deletion_date is not None]
    if scheduling:
        dates.append(now + timedelta(days=options.pending_window_days))
    return max(dates, default=now)
