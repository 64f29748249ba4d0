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
from ksdelete.errors import AwsError, KeyInvalidState, KeyNotFound, RefusedError
from ksdelete.executor import Confirm, Executor, Target
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

MORE_PASSES = 3
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


def _not_pending(exc: AwsError) -> str | None:
    """CancelKeyDeletion on a key that is no longer pending: someone cancelled it already."""
    if isinstance(exc, KeyNotFound):
        return "already-gone"
    return "already-done" if isinstance(exc, KeyInvalidState) else None


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
    restore = _to_restore(snap.keys, scheduled) if enable else []
    plan = Plan(store_id=store.id,
                steps=(Step(StepKind.CANCEL_KEY_DELETION,
                            key_ids=tuple(c.key_id for c in candidates)),),
                warnings=tuple(result.warnings))
    result.plan = plan
    reporter.plan(snap, plan)
    reporter.note(f"{len(candidates)} key(s) to cancel"
                  + (f", {len(restore)} to restore to their state before deletion"
                     if enable else ""))
    result.status = Status.CANCELLED
    if not candidates and not restore and not connect:
        result.warnings.append("nothing to cancel: no key of the store is pending deletion")
        return
    if not confirm(snap, plan):
        raise RefusedError("not confirmed; nothing was changed", where=store.id)

    reporter.phase(Phase.CANCEL, PhaseState.RUNNING)
    _cancel_all(executor, result, candidates, members)
    # A delete run may have scheduled more keys meanwhile (cancel takes no lock, so that it
    # works while a --wait run holds it): look again, a few times, until nothing is pending.
    for _ in range(MORE_PASSES):
        seen = {c.key_id for c in candidates}
        late = [k for k in executor.snapshot(store.id, snap.matched_by, result).keys
                if k.pending and k.id not in seen]
        if not late:
            break
        reporter.note(f"{len(late)} more key(s) became pending meanwhile; cancelling them too")
        extra = [_Candidate(k.id, k.arn, k.deletion_date, _prior(k, scheduled)) for k in late]
        members.update({k.id: k for k in late})
        _cancel_all(executor, result, extra, members)
        candidates += extra
    _reread(executor, candidates)
    recovered = [c for c in candidates if c.outcome == RECOVERED]
    _leave_evidence(executor, result, recovered, members)
    if enable:
        _restore(executor, result, _to_restore(_fresh(executor, snap.keys), scheduled),
                 scheduled)
    if connect:
        current = gw.describe_store(store_id=store.id)
        if current and current.connection_state in (ConnectionState.DISCONNECTED,
                                                    ConnectionState.FAILED):
            executor.connect(store.id, result)
    journal.decision("CancelPlan", store_id=store.id, store_name=store.name,
                     key_ids=[c.key_id for c in recovered], matched_by=snap.matched_by)
    result.key_outcomes = [
        {"id": c.key_id, "arn": c.arn, "outcome": c.outcome, "state": c.state or None,
         "error": {"code": c.error.aws_code, "message": c.error.what,
                   "hint": HINTS.get(c.error.aws_code, "run `ksdelete cancel` again")}
         if c.error else None}
        for c in candidates
    ]
    for line in _verdict(result, candidates):
        reporter.note(line, level="warning")
    reporter.phase(Phase.CANCEL, PhaseState.DONE if result.status is Status.CANCELLED
                   else PhaseState.FAILED,
                   f"{len(recovered)} recovered, "
                   f"{sum(c.outcome == STILL_PENDING for c in candidates)} still pending, "
                   f"{sum(c.outcome == ALREADY_DELETED for c in candidates)} already deleted")
    result.keys = executor.snapshot(store.id, snap.matched_by, result).keys


def _cancel_all(executor: Executor, result: StoreResult, candidates: list[_Candidate],
                members: dict[str, Key]) -> None:
    """CancelKeyDeletion for each candidate, going on past any one key's error."""
    store_id = result.store.id if result.store else ""
    for done, candidate in enumerate(candidates, 1):
        key = members.get(candidate.key_id) or Key(candidate.key_id, candidate.arn, "", store_id)
        try:
            executor.mutate(result, "CancelKeyDeletion",
                            partial(executor.gw.cancel_key_deletion, candidate.arn), key=key,
                            already=_not_pending)
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
    now = executor.gw.server_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    value = _tag_value(f"{now} by={who}")
    for c in recovered:
        key = members.get(c.key_id) or Key(c.key_id, c.arn, "", "")
        try:
            executor.mutate(result, "TagResource",
                            partial(executor.gw.tag_resource, c.arn, {CANCELLED_TAG: value}),
                            key=key)
        except AwsError as exc:
            result.warnings.append(f"{c.key_id}: could not record the cancel on the key "
                                   f"({exc.aws_code}); the ksdelete:scheduled mark still "
                                   "keeps unattended runs from scheduling it again")


def _tag_value(text: str) -> str:
    """A tag value AWS accepts: at most 256 characters of letters, digits, spaces and
    _ . : / = + - @."""
    allowed = set("_.:/=+-@ ")
    return "".join(ch if ch.isalnum() or ch in allowed else "_" for ch in text)[:256]


def _fresh(executor: Executor, keys: tuple[Key, ...]) -> list[Key]:
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


def _to_restore(keys: tuple[Key, ...] | list[Key], scheduled: dict[str, ScheduledKey]
                ) -> list[Key]:
    """Keys of the store that ksdelete scheduled (its mark or its journal says so) and that are
    not pending any more: also those an earlier cancel already recovered."""
    return [k for k in keys if not k.pending
            and ((k.marks is not None and k.marks.scheduled) or k.id in scheduled)]


def _restore(executor: Executor, result: StoreResult, keys: list[Key],
             scheduled: dict[str, ScheduledKey]) -> None:
    """--enable: each key back to the state it had before ksdelete scheduled it. A key that
    was Disabled stays Disabled (perhaps on purpose); an unknown prior state is left alone."""
    for key in keys:
        prior = _prior(key, scheduled)
        if prior == "Enabled":
            if key.state != "Enabled":
                executor.mutate(result, "EnableKey", partial(executor.gw.enable_key, key.arn),
                                key=key)
        elif prior == "Disabled":
            result.warnings.append(f"{key.id} stays Disabled: it was Disabled before ksdelete "
                                   "scheduled it")
        else:
            result.warnings.append(f"{key.id} stays {key.state}: its state before deletion is "
                                   f"not known ({prior or 'no record'}); enable it by hand if "
                                   "it should be used")


def _verdict(result: StoreResult, candidates: list[_Candidate]) -> list[str]:
    """Exit 0 only when every key that could be recovered was; 1 when a key is still pending,
    or when nothing at all could be recovered. Returns the warnings to show."""
    pending = [c.key_id for c in candidates if c.outcome == STILL_PENDING]
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
    return shown
