"""Applies plans through the gateway: a plain interpreter of the planner's steps.

Before every point of no return (scheduling, disconnecting, deleting) it takes a fresh
snapshot and re-plans, so every gate is checked again on what AWS shows at that moment; a
refusal there stops the run and says what was already done. Every change is journalled.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from ksdelete import discover, leftovers, planner, signals, watch
from ksdelete.errors import (
    AccessDenied,
    AwsError,
    JournalError,
    KeyAlreadyPendingDeletion,
    KeyInvalidState,
    KeyNotFound,
    KsdeleteError,
    LockTimeoutError,
    OperationUnsupported,
    RefusedError,
    StoreHasKeys,
    StoreInvalidState,
    StoreNotFoundError,
    Terminated,
    UsageError,
)
from ksdelete.gateway import Called, key_from_metadata
from ksdelete.lock import CancelRequest, describe_request
from ksdelete.models import (
    CANCELLED_TAG,
    DISABLED_TAG,
    PENDING_DELETION,
    POINTS_OF_NO_RETURN,
    SCHEDULED_TAG,
    STORE_ID,
    Action,
    ApprovedStore,
    CancelTrail,
    ConnectionState,
    Context,
    Grant,
    Key,
    KeyStore,
    Leftovers,
    Marks,
    Pin,
    Plan,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    Status,
    Step,
    StepKind,
    StoreResult,
    StoreType,
    Usage,
)
from ksdelete.reporting import STEP_PHASE, Phase, PhaseState, Reporter, StoreReporter
from ksdelete.retry import poll_until, retry_while_lagging
from ksdelete.watcher import WATCH_BUDGET, Watcher
from ksdelete.workspace import Workspace

log = logging.getLogger("ksdelete")

# Connecting or disconnecting a store (and waiting for another run's lock) is awaited this
# long (or --max-wait, if shorter) even without --wait: AWS documents up to 20 minutes for a
# CloudHSM connect.
TRANSITION_TIMEOUT = 30 * 60.0
# A run re-plans before each point of no return; this many re-plans without reaching the
# end means AWS keeps changing under it (someone else is at work): stop and say so.
MAX_REPLANS = 50
# A key's last recorded use (GetKeyLastUsage) read this recently is not read again by a later
# snapshot of the same run (KMS records use up to an hour late).
USAGE_REUSE = 300.0
# The watch during --wait: CloudTrail is read again this often (LookupEvents allows 2 per
# second for the whole account; each reading goes back an hour before the last complete one,
# since CloudTrail delivers events late).
WATCH_INTERVAL = 600.0

# confirm(snapshot, plan) -> True to go ahead
Confirm = Callable[[Snapshot, Plan], bool]


@dataclass(frozen=True)
class RunOptions:
    plan: PlanOptions = PlanOptions()
    dry_run: bool = False
    wait: bool = False
    max_wait: float = 7 * 24 * 3600.0
    missing_ok: bool = False
    workers: int = 8
    allowed_accounts: frozenset[str] = frozenset()
    interactive: bool = False  # a person answers the prompt (see Context.interactive)
    approved: tuple[ApprovedStore, ...] = ()  # `apply`: the stores of the saved plan
    plan_id: str | None = None  # `apply`: the saved plan's ID (journalled with ConfirmPlan)
    plan_endpoint: str | None = None  # `apply`: the plan's KMS endpoint (None: AWS's own)
    watch_budget: float = WATCH_BUDGET  # seconds one reading of CloudTrail may take
    watch_log_group: str | None = None  # read this CloudWatch Logs group instead (FilterLogEvents)


@dataclass(frozen=True)
class Target:
    """A STORE argument, resolved before anything changes."""

    ref: str
    store: KeyStore | None = None
    matched_by: str | None = None  # "id" or "name"
    pin: Pin | None = None  # what the journal says this name was confirmed as
    error: KsdeleteError | None = None  # why it could not be resolved


class _Pending(Exception):
    """The run went as far as AWS allows now; come back after `resume_after`."""

    def __init__(self, resume_after: datetime | None, why: str) -> None:
        super().__init__(why)
        self.resume_after = resume_after


@dataclass
class _Decided:
    """A store of a changing run, surveyed and its gates decided, not yet changed."""

    target: Target
    result: StoreResult
    snap: Snapshot
    plan: Plan
    context: Context


_STOPPING = (Status.REFUSED, Status.ERROR, Status.INTERRUPTED, Status.TERMINATED)


class _Rescan(Exception):
    """DeleteCustomKeyStore says the store still has keys, and discovery trusted the key
    membership cache: re-plan from a scan that describes every key."""


class Executor:
    def __init__(self, workspace: Workspace, reporter: Reporter, options: RunOptions,
                 confirm: Confirm) -> None:
        # The scope's workspace: its gateway, journal, membership cache and locks are shared
        # with every store of the same account, Region and endpoint.
        self.workspace = workspace
        self.gw = gateway = workspace.gateway
        self.journal = journal = workspace.journal
        # Each store's events go through its own reporter (`guarded` obtains it), which
        # names the store to the underlying one; "" is the invocation's, before any store.
        self.reporters = reporter
        self.reporter: StoreReporter = reporter.for_store("")
        gateway.on_retry = lambda *retried: self.reporter.retry(*retried)
        self.options = options
        self.confirm = confirm
        self.identity = identity = workspace.identity
        self.lock_dir = workspace.lock_dir
        # The cancel request file beside each lock this run holds, by store ID (a run over
        # several stores holds all their locks), and the request a prompt is lifting.
        self._brakes: dict[str, CancelRequest] = {}
        self._lifted: dict[str, dict[str, str] | None] = {}
        self.stopped = False  # a journal failure stops the whole invocation
        self._deadline = 0.0
        self._result: StoreResult | None = None
        self._context = Context()
        self._gone: set[str] = set()  # keys this run saw NotFound: they never come back
        self._usage: dict[str, tuple[float, Usage]] = {}  # GetKeyLastUsage readings, by key
        # The watch: CloudTrail read for use of the keys on their way out (watcher.py).
        self.watcher = Watcher(gateway, journal, own_caller=identity.caller_arn,
                               budget=options.watch_budget, store=workspace.watch_file,
                               note=lambda text: self.reporter.note(text),
                               log_group=options.watch_log_group)
        self._last_watch = 0.0
        self._orphans: dict[str, tuple[tuple[str, ...], str | None]] = {}
        # The stores of this invocation (set by the CLI): a --wait run watches the pending keys
        # of every one of them while it waits on one, and the keys it saw pending in each.
        self.invocation: tuple[str, ...] = ()
        self._elsewhere: dict[str, tuple[KeyStore, list[Key]]] = {}
        # Which store each key belongs to never changes, so a key seen once outside the
        # target store need not be described again by later scans in this process.
        self.membership = workspace.membership

    # ---- resolving STORE arguments ------------------------------------------------------

    def resolve(self, ref: str) -> Target:
        """Which store `ref` means. An ID-shaped ref is looked up as an ID only; a ref that
        is one store's ID and another's name is ambiguous and refused."""
        try:
            if STORE_ID.match(ref):
                by_id = self.gw.describe_store(store_id=ref)
                by_name = self.gw.describe_store(name=ref)
                if by_id and by_name and by_name.id != by_id.id:
                    return Target(ref, error=RefusedError(
                        f"{ref!r} is the ID of {by_id.id} and the name of {by_name.id}",
                        where=self._where(), hint=f"Pass {by_name.id} to mean the store "
                        f"named {ref!r}; nothing was changed"))
                if by_id:
                    return Target(ref, by_id, "id")
                hint = "Check the ID and --region; `aws kms describe-custom-key-stores` " \
                    "lists them"
                if by_name:
                    hint = (f"A store named {ref!r} exists ({by_name.id}); an ID-shaped "
                            "STORE is only looked up as an ID: pass that ID to act on it")
                return Target(ref, error=StoreNotFoundError(
                    f"no custom key store with ID {ref!r}", where=self._where(), hint=hint))
            pin = self.journal.pinned(ref)
            store = self.gw.describe_store(name=ref)
            if store:
                return Target(ref, store, "name", pin)
            return Target(ref, matched_by="name", pin=pin, error=StoreNotFoundError(
                f"no custom key store named {ref!r}", where=self._where(),
                hint="Check the name and --region; `aws kms describe-custom-key-stores` "
                     "lists them"))
        except KsdeleteError as exc:
            if isinstance(exc, UsageError):
                raise
            return Target(ref, error=exc)

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
                f"no custom key store with ID {approved.id!r}", where=self._where()))
        return Target(approved.id, store, "id")

    def _approved(self, store_id: str) -> ApprovedStore | None:
        return next((a for a in self.options.approved if a.id == store_id), None)

    def _where(self) -> str:
        return f"account {self.identity.account}, {self.identity.region}"

    # ---- one STORE argument -------------------------------------------------------------

    def run(self, target: Target) -> StoreResult:
        """The deletion pipeline for one STORE argument, as far as AWS allows now."""
        return self.guarded(target, self._run, gone_is_done=True)

    def guarded(self, target: Target, body: Callable[[Target, StoreResult], None], *,
                gone_is_done: bool, result: StoreResult | None = None,
                announce: bool = True) -> StoreResult:
        """Run `body` for one STORE argument; every outcome, error included, becomes the
        StoreResult the summary and the JSON are built from (`result`, to go on with one).
        With `gone_is_done`, a store the journal saw deleted counts as deleted rather than
        missing; `announce` tells the reporter a store's section begins."""
        if result is None:
            result = StoreResult(ref=target.ref, store=target.store,
                                 matched_by=target.matched_by)
        self._result = result
        self._gone = set()
        self.reporter = self.reporters.for_store(target.ref)
        if announce:
            self.reporter.begin()
        try:
            if target.error is not None:
                raise target.error
            body(target, result)
        except StoreNotFoundError as exc:
            self._not_found(target, result, exc, gone_is_done=gone_is_done)
        except _Pending as pending:
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
            result.phase = "deleted"
        elif result.status is Status.PENDING and result.store is not None:
            # Where the run stopped, from what it saw last (not the plan it started with).
            result.phase = planner.phase_of(Snapshot(result.store, result.keys), None)[1]
        self._report(result)
        self.reporter.end()
        return result

    def _last_report(self, store_id: str) -> dict[str, Any] | None:
        """What the last changing run reported for this store, when this run is unattended
        and changes AWS (a person at the prompt, a dry run and `status` see everything)."""
        if self.options.dry_run or self.options.interactive:
            return None
        return self.journal.last_report(store_id)

    def _repeating(self, store_id: str, snap: Snapshot, plan: Plan, result: StoreResult
                   ) -> Plan:
        """The plan as this run shows it: warnings the last run already gave in the same phase
        are not repeated (cron mails every run's output); `result.repeated` marks such a run
        until it changes something. A key the last run did not see (one that appeared already
        pending deletion leaves the phase's name as it was) is named, and a waiver that came
        into force since is not "said before": neither run is a repeat."""
        last = self._last_report(store_id)
        phase = planner.phase_of(snap, plan.refusal)[1]
        if last is None or _phase_name(str(last.get("store_phase") or "")) != _phase_name(phase):
            return plan
        seen = last.get("key_ids")
        if not isinstance(seen, list):  # a Report line written before key IDs were kept
            return plan
        said = set(last.get("warnings") or ())
        shown = tuple(w for w in plan.warnings if w not in said)
        new = sorted(snap.key_ids() - set(seen))
        if new:
            note = (f"{len(new)} key(s) in the store that the last run did not see: "
                    f"{', '.join(new[:20])}" + (f" and {len(new) - 20} more" if len(new) > 20
                                                else ""))
            result.warnings.append(note)
            return replace(plan, warnings=(*shown, note))
        waived = {f"{v.gate}: {v.detail}" for v in plan.verdicts if v.verdict == "waived"}
        # A waiver that came into force since the last Report is listed in the summary.
        result.repeated = waived <= set(last.get("waivers") or ())
        return replace(plan, warnings=shown)

    def _report(self, result: StoreResult) -> None:
        """Journal where a changing run left the store (see Journal.report): when it changed
        something, or what it would report differs from the last Report line (a warning that
        went away must be said again when it comes back; a key that appeared is said once)."""
        store_id = result.store.id if result.store else None
        if store_id is None or self.options.dry_run or result.phase is None:
            return
        result.repeated = result.repeated and not any(
            a.outcome == "ok" for a in result.actions) and result.status is Status.PENDING
        last = self._last_report(store_id)
        if result.status is Status.DELETED:
            result.repeated = last is not None and last.get("store_phase") == "deleted"
        plan_warnings = list(result.plan.warnings) if result.plan else []
        warnings = sorted(set(plan_warnings + result.warnings))
        key_ids = sorted(k.id for k in result.keys)
        waivers = sorted(set(result.waivers))
        if last is not None and _phase_name(str(last.get("store_phase") or "")) \
                == _phase_name(result.phase) and warnings == last.get("warnings") \
                and set(key_ids) <= set(last.get("key_ids") or ()) \
                and waivers == last.get("waivers"):
            # Nothing new to remember (keys AWS deleted meanwhile need no new line; a store
            # refused for weeks adds no line a day).
            return
        try:
            self.journal.report(store_id=store_id, store_name=result.store.name
                                if result.store else None, phase=result.phase,
                                warnings=warnings, key_ids=key_ids, waivers=waivers)
        except JournalError as exc:  # the run's outcome stands; the next run says it again
            self.reporter.note(str(exc), level="warning")

    def _not_found(self, target: Target, result: StoreResult, exc: StoreNotFoundError, *,
                   gone_is_done: bool) -> None:
        store_id = result.store.id if result.store else (
            target.ref if STORE_ID.match(target.ref)
            else target.pin.store_id if target.pin else None)
        deleted_at = self.journal.deleted_at(store_id) if store_id else None
        if store_id and gone_is_done and not deleted_at and self._approved(store_id):
            # A store of the saved plan that no longer exists: the plan is the evidence that
            # it was meant to go (its name is never looked up again).
            result.status, result.phase = Status.DELETED, "deleted"
            note = f"{store_id} of the saved plan no longer exists: done"
            result.warnings.append(note)
            self.reporter.phase(Phase.DISCOVER, PhaseState.DONE, note)
            return
        if deleted_at and gone_is_done:
            # Already gone, with evidence: our own journal saw it deleted. Not an error.
            result.status, result.phase = Status.DELETED, "deleted"
            note = f"already deleted at {deleted_at} (per the journal)"
            if store_id != target.ref:
                note = f"{store_id} was {note}"
            result.warnings.append(note)
            last = self._last_report(store_id) if store_id else None
            if last is not None and last.get("store_phase") == "deleted":
                result.repeated = True  # said once is enough (cron mails every run's output)
            else:
                self.reporter.phase(Phase.DISCOVER, PhaseState.DONE, note)
            return
        result.status, result.phase = Status.MISSING, "not-found"
        self.reporter.phase(Phase.DISCOVER, PhaseState.FAILED, exc.what)
        if deleted_at:
            exc.what += f"; {store_id} was deleted at {deleted_at} (per the journal)"
        if self.options.missing_ok:
            result.warnings.append(f"{exc.what}; nothing to do (--missing-ok)")
        else:
            result.error = {"code": exc.code, "message": str(exc)}
            self.reporter.note(str(exc), level="error")

    def _run(self, target: Target, result: StoreResult) -> None:
        assert target.store is not None
        with self._locked(target.store.id):
            snap, plan = self._decide(target, result)
            if self.options.dry_run:
                return
            self._confirm(snap, plan)
            self._go(snap, plan, result)

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
            done = [s.result if isinstance(s, _Decided) else s for s in surveyed]
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
                state = next((s for s in decided if s.result is result), None)
                if state is None:
                    continue
                if self.stopped or any(r.status in _STOPPING for r in done[:index]):
                    self._refuse_rest([state], [r for r in done[:index]
                                                if r.status in _STOPPING], started=True)
                    continue
                self._context = state.context
                self.guarded(state.target, partial(self._go_on, state), gone_is_done=True,
                             result=result)

    def _go_on(self, state: _Decided, target: Target, result: StoreResult) -> None:
        self._go(state.snap, state.plan, result)

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

            def body(target: Target, result: StoreResult, decided: list[_Decided] = decided
                     ) -> None:
                assert target.store is not None
                if target.store.id not in locked:
                    locks.enter_context(self._locked(target.store.id))
                    locked.add(target.store.id)
                snap, plan = self._decide(target, result)
                result.status = Status.PLANNED  # decided; nothing changed yet
                decided.append(_Decided(target, result, snap, plan, self._context))

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
        not confirmed."""
        for stage in (self._ask, self._confirmed):  # every yes before any is journalled
            for state in decided:
                self._context = state.context

                def body(_t: Target, _r: StoreResult, st: _Decided = state,
                         stage: Callable[[Snapshot, Plan], None] = stage) -> None:
                    stage(st.snap, st.plan)
                    st.context = self._context
                    st.result.status = Status.PLANNED

                self.guarded(state.target, body, gone_is_done=True, result=state.result,
                             announce=False)
                if state.result.status is not Status.PLANNED:
                    return [state.result]
        return []

    def _refuse_rest(self, decided: list[_Decided], blocking: list[StoreResult], *,
                     started: bool) -> None:
        """The stores that were ready are refused because of the others (a plan is all or
        nothing); nothing was changed in them."""
        others = [(r.store.id if r.store else r.ref, str(r.status)) for r in blocking]
        for state in decided:
            if state.result in blocking or state.result.status is not Status.PLANNED:
                continue
            refusal = planner.all_or_nothing(state.snap.store.id, others, started=started)
            if refusal is None:
                continue
            state.result.status = Status.REFUSED
            state.result.phase = f"refused ({refusal.reason})"
            error = refusal.as_error()
            state.result.error = error.as_json()
            self.reporter = self.reporters.for_store(state.target.ref)
            self.reporter.begin()
            self.reporter.note(error.text, level="refused")
            self.reporter.end()

    def _decide(self, target: Target, result: StoreResult) -> tuple[Snapshot, Plan]:
        """Survey the store and decide its gates; a refusal stops here (after its remedy)."""
        snap, plan = self.survey(target, result)
        if plan.refusal:
            self.reporter.phase(Phase.PLAN, PhaseState.FAILED, plan.refusal.reason)
            self._stop(plan, snap, result)
        self.reporter.phase(Phase.PLAN, PhaseState.DONE, f"{len(plan.steps)} step(s)")
        if self.options.dry_run:
            result.status = Status.PLANNED
            result.resume_after = plan.earliest_gone
        return snap, plan

    def _confirm(self, snap: Snapshot, plan: Plan) -> None:
        """The operator's yes (prompt or --yes, or the saved plan), journalled."""
        self._ask(snap, plan)
        self._confirmed(snap, plan)

    def _ask(self, snap: Snapshot, plan: Plan) -> None:
        """The operator's yes. A cancel requested since the survey stops an unattended run;
        a person who confirms at the prompt lifts it (journalled with the ConfirmPlan)."""
        assert self._result is not None
        request = self._cancel_request()
        if request is not None and not self.options.interactive:
            self.stop_if_cancel_requested(self._result)  # asked since the survey
        if request is not None:
            self.reporter.note(f"a cancel of this store was {describe_request(request)}; "
                               "confirming lifts it and goes on", level="warning")
        if not self.confirm(snap, plan):
            raise RefusedError("not confirmed; nothing was changed", where=snap.store.id)
        self._lifted[snap.store.id] = request

    def _confirmed(self, snap: Snapshot, plan: Plan) -> None:
        """Journal the confirmation (ConfirmPlan), and remember what it covered."""
        store_id = snap.store.id
        request = self._lifted.pop(store_id, None)
        brake = self._brakes.get(store_id)
        if request is not None and brake is not None:
            brake.lift(request)  # a newer request stays, and stops this run
        self.journal.decision("ConfirmPlan", store_id=store_id, store_name=snap.store.name,
                              store_type=snap.store.type.value,
                              cluster_id=snap.store.cloudhsm_cluster_id,
                              key_ids=sorted(snap.key_ids()),
                              matched_by=snap.matched_by,
                              keys=[_key_record(k) for k in snap.keys],
                              plan_id=self.options.plan_id,
                              waivers=[f"{v.gate}: {v.detail}" for v in plan.verdicts
                                       if v.verdict == "waived"],
                              gates=_gate_options(self.options.plan),
                              **({"lifted_cancel_request": request} if request else {}))
        # What the person confirmed: these keys, and these cancelled keys again (listed
        # at the prompt); a key cancelled after the prompt is refused at the next re-plan.
        self._context = replace(self._context, planned=snap.key_ids(),
                                reconfirmed=frozenset(plan.reconfirm)
                                if self.options.interactive else None)

    def _go(self, snap: Snapshot, plan: Plan, result: StoreResult) -> None:
        """After the confirmation: converge, as far as AWS allows now."""
        self._deadline = time.monotonic() + (self.options.max_wait if self.options.wait else 0)
        self._converge(snap, plan, result)

    def survey(self, target: Target, result: StoreResult) -> tuple[Snapshot, Plan]:
        """Discover the store and plan it (reads only): what dry runs and `status` show."""
        assert target.store is not None
        approved = self._approved(target.store.id)
        brake = self._request_file(target.store.id)
        request = brake.read() if brake is not None else None
        self._context = Context(
            allowed_accounts=self.options.allowed_accounts,
            # A saved plan is the operator's confirmation of exactly its keys.
            confirmed_before=approved.key_ids if approved
            else self.journal.confirmed_keys(target.store.id),
            pin=target.pin,
            interactive=self.options.interactive,
            scheduled_before=frozenset(self.journal.scheduled_keys(target.store.id))
            | self.journal.cancelled_keys(target.store.id),
            approved=approved,
            read_only=self.options.dry_run,
            soaks=self.journal.soak_starts(target.store.id),
            cancel_requested=describe_request(request) if request is not None else None,
            pending_before=self.journal.pending_when_confirmed(target.store.id),
            remembered=self.journal.confirmed_keys(target.store.id) is not None,
            unscheduled_marks=self.journal.unscheduled_marks(target.store.id),
        )
        self.reporter.note(f"{target.ref!r} matched the store {target.matched_by}: "
                           f"{target.store.id} ({target.store.name})")
        snap = self.snapshot(target.store.id, target.matched_by or "id", result)
        self._act_elsewhere(target.store.id, result)
        plan = self._plan(snap, result)
        self.reporter.plan(snap, self._repeating(target.store.id, snap, plan, result))
        return snap, plan

    def snapshot(self, store_id: str, matched_by: str, result: StoreResult, *,
                 all_marks: bool = False,
                 unreadable_marks: dict[str, AwsError] | None = None) -> Snapshot:
        """A fresh reading of the store and every key in it (keys this run saw gone left out).

        ksdelete's marks are read (see _with_marks). With `all_marks` (`cancel`), every key's
        marks, and only they: not what the gates look at (grants, last use, the watch,
        CloudTrail's cancels). With `unreadable_marks` (cancel: one key's failure must not
        stop the others), a key whose tags cannot be read keeps no marks and its error is put
        there; otherwise the error stops the snapshot."""
        self.reporter.phase(Phase.DISCOVER, PhaseState.RUNNING, store_id)
        store = self._read_store(store_id)
        snap = discover.snapshot(
            self.workspace.keys.for_store(store.id), store, matched_by=matched_by,
            workers=self.options.workers,
            cache=self.membership,
            on_progress=lambda done, total, _: self.reporter.progress(Phase.DISCOVER, done, total),
        )
        keys = self._with_marks([k for k in snap.keys if k.id not in self._gone],
                                every=all_marks, errors=unreadable_marks)
        trail = None
        orphaned: tuple[tuple[str, ...] | None, str | None] = (None, None)
        if not all_marks:
            keys = self._with_watch(self._with_evidence(keys), fresh=True,
                                    also=self._keys_elsewhere(store_id))
            trail = self._cancel_trail(store, keys)
            if store.type is StoreType.CLOUDHSM and not keys:
                orphaned = self._orphaned(store)
        snap = replace(snap, identity=self.identity, keys=tuple(keys),
                       observed_at=self.gw.server_now(), cancel_trail=trail,
                       orphaned=orphaned[0], orphaned_error=orphaned[1])
        result.keys, result.undescribable = snap.keys, snap.undescribable
        result.scanned = snap.scanned
        self.reporter.phase(
            Phase.DISCOVER, PhaseState.DONE,
            f"{len(snap.keys)} key(s) in the store, {snap.scanned} scanned",
        )
        return snap

    def _with_marks(self, keys: list[Key], *, every: bool = False,
                    errors: dict[str, AwsError] | None = None) -> list[Key]:
        """The store's keys with ksdelete's marks (tags) read from AWS: those not pending
        deletion (one no longer pending may have been cancelled), and pending ones too with
        `every` or where this journal does not remember the store's confirmation (a mark on a
        pending key shows, on any machine, that the deletion was confirmed, so a key without
        one appeared since, and when)."""
        every = every or not self._context.remembered
        wanted = [k for k in keys if every or not k.pending]
        if not wanted:
            return keys

        def read(key: Key) -> dict[str, str] | AwsError:
            try:
                return self.gw.list_resource_tags(key.arn)
            except AwsError as exc:
                if errors is None:
                    raise
                return exc

        with ThreadPoolExecutor(max_workers=min(8, len(wanted)),
                                thread_name_prefix="tags") as pool:
            read_tags = dict(zip((k.id for k in wanted), pool.map(read, wanted), strict=True))
        tags = {key_id: t for key_id, t in read_tags.items() if not isinstance(t, AwsError)}
        if errors is not None:
            errors.update({key_id: t for key_id, t in read_tags.items()
                           if isinstance(t, AwsError)})
        return [replace(k, marks=Marks.from_tags(tags[k.id]),
                        tags=tuple(sorted(tags[k.id].items()))) if k.id in tags else k
                for k in keys]

    def _orphaned(self, store: KeyStore) -> tuple[tuple[str, ...], str | None]:
        """A CloudHSM store with no key left: the keys whose DeleteKey event says their HSM
        key material was not deleted (CloudTrail), and why it could not be read. Keys once
        deleted stay deleted: a reading that worked is kept for the rest of the run."""
        seen = self._orphans.get(store.id)
        if seen is not None:
            return seen
        left = self.leftovers(store.id, store=store)
        error = next((n for n in left.notes if n.startswith("CloudTrail could not be read")),
                     None)
        found = (tuple(k.id for k in left.orphaned), error)
        if error is None:
            self._orphans[store.id] = found
        return found

    def _cancel_trail(self, store: KeyStore, keys: list[Key]) -> CancelTrail | None:
        """CloudTrail's CancelKeyDeletion events for the store's keys since its deletion was
        first confirmed, read where this journal does not remember the confirmation (the
        saved plan's time, or the earliest of ksdelete's marks on the keys), or to tell who
        cancelled a key the journal knows was pending. None: not needed (nothing could be
        scheduled again, or there was no confirmation before this run)."""
        ctx = self._context
        if all(k.pending for k in keys):
            return None
        if ctx.remembered:
            probe = Snapshot(store, tuple(keys))
            untold = [k for k in planner.cancelled_keys(probe, ctx)
                      if not (k.marks and k.marks.cancelled)]
            confirmed = self.journal.confirmed_since(store.id)
            if not untold or confirmed is None:
                return None
            since = _parse_time(confirmed)
        else:
            times = [ctx.approved.created_at] if ctx.approved else []
            times += [_parse_time((mark or "").split(" ", 1)[0]) for k in keys if k.marks
                      for mark in (k.marks.scheduled, k.marks.disabled, k.marks.cancelled)
                      if mark]
            since = min((t for t in times if t is not None), default=None)
        if since is None:
            return None
        if self.options.plan.on_use == "ignore":
            return CancelTrail(since, error="not read (--on-use ignore)")
        arns = {k.arn: k.id for k in keys if not k.pending}
        try:
            events = watch.read_cancels(
                self.gw.lookup_events(("EventName", "CancelKeyDeletion"),
                                      since - timedelta(seconds=1)), arns, since)
        except AwsError as exc:
            return CancelTrail(since, error=exc.aws_code or exc.code)
        return CancelTrail(since, events)

    def _with_evidence(self, keys: list[Key]) -> list[Key]:
        """What the preflight gates look at, for the keys about to be scheduled: grants
        (ListGrants) and, with --unused-for, the last recorded use (GetKeyLastUsage, 5 per
        second). A reading of the last use younger than USAGE_REUSE seconds is reused: KMS
        records use up to an hour late, so reading it again sooner tells nothing new."""
        wanted = [k for k in keys if not k.pending]
        if not wanted:
            return keys
        read_usage = self.options.plan.unused_for_days > 0
        self.reporter.note(f"reading grants{' and last use' if read_usage else ''} of "
                           f"{len(wanted)} key(s)")

        def evidence(key: Key) -> Key:
            grants: tuple[Grant, ...] | None
            try:
                grants = self.gw.list_grants(key.arn)
            except (AccessDenied, KeyNotFound):
                grants = None
            usage = None
            if read_usage:
                seen = self._usage.get(key.id)
                if seen and time.monotonic() - seen[0] < USAGE_REUSE:
                    usage = seen[1]
                else:
                    usage = self._last_usage(key)
                    self._usage[key.id] = (time.monotonic(), usage)
            return replace(key, grants=grants, usage=usage)

        with ThreadPoolExecutor(max_workers=min(8, len(wanted)),
                                thread_name_prefix="evidence") as pool:
            read = {k.id: k for k in pool.map(evidence, wanted)}
        return [read.get(k.id, k) for k in keys]

    def _with_watch(self, keys: list[Key], *, fresh: bool,
                    also: Iterable[Key] = ()) -> list[Key]:
        """The watch over keys pending deletion (or in a soak): failed uses since each key's
        latest scheduling, from CloudTrail, one LookupEvents chain per event name for all keys
        (watcher.py). With `fresh`, read again (`also`: other stores' keys of this
        invocation, read in the same chains); else reuse what the last reading saw."""
        pending = [k for k in keys if k.pending or k.soaking]
        if self.options.plan.on_use == "ignore" or not pending:
            return keys
        if fresh:
            watched = {k.arn: k for k in (*pending, *also) if k.pending or k.soaking}
            self.reporter.note(f"watching CloudTrail for use of {len(watched)} key(s) on the "
                               "way out")
            self._last_watch = time.monotonic()
            self.watcher.read(watched.values())
            if not any(k.watch and k.watch.attempts for k in self._watched(pending)):
                # It stopped early for another store's key (acted on by _act_elsewhere): this
                # store's keys need the whole reading.
                self.watcher.finish()
        return self._watched(keys)

    def _keys_elsewhere(self, store_id: str) -> list[Key]:
        """With --wait, the pending keys of the invocation's other stores: a run that waits
        on one store for days must not let another store's key, still wanted, be deleted
        meanwhile. Each store is scanned once; later readings re-describe its pending keys."""
        if not self.options.wait or self.options.plan.on_use == "ignore":
            return []
        keys: list[Key] = []
        for other in self.invocation:
            if other == store_id:
                continue
            try:
                if other not in self._elsewhere:
                    store = self.gw.describe_store(store_id=other)
                    if store is None:
                        continue
                    snap = discover.snapshot(self.gw, store, matched_by="id",
                                             workers=self.options.workers, cache=self.membership)
                    self._elsewhere[other] = (store, [k for k in snap.keys if k.pending])
                else:
                    store, pending = self._elsewhere[other]
                    _, still = discover.recheck_keys(self.gw, pending)
                    self._elsewhere[other] = (store, [k for k in still if k.pending])
            except AwsError as exc:  # that store's own run will say what is wrong
                self.reporter.note(f"cannot read the keys of {other} to watch them while "
                                   f"waiting: {exc.aws_code}", level="warning")
                continue
            keys += self._elsewhere[other][1]
        return keys

    def _act_elsewhere(self, store_id: str, result: StoreResult) -> None:
        """Someone tried to use a pending key of another store of this invocation: cancel its
        deletion now (that store's own turn then refuses, as the gates say), and say so."""
        for other, (store, pending) in self._elsewhere.items():
            if other == store_id or not pending:
                continue
            snap = Snapshot(store, tuple(self._watched(pending)), identity=self.identity,
                            observed_at=self.gw.server_now())
            verdict = planner.no_use_while_pending(
                snap, self.options.plan, Context(read_only=self.options.dry_run))
            if not isinstance(verdict, Refusal) \
                    or verdict.reason is not RefusalReason.USED_WHILE_PENDING:
                continue
            plan = planner.plan(snap, self.options.plan, self.gw.server_now(),
                                Context(read_only=self.options.dry_run))
            if plan.refusal is None or plan.refusal.reason is not \
                    RefusalReason.USED_WHILE_PENDING:
                plan = replace(plan, refusal=verdict, remedy=None if self.options.dry_run
                               or self.options.plan.on_use != "cancel" else Step(
                                   StepKind.CANCEL_KEY_DELETION, key_ids=verdict.key_ids))
            there = StoreResult(ref=other, store=store)
            self._remedy(plan, snap, there)
            cancelled = [a.key_id for a in there.actions
                         if a.operation == "CancelKeyDeletion" and a.outcome == "ok"]
            result.warnings.append(f"while waiting on {store_id}: {verdict.message}"
                                   + (f"\ncancelled: {', '.join(k for k in cancelled if k)}"
                                      if cancelled else ""))
            self.reporter.note(result.warnings[-1], level="warning")
            used = set(verdict.key_ids)
            self._elsewhere[other] = (store, [k for k in pending if k.id not in used])

    def _watched(self, keys: Iterable[Key]) -> list[Key]:
        out = []
        for key in keys:
            seen = self.watcher.watch_of(key) if key.pending or key.soaking else None
            out.append(replace(key, watch=seen) if seen is not None else key)
        return out

    def _stop(self, plan: Plan, snap: Snapshot, result: StoreResult, done: str = "") -> None:
        """A gate refused: first make the refused state safe (the plan's remedy: cancel the
        deletion of keys someone tried to use), unless this run only reads; then stop."""
        assert plan.refusal is not None
        self._remedy(plan, snap, result, done)
        if plan.refusal.reason in (RefusalReason.USED_WHILE_PENDING,
                                   RefusalReason.USED_WHILE_DISABLED) and self.watcher.finish():
            # The watch acted on the first attempts it found; the rest of CloudTrail may name
            # more keys: read it to the end (within the budget) and act on those too.
            snap = replace(snap, keys=tuple(self._watched(snap.keys)))
            plan = self._plan(snap, result)
            if plan.refusal is None:  # cannot be (the same attempts are still there)
                raise KsdeleteError("the watch lost the attempts it acted on", where=snap.store.id)
            self._remedy(plan, snap, result, done)
        assert plan.refusal is not None
        raise _refusal_error(plan.refusal, snap.store.id, done or self._done(result))

    def _remedy(self, plan: Plan, snap: Snapshot, result: StoreResult, done: str = "") -> None:
        """The refused state made safe: the deletion of keys someone tried to use cancelled
        (unless this run only reads, or this run already cancelled them)."""
        assert plan.refusal is not None
        remedy = plan.remedy
        failed: dict[str, AwsError] = {}
        if remedy is not None and not self.options.dry_run:
            keys = {k.id: k for k in snap.keys}
            who = self.identity.caller_arn
            # Keys this run cancelled already (the watch read on and re-planned) are done.
            before = {k for k in remedy.key_ids
                      if result_outcome(result, k, "CancelKeyDeletion") is not None}
            for key_id in remedy.key_ids:
                key = keys[key_id]
                if key_id in before:
                    continue
                try:
                    self.mutate(result, "CancelKeyDeletion",
                                partial(self.gw.cancel_key_deletion, key.arn),
                                key=key, already=not_pending)
                except AwsError as exc:  # one key's error must not leave the others pending
                    failed[key_id] = exc
                    self.reporter.note(f"{key_id}: CancelKeyDeletion failed: {exc.aws_code}: "
                                       f"{exc.what}", level="error")
                    continue
                if result_outcome(result, key_id) == "already-gone":
                    continue
                use = key.watch.attempts[0].operation if key.watch and key.watch.attempts else ""
                stamp = self.stamp()
                value = tag_value(f"{stamp} by={who} watch={use}")
                try:
                    self.mutate(result, "TagResource",
                                partial(self.tag_after_cancel, key.arn, {CANCELLED_TAG: value}),
                                key=key)
                except AwsError as exc:
                    result.warnings.append(f"{key_id}: could not record the cancel on the key "
                                           f"({exc.aws_code})")
            gone = [k for k in remedy.key_ids if k not in before
                    and result_outcome(result, k) == "already-gone"]
            cancelled = [k for k in remedy.key_ids if k not in failed and k not in gone
                         and k not in before]
            if cancelled:
                self.reporter.note(f"cancelled the deletion of {len(cancelled)} key(s) "
                                   f"someone tried to use: {', '.join(cancelled)}",
                                   level="warning")
            if gone:
                result.warnings.append(f"already deleted, too late to cancel: {', '.join(gone)}")
            if failed:
                # The key someone uses is still on its way out: that is no refusal with
                # "nothing changed", it is a failure the operator must act on now.
                why = "; ".join(f"{k} ({e.aws_code}: {e.what})" for k, e in failed.items())
                raise KsdeleteError(
                    f"{plan.refusal.summary}, BUT the deletion of {len(failed)} of these "
                    "key(s) could not be cancelled: they are still pending deletion",
                    where="" if snap.store.id in plan.refusal.summary else snap.store.id,
                    hint="Cancel them now: grant kms:CancelKeyDeletion and run `ksdelete "
                         f"cancel {snap.store.id}`, or `aws kms cancel-key-deletion`",
                    details=(f"not cancelled: {why}", *plan.refusal.details,
                             done or self._done(result)), key_ids=tuple(failed))

    def _last_usage(self, key: Key) -> Usage:
        try:
            return self.gw.get_key_last_usage(key.arn)
        except (AccessDenied, KeyNotFound) as exc:
            return Usage(error=exc.aws_code or exc.code)
        except OperationUnsupported as exc:  # an old botocore, or an endpoint without it
            return Usage(error=exc.what)

    def _plan(self, snap: Snapshot, result: StoreResult) -> Plan:
        plan = planner.plan(snap, self.options.plan, self.gw.server_now(), self._context)
        result.plan, result.phase = plan, plan.phase
        self._journal_waivers(snap.store, _record(plan, result))
        return plan

    def _journal_waivers(self, store: KeyStore, new: list[str]) -> None:
        """A gate waived after the confirmation (its ConfirmPlan lists the waivers then) is
        journalled when it is first waived: every waiver is on record."""
        waived = [line.removeprefix("waived ") for line in new if line.startswith("waived ")]
        if waived and self._context.planned is not None and not self.options.dry_run:
            self.journal.decision("Waiver", store_id=store.id, store_name=store.name,
                                  key_ids=[], waivers=waived)

    @contextlib.contextmanager
    def _locked(self, store_id: str) -> Iterator[None]:
        """One run per store at a time on this machine (dry runs need no lock)."""
        if self.options.dry_run or self.lock_dir is None:
            yield
            return
        lock = self.workspace.lock(store_id)
        assert lock is not None
        timeout = self.options.max_wait if self.options.wait else min(
            TRANSITION_TIMEOUT, self.options.max_wait)
        try:
            lock.acquire(timeout, on_wait=lambda text: self.reporter.note(text, level="warning"))
        except UsageError as exc:  # this store only: other stores may already have changed
            raise KsdeleteError(exc.what, where=exc.where, hint=exc.hint) from exc
        self.journal.reload()  # the run that held the lock may have written to it
        brake = self._request_file(store_id)
        if brake is not None:
            self._brakes[store_id] = brake
        try:
            yield
        finally:
            self._brakes.pop(store_id, None)
            lock.release()

    def _request_file(self, store_id: str) -> CancelRequest | None:
        """Where a `ksdelete cancel` of the store leaves its request (beside the lock)."""
        return self.workspace.cancel_request(store_id)

    def _cancel_request(self) -> dict[str, str] | None:
        """A `ksdelete cancel` of the store this run holds the lock of, if one was requested."""
        store = self._result.store if self._result is not None else None
        brake = self._brakes.get(store.id) if store is not None else None
        return brake.read() if brake is not None else None

    def stop_if_cancel_requested(self, result: StoreResult) -> None:
        """The brake: called right before every point of no return (each key scheduled or
        disabled, a disconnect, a delete). A cancel request beside the store's lock stops
        the run there, refused, saying what it had already done."""
        request = self._cancel_request()
        if request is not None:
            done = self._done(result)
            raise RefusedError(
                "a cancel of this store was requested: this run stops here",
                where=result.store.id if result.store else "",
                hint="To go on, a person must confirm again (`ksdelete STORE` at a terminal, "
                     "without --yes)",
                details=(f"the cancel was {describe_request(request)}", done,
                         "`ksdelete cancel` undoes what was done"))

    # ---- converging -------------------------------------------------------------------------

    def _converge(self, snap: Snapshot, plan: Plan, result: StoreResult) -> None:
        """Apply the plan step by step; before each point of no return, re-plan from a fresh
        snapshot and follow that plan instead (every gate is evaluated again)."""
        steps = list(plan.steps)
        replans = 0
        replanned = False  # steps come from a plan made on a snapshot taken just now
        uncached = False  # ... and that snapshot described every key (no membership cache)
        while steps:
            step = steps[0]
            # Before a disconnect, every key is described: a wrong cache entry must not hide
            # a live key of the store that the disconnect would make Unavailable.
            whole = step.kind is StepKind.DISCONNECT_STORE
            if step.kind in POINTS_OF_NO_RETURN and not (replanned and (uncached or not whole)):
                self.stop_if_cancel_requested(result)
                replans += 1
                if replans > MAX_REPLANS:
                    raise KsdeleteError("the store keeps changing under this run",
                                        where=snap.store.id,
                                        hint="Check who else is working on it, then run again")
                with self.membership.set_aside() if whole else contextlib.nullcontext():
                    snap = self.snapshot(snap.store.id, snap.matched_by, result)
                fresh = self._plan(snap, result)
                if fresh.refusal:
                    self.reporter.phase(STEP_PHASE[step.kind], PhaseState.FAILED,
                                        fresh.refusal.reason)
                    self._stop(fresh, snap, result)
                steps, replanned = list(fresh.steps), True  # AWS may have moved on: follow it
                uncached = whole
                continue
            replanned = False
            phase = STEP_PHASE[step.kind]
            self.reporter.phase(phase, PhaseState.RUNNING, step.detail)
            try:
                detail = self._apply(step, snap, result)
            except _Rescan as rescan:
                self.reporter.note(str(rescan), level="warning")
                continue  # not re-planned: the point of no return takes a fresh snapshot
            self.reporter.phase(phase, PhaseState.DONE, detail)
            steps.pop(0)
        result.status = Status.DELETED
        result.keys = ()
        result.leftovers = self.leftovers(snap.store.id, store=snap.store)
        for line in leftovers.lines(result.leftovers)[1:]:
            alarming = "ORPHANED" in line or "not confirmed" in line
            self.reporter.note(line.strip(), level="warning" if alarming else "info")

    def leftovers(self, store_id: str, *, store: KeyStore | None = None,
                  keys: tuple[Key, ...] = ()) -> Leftovers:
        """What AWS leaves behind of this store: from what the journal kept when its keys
        were confirmed (and `keys` seen now), and CloudTrail's DeleteKey events."""
        known, records = self.journal.confirmed_store(store_id)
        if store is not None:
            known.update(store_name=store.name, store_type=store.type.value,
                         cluster_id=store.cloudhsm_cluster_id or known.get("cluster_id"))
        for key in keys:
            records.setdefault(key.id, _key_record(key))
        if known.get("store_type") != StoreType.CLOUDHSM.value:
            return leftovers.report(known, records)
        start = self.gw.server_now() - timedelta(days=90)  # all of Event history
        try:
            # A journal with no key of the store (another machine confirmed it) cannot say
            # when to stop: read all of it, for the events that name the store.
            return leftovers.report(known, records,
                                    self.gw.lookup_events(("EventName", "DeleteKey"), start),
                                    by_store=not records)
        except AwsError as exc:
            left = leftovers.report(known, records)
            return replace(left, notes=(*left.notes, f"CloudTrail could not be read "
                                        f"({exc.aws_code}): the material's fate is unknown"))

    def _done(self, result: StoreResult) -> str:
        """What this run already changed, for a refusal at a later point of no return."""
        done = [a for a in result.actions if a.outcome == "ok"]
        if not done:
            return NOTHING_DONE
        counts: dict[str, int] = {}
        for action in done:
            counts[action.operation] = counts.get(action.operation, 0) + 1
        listed = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items())
        return f"already done by this run: {listed}; nothing further was changed"

    def _apply(self, step: Step, snap: Snapshot, result: StoreResult) -> str:
        store_id = snap.store.id
        match step.kind:
            case StepKind.CONNECT_STORE:
                return self.connect(store_id, result)
            case StepKind.AWAIT_CONNECTED:
                store = self._await_state(store_id, ConnectionState.CONNECTED)
                return f"store is {store.connection_state}"
            case StepKind.DISABLE_KEYS:
                return self._disable(step, snap, result)
            case StepKind.AWAIT_SOAK:
                return self._await_soak(snap, result)
            case StepKind.SCHEDULE_KEY_DELETION:
                return self._schedule(step, snap, result)
            case StepKind.AWAIT_KEYS_DELETED:
                return self._await_keys(snap, result)
            case StepKind.DISCONNECT_STORE:
                return self._disconnect(store_id, result)
            case StepKind.AWAIT_DISCONNECTED:
                store = self._await_state(store_id, ConnectionState.DISCONNECTED)
                return f"store is {store.connection_state}"
            case StepKind.DELETE_STORE:
                return self._delete(store_id, result)
            case StepKind.VERIFY_DELETED:
                return self._verify(store_id)
        raise AssertionError(step.kind)  # pragma: no cover

    def mutate(self, result: StoreResult, operation: str, call: Callable[[], Called],
               *, key: Key | None = None,
               already: Callable[[AwsError], str | None] = lambda exc: None,
               detail: dict[str, str] | None = None,
               keep: tuple[str, ...] = ()) -> Called | None:
        """Journal and record one mutating call. An error that `already` names (e.g. a key
        already pending deletion) is recorded with that outcome and returns None."""
        assert result.store is not None
        key_id = key.id if key else None
        with signals.held(), \
                self.journal.record(store_id=result.store.id, store_name=result.store.name,
                                 operation=operation, key_id=key_id,
                                 key_arn=key.arn if key else None) as outcome:
            outcome.detail.update(detail or {})
            try:
                called = call()
            except AwsError as exc:
                label = already(exc)
                result.actions.append(Action(operation, label or f"error:{exc.aws_code}",
                                             key_id, exc.request_id, datetime.now(UTC)))
                if label is None:
                    raise
                outcome.request_id = exc.request_id
                outcome.detail["already"] = label
                return None
            # Recorded before the journal's result line: if that write fails, the report
            # still lists what AWS did.
            result.actions.append(Action(operation, "ok", key_id, called.request_id,
                                         datetime.now(UTC)))
            outcome.request_id = called.request_id
            for member in keep:  # e.g. the DeletionDate: when the key was scheduled, exactly
                value = called.response.get(member)
                if value is not None:
                    outcome.detail[_snake(member)] = value.isoformat() \
                        if isinstance(value, datetime) else str(value)
        return called

    def _read_store(self, store_id: str) -> KeyStore:
        store = self.gw.describe_store(store_id=store_id)
        if store is None:
            raise StoreNotFoundError(f"the store {store_id} no longer exists",
                                     where="DescribeCustomKeyStores")
        if self._result is not None:
            self._result.store = store  # the report shows the latest state seen
        return store

    def _transition_timeout(self) -> float:
        if self.options.wait:
            return max(0.0, self._deadline - time.monotonic())
        return min(TRANSITION_TIMEOUT, self.options.max_wait)

    def _await_state(self, store_id: str, target: ConnectionState) -> KeyStore:
        def done(store: KeyStore) -> bool:
            return store.connection_state is target or (
                target is ConnectionState.CONNECTED
                and store.connection_state is ConnectionState.FAILED
            )

        policy = self.gw.policy
        store = poll_until(
            lambda: self._read_store(store_id), done, call="DescribeCustomKeyStores",
            timeout=self._transition_timeout(), initial=policy.poll_initial,
            maximum=policy.poll_max, policy=policy, on_retry=self.reporter.retry,
            on_poll=self._poll_note, describe=lambda s: f"store is {s.connection_state}",
        )
        if store.connection_state is ConnectionState.FAILED:
            raise KsdeleteError(
                f"connecting the store failed: {store.connection_error_code}",
                where=store_id, hint="Fix the cluster or proxy, then run again"
                + ("" if self.options.plan_id else " with --connect"),
            )
        if store.connection_state is not target:
            raise _Pending(None, f"the store is still {store.connection_state}; run again later")
        return store

    def _poll_note(self, call: str, attempt: int, delay: float, why: str) -> None:
        self.reporter.note(f"{why}; checking again in {delay:.1f}s")

    def connect(self, store_id: str, result: StoreResult) -> str:
        store = self._read_store(store_id)
        if store.connection_state is ConnectionState.FAILED:
            self.mutate(result, "DisconnectCustomKeyStore",
                        lambda: self.gw.disconnect_store(store_id), already=_store_moved_on)
            store = self._await_state(store_id, ConnectionState.DISCONNECTED)
        elif store.connection_state is ConnectionState.DISCONNECTING:
            store = self._await_state(store_id, ConnectionState.DISCONNECTED)
        if store.connection_state is ConnectionState.DISCONNECTED:
            self.mutate(result, "ConnectCustomKeyStore", lambda: self.gw.connect_store(store_id),
                        already=_store_moved_on)
            return "connect requested"
        return f"already {store.connection_state}"

    def _schedule(self, step: Step, snap: Snapshot, result: StoreResult) -> str:
        assert step.window_days is not None
        days = step.window_days
        keys = {k.id: k for k in snap.keys}
        total = len(step.key_ids)
        done = 0

        def one(key_id: str) -> Key | None:
            key = keys[key_id]
            self.stop_if_cancel_requested(result)
            self.mark(result, key)
            try:
                called = self.mutate(
                    result, "ScheduleKeyDeletion",
                    lambda: self.gw.schedule_key_deletion(key.arn, days), key=key,
                    already=_already_scheduled,
                    detail={"prior_state": key.state, "window_days": str(days)},
                    keep=("DeletionDate",),
                )
            except AccessDenied as exc:
                raise _explain_denied(exc, key, self.gw.server_now()) from exc
            if called is None and result_outcome(result, key_id) == "already-gone":
                return None
            deletion = called.response.get("DeletionDate") if called else None
            if isinstance(deletion, datetime):  # the watch knows when this key was scheduled
                self.watcher.scheduled[key.arn] = (deletion, days)
            try:
                return self._confirm_pending(
                    replace(key, deletion_date=deletion or key.deletion_date))
            except KeyNotFound:
                return None  # scheduled, and already past its window (a fast clock): gone

        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="schedule")
        try:
            futures = {pool.submit(one, key_id): key_id for key_id in step.key_ids}
            for future in as_completed(futures):
                key = future.result()
                done += 1
                if key is None:
                    self._gone.add(futures[future])
                    keys.pop(futures[future], None)
                else:
                    keys[key.id] = key
                result.keys = tuple(keys.values())
                self.reporter.progress(Phase.SCHEDULE, done, total)
        finally:
            # On Ctrl-C or an error, keys not yet started are not scheduled at all.
            pool.shutdown(wait=True, cancel_futures=True)
        outcomes = [a.outcome for a in result.actions if a.operation == "ScheduleKeyDeletion"]
        already = outcomes.count("already-done") + outcomes.count("already-gone")
        return f"{total - already} scheduled, {already} already pending or gone, {days}-day window"

    def _disable(self, step: Step, snap: Snapshot, result: StoreResult) -> str:
        """--disable-first: mark each key (the soak's start and its state before), then
        DisableKey (5 per second). A failed use of a disabled key is what the soak watches
        for in CloudTrail; `ksdelete cancel --enable` brings the keys back."""
        keys = {k.id: k for k in snap.keys}
        stamp = self.stamp()
        reconfirmed = self._context.reconfirmed or frozenset()
        for done, key_id in enumerate(step.key_ids, 1):
            key = keys[key_id]
            self.stop_if_cancel_requested(result)
            # The state to restore is the one before ksdelete first changed the key.
            prior = (key.marks.field("prior") if key.marks else None) or key.state
            days = step.soak_days or self.options.plan.disable_first_days
            value = f"{stamp} prior={prior} days={days} run={self.journal.run_id}"
            self.mutate(result, "TagResource",
                        partial(self.gw.tag_resource, key.arn, {DISABLED_TAG: value}), key=key)
            old = [t for t, v in ((CANCELLED_TAG, key.marks and key.marks.cancelled),
                                  (SCHEDULED_TAG, key.marks and key.marks.scheduled)) if v]
            if old and key.id in reconfirmed:
                # A person confirmed it again, knowing it was cancelled: a new soak begins,
                # and the old marks would keep it from ever being seen as soaking.
                self.mutate(result, "UntagResource",
                            partial(self.gw.untag_resource, key.arn, old), key=key)
            try:
                self.mutate(result, "DisableKey", partial(self.gw.disable_key, key.arn),
                            key=key, detail={"prior_state": key.state, "soak_days": str(days)})
            except AccessDenied as exc:
                raise _explain_denied(exc, key, self.gw.server_now()) from exc
            marks = replace(key.marks or Marks(), disabled=value,
                            **({"cancelled": None, "scheduled": None}
                               if old and key.id in reconfirmed else {}))
            keys[key_id] = replace(key, marks=marks, state="Disabled")
            result.keys = tuple(keys.values())
            self.reporter.progress(Phase.SCHEDULE, done, len(step.key_ids))
        return f"{len(step.key_ids)} key(s) disabled for a " \
            f"{step.soak_days or self.options.plan.disable_first_days}-day soak"

    def _await_soak(self, snap: Snapshot, result: StoreResult) -> str:
        """Wait out the soak: without --wait, come back later (exit 3); with --wait, sleep,
        and re-plan every WATCH_INTERVAL (the watch reads CloudTrail) until it ends."""
        plan = result.plan
        until = plan.soak_until if plan else None
        while until is not None and self.gw.server_now() < until:
            left = (until - self.gw.server_now()).total_seconds()
            if not self.options.wait or time.monotonic() + left > self._deadline + WATCH_INTERVAL:
                raise _Pending(until, f"the soak runs until {until:%Y-%m-%d %H:%M} UTC: run "
                                      "again after it (nothing is scheduled before)")
            self.gw.policy.sleep(max(1.0, min(left, WATCH_INTERVAL,
                                              self.gw.policy.poll_max)))
            fresh_snap = self.snapshot(snap.store.id, snap.matched_by, result)
            fresh = self._plan(fresh_snap, result)
            if fresh.refusal:
                self._stop(fresh, fresh_snap, result)
            until = fresh.soak_until
        return "the soak is over"

    def tag_after_cancel(self, arn: str, tags: dict[str, str]) -> Called:
        """TagResource right after CancelKeyDeletion: AWS may still see the key pending
        deletion for a moment (KMSInvalidStateException); retried within the consistency
        window before the caller warns."""
        return retry_while_lagging(
            lambda: self.gw.tag_resource(arn, tags), call="TagResource",
            lagging=lambda exc: isinstance(exc, KeyInvalidState), policy=self.gw.policy,
            on_retry=self.reporter.retry)

    def stamp(self) -> str:
        """AWS's time now, as ksdelete writes it into its marks on keys."""
        return self.gw.server_now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def mark(self, result: StoreResult, key: Key) -> None:
        """Leave ksdelete's mark on the key before scheduling it (a key pending deletion cannot
        be tagged): whoever later sees the mark on a key that is not pending knows its deletion
        was cancelled, on any machine, with or without this journal."""
        now = self.stamp()
        # After a soak, the state to restore is the one before the soak disabled the key.
        prior = (key.marks.field("prior") if key.soaking and key.marks else None) or key.state
        value = f"{now} prior={prior} run={self.journal.run_id}"

        def lagging(exc: BaseException) -> bool:
            """A key seen not pending that AWS calls pending: right after a cancel (a
            person confirming a cancelled key again) AWS may lag; unless the key now reads
            pending (someone else scheduled it), try again within the consistency window."""
            if not isinstance(exc, KeyInvalidState):
                return False
            try:
                return self.gw.describe_key(key.arn).get("KeyState") != PENDING_DELETION
            except AwsError:
                return False

        self.mutate(result, "TagResource",
                    lambda: retry_while_lagging(
                        lambda: self.gw.tag_resource(key.arn, {SCHEDULED_TAG: value}),
                        call="TagResource", lagging=lagging, policy=self.gw.policy,
                        on_retry=self.reporter.retry),
                    key=key, already=_already_pending)
        reconfirmed = self._context.reconfirmed or frozenset()
        if key.marks and key.marks.cancelled and key.id in reconfirmed:
            # A person confirmed again, knowing it was cancelled: that cancel is over.
            self.mutate(result, "UntagResource",
                        lambda: self.gw.untag_resource(key.arn, [CANCELLED_TAG]), key=key,
                        already=_already_pending)

    def _settle(self, key: Key) -> Key:
        """Read the key until it shows PendingDeletion or the consistency window has passed."""
        policy = self.gw.policy
        return poll_until(
            lambda: replace(key_from_metadata(self.gw.describe_key(key.arn), key.aliases),
                            marks=key.marks),
            lambda k: k.state == PENDING_DELETION, call="DescribeKey",
            timeout=policy.consistency_timeout, initial=policy.consistency_initial,
            maximum=policy.consistency_max, policy=policy, on_retry=self.reporter.retry,
            describe=lambda k: f"{k.id} still {k.state}",
        )

    def _confirm_pending(self, key: Key) -> Key:
        """Read the key back until it shows PendingDeletion (eventual consistency)."""
        key = self._settle(key)
        if key.state != PENDING_DELETION:
            raise KsdeleteError(f"key {key.id} does not read back as PendingDeletion "
                                f"(it is {key.state})", where="ScheduleKeyDeletion")
        return key

    def _await_keys(self, snap: Snapshot, result: StoreResult) -> str:
        remaining = list(result.keys)
        total = len(remaining)
        policy = self.gw.policy
        store_id = snap.store.id

        def check() -> list[Key]:
            nonlocal remaining
            gone, remaining = discover.recheck_keys(self.gw, remaining)
            self._gone.update(k.id for k in gone)
            settled: list[Key] = []
            for key in remaining:
                if key.state != PENDING_DELETION:
                    # A read just after ScheduleKeyDeletion may be stale: only a state that
                    # stays other than PendingDeletion means someone cancelled the deletion.
                    try:
                        key = self._settle(key)
                    except KeyNotFound:
                        self._gone.add(key.id)
                        continue
                settled.append(key)
                if key.state != PENDING_DELETION:
                    done = self._done(result)
                    raise RefusedError(
                        f"key {key.id} is no longer pending deletion (it is {key.state}): "
                        "someone cancelled it", where=store_id,
                        hint="Run `ksdelete status` to review, then run again",
                        details=(f"key ARN: {key.arn}",
                                 *([done] if done != NOTHING_DONE else [])),
                        key_ids=(key.id,))
            remaining = settled
            result.keys = tuple(remaining)
            self._watch_store(store_id, remaining, result)
            self.reporter.progress(Phase.WAIT, total - len(remaining), total)
            self.reporter.waiting(_latest(remaining), len(remaining), total,
                                  now=self.gw.server_now())
            return remaining

        if self.options.wait:
            poll_until(check, lambda rest: not rest, call="DescribeKey",
                       timeout=max(0.0, self._deadline - time.monotonic()),
                       initial=policy.poll_initial, maximum=policy.poll_max, policy=policy,
                       on_retry=self.reporter.retry,
                       describe=lambda rest: f"{len(rest)} key(s) still pending")
        else:
            # Keys just read by discovery cannot have vanished since; only ask AWS again if
            # some DeletionDate has passed. Keys this run just scheduled are read once more:
            # someone may have cancelled them meanwhile, and the report says what AWS says.
            now = self.gw.server_now()
            if any(a.operation == "ScheduleKeyDeletion" for a in result.actions):
                remaining = self._read_again(remaining, result)
            if any(k.deletion_date and k.deletion_date <= now for k in remaining):
                check()
        if remaining:  # a key read back not pending is still there: never "deleted"
            pending = sum(1 for k in remaining if k.pending)
            self.reporter.phase(Phase.WAIT, PhaseState.PENDING,
                                f"{pending}/{total} key(s) still pending")
            raise _Pending(_latest(remaining),
                           f"{pending} key(s) still pending deletion; run again after "
                           "the latest DeletionDate (AWS may take up to 24 h longer)")
        return f"all {total} key(s) deleted"

    def _read_again(self, keys: list[Key], result: StoreResult) -> list[Key]:
        """Every key read once more (DescribeKey), as the run's last word on them: a key no
        longer pending is reported as AWS shows it, with a warning (the next run refuses it
        as cancelled)."""
        def read(key: Key) -> Key | None:
            try:
                metadata = self.gw.describe_key(key.arn)
            except KeyNotFound:
                return None
            return replace(key_from_metadata(metadata, key.aliases), marks=key.marks)

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(keys))),
                                thread_name_prefix="reread") as pool:
            fresh = list(pool.map(read, keys))
        self._gone.update(k.id for k, f in zip(keys, fresh, strict=True) if f is None)
        now = [f for f in fresh if f is not None]
        result.keys = tuple(now)
        moved = [k for k in now if not k.pending]
        if moved:
            listed = ", ".join(f"{k.id} ({k.state})" for k in moved[:20])
            more = f" and {len(moved) - 20} more" if len(moved) > 20 else ""
            note = (f"{len(moved)} key(s) this run scheduled are no longer pending deletion: "
                    f"{listed}{more}; someone may have cancelled them. The next unattended run "
                    "refuses them; `ksdelete status` shows where the store stands")
            result.warnings.append(note)
            self.reporter.note(note, level="warning")
        return now

    def _watch_store(self, store_id: str, keys: list[Key], result: StoreResult) -> None:
        """While keys wait out their window, the store must stay as the gates require (a
        CloudHSM store CONNECTED): re-plan on the store as it is now, and follow the plan:
        reconnect (--connect), go on with a warning (--allow-orphaned-key-material), or stop."""
        if not keys:
            return
        store = self._read_store(store_id)
        due = time.monotonic() - self._last_watch >= WATCH_INTERVAL
        if store.connection_state is ConnectionState.CONNECTED and not due:
            return
        if store.connection_state is not ConnectionState.CONNECTED:
            # The store first: reading CloudTrail takes seconds (paced), and a CloudHSM key
            # whose window ends while its store is disconnected leaves its material behind.
            self._keep_store(store, keys, result, unwatched=True)
            if not due:
                return
            store = self._read_store(store_id)
        keys = self._with_watch(keys, fresh=due,
                                also=self._keys_elsewhere(store_id) if due else ())
        if due:
            self._act_elsewhere(store_id, result)
        self._keep_store(store, keys, result)

    def _keep_store(self, store: KeyStore, keys: list[Key], result: StoreResult, *,
                    unwatched: bool = False) -> None:
        """Re-plan on the store as it is now and follow the plan's reconnect steps (or its
        refusal, or go on with a recorded waiver). `unwatched`: the store before the watch's
        reading, whose gates wait for that reading (nothing is recorded as waived)."""
        snap = Snapshot(store, tuple(keys), identity=self.identity)
        options = replace(self.options.plan, on_use="ignore") if unwatched \
            else self.options.plan
        plan = planner.plan(snap, options, self.gw.server_now(), self._context)
        new = [] if unwatched else _record(plan, result)
        for line in new:
            self.reporter.note(line, level="warning")
        self._journal_waivers(store, new)
        if plan.refusal:
            self._stop(plan, snap, result)
        for step in plan.steps:
            if step.kind not in (StepKind.CONNECT_STORE, StepKind.AWAIT_CONNECTED):
                break
            self.reporter.note(f"the store is {store.connection_state} while keys wait: "
                               f"{step.kind}", level="warning")
            self._apply(step, snap, result)

    def _disconnect(self, store_id: str, result: StoreResult) -> str:
        store = self._read_store(store_id)
        if store.connection_state in (ConnectionState.DISCONNECTED,
                                      ConnectionState.DISCONNECTING):
            return f"already {store.connection_state}"
        self.stop_if_cancel_requested(result)
        self.mutate(result, "DisconnectCustomKeyStore",
                    lambda: self.gw.disconnect_store(store_id), already=_store_moved_on)
        return "disconnect requested"

    def _delete(self, store_id: str, result: StoreResult) -> str:
        def attempt() -> AwsError | None:
            self.stop_if_cancel_requested(result)
            try:
                self.mutate(result, "DeleteCustomKeyStore", lambda: self.gw.delete_store(store_id))
            except StoreHasKeys as exc:
                if self.membership.trusted:  # the cache may have hidden a key: look again
                    self.membership.distrust()
                    raise _Rescan(f"DeleteCustomKeyStore: the store still has keys ({exc.what}"
                                  "); scanning again, describing every key") from exc
                return exc  # a write not yet visible everywhere: try again for a while
            except StoreInvalidState as exc:
                return exc
            return None

        policy = self.gw.policy
        error = poll_until(
            attempt, lambda e: e is None, call="DeleteCustomKeyStore",
            timeout=policy.consistency_timeout, initial=policy.consistency_initial,
            maximum=policy.consistency_max, policy=policy, on_retry=self.reporter.retry,
            describe=lambda e: e.aws_code if e else "ok",
        )
        if error is not None:
            raise error
        return "DeleteCustomKeyStore accepted"

    def _verify(self, store_id: str) -> str:
        policy = self.gw.policy
        store = poll_until(
            lambda: self.gw.describe_store(store_id=store_id), lambda s: s is None,
            call="DescribeCustomKeyStores", timeout=policy.consistency_timeout,
            initial=policy.consistency_initial, maximum=policy.consistency_max, policy=policy,
            on_retry=self.reporter.retry, describe=lambda s: "store still listed",
        )
        if store is not None:
            raise KsdeleteError("the store is still listed after DeleteCustomKeyStore",
                                where=store_id, hint="Run again to re-check")
        return "CustomKeyStoreNotFoundException: the store is gone"


