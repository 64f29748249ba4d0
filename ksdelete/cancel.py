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
from datetime import datetime
from functools import partial

from ksdelete import marks, planner
from ksdelete.errors import (
    AwsError,
    KeyNotFound,
    KsdeleteError,
    RefusedError,
    StoreNotFoundError,
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
    KeyStore,
    Plan,
    PlanOptions,
    Refusal,
    Snapshot,
    Status,
    Step,
    StepKind,
    StoreResult,
    UndescribableKey,
)
from ksdelete.reporting import Phase, PhaseState
from ksdelete.run.act import cancel_deletion, mark_cancelled

MORE_PASSES = 10  # re-scans for keys a concurrent run scheduled meanwhile
PASS_PAUSE = 1.0  # seconds between them
# How long cancel goes on cancelling while a run holding the store's lock comes to a stop
# (it stops before its next point of no return; a --wait run notices within a poll).
RUN_STOP_TIMEOUT = 15 * 60.0
RECOVERED = "recovered"
STILL_PENDING = "still-pending"
ALREADY_DELETED = "already-deleted"
UNKNOWN = "unknown"  # could not be described: possibly a pending key of the store; untouched
NOT_ATTEMPTED = "not-attempted"  # the cancel was interrupted before this key's turn

HINTS = {
    "AccessDeniedException": "the key policy or IAM denies kms:CancelKeyDeletion: grant it to "
                             "this caller, or ask the key's owner to cancel",
}
UNKNOWN_HINT = ("DescribeKey failed, so the key is not proven to be this store's and was not "
                "touched: grant kms:DescribeKey and run `ksdelete cancel` again; if it is this "
                "store's key, `aws kms cancel-key-deletion --key-id` it now")


@dataclass
class _Candidate:
    key_id: str
    arn: str  # the key ARN, or its ID when the journal did not record one
    deletion_date: datetime | None
    prior: str | None  # the state before ksdelete scheduled it, if known
    error: AwsError | None = None
    outcome: str = ""
    state: str = ""


@dataclass
class _Brake:
    """This cancel's hold on the store: its lock when free (held to the end, so that no run
    on this machine starts meanwhile), else a cancel request for the run that holds it."""

    lock: StoreLock | None = None
    request: CancelRequest | None = None
    holder: str | None = None  # the run that held the lock when cancel began
    held: bool = False


