"""The fleet's live table (ksdelete.fleet.live): one row per target, updated from events of
several accounts' threads, rendered on a string console; and the choice of a fleet reporter."""

from __future__ import annotations

import ast
import io
import re
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from ksdelete.fleet.live import FleetLiveReporter
from ksdelete.fleet.service import make_fleet_reporter
from ksdelete.fleet.view import FleetPlainReporter
from ksdelete.models import Snapshot
from ksdelete.reporting import Phase, PhaseState

from .builders import (
    DENIED,
    DENIED_T,
    DEV,
    PENDING_T,
    SKIPPED_T,
    SPEC,
    T0,
    fleet_run,
    pending_result,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
ROOT = Path(__file__).resolve().parents[2]


def console(width: int = 220, *, interactive: bool = False) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, force_interactive=interactive,
                   width=width, highlight=False)


def text_of(c: Console) -> str:
    file = c.file
    assert isinstance(file, io.StringIO)
    return ANSI.sub("", file.getvalue())


def rendered(reporter: FleetLiveReporter, width: int = 220) -> list[str]:
    c = console(width)
    c.print(reporter.table(width))
    return text_of(c).splitlines()


def row(lines: list[str], store_id: str) -> str:
    found = [line for line in lines if store_id in line]
    assert len(found) == 1, (store_id, lines)
    return found[0]


def reporter(c: Console | None = None, **kwargs: object) -> FleetLiveReporter:
    live = FleetLiveReporter(c or console(), auto_refresh=False, clock=lambda: T0,
                             **kwargs)  # type: ignore[arg-type]
    live.start(command="fleet apply", dry_run=False, spec=SPEC)
    return live


def test_a_row_per_target_from_the_start_then_as_events_arrive() -> None:
    live = reporter()
    lines = rendered(live)
    for t in SPEC.targets:
        assert "waiting" in row(lines, t.store_id)
    assert "payments-dev" in row(lines, PENDING_T.store_id)
    assert DEV in row(lines, PENDING_T.store_id)
    assert "5 target(s)" in "\n".join(lines) and "5 waiting" in "\n".join(lines)

    store = live.for_scope(DEV, "payments-dev", "eu-west-1").for_store(PENDING_T.store_id)
    store.begin()
    store.phase(Phase.DISCOVER, PhaseState.DONE, "40 key(s) scanned")
    result = pending_result()
    assert result.store is not None and result.plan is not None
    store.plan(Snapshot(result.store, result.keys), result.plan)
    store.phase(Phase.SCHEDULE, PhaseState.RUNNING)
    store.progress(Phase.SCHEDULE, 2, 3)
    line = row(rendered(live), PENDING_T.store_id)
    assert "running" in line and "schedule 2/3" in line and "schedule 3 key(s)" in line
    assert "1 running, 4 waiting" in "\n".join(rendered(live))

    store.waiting(T0.replace(day=10), 3, 3)
    line = row(rendered(live), PENDING_T.store_id)
    assert "wait: 3/3 key(s) pending" in line and "2026-12-10 12:00 UTC" in line


def test_the_final_rows_say_phase_next_step_and_next_run() -> None:
    live = reporter()
    run = fleet_run()
    for t in run.targets:
        live.target_done(t)
    lines = rendered(live)
    pending = row(lines, "cks-1111111111111111a")
    for part in ("payments-dev", DEV, "eu-west-1", "pending",
                 "keys-pending 3/3, earliest deletion 2026-12-10 12:00 UTC",
                 "2026-12-11 12:00 UTC"):
        assert part in pending, (part, pending)
    assert re.search(r" wait +2026-12-11 12:00 UTC", pending)  # waits until the next run
    assert "wait until 2026-12-11" in row(rendered(live, 130), "cks-1111111111111111a")
    assert re.search(r"deleted .*none \(deleted\)", row(lines, "cks-1111111111111111b"))
    assert "fix and run again" in row(lines, "cks-1111111111111111c")
    denied = row(lines, "cks-4444444444444444a")
    assert "error" in denied and "payments-stage" in denied and "cannot assume" in denied
    assert "1 deleted, 1 pending, 1 refused, 1 error, 1 skipped" in "\n".join(lines)


def test_the_table_fits_a_narrow_terminal_and_keeps_store_ids_whole() -> None:
    live = reporter()
    for t in fleet_run().targets:
        live.target_done(t)
    for width in (80, 100):
        lines = rendered(live, width)
        assert max(len(line) for line in lines) <= width
        for target in SPEC.targets:
            assert any(target.store_id in line for line in lines), (target.store_id, width)


def test_notes_are_prefixed_said_once_and_never_markup() -> None:
    c = console()
    live = reporter(c)
    scope = live.for_scope(DEV, "payments-dev", "eu-west-1")
    scope.note("[bold red]not markup[/] \x1b[2J", level="warning", target=PENDING_T.store_id)
    scope.note("it is refused\ndetail", level="refused", target=PENDING_T.store_id)
    scope.note("it is refused\ndetail", level="refused", target=PENDING_T.store_id)
    scope.retry("ListKeys", 1, 0.5, "ThrottlingException")
    out = text_of(c)
    assert "[111122223333/eu-west-1/cks-1111111111111111a] warning: [bold red]not markup[/] " \
        "\\x1b[2J" in out
    assert out.count("it is refused") == 1 and "  detail" in out
    assert "\x1b[2J" not in c.file.getvalue()  # type: ignore[attr-defined]


