"""The fleet's live table on a terminal (rich, on stderr): one row per target (account name and
ID, Region, store, status, phase, next step, next run) and a summary row, updated as the events
of every account's thread arrive. The only fleet module that imports rich.

Events only change the rows (under one lock); the table is drawn by rich's own refresh thread,
at most `refresh_per_second` times a second, however many events arrive. Notes (warnings,
refusals, errors) are printed above the table, each prefixed `[account/Region/store]`, each
refusal or error once per store. `finish()` (or `close()`, or the `atexit` hook if an exception
escapes the run) stops the live view; `finish(run)` then leaves the final table and the fleet's
last line in the scrollback. Text from AWS is never parsed as markup, and escaped
(`printable`).
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ksdelete.fleet.model import FleetRun, FleetSpec, TargetResult
from ksdelete.fleet.view import (
    next_step_waits,
    phase,
    plan_next,
    scope_label,
    target_error,
    totals_line,
)
from ksdelete.live import terminal_console
from ksdelete.models import Plan, Snapshot, Status, StoreResult
from ksdelete.reporting import (
    Phase,
    PhaseState,
    StoreReporter,
    plan_lines,
    printable,
    say,
    told_before,
)
from ksdelete.view import fmt_time

STATUS_STYLES = {
    "waiting": "dim", "running": "cyan", Status.DELETED.value: "green",
    Status.PENDING.value: "yellow", Status.PLANNED.value: "cyan",
    Status.REFUSED.value: "yellow", Status.ERROR.value: "bold red",
    Status.MISSING.value: "red", Status.SKIPPED.value: "dim",
    Status.CANCELLED.value: "green", Status.INTERRUPTED.value: "red",
    Status.TERMINATED.value: "red",
}
WIDE = 140  # columns from which the table shows account names and the next run
NOTE_STYLES = {"error": "red", "refused": "yellow", "warning": "yellow"}


def fleet_console(stream: TextIO | None = None) -> Console:
    """The console of the live table: stderr, or `stream` (tests)."""
    if stream is None or stream is sys.stderr:
        return terminal_console()
    return terminal_console(stream)


@dataclass
class _Row:
    account_id: str
    account_name: str
    region: str
    store_id: str
    status: str = "waiting"  # waiting, running, then the target's Status
    activity: str = ""  # what it is doing now, then its phase (or what stopped it)
    next_step: str = ""
    waits: bool = False  # the next step waits until `next_run`
    next_run: datetime | None = None
    retry: str = ""


class _Scope:
    """The Reporter of one account and Region: its events go to the fleet's rows."""

    def __init__(self, fleet: FleetLiveReporter, account_id: str, account_name: str,
                 region: str) -> None:
        self.fleet = fleet
        self.account_id, self.account_name, self.region = account_id, account_name, region
        self.dry_run = False

    def _rows(self, target: str) -> list[_Row]:
        """The row of `target`; an event of no store: the scope's rows still running."""
        fleet = self.fleet
        if target:
            return [fleet.row(self.account_id, self.account_name, self.region, target)]
        return [r for r in fleet.rows.values() if r.status == "running"
                and (r.account_id, r.region) == (self.account_id, self.region)]

    def start(self, *, command: str, dry_run: bool) -> None:
        self.dry_run = dry_run

    def for_store(self, target: str) -> StoreReporter:
        return StoreReporter(self, target)

    def begin(self, target: str) -> None:
        with self.fleet.lock:
            for r in self._rows(target):
                r.status, r.activity, r.retry = "running", "", ""

    def end(self, target: str) -> None:
        return None

    def phase(self, target: str, phase: Phase, state: PhaseState, detail: str = "") -> None:
        said = f"{phase}" if state is PhaseState.RUNNING else f"{phase} {state}"
        with self.fleet.lock:
            for r in self._rows(target):
                r.activity = printable(f"{said}: {detail}" if detail else said)
                r.retry = ""

    def progress(self, target: str, phase: Phase, done: int, total: int | None) -> None:
        with self.fleet.lock:
            for r in self._rows(target):
                r.activity = f"{phase} {done}/{total if total is not None else '?'}"

    def retry(self, call: str, attempt: int, delay: float, reason: str, *,
              target: str = "") -> None:
        with self.fleet.lock:
            for r in self._rows(target):
                r.retry = printable(f"{call} retry {attempt} ({reason})")

    def plan(self, target: str, snapshot: Snapshot, plan: Plan) -> None:
        with self.fleet.lock:
            for r in self._rows(target):
                r.next_step, r.waits = plan_next(plan) or "", False
        label = scope_label(self.account_id, self.region, target)
        out = self.fleet.plan_stream
        if out is not None:
            lines = plan_lines(snapshot, plan, compact=not self.fleet.dry_run)
            self.fleet.write_plan(out, [f"[{label}] {line}" for line in lines])
        if plan.refusal:
            self.fleet.say(label, plan.refusal.message, "refused")

    def note(self, text: str, *, level: str = "info", target: str = "") -> None:
        self.fleet.say(scope_label(self.account_id, self.region, target), text, level)

    def waiting(self, target: str, until: datetime | None, remaining: int, total: int,
                now: datetime | None = None) -> None:
        with self.fleet.lock:
            for r in self._rows(target):
                r.activity = f"wait: {remaining}/{total} key(s) pending"
                r.next_run = until

    def finish(self, results: Sequence[StoreResult]) -> None:
        """The fleet draws its own end (`FleetLiveReporter.finish`)."""

    def shown(self, message: str) -> bool:
        return self.fleet.shown(message)