class _Undo:
    """What one cancel knows and did: every key it cancelled (in order), the store's members
    as last scanned, keys it could not describe, and what it could not check."""

    def __init__(self, executor: Executor, run: StoreRun, store: KeyStore,
                 matched_by: str, planned: tuple[Key, ...] = ()) -> None:
        self.planned = planned  # the saved plan's keys of this store (`cancel --plan`)
        self.executor = executor
        self.run = run
        self.result = run.result
        self.store = store
        self.matched_by = matched_by
        self.candidates: list[_Candidate] = []
        self.members: dict[str, Key] = {}
        self.unknown: dict[str, UndescribableKey] = {}
        self.unreadable: dict[str, AwsError] = {}  # ListResourceTags failed
        self.unchecked: list[str] = []
        self.restore_errors: dict[str, AwsError] = {}
        self.scheduled: dict[str, ScheduledKey] = executor.journal.scheduled_keys(store.id)
        self.tried: set[tuple[str, str]] = set()  # journal schedulings the brake acted on

    def seen(self) -> set[str]:
        return {c.key_id for c in self.candidates}

    def known(self) -> list[_Candidate]:
        """Keys the journal says ksdelete scheduled in this store (so they are its members:
        membership never changes), not cancelled by ksdelete since, and not tried by this
        cancel yet; earliest scheduled first."""
        seen = self.seen()
        cancelled = _cancelled_since_scheduled(self.executor.journal.entries(), self.store.id)
        records = sorted((r for r in self.scheduled.values()
                          if r.key_id not in seen and r.key_id not in cancelled
                          and (r.key_id, r.time) not in self.tried),
                         key=lambda r: (r.time, r.key_id))
        self.tried.update((r.key_id, r.time) for r in records)
        known = [_Candidate(r.key_id, r.arn or r.key_id, None, r.prior_state)
                 for r in records]
        listed = seen | {c.key_id for c in known} | set(self.scheduled)
        plan = [k for k in self.planned if k.id not in listed and (k.id, "plan") not in self.tried]
        self.tried.update((k.id, "plan") for k in plan)
        return known + [_Candidate(k.id, k.arn, k.deletion_date, None) for k in plan]

    def settle(self, snap: Snapshot) -> None:
        """Journal keys the brake found no longer pending (cancelled by hand meanwhile) that
        the scan describes: not this cancel's to recover or restore, as if never tried."""
        settled = {k.id for k in snap.keys if not k.pending}
        self.candidates = [c for c in self.candidates if not (
            c.key_id in settled and c.error is None
            and _answer(self.result, c.key_id) == "already-done")]

    def cancel(self, new: list[_Candidate]) -> None:
        seen = self.seen()
        new = [c for c in new if c.key_id not in seen]
        if new:
            self.candidates += new  # listed first: an interrupted cancel still reports them
            _cancel_all(self.executor, self.result, new, self.members)

    def scan(self) -> Snapshot | None:
        """The facts: the store and every key in it. One key's unreadable tags do not stop
        it; a scan that fails is recorded as not checked (None)."""
        unreadable: dict[str, AwsError] = {}
        try:
            snap = self.executor.snapshot(self.run, self.store.id, self.matched_by,
                                          all_marks=True, unreadable_marks=unreadable)
        except (StoreNotFoundError, UsageError):
            raise
        except KsdeleteError as exc:
            code = getattr(exc, "aws_code", "") or exc.code
            why = (f"the account scan (ListKeys, then DescribeKey of every key) failed "
                   f"({code}: {exc.what}): pending keys of the store that the journal does "
                   "not know could not be checked")
            if why not in self.unchecked:
                self.unchecked.append(why)
            self.executor.reporter.phase(Phase.DISCOVER, PhaseState.FAILED, f"{code}")
            self.executor.reporter.note(why, level="error")
            return None
        self.members.update({k.id: k for k in snap.keys})
        self.unknown = {bad.id: bad for bad in snap.undescribable}
        self.unreadable.update(unreadable)
        return snap


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
        raise RefusedError(pinned.message, where=store.id)
    undo = _Undo(executor, run, store, matched_by, planned)
    brake = _engage(executor, store.id)
    try:
        _brake_then_facts(undo, brake, shell, enable=enable, connect=connect, confirm=confirm)
    finally:
        if brake.held and brake.lock is not None:
            brake.lock.release()
        # Whatever stopped it (Ctrl-C included): every key's outcome so far.
        result.key_outcomes = _outcomes(undo)


