"""What a store's run does to AWS, journalled, and the plan it follows: each mutating call
recorded (mutate), ksdelete's marks left on keys, a key's deletion cancelled, and the
re-plan on a fresh snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

from ksdelete import marks, planner, signals
from ksdelete.errors import (
    AccessDenied,
    AwsError,
    KeyAlreadyPendingDeletion,
    KeyInvalidState,
    KeyNotFound,
    StoreInvalidState,
    StoreNotFoundError,
)
from ksdelete.gateway import Called
from ksdelete.models import (
    PENDING_DELETION,
    Action,
    Key,
    KeyStore,
    Outcome,
    Plan,
    PlanOptions,
    Snapshot,
    StoreResult,
)
from ksdelete.options import journal_record
from ksdelete.retry import retry_while_lagging
from ksdelete.run.base import record
from ksdelete.run.store import Services, StoreRun


def mutate(svc: Services, result: StoreResult, operation: str, call: Callable[[], Called],
           *, key: Key | None = None,
           already: Callable[[AwsError], str | None] = lambda exc: None,
           detail: dict[str, str] | None = None,
           keep: tuple[str, ...] = ()) -> Called | None:
    """Journal and record one mutating call. An error that `already` names (e.g. a key
    already pending deletion) is recorded with that outcome and returns None."""
    assert result.store is not None
    key_id = key.id if key else None
    with signals.held(), \
            svc.journal.record(store_id=result.store.id, store_name=result.store.name,
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
        result.actions.append(Action(operation, Outcome.OK, key_id, called.request_id,
                                     datetime.now(UTC)))
        outcome.request_id = called.request_id
        for member in keep:  # e.g. the DeletionDate: when the key was scheduled, exactly
            value = called.response.get(member)
            if value is not None:
                outcome.detail[_snake(member)] = value.isoformat() \
                    if isinstance(value, datetime) else str(value)
    return called


def stamp(svc: Services) -> str:
    """AWS's time now, as ksdelete writes it into its marks on keys."""
    return marks.stamp(svc.gw.server_now())


def tag_after_cancel(svc: Services, arn: str, tags: dict[str, str]) -> Called:
    """TagResource right after CancelKeyDeletion: AWS may still see the key pending
    deletion for a moment (KMSInvalidStateException); retried within the consistency
    window before the caller warns."""
    return retry_while_lagging(
        lambda: svc.gw.tag_resource(arn, tags), call="TagResource",
        lagging=lambda exc: isinstance(exc, KeyInvalidState), policy=svc.gw.policy,
        on_retry=svc.on_retry)


def cancel_deletion(svc: Services, result: StoreResult, key: Key, arn: str | None = None
                    ) -> None:
    """CancelKeyDeletion of one key, journalled; a key no longer pending (or gone) is
    recorded as such (`already-done`, `already-gone`). Raises AwsError otherwise."""
    mutate(svc, result, "CancelKeyDeletion", partial(svc.gw.cancel_key_deletion, arn or key.arn),
           key=key, already=not_pending)


def mark_cancelled(svc: Services, result: StoreResult, key: Key, value: str,
                   arn: str | None = None) -> None:
    """Leave (or replace) the cancelled mark on a key whose deletion was just cancelled."""
    mutate(svc, result, "TagResource",
           partial(tag_after_cancel, svc, arn or key.arn, {marks.CANCELLED_TAG: value}), key=key)


def mark_scheduled(run: StoreRun, key: Key) -> None:
    """Leave ksdelete's mark on the key before scheduling it (a key pending deletion cannot
    be tagged): whoever later sees the mark on a key that is not pending knows its deletion
    was cancelled, on any machine, with or without this journal."""
    svc, gw = run.svc, run.gw
    # After a soak, the state to restore is the one before the soak disabled the key.
    prior = (key.marks.field("prior") if key.soaking and key.marks else None) or key.state
    value = marks.scheduled(marks.stamp(run.now()), prior=prior, run_id=run.journal.run_id)

    def lagging(exc: BaseException) -> bool:
        """A key seen not pending that AWS calls pending: right after a cancel (a
        person confirming a cancelled key again) AWS may lag; unless the key now reads
        pending (someone else scheduled it), try again within the consistency window."""
        if not isinstance(exc, KeyInvalidState):
            return False
        try:
            return gw.describe_key(key.arn).get("KeyState") != PENDING_DELETION
        except AwsError:
            return False

    mutate(svc, run.result, "TagResource",
           lambda: retry_while_lagging(
               lambda: gw.tag_resource(key.arn, {marks.SCHEDULED_TAG: value}),
               call="TagResource", lagging=lagging, policy=gw.policy,
               on_retry=run.reporter.retry),
           key=key, already=_already_pending)
    reconfirmed = run.context.reconfirmed or frozenset()
    if key.marks and key.marks.cancelled and key.id in reconfirmed:
        # A person confirmed again, knowing it was cancelled: that cancel is over.
        mutate(svc, run.result, "UntagResource",
               lambda: gw.untag_resource(key.arn, [marks.CANCELLED_TAG]), key=key,
               already=_already_pending)


