"""Step handlers of the keys (disable for the soak, wait out the soak, schedule, wait out
the window with the watch) and the table that dispatches every step kind to its handler.
Each handler is a plain function (run, step, snapshot) -> the line shown when it is done."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import datetime
from functools import partial

from ksdelete import discover, marks, planner
from ksdelete.errors import AccessDenied, KeyNotFound, KsdeleteError
from ksdelete.models import (
    PENDING_DELETION,
    ConnectionState,
    Key,
    KeyStore,
    Marks,
    Outcome,
    Snapshot,
    Step,
    StepKind,
)
from ksdelete.reporting import Phase, PhaseState
from ksdelete.retry import poll_until
from ksdelete.run import connection
from ksdelete.run.act import (
    already_scheduled,
    explain_denied,
    journal_waivers,
    mark_scheduled,
    mutate,
    read_store,
    replan,
)
from ksdelete.run.base import WATCH_INTERVAL, Pending, done_text, record, result_outcome
from ksdelete.run.remedy import cancel_keys, stop
from ksdelete.run.store import StoreRun
from ksdelete.run.survey import act_elsewhere, keys_elsewhere, snapshot, with_watch
from ksdelete.shapes import key_from_metadata

Handler = Callable[[StoreRun, Step, Snapshot], str]


def schedule(run: StoreRun, step: Step, snap: Snapshot) -> str:
    """Mark each key, then ScheduleKeyDeletion (4 at a time), each read back until it shows
    PendingDeletion; the brake is read before each key."""
    assert step.window_days is not None
    days, result, gw = step.window_days, run.result, run.gw
    keys = {k.id: k for k in snap.keys}
    total = len(step.key_ids)
    done = 0

    def one(key_id: str) -> Key | None:
        key = keys[key_id]
        run.svc.guard.stop_if_cancel_requested(result)
        mark_scheduled(run, key)
        try:
            called = mutate(
                run.svc, result, "ScheduleKeyDeletion",
                lambda: gw.schedule_key_deletion(key.arn, days), key=key,
                already=already_scheduled,
                detail={"prior_state": key.state, "window_days": str(days)},
                keep=("DeletionDate",),
            )
        except AccessDenied as exc:
            raise explain_denied(exc, key, run.now()) from exc
        if called is None and result_outcome(result, key_id) == Outcome.ALREADY_GONE:
            return None
        deletion = called.response.get("DeletionDate") if called else None
        if isinstance(deletion, datetime):  # the watch knows when this key was scheduled
            run.svc.watcher.scheduled[key.arn] = (deletion, days)
        try:
            return _confirm_pending(run, replace(key, deletion_date=deletion or key.deletion_date))
        except KeyNotFound:
            return None  # scheduled, and already past its window (a fast clock): gone

    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="schedule")
    try:
        futures = {pool.submit(one, key_id): key_id for key_id in step.key_ids}
        for future in as_completed(futures):
            key = future.result()
            done += 1
            if key is None:
                run.gone.add(futures[future])
                keys.pop(futures[future], None)
            else:
                keys[key.id] = key
            result.keys = tuple(keys.values())
            run.reporter.progress(Phase.SCHEDULE, done, total)
    finally:
        # On Ctrl-C or an error, keys not yet started are not scheduled at all.
        pool.shutdown(wait=True, cancel_futures=True)
    outcomes = [a.outcome for a in result.actions if a.operation == "ScheduleKeyDeletion"]
    already = outcomes.count(Outcome.ALREADY_DONE) + outcomes.count(Outcome.ALREADY_GONE)
    return f"{total - already} scheduled, {already} already pending or gone, {days}-day window"


def disable(run: StoreRun, step: Step, snap: Snapshot) -> str:
    """--disable-first: mark each key (the soak's start and its state before), then
    DisableKey (5 per second). A failed use of a disabled key is what the soak watches
    for in CloudTrail; `ksdelete cancel --enable` brings the keys back."""
    svc, result, gw = run.svc, run.result, run.gw
    keys = {k.id: k for k in snap.keys}
    when = marks.stamp(run.now())
    reconfirmed = run.context.reconfirmed or frozenset()
    days = step.soak_days or run.options.plan.disable_first_days
    for done, key_id in enumerate(step.key_ids, 1):
        key = keys[key_id]
        svc.guard.stop_if_cancel_requested(result)
        # The state to restore is the one before ksdelete first changed the key.
        prior = (key.marks.field("prior") if key.marks else None) or key.state
        value = marks.disabled(when, prior=prior, days=days, run_id=run.journal.run_id)
        mutate(svc, result, "TagResource",
               partial(gw.tag_resource, key.arn, {marks.DISABLED_TAG: value}), key=key)
        old = [t for t, v in ((marks.CANCELLED_TAG, key.marks and key.marks.cancelled),
                              (marks.SCHEDULED_TAG, key.marks and key.marks.scheduled)) if v]
        again = bool(old) and key.id in reconfirmed
        if again:
            # A person confirmed it again, knowing it was cancelled: a new soak begins,
            # and the old marks would keep it from ever being seen as soaking.
            mutate(svc, result, "UntagResource",
                   partial(gw.untag_resource, key.arn, old), key=key)
        try:
            mutate(svc, result, "DisableKey", partial(gw.disable_key, key.arn),
                   key=key, detail={"prior_state": key.state, "soak_days": str(days)})
        except AccessDenied as exc:
            raise explain_denied(exc, key, run.now()) from exc
        new_marks = replace(key.marks or Marks(), disabled=value,
                            **({"cancelled": None, "scheduled": None} if again else {}))
        keys[key_id] = replace(key, marks=new_marks, state="Disabled")
        result.keys = tuple(keys.values())
        run.reporter.progress(Phase.SCHEDULE, done, len(step.key_ids))
    return f"{len(step.key_ids)} key(s) disabled for a {days}-day soak"


def await_soak(run: StoreRun, step: Step, snap: Snapshot) -> str:
    """Wait out the soak: without --wait, come back later (exit 3); with --wait, sleep,
    and re-plan every WATCH_INTERVAL (the watch reads CloudTrail) until it ends."""
    plan = run.result.plan
    until = plan.soak_until if plan else None
    gw = run.gw
    while until is not None and run.now() < until:
        left = (until - run.now()).total_seconds()
        if not run.options.wait or run.clock() + left > run.deadline + WATCH_INTERVAL:
            raise Pending(until, f"the soak runs until {until:%Y-%m-%d %H:%M} UTC: run "
                                 "again after it (nothing is scheduled before)")
        gw.policy.sleep(max(1.0, min(left, WATCH_INTERVAL, gw.policy.poll_max)))
        fresh_snap = snapshot(run, snap.store.id, snap.matched_by)
        fresh = replan(run, fresh_snap)
        if fresh.refusal:
            stop(run, fresh, fresh_snap)
        until = fresh.soak_until
    return "the soak is over"


def _settle(run: StoreRun, key: Key) -> Key:
    """Read the key until it shows PendingDeletion or the consistency window has passed."""
    policy, gw = run.gw.policy, run.gw
    return poll_until(
        lambda: replace(key_from_metadata(gw.describe_key(key.arn), key.aliases),
                        marks=key.marks),
        lambda k: k.state == PENDING_DELETION, call="DescribeKey",
        timeout=policy.consistency_timeout, initial=policy.consistency_initial,
        maximum=policy.consistency_max, policy=policy, on_retry=run.reporter.retry,
        describe=lambda k: f"{k.id} still {k.state}",
    )


def _confirm_pending(run: StoreRun, key: Key) -> Key:
    """Read the key back until it shows PendingDeletion (eventual consistency)."""
    key = _settle(run, key)
    if key.state != PENDING_DELETION:
        raise KsdeleteError(f"key {key.id} does not read back as PendingDeletion "
                            f"(it is {key.state})", where="ScheduleKeyDeletion")
    return key


# --wait: how often every pending key is read again (a cancel of a key due late is seen).
SWEEP_EVERY = 600.0


def await_keys(run: StoreRun, step: Step, snap: Snapshot) -> str:
    """Wait out the keys' window: with --wait, poll (watching the store and CloudTrail);
    without, read what needs reading once and come back later (exit 3)."""
    result = run.result
    remaining = list(result.keys)
    total = len(remaining)
    policy = run.gw.policy
    store_id = snap.store.id

    swept: float | None = None  # when every key was last read (None: not yet)

    def check() -> list[Key]:
        nonlocal remaining, swept
        # Each check reads the key due first; a sweep (the first check of a --wait, then one
        # every SWEEP_EVERY) reads them all, so a cancelled key is seen within minutes.
        sweep = swept is None or run.clock() - swept >= SWEEP_EVERY
        if sweep:
            swept = run.clock()
        gone, remaining = discover.recheck_keys(run.gw, remaining, every=sweep)
        run.gone.update(k.id for k in gone)
        remaining = _still_pending(run, remaining)
        result.keys = tuple(remaining)
        _watch_store(run, store_id, remaining)
        run.reporter.progress(Phase.WAIT, total - len(remaining), total)
        run.reporter.waiting(_latest(remaining), len(remaining), total, now=run.now())
        return remaining

    if run.options.wait:
        poll_until(check, lambda rest: not rest, call="DescribeKey",
                   timeout=max(0.0, run.deadline - run.clock()),
                   initial=policy.poll_initial, maximum=policy.poll_max, policy=policy,
                   on_retry=run.reporter.retry,
                   describe=lambda rest: f"{len(rest)} key(s) still pending")
    else:
        # Keys just read by discovery cannot have vanished since; only ask AWS again if
        # some DeletionDate has passed. Keys this run just scheduled are read once more:
        # someone may have cancelled them meanwhile, and the report says what AWS says.
        now = run.now()
        if any(a.operation == "ScheduleKeyDeletion" for a in result.actions):
            remaining = _read_again(run, remaining)
        if any(k.deletion_date and k.deletion_date <= now for k in remaining):
            check()
    if remaining:  # a key read back not pending is still there: never "deleted"
        pending = sum(1 for k in remaining if k.pending)
        run.reporter.phase(Phase.WAIT, PhaseState.PENDING,
                           f"{pending}/{total} key(s) still pending")
        raise Pending(_latest(remaining),
                      f"{pending} key(s) still pending deletion; run again after "
                      "the latest DeletionDate (AWS may take up to 24 h longer)")
    return f"all {total} key(s) deleted"


def _still_pending(run: StoreRun, keys: list[Key]) -> list[Key]:
    """The keys as they settle: a read just after ScheduleKeyDeletion may be stale, so only
    a state that stays other than PendingDeletion means someone cancelled the deletion; the
    planner's refusal of such a key ends the run."""
    settled: list[Key] = []
    for key in keys:
        if key.state != PENDING_DELETION:
            try:
                key = _settle(run, key)
            except KeyNotFound:
                run.gone.add(key.id)
                continue
        settled.append(key)
        refusal = planner.cancelled_while_waiting(key, done_text(run.result))
        if refusal is not None:
            raise refusal.as_error(where=run.result.store.id if run.result.store else "")
    return settled


def _read_again(run: StoreRun, keys: list[Key]) -> list[Key]:
    """Every key read once more (DescribeKey), as the run's last word on them: a key no
    longer pending is reported as AWS shows it, with a warning (the next run refuses it
    as cancelled)."""
    gw, result = run.gw, run.result

    def read(key: Key) -> Key | None:
        try:
            metadata = gw.describe_key(key.arn)
        except KeyNotFound:
            return None
        return replace(key_from_metadata(metadata, key.aliases), marks=key.marks)

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(keys))),
                            thread_name_prefix="reread") as pool:
        fresh = list(pool.map(read, keys))
    run.gone.update(k.id for k, f in zip(keys, fresh, strict=True) if f is None)
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
        run.reporter.note(note, level="warning")
    return now