def _brake_then_facts(undo: _Undo, brake: _Brake, shell: Snapshot, *, enable: bool,
                      connect: bool, confirm: Confirm) -> None:
    executor, result, store = undo.executor, undo.result, undo.store
    gw, reporter, journal = executor.gw, executor.reporter, executor.journal
    known = undo.known()
    result.plan = Plan(store_id=store.id, steps=(Step(
        StepKind.CANCEL_KEY_DELETION, key_ids=tuple(c.key_id for c in known),
        detail="the keys the journal knows first, then every pending key the scan finds"),))
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

    reporter.phase(Phase.CANCEL, PhaseState.RUNNING,
                   f"{len(known)} key(s) known before the scan" if known else "")
    undo.cancel(known)  # the brake first ...
    snap = undo.scan()  # ... then the facts
    soaking: list[_Candidate] = []
    restore: set[str] = set()
    if snap is not None:
        undo.settle(snap)
        pending = [_Candidate(k.id, k.arn, k.deletion_date, _prior(k, undo.scheduled))
                   for k in snap.keys if k.pending and k.id not in undo.seen()]
        # Closest to loss first; keys whose DeletionDate is unknown are assumed closest.
        pending.sort(key=lambda c: (c.deletion_date is not None, c.deletion_date, c.key_id))
        undo.cancel(pending)
        # Keys in a --disable-first soak: not pending, so nothing to cancel in AWS, but the
        # soak ends here (the cancel mark keeps unattended runs off them) and --enable
        # restores them.
        soaking = [_Candidate(k.id, k.arn, None, _prior(k, undo.scheduled),
                              outcome=RECOVERED, state=k.state)
                   for k in snap.keys if k.soaking and k.id not in undo.seen()]
        if enable:
            restore = {k.id for k in _to_restore(list(snap.keys), set())}
    result.plan = _plan(undo, result, restore | {c.key_id for c in soaking} | undo.seen()
                        if enable else set())
    if snap is not None:
        reporter.plan(snap, result.plan)
    if result.run_in_progress is not None and not result.run_in_progress["stopped"]:
        _until_the_run_stops(undo, brake)
    if (not undo.candidates and not soaking and not restore and not connect
            and not undo.unknown and not undo.unchecked):
        result.warnings.append("nothing to cancel: no key of the store is pending deletion")
        if result.run_in_progress is not None:  # its confirmation, if any, is void
            journal.decision("CancelPlan", store_id=store.id, store_name=store.name,
                             key_ids=[], matched_by=undo.matched_by)
        reporter.phase(Phase.CANCEL, PhaseState.DONE, "nothing to cancel")
        return

    # A delete run on another machine may schedule more keys meanwhile: look again, a
    # little apart, until a pass finds none.
    for _ in range(MORE_PASSES if snap is not None else 0):
        fresh = undo.scan()
        late = [k for k in fresh.keys if k.pending and k.id not in undo.seen()] \
            if fresh is not None else []
        if not late:
            break
        reporter.note(f"{len(late)} more key(s) became pending meanwhile; cancelling them too")
        undo.cancel([_Candidate(k.id, k.arn, k.deletion_date, _prior(k, undo.scheduled))
                     for k in late])
        gw.policy.sleep(PASS_PAUSE)
    result.plan = _plan(undo, result)
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
    final = undo.scan() if snap is not None else None
    if final is not None:
        result.keys = final.keys
    pending_now = [k.id for k in final.keys if k.pending] if final is not None else []
    for line in _verdict(undo, pending_now):
        reporter.note(line, level="warning")
    reporter.phase(Phase.CANCEL, PhaseState.DONE if result.status is Status.CANCELLED
                   else PhaseState.FAILED, _counts(undo))


def _plan(undo: _Undo, result: StoreResult, restore: set[str] | None = None) -> Plan:
    """The plan as it stands: CancelKeyDeletion for every key this cancel tried (and, with
    --enable, how many keys go back to their state before deletion)."""
    if restore is None:  # as planned before
        detail = result.plan.steps[0].detail if result.plan and result.plan.steps else ""
    else:
        detail = (f"then {len(restore)} key(s) back to their state before deletion"
                  if restore else "")
    return Plan(store_id=undo.store.id,
                steps=(Step(StepKind.CANCEL_KEY_DELETION,
                            key_ids=tuple(c.key_id for c in undo.candidates),
                            detail=detail),),
                warnings=tuple(result.warnings))


def _until_the_run_stops(undo: _Undo, brake: _Brake) -> None:
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


def _counts(undo: _Undo) -> str:
    """What the cancel really did, for the screen."""
    outcomes = [c.outcome for c in undo.candidates]
    enabled = sum(1 for a in undo.result.actions if a.operation == "EnableKey"
                  and a.outcome == "ok")
    text = (f"{outcomes.count(RECOVERED)} recovered, {enabled} re-enabled, "
            f"{outcomes.count(STILL_PENDING)} still pending, "
            f"{outcomes.count(ALREADY_DELETED)} already deleted")
    unknown = [k for k in undo.unknown if k not in undo.seen()]
    return text + (f", {len(unknown)} could not be described" if unknown else "")


