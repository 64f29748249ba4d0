"""What one `ksdelete cancel` knows and did, key by key: the candidates it cancels (from the
journal, a saved plan, the scans), each key's outcome, and the verdict (exit 0 only when every
key that could be recovered was, and nothing went unchecked)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ksdelete.errors import AwsError, KsdeleteError, StoreNotFoundError, UsageError
from ksdelete.executor import Executor, StoreRun
from ksdelete.journal import ScheduledKey
from ksdelete.models import (
    Key,
    KeyStore,
    Outcome,
    Snapshot,
    Status,
    StoreResult,
    UndescribableKey,
)
from ksdelete.reporting import Phase, PhaseState
from ksdelete.run.act import cancel_deletion


class KeyOutcome(StrEnum):
    """What a cancel leaves each key as (key_outcomes[].outcome)."""

    RECOVERED = "recovered"
    STILL_PENDING = "still-pending"
    ALREADY_DELETED = "already-deleted"
    UNKNOWN = "unknown"  # could not be described: possibly a pending key of the store; untouched
    NOT_ATTEMPTED = "not-attempted"  # the cancel was interrupted before this key's turn


RECOVERED = KeyOutcome.RECOVERED
STILL_PENDING = KeyOutcome.STILL_PENDING
ALREADY_DELETED = KeyOutcome.ALREADY_DELETED
UNKNOWN = KeyOutcome.UNKNOWN
NOT_ATTEMPTED = KeyOutcome.NOT_ATTEMPTED

HINTS = {
    "AccessDeniedException": "the key policy or IAM denies kms:CancelKeyDeletion: grant it to "
                             "this caller, or ask the key's owner to cancel",
}
UNKNOWN_HINT = ("DescribeKey failed, so the key is not proven to be this store's and was not "
                "touched: grant kms:DescribeKey and run `ksdelete cancel` again; if it is this "
                "store's key, `aws kms cancel-key-deletion --key-id` it now")



@dataclass
class Candidate:
    key_id: str
    arn: str  # the key ARN, or its ID when the journal did not record one
    deletion_date: datetime | None
    prior: str | None  # the state before ksdelete scheduled it, if known
    error: AwsError | None = None
    outcome: str = ""
    state: str = ""



class Undo:
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
        self.candidates: list[Candidate] = []
        self.members: dict[str, Key] = {}
        self.unknown: dict[str, UndescribableKey] = {}
        self.unreadable: dict[str, AwsError] = {}  # ListResourceTags failed
        self.unchecked: list[str] = []
        self.restore_errors: dict[str, AwsError] = {}
        self.scheduled: dict[str, ScheduledKey] = executor.journal.scheduled_keys(store.id)
        self.tried: set[tuple[str, str]] = set()  # journal schedulings the brake acted on

    def seen(self) -> set[str]:
        return {c.key_id for c in self.candidates}

    def known(self) -> list[Candidate]:
        """Keys the journal says ksdelete scheduled in this store (so they are its members:
        membership never changes), not cancelled by ksdelete since, and not tried by this
        cancel yet; earliest scheduled first."""
        seen = self.seen()
        cancelled = cancelled_since_scheduled(self.executor.journal.entries(), self.store.id)
        records = sorted((r for r in self.scheduled.values()
                          if r.key_id not in seen and r.key_id not in cancelled
                          and (r.key_id, r.time) not in self.tried),
                         key=lambda r: (r.time, r.key_id))
        self.tried.update((r.key_id, r.time) for r in records)
        known = [Candidate(r.key_id, r.arn or r.key_id, None, r.prior_state)
                 for r in records]
        listed = seen | {c.key_id for c in known} | set(self.scheduled)
        plan = [k for k in self.planned if k.id not in listed and (k.id, "plan") not in self.tried]
        self.tried.update((k.id, "plan") for k in plan)
        return known + [Candidate(k.id, k.arn, k.deletion_date, None) for k in plan]

    def settle(self, snap: Snapshot) -> None:
        """Journal keys the brake found no longer pending (cancelled by hand meanwhile) that
        the scan describes: not this cancel's to recover or restore, as if never tried."""
        settled = {k.id for k in snap.keys if not k.pending}
        self.candidates = [c for c in self.candidates if not (
            c.key_id in settled and c.error is None
            and answer(self.result, c.key_id) == Outcome.ALREADY_DONE)]

    def cancel(self, new: list[Candidate]) -> None:
        seen = self.seen()
        new = [c for c in new if c.key_id not in seen]
        if new:
            self.candidates += new  # listed first: an interrupted cancel still reports them
            cancel_all(self.executor, self.result, new, self.members)

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



