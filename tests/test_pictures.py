"""The README's pictures (docs/images/*.svg) are what ksdelete's rich view draws for the demo's
store (`ksdelete demo`: payments-hsm, 12 keys, 7-day window), on a fixed clock, exported with
rich's SVG export. This test renders them again: it fails when the view changed and the pictures
did not (`KSDELETE_UPDATE_DOCS=1 pytest tests/test_pictures.py` rewrites them)."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from ksdelete import planner
from ksdelete.live import RichReporter
from ksdelete.models import (
    PENDING_DELETION,
    Action,
    ConnectionState,
    Identity,
    Key,
    KeyStore,
    Plan,
    PlanOptions,
    Snapshot,
    Status,
    StoreResult,
    StoreType,
    Usage,
)
from ksdelete.reporting import Phase, PhaseState, StoreReporter
from ksdelete.view import plan_view, run_summary

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
T0 = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
ACCOUNT = "111122223333"
IDENTITY = Identity(ACCOUNT, "eu-west-1", f"arn:aws:iam::{ACCOUNT}:role/platform-admin")
STORE = KeyStore("cks-4d8b1c0e7f2a93b61", "payments-hsm", StoreType.CLOUDHSM,
                 ConnectionState.CONNECTED, cloudhsm_cluster_id="cluster-2vx7kq4dz3r")
WINDOW = 7
NAMES = ["payments-ledger", "payments-tokens", "card-vault", "refunds", "payouts-eu",
         "payouts-us", "fraud-model", "statements", "receipts", "archive-2019",
         "archive-2020", "archive-2021"]


def _key(i: int, name: str) -> Key:
    key_id = f"7f3c{i:04x}-9a1e-4b6d-8c2f-{i * 7919:012x}"
    return Key(key_id, f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{key_id}",
               "Disabled" if i >= 9 else "Enabled", STORE.id, aliases=(f"alias/{name}",),
               creation_date=datetime(2023, 1 + i % 12, 10, tzinfo=UTC), tags=(),
               grants=(), usage=Usage(tracking_start=datetime(2026, 4, 23, tzinfo=UTC),
                                      last_used=datetime(2026, 9, 1 + i, 14, tzinfo=UTC),
                                      operation="Decrypt"))


KEYS = tuple(_key(i, name) for i, name in enumerate(NAMES))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


def _console(*, record: bool = False) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=100, record=record,
                   color_system="truecolor", legacy_windows=False)


def _picture(title: str, unique_id: str, *parts: object) -> str:
    """What a terminal shows at the end: the given renderables, on a recording console."""
    console = _console(record=True)
    for part in parts:
        console.print(part)
    return console.export_svg(title=title, unique_id=unique_id)


def _discovered(*, dry_run: bool, matched_by: str = "id"
                ) -> tuple[Clock, RichReporter, StoreReporter, Snapshot, Plan]:
    """The reporter on a fixed clock, after the discovery of the demo's store, and its plan."""
    clock = Clock()
    reporter = RichReporter(_console(), get_time=clock.time,
                            clock=clock.now, auto_refresh=False)
    snap = Snapshot(STORE, KEYS, scanned=3017, identity=IDENTITY, observed_at=T0,
                    elsewhere=3005, matched_by=matched_by)
    plan = planner.plan(snap, PlanOptions(pending_window_days=WINDOW), T0)
    reporter.start(command="delete", dry_run=dry_run)
    store = reporter.for_store(STORE.name)
    store.begin()
    store.phase(Phase.DISCOVER, PhaseState.RUNNING, STORE.id)
    clock.t += 6.4
    store.progress(Phase.DISCOVER, 3017, 3017)
    store.phase(Phase.DISCOVER, PhaseState.DONE, "12 key(s) in the store, 3017 scanned")
    return clock, reporter, store, snap, plan


def render_plan() -> str:
    """`ksdelete payments-hsm --dry-run`: the plan a person reviews."""
    _, reporter, store, snap, plan = _discovered(dry_run=True, matched_by="name")
    store.plan(snap, plan)
    store.phase(Phase.PLAN, PhaseState.DONE, f"{len(plan.steps)} step(s)")
    results = [StoreResult(STORE.id, Status.PLANNED, "name", STORE, KEYS, plan,
                           resume_after=plan.earliest_gone)]
    picture = _picture("ksdelete payments-hsm --dry-run", "plan",
                       reporter._plan_panel(plan_view(snap, plan)),
                       reporter._summary(run_summary(results)))
    reporter.finish(results)
    reporter.close()
    return picture


def render_live() -> str:
    """`ksdelete payments-hsm --wait`, in the waiting period: the live checklist."""
    clock, reporter, store, snap, plan = _discovered(dry_run=False)
    deletion = T0 + timedelta(days=WINDOW)
    store.phase(Phase.PLAN, PhaseState.DONE, f"{len(plan.steps)} step(s), confirmed")
    store.phase(Phase.SCHEDULE, PhaseState.RUNNING)
    for done in range(1, 13):
        clock.t += 0.11
        store.progress(Phase.SCHEDULE, done, 12)
        if done == 5:
            store.retry("ScheduleKeyDeletion", 1, 0.8, "ThrottlingException")
    store.phase(Phase.SCHEDULE, PhaseState.DONE, f"12 scheduled, {WINDOW}-day window")
    store.phase(Phase.WAIT, PhaseState.RUNNING)
    clock.t += 2 * 86400 + 3600 * 5
    store.progress(Phase.WAIT, 0, 12)
    store.waiting(deletion, 12, 12)
    pending = tuple(Key(k.id, k.arn, PENDING_DELETION, STORE.id, deletion, k.aliases)
                    for k in KEYS)
    picture = _picture("ksdelete payments-hsm --wait", "live", reporter._live_view())
    store.phase(Phase.WAIT, PhaseState.PENDING, "12/12 key(s) still pending")
    reporter.finish([StoreResult(
        STORE.id, Status.PENDING, "name", STORE, pending, plan,
        actions=[Action("ScheduleKeyDeletion", "ok", k.id) for k in KEYS],
        resume_after=deletion)])
    reporter.close()
    return picture


@pytest.mark.parametrize(("name", "render"), [("plan.svg", render_plan),
                                              ("live.svg", render_live)])
def test_readme_pictures_are_current(name: str, render: object) -> None:
    assert callable(render)
    fresh = render()
    assert isinstance(fresh, str) and "payments-hsm" in fresh
    path = IMAGES / name
    if os.environ.get("KSDELETE_UPDATE_DOCS"):
        path.write_text(fresh, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == fresh, \
        f"docs/images/{name} is stale: KSDELETE_UPDATE_DOCS=1 pytest tests/test_pictures.py"