def _outcomes(undo: _Undo) -> list[dict[str, object]]:
    """key_outcomes: every key this cancel tried (what it is now, or, if it was stopped
    before re-reading, what CancelKeyDeletion answered), then every key it could not
    describe."""
    rows: list[dict[str, object]] = [
        {"id": c.key_id, "arn": c.arn, "outcome": c.outcome or _answered(undo, c),
         "state": c.state or None, "error": _error_json(c.error),
         "restore_error": _error_json(undo.restore_errors.get(c.key_id))}
        for c in undo.candidates]
    seen = undo.seen()
    rows += [{"id": bad.id, "arn": bad.arn, "outcome": UNKNOWN, "state": None,
              "error": {"code": bad.error_code, "message": bad.message, "hint": UNKNOWN_HINT},
              "restore_error": None}
             for bad in undo.unknown.values() if bad.id not in seen]
    return rows


def _cancelled_since_scheduled(entries: list[dict[str, object]], store_id: str) -> set[str]:
    """Keys of the store whose latest ScheduleKeyDeletion/CancelKeyDeletion in the journal
    is a cancel: nothing left for the brake to do."""
    latest: dict[str, object] = {}
    for e in entries:
        if e.get("store_id") == store_id and e.get("phase") == "result" \
                and e.get("outcome") == "ok" and e.get("key_id") \
                and e.get("operation") in ("ScheduleKeyDeletion", "CancelKeyDeletion"):
            latest[str(e["key_id"])] = e["operation"]
    return {key_id for key_id, operation in latest.items() if operation == "CancelKeyDeletion"}


def _answer(result: StoreResult, key_id: str) -> str | None:
    """What CancelKeyDeletion last answered for a key in this run, if it was called."""
    return next((a.outcome for a in reversed(result.actions)
                 if a.key_id == key_id and a.operation == "CancelKeyDeletion"), None)


def _answered(undo: _Undo, candidate: _Candidate) -> str:
    """A key's outcome from CancelKeyDeletion's answer alone (not re-read yet)."""
    if candidate.error is not None:
        return STILL_PENDING
    answer = _answer(undo.result, candidate.key_id)
    if answer in ("ok", "already-done"):
        return RECOVERED
    if answer == "already-gone":
        return ALREADY_DELETED
    return NOT_ATTEMPTED


def _error_json(exc: AwsError | None) -> dict[str, str] | None:
    if exc is None:
        return None
    return {"code": exc.aws_code, "message": exc.what,
            "hint": HINTS.get(exc.aws_code, "run `ksdelete cancel` again")}


def _cancel_all(executor: Executor, result: StoreResult, candidates: list[_Candidate],
                members: dict[str, Key]) -> None:
    """CancelKeyDeletion for each candidate, going on past any one key's error."""
    store_id = result.store.id if result.store else ""
    for done, candidate in enumerate(candidates, 1):
        key = members.get(candidate.key_id) or Key(candidate.key_id, candidate.arn, "", store_id)
        try:
            cancel_deletion(executor.services, result, key, candidate.arn)
        except AwsError as exc:  # one key's error must not leave the others pending
            candidate.error = exc
            hint = HINTS.get(exc.aws_code, "run `ksdelete cancel` again")
            executor.reporter.note(f"{candidate.key_id}: CancelKeyDeletion failed: "
                                   f"{exc.aws_code}: {exc.what}; {hint}", level="error")
        executor.reporter.progress(Phase.CANCEL, done, len(candidates))


def _prior(key: Key, scheduled: dict[str, ScheduledKey]) -> str | None:
    """The state a key had before ksdelete scheduled it: from its mark (in AWS), else from the
    journal."""
    if key.marks is not None and key.marks.field("prior"):
        return key.marks.field("prior")
    record = scheduled.get(key.id)
    return record.prior_state if record else None