def read_store(run: StoreRun, store_id: str) -> KeyStore:
    store = run.gw.describe_store(store_id=store_id)
    if store is None:
        raise StoreNotFoundError(f"the store {store_id} no longer exists",
                                 where="DescribeCustomKeyStores")
    run.result.store = store  # the report shows the latest state seen
    return store


def watched(svc: Services, keys: Iterable[Key]) -> list[Key]:
    """The keys with what the watch's last reading saw of them (pending or soaking)."""
    out = []
    for key in keys:
        seen = svc.watcher.watch_of(key) if key.pending or key.soaking else None
        out.append(replace(key, watch=seen) if seen is not None else key)
    return out


def replan(run: StoreRun, snap: Snapshot) -> Plan:
    """The plan on this snapshot, now: the run's result shows it, and a waiver is journalled."""
    plan = planner.plan(snap, run.options.plan, run.now(), run.context)
    run.result.plan, run.result.phase = plan, plan.phase
    journal_waivers(run, snap.store, record(plan, run.result))
    return plan


def journal_waivers(run: StoreRun, store: KeyStore, new: list[str]) -> None:
    """A gate waived after the confirmation (its ConfirmPlan lists the waivers then) is
    journalled when it is first waived: every waiver is on record."""
    waived = [line.removeprefix("waived ") for line in new if line.startswith("waived ")]
    if waived and run.context.planned is not None and not run.options.dry_run:
        run.journal.decision("Waiver", store_id=store.id, store_name=store.name,
                             key_ids=[], waivers=waived)


def gate_options(options: PlanOptions) -> dict[str, object]:
    """The options the gates ran with, as the journal keeps them (ksdelete/options.py)."""
    return journal_record(options)


def key_record(key: Key) -> dict[str, object]:
    """What the journal keeps of a key when the operator confirms: enough to restore it."""
    return {"id": key.id, "arn": key.arn, "state": key.state, "aliases": list(key.aliases),
            "external_key_id": key.external_key_id,
            "deletion_date": key.deletion_date.isoformat() if key.deletion_date else None,
            "creation_date": key.creation_date.isoformat() if key.creation_date else None}


def explain_denied(exc: AccessDenied, key: Key, now: datetime) -> AccessDenied:
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


def store_moved_on(exc: AwsError) -> str | None:
    """Connect/Disconnect refused for the store's state: a stale read showed an older state and
    the transition is already under way. The await step that follows reads the truth."""
    return Outcome.ALREADY_DONE if isinstance(exc, StoreInvalidState) else None


def _already_pending(exc: AwsError) -> str | None:
    """Tagging a key that is already pending deletion (a race with another client): its
    ScheduleKeyDeletion that follows reports the same."""
    return Outcome.ALREADY_PENDING if isinstance(exc, KeyInvalidState) else None


def already_scheduled(exc: AwsError) -> str | None:
    """ScheduleKeyDeletion errors that mean the work is already done (as Terraform does)."""
    if isinstance(exc, KeyAlreadyPendingDeletion):
        return Outcome.ALREADY_DONE
    if isinstance(exc, KeyNotFound):
        return Outcome.ALREADY_GONE
    return None


def not_pending(exc: AwsError) -> str | None:
    """CancelKeyDeletion on a key that is no longer pending: someone cancelled it already."""
    if isinstance(exc, KeyNotFound):
        return Outcome.ALREADY_GONE
    return Outcome.ALREADY_DONE if isinstance(exc, KeyInvalidState) else None


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
