"""The live view on a terminal (rich, on stderr): a checklist of the pipeline's phases.

What stays in the scrollback: the dry-run banners, the plan, notes, retries, each store's final
checklist and the summary table. What is live (and erased when it stops): the checklist of the
store being worked on, with a spinner on the current phase, a progress bar with rate and ETA while
keys are described or scheduled, and a countdown while keys wait out their deletion window.

Each store's events come with its target (the STORE argument): they go to that store's
checklist, whichever store began last. A store that begins moves the checklists of the stores
that ended to the scrollback; stores that run at the same time are shown one under another.

The Live display is started lazily (on the first running phase or progress report), paused after
the plan (so a confirmation prompt reads cleanly), and always stopped by `finish()` or `close()`;
an `atexit` hook stops it too if an exception escapes the pipeline.

Data from AWS (aliases, names, messages) is always wrapped in `Text`, never parsed as markup,
and escaped with `printable()` (control characters, bidi controls) as it comes in.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ksdelete.models import Plan, Snapshot, Status, StoreResult
from ksdelete.panels import MAX_WIDTH, plan_panel, summary_table
from ksdelete.reporting import (
    PIPELINE,
    Phase,
    PhaseState,
    StoreReporter,
    printable,
    told_before,
    view_lines,
)
from ksdelete.view import PlanView, RunSummary, fmt_time, plan_view, run_summary

# How a note is labelled: a refusal is a safety check's "no", not a failure (not red).
NOTE_STYLES = {"error": ("error", "red"), "refused": ("refused", "yellow"),
               "warning": ("warning", "yellow")}

PHASE_ORDER: tuple[Phase, ...] = tuple(Phase)
COMMAND_PHASES: dict[str, tuple[Phase, ...]] = {
    "delete": PIPELINE,
    "cancel": (Phase.DISCOVER, Phase.CANCEL),
}
# Phases whose progress is shown as a bar (the wait shows a countdown instead).
BAR_UNITS: dict[Phase, str] = {
    Phase.DISCOVER: "keys",
    Phase.SCHEDULE: "keys",
    Phase.CANCEL: "keys",
}
DRY_RUN_BANNER = "DRY RUN — nothing will be changed"

ICONS: dict[PhaseState, tuple[str, str]] = {
    PhaseState.DONE: ("✔", "green"),
    PhaseState.SKIPPED: ("↷", "dim"),
    PhaseState.PENDING: ("…", "yellow"),
    PhaseState.FAILED: ("✖", "bold red"),
}
NOT_REACHED = ("○", "dim")


def terminal_console(file: TextIO | None = None, *, force_terminal: bool | None = None,
                     width: int | None = None) -> Console:
    """The stderr console of the live view (a `file` and `force_terminal` are for tests).

    Colour is left to rich's own detection, so NO_COLOR, FORCE_COLOR and TERM are honoured.
    """
    if file is None:
        return Console(stderr=True, highlight=False, force_terminal=force_terminal, width=width)
    return Console(file=file, highlight=False, force_terminal=force_terminal, width=width)


def fmt_delta(seconds: float) -> str:
    """A short countdown: `45 s`, `12 min`, `3 h 20 min`, `29 d 23 h`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed columns are for bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("–/s", style="progress.data.speed")
        return Text(f"{speed:.1f}/s", style="progress.data.speed")


@dataclass
class _Row:
    phase: Phase
    state: PhaseState | None = None  # None: not reached yet
    detail: str = ""
    task: TaskID | None = None
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))


@dataclass
class _Retry:
    call: str
    attempt: int
    delay: float
    at: float  # get_time() when announced


@dataclass
class _Section:
    """One STORE argument's checklist (`ref`: its target)."""

    ref: str
    rows: dict[Phase, _Row]
    title: str = ""
    waiting: tuple[datetime | None, int, int, timedelta] | None = None
    retry: _Retry | None = None
    retries: int = 0
    running: bool = False  # its store began and has not ended: it stays on the screen

    def row(self, phase: Phase) -> _Row:
        if phase not in self.rows:
            self.rows[phase] = _Row(phase)
            self.rows = dict(sorted(self.rows.items(), key=lambda kv: PHASE_ORDER.index(kv[0])))
        return self.rows[phase]


