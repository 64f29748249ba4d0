"""A refusal made safe before the run stops: the plan's remedy (the watch saw someone try to
use keys on their way out: cancel their deletion, and mark each key so that no unattended
run schedules it again). The step handler is `cancel_keys`; `ksdelete cancel` calls the
same primitives (act.cancel_deletion, act.mark_cancelled) for its keys."""

from __future__ import annotations

from dataclasses import replace

from ksdelete import marks
from ksdelete.errors import AwsError, KsdeleteError
from ksdelete.models import Outcome, Plan, RefusalReason, Snapshot, Step
from ksdelete.run.act import cancel_deletion, mark_cancelled, replan, watched
from ksdelete.run.base import done_text, refusal_error, result_outcome
from ksdelete.run.store import StoreRun


class RemedyFailed(Exception):
    """Some keys' deletion could not be cancelled: they are still on their way out."""

    def __init__(self, failed: dict[str, AwsError]) -> None:
        super().__init__(", ".join(failed))
        self.failed = failed


def cancel_keys(run: StoreRun, step: Step, snap: Snapshot) -> str:
    """CancelKeyDeletion of the step's keys (unless this run already cancelled them), each
    then marked cancelled (with the use the watch saw). One key's error does not stop the
    others; they are raised together at the end (RemedyFailed)."""
    svc, result = run.svc, run.result
    keys = {k.id: k for k in snap.keys}
    who = svc.identity.caller_arn
    failed: dict[str, AwsError] = {}
    # Keys this run cancelled already (the watch read on and re-planned) are done.
    before = {k for k in step.key_ids
              if result_outcome(result, k, "CancelKeyDeletion") is not None}
    for key_id in step.key_ids:
        key = keys[key_id]
        if key_id in before:
            continue
        try:
            cancel_deletion(svc, result, key)
        except AwsError as exc:  # one key's error must not leave the others pending
            failed[key_id] = exc
            run.reporter.note(f"{key_id}: CancelKeyDeletion failed: {exc.aws_code}: "
                              f"{exc.what}", level="error")
            continue
        if result_outcome(result, key_id) == Outcome.ALREADY_GONE:
            continue
        use = key.watch.attempts[0].operation if key.watch and key.watch.attempts else ""
        value = marks.cancelled(marks.stamp(run.now()), by=who, watch=use)
        try:
            mark_cancelled(svc, result, key, value)
        except AwsError as exc:
            result.warnings.append(f"{key_id}: could not record the cancel on the key "
                                   f"({exc.aws_code})")
    gone = [k for k in step.key_ids if k not in before
            and result_outcome(result, k) == Outcome.ALREADY_GONE]
    cancelled = [k for k in step.key_ids if k not in failed and k not in gone
                 and k not in before]
    if cancelled:
        run.reporter.note(f"cancelled the deletion of {len(cancelled)} key(s) "
                          f"someone tried to use: {', '.join(cancelled)}", level="warning")
    if gone:
        result.warnings.append(f"already deleted, too late to cancel: {', '.join(gone)}")
    if failed:
        raise RemedyFailed(failed)
    return f"{len(cancelled)} key(s) cancelled"


def remedy(run: StoreRun, plan: Plan, snap: Snapshot, done: str = "") -> None:
    """The refused state made safe: the plan's remedy step applied (unless this run only
    reads). Keys whose deletion could not be cancelled are a failure the operator must act
    on now, not a refusal with "nothing changed"."""
    assert plan.refusal is not None
    if plan.remedy is None or run.options.dry_run:
        return
    try:
        cancel_keys(run, plan.remedy, snap)
    except RemedyFailed as failure:
        failed = failure.failed
        why = "; ".join(f"{k} ({e.aws_code}: {e.what})" for k, e in failed.items())
        done = done or done_text(run.result)
        raise KsdeleteError(
            f"{plan.refusal.summary}, BUT the deletion of {len(failed)} of these "
            "key(s) could not be cancelled: they are still pending deletion",
            where="" if snap.store.id in plan.refusal.summary else snap.store.id,
            hint="Cancel them now: grant kms:CancelKeyDeletion and run `ksdelete "
                 f"cancel {snap.store.id}`, or `aws kms cancel-key-deletion`",
            details=(f"not cancelled: {why}", *plan.refusal.details, *([done] if done else ())),
            key_ids=tuple(failed)) from None


def stop(run: StoreRun, plan: Plan, snap: Snapshot, done: str = "") -> None:
    """A gate refused: first make the refused state safe (the plan's remedy), unless this
    run only reads; then stop."""
    assert plan.refusal is not None
    remedy(run, plan, snap, done)
    if plan.refusal.reason in (RefusalReason.USED_WHILE_PENDING,
                               RefusalReason.USED_WHILE_DISABLED) and run.svc.watcher.finish():
        # The watch acted on the first attempts it found; the rest of CloudTrail may name
        # more keys: read it to the end (within the budget) and act on those too.
        snap = replace(snap, keys=tuple(watched(run.svc, snap.keys)))
        plan = replan(run, snap)
        if plan.refusal is None:  # cannot be (the same attempts are still there)
            raise KsdeleteError("the watch lost the attempts it acted on", where=snap.store.id)
        remedy(run, plan, snap, done)
    assert plan.refusal is not None
    raise refusal_error(plan.refusal, snap.store.id, done or done_text(run.result))
