"""The undo path while the waiting period is open (`ksdelete cancel`): the emergency brake.

The brake first, then the facts. Once confirmed, it cancels every key it already knows ksdelete
scheduled in the store (the journal; CancelKeyDeletion needs no DescribeKey) before it reads
anything else; then it scans the account and cancels every other pending key of the store,
earliest deletion first. A read that fails stops only the key it concerns, and what it could
not check (a key it cannot describe, an account scan that failed, tags it cannot read) makes
the result an error that names it. Then it re-reads each key and says, per key, what it is
now, and leaves the evidence of the cancel on each key (a tag), so that no unattended run on
any machine schedules the key again.

When a ksdelete run holds the store's lock, cancel leaves a cancel request beside the lock
(ksdelete.lock.CancelRequest): that run re-reads it before every point of no return and
stops. Cancel keeps cancelling whatever the run scheduled until the run has stopped, and only
then reports. The request stays: no unattended run goes on until a person confirms again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from ksdelete import marks, planner
from ksdelete.errors import (
    AwsError,
    KeyNotFound,
    RefusedError,
    UsageError,
)
from ksdelete.executor import Confirm, Executor, StoreRun, Target
from ksdelete.journal import ScheduledKey
from ksdelete.lock import CancelRequest, StoreLock
from ksdelete.models import (
    PENDING_DELETION,
    ConnectionState,
    Context,
    Key,
    Plan,
    PlanOptions,
    Refusal,
    Snapshot,
    Status,
    StepKind,
    StoreResult,
)
from ksdelete.reporting import Phase, PhaseState
from ksdelete.run.act import mark_cancelled
from ksdelete.undo import (
    ALREADY_DELETED,
    RECOVERED,
    STILL_PENDING,
    Candidate,
    Undo,
    counts,
    outcomes,
    prior,
    verdict,
)

MORE_PASSES = 10  # re-scans for keys a concurrent run scheduled meanwhile
PASS_PAUSE = 1.0  # seconds between them
# How long cancel goes on cancelling while a run holding the store's lock comes to a stop
# (it stops before its next point of no return; a --wait run notices within a poll).
RUN_STOP_TIMEOUT = 15 * 60.0
@dataclass
class _Brake:
    """This cancel's hold on the store: its lock when free (held to the end, so that no run
    on this machine starts meanwhile), else a cancel request for the run that holds it."""

    lock: StoreLock | None = None
    request: CancelRequest | None = None
    holder: str | None = None  # the run that held the lock when cancel began
    held: bool = False


def cancel(executor: Executor, target: Target, *, enable: bool, connect: bool,
           confirm: Confirm, planned: Mapping[str, Sequence[Key]] | None = None
           ) -> StoreResult:
    """Cancel every pending deletion of the store's keys; with `enable`, bring every key
    ksdelete scheduled back to the state it had before; with `connect`, reconnect the store.
    `planned`: the keys of each store a saved plan lists (cancelled first, with the
    journal's)."""

    def body(run: StoreRun) -> None:
        store_id = run.target.store.id if run.target.store else ""
        _cancel(executor, run, enable=enable, connect=connect, confirm=confirm,
                planned=tuple((planned or {}).get(store_id, ())))

    return executor.guarded(target, body, gone_is_done=False)


def _engage(executor: Executor, store_id: str) -> _Brake:
    """Take the store's lock if it is free; else note who holds it (never wait for it)."""
    if executor.lock_dir is None:
        return _Brake()
    who = executor.identity
    lock = StoreLock(executor.lock_dir, who.account, who.region, store_id, command="cancel")
    try:
        holder = lock.try_acquire()
    except UsageError as exc:  # the brake goes on without the lock
        executor.reporter.note(f"the store's lock cannot be checked ({exc.what}): a run in "
                               "progress on this machine would not be asked to stop",
                               level="warning")
        return _Brake()
    if holder is not None and lock.holder_command == "cancel":
        # Another brake, not a run to stop: both cancel, neither leaves a request.
        executor.reporter.note(f"another `ksdelete cancel` of this store is running "
                               f"({holder}); this one cancels too", level="warning")
        return _Brake()
    request = CancelRequest(executor.lock_dir, who.account, who.region, store_id)
    return _Brake(lock, request, holder, held=holder is None)


def _cancel(executor: Executor, run: StoreRun, *, enable: bool, connect: bool,
            confirm: Confirm, planned: tuple[Key, ...] = ()) -> None:
    target, result = run.target, run.result
    assert target.store is not None
    store = target.store
    matched_by = target.matched_by or "id"
    shell = Snapshot(store, (), matched_by=matched_by, identity=executor.identity)
    pinned = planner.name_pinned(shell, PlanOptions(), Context(pin=target.pin))
    if isinstance(pinned, Refusal):  # a name now held by another store: not the one we meant
        raise pinned.as_error(where=store.id)
    undo = Undo(executor, run, store, matched_by, planned)
    brake = _engage(executor, store.id)
    try:
        _brake_then_facts(undo, brake, shell, enable=enable, connect=connect, confirm=confirm)
    finally:
        if brake.held and brake.lock is not None:
            brake.lock.release()
        # Whatever stopped it (Ctrl-C included): every key's outcome so far.
        result.key_outcomes = outcomes(undo)


def _brake_then_facts(undo: Undo, brake: _Brake, shell: Snapshot, *, enable: bool,
                      connect: bool, confirm: Confirm) -> None:
    reporter = undo.executor.reporter
    known = _confirmed(undo, brake, shell, enable=enable, connect=connect, confirm=confirm)
    reporter.phase(Phase.CANCEL, PhaseState.RUNNING,
                   f"{len(known)} key(s) known before the scan" if known else "")
    undo.cancel(known)  # the brake first ...
    snap = undo.scan()  # ... then the facts
    _after_the_brake(undo, brake, snap, enable=enable, connect=connect)


def _confirmed(undo: Undo, brake: _Brake, shell: Snapshot, *, enable: bool, connect: bool,
               confirm: Confirm) -> list[Candidate]:
    """The plan as far as it is known before the scan, told and confirmed; a run holding
    the lock is asked to stop. Returns the keys the journal (and a saved plan) know."""
    executor, result, store = undo.executor, undo.result, undo.store
    reporter, journal = executor.reporter, executor.journal
    known = undo.known()
    result.plan = planner.plan_cancel(
        store.id, tuple(c.key_id for c in known),
        detail="the keys the journal knows first, then every pending key the scan finds",
        enable=enable, connect=connect)
    sources = "the journal" + (" and the saved plan" if undo.planned else "")
    first = (f"CancelKeyDeletion at once for the {len(known)} key(s) {sources} know(s), "
             "then for every other pending key an account scan finds"
             if known else "CancelKeyDeletion for every pending key an account scan finds "
             "(the journal knows no key ksdelete scheduled here)")
    reporter.note(f"the brake for {store.id}: {first}"
                  + ("; then each key back to its state before deletion (--enable)"
                     if enable else ""))
    if brake.holder is not None:
        reporter.note(f"another ksdelete run holds this store's lock ({brake.holder}): it "
                      "will be asked to stop before its next change, and this cancel waits "
                      "for it", level="warning")
    result.status = Status.CANCELLED
    if not confirm(shell, result.plan):
        raise RefusedError("not confirmed; nothing was changed", where=store.id)
    if brake.holder is not None and brake.lock is not None and brake.request is not None:
        if brake.lock.try_acquire() is None:  # it ended while the person was at the prompt
            brake.held = True
            result.run_in_progress = {"holder": brake.holder, "requested_at": None,
                                      "stopped": True}
            result.warnings.append(f"a ksdelete run held this store's lock ({brake.holder}); "
                                   "it ended before the cancel began")
        else:
            request = brake.request.write(by=executor.identity.caller_arn,
                                          run_id=journal.run_id)
            result.run_in_progress = {"holder": brake.holder,
                                      "requested_at": request["requested_at"],
                                      "stopped": False}
            journal.decision("CancelRequest", store_id=store.id, store_name=store.name,
                             key_ids=[], holder=brake.holder)
    return known


def _after_the_brake(undo: Undo, brake: _Brake, snap: Snapshot | None, *, enable: bool,
                     connect: bool) -> None:
    result, store = undo.result, undo.store
    reporter, journal = undo.executor.reporter, undo.executor.journal
    soaking: list[Candidate] = []
    restore: set[str] = set()
    if snap is not None:
        undo.settle(snap)
        pending = [Candidate(k.id, k.arn, k.deletion_date, prior(k, undo.scheduled))
                   for k in snap.keys if k.pending and k.id not in undo.seen()]
        # Closest to loss first; keys whose DeletionDate is unknown are assumed closest.
        pending.sort(key=lambda c: (c.deletion_date is not None, c.deletion_date, c.key_id))
        undo.cancel(pending)
        # Keys in a --disable-first soak: not pending, so nothing to cancel in AWS, but the
        # soak ends here (the cancel mark keeps unattended runs off them) and --enable
        # restores them.
        soaking = [Candidate(k.id, k.arn, None, prior(k, undo.scheduled),
                              outcome=RECOVERED, state=k.state)
                   for k in snap.keys if k.soaking and k.id not in undo.seen()]
        if enable:
            restore = {k.id for k in _to_restore(list(snap.keys), set())}
    result.plan = _plan(undo, result, restore | {c.key_id for c in soaking} | undo.seen()
                        if enable else set(), enable=enable, connect=connect)
    if snap is not None:
        reporter.plan(snap, result.plan)
    looked_again = False
    if result.run_in_progress is not None and not result.run_in_progress["stopped"]:
        _until_the_run_stops(undo, brake)
        # What it scheduled before it stopped, journalled here or not (another --journal):
        # the scan above may have come before it.
        _more_passes(undo, snap)
        looked_again = True
    if (not undo.candidates and not soaking and not restore and not connect
            and not undo.unknown and not undo.unchecked):
        result.warnings.append("nothing to cancel: no key of the store is pending deletion")
        if result.run_in_progress is not None:  # its confirmation, if any, is void
            journal.decision("CancelPlan", store_id=store.id, store_name=store.name,
                             key_ids=[], matched_by=undo.matched_by)
        _mark_the_rest(undo, snap)
        reporter.phase(Phase.CANCEL, PhaseState.DONE, "nothing to cancel")
        return

    if not looked_again:
        _more_passes(undo, snap)
    _finish(undo, soaking, had_scan=snap is not None, enable=enable, connect=connect)


def _mark_the_rest(undo: Undo, snap: Snapshot | None) -> None:
    """A cancel before anything was scheduled still sticks: each key of the store gets the
    cancel mark, so no unattended run (on any machine) schedules it until a person confirms
    it again at a terminal (planner.not_cancelled)."""
    if snap is None or not snap.keys:
        return
    keys = [k for k in snap.keys if not k.pending and not (k.marks and k.marks.cancelled)]
    _leave_evidence(undo.executor, undo.result,
                    [Candidate(k.id, k.arn, None, prior(k, undo.scheduled), outcome=RECOVERED,
                               state=k.state)
                     for k in keys], {k.id: k for k in keys})
    if keys:
        undo.result.warnings.append(
            f"{len(keys)} key(s) marked cancelled: no unattended run schedules them; a person "
            "confirms them again at a terminal")


def _more_passes(undo: Undo, snap: Snapshot | None) -> None:
    """A delete run on another machine may schedule more keys meanwhile: look again, a
    little apart, until a pass finds none."""
    reporter, gw = undo.executor.reporter, undo.executor.gw
    for _ in range(MORE_PASSES if snap is not None else 0):
        fresh = undo.scan()
        late = [k for k in fresh.keys if k.pending and k.id not in undo.seen()] \
            if fresh is not None else []
        if not late:
            break
        reporter.note(f"{len(late)} more key(s) became pending meanwhile; cancelling them too")
        undo.cancel([Candidate(k.id, k.arn, k.deletion_date, prior(k, undo.scheduled))
                     for k in late])
        gw.policy.sleep(PASS_PAUSE)


def _finish(undo: Undo, soaking: list[Candidate], *, had_scan: bool, enable: bool,
            connect: bool) -> None:
    """Each key re-read and marked, the store reconnected (--connect), the keys restored
    (--enable), the cancel journalled, and the verdict from a last scan."""
    executor, result, store = undo.executor, undo.result, undo.store
    gw, reporter, journal = executor.gw, executor.reporter, executor.journal
    result.plan = _plan(undo, result, enable=enable, connect=connect)
    _reread(executor, undo.candidates)
    undo.candidates += soaking
    recovered = [c for c in undo.candidates if c.outcome == RECOVERED]
    keys = {c.key_id: undo.members.get(c.key_id) or Key(c.key_id, c.arn, "", store.id)
            for c in undo.candidates} | undo.members
    _leave_evidence(executor, result, recovered, keys)
    if connect:  # first: keys show their real state again, and --enable acts on it
        current = gw.describe_store(store_id=store.id)
        if current and current.connection_state in (ConnectionState.DISCONNECTED,
                                                    ConnectionState.FAILED):
            executor.connect(undo.run, store.id)
    if enable:
        mine = {c.key_id for c in recovered}
        undo.restore_errors = _restore(executor, result, _to_restore(
            _fresh(executor, list(keys.values())), mine), undo.scheduled)
    journal.decision("CancelPlan", store_id=store.id, store_name=store.name,
                     key_ids=[c.key_id for c in recovered], matched_by=undo.matched_by)
    # A scan that failed once is not tried again (it would cost the same retries, and the
    # error already says what could not be checked).
    final = undo.scan() if had_scan else None
    if final is not None:
        result.keys = final.keys
    pending_now = [k.id for k in final.keys if k.pending] if final is not None else []
    for line in verdict(undo, pending_now):
        reporter.note(line, level="warning")
    reporter.phase(Phase.CANCEL, PhaseState.DONE if result.status is Status.CANCELLED
                   else PhaseState.FAILED, counts(undo))


def _plan(undo: Undo, result: StoreResult, restore: set[str] | None = None, *, enable: bool,
          connect: bool) -> Plan:
    """The plan as it stands: every key this cancel tried, and, with --enable, the keys that
    go back to their state before deletion (`restore`; None: as planned before)."""
    before = result.plan
    if restore is None and before is not None:
        step = before.step(StepKind.ENABLE_KEYS)
        restore = set(step.key_ids) if step is not None else set()
    return planner.plan_cancel(
        undo.store.id, tuple(c.key_id for c in undo.candidates), detail="", enable=enable,
        connect=connect, restore=tuple(sorted(restore or ())), warnings=tuple(result.warnings))


def _until_the_run_stops(undo: Undo, brake: _Brake) -> None:
    """A run held the store's lock: it stops before its next point of no return. Until it
    has (the lock is free), cancel every key it scheduled meanwhile (its journal lines)."""
    executor, result = undo.executor, undo.result
    assert brake.lock is not None and result.run_in_progress is not None
    executor.reporter.note(f"waiting for the run in progress ({brake.holder}) to stop; "
                           "cancelling whatever it schedules meanwhile")
    deadline = time.monotonic() + RUN_STOP_TIMEOUT
    while True:
        stopped = brake.lock.try_acquire() is None
        executor.journal.reload()  # the run's last lines, once it has stopped
        undo.scheduled = executor.journal.scheduled_keys(undo.store.id)
        undo.cancel(undo.known())
        if stopped:
            brake.held = True
            result.run_in_progress["stopped"] = True
            result.warnings.append(
                f"a ksdelete run was in progress on this store ({brake.holder}): the cancel "
                "request stopped it before its next change, and every key it had scheduled "
                "was cancelled too")
            return
        if time.monotonic() >= deadline:
            undo.unchecked.append(
                f"the ksdelete run in progress ({brake.holder}) had not stopped after "
                f"{RUN_STOP_TIMEOUT / 60:.0f} minutes: it stops before its next change (the "
                "cancel request stays); run `ksdelete cancel` again once it has")
            return
        executor.gw.policy.sleep(PASS_PAUSE)


def _reread(executor: Executor, candidates: list[Candidate]) -> None:
    """What each key is now: the outcome is AWS's word, not the calls' answers."""
    for c in candidates:
        try:
            state = str(executor.gw.describe_key(c.arn).get("KeyState", ""))
        except KeyNotFound:
            c.outcome = ALREADY_DELETED
            continue
        except AwsError as exc:
            # Not readable (e.g. DescribeKey denied): trust CancelKeyDeletion's answer.
            c.state = f"unknown ({exc.aws_code})"
            c.outcome = STILL_PENDING if c.error else RECOVERED
            continue
        c.state = state
        c.outcome = STILL_PENDING if state == PENDING_DELETION else RECOVERED


def _leave_evidence(executor: Executor, result: StoreResult, recovered: list[Candidate],
                    members: dict[str, Key]) -> None:
    """Tag each recovered key with who cancelled and when (it is no longer pending, so it can
    be tagged). The `ksdelete:scheduled` mark stays: together they keep unattended runs off."""
    who = executor.identity.caller_arn
    now = executor.stamp()
    value = marks.cancelled(now, by=who)
    for c in recovered:
        key = members.get(c.key_id) or Key(c.key_id, c.arn, "", "")
        try:
            mark_cancelled(executor.services, result, key, value, c.arn)
        except AwsError as exc:
            result.warnings.append(f"{c.key_id}: could not record the cancel on the key "
                                   f"({exc.aws_code}); the ksdelete:scheduled mark still "
                                   "keeps unattended runs from scheduling it again")


def _fresh(executor: Executor, keys: list[Key]) -> list[Key]:
    """The keys as AWS shows them now (after the cancels), keeping their marks."""
    fresh: list[Key] = []
    for key in keys:
        try:
            state = str(executor.gw.describe_key(key.arn).get("KeyState", key.state))
        except KeyNotFound:
            continue
        fresh.append(Key(key.id, key.arn, state, key.custom_key_store_id, None, key.aliases,
                         key.external_key_id, key.marks))
    return fresh


def _to_restore(keys: list[Key], recovered: set[str]) -> list[Key]:
    """Keys whose state before deletion --enable brings back: those this cancel recovered, and
    those an earlier `ksdelete cancel` recovered (its mark) and no --enable restored yet. A key
    someone disabled after a restore is never touched."""
    return [k for k in keys if not k.pending and (
        k.id in recovered
        or (k.marks is not None and k.marks.cancelled is not None
            and not marks.is_restored(k.marks.cancelled)))]


def _restore(executor: Executor, result: StoreResult, keys: list[Key],
             scheduled: dict[str, ScheduledKey]) -> dict[str, AwsError]:
    """--enable: each key back to the state it had before ksdelete scheduled it. A key that
    was Disabled stays Disabled (perhaps on purpose); an unknown prior state is left alone.
    One key's error does not stop the others; the errors are returned."""
    errors: dict[str, AwsError] = {}
    now = executor.stamp()
    for key in keys:
        before = prior(key, scheduled)
        try:
            if before == "Enabled":
                if key.state != "Enabled":
                    executor.mutate(result, "EnableKey",
                                    partial(executor.gw.enable_key, key.arn), key=key)
            elif before == "Disabled":
                result.warnings.append(f"{key.id} stays Disabled: it was Disabled before "
                                       "ksdelete scheduled it")
            else:
                result.warnings.append(
                    f"{key.id} stays {key.state}: its state before deletion is not known "
                    f"({before or 'no record'}; e.g. its store was disconnected when it was "
                    "scheduled); enable it by hand if it should be used")
                continue
            cancelled = (key.marks.cancelled if key.marks and key.marks.cancelled else
                         f"{now} by={executor.identity.caller_arn}")
            mark_cancelled(executor.services, result, key, marks.restored(cancelled, now))
        except AwsError as exc:
            errors[key.id] = exc
            executor.reporter.note(f"{key.id}: could not restore its state: {exc.aws_code}: "
                                   f"{exc.what}", level="error")
    return errors