def _gate_options(options: PlanOptions) -> dict[str, object]:
    """The options the gates ran with, as the journal keeps them (ksdelete/options.py)."""
    from ksdelete.options import journal_record

    return journal_record(options)


def _record(plan: Plan, result: StoreResult) -> list[str]:
    """Add a plan's warnings and waived gates to the result (once each); returns the new ones."""
    new = [w for w in plan.warnings if w not in result.warnings]
    result.warnings.extend(new)
    for verdict in plan.verdicts:
        text = f"{verdict.gate}: {verdict.detail}"
        if verdict.verdict == "waived" and text not in result.waivers:
            result.waivers.append(text)
            new.append(f"waived {text}")
    return new


def _phase_name(phase: str) -> str:
    """A phase's name without its counts and dates ("keys-pending 3/3, ..." -> keys-pending)."""
    return phase.split(" ", 1)[0]


NOTHING_DONE = "this run changed nothing"


def _refusal_error(refusal: Refusal, store_id: str, done: str = "") -> KsdeleteError:
    """A gate's refusal as the error that ends this store's run (exit 4, or 1 when AWS
    failed), saying what the run had already done when it stopped at a later gate (once, on
    a line of its own; a run that changed nothing says so in its summary line)."""
    return refusal.as_error(where=store_id, done="" if done == NOTHING_DONE else done)