def _reread(executor: Executor, candidates: list[_Candidate]) -> None:
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


def _leave_evidence(executor: Executor, result: StoreResult, recovered: list[_Candidate],
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
        prior = _prior(key, scheduled)
        try:
            if prior == "Enabled":
                if key.state != "Enabled":
                    executor.mutate(result, "EnableKey",
                                    partial(executor.gw.enable_key, key.arn), key=key)
            elif prior == "Disabled":
                result.warnings.append(f"{key.id} stays Disabled: it was Disabled before "
                                       "ksdelete scheduled it")
            else:
                result.warnings.append(
                    f"{key.id} stays {key.state}: its state before deletion is not known "
                    f"({prior or 'no record'}; e.g. its store was disconnected when it was "
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


def _verdict(undo: _Undo, pending_now: list[str]) -> list[str]:
    """Exit 0 only when every key that could be recovered was (and, with --enable, restored)
    and nothing went unchecked; else 1, naming each problem: a key still pending, a key that
    could not be described (possibly a pending key of the store), what could not be checked,
    nothing recoverable at all, a failed restore. `pending_now` is what AWS shows after
    everything: the last word."""
    result, candidates = undo.result, undo.candidates
    pending = sorted({c.key_id for c in candidates if c.outcome == STILL_PENDING}
                     | set(pending_now))
    deleted = [c.key_id for c in candidates if c.outcome == ALREADY_DELETED]
    seen = undo.seen()
    unknown = [bad for bad in undo.unknown.values() if bad.id not in seen]
    shown: list[str] = []
    if deleted:
        shown.append(f"{len(deleted)} key(s) were already deleted and cannot be recovered: "
                     f"{', '.join(deleted)}")
    shown += [f"{bad.id}: DescribeKey failed ({bad.error_code}): possibly pending, and "
              "possibly this store's; not cancelled, as it is not proven to be this store's"
              for bad in unknown]
    for key_id, exc in sorted(undo.unreadable.items()):
        if key_id in seen:
            shown.append(f"{key_id}: its tags could not be read (ListResourceTags: "
                         f"{exc.aws_code}); its state before deletion is known only from "
                         "the journal, if at all")
        else:
            undo.unchecked.append(
                f"{key_id}: its tags could not be read (ListResourceTags: {exc.aws_code}), "
                "so whether it is in a --disable-first soak could not be checked")
    result.warnings.extend(w for w in shown if w not in result.warnings)
    problems: list[tuple[str, str]] = []
    if pending:
        problems.append(("still-pending",
                         f"{len(pending)} key(s) are still pending deletion: "
                         f"{', '.join(pending)}; see each key's error and hint, then run "
                         "`ksdelete cancel` again"))
    if unknown:
        problems.append(("unchecked",
                         f"{len(unknown)} key(s) could not be described and are possibly "
                         "pending keys of this store: "
                         + ", ".join(f"{bad.id} ({bad.error_code})" for bad in unknown)
                         + "; grant kms:DescribeKey and run `ksdelete cancel` again, or "
                         "cancel them by hand if they are this store's"))
    problems += [("unchecked", why) for why in undo.unchecked]
    if not problems and candidates and len(deleted) == len(candidates):
        problems.append(("nothing-recovered", f"all {len(deleted)} key(s) were already "
                                              "deleted; nothing to recover"))
    if undo.restore_errors:
        problems.append(("not-restored",
                         f"{len(undo.restore_errors)} recovered key(s) could not be restored "
                         f"to their state before deletion: "
                         f"{', '.join(sorted(undo.restore_errors))}; see key_outcomes"))
    if problems:
        result.status = Status.ERROR
        result.error = {"code": problems[0][0],
                        "message": "; ".join(message for _, message in problems)}
    return shown
