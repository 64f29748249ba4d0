"""Read-only: where each store stands in the pipeline (`ksdelete status`), and what AWS
leaves behind of it (`ksdelete report`).

The phase and the exit code come from the planner, exactly as `delete` and `--dry-run` see
them, so the commands cannot disagree.
"""

from __future__ import annotations

from dataclasses import replace

from ksdelete.errors import StoreNotFoundError
from ksdelete.executor import Executor, StoreRun, Target
from ksdelete.models import STORE_ID, Key, Status, StoreResult
from ksdelete.phase import PhaseName, StorePhase


def status(executor: Executor, target: Target) -> StoreResult:
    """Where one store stands; reads only. Discovery, gates, error mapping and exit codes
    are the delete pipeline's own."""

    def body(run: StoreRun) -> None:
        result = run.result
        snap, plan = executor.survey(run)
        result.status = plan.status or Status.PENDING
        if plan.refusal:
            result.error = {**plan.refusal.as_error().as_json(),
                            "code": plan.refusal.reason.value}
        elif snap.keys and all(k.pending for k in snap.keys):
            result.resume_after = max((k.deletion_date for k in snap.keys if k.deletion_date),
                                      default=None)
        # The phase is the result: the CLI prints it (stdout, or the JSON).

    return executor.guarded(target, body, gone_is_done=True)


def report(executor: Executor, target: Target) -> StoreResult:
    """What AWS leaves behind of one store (`ksdelete report`); reads only. For a store that
    is gone, from the journal (what ksdelete kept when its keys were confirmed) and
    CloudTrail; for one that exists, its keys now as well."""

    missing = target.error

    def body(run: StoreRun) -> None:
        target, result = run.target, run.result
        store = target.store
        pin = target.pin
        if store is not None and pin is not None and pin.store_id != store.id:
            # The name now belongs to another store: report on the one ksdelete dealt with.
            executor.reporter.note(f"{target.ref!r} now names {store.id}; reporting on "
                                   f"{pin.store_id}, the store ksdelete confirmed at {pin.time}",
                                   level="warning")
            store = None
        store_id = store.id if store else (
            target.ref if STORE_ID.match(target.ref) else pin.store_id if pin else None)
        if store is None and (store_id is None
                              or not executor.journal.confirmed_store(store_id)[1]):
            # Gone (or never resolved), and this journal never saw its keys: nothing to say.
            raise missing or StoreNotFoundError(f"no record of {target.ref!r}",
                                                where=target.ref)
        assert store_id is not None
        keys: tuple[Key, ...] = ()
        if store is not None:
            keys = executor.snapshot(run, store.id, target.matched_by or "id").keys
        result.store = store
        result.leftovers = executor.leftovers(store_id, store=store, keys=keys)
        result.status = Status.PENDING if store is not None else Status.DELETED
        result.phase = StorePhase.of(PhaseName.LEFTOVERS, "" if store is None
                                     else f"(store exists, {len(keys)} key(s))",
                                     keys=len(keys))
        # What is left is the result: the CLI prints it (stdout, or the JSON).

    # A store that is gone is reported from the journal, not an error; any other failure to
    # resolve it (denied, ambiguous) still is.
    if isinstance(missing, StoreNotFoundError):
        target = replace(target, error=None)
    return executor.guarded(target, body, gone_is_done=False)