def _watch_store(run: StoreRun, store_id: str, keys: list[Key]) -> None:
    """While keys wait out their window, the store must stay as the gates require (a
    CloudHSM store CONNECTED): re-plan on the store as it is now, and follow the plan:
    reconnect (--connect), go on with a warning (--allow-orphaned-key-material), or stop."""
    if not keys:
        return
    store = read_store(run, store_id)
    due = run.clock() - run.svc.last_watch >= WATCH_INTERVAL
    if store.connection_state is ConnectionState.CONNECTED and not due:
        return
    if store.connection_state is not ConnectionState.CONNECTED:
        # The store first: reading CloudTrail takes seconds (paced), and a CloudHSM key
        # whose window ends while its store is disconnected leaves its material behind.
        _keep_store(run, store, keys, unwatched=True)
        if not due:
            return
        store = read_store(run, store_id)
    keys = with_watch(run, keys, fresh=due, also=keys_elsewhere(run, store_id) if due else ())
    if due:
        act_elsewhere(run, store_id)
    _keep_store(run, store, keys)


def _keep_store(run: StoreRun, store: KeyStore, keys: list[Key], *,
                unwatched: bool = False) -> None:
    """Re-plan on the store as it is now and follow the plan's reconnect steps (or its
    refusal, or go on with a recorded waiver). `unwatched`: the store before the watch's
    reading: its CloudTrail gates wait for that reading (not recorded as waived), every
    other waiver the run goes on with is recorded now."""
    snap = Snapshot(store, tuple(keys), identity=run.svc.identity)
    options = replace(run.options.plan, on_use="ignore") if unwatched else run.options.plan
    plan = planner.plan(snap, options, run.now(), run.context)
    unread = WATCH_GATES if unwatched and run.options.plan.on_use != "ignore" else frozenset()
    new = record(plan, run.result, unread=unread)
    for line in new:
        run.reporter.note(line, level="warning")
    journal_waivers(run, store, new)
    if plan.refusal:
        stop(run, plan, snap)
    for step in plan.steps:
        if step.kind not in (StepKind.CONNECT_STORE, StepKind.AWAIT_CONNECTED):
            break
        run.reporter.note(f"the store is {store.connection_state} while keys wait: "
                          f"{step.kind}", level="warning")
        HANDLERS[step.kind](run, step, snap)


# The gates that read CloudTrail: a plan made before the watch's reading says "waived" for
# them only because it did not read it.
WATCH_GATES = frozenset({planner.no_use_while_pending.__name__,
                         planner.no_use_while_disabled.__name__})


def _latest(keys: list[Key]) -> datetime | None:
    return max((k.deletion_date for k in keys if k.deletion_date), default=None)


# Every step kind, and the function that applies it.
HANDLERS: dict[StepKind, Handler] = {
    StepKind.CONNECT_STORE: connection.connect_store,
    StepKind.AWAIT_CONNECTED: connection.await_connected,
    StepKind.DISABLE_KEYS: disable,
    StepKind.AWAIT_SOAK: await_soak,
    StepKind.SCHEDULE_KEY_DELETION: schedule,
    StepKind.AWAIT_KEYS_DELETED: await_keys,
    StepKind.DISCONNECT_STORE: connection.disconnect_store,
    StepKind.AWAIT_DISCONNECTED: connection.await_disconnected,
    StepKind.DELETE_STORE: connection.delete_store,
    StepKind.VERIFY_DELETED: connection.verify_deleted,
    StepKind.CANCEL_KEY_DELETION: cancel_keys,
}