class RichReporter:
    """The Reporter for a terminal: a live checklist on a rich Console (stderr)."""

    shows_summary = True  # the CLI need not repeat the summary lines on stderr

    def __init__(self, console: Console, *,
                 get_time: Callable[[], float] | None = None,
                 clock: Callable[[], datetime] | None = None,
                 auto_refresh: bool = True, plan_stream: TextIO | None = None) -> None:
        self.console = console
        # A dry run's plan is its result (stdout): a panel on a terminal, else plain lines.
        self.plan_stream = plan_stream
        self._get_time: Callable[[], float] = get_time or console.get_time
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.auto_refresh = auto_refresh
        self.command = ""
        self.dry_run = False
        self._bars = Progress(
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            RateColumn(),
            TextColumn("ETA", style="progress.remaining"),
            TimeRemainingColumn(),
            console=console, get_time=self._get_time, auto_refresh=False,
        )
        self._lock = threading.RLock()
        self._sections: dict[str, _Section] = {}  # the checklists shown, by target
        self._live: Live | None = None
        self._told: list[str] = []  # refusals and errors printed (each is printed once)

    @classmethod
    def for_terminal(cls) -> RichReporter:
        return cls(terminal_console())

    # ---- Reporter protocol ---------------------------------------------------------------

    def start(self, *, command: str, dry_run: bool) -> None:
        self.command, self.dry_run = command, dry_run
        if dry_run:
            self._banner()

    def for_store(self, target: str) -> StoreReporter:
        return StoreReporter(self, target)

    def begin(self, target: str) -> None:
        # The checklists of the stores that ended go to the scrollback (and the store's own,
        # if it begins again); a store still running stays on the screen beside this one.
        self._end_sections(keep={t for t, s in self._sections.items()
                                 if s.running and t != target})
        with self._lock:
            section = self._new_section(target, title=printable(target))
            section.running = True
            self._sections[target] = section

    def end(self, target: str) -> None:
        with self._lock:
            section = self._sections.get(target)
            if section is not None:
                section.running = False

    def phase(self, target: str, phase: Phase, state: PhaseState, detail: str = "") -> None:
        with self._lock:
            section = self._section(target)
            row = section.row(phase)
            row.state, row.detail = state, printable(detail)
            if state is not PhaseState.RUNNING and row.task is not None:
                self._bars.update(row.task, visible=False)
            if phase is Phase.WAIT and state is not PhaseState.RUNNING:
                section.waiting = None
            section.retry = None
        if phase is Phase.PLAN and state is not PhaseState.RUNNING:
            # Pause so that a confirmation prompt (or the end of a dry run) reads cleanly; the
            # next running phase starts the live view again.
            self._stop_live()
        elif state is PhaseState.RUNNING:
            self._start_live()
        self._refresh(force=True)

    def progress(self, target: str, phase: Phase, done: int, total: int | None) -> None:
        with self._lock:
            section = self._section(target)
            row = section.row(phase)
            if row.state is None:
                row.state = PhaseState.RUNNING
            if phase not in BAR_UNITS:
                return
            if row.task is None:
                # Start at 0 so that the first report already counts towards the rate.
                row.task = self._bars.add_task(phase.value, total=total, completed=0,
                                                  unit=BAR_UNITS[phase])
                self._bars.update(row.task, completed=done)
            else:
                # Set the total directly: Progress.update(total=...) would reset the speed
                # samples, and the total grows with every ListKeys page.
                task = next(t for t in self._bars.tasks if t.id == row.task)
                task.total = float(total) if total is not None else None
                self._bars.update(row.task, completed=done)
        self._start_live()
        self._refresh()

    def retry(self, call: str, attempt: int, delay: float, reason: str, *,
              target: str = "") -> None:
        with self._lock:
            section = self._sections.get(target)
            if section is not None:
                section.retry = _Retry(call, attempt, delay, self._get_time())
                section.retries += 1
        reason = printable(reason)
        what = (f"attempt {attempt} failed ({reason})" if " " not in reason
                else f"attempt {attempt}: {reason}")
        text = Text.assemble(
            ("↻ ", "yellow"), (call, "bold"), f" {what}; next try in {delay:.1f} s",
        )
        self._print_line(text, style="yellow")

    def plan(self, target: str, snapshot: Snapshot, plan: Plan) -> None:
        view = plan_view(snapshot, plan)
        with self._lock:
            store = view.store
            self._section(target).title = printable(f"{store.id} ({store.name})" if store.name
                                                    else store.id)
        out = self.plan_stream
        if out is None:
            self.console.print(self._plan_panel(view))
        elif out.isatty():
            self._stop_live()  # the live area (stderr) must not be redrawn over the plan
            terminal_console(out).print(self._plan_panel(view))
        else:
            out.write("".join(printable(line) + "\n" for line in view_lines(view)))
            out.flush()
        if plan.refusal:
            self._told.append(plan.refusal.message)

    def shown(self, message: str) -> bool:
        """Whether `message` (or the refusal it begins with) was printed already."""
        return told_before(self._told, message) is not None

    def note(self, text: str, *, level: str = "info", target: str = "") -> None:
        first, *rest = text.split("\n")
        if level in ("error", "refused"):
            told = told_before(self._told, text)
            if told is not None:  # the plan showed it: only what it did not say
                for detail in rest:
                    if detail not in told:
                        self._print_line(Text(printable(f"  {detail}"), style="dim"))
                return
            self._told.append(text)
        label, style = NOTE_STYLES.get(level, ("", ""))
        said = Text.assemble((f"{label}: ", f"bold {style}"), (printable(first), style)) \
            if label else Text(printable(first))
        for detail in rest:
            said.append("\n")
            said.append(printable(f"  {detail}"), style="dim")
        self._print_line(said)

    def waiting(self, target: str, until: datetime | None, remaining: int, total: int,
                now: datetime | None = None) -> None:
        # AWS's clock (`now`) may differ from ours; the countdown follows AWS's.
        skew = now - self._clock() if now is not None else timedelta(0)
        with self._lock:
            self._section(target).waiting = (until, remaining, total, skew)
        self._start_live()
        self._refresh()

    def finish(self, results: Sequence[StoreResult]) -> None:
        try:
            self._end_sections()
            if results:
                summary = run_summary(results)
                self.console.print(self._summary(summary))
                for s in summary.stores:
                    message = printable(s.error) if s.error else ""
                    if message and not self.shown(s.error or ""):
                        self.console.print(Text.assemble(
                            (f"{s.label}: ", "bold"),
                            (message, "yellow" if s.status is Status.REFUSED else "red")))
            if self.dry_run:
                self._banner()
        finally:
            self.close()

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the live view (idempotent); safe to call from an exception handler."""
        self._stop_live()

    def __enter__(self) -> RichReporter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def refresh(self) -> None:
        """Redraw the live view now (tests drive this with auto_refresh=False)."""
        live = self._live
        if live is not None:
            live.refresh()

    # ---- internals -----------------------------------------------------------------------

    def _new_section(self, target: str, title: str = "") -> _Section:
        phases = COMMAND_PHASES.get(self.command, ())
        return _Section(ref=printable(target), rows={p: _Row(p) for p in phases}, title=title)

    def _section(self, target: str) -> _Section:
        """The checklist of `target` (begun now if its store did not begin: events of a
        store are never shown under another)."""
        if target not in self._sections:
            self._sections[target] = self._new_section(target)
        return self._sections[target]

    def _start_live(self) -> None:
        if self._live is not None or not self.console.is_interactive:
            return
        live = Live(console=self.console, get_renderable=self._live_view, transient=True,
                    auto_refresh=self.auto_refresh, refresh_per_second=8,
                    redirect_stdout=False, redirect_stderr=True)
        self._live = live
        atexit.register(self.close)
        live.start(refresh=True)

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()
            atexit.unregister(self.close)

    def _refresh(self, *, force: bool = False) -> None:
        if force or not self.auto_refresh:
            self.refresh()

    def _end_sections(self, keep: set[str] | None = None) -> None:
        """Stop the live view and leave the stores' final checklists in the scrollback (but
        those of `keep`)."""
        self._stop_live()
        with self._lock:
            sections = [s for t, s in self._sections.items() if t not in (keep or ())]
            self._sections = {t: s for t, s in self._sections.items() if t in (keep or ())}
        for section in sections:
            if section.rows:
                self.console.print(self._checklist(section, live=False))

    def _banner(self) -> None:
        self.console.rule(Text(DRY_RUN_BANNER, style="bold yellow"), style="yellow")

    def _print_line(self, text: Text, style: str = "") -> None:
        stamp = self._clock().astimezone(UTC).strftime("%H:%M:%S")
        line = Text.assemble((stamp + " ", "dim"), text)
        if style:
            line.stylize(style, len(stamp) + 1)
        self.console.print(line)

    # ---- rendering -----------------------------------------------------------------------

    def _live_view(self) -> RenderableType:
        with self._lock:
            sections = list(self._sections.values()) or [self._section("")]
            views = [self._checklist(section, live=True) for section in sections]
            return views[0] if len(views) == 1 else Group(*views)

    def _checklist(self, section: _Section, *, live: bool) -> RenderableType:
        now = self._get_time()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=1, no_wrap=True)
        grid.add_column(min_width=10, no_wrap=True)
        grid.add_column(ratio=1)
        reached_pending = any(r.state is PhaseState.PENDING for r in section.rows.values())
        for row in section.rows.values():
            name_style = "bold" if row.state is PhaseState.RUNNING else ""
            icon: RenderableType
            detail: RenderableType
            if row.state is PhaseState.RUNNING:
                icon = row.spinner.render(now) if live else Text("▸", style="cyan")
                detail = self._running_detail(section, row, live=live)
            elif row.state is None:
                icon = Text(NOT_REACHED[0], style=NOT_REACHED[1])
                name_style = "dim"
                if live:
                    text = ""
                elif self.dry_run:
                    text = "not run (dry run)"
                else:
                    text = "not yet" if reached_pending else "not run"
                detail = Text(text, style="dim")
            else:
                glyph, style = ICONS[row.state]
                icon = Text(glyph, style=style)
                label = "" if row.state is PhaseState.DONE else f"{row.state}"
                detail = Text.assemble(
                    (label, style), (": " if label and row.detail else "", style),
                    (row.detail, "" if row.state is PhaseState.DONE else style),
                )
            grid.add_row(icon, Text(row.phase.value, style=name_style), detail)
        title = Text.assemble(("store ", "dim"), (section.title or section.ref or "-", "bold"))
        subtitle = None
        if section.retries and not live:
            subtitle = Text(f"{section.retries} retr{'y' if section.retries == 1 else 'ies'}",
                            style="dim")
        if self.dry_run:
            subtitle = Text("dry run", style="bold yellow")
        return Panel(grid, title=title, title_align="left", subtitle=subtitle,
                     subtitle_align="right", border_style="yellow" if self.dry_run else "blue",
                     width=self._width(), padding=(0, 1))

    def _running_detail(self, section: _Section, row: _Row, *, live: bool) -> RenderableType:
        parts: list[RenderableType] = []
        if row.detail:
            parts.append(Text(row.detail))
        if row.phase is Phase.WAIT and section.waiting is not None:
            parts.append(self._countdown(*section.waiting))
        if live and row.task is not None:
            task = next((t for t in self._bars.tasks if t.id == row.task), None)
            if task is not None:
                parts.append(self._bars.make_tasks_table([task]))
        retry = section.retry
        if live and retry is not None:
            left = retry.delay - (self._get_time() - retry.at)
            if left > 0:
                parts.append(Text(f"↻ {retry.call} attempt {retry.attempt + 1} in {left:.1f} s",
                                  style="yellow"))
        if not parts:
            return Text("")
        return Group(*parts) if len(parts) > 1 else parts[0]

    def _countdown(self, until: datetime | None, remaining: int, total: int,
                   skew: timedelta) -> Text:
        text = Text.assemble((f"{remaining}/{total}", "bold"), " key(s) still pending")
        if until is None:
            return text
        left = (until - (self._clock() + skew)).total_seconds()
        text.append(f"; all gone after {fmt_time(until)} ")
        if left > 0:
            text.append(f"(in {fmt_delta(left)})", style="bold yellow")
        else:
            text.append("(due now; AWS may take up to 24 h)", style="yellow")
        return text

    def _plan_panel(self, view: PlanView) -> Panel:
        return plan_panel(view, dry_run=self.dry_run, width=self._width())

    def _width(self) -> int:
        return min(self.console.width, MAX_WIDTH)

    def _summary(self, view: RunSummary) -> RenderableType:
        return summary_table(view, self._width())