class FleetLiveReporter:
    """The fleet's Reporter on a terminal: a live table, one row per target."""

    shows_summary = True  # finish(run) leaves the final table and the fleet's last line

    def __init__(self, console: Console, *, refresh_per_second: float = 4.0,
                 auto_refresh: bool = True, clock: Callable[[], datetime] | None = None,
                 plan_stream: TextIO | None = None) -> None:
        self.console = console
        self.refresh_per_second = refresh_per_second
        self.auto_refresh = auto_refresh
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.plan_stream = plan_stream
        self.lock = threading.RLock()
        self.rows: dict[tuple[str, str, str], _Row] = {}
        self.name = ""
        self.dry_run = False
        self._told: dict[str, list[str]] = {}  # refusals and errors said, by label
        self._said: set[tuple[str, str, str]] = set()  # targets whose end was shown
        self._live: Live | None = None

    # ---- the fleet's calls ---------------------------------------------------------------

    def start(self, *, command: str, dry_run: bool, spec: FleetSpec | None = None) -> None:
        """A row for each of the file's targets (waiting), and the live view on."""
        with self.lock:
            self.dry_run = dry_run
            if spec is not None:
                self.name = spec.name
                for account in spec.accounts:
                    for t in account.stores:
                        self.row(t.account_id, account.name, t.region, t.store_id)
        self._start_live()

    def for_scope(self, account_id: str, account_name: str, region: str) -> _Scope:
        return _Scope(self, account_id, account_name, region)

    def target_done(self, t: TargetResult) -> None:
        """The target's final row: its status, phase (or what stopped it), next step and
        next run; and what stopped it above the table, if its run did not say it (its role,
        a guard, the halt), once."""
        target = t.target
        error = target_error(t)
        said = phase(t) or (str(error["message"]) if error else "")
        with self.lock:
            r = self.row(target.account_id, t.account_name, target.region, target.store_id)
            r.status, r.activity, r.retry = t.status.value, printable(said), ""
            r.next_step, r.waits = next_step_waits(t)
            r.next_run = t.result.resume_after if t.result is not None else None
            untold = t.error is not None and target.key not in self._said \
                and not self.shown(str(t.error["message"]))
            self._said.add(target.key)
        if untold and t.error is not None:
            self.say(target.label, str(t.error["message"]), t.status.value)

    def note(self, text: str, *, level: str = "info") -> None:
        """A line about the whole fleet (the halt)."""
        self.say("", text, level)

    def finish(self, run: FleetRun | None = None) -> None:
        """Stop the live view; with the run: its final rows, then the table and the fleet's
        last line stay in the scrollback."""
        try:
            if run is not None:
                for t in run.targets:
                    self.target_done(t)
            self._stop_live()
            if run is not None:
                self.console.print(self.table())
                self.console.print(Text(totals_line(run)))
        finally:
            self.close()

    def close(self) -> None:
        """Stop the live view (idempotent; safe from an exception handler)."""
        self._stop_live()

    @property
    def live_running(self) -> bool:
        return self._live is not None

    # ---- what scopes share ---------------------------------------------------------------

    def row(self, account_id: str, account_name: str, region: str, store_id: str) -> _Row:
        with self.lock:
            key = (account_id, region, store_id)
            if key not in self.rows:
                self.rows[key] = _Row(account_id, printable(account_name), region,
                                      printable(store_id))
            return self.rows[key]

    def shown(self, message: str) -> bool:
        with self.lock:
            return any(told_before(told, message) is not None for told in self._told.values())

    def say(self, label: str, text: str, level: str) -> None:
        """A note above the table, prefixed with its label; a refusal or an error once per
        label. Printed outside the lock: the live view's refresh takes it to draw."""
        with self.lock:
            lines = say(self._told.setdefault(label, []), text, level)
        if not lines:
            return
        stamp = self.clock().astimezone(UTC).strftime("%H:%M:%S")
        prefix = f"[{label}] " if label else ""
        said = Text(f"{stamp} ", style="dim")
        said.append(f"{prefix}{lines[0]}", style=NOTE_STYLES.get(level, ""))
        for line in lines[1:]:
            said.append(f"\n{stamp} {prefix}{line}", style="dim")
        self.console.print(said)

    def write_plan(self, out: TextIO, lines: Sequence[str]) -> None:
        """A dry run's plan (stdout): on a terminal above the table, else as plain lines."""
        if out.isatty():
            self.console.print(Text("\n".join(printable(line) for line in lines)))
            return
        with self.lock:
            out.write("".join(printable(line) + "\n" for line in lines))
            out.flush()

    # ---- drawing -------------------------------------------------------------------------

    def table(self, width: int | None = None) -> Table:
        """The table as it stands (drawn by the live view; tests print it). Under 140
        columns (`width`, else the console's), without the account names and the next run."""
        with self.lock:
            rows = list(self.rows.values())
            title = f"fleet {self.name}" if self.name else "fleet"
            dry_run = self.dry_run
        wide = (width or self.console.width) >= WIDE
        table = Table(title=Text(title + (" — DRY RUN: nothing will be changed"
                                          if dry_run else ""),
                                 style="bold yellow" if dry_run else "bold"),
                      title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                      expand=True, pad_edge=False, border_style="yellow" if dry_run else "blue")
        # One line per target, however long its text (a fleet must fit a screen): phase and
        # next step are cut with an ellipsis, never an ID (the full text is in the notes
        # above, the summary lines and the JSON).
        table.add_column("account", no_wrap=True)
        if wide:
            table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=24)
        table.add_column("Region", no_wrap=True)
        table.add_column("store", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("phase", no_wrap=True, overflow="ellipsis", ratio=3)
        table.add_column("next step", no_wrap=True, overflow="ellipsis", ratio=2)
        if wide:
            table.add_column("next run", no_wrap=True)
        for r in rows:
            activity = Text(r.activity)
            if r.retry:
                activity.append(f" ↻ {r.retry}", style="yellow")
            cells = [Text(r.account_id), Text(r.account_name, style="dim"), Text(r.region),
                     Text(r.store_id), Text(r.status, style=STATUS_STYLES.get(r.status, "")),
                     # "wait until <the next run>": the next run column says until when
                     activity, Text(r.next_step.split(" until ")[0] if wide and r.waits
                                    and r.next_run else r.next_step),
                     Text(fmt_time(r.next_run) if r.next_run else "-")]
            table.add_row(*(cells if wide else cells[:1] + cells[2:-1]))
        by_status = Counter(r.status for r in rows)
        order = [s.value for s in Status] + ["running", "waiting"]
        counted = ", ".join(f"{by_status[s]} {s}" for s in order if by_status.get(s))
        summary = [Text("all", style="bold"), Text(""), Text(""), Text(f"{len(rows)} target(s)"),
                   Text(""), Text(counted, no_wrap=False, overflow="fold")]
        table.add_section()
        table.add_row(*(summary if wide else summary[:1] + summary[2:]))
        return table

    def refresh(self) -> None:
        """Redraw now (with auto_refresh off, the only redraw)."""
        live = self._live
        if live is not None:
            live.refresh()

    def _start_live(self) -> None:
        with self.lock:
            if self._live is not None or not self.console.is_interactive:
                return
            self._live = Live(console=self.console, get_renderable=self.table,
                              auto_refresh=self.auto_refresh,
                              refresh_per_second=self.refresh_per_second, transient=True,
                              redirect_stdout=False, redirect_stderr=True)
            live = self._live
        atexit.register(self.close)
        live.start(refresh=True)

    def _stop_live(self) -> None:
        with self.lock:
            live, self._live = self._live, None
        if live is not None:
            live.stop()
            atexit.unregister(self.close)
