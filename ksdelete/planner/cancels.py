"""Gates that keep a cancel final: a key someone cancelled stays cancelled until a person
confirms it again."""

from __future__ import annotations

from ksdelete import marks as codec
from ksdelete.models import (
    Context,
    Key,
    Plan,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    Step,
    StepKind,
    Verdict,
)
from ksdelete.planner.wording import each_line, id_list, key_lines
from ksdelete.reporting import fmt_time


def has_marks(key: Key) -> bool:
    """ksdelete's mark is on the key: a run scheduled it (or began its soak), and no cancel
    withdrew that since (a cancelled mark is no confirmation in force)."""
    marks = key.marks
    return marks is not None and marks.cancelled is None and (
        marks.scheduled is not None or marks.disabled is not None)


def not_cancelled(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """A cancel stays cancelled: a key that any record shows pending deletion (ksdelete's mark
    on it, this journal's scheduling or confirmation, the saved plan, or CloudTrail's
    CancelKeyDeletion since the confirmation) that is no longer pending was cancelled by
    someone. No unattended run schedules it again; only a person's fresh confirmation, which
    lists it, does, and only for the keys it listed."""
    cancelled = cancelled_keys(snap, ctx)
    blind = trail_blind(snap, ctx, cancelled)
    if blind and not cancelled and options.on_use == "ignore":
        return Verdict("not_cancelled", "waived",
                       "--on-use ignore: CloudTrail's CancelKeyDeletion events not read for "
                       f"{id_list([k.id for k in blind])}")
    if not cancelled and not blind:
        return Verdict("not_cancelled", "pass", _trail_text(snap))
    if ctx.reconfirmed is not None:
        cancelled = [k for k in cancelled if k.id not in ctx.reconfirmed]
        if not cancelled:
            return Verdict("not_cancelled", "waived",
                           f"the operator confirmed again: {id_list(sorted(ctx.reconfirmed))}")
    elif ctx.interactive:
        listed = [k.id for k in cancelled] + [k.id for k in blind]
        return Verdict("not_cancelled", "waived",
                       f"to be confirmed again at the prompt: {id_list(listed)}")
    if not cancelled:
        trail = snap.cancel_trail
        assert trail is not None
        return Refusal(
            RefusalReason.CANCELLED_KEYS,
            f"{len(blind)} key(s) of {snap.store.id} may have been cancelled (CloudTrail "
            "unreadable)",
            "Grant cloudtrail:LookupEvents, or confirm at a terminal (without --yes)",
            (f"this machine has no record of the confirmation ({fmt_time(trail.since)}) and "
             f"CloudTrail could not be read ({trail.error})",
             "an unattended run never schedules a key that may have been cancelled",
             f"to confirm: run `ksdelete {snap.store.id}` at a terminal, without --yes",
             *key_lines([k.id for k in blind])),
            tuple(k.id for k in blind),
        )
    ids = [k.id for k in cancelled]
    return Refusal(
        RefusalReason.CANCELLED_KEYS,
        f"{len(ids)} key(s) of {snap.store.id} are no longer pending deletion: their deletion "
        "was cancelled", "To delete them anyway, confirm at a terminal (without --yes)",
        ("they were pending deletion (scheduled by ksdelete, or by hand and seen by a "
         "confirmation, the saved plan or CloudTrail): someone cancelled their deletion, or an "
         "earlier run failed between marking and scheduling them",
         *each_line([f"{k.id}: {_cancel_story(k, snap, ctx)}" for k in cancelled], 5),
         "an unattended run never schedules such a key again",
         f"to confirm: run `ksdelete {snap.store.id}` at a terminal, without --yes (the prompt "
         "lists them)"),
        tuple(ids),
    )


def cancelled_keys(snap: Snapshot, ctx: Context) -> list[Key]:
    """Keys not pending now that any record shows pending deletion: ksdelete's mark on the
    key (unless this journal shows the run that wrote it never sent the ScheduleKeyDeletion),
    this journal's scheduling, cancelling or confirmation, the saved plan being applied, or
    CloudTrail's CancelKeyDeletion since the deletion was confirmed."""
    pending_before = ctx.approved.pending_key_ids if ctx.approved else frozenset()
    trail = snap.cancel_trail
    return [k for k in snap.keys if not k.pending and (
        _mark_says_pending(k, ctx) or k.id in ctx.scheduled_before
        or k.id in ctx.pending_before or k.id in pending_before
        or (trail is not None and trail.of(k.id) is not None))]


def cancelled_while_waiting(key: Key, done: str) -> Refusal | None:
    """A key the run waits on that reads back, settled, as no longer pending deletion:
    someone cancelled it, and the run stops there (`done`: what it had already done)."""
    if key.pending:
        return None
    return Refusal(RefusalReason.CANCELLED_KEYS,
                   "a key this run waits on is no longer pending deletion: someone cancelled it",
                   "Run `ksdelete status` to review, then run again",
                   details=(f"key {key.id} is {key.state} (ARN {key.arn})",
                            *([done] if done else ())),
                   key_ids=(key.id,))


def _mark_says_pending(key: Key, ctx: Context) -> bool:
    marks = key.marks
    if marks is None or not marks.any:
        return False
    # Marked, but this journal shows its scheduling was never sent: that mark is no cancel.
    return marks.cancelled is not None or \
        (key.id, marks.field("run") or "") not in ctx.unscheduled_marks


def trail_blind(snap: Snapshot, ctx: Context, cancelled: list[Key]) -> list[Key]:
    """Keys an unattended run would schedule again where only CloudTrail could tell whether
    their deletion was cancelled since the confirmation, and CloudTrail could not be read."""
    trail = snap.cancel_trail
    if trail is None or trail.error is None or ctx.remembered:
        return []
    known = {k.id for k in cancelled}
    return [k for k in snap.keys if not k.pending and k.id not in known and not k.soaking]


def _trail_text(snap: Snapshot) -> str:
    trail = snap.cancel_trail
    if trail is None:
        return ""
    return f"CloudTrail: no CancelKeyDeletion of the store's keys since {fmt_time(trail.since)}"


def _cancel_story(key: Key, snap: Snapshot, ctx: Context) -> str:
    marks = key.marks
    scheduled = codec.time_text(marks.scheduled) if marks else ""
    scheduled = f"scheduled {scheduled}, " if scheduled else ""
    if marks and marks.cancelled:
        return f"{scheduled}cancelled {marks.cancelled.replace(' by=', ' by ')}"
    event = snap.cancel_trail.of(key.id) if snap.cancel_trail else None
    if event is not None:
        return f"{scheduled}cancelled outside ksdelete: CancelKeyDeletion by {event.caller} " \
            f"at {fmt_time(event.time)} (CloudTrail), now {key.state}"
    if key.id in ctx.pending_before:
        return f"pending deletion when its deletion was confirmed at " \
            f"{ctx.pending_before[key.id]}, now {key.state}"
    if ctx.approved and key.id in ctx.approved.pending_key_ids:
        return f"pending deletion in the saved plan, now {key.state}"
    return f"{scheduled}cancelled outside ksdelete (now {key.state})"


def plan_cancel(store_id: str, key_ids: tuple[str, ...], *, detail: str, enable: bool,
                connect: bool, restore: tuple[str, ...] = (),
                warnings: tuple[str, ...] = ()) -> Plan:
    """`ksdelete cancel`'s plan: every step it takes, shown and confirmed like the rest.
    CancelKeyDeletion (the brake), the cancel mark on each key (no unattended run schedules
    it again), the store connected again (--connect), the keys restored (--enable:
    `restore` once the scan has said which; before it, the step names no key yet)."""
    steps = [Step(StepKind.CANCEL_KEY_DELETION, key_ids=key_ids, detail=detail),
             Step(StepKind.MARK_CANCELLED, key_ids=key_ids,
                  detail="no unattended run schedules them again")]
    if connect:
        steps.append(Step(StepKind.CONNECT_STORE, detail="if it is DISCONNECTED or FAILED"))
    if enable:
        steps.append(Step(StepKind.ENABLE_KEYS, key_ids=restore,
                          detail="back to their state before deletion"))
    return Plan(store_id=store_id, steps=tuple(steps), warnings=warnings)
