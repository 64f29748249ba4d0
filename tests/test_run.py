"""The per-store run in process: a StoreRun driven against the emulator (boto3 over HTTP),
with its clocks injected, step handler by step handler. The CLI tests cover exit codes, the
JSON and the prompt; these cover the executor's own logic."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ksdelete import app
from ksdelete.emulator import Emulator
from ksdelete.errors import RefusedError
from ksdelete.executor import Executor, RunOptions, StoreRun
from ksdelete.marks import CANCELLED_TAG, SCHEDULED_TAG
from ksdelete.models import (
    Attempt,
    PlanOptions,
    Snapshot,
    Step,
    StepKind,
    Watch,
)
from ksdelete.reporting import PlainReporter
from ksdelete.retry import RetryPolicy
from ksdelete.run import converge, survey
from ksdelete.run.base import USAGE_REUSE, WATCH_INTERVAL, Pending
from ksdelete.run.steps import HANDLERS


def seed_one(emulator: Emulator, *, keys: int = 3, other: int = 2) -> None:
    """A CONNECTED CloudHSM store 'target', another store 'other' and some plain keys."""
    emulator.seed({"region": "us-east-1", "plain_keys": 5, "stores": [
        {"name": "target", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
         "keys": keys, "aliases": True},
        {"name": "other", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
         "keys": other}]})


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def build(emulator: Emulator, tmp_path: Path) -> Iterator[Any]:
    def make(options: RunOptions, *, consistency: float = 0.0) -> Executor:
        """No sleeping; AWS's lag is waited out for `consistency` seconds (real time)."""
        policy = RetryPolicy(sleep=lambda _: None, consistency_timeout=consistency,
                             poll_initial=0.01, poll_max=0.01)
        settings = app.Settings(region="us-east-1", endpoint_url=emulator.endpoint_url,
                                journal=tmp_path / "journal.jsonl", poll_interval=0.01)
        built = app.build(settings, options, PlainReporter(io.StringIO()),
                          lambda snap, plan: True, read_only=False, policy=policy)
        return built.executor

    yield make


def start(executor: Executor, ref: str, clock: Clock, now: datetime | None = None) -> StoreRun:
    target = executor.resolve(ref)
    run = executor.start(target)
    run.clock = clock
    if now is not None:
        run.now = lambda: now
    return run


def calls(emulator: Emulator, operation: str) -> int:
    return sum(1 for c in emulator.calls() if c["operation"] == operation)


def test_two_stores_runs_keep_their_own_state(emulator: Emulator, build: Any) -> None:
    """Two StoreRuns of one executor, surveyed in turn: each keeps its own result, keys and
    context (nothing is left on the Executor for the next store to inherit)."""
    seed_one(emulator, keys=3, other=2)
    executor = build(RunOptions(plan=PlanOptions(unused_for_days=0)))
    clock = Clock()
    first, second = start(executor, "target", clock), start(executor, "other", clock)
    snap_a, plan_a = survey.survey(first)
    snap_b, plan_b = survey.survey(second)
    assert len(first.result.keys) == 3 and len(second.result.keys) == 2
    assert first.result.plan is plan_a and second.result.plan is plan_b
    assert plan_a.to_schedule == tuple(k.id for k in snap_a.keys)
    assert plan_b.to_schedule == tuple(k.id for k in snap_b.keys)
    assert not vars(executor).keys() & {"_result", "_context", "_deadline", "_gone", "_usage"}


def test_the_run_converges_until_the_window_then_is_pending(emulator: Emulator,
                                                            build: Any) -> None:
    """decide, confirm, go: the keys are marked and scheduled (every step through the
    handler table), and the run stops pending until the latest DeletionDate."""
    seed_one(emulator, keys=2)
    executor = build(RunOptions(plan=PlanOptions(unused_for_days=0, pending_window_days=7)))
    run = start(executor, "target", Clock())
    snap, plan = converge.decide(run)
    converge.ask(run, snap, plan)
    converge.confirmed(run, snap, plan)
    with pytest.raises(Pending) as pending:
        converge.go(run, snap, plan)
    by_key = {k.id: [a.operation for a in run.result.actions if a.key_id == k.id]
              for k in snap.keys}
    assert by_key == {k.id: ["TagResource", "ScheduleKeyDeletion"] for k in snap.keys}
    assert all(k.pending for k in run.result.keys)
    latest = max(k.deletion_date for k in run.result.keys if k.deletion_date)
    assert pending.value.resume_after == latest
    assert run.context.planned == snap.key_ids()


def scheduled_and_waiting(build: Any) -> tuple[StoreRun, Snapshot]:
    """A --wait run of 'target' that has just scheduled its keys (7-day window)."""
    executor = build(RunOptions(plan=PlanOptions(unused_for_days=0, pending_window_days=7),
                                wait=True, max_wait=3600.0))
    run = start(executor, "target", Clock())
    snap, plan = converge.decide(run)
    step = plan.step(StepKind.SCHEDULE_KEY_DELETION)
    assert step is not None
    HANDLERS[StepKind.SCHEDULE_KEY_DELETION](run, step, snap)
    return run, snap


