"""Applies plans through the gateway: a plain interpreter of the planner's steps.

Before every point of no return (scheduling, disconnecting, deleting) it takes a fresh
snapshot and re-plans, so every gate is checked again on what AWS shows at that moment; a
refusal there stops the run and says what was already done. Every change is journalled.

The Executor resolves STORE arguments and runs each store as a StoreRun (ksdelete/run/):
it holds no store's state itself, only what an invocation shares (the gateway, journal,
reporter, locks, the watch, the membership cache).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ksdelete import planner
from ksdelete.errors import (
    AwsError,
    JournalError,
    KsdeleteError,
    LockTimeoutError,
    RefusedError,
    StoreNotFoundError,
    Terminated,
    UsageError,
)
from ksdelete.gateway import Called
from ksdelete.models import (
    STORE_ID,
    ApprovedStore,
    Key,
    KeyStore,
    Leftovers,
    Plan,
    Snapshot,
    Status,
    StoreResult,
)
from ksdelete.phase import PhaseName, StorePhase
from ksdelete.reporting import Reporter, StoreReporter
from ksdelete.run import act, connection, converge, report, survey
from ksdelete.run.base import Confirm, Pending, RunOptions, Target
from ksdelete.run.guard import Guard
from ksdelete.run.store import Services, StoreRun
from ksdelete.watcher import Watcher

if TYPE_CHECKING:
    from ksdelete.workspace import Workspace

__all__ = ["Confirm", "Executor", "RunOptions", "StoreRun", "Target"]

log = logging.getLogger("ksdelete")

# body(run): the work of one store's run (what `run`, `status`, `report` and `cancel` do)
Body = Callable[[StoreRun], None]

_STOPPING = (Status.REFUSED, Status.ERROR, Status.INTERRUPTED, Status.TERMINATED)


@dataclass
class _Decided:
    """A store of a changing run, surveyed and its gates decided, not yet changed."""

    run: StoreRun
    snap: Snapshot
    plan: Plan


class Executor:
    def __init__(self, workspace: Workspace, reporter: Reporter, options: RunOptions,
                 confirm: Confirm) -> None:
        # The scope's workspace: its gateway, journal, membership cache and locks are shared
        # with every store of the same account, Region and endpoint.
        self.workspace = workspace
        self.gw = gateway = workspace.gateway
        self.journal = journal = workspace.journal
        # Each store's events go through its own reporter (its StoreRun's), which names the
        # store to the underlying one; this one is the store being run now ("": the
        # invocation's, before any store), for AWS's retries and the watch's notes.
        self.reporters = reporter
        self.reporter: StoreReporter = reporter.for_store("")
        gateway.on_retry = lambda *retried: self.reporter.retry(*retried)
        self.options = options
        self.confirm = confirm
        self.identity = identity = workspace.identity
        self.lock_dir = workspace.lock_dir
        self.stopped = False  # a journal failure stops the whole invocation
        # The watch: CloudTrail read for use of the keys on their way out (watcher.py).
        self.watcher = Watcher(gateway, journal, own_caller=identity.caller_arn,
                               budget=options.watch_budget, store=workspace.watch_file,
                               note=lambda text: self.reporter.note(text),
                               log_group=options.watch_log_group)
        self.membership = workspace.membership
        guard = Guard(workspace, options,
                      warn=lambda text: self.reporter.note(text, level="warning"))
        self.services = Services(workspace, reporter, options, confirm, guard, self.watcher)
        self.services.on_retry = lambda *retried: self.reporter.retry(*retried)

    @property
    def invocation(self) -> tuple[str, ...]:
        """The stores of this invocation (set by the CLI): a --wait run watches the pending
        keys of every one of them while it waits on one."""
        return self.services.invocation

    @invocation.setter
    def invocation(self, store_ids: tuple[str, ...]) -> None:
        self.services.invocation = store_ids

    def start(self, target: Target, result: StoreResult | None = None) -> StoreRun:
        """A new run of one STORE argument (its result, or one to go on with)."""
        if result is None:
            result = StoreResult(ref=target.ref, store=target.store,
                                 matched_by=target.matched_by)
        return self.services.start(target, result)

    # ---- resolving STORE arguments ------------------------------------------------------

    def resolve(self, ref: str) -> Target:
        """Which store `ref` means. An ID-shaped ref is looked up as an ID only; a ref that
        is one store's ID and another's name is ambiguous and refused."""
        try:
            if STORE_ID.match(ref):
                return self._resolve_id(ref)
            pin = self.journal.pinned(ref)
            store = self.gw.describe_store(name=ref)
            if store:
                return Target(ref, store, "name", pin)
            return Target(ref, matched_by="name", pin=pin, error=StoreNotFoundError(
                f"no custom key store named {ref!r}", where=self.services.where(),
                hint="Check the name and --region; `aws kms describe-custom-key-stores` "
                     "lists them"))
        except KsdeleteError as exc:
            if isinstance(exc, UsageError):
                raise
            return Target(ref, error=exc)

    def _resolve_id(self, ref: str) -> Target:
        by_id = self.gw.describe_store(store_id=ref)
        by_name = self.gw.describe_store(name=ref)
        if by_id and by_name and by_name.id != by_id.id:
            return Target(ref, error=RefusedError(
                f"{ref!r} is the ID of {by_id.id} and the name of {by_name.id}",
                where=self.services.where(), hint=f"Pass {by_name.id} to mean the store "
                f"named {ref!r}; nothing was changed"))
        if by_id:
            return Target(ref, by_id, "id")
        hint = "Check the ID and --region; `aws kms describe-custom-key-stores` " \
            "lists them"
        if by_name:
            hint = (f"A store named {ref!r} exists ({by_name.id}); an ID-shaped "
                    "STORE is only looked up as an ID: pass that ID to act on it")
        return Target(ref, error=StoreNotFoundError(
            f"no custom key store with ID {ref!r}", where=self.services.where(), hint=hint))

    def resolve_approved(self, approved: ApprovedStore) -> Target:
        """A store of a saved plan: looked up by its ID only, never by name (a new store that
        reuses the name is never touched)."""
        try:
            store = self.gw.describe_store(store_id=approved.id)
        except KsdeleteError as exc:
            if isinstance(exc, UsageError):
                raise
            return Target(approved.id, error=exc)
        if store is None:
            return Target(approved.id, matched_by="id", error=StoreNotFoundError(
                f"no custom key store with ID {approved.id!r}", where=self.services.where()))
        return Target(approved.id, store, "id")

    # ---- one STORE argument -------------------------------------------------------------

    def run(self, target: Target) -> StoreResult:
        """The deletion pipeline for one STORE argument, as far as AWS allows now."""
        return self.guarded(target, self._run, gone_is_done=True)

    def _run(self, run: StoreRun) -> None:
        assert run.target.store is not None
        with self.services.guard.locked(run.target.store.id):
            snap, plan = converge.decide(run)
            if self.options.dry_run:
                return
            converge.ask(run, snap, plan)
            converge.confirmed(run, snap, plan)
            converge.go(run, snap, plan)

    def guarded(self, target: Target, body: Body, *, gone_is_done: bool,
                result: StoreResult | None = None, announce: bool = True,
                run: StoreRun | None = None) -> StoreResult:
        """Run `body` for one STORE argument; every outcome, error included, becomes the
        StoreResult the summary and the JSON are built from (`result` or `run`, to go on
        with one). With `gone_is_done`, a store the journal saw deleted counts as deleted
        rather than missing; `announce` tells the reporter a store's section begins."""
        run = run or self.start(target, result)
        result = run.result
        run.gone = set()
        self.reporter = run.reporter
        if announce:
            run.reporter.begin()
        try:
            if target.error is not None:
                raise target.error
            body(run)
        except StoreNotFoundError as exc:
            report.not_found(run, exc, gone_is_done=gone_is_done)
        except Pending as pending:
            result.status = Status.PENDING
            result.resume_after = pending.resume_after
            self.reporter.note(str(pending))
        except UsageError:
            raise  # the whole invocation is wrong, not this store: the CLI exits 2
        except LockTimeoutError as exc:  # another run is at it: not yet (exit 3), no error
            result.status = Status.PENDING
            result.error = {"code": exc.code, "message": str(exc)}
            self.reporter.note(str(exc), level="warning")
            self.reporter.end()
            return result
        except RefusedError as exc:
            result.status = Status.REFUSED
            result.error = exc.as_json()
            self.reporter.note(exc.text, level="refused")
        except KsdeleteError as exc:
            if isinstance(exc, JournalError):
                self.stopped = True
            result.status = Status.ERROR
            result.error = {**exc.as_json(), "code": getattr(exc, "aws_code", exc.code)}
            self.reporter.note(exc.text, level="error")
            log.debug("%s failed", target.ref, exc_info=True)  # the traceback, with --debug
        except KeyboardInterrupt as exc:
            # Stop here; the summary still tells exactly what was done (and the journal too).
            terminated = isinstance(exc, Terminated)
            result.status = Status.TERMINATED if terminated else Status.INTERRUPTED
            result.error = {"code": result.status.value,
                            "message": "stopped by SIGTERM" if terminated
                            else "interrupted by the operator"}
        if result.status is Status.DELETED:
            result.phase = StorePhase.of(PhaseName.DELETED)
        elif result.status is Status.PENDING and result.store is not None:
            # Where the run stopped, from what it saw last (not the plan it started with).
            result.phase = planner.phase_of(Snapshot(result.store, result.keys), None)[1]
        report.report(run)
        self.reporter.end()
        return result

    # ---- several STORE arguments: all or nothing ------------------------------------------

    def run_all(self, targets: list[Target], results: list[StoreResult]) -> None:
        """A changing run over several STORE arguments (or a saved plan's stores) is all or
        nothing: every store is locked, surveyed and its gates decided, and every plan is
        confirmed, before the first point of no return of any store. One refusal (or error)
        refuses them all, with nothing changed in any; and a store whose run is refused or
        fails stops the stores after it from starting. `results` gets one entry per target,
        in order, as soon as it is known."""
        if self.options.dry_run or len(targets) <= 1:
            for target in targets:
                if self.stopped or (results and results[-1].status in (
                        Status.INTERRUPTED, Status.TERMINATED)):
                    break
                results.append(self.run(target))
            return
        with contextlib.ExitStack() as locks:
            surveyed = self._survey_all(targets, locks)
            decided = [s for s in surveyed if isinstance(s, _Decided)]
            done = [s.run.result if isinstance(s, _Decided) else s for s in surveyed]
            blocking = [r for r in done if r.status not in (
                Status.PLANNED, Status.DELETED, Status.MISSING)
                or (r.status is Status.MISSING and not self.options.missing_ok)]
            if not blocking:
                blocking = self._confirm_all(decided)
            if blocking:
                self._refuse_rest(decided, blocking, started=False)
                results.extend(done)
                return
            for index, result in enumerate(done):
                results.append(result)
                state = next((s for s in decided if s.run.result is result), None)
                if state is None or result.status is Status.PENDING:  # deferred
                    continue
                if self.stopped or any(r.status in _STOPPING for r in done[:index]):
                    self._refuse_rest([state], [r for r in done[:index]
                                                if r.status in _STOPPING], started=True)
                    continue
                self.guarded(state.run.target, _going_on(state), gone_is_done=True,
                             run=state.run)

    def _survey_all(self, targets: list[Target], locks: contextlib.ExitStack
                    ) -> list[_Decided | StoreResult]:
        with self.workspace.keys.survey_round():  # one membership scan for all the surveys
            return self._survey_each(targets, locks)

    def _survey_each(self, targets: list[Target], locks: contextlib.ExitStack
                     ) -> list[_Decided | StoreResult]:
        """Lock and survey every store (in the order of their IDs, so that two invocations
        over the same stores cannot hold one lock each and wait for the other)."""
        ids = [t.store.id if t.store is not None else "" for t in targets]
        order = sorted(range(len(targets)), key=lambda i: ids[i])
        surveyed: dict[int, _Decided | StoreResult] = {}
        locked: set[str] = set()
        for index in order:
            decided: list[_Decided] = []

            def body(run: StoreRun, decided: list[_Decided] = decided) -> None:
                assert run.target.store is not None
                if run.target.store.id not in locked:
                    locks.enter_context(self.services.guard.locked(run.target.store.id))
                    locked.add(run.target.store.id)
                snap, plan = converge.decide(run)
                run.result.status = Status.PLANNED  # decided; nothing changed yet
                decided.append(_Decided(run, snap, plan))

            result = self.guarded(targets[index], body, gone_is_done=True)
            surveyed[index] = decided[0] if decided else result
            if result.status in (Status.INTERRUPTED, Status.TERMINATED):
                break
        return [surveyed.get(i) or StoreResult(
            ref=t.ref, status=Status.SKIPPED, store=t.store, matched_by=t.matched_by,
            error={"code": "skipped", "message": "not started: the run was stopped"})
            for i, t in enumerate(targets)]

    def _confirm_all(self, decided: list[_Decided]) -> list[StoreResult]:
        """Every plan confirmed (a prompt per store) before any changes; returns the stores
        not confirmed. A store the confirmation deferred (a fleet's per-run budget: pending,
        nothing changed) is left out, and does not hold the others back."""
        for stage in (converge.ask, converge.confirmed):  # every yes before any is journalled
            for state in decided:
                if state.run.result.status is Status.PENDING:
                    continue  # deferred at the confirmation

                def body(run: StoreRun, st: _Decided = state,
                         stage: Callable[[StoreRun, Snapshot, Plan], None] = stage) -> None:
                    stage(run, st.snap, st.plan)
                    run.result.status = Status.PLANNED

                self.guarded(state.run.target, body, gone_is_done=True, run=state.run,
                             announce=False)
                if state.run.result.status not in (Status.PLANNED, Status.PENDING):
                    return [state.run.result]
        return []

    def _refuse_rest(self, decided: list[_Decided], blocking: list[StoreResult], *,
                     started: bool) -> None:
        """The stores that were ready are refused because of the others (a plan is all or
        nothing); nothing was changed in them."""
        others = [(r.store.id if r.store else r.ref, str(r.status)) for r in blocking]
        for state in decided:
            result = state.run.result
            if result in blocking or result.status is not Status.PLANNED:
                continue
            refusal = planner.all_or_nothing(state.snap.store.id, others, started=started)
            if refusal is None:
                continue
            result.status = Status.REFUSED
            result.phase = planner.refused_phase(refusal)
            error = refusal.as_error()
            result.error = error.as_json()
            self.reporter = self.reporters.for_store(state.run.target.ref)
            self.reporter.begin()
            self.reporter.note(error.text, level="refused")
            self.reporter.end()

    # ---- the toolkit of `status`, `report` and `cancel` (each over a StoreRun) -----------

    def survey(self, run: StoreRun) -> tuple[Snapshot, Plan]:
        """Discover the store and plan it (reads only): what dry runs and `status` show."""
        return survey.survey(run)

    def snapshot(self, run: StoreRun, store_id: str, matched_by: str, *,
                 all_marks: bool = False,
                 unreadable_marks: dict[str, AwsError] | None = None) -> Snapshot:
        """A fresh reading of the store and every key in it (see run.survey.snapshot)."""
        return survey.snapshot(run, store_id, matched_by, all_marks=all_marks,
                               unreadable_marks=unreadable_marks)

    def leftovers(self, store_id: str, *, store: KeyStore | None = None,
                  keys: tuple[Key, ...] = ()) -> Leftovers:
        """What AWS leaves behind of this store (see run.survey.leftovers_of)."""
        return survey.leftovers_of(self.services, store_id, store=store, keys=keys)

    def connect(self, run: StoreRun, store_id: str) -> str:
        return connection.connect(run, store_id)

    def mark(self, run: StoreRun, key: Key) -> None:
        act.mark_scheduled(run, key)

    def mutate(self, result: StoreResult, operation: str, call: Callable[[], Called],
               *, key: Key | None = None,
               already: Callable[[AwsError], str | None] = lambda exc: None,
               detail: dict[str, str] | None = None,
               keep: tuple[str, ...] = ()) -> Called | None:
        """Journal and record one mutating call (see run.act.mutate)."""
        return act.mutate(self.services, result, operation, call, key=key, already=already,
                          detail=detail, keep=keep)

    def stamp(self) -> str:
        return act.stamp(self.services)

    def tag_after_cancel(self, arn: str, tags: dict[str, str]) -> Called:
        return act.tag_after_cancel(self.services, arn, tags)

    def stop_if_cancel_requested(self, result: StoreResult) -> None:
        self.services.guard.stop_if_cancel_requested(result)


def _going_on(state: _Decided) -> Body:
    """The rest of a store's run after every store of the plan was confirmed."""
    def body(run: StoreRun) -> None:
        converge.go(run, state.snap, state.plan)
    return body
