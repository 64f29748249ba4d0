"""The undo path while the waiting period is open (`ksdelete cancel`)."""

from __future__ import annotations

from functools import partial

from ksdelete.errors import AwsError, KeyInvalidState, RefusedError
from ksdelete.executor import Confirm, Executor, Target
from ksdelete.models import ConnectionState, Plan, Status, Step, StepKind, StoreResult
from ksdelete.reporting import Phase, PhaseState


def _not_pending(exc: AwsError) -> str | None:
    """CancelKeyDeletion on a key that is no longer pending: someone cancelled it already."""
    return "already-done" if isinstance(exc, KeyInvalidState) else None


def cancel(executor: Executor, target: Target, *, enable: bool, connect: bool,
           confirm: Confirm) -> StoreResult:
    """CancelKeyDeletion for every pending key proven to be in the store; optionally re-enable
    them and reconnect the store. Reports what can no longer be undone."""

    def body(target: Target, result: StoreResult) -> None:
        _cancel(executor, target, result, enable=enable, connect=connect, confirm=confirm)

    return executor.guarded(target, body, gone_is_done=False)


def _cancel(executor: Executor, target: Target, result: StoreResult, *, enable: bool,
            connect: bool, confirm: Confirm) -> None:
    gw, reporter = executor.gw, executor.reporter
    assert target.store is not None
    snap = executor.snapshot(target.store.id, target.matched_by or "id", result)
    store = snap.store
    if snap.undescribable:
        result.warnings.append(
            f"{len(snap.undescribable)} key(s) could not be described; any of them in this "
            "store was not cancelled")
    pending = tuple(k.id for k in snap.keys if k.pending)
    lost = sorted(set(executor.journal.scheduled_keys(store.id)) - snap.key_ids())
    if lost:
        result.warnings.append(
            f"{len(lost)} key(s) scheduled by ksdelete are already deleted and cannot be "
            f"recovered: {', '.join(lost)}")
    plan = Plan(store_id=store.id,
                steps=(Step(StepKind.CANCEL_KEY_DELETION, key_ids=pending),),
                warnings=tuple(result.warnings))
    result.plan = plan
    reporter.plan(snap, plan)
    for line in [f"{len(pending)} pending key(s) to cancel", *result.warnings]:
        reporter.note(line)
    result.status = Status.CANCELLED
    if not pending and not connect:
        return
    if not confirm(snap, plan):
        raise RefusedError("not confirmed; nothing was changed", where=store.id)
    reporter.phase(Phase.CANCEL, PhaseState.RUNNING)
    keys = {k.id: k for k in snap.keys}
    for done, key_id in enumerate(pending, 1):
        executor.mutate(result, "CancelKeyDeletion",
                        partial(gw.cancel_key_deletion, keys[key_id].arn), key=keys[key_id],
                        already=_not_pending)
        reporter.progress(Phase.CANCEL, done, len(pending))
    if enable:
        for key_id in pending:
            executor.mutate(result, "EnableKey", partial(gw.enable_key, keys[key_id].arn),
                            key=keys[key_id])
    if connect:
        current = gw.describe_store(store_id=store.id)
        if current and current.connection_state in (ConnectionState.DISCONNECTED,
                                                    ConnectionState.FAILED):
            executor.connect(store.id, result)
    executor.journal.decision("CancelPlan", store_id=store.id, store_name=store.name,
                              key_ids=list(pending), matched_by=snap.matched_by)
    reporter.phase(Phase.CANCEL, PhaseState.DONE, f"{len(pending)} key(s) cancelled")
    result.keys = executor.snapshot(store.id, snap.matched_by, result).keys
