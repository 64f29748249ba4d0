"""Read-only: where each store stands in the pipeline (`ksdelete status`).

The phase and the exit code come from the planner, exactly as `delete` and `--dry-run` see
them, so the commands cannot disagree.
"""

from __future__ import annotations

from ksdelete.executor import Executor, Target
from ksdelete.models import Status, StoreResult


def status(executor: Executor, target: Target) -> StoreResult:
    """Where one store stands; reads only. Discovery, gates, error mapping and exit codes
    are the delete pipeline's own."""

    def body(target: Target, result: StoreResult) -> None:
        snap, plan = executor.survey(target, result)
        result.status = plan.status or Status.PENDING
        if plan.refusal:
            result.error = {"code": plan.refusal.reason.value, "message": plan.refusal.message}
        elif snap.keys and all(k.pending for k in snap.keys):
            result.resume_after = max((k.deletion_date for k in snap.keys if k.deletion_date),
                                      default=None)
        executor.reporter.note(f"phase: {plan.phase}")

    return executor.guarded(target, body, gone_is_done=True)