def _store_moved_on(exc: AwsError) -> str | None:
    """Connect/Disconnect refused for the store's state: a stale read showed an older state and
    the transition is already under way. The await step that follows reads the truth."""
    return "already-done" if isinstance(exc, StoreInvalidState) else None


def _already_pending(exc: AwsError) -> str | None:
    """Tagging a key that is already pending deletion (a race with another client): its
    ScheduleKeyDeletion that follows reports the same."""
    return "already-pending" if isinstance(exc, KeyInvalidState) else None


def _key_record(key: Key) -> dict[str, object]:
    """What the journal keeps of a key when the operator confirms: enough to restore it."""
    return {"id": key.id, "arn": key.arn, "state": key.state, "aliases": list(key.aliases),
            "external_key_id": key.external_key_id,
            "deletion_date": key.deletion_date.isoformat() if key.deletion_date else None,
            "creation_date": key.creation_date.isoformat() if key.creation_date else None}


def _explain_denied(exc: AccessDenied, key: Key, now: datetime) -> AccessDenied:
    """AccessDenied on ScheduleKeyDeletion or DisableKey: a Deny on
    kms:TrailingDaysWithoutKeyUsage (`ksdelete iam-policy --unused-for DAYS`) refuses a key
    used within DAYS, and may refuse a never-used key created within DAYS too (AWS does not
    document the value for keys never used). Say so, with the key's age."""
    if key.creation_date is None:
        return exc
    created = key.creation_date if key.creation_date.tzinfo else \
        key.creation_date.replace(tzinfo=UTC)
    age = max(0, int((now - created).total_seconds() // 86400))
    hint = (f"{key.id} was created {age} day(s) ago: a Deny on "
            "kms:TrailingDaysWithoutKeyUsage (as `ksdelete iam-policy --unused-for DAYS` "
            f"writes) with DAYS above {age} may be why, even if the key was never used (AWS "
            "does not document the value for keys never used); check its last use, then "
            "wait or ask for an exception")
    hint = f"{exc.hint}. {hint}" if exc.hint else hint
    return AccessDenied(exc.what, operation=exc.operation, aws_code=exc.aws_code,
                        request_id=exc.request_id, where=exc.where, hint=hint)


def _already_scheduled(exc: AwsError) -> str | None:
    """ScheduleKeyDeletion errors that mean the work is already done (as Terraform does)."""
    if isinstance(exc, KeyAlreadyPendingDeletion):
        return "already-done"
    if isinstance(exc, KeyNotFound):
        return "already-gone"
    return None


def result_outcome(result: StoreResult, key_id: str, operation: str | None = None
                   ) -> str | None:
    return next((a.outcome for a in reversed(result.actions) if a.key_id == key_id
                 and (operation is None or a.operation == operation)), None)


def _parse_time(text: str) -> datetime | None:
    """A time ksdelete wrote (a mark's first word, a journal entry's time); None if not one."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _latest(keys: list[Key]) -> datetime | None:
    return max((k.deletion_date for k in keys if k.deletion_date), default=None)


def not_pending(exc: AwsError) -> str | None:
    """CancelKeyDeletion on a key that is no longer pending: someone cancelled it already."""
    if isinstance(exc, KeyNotFound):
        return "already-gone"
    return "already-done" if isinstance(exc, KeyInvalidState) else None


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def tag_value(text: str) -> str:
    """A tag value AWS accepts: at most 256 characters of letters, digits, spaces and
    _ . : / = + - @."""
    allowed = set("_.:/=+-@ ")
    return "".join(ch if ch.isalnum() or ch in allowed else "_" for ch in text)[:256]
