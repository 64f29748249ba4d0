"""The fleet runner: every (account, Region) of a fleet file is one invocation of today's
pipeline (app.build + the service layer), with its own workspace, pacer, scan and journal
view; accounts run in parallel up to `rollout.max_accounts`, and a slow or failing account
never blocks the others.

In order, before the first change anywhere: the file's guards (forbidden accounts, the
allow-list, max_targets: no AWS call yet); per account, its credentials (a profile, or a role
chain assumed from the hub once and refreshed); per (account, Region), GetCallerIdentity
must answer the file's account (else every target there is refused, nothing changed); per
target, the store with the file's ID must have the file's name and type (planner.
store_refusal). Then each (account, Region) runs its stores as `delete s1 s2 --yes` would.

The rollout's brake (`Brake`): the canary's (account, Region)s go first and alone; once
`failure_tolerance` targets were refused or failed, no new mutating step starts anywhere
(targets not yet confirmed are `skipped`); the per-run caps (keys scheduled, irreversible
steps) defer a target to the next run (pending, nothing changed) rather than refuse it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ksdelete import planfile, planner
from ksdelete.app import App, Settings, build
from ksdelete.cancel import cancel as undo
from ksdelete.errors import (
    AccountRefused,
    ExitStatus,
    KeyNotFound,
    KsdeleteError,
    RefusedError,
    StoreNotFoundError,
    UsageError,
)
from ksdelete.executor import Confirm, RunOptions, Target
from ksdelete.fleet.brake import FAILED, Brake, Interruptible, skipped
from ksdelete.fleet.model import AccountSpec, FleetRun, FleetSpec, StoreTarget, TargetResult
from ksdelete.gateway import Gateway
from ksdelete.models import (
    Plan,
    PlanOptions,
    Refusal,
    Snapshot,
    Status,
    StoreResult,
    WitnessedKey,
)
from ksdelete.output import exit_status
from ksdelete.reporting import Reporter
from ksdelete.retry import RetryPolicy
from ksdelete.scope import ScopeRequest
from ksdelete.service import each, run_targets
from ksdelete.sessions import SessionFactory, clean_session_name
from ksdelete.status import status as read_status

HALTED = "halted"
FIX_IN_FILE = "Fix its ID and Region in the fleet file, or remove it, and run again"

ReporterFor = Callable[[AccountSpec, str], Reporter]


@dataclass(frozen=True)
class FleetSettings:
    """What the fleet commands are told on the command line."""

    endpoint_url: str | None = None
    journal: Path | None = None
    poll_interval: float = 60.0
    cache: bool = True
    wait: bool = False
    max_wait: float = 7 * 24 * 3600.0
    # `fleet cancel`: enable the keys / connect the store again as well.
    enable: bool = False
    connect: bool = False


@dataclass(frozen=True)
class Witness:
    """The run's one AWS Config query (discovery.config_aggregator): the keys it attributes
    to the targets' stores, or why it failed (then every target that would change is
    refused; `fleet plan` only warns)."""

    aggregator: str  # NAME@REGION, as the file says
    keys: tuple[WitnessedKey, ...] = ()
    failed: str | None = None  # the error code
    said: str = ""  # and its message


def session_name(run_id: str) -> str:
    """`ksdelete-<run_id>`, as STS allows (2-64 of [\\w+=,.@-]): seen in every target's
    CloudTrail."""
    return clean_session_name(f"ksdelete-{run_id}")


def external_ids(spec: FleetSpec, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Each role account's ExternalId, read from the environment variable the file names:
    one that is not set is a usage error before any AWS call."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for account in spec.accounts:
        if account.external_id_env and account.role:
            value = env.get(account.external_id_env)
            if not value:
                raise UsageError(
                    f"the environment variable {account.external_id_env} (the ExternalId of "
                    f"account {account.account_id}) is not set", where=str(spec.path or ""),
                    hint=f"export {account.external_id_env}=... before running")
            out[account.account_id] = value
    return out


@dataclass
class FleetRunner:
    spec: FleetSpec
    mode: str
    settings: FleetSettings
    reporter_for: ReporterFor
    run_id: str
    sessions: SessionFactory
    saved: dict[tuple[str, str], planfile.SavedPlan] | None = None  # `apply` of a fleet plan
    # Told each (account, Region)'s results as soon as they are known (the view).
    on_done: Callable[[Sequence[TargetResult]], None] | None = None

    def __post_init__(self) -> None:
        self.interruptible = Interruptible()
        self.brake = Brake(self.spec, wait=self.settings.wait, stop=self.interruptible.stop)
        self.external_ids = external_ids(self.spec)
        self.plans: list[dict[str, Any]] = []  # `plan --save-plan`: one per (account, Region)
        self.witness: Witness | None = None  # `consult`: the second witness, once per run
        self.noted: dict[tuple[str, str, str], list[str]] = {}  # target -> witness notes
        self._plans_lock = threading.Lock()

    @property
    def changing(self) -> bool:
        return self.mode in ("apply", "cancel")

    def consult(self, targets: Sequence[StoreTarget]) -> Witness | None:
        """The second witness, if the file names an AWS Config aggregator: one query, with
        the hub's identity, for the keys of every target's store (not for `cancel`). A
        failure is kept (and refuses, in `apply`), never raised."""
        if self.spec.config_aggregator is None or self.mode == "cancel":
            return None
        name, region = self.spec.config_aggregator
        label = f"{name}@{region}"
        try:
            gateway = self.sessions.gateway(ScopeRequest(
                region=region, profile=self.spec.hub.profile,
                endpoint_url=self.settings.endpoint_url))
            keys = gateway.select_aggregate_keys(name, [t.store_id for t in targets])
        except UsageError:
            raise
        except KsdeleteError as exc:
            self.witness = Witness(label, failed=getattr(exc, "aws_code", None) or exc.code,
                                   said=exc.what)
        else:
            self.witness = Witness(label, tuple(keys))
        return self.witness

    def witnessed(self, gateway: Gateway, t: StoreTarget, found: frozenset[str]
                  ) -> Refusal | None:
        """A target's verdict from the second witness: each key Config attributes to its
        store that the scan did not find, described through the target's own gateway."""
        w = self.witness
        if w is None:
            return None
        if w.failed is not None:
            return planner.witness_refusal(t.store_id, w.aggregator, failed=w.failed,
                                           said=w.said)
        listed = [k for k in w.keys if (k.account, k.region) == (t.account_id, t.region)]
        in_store: list[str] = []
        undescribed: dict[str, str] = {}
        gone: list[str] = []
        for key_id in planner.unwitnessed(t.store_id, listed, found):
            try:
                metadata = gateway.describe_key(key_id)
            except KeyNotFound:
                gone.append(key_id)  # Config lags: noted only
                continue
            except KsdeleteError as exc:
                undescribed[key_id] = getattr(exc, "aws_code", None) or exc.code
                continue
            if metadata.get("CustomKeyStoreId") == t.store_id:
                in_store.append(key_id)
        notes = planner.witness_notes(w.aggregator, gone)
        if notes:
            with self._plans_lock:
                self.noted[t.key] = notes
        return planner.witness_refusal(t.store_id, w.aggregator, in_store=in_store,
                                       undescribed=undescribed)

    def run(self, targets: Sequence[StoreTarget], out: FleetRun) -> None:
        """Every target, each (account, Region) once; `out.targets` in the file's order,
        every target accounted for whatever stops the run (one not reached: `skipped`)."""
        groups = groups_of(self.spec, targets)
        order = {t.key: i for i, t in enumerate(targets)}
        results: list[TargetResult] = []
        canary_n = self.spec.rollout.canary if self.mode == "apply" else 0
        canary_keys = {t.key for t in targets[:canary_n]}
        first = [g for g in groups if any(t.key in canary_keys for t in g[2])]
        rest = [g for g in groups if g not in first]
        try:
            for stage in (first, rest):
                if self.interruptible.stop.is_set():
                    break
                self._stage(stage, results)
                failed = [r.target.label for r in results
                          if r.status in FAILED and not skipped(r)]
                if stage is first and failed:
                    # The canary must pass, whatever the failure tolerance.
                    self.brake.halt(f"the canary failed ({', '.join(failed[:3])})")
        except KeyboardInterrupt:
            self.interruptible.stop.set()
            raise
        finally:
            seen = {r.target.key for r in results}
            for acct, _, ts in groups:
                results += [TargetResult(
                    t, acct.name, Status.SKIPPED, ExitStatus.REFUSED, None,
                    error={"code": "skipped", "message": "not started: the run was stopped"})
                    for t in ts if t.key not in seen]
            out.targets = sorted(results, key=lambda r: order[r.target.key])
            out.halted = self.brake.halted
            out.halt_reason = self.brake.reason

    def _stage(self, groups: list[tuple[AccountSpec, str, list[StoreTarget]]],
               out: list[TargetResult]) -> None:
        """The groups of one stage: accounts in parallel (up to max_accounts), the Regions
        of one account one after the other; each result into `out` as soon as it is known.
        A store interrupted (Ctrl-C, SIGTERM) stops every account."""
        by_account: dict[str, list[tuple[AccountSpec, str, list[StoreTarget]]]] = {}
        for group in groups:
            by_account.setdefault(group[0].account_id, []).append(group)
        lock = threading.Lock()

        def account(items: list[tuple[AccountSpec, str, list[StoreTarget]]]) -> None:
            for acct, region, ts in items:
                if self.interruptible.stop.is_set():
                    return
                done = self._group(acct, region, ts)
                self.brake.count(done)  # past the tolerance, no new change starts anywhere
                with lock:
                    out.extend(done)
                if self.on_done is not None:
                    self.on_done(done)
                if any(r.status in (Status.INTERRUPTED, Status.TERMINATED) for r in done):
                    self.interruptible.stop.set()
                    return

        workers = max(1, min(self.spec.rollout.max_accounts, len(by_account)))
        if workers == 1:
            for items in by_account.values():
                account(items)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ksdelete-account"
                                ) as pool:
            futures = [pool.submit(account, items) for items in by_account.values()]
            try:
                # Short waits, so that Ctrl-C reaches the main thread at once.
                while wait(futures, timeout=0.2).not_done:
                    pass
                for future in futures:
                    future.result()
            except BaseException:
                # Every waiting run stops at its next sleep; calls in flight finish.
                self.interruptible.stop.set()
                for future in futures:
                    future.cancel()
                raise

    # ---- one (account, Region) ------------------------------------------------------------

    def _group(self, account: AccountSpec, region: str, targets: list[StoreTarget]
               ) -> list[TargetResult]:
        started = time.monotonic()
        reporter = self.reporter_for(account, region)
        try:
            app = self._open(account, region, targets, reporter)
        except KeyboardInterrupt:
            return [self._failed(account, t, Status.INTERRUPTED, ExitStatus.INTERRUPTED,
                                 {"code": "interrupted", "message": "interrupted by the "
                                  "operator"}, started) for t in targets]
        except KsdeleteError as exc:
            return [self._unreached(account, t, exc, started) for t in targets]
        try:
            results = self._in(app, account, region, targets)
        finally:
            app.journal.close()
        role = app.identity.caller_arn
        for r in results:  # a deferral says so in the store's own result
            why = self.brake.deferred.get(r.store.id) if r.store else None
            if why and r.status is Status.PENDING and why not in r.warnings:
                r.warnings.append(why)
        for t, r in zip(targets, results, strict=True):  # what the witness noted
            r.warnings += [n for n in self.noted.get(t.key, ()) if n not in r.warnings]
        return [TargetResult(t, account.name, r.status, exit_status(r), r,
                             assumed_role_arn=role, error=r.error,
                             duration_s=round(time.monotonic() - started, 3))
                for t, r in zip(targets, results, strict=True)]

    def _open(self, account: AccountSpec, region: str, targets: list[StoreTarget],
              reporter: Reporter) -> App:
        settings = Settings(
            region=region, profile=account.profile or (self.spec.hub.profile
                                                       if account.role else None),
            endpoint_url=self.settings.endpoint_url, journal=self.settings.journal,
            poll_interval=self.settings.poll_interval, cache=self.settings.cache,
            role=account.role, external_id=self.external_ids.get(account.account_id),
            session_name=session_name(self.run_id), run_id=self.run_id)
        poll = self.settings.poll_interval
        policy = RetryPolicy(poll_initial=min(1.0, poll), poll_max=max(poll, 0.01),
                             sleep=self.interruptible.sleep)
        saved = self.saved.get((account.account_id, region)) if self.saved else None
        base = plan_options(self.spec)
        options = RunOptions(
            plan=saved.options if saved else base,
            dry_run=self.mode == "plan", wait=self.settings.wait and self.mode == "apply",
            max_wait=self.settings.max_wait,
            allowed_accounts=frozenset({account.account_id}), interactive=False,
            approved=saved.stores if saved else (),
            plan_id=saved.plan_id if saved else None,
            plan_endpoint=saved.endpoint_url if saved else None,
            per_store={t.store_id: replace(saved.options if saved else base,
                                           expect_keys=t.expect_keys)
                       for t in targets if t.expect_keys is not None},
            brake=self.brake.check)
        opened: list[App] = []
        by_store = {t.store_id: t for t in targets}

        def confirm(snap: Snapshot, plan: Plan) -> bool:
            """Before the target's first change: the second witness, then the brake."""
            t = by_store.get(snap.store.id)
            if opened and t is not None:
                refusal = self.witnessed(opened[0].gateway, t, snap.key_ids())
                if refusal is not None:
                    raise refusal.as_error(where=t.label)
            return self.brake.confirm(snap, plan)

        checked: Confirm = confirm
        try:
            app = build(settings, options, reporter, checked,
                        read_only=self.mode in ("plan", "status"), policy=policy,
                        sessions=self.sessions)
            app.workspace.lock_sleep = self.interruptible.sleep  # Ctrl-C ends a lock wait
            opened.append(app)
            return app
        except AccountRefused as exc:
            landed = getattr(exc.identity, "account", "unknown")
            raise AccountRefused(
                f"the credentials for account {account.account_id} ({account.name}) answer "
                f"for account {landed}: not the file's account; nothing was changed there",
                identity=exc.identity, where=f"{account.account_id}/{region}",
                hint="Check the account's role or profile in the fleet file") from exc

    def _in(self, app: App, account: AccountSpec, region: str, targets: list[StoreTarget]
            ) -> list[StoreResult]:
        """The group's targets through the service layer, each proven first (its store's
        name and type as the file says)."""
        executor = app.executor
        resolved: list[Target] = []
        refused: dict[int, StoreResult] = {}
        saved = self.saved.get((account.account_id, region)) if self.saved else None
        approved = {a.id: a for a in saved.stores} if saved else {}
        for index, t in enumerate(targets):
            # A saved plan's stores by their ID only (never by name), as `apply` does.
            target = executor.resolve_approved(approved[t.store_id]) if saved \
                else executor.resolve(t.store_id)
            if target.store is not None:
                refusal = planner.store_refusal(target.store, t.expect_name, t.expect_type)
                if refusal is not None:
                    error = refusal.as_error(where=f"{t.label}")
                    refused[index] = StoreResult(
                        ref=t.store_id, status=Status.REFUSED, store=target.store,
                        matched_by="id", error=error.as_json(),
                        phase=planner.refused_phase(refusal))
                    executor.reporters.note(error.text, level="refused", target=t.store_id)
                    continue
            if isinstance(target.error, StoreNotFoundError):  # in the fleet's words
                target = replace(target, error=StoreNotFoundError(
                    target.error.what, where=target.error.where,
                    hint="Check its ID and Region in the fleet file (`ksdelete fleet "
                         "inventory` lists the stores there are)"))
            resolved.append(target)
        if refused and self.mode == "apply":
            # The stores of one account and Region go together, as `delete s1 s2` does: one
            # that is not the file's store holds the others back (nothing changed in any).
            others = [(r.store.id if r.store else r.ref, str(r.status))
                      for r in refused.values()]
            held = [self._held(t, others) for t in resolved]
            resolved = []
        else:
            held = []
        ran: list[StoreResult] = list(held)
        if self.mode in ("apply", "plan"):
            if self.mode == "apply" and self.brake.halted:
                # No new change after the halt; where the store stands is still read.
                each(executor, resolved,
                     lambda target: self._not_started(read_status(executor, target)), ran)
            else:
                run_targets(executor, resolved, ran, changing=self.mode == "apply",
                            fix=FIX_IN_FILE)
            if self.mode == "plan":
                self._witness_read(app, [t for i, t in enumerate(targets)
                                         if i not in refused], ran)
                self._keep_plan(app, ran)
        elif self.mode == "status":
            each(executor, resolved, lambda target: read_status(executor, target), ran)
            self._witness_read(app, [t for i, t in enumerate(targets) if i not in refused],
                               ran)
        else:
            each(executor, resolved,
                 lambda target: undo(executor, target, enable=self.settings.enable,
                                     connect=self.settings.connect,
                                     confirm=lambda snap, plan: True, planned={}), ran)
        rest = iter(ran)
        # The service layer's loop stops after an interrupted store: the group's stores after
        # it were not started (listed, never dropped).
        return [refused[i] if i in refused else next(rest, None) or StoreResult(
                    ref=targets[i].store_id, status=Status.SKIPPED, matched_by="id",
                    error={"code": "skipped", "message": "not started: the run was stopped"})
                for i in range(len(targets))]

    @staticmethod
    def _held(target: Target, others: list[tuple[str, str]]) -> StoreResult:
        store_id = target.store.id if target.store else target.ref
        refusal = planner.all_or_nothing(store_id, others, started=False)
        assert refusal is not None
        return StoreResult(ref=target.ref, status=Status.REFUSED, store=target.store,
                           matched_by=target.matched_by, error=refusal.as_error().as_json(),
                           phase=planner.refused_phase(refusal))

    def _witness_read(self, app: App, targets: list[StoreTarget], ran: list[StoreResult]
                      ) -> None:
        """`fleet plan` and `fleet status`: the second witness's verdict on each target read
        is its refusal, as the next `apply` would decide (nothing changes anyway); a failed
        query is only the fleet's warning."""
        if self.witness is None or self.witness.failed is not None:
            return
        for t, r in zip(targets, ran, strict=False):
            if r.store is None or r.status not in (Status.PLANNED, Status.PENDING):
                continue
            refusal = self.witnessed(app.gateway, t, frozenset(k.id for k in r.keys))
            r.warnings += [n for n in self.noted.get(t.key, ()) if n not in r.warnings]
            if refusal is not None:
                error = refusal.as_error(where=t.label)
                r.status, r.error = Status.REFUSED, error.as_json()
                r.phase = planner.refused_phase(refusal)
                app.executor.reporters.note(error.text, level="refused", target=t.store_id)

    def _not_started(self, result: StoreResult) -> StoreResult:
        """A target after the halt: where it stands (read), and that it was not started."""
        result.status = Status.SKIPPED
        result.error = {"code": HALTED, "message": f"not started: {self.brake.reason}"}
        return result

    def _keep_plan(self, app: App, results: list[StoreResult]) -> None:
        planned = [r for r in results if r.status is Status.PLANNED]
        if not planned or len(planned) != len(results):
            return
        content = planfile.build(planned, app.identity, app.executor.options.plan,
                                 endpoint_url=planner.service_endpoint(
                                     app.gateway.endpoint_url),
                                 now=app.gateway.server_now())
        with self._plans_lock:
            self.plans.append(content)

    def _unreached(self, account: AccountSpec, t: StoreTarget, exc: KsdeleteError,
                   started: float) -> TargetResult:
        """A target whose account or Region could not be reached (or answered for another
        account): its status and exit code, nothing changed there."""
        status = Status.REFUSED if isinstance(exc, RefusedError) else Status.ERROR
        code = ExitStatus.REFUSED if status is Status.REFUSED else ExitStatus.ERROR
        error = {**exc.as_json(), "code": getattr(exc, "aws_code", exc.code)}
        message = str(error.get("message", ""))
        if f"account {account.account_id}" not in message:
            error["message"] = f"account {account.account_id} ({account.name}), " \
                               f"{t.region}: {message}"
        return self._failed(account, t, status, code, error, started)

    @staticmethod
    def _failed(account: AccountSpec, t: StoreTarget, status: Status, code: ExitStatus,
                error: dict[str, Any], started: float) -> TargetResult:
        return TargetResult(t, account.name, status, code, None, error=error,
                            duration_s=round(time.monotonic() - started, 3))


def groups_of(spec: FleetSpec, targets: Sequence[StoreTarget]
              ) -> list[tuple[AccountSpec, str, list[StoreTarget]]]:
    """(account, Region, its targets) in the file's order."""
    out: dict[tuple[str, str], list[StoreTarget]] = {}
    for t in targets:
        out.setdefault((t.account_id, t.region), []).append(t)
    return [(spec.account(a), r, ts) for (a, r), ts in out.items()]


def plan_options(spec: FleetSpec) -> PlanOptions:
    """Every target's plan options: the file's `defaults:`, with max_keys_per_target as the
    key_cap gate's --max-keys."""
    return replace(spec.options, max_keys=spec.guards.max_keys_per_target)
