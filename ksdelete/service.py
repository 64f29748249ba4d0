"""The service layer: what each command does over its targets (the CLI and the demo call it).

One place builds the objects a command works with (`open_app`, the one call of app.build);
one rule resolves every STORE before any change (`resolve_all`); one loop goes over the
stores and stops once a store was interrupted or the invocation stopped (`each`). Every
result is appended to the caller's list as soon as it is known, so whatever stops the
invocation, its summary lists every store that had run. No click, no rich.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ksdelete import planfile
from ksdelete import probe as probing
from ksdelete.app import App, Settings, build
from ksdelete.cancel import cancel as undo
from ksdelete.discover import MembershipCache
from ksdelete.errors import AccountRefused, KsdeleteError, RefusedError
from ksdelete.executor import Confirm, Executor, RunOptions, Target
from ksdelete.journal import Outcome
from ksdelete.models import Key, PlanOptions, Status, StoreResult
from ksdelete.planner import endpoint_refusal, service_endpoint
from ksdelete.reporting import Reporter
from ksdelete.retry import RetryPolicy
from ksdelete.status import report as read_report
from ksdelete.status import status as read_status

T = TypeVar("T")
STOPPING = (Status.INTERRUPTED, Status.TERMINATED)


class Stoppable(Protocol):
    """What the loop asks of the executor: whether the invocation was stopped (a journal
    failure stops every store after it)."""

    @property
    def stopped(self) -> bool: ...


def open_app(settings: Settings, options: RunOptions, reporter: Reporter, confirm: Confirm,
             *, read_only: bool, policy: RetryPolicy | None = None,
             membership: MembershipCache | None = None) -> App:
    """Gateway, identity, journal and executor for one invocation (app.build)."""
    return build(settings, options, reporter, confirm, read_only=read_only, policy=policy,
                 membership=membership)


def open_for_plan(settings: Settings, saved: planfile.SavedPlan, reporter: Reporter, *,
                  wait: bool, max_wait: float) -> App:
    """`apply`: the objects for a saved plan. Its review was the approval (no prompt); its
    options, stores, keys and KMS endpoint are the run's; credentials of another account are
    refused, naming the plan."""
    options = RunOptions(plan=saved.options, wait=wait, max_wait=max_wait,
                         allowed_accounts=frozenset({saved.account}), interactive=False,
                         approved=saved.stores, plan_id=saved.plan_id,
                         plan_endpoint=saved.endpoint_url)
    try:
        return open_app(settings, options, reporter, lambda snap, plan: True, read_only=False)
    except AccountRefused as exc:
        account = getattr(exc.identity, "account", "unknown")
        raise AccountRefused(
            f"the credentials are for account {account}, but the plan {saved.plan_id} is "
            f"for account {saved.account}; nothing was changed", identity=exc.identity,
            where=str(saved.path), hint="Use credentials for the plan's account") from exc


def check_plan_region(app: App, saved: planfile.SavedPlan) -> None:
    """`apply` only in the plan's Region."""
    if app.identity.region != saved.region:
        raise RefusedError(
            f"the Region is {app.identity.region}, but the plan {saved.plan_id} is for "
            f"{saved.region}; nothing was changed", where=str(saved.path),
            hint=f"Run with --region {saved.region}")


def stopped(executor: Stoppable, results: Sequence[StoreResult]) -> bool:
    """Whether the invocation goes no further: the executor stopped it (a journal failure),
    or the last store was interrupted (Ctrl-C) or terminated (SIGTERM)."""
    return executor.stopped or bool(results and results[-1].status in STOPPING)


def each(executor: Stoppable, items: Iterable[T], one: Callable[[T], StoreResult],
         results: list[StoreResult]) -> None:
    """The loop over stores: `one` for each item, its result appended at once, until the
    invocation stops."""
    for item in items:
        if stopped(executor, results):
            break
        results.append(one(item))


UNRESOLVED_FIX = "Fix or remove it (or pass --missing-ok) and run again"


def resolve_all(executor: Executor, targets: list[Target], *, stop_on_unresolved: bool,
                missing_ok: bool, fix: str = UNRESOLVED_FIX) -> list[StoreResult | None]:
    """Every STORE resolved before any change. A STORE that cannot be resolved (and is not
    missing with --missing-ok, or proven deleted by the journal) stops a changing run
    before it starts: the others are reported `skipped`, nothing changed. Returns each
    target's result if it is already known (None: to be run)."""
    early: list[StoreResult | None] = [executor.run(t) if t.error else None for t in targets]
    blocking = [r for r in early if r is not None and r.status is not Status.DELETED
                and not (r.status is Status.MISSING and missing_ok)]
    if blocking and stop_on_unresolved:
        names = ", ".join(repr(r.ref) for r in blocking)
        for index, target in enumerate(targets):
            if early[index] is None:
                early[index] = StoreResult(
                    ref=target.ref, status=Status.SKIPPED, store=target.store,
                    matched_by=target.matched_by,
                    error={"code": "skipped", "message": f"not started: {names} could not be "
                           f"resolved, so this invocation changed nothing. {fix}"})
    return early


