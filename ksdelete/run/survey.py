"""The survey: a fresh reading of the store and every key in it, with what the gates look
at (ksdelete's marks, grants and last use, the watch over keys on their way out, CloudTrail's
cancels), and what AWS leaves behind of a store. Reads only, except the watch's remedy for
another store of the invocation (act_elsewhere)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

from ksdelete import discover, leftovers, marks, planner, watch
from ksdelete.errors import AccessDenied, AwsError, KeyNotFound, OperationUnsupported
from ksdelete.lock import describe_request
from ksdelete.models import (
    CancelTrail,
    Context,
    Grant,
    Key,
    KeyStore,
    Leftovers,
    Marks,
    Outcome,
    Plan,
    Refusal,
    RefusalReason,
    Snapshot,
    Step,
    StepKind,
    StoreResult,
    StoreType,
    Usage,
)
from ksdelete.reporting import Phase, PhaseState
from ksdelete.run.act import key_record, read_store, replan, watched
from ksdelete.run.base import USAGE_REUSE, Target
from ksdelete.run.remedy import remedy
from ksdelete.run.report import repeating
from ksdelete.run.store import Services, StoreRun


def survey(run: StoreRun) -> tuple[Snapshot, Plan]:
    """Discover the store and plan it (reads only): what dry runs and `status` show."""
    target, options, journal = run.target, run.options, run.journal
    assert target.store is not None
    store_id = target.store.id
    approved = next((a for a in options.approved if a.id == store_id), None)
    brake = run.svc.guard.request_file(store_id)
    request = brake.read() if brake is not None else None
    run.context = Context(
        allowed_accounts=options.allowed_accounts,
        # A saved plan is the operator's confirmation of exactly its keys.
        confirmed_before=approved.key_ids if approved else journal.confirmed_keys(store_id),
        pin=target.pin,
        interactive=options.interactive,
        scheduled_before=frozenset(journal.scheduled_keys(store_id))
        | journal.cancelled_keys(store_id),
        approved=approved,
        read_only=options.dry_run,
        soaks=journal.soak_starts(store_id),
        cancel_requested=describe_request(request) if request is not None else None,
        pending_before=journal.pending_when_confirmed(store_id),
        remembered=journal.confirmed_keys(store_id) is not None,
        unscheduled_marks=journal.unscheduled_marks(store_id),
    )
    run.reporter.note(f"{target.ref!r} matched the store {target.matched_by}: "
                      f"{target.store.id} ({target.store.name})")
    snap = snapshot(run, store_id, target.matched_by or "id")
    act_elsewhere(run, store_id)
    plan = replan(run, snap)
    run.reporter.plan(snap, repeating(run, store_id, snap, plan))
    return snap, plan


def snapshot(run: StoreRun, store_id: str, matched_by: str, *, all_marks: bool = False,
             unreadable_marks: dict[str, AwsError] | None = None) -> Snapshot:
    """A fresh reading of the store and every key in it (keys this run saw gone left out).

    ksdelete's marks are read (see with_marks). With `all_marks` (`cancel`), every key's
    marks, and only they: not what the gates look at (grants, last use, the watch,
    CloudTrail's cancels). With `unreadable_marks` (cancel: one key's failure must not
    stop the others), a key whose tags cannot be read keeps no marks and its error is put
    there; otherwise the error stops the snapshot."""
    svc, result, reporter = run.svc, run.result, run.reporter
    reporter.phase(Phase.DISCOVER, PhaseState.RUNNING, store_id)
    store = read_store(run, store_id)
    snap = discover.snapshot(
        svc.workspace.keys.for_store(store.id), store, matched_by=matched_by,
        workers=run.options.workers,
        cache=svc.membership,
        on_progress=lambda done, total, _: reporter.progress(Phase.DISCOVER, done, total),
    )
    keys = with_marks(run, [k for k in snap.keys if k.id not in run.gone],
                      every=all_marks, errors=unreadable_marks)
    trail = None
    orphaned: tuple[tuple[str, ...] | None, str | None] = (None, None)
    if not all_marks:
        keys = with_watch(run, with_evidence(run, keys), fresh=True,
                          also=keys_elsewhere(run, store_id))
        trail = cancel_trail(run, store, keys)
        if store.type is StoreType.CLOUDHSM and not keys:
            orphaned = _orphaned(run, store)
    snap = replace(snap, identity=svc.identity, keys=tuple(keys), observed_at=run.now(),
                   cancel_trail=trail, orphaned=orphaned[0], orphaned_error=orphaned[1])
    result.keys, result.undescribable = snap.keys, snap.undescribable
    result.scanned = snap.scanned
    reporter.phase(Phase.DISCOVER, PhaseState.DONE,
                   f"{len(snap.keys)} key(s) in the store, {snap.scanned} scanned")
    return snap


def with_marks(run: StoreRun, keys: list[Key], *, every: bool = False,
               errors: dict[str, AwsError] | None = None) -> list[Key]:
    """The store's keys with ksdelete's marks (tags) read from AWS: those not pending
    deletion (one no longer pending may have been cancelled), and pending ones too with
    `every` or where this journal does not remember the store's confirmation (a mark on a
    pending key shows, on any machine, that the deletion was confirmed, so a key without
    one appeared since, and when)."""
    every = every or not run.context.remembered
    wanted = [k for k in keys if every or not k.pending]
    if not wanted:
        return keys
    gw = run.gw

    def read(key: Key) -> dict[str, str] | AwsError:
        try:
            return gw.list_resource_tags(key.arn)
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


def _orphaned(run: StoreRun, store: KeyStore) -> tuple[tuple[str, ...], str | None]:
    """A CloudHSM store with no key left: the keys whose DeleteKey event says their HSM
    key material was not deleted (CloudTrail), and why it could not be read. Keys once
    deleted stay deleted: a reading that worked is kept for the rest of the invocation."""
    seen = run.svc.orphans.get(store.id)
    if seen is not None:
        return seen
    left = leftovers_of(run, store.id, store=store)
    error = next((n for n in left.notes if n.startswith("CloudTrail could not be read")),
                 None)
    found = (tuple(k.id for k in left.orphaned), error)
    if error is None:
        run.svc.orphans[store.id] = found
    return found


def cancel_trail(run: StoreRun, store: KeyStore, keys: list[Key]) -> CancelTrail | None:
    """CloudTrail's CancelKeyDeletion events for the store's keys since its deletion was
    first confirmed, read where this journal does not remember the confirmation (the
    saved plan's time, or the earliest of ksdelete's marks on the keys), or to tell who
    cancelled a key the journal knows was pending. None: not needed (nothing could be
    scheduled again, or there was no confirmation before this run)."""
    ctx = run.context
    if all(k.pending for k in keys):
        return None
    if ctx.remembered:
        probe = Snapshot(store, tuple(keys))
        untold = [k for k in planner.cancelled_keys(probe, ctx)
                  if not (k.marks and k.marks.cancelled)]
        confirmed = run.journal.confirmed_since(store.id)
        if not untold or confirmed is None:
            return None
        since = marks.parse_time(confirmed)
    else:
        times = [ctx.approved.created_at] if ctx.approved else []
        times += [marks.parse_time(marks.time_text(mark)) for k in keys if k.marks
                  for mark in (k.marks.scheduled, k.marks.disabled, k.marks.cancelled)
                  if mark]
        since = min((t for t in times if t is not None), default=None)
    if since is None:
        return None
    if run.options.plan.on_use == "ignore":
        return CancelTrail(since, error="not read (--on-use ignore)")
    arns = {k.arn: k.id for k in keys if not k.pending}
    try:
        events = watch.read_cancels(
            run.gw.lookup_events(("EventName", "CancelKeyDeletion"),
                                 since - timedelta(seconds=1)), arns, since)
    except AwsError as exc:
        return CancelTrail(since, error=exc.aws_code or exc.code)
    return CancelTrail(since, events)


def with_evidence(run: StoreRun, keys: list[Key]) -> list[Key]:
    """What the preflight gates look at, for the keys about to be scheduled: grants
    (ListGrants) and, with --unused-for, the last recorded use (GetKeyLastUsage, 5 per
    second). A reading of the last use younger than USAGE_REUSE seconds is reused: KMS
    records use up to an hour late, so reading it again sooner tells nothing new."""
    wanted = [k for k in keys if not k.pending]
    if not wanted:
        return keys
    gw = run.gw
    read_usage = run.options.plan.unused_for_days > 0
    run.reporter.note(f"reading grants{' and last use' if read_usage else ''} of "
                      f"{len(wanted)} key(s)")

    def evidence(key: Key) -> Key:
        grants: tuple[Grant, ...] | None
        try:
            grants = gw.list_grants(key.arn)
        except (AccessDenied, KeyNotFound):
            grants = None
        usage = None
        if read_usage:
            seen = run.usage.get(key.id)
            if seen and run.clock() - seen[0] < USAGE_REUSE:
                usage = seen[1]
            else:
                usage = _last_usage(run, key)
                run.usage[key.id] = (run.clock(), usage)
        return replace(key, grants=grants, usage=usage)

    with ThreadPoolExecutor(max_workers=min(8, len(wanted)),
                            thread_name_prefix="evidence") as pool:
        read = {k.id: k for k in pool.map(evidence, wanted)}
    return [read.get(k.id, k) for k in keys]


def _last_usage(run: StoreRun, key: Key) -> Usage:
    try:
        return run.gw.get_key_last_usage(key.arn)
    except (AccessDenied, KeyNotFound) as exc:
        return Usage(error=exc.aws_code or exc.code)
    except OperationUnsupported as exc:  # an old botocore, or an endpoint without it
        return Usage(error=exc.what)


def with_watch(run: StoreRun, keys: list[Key], *, fresh: bool,
               also: Iterable[Key] = ()) -> list[Key]:
    """The watch over keys pending deletion (or in a soak): failed uses since each key's
    latest scheduling, from CloudTrail, one LookupEvents chain per event name for all keys
    (watcher.py). With `fresh`, read again (`also`: other stores' keys of this
    invocation, read in the same chains); else reuse what the last reading saw."""
    svc = run.svc
    pending = [k for k in keys if k.pending or k.soaking]
    if run.options.plan.on_use == "ignore" or not pending:
        return keys
    if fresh:
        seen = {k.arn: k for k in (*pending, *also) if k.pending or k.soaking}
        run.reporter.note(f"watching CloudTrail for use of {len(seen)} key(s) on the "
                          "way out")
        svc.last_watch = run.clock()
        svc.watcher.read(seen.values())
        if not any(k.watch and k.watch.attempts for k in watched(svc, pending)):
            # It stopped early for another store's key (acted on by act_elsewhere): this
            # store's keys need the whole reading.
            svc.watcher.finish()
    return watched(svc, keys)


def keys_elsewhere(run: StoreRun, store_id: str) -> list[Key]:
    """With --wait, the pending keys of the invocation's other stores: a run that waits
    on one store for days must not let another store's key, still wanted, be deleted
    meanwhile. Each store is scanned once; later readings re-describe its pending keys."""
    svc, options = run.svc, run.options
    if not options.wait or options.plan.on_use == "ignore":
        return []
    keys: list[Key] = []
    for other in svc.invocation:
        if other == store_id:
            continue
        try:
            if other not in svc.elsewhere:
                store = run.gw.describe_store(store_id=other)
                if store is None:
                    continue
                snap = discover.snapshot(run.gw, store, matched_by="id",
                                         workers=options.workers, cache=svc.membership)
                svc.elsewhere[other] = (store, [k for k in snap.keys if k.pending])
            else:
                store, pending = svc.elsewhere[other]
                _, still = discover.recheck_keys(run.gw, pending)
                svc.elsewhere[other] = (store, [k for k in still if k.pending])
        except AwsError as exc:  # that store's own run will say what is wrong
            run.reporter.note(f"cannot read the keys of {other} to watch them while "
                              f"waiting: {exc.aws_code}", level="warning")
            continue
        keys += svc.elsewhere[other][1]
    return keys


def act_elsewhere(run: StoreRun, store_id: str) -> None:
    """Someone tried to use a pending key of another store of this invocation: cancel its
    deletion now (that store's own turn then refuses, as the gates say), and say so."""
    svc, options, result = run.svc, run.options, run.result
    for other, (store, pending) in svc.elsewhere.items():
        if other == store_id or not pending:
            continue
        snap = Snapshot(store, tuple(watched(svc, pending)), identity=svc.identity,
                        observed_at=run.now())
        verdict = planner.no_use_while_pending(
            snap, options.plan, Context(read_only=options.dry_run))
        if not isinstance(verdict, Refusal) \
                or verdict.reason is not RefusalReason.USED_WHILE_PENDING:
            continue
        plan = planner.plan(snap, options.plan, run.now(), Context(read_only=options.dry_run))
        if plan.refusal is None or plan.refusal.reason is not \
                RefusalReason.USED_WHILE_PENDING:
            plan = replace(plan, refusal=verdict, remedy=None if options.dry_run
                           or options.plan.on_use != "cancel" else Step(
                               StepKind.CANCEL_KEY_DELETION, key_ids=verdict.key_ids))
        there = StoreResult(ref=other, store=store)
        remedy(svc.start(Target(other, store), there, run.reporter), plan, snap)
        cancelled = [a.key_id for a in there.actions
                     if a.operation == "CancelKeyDeletion" and a.outcome == Outcome.OK]
        result.warnings.append(f"while waiting on {store_id}: {verdict.message}"
                               + (f"\ncancelled: {', '.join(k for k in cancelled if k)}"
                                  if cancelled else ""))
        run.reporter.note(result.warnings[-1], level="warning")
        used = set(verdict.key_ids)
        svc.elsewhere[other] = (store, [k for k in pending if k.id not in used])


def leftovers_of(run: StoreRun | Services, store_id: str, *, store: KeyStore | None = None,
                 keys: tuple[Key, ...] = ()) -> Leftovers:
    """What AWS leaves behind of this store: from what the journal kept when its keys
    were confirmed (and `keys` seen now), and CloudTrail's DeleteKey events."""
    known, records = run.journal.confirmed_store(store_id)
    if store is not None:
        known.update(store_name=store.name, store_type=store.type.value,
                     cluster_id=store.cloudhsm_cluster_id or known.get("cluster_id"))
    for key in keys:
        records.setdefault(key.id, key_record(key))
    if known.get("store_type") != StoreType.CLOUDHSM.value:
        return leftovers.report(known, records)
    start = run.gw.server_now() - timedelta(days=90)  # all of Event history
    try:
        # A journal with no key of the store (another machine confirmed it) cannot say
        # when to stop: read all of it, for the events that name the store.
        return leftovers.report(known, records,
                                run.gw.lookup_events(("EventName", "DeleteKey"), start),
                                by_store=not records)
    except AwsError as exc:
        left = leftovers.report(known, records)
        return replace(left, notes=(*left.notes, f"CloudTrail could not be read "
                                    f"({exc.aws_code}): the material's fate is unknown"))