def test_a_key_cancelled_while_waiting_is_refused(emulator: Emulator, build: Any,
                                                 kms: Any) -> None:
    """--wait: a key that settles as no longer pending (someone cancelled it) ends the run,
    refused, saying what the run had done (the planner's refusal)."""
    seed_one(emulator, keys=2)
    run, snap = scheduled_and_waiting(build)
    # The wait re-reads the key AWS deletes first (discover.recheck_keys): cancel that one.
    cancelled = min(run.result.keys, key=lambda k: (k.deletion_date, k.id))
    kms.cancel_key_deletion(KeyId=cancelled.id)
    run.deadline = run.clock() + 5.0  # poll_until's own timeout is in real seconds
    with pytest.raises(RefusedError) as refused:
        HANDLERS[StepKind.AWAIT_KEYS_DELETED](run, Step(StepKind.AWAIT_KEYS_DELETED), snap)
    assert refused.value.what == (
        "a key this run waits on is no longer pending deletion: someone cancelled it. "
        "Run `ksdelete status` to review, then run again")
    assert refused.value.details[0].startswith(f"key {cancelled.id} is Disabled (ARN arn:aws:")
    assert refused.value.details[1] == (
        "already done by this run: TagResource x2, ScheduleKeyDeletion x2; "
        "nothing further was changed")
    assert refused.value.key_ids == (cancelled.id,)


def test_a_key_due_last_cancelled_while_waiting_is_seen_at_the_first_check(
        emulator: Emulator, build: Any, kms: Any) -> None:
    """--wait sweeps every pending key at its first check (and every SWEEP_EVERY after), so
    a cancel of the key AWS would delete last is not left unseen until the others are gone."""
    seed_one(emulator, keys=3)
    run, snap = scheduled_and_waiting(build)
    cancelled = max(run.result.keys, key=lambda k: (k.deletion_date, k.id))
    kms.cancel_key_deletion(KeyId=cancelled.id)
    run.deadline = run.clock() + 5.0
    with pytest.raises(RefusedError) as refused:
        HANDLERS[StepKind.AWAIT_KEYS_DELETED](run, Step(StepKind.AWAIT_KEYS_DELETED), snap)
    assert refused.value.key_ids == (cancelled.id,)


def test_last_use_is_read_again_only_after_the_reuse_window(emulator: Emulator,
                                                           build: Any) -> None:
    """GetKeyLastUsage read this recently (the run's clock) is reused by a later snapshot."""
    seed_one(emulator, keys=2)
    executor = build(RunOptions(plan=PlanOptions(unused_for_days=30)))
    clock = Clock()
    run = start(executor, "target", clock)
    survey.snapshot(run, run.store_id, "id")
    assert calls(emulator, "GetKeyLastUsage") == 2
    clock.t += USAGE_REUSE - 1
    survey.snapshot(run, run.store_id, "id")
    assert calls(emulator, "GetKeyLastUsage") == 2
    clock.t += 2
    survey.snapshot(run, run.store_id, "id")
    assert calls(emulator, "GetKeyLastUsage") == 4


def test_a_soak_past_the_deadline_is_pending_at_once(emulator: Emulator, build: Any) -> None:
    """--wait with a soak that ends after the run's deadline: pending at once (no sleep),
    with the soak's end as when to run again; AWS's time is the run's injected `now`."""
    seed_one(emulator, keys=1)
    executor = build(RunOptions(plan=PlanOptions(unused_for_days=0), wait=True))
    now = emulator.now()
    run = start(executor, "target", Clock(), now=now)
    until = now + timedelta(days=3)
    run.result.plan = replace(converge.decide(run)[1], soak_until=until)
    run.deadline = run.clock() + 3600.0 - WATCH_INTERVAL
    snap = Snapshot(run.result.store, run.result.keys) if run.result.store else None
    assert snap is not None
    with pytest.raises(Pending) as pending:
        HANDLERS[StepKind.AWAIT_SOAK](run, Step(StepKind.AWAIT_SOAK), snap)
    assert pending.value.resume_after == until


def test_the_watch_remedy_cancels_and_marks_each_key(emulator: Emulator, build: Any,
                                                     kms: Any) -> None:
    """The remedy is a planned step (CancelKeyDeletion) with its own handler: each key's
    deletion cancelled, and marked with who cancelled and the use the watch saw."""
    seed_one(emulator, keys=1)
    # The emulator refuses the first TagResource after a cancel, as AWS may: retried.
    executor = build(RunOptions(plan=PlanOptions(unused_for_days=0)), consistency=5.0)
    run = start(executor, "target", Clock())
    snap = survey.snapshot(run, run.store_id, "id")
    key = snap.keys[0]
    kms.schedule_key_deletion(KeyId=key.id, PendingWindowInDays=7)
    used = Watch(since=None, attempts=(Attempt("Decrypt", "someone", None, "KMSInvalidState"),))
    pending = replace(key, state="PendingDeletion", watch=used)
    snap = replace(snap, keys=(pending,))
    step = Step(StepKind.CANCEL_KEY_DELETION, key_ids=(key.id,))
    assert HANDLERS[StepKind.CANCEL_KEY_DELETION](run, step, snap) == "1 key(s) cancelled"
    assert [(a.operation, a.outcome) for a in run.result.actions] == [
        ("CancelKeyDeletion", "ok"), ("TagResource", "ok")]
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key.id)["Tags"]}
    assert tags[CANCELLED_TAG].endswith(" watch=Decrypt")
    assert SCHEDULED_TAG not in tags
    # Again (the watch read on and re-planned): a key this run cancelled is not touched.
    assert HANDLERS[StepKind.CANCEL_KEY_DELETION](run, step, snap) == "0 key(s) cancelled"
    assert len(run.result.actions) == 2