def run_targets(executor: Executor, targets: list[Target], results: list[StoreResult], *,
                changing: bool, missing_ok: bool = False, fix: str = UNRESOLVED_FIX) -> None:
    """The deletion pipeline over resolved targets. A changing run is all or nothing
    (Executor.run_all); a dry run goes store by store. `fix`: what to do about a STORE that
    could not be resolved (a fleet has no --missing-ok)."""
    early = resolve_all(executor, targets, stop_on_unresolved=changing, missing_ok=missing_ok,
                        fix=fix)
    # A --wait run watches the pending keys of every store of the invocation while it waits.
    executor.invocation = tuple(t.store.id for t in targets if t.store is not None)
    if changing:
        ran: list[StoreResult] = []
        try:
            executor.run_all([t for t, e in zip(targets, early, strict=True) if e is None], ran)
        finally:
            rest = iter(ran)
            for done in early:
                result = done or next(rest, None)
                if result is not None:
                    results.append(result)
        return
    each(executor, zip(targets, early, strict=True),
         lambda pair: pair[1] or executor.run(pair[0]), results)


# ---- the commands ---------------------------------------------------------------------------

def delete(app: App, refs: Sequence[str], results: list[StoreResult], *,
           missing_ok: bool) -> None:
    """`delete` (and its --dry-run): every STORE resolved first, then the pipeline."""
    executor = app.executor
    run_targets(executor, [executor.resolve(ref) for ref in refs], results,
                changing=not executor.options.dry_run, missing_ok=missing_ok)


def apply(app: App, saved: planfile.SavedPlan, results: list[StoreResult]) -> None:
    """`apply`: the saved plan's stores, by ID only; all or nothing."""
    executor = app.executor
    run_targets(executor, [executor.resolve_approved(a) for a in saved.stores], results,
                changing=True)


def status(app: App, refs: Sequence[str], results: list[StoreResult]) -> None:
    """`status`: where each STORE stands; reads only."""
    executor = app.executor
    each(executor, refs, lambda ref: read_status(executor, executor.resolve(ref)), results)


def report(app: App, refs: Sequence[str], results: list[StoreResult]) -> None:
    """`report`: what AWS leaves behind of each STORE; reads only."""
    executor = app.executor
    each(executor, refs, lambda ref: read_report(executor, executor.resolve(ref)), results)


def cancel(app: App, refs: Sequence[str], results: list[StoreResult], *, enable: bool,
           connect: bool, confirm: Confirm, planned: Mapping[str, Sequence[Key]]) -> None:
    """`cancel`: undo each STORE's deletion (without STORE: every store of the plan)."""
    executor = app.executor
    each(executor, refs or tuple(planned),
         lambda ref: undo(executor, executor.resolve(ref), enable=enable, connect=connect,
                          confirm=confirm, planned=planned), results)


def planned_keys(saved: planfile.SavedPlan, app: App) -> dict[str, tuple[Key, ...]]:
    """`cancel --plan`: each store's keys as the saved plan lists them, if the plan is for
    this account, Region and KMS endpoint (elsewhere its keys are not these)."""
    refusal = endpoint_refusal(saved.endpoint_url, app.gateway.endpoint_url)
    if (saved.account, saved.region) != (app.identity.account, app.identity.region):
        raise RefusedError(
            f"the plan {saved.plan_id} is for account {saved.account}, {saved.region}, but "
            f"these credentials are for account {app.identity.account}, "
            f"{app.identity.region}; nothing was changed", where=str(saved.path),
            hint="Use credentials and --region of the plan's account and Region")
    if refusal is not None:
        raise refusal.as_error(where=str(saved.path))
    return {r.store.id: r.keys for r in planfile.restore(saved) if r.store is not None}


def save_plan(app: App, results: Sequence[StoreResult], path: Path,
              options: PlanOptions) -> dict[str, Any]:
    """--save-plan: write the dry run's plan (every result `planned`); returns its content."""
    content = planfile.build(
        results, app.identity, options,
        endpoint_url=service_endpoint(app.gateway.endpoint_url), now=app.gateway.server_now())
    planfile.write(path, content)
    return content


def probe(app: App, reporter: Reporter, *, max_wait: float, poll: float,
          left_behind: Callable[[str], None]) -> probing.Observations:
    """`probe`: one throwaway key, used once and scheduled for deletion, and what the watch
    and the gates read of it. Whatever stops it says what is left of the key: an error in
    its message, an interrupt (which lists no store) through `left_behind`."""
    runner = probing.Probe(app.gateway, note=reporter.note)

    def record(operation: str, key_id: str | None) -> AbstractContextManager[Outcome]:
        return app.journal.record(store_id="probe", operation=operation, key_id=key_id)

    try:
        return runner.run(run_id=app.journal.run_id, max_wait=max_wait, poll=poll,
                          record=record)
    except (KsdeleteError, KeyboardInterrupt) as exc:
        left = runner.obs.key_id
        if left:
            told = f"the probe key {left} was left pending deletion (7 days)" \
                if runner.obs.scheduled_at else \
                f"the probe key {left} exists and is NOT scheduled for deletion"
            if isinstance(exc, KsdeleteError):
                exc.what += f"; {told}"
            else:  # Ctrl-C, SIGTERM: the summary lists no store; say what is left
                left_behind(told)
        raise
    finally:
        app.journal.close()