def counts(undo: Undo) -> str:
    """What the cancel really did, for the screen."""
    outcomes = [c.outcome for c in undo.candidates]
    enabled = sum(1 for a in undo.result.actions if a.operation == "EnableKey"
                  and a.outcome == Outcome.OK)
    text = (f"{outcomes.count(RECOVERED)} recovered, {enabled} re-enabled, "
            f"{outcomes.count(STILL_PENDING)} still pending, "
            f"{outcomes.count(ALREADY_DELETED)} already deleted")
    unknown = [k for k in undo.unknown if k not in undo.seen()]
    return text + (f", {len(unknown)} could not be described" if unknown else "")


def outcomes(undo: Undo) -> list[dict[str, object]]:
    """key_outcomes: every key this cancel tried (what it is now, or, if it was stopped
    before re-reading, what CancelKeyDeletion answered), then every key it could not
    describe."""
    rows: list[dict[str, object]] = [
        {"id": c.key_id, "arn": c.arn, "outcome": c.outcome or answered(undo, c),
         "state": c.state or None, "error": error_json(c.error),
         "restore_error": error_json(undo.restore_errors.get(c.key_id))}
        for c in undo.candidates]
    seen = undo.seen()
    rows += [{"id": bad.id, "arn": bad.arn, "outcome": UNKNOWN, "state": None,
              "error": {"code": bad.error_code, "message": bad.message, "hint": UNKNOWN_HINT},
              "restore_error": None}
             for bad in undo.unknown.values() if bad.id not in seen]
    return rows


def cancelled_since_scheduled(entries: list[dict[str, object]], store_id: str) -> set[str]:
    """Keys of the store whose latest ScheduleKeyDeletion/CancelKeyDeletion in the journal
    is a cancel: nothing left for the brake to do."""
    latest: dict[str, object] = {}
    for e in entries:
        if e.get("store_id") == store_id and e.get("phase") == "result" \
                and e.get("outcome") == "ok" and e.get("key_id") \
                and e.get("operation") in ("ScheduleKeyDeletion", "CancelKeyDeletion"):
            latest[str(e["key_id"])] = e["operation"]
    return {key_id for key_id, operation in latest.items() if operation == "CancelKeyDeletion"}


def answer(result: StoreResult, key_id: str) -> str | None:
    """What CancelKeyDeletion last answered for a key in this run, if it was called."""
    return next((a.outcome for a in reversed(result.actions)
                 if a.key_id == key_id and a.operation == "CancelKeyDeletion"), None)


def answered(undo: Undo, candidate: Candidate) -> str:
    """A key's outcome from CancelKeyDeletion's answer alone (not re-read yet)."""
    if candidate.error is not None:
        return STILL_PENDING
    said = answer(undo.result, candidate.key_id)
    if said in (Outcome.OK, Outcome.ALREADY_DONE):
        return RECOVERED
    if said == Outcome.ALREADY_GONE:
        return ALREADY_DELETED
    return NOT_ATTEMPTED


def error_json(exc: AwsError | None) -> dict[str, str] | None:
    if exc is None:
        return None
    return {"code": exc.aws_code, "message": exc.what,
            "hint": HINTS.get(exc.aws_code, "run `ksdelete cancel` again")}


def cancel_all(executor: Executor, result: StoreResult, candidates: list[Candidate],
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


def prior(key: Key, scheduled: dict[str, ScheduledKey]) -> str | None:
    """The state a key had before ksdelete scheduled it: from its mark (in AWS), else from the
    journal."""
    if key.marks is not None and key.marks.field("prior"):
        return key.marks.field("prior")
    record = scheduled.get(key.id)
    return record.prior_state if record else None


def verdict(undo: Undo, pending_now: list[str]) -> list[str]:
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
