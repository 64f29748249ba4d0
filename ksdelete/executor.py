"""Applies a Plan through the gateway, re-reading AWS before each step; journals every change."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ksdelete import discover, planner
from ksdelete.errors import (
    AwsError,
    KsdeleteError,
    RefusedError,
    StoreNotFoundError,
    UsageError,
)
from ksdelete.gateway import Called, Gateway, key_from_metadata
from ksdelete.journal import Journal
from ksdelete.models import (
    PENDING_DELETION,
    Action,
    ConnectionState,
    Key,
    KeyStore,
    Plan,
    PlanOptions,
    Snapshot,
    Status,
    Step,
    StepKind,
    StoreResult,
    StoreType,
)
from ksdelete.reporting import STEP_PHASE, Phase, PhaseState, Reporter
from ksdelete.retry import poll_until
from ksdelete.status import phase_of

log = logging.getLogger("ksdelete")

# Connecting or disconnecting a store is awaited this long (or --max-wait, if shorter) even
# without --wait: AWS documents up to 20 minutes for a CloudHSM connect.
TRANSITION_TIMEOUT = 30 * 60.0

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


class _Pending(Exception):
    """The run went as far as AWS allows now; come back after `resume_after`."""

    def __init__(self, resume_after: datetime | None, why: str) -> None:
        super().__init__(why)
        self.resume_after = resume_after


class Executor:
    def __init__(self, gateway: Gateway, journal: Journal, reporter: Reporter,
                 options: RunOptions, confirm: Confirm,
                 membership: discover.MembershipCache | None = None) -> None:
        self.gw = gateway
        self.journal = journal
        self.reporter = reporter
        self.options = options
        self.confirm = confirm
        self._deadline = 0.0
        self._result: StoreResult | None = None
        # Which store each key belongs to never changes, so a key seen once outside the
        # target store need not be described again by later scans in this process.
        self.membership = membership if membership is not None else discover.MembershipCache()

    # ---- one STORE argument -------------------------------------------------------------

    def run(self, ref: str) -> StoreResult:
        """The deletion pipeline for one STORE argument, as far as AWS allows now."""
        return self.guarded(ref, self._run, gone_is_done=True)

    def guarded(self, ref: str, body: Callable[[str, StoreResult], None], *,
                gone_is_done: bool) -> StoreResult:
        """Run `body` for one STORE argument; every outcome, error included, becomes the
        StoreResult the summary and the JSON are built from. With `gone_is_done`, a store the
        journal saw deleted counts as deleted rather than missing."""
        result = StoreResult(ref=ref)
        self._result = result
        self.reporter.store(ref)
        try:
            body(ref, result)
        except StoreNotFoundError as exc:
            deleted_at = self.journal.deleted_at(ref) if result.store is None else None
            if deleted_at and gone_is_done:
                # Already gone, with evidence: our own journal saw it deleted. Not an error.
                result.status = Status.DELETED
                result.warnings.append(f"already deleted at {deleted_at} (per the journal)")
                self.reporter.phase(Phase.DISCOVER, PhaseState.DONE,
                                    f"already deleted at {deleted_at} (per the journal)")
            else:
                result.status, result.phase = Status.MISSING, "not-found"
                self.reporter.phase(Phase.DISCOVER, PhaseState.FAILED, exc.what)
                if deleted_at:
                    exc.what += f"; it was deleted at {deleted_at} (per the journal)"
                if self.options.missing_ok:
                    result.warnings.append(f"{exc.what}; nothing to do (--missing-ok)")
                else:
                    result.error = {"code": exc.code, "message": str(exc)}
                    self.reporter.note(str(exc), level="error")
        except _Pending as pending:
            result.status = Status.PENDING
            result.resume_after = pending.resume_after
            self.reporter.note(str(pending))
        except UsageError:
            raise  # the whole invocation is wrong, not this store: the CLI exits 2
        except RefusedError as exc:
            result.status = Status.REFUSED
            result.error = {"code": exc.code, "message": str(exc)}
            self.reporter.note(str(exc), level="error")
        except KsdeleteError as exc:
            result.status = Status.ERROR
            result.error = {"code": getattr(exc, "aws_code", exc.code), "message": str(exc)}
            self.reporter.note(str(exc), level="error")
            log.debug("%s failed", ref, exc_info=True)  # the traceback, with --debug
        except KeyboardInterrupt:
            # Stop here; the summary still tells exactly what was done (and the journal too).
            result.status = Status.INTERRUPTED
            result.error = {"code": "interrupted", "message": "interrupted by the operator"}
        if result.status is Status.DELETED:
            result.phase = "deleted"
        elif result.status in (Status.PENDING, Status.PLANNED) and result.store is not None:
            result.phase = phase_of(Snapshot(result.store, result.keys))[1]
        return result

    def _run(self, ref: str, result: StoreResult) -> None:
        snap = self.discover(ref, result)
        snap = replace(snap, confirmed_before=self.journal.confirmed_keys(snap.store.id))
        now = self.gw.server_now()
        plan = planner.plan(snap, self.options.plan, now)
        result.plan = plan
        result.warnings.extend(plan.warnings)
        self.reporter.plan(snap, plan)
        if plan.refusal:
            self.reporter.phase(Phase.PLAN, PhaseState.FAILED, plan.refusal.reason)
            raise RefusedError(plan.refusal.message, where=snap.store.id)
        self.reporter.phase(Phase.PLAN, PhaseState.DONE, f"{len(plan.steps)} step(s)")
        if self.options.dry_run:
            result.status = Status.PLANNED
            result.resume_after = plan.earliest_gone
            return
        if not self.confirm(snap, plan):
            raise RefusedError("not confirmed; nothing was changed", where=snap.store.id)
        self.journal.decision("ConfirmPlan", store_id=snap.store.id, store_name=snap.store.name,
                              key_ids=sorted(snap.key_ids()))
        self._deadline = time.monotonic() + (self.options.max_wait if self.options.wait else 0)
        keys = {k.id: k for k in snap.keys}
        for step in plan.steps:
            phase = STEP_PHASE[step.kind]
            self.reporter.phase(phase, PhaseState.RUNNING, step.detail)
            detail = self._apply(step, snap, plan, keys, result)
            result.keys = tuple(keys.values())
            self.reporter.phase(phase, PhaseState.DONE, detail)
        result.status = Status.DELETED
        result.keys = tuple(keys.values())

    def discover(self, ref: str, result: StoreResult) -> Snapshot:
        self.reporter.phase(Phase.DISCOVER, PhaseState.RUNNING, ref)
        store, matched_by = discover.find_store(self.gw, ref)
        result.store, result.matched_by = store, matched_by
        self.reporter.note(f"{ref!r} matched the store {matched_by}: {store.id} ({store.name})")
        snap = self.scan(store, matched_by)
        result.keys = snap.keys
        self.reporter.phase(
            Phase.DISCOVER, PhaseState.DONE,
            f"{len(snap.keys)} key(s) in the store, {snap.scanned} scanned",
        )
        return snap

    def scan(self, store: KeyStore, matched_by: str = "id") -> Snapshot:
        return discover.snapshot(
            self.gw, store, matched_by=matched_by, workers=self.options.workers,
            cache=self.membership,
            on_progress=lambda done, total, _: self.reporter.progress(Phase.DISCOVER, done, total),
        )

    # ---- steps ----------------------------------------------------------------------------

    def _apply(self, step: Step, snap: Snapshot, plan: Plan, keys: dict[str, Key],
               result: StoreResult) -> str:
        store_id = snap.store.id
        match step.kind:
            case StepKind.CONNECT_STORE:
                return self.connect(store_id, result)
            case StepKind.AWAIT_CONNECTED:
                store = self._await_state(store_id, ConnectionState.CONNECTED)
                return f"store is {store.connection_state}"
            case StepKind.SCHEDULE_KEY_DELETION:
                return self._schedule(store_id, step.key_ids, keys, result)
            case StepKind.AWAIT_KEYS_DELETED:
                return self._await_keys(keys, result)
            case StepKind.DISCONNECT_STORE:
                return self._disconnect(store_id, result)
            case StepKind.AWAIT_DISCONNECTED:
                store = self._await_state(store_id, ConnectionState.DISCONNECTED)
                return f"store is {store.connection_state}"
            case StepKind.DELETE_STORE:
                return self._delete(snap, result)
            case StepKind.VERIFY_DELETED:
                return self._verify(store_id)
        raise AssertionError(step.kind)  # pragma: no cover

    def mutate(self, result: StoreResult, operation: str, call: Callable[[], Called],
               *, key_id: str | None = None,
               already: Callable[[AwsError], str | None] = lambda exc: None) -> Called | None:
        """Journal and record one mutating call. An error that `already` names (e.g. a key
        already pending deletion) is recorded with that outcome and returns None."""
        assert result.store is not None
        with self.journal.record(store_id=result.store.id, store_name=result.store.name,
                                 operation=operation, key_id=key_id) as outcome:
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
            outcome.request_id = called.request_id
        result.actions.append(Action(operation, "ok", key_id, called.request_id,
                                     datetime.now(UTC)))
        return called

    def _read_store(self, store_id: str) -> KeyStore:
        store = self.gw.describe_store(store_id=store_id)
        if store is None:
            raise StoreNotFoundError(f"the store {store_id} disappeared during the run",
                                     where="DescribeCustomKeyStores")
        if self._result is not None and self._result.store is not None:
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
                where=store_id, hint="Fix the cluster or proxy, then run again with --connect",
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

    def _schedule(self, store_id: str, key_ids: tuple[str, ...], keys: dict[str, Key],
                  result: StoreResult) -> str:
        days = self.options.plan.pending_window_days
        total = len(key_ids)
        done = 0
        already = 0

        def one(key_id: str) -> Key | None:
            key = keys[key_id]
            called = self.mutate(
                result, "ScheduleKeyDeletion",
                lambda: self.gw.schedule_key_deletion(key.arn, days), key_id=key_id,
                already=_already_scheduled,
            )
            if called is None and result_outcome(result, key_id) == "already-gone":
                return None
            deletion = called.response.get("DeletionDate") if called else None
            return self._confirm_pending(replace(key, deletion_date=deletion or key.deletion_date))

        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="schedule")
        try:
            futures = {pool.submit(one, key_id): key_id for key_id in key_ids}
            for future in as_completed(futures):
                key = future.result()
                done += 1
                if key is None:
                    keys.pop(futures[future], None)
                else:
                    keys[key.id] = key
                self.reporter.progress(Phase.SCHEDULE, done, total)
        finally:
            # On Ctrl-C or an error, keys not yet started are not scheduled at all.
            pool.shutdown(wait=True, cancel_futures=True)
        outcomes = [a.outcome for a in result.actions if a.operation == "ScheduleKeyDeletion"]
        already = outcomes.count("already-done") + outcomes.count("already-gone")
        return f"{total - already} scheduled, {already} already pending or gone, {days}-day window"

    def _settle(self, key: Key) -> Key:
        """Read the key until it shows PendingDeletion or the consistency window has passed."""
        policy = self.gw.policy
        return poll_until(
            lambda: key_from_metadata(self.gw.describe_key(key.arn), key.aliases),
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

    def _await_keys(self, keys: dict[str, Key], result: StoreResult) -> str:
        total = len(keys)
        remaining = list(keys.values())
        policy = self.gw.policy
        gone_ids: set[str] = set()

        store = result.store
        warned = False

        def check() -> list[Key]:
            nonlocal remaining, warned
            if store is not None and store.type is StoreType.CLOUDHSM and not warned:
                current = self._read_store(store.id)
                if current.connection_state is not ConnectionState.CONNECTED:
                    warned = True
                    warning = (f"the CloudHSM key store became {current.connection_state} "
                               "during the waiting period: HSM key material of keys deleted "
                               "from now on is orphaned. Reconnect it now "
                               "(aws kms connect-custom-key-store)")
                    result.warnings.append(warning)
                    self.reporter.note(warning, level="warning")
            gone, remaining = discover.recheck_keys(self.gw, remaining)
            gone_ids.update(k.id for k in gone)
            settled: list[Key] = []
            for key in remaining:
                if key.state != PENDING_DELETION:
                    # A read just after ScheduleKeyDeletion may be stale: only a state that
                    # stays other than PendingDeletion means someone cancelled the deletion.
                    try:
                        key = self._settle(key)
                    except AwsError as exc:
                        if exc.aws_code != discover.KEY_GONE:
                            raise
                        gone_ids.add(key.id)
                        continue
                settled.append(key)
                if key.state != PENDING_DELETION:
                    raise RefusedError(
                        f"key {key.id} is no longer pending deletion (it is {key.state}): "
                        "someone cancelled it; nothing more was changed",
                        where=key.arn, hint="Run `ksdelete status` to review, then run again",
                    )
            remaining = settled
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
            # Keys just read by discovery or just scheduled cannot have vanished since; only
            # ask AWS again if some DeletionDate has passed.
            now = self.gw.server_now()
            if any(k.deletion_date and k.deletion_date <= now for k in remaining):
                check()
        for key_id in gone_ids:
            keys.pop(key_id, None)
        if remaining:
            self.reporter.phase(Phase.WAIT, PhaseState.PENDING,
                                f"{len(remaining)}/{total} key(s) still pending")
            raise _Pending(_latest(remaining),
                           f"{len(remaining)} key(s) still pending deletion; run again after "
                           "the latest DeletionDate (AWS may take up to 24 h longer)")
        return f"all {total} key(s) deleted"

    def _disconnect(self, store_id: str, result: StoreResult) -> str:
        store = self._read_store(store_id)
        if store.connection_state in (ConnectionState.DISCONNECTED,
                                      ConnectionState.DISCONNECTING):
            return f"already {store.connection_state}"
        self.mutate(result, "DisconnectCustomKeyStore",
                    lambda: self.gw.disconnect_store(store_id), already=_store_moved_on)
        return "disconnect requested"

    def _delete(self, snap: Snapshot, result: StoreResult) -> str:
        store = self._read_store(snap.store.id)
        policy = self.gw.policy
        # Planned keys that still show up right after they were seen gone are stale reads:
        # re-scan for a while before concluding anything.
        rescan = poll_until(
            lambda: self.scan(store),
            lambda r: bool(r.undescribable) or not r.keys
            or any(k.id not in snap.key_ids() for k in r.keys),
            call="ListKeys", timeout=policy.consistency_timeout,
            initial=policy.consistency_initial, maximum=policy.consistency_max, policy=policy,
            on_retry=self.reporter.retry, describe=lambda r: f"{len(r.keys)} key(s) still seen",
        )
        if rescan.undescribable:
            raise RefusedError(
                f"{len(rescan.undescribable)} key(s) could not be described during the re-scan; "
                "membership is unknown, so the store was not deleted",
                where=store.id, hint="Grant kms:DescribeKey on them and run again",
            )
        if rescan.keys:
            unplanned = [k.id for k in rescan.keys if k.id not in snap.key_ids()]
            if unplanned:
                raise RefusedError(
                    f"{len(unplanned)} key(s) appeared in the store that were not in the plan: "
                    f"{', '.join(unplanned)}; the store was not deleted",
                    where=store.id,
                    hint="Review them; run again with --include-new-keys to delete them too",
                )
            raise _Pending(None, f"{len(rescan.keys)} planned key(s) are still in the store")

        def attempt() -> AwsError | None:
            try:
                self.mutate(result, "DeleteCustomKeyStore",
                             lambda: self.gw.delete_store(store.id))
            except AwsError as exc:
                if exc.aws_code in ("CustomKeyStoreHasCMKsException",
                                    "CustomKeyStoreInvalidStateException"):
                    return exc
                raise
            return None

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


def _store_moved_on(exc: AwsError) -> str | None:
    """Connect/Disconnect refused for the store's state: a stale read showed an older state and
    the transition is already under way. The await step that follows reads the truth."""
    return "already-done" if exc.aws_code == "CustomKeyStoreInvalidStateException" else None


def _already_scheduled(exc: AwsError) -> str | None:
    """ScheduleKeyDeletion errors that mean the work is already done (as Terraform does)."""
    if exc.aws_code == "KMSInvalidStateException" and "pending deletion" in exc.what:
        return "already-done"
    if exc.aws_code == "NotFoundException":
        return "already-gone"
    return None


def result_outcome(result: StoreResult, key_id: str) -> str | None:
    return next((a.outcome for a in reversed(result.actions) if a.key_id == key_id), None)


def _latest(keys: list[Key]) -> datetime | None:
    return max((k.deletion_date for k in keys if k.deletion_date), default=None)