def test_a_dry_runs_plan_goes_to_the_plan_stream_prefixed() -> None:
    plans = io.StringIO()
    live = FleetLiveReporter(console(), auto_refresh=False, plan_stream=plans)
    live.start(command="fleet plan", dry_run=True, spec=SPEC)
    result = pending_result()
    assert result.store is not None and result.plan is not None
    live.for_scope(DEV, "payments-dev", "eu-west-1").plan(
        PENDING_T.store_id, Snapshot(result.store, result.keys), result.plan)
    lines = plans.getvalue().splitlines()
    assert lines and all(line.startswith(f"[{PENDING_T.label}] ") for line in lines)
    assert "DRY RUN" in "\n".join(rendered(live))


def test_events_of_many_accounts_at_once_while_it_draws() -> None:
    live = reporter()
    accounts = [f"{n:012d}" for n in range(1, 9)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def draw() -> None:
        try:
            while not stop.is_set():
                rendered(live, 120)
        except BaseException as exc:  # pragma: no cover - the failure this test looks for
            errors.append(exc)

    def work(account: str) -> None:
        scope = live.for_scope(account, f"acct-{account[-1]}", "us-east-1")
        for n in range(3):
            store = scope.for_store(f"cks-{account}-{n}")
            store.begin()
            for done in range(50):
                store.progress(Phase.DISCOVER, done, 50)
            store.phase(Phase.DISCOVER, PhaseState.DONE)
            store.end()

    drawer = threading.Thread(target=draw)
    drawer.start()
    workers = [threading.Thread(target=work, args=(a,)) for a in accounts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    drawer.join()
    assert not errors
    lines = rendered(live)
    assert sum(1 for line in lines if re.search(r"cks-\d{12}-\d", line)) == 24
    assert "29 target(s)" in "\n".join(lines)  # the file's five, and 24 met on the way


class Counting(FleetLiveReporter):
    draws = 0

    def table(self, width: int | None = None) -> Table:
        Counting.draws += 1
        return super().table(width)


def test_the_live_view_redraws_at_most_four_times_a_second_and_stops_cleanly() -> None:
    c = console(interactive=True)
    live = Counting(c, clock=lambda: T0)  # auto refresh, as on a terminal
    began = time.monotonic()
    live.start(command="fleet apply", dry_run=False, spec=SPEC)
    assert live.live_running
    scope = live.for_scope(DEV, "payments-dev", "eu-west-1").for_store(PENDING_T.store_id)
    for done in range(3000):
        scope.progress(Phase.DISCOVER, done, 3000)
    run = fleet_run()
    for t in run.targets:
        live.target_done(t)
    live.finish(run)
    elapsed = time.monotonic() - began
    assert not live.live_running
    assert Counting.draws <= 4 + 4 * elapsed + 2, (Counting.draws, elapsed)
    out = text_of(c)
    assert "fleet retire-payments: 5 target(s)" in out and "exit 1" in out
    live.finish(run)  # idempotent
    live.close()


def test_close_stops_the_live_view_when_the_run_breaks() -> None:
    live = FleetLiveReporter(console(interactive=True), clock=lambda: T0)
    live.start(command="fleet apply", dry_run=False, spec=SPEC)
    assert live.live_running
    live.close()
    assert not live.live_running


def test_a_target_that_never_reached_its_store_says_why_in_its_row() -> None:
    live = reporter()
    live.target_done(fleet_run().targets[3])
    line = row(rendered(live), "cks-4444444444444444a")
    assert DENIED["message"][:20] in line and "fix and run again" in line
    # In full above the table, once (the run's end shows every target again).
    live.finish(fleet_run())
    said = text_of(live.console)
    assert said.count(f"[{DENIED_T.label}] error: {DENIED['message']}") == 1
    assert f"[{SKIPPED_T.label}] skipped: not started" in said


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_fleet_reporter_live_on_a_terminal_plain_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(make_fleet_reporter(False, False, Tty()), FleetLiveReporter)
    plain = make_fleet_reporter(False, False, io.StringIO())
    assert isinstance(plain, FleetPlainReporter) and not plain.quiet
    quiet = make_fleet_reporter(True, False, Tty())
    assert isinstance(quiet, FleetPlainReporter) and quiet.quiet
    assert isinstance(make_fleet_reporter(False, True, Tty()), FleetPlainReporter)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_fleet_reporter(False, False, Tty()), FleetPlainReporter)


def test_rich_is_imported_only_by_the_live_views() -> None:
    """rich in live.py, panels.py and fleet/live.py only (docs/development.md, Layout)."""
    importers = set()
    for path in (ROOT / "ksdelete").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name.split(".")[0] == "rich" for name in names):
                importers.add(path.relative_to(ROOT / "ksdelete").as_posix())
    assert importers == {"live.py", "panels.py", "fleet/live.py"}
