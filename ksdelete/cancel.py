"""The undo path while the waiting period is open (`ksdelete cancel`): the emergency brake.

It recovers everything it can: every pending key of the store and every key the journal says
ksdelete scheduled there (CancelKeyDeletion needs no DescribeKey), earliest deletion first,
going on past per-key errors; then it re-reads each key and says, per key, what it is now.
It leaves the evidence of the cancel on each key (a tag), so that no unattended run on any
machine schedules the key again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from ksdelete import planner
from ksdelete.errors import AwsError, KeyNotFound, RefusedError
from ksdelete.executor import Confirm, Executor, Target, not_pending, tag_value
from ksdelete.journal import ScheduledKey
from ksdelete.models import (
    CANCELLED_TAG,
    PENDING_DELETION,
    ConnectionState,
    Context,
    Key,
    Plan,
    PlanOptions,
    Refusal,
    Status,
    Step,
    StepKind,
    StoreResult,
)
from ksdelete.reporting import Phase, PhaseState

MORE_PASSES = 10  # re-scans for keys a concurrent run scheduled meanwhile
PASS_PAUSE = 1.0  # seconds between them
RESTORED = "restored="  # added to the ksdelete:cancelled mark once --enable restored the key
RECOVERED = "recovered"
STILL_PENDING = "still-pending"
ALREADY_DELETED = "already-deleted"

HINTS = {
    "AccessDeniedException": "the key policy or IAM denies kms:CancelKeyDeletion: grant it to "
                             "this caller, or ask the key's owner to cancel",
}


@dataclass
class _Candidate:
    key_id: str
    arn: str  # the key ARN, or its ID when the journal did not record one
    deletion_date: datetime | None
    prior: str | None  # the state before ksdelete scheduled it, if known
    error: AwsError | None = None
    outcome: str = ""
    state: str = ""


def cancel(executor: Executor, target: Target, *, enable: bool, connect: bool,
           confirm: Confirm) -> StoreResult:
    """Cancel every pending deletion of the store's keys; with `enable`, bring every key
    ksdelete scheduled back to the state it had before; with `connect`, reconnect the store."""

    def body(target: Target, result: StoreResult) -> None:
        _cancel(executor, target, result, enable=enable, connect=connect, confirm=confirm)

    return executor.guarded(target, body, gone_is_done=False)


def _cancel(executor: Executor, target: Target, result: StoreResult, *, enable: bool,
            connect: bool, confirm: Confirm) -> None:
    gw, reporter, journal = executor.gw, executor.reporter, executor.journal
    assert target.store is not None
    snap = executor.snapshot(target.store.id, target.matched_by or "id", result,
                             all_marks=True)
    pinned = planner.name_pinned(snap, PlanOptions(), Context(pin=target.pin))
    if isinstance(pinned, Refusal):  # a name now held by another store: not the one we meant
        raise RefusedError(pinned.message, where=snap.store.id)
    store = snap.store
    members = {k.id: k for k in snap.keys}
    scheduled = journal.scheduled_keys(store.id)
    candidates = [
        _Candidate(k.id, k.arn, k.deletion_date, _prior(k, scheduled))
        for k in snap.keys if k.pending
    ]
    # Keys ksdelete scheduled in this store that discovery did not show as members: deleted,
    # or undescribable. Membership never changes, so they are still this store's: try them.
    candidates += [
        _Candidate(key_id, record.arn or key_id, None, record.prior_state)
        for key_id, record in scheduled.items() if key_id not in members
    ]
    # Closest to loss first; keys whose DeletionDate is unknown are assumed closest.
    candidates.sort(key=lambda c: (c.deletion_date is not None, c.deletion_date, c.key_id))
    # Keys in a --disable-first soak: not pending, so nothing to cancel in AWS, but the soak
    # ends here (the cancel mark keeps unattended runs off them) and --enable restores them.
    soaking = [_Candidate(k.id, k.arn, None, _prior(k, scheduled), outcome=RECOVERED,
                          state=k.state) for k in snap.keys if k.soaking]
    restore = ({c.key_id for c in (*candidates, *soaking)}
               | {k.id for k in _to_restore(list(snap.keys), set())}) if enable else set()
    plan = Plan(store_id=store.id,
                steps=(Step(StepKind.CANCEL_KEY_DELETION,
                            key_ids=tuple(c.key_id for c in candidates)),),
                warnings=tuple(result.warnings))
    result.plan = plan
    reporter.plan(snap, plan)
    reporter.note(f"{len(candidates)} key(s) to cancel"
                  + (f", {len(soaking)} soak(s) to stop" if soaking else "")
                  + (f", {len(restore)} to restore to their state before deletion"
                     if enable else ""))
    result.status = Status.CANCELLED
    if not candidates and not soaking and not restore and not connect:
        result.warnings.append("nothing to cancel: no key of the store is pending deletion")
        return
    if not confirm(snap, plan):
        raise RefusedError("not confirmed; nothing was changed", where=store.id)

    reporter.phase(Phase.CANCEL, PhaseState.RUNNING)
    _cancel_all(executor, result, candidates, members)
    # A delete run may schedule more keys meanwhile (cancel takes no lock, so that it works
    # while a --wait run holds it): look again, a little apart, until a pass finds none.
    for _ in range(MORE_PASSES):
        seen = {c.key_id for c in candidates}
        late = [k for k in executor.snapshot(store.id, snap.matched_by, result,
                                             all_marks=True).keys
                if k.pending and k.id not in seen]
        if not late:
            break
        reporter.note(f"{len(late)} more key(s) became pending meanwhile; cancelling them too")
        extra = [_Candidate(k.id, k.arn, k.deletion_date, _prior(k, scheduled)) for k in late]
        members.update({k.id: k for k in late})
        _cancel_all(executor, result, extra, members)
        candidates += extra
        gw.policy.sleep(PASS_PAUSE)
    _reread(executor, candidates)
    candidates += soaking
    recovered = [c for c in candidates if c.outcome == RECOVERED]
    _leave_evidence(executor, result, recovered, members)
    if connect:  # first: keys show their real state again, and --enable acts on it
        current = gw.describe_store(store_id=store.id)
        if current and current.connection_state in (ConnectionState.DISCONNECTED,
                                                    ConnectionState.FAILED):
            executor.connect(store.id, result)
    restore_errors: dict[str, AwsError] = {}
    if enable:
        mine = {c.key_id for c in recovered}
        restore_errors = _restore(executor, result, _to_restore(
            _fresh(executor, list(members.values())), mine), scheduled)
    journal.decision("CancelPlan", store_id=store.id, store_name=store.name,
                     key_ids=[c.key_id for c in recovered], matched_by=snap.matched_by)
    result.key_outcomes = [
        {"id": c.key_id, "arn": c.arn, "outcome": c.outcome, "state": c.state or None,
         "error": _error_json(c.error), "restore_error": _error_json(restore_errors.get(c.key_id))}
        for c in candidates
    ]
    final = executor.snapshot(store.id, snap.matched_by, result, all_marks=True)
    result.keys = final.keys
    for line in _verdict(result, candidates, [k.id for k in final.keys if k.pending],
                         restore_errors):
        reporter.note(line, level="warning")
    reporter.phase(Phase.CANCEL, PhaseState.DONE if result.status is Status.CANCELLED
                   else PhaseState.FAILED,
                   f"{len(recovered)} recovered, "
                   f"{sum(c.outcome == STILL_PENDING for c in candidates)} still pending, "
                   f"{sum(c.outcome == ALREADY_DELETED for c in candidates)} already deleted")


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
            executor.mutate(result, "CancelKeyDeletion",
                            partial(executor.gw.cancel_key_deletion, candidate.arn), key=key,
                            already=not_pending)
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
    value = tag_value(f"{now} by={who}")
    for c in recovered:
        key = members.get(c.key_id) or Key(c.key_id, c.arn, "", "")
        try:
            executor.mutate(result, "TagResource",
                            partial(executor.tag_after_cancel, c.arn, {CANCELLED_TAG: value}),
                            key=key)
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
            and RESTORED not in k.marks.cancelled))]


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
            executor.mutate(result, "TagResource", partial(
                executor.tag_after_cancel, key.arn,
                {CANCELLED_TAG: tag_value(f"{cancelled} {RESTORED}{now}")}), key=key)
        except AwsError as exc:
            errors[key.id] = exc
            executor.reporter.note(f"{key.id}: could not restore its state: {exc.aws_code}: "
                                   f"{exc.what}", level="error")
    return errors


def _verdict(result: StoreResult, candidates: list[_Candidate], pending_now: list[str],
             restore_errors: dict[str, AwsError]) -> list[str]:
    """Exit 0 only when every key that could be recovered was (and, with --enable, restored);
    1 when a key is still pending, when nothing at all could be recovered, or when a restore
    failed. `pending_now` is what AWS shows after everything: the last word."""
    pending = sorted({c.key_id for c in candidates if c.outcome == STILL_PENDING}
                     | set(pending_now))
    deleted = [c.key_id for c in candidates if c.outcome == ALREADY_DELETED]
    shown: list[str] = []
    if deleted:
        shown.append(f"{len(deleted)} key(s) were already deleted and cannot be recovered: "
                     f"{', '.join(deleted)}")
        result.warnings.extend(shown)
    if pending:
        result.status = Status.ERROR
        result.error = {"code": "still-pending",
                        "message": f"{len(pending)} key(s) are still pending deletion: "
                                   f"{', '.join(pending)}; see each key's error and hint, "
                                   "then run `ksdelete cancel` again"}
    elif candidates and len(deleted) == len(candidates):
        result.status = Status.ERROR
        result.error = {"code": "nothing-recovered",
                        "message": f"all {len(deleted)} key(s) were already deleted; nothing "
                                   "to recover"}
    elif restore_errors:
        result.status = Status.ERROR
        result.error = {"code": "not-restored",
                        "message": f"{len(restore_errors)} recovered key(s) could not be "
                                   f"restored to their state before deletion: "
                                   f"{', '.join(sorted(restore_errors))}; see key_outcomes"}
    return shown
