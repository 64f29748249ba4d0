"""The live view (ksdelete.live.RichReporter): golden-ish renders on a string console."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from ksdelete.live import DRY_RUN_BANNER, RichReporter, terminal_console
from ksdelete.models import (
    PENDING_DELETION,
    Action,
    ConnectionState,
    Key,
    KeyStore,
    Plan,
    Snapshot,
    Status,
    Step,
    StepKind,
    StoreResult,
    StoreType,
)
from ksdelete.reporting import PIPELINE, Phase, PhaseState, PlainReporter, Reporter

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DELETION = T0 + timedelta(days=30)
STORE = KeyStore("cks-1234567890abcdef0", "payments-xks", StoreType.EXTERNAL,
                 ConnectionState.CONNECTED)
KEYS = tuple(
    Key(f"1234abcd-12ab-34cd-56ef-1234567890a{i}", f"arn:aws:kms:us-east-1:111122223333:key/{i}",
        "Enabled", STORE.id, aliases=(f"alias/payments-{i}",), external_key_id=f"ext-{i:04d}")
    for i in range(3)
)
PLAN = Plan(
    STORE.id,
    (Step(StepKind.SCHEDULE_KEY_DELETION, tuple(k.id for k in KEYS), window_days=30),
     Step(StepKind.AWAIT_KEYS_DELETED, tuple(k.id for k in KEYS)),
     Step(StepKind.DISCONNECT_STORE), Step(StepKind.AWAIT_DISCONNECTED),
     Step(StepKind.DELETE_STORE), Step(StepKind.VERIFY_DELETED)),
    warnings=("external key material stays in your external key manager",),
    earliest_gone=DELETION,
)
SGR = re.compile(r"\x1b\[([0-9;]*)m")
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


def drive(reporter: Reporter, clock: FakeClock, *, dry_run: bool = False) -> None:
    """The calls the executor makes for one store, up to the keys' waiting period."""
    reporter.start(command="delete", dry_run=dry_run)
    store = reporter.for_store(STORE.id)
    store.begin()
    store.phase(Phase.DISCOVER, PhaseState.RUNNING, STORE.id)
    for done, total in [(0, 100), (50, 200), (120, 250), (250, 250)]:
        clock.t += 1.0
        store.progress(Phase.DISCOVER, done, total)
    store.phase(Phase.DISCOVER, PhaseState.DONE, "3 key(s) in the store, 250 scanned")
    store.plan(Snapshot(STORE, KEYS, scanned=250), PLAN)
    store.phase(Phase.PLAN, PhaseState.DONE, "6 step(s)")
    if dry_run:
        reporter.finish([StoreResult(STORE.id, Status.PLANNED, "id", STORE, KEYS, PLAN,
                                     resume_after=DELETION)])
        return
    store.phase(Phase.SCHEDULE, PhaseState.RUNNING)
    clock.t += 0.5
    store.progress(Phase.SCHEDULE, 1, 3)
    store.retry("ScheduleKeyDeletion", 1, 2.0, "ThrottlingException")
    clock.t += 2.5
    store.progress(Phase.SCHEDULE, 3, 3)
    store.phase(Phase.SCHEDULE, PhaseState.DONE, "3 scheduled, 30-day window")
    store.phase(Phase.WAIT, PhaseState.RUNNING)
    store.progress(Phase.WAIT, 0, 3)
    store.waiting(DELETION, 3, 3)
    store.phase(Phase.WAIT, PhaseState.PENDING, "3/3 key(s) still pending")
    store.note("a warning", level="warning")
    pending = tuple(Key(k.id, k.arn, PENDING_DELETION, STORE.id, DELETION, k.aliases,
                        k.external_key_id) for k in KEYS)
    reporter.finish([StoreResult(
        STORE.id, Status.PENDING, "id", STORE, pending, PLAN,
        actions=[Action("ScheduleKeyDeletion", "ok", k.id) for k in KEYS], resume_after=DELETION,
    )])


def render(*, dry_run: bool = False, width: int = 100) -> tuple[str, RichReporter]:
    clock = FakeClock()
    console = Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None)
    reporter = RichReporter(console, get_time=clock.time, clock=clock.now, auto_refresh=False)
    drive(reporter, clock, dry_run=dry_run)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output, reporter


def plain(text: str) -> str:
    """Every frame ever drawn, without control codes."""
    return CONTROL.sub("", text)


TOKEN = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|(\r)|(\n)|([^\x1b\r\n]+)")


def screen(raw: str) -> list[str]:
    """What is left on a terminal (scrollback included): a tiny emulator for what Live emits."""
    lines = [""]
    row = 0
    for match in TOKEN.finditer(raw):
        params, command, _cr, newline, text = match.groups()
        if newline:
            row += 1
            if row == len(lines):
                lines.append("")
        elif text:
            lines[row] += text
        elif command == "A":
            row = max(0, row - int(params or 1))
        elif command == "K":
            lines[row] = ""
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.rstrip() for line in lines]


def test_live_render_shows_checklist_progress_retry_countdown_and_summary() -> None:
    raw, reporter = render()
    text = plain(raw)
    for phase in PIPELINE:
        assert phase.value in text
    # The live frames: a bar with a rate and an ETA, the countdown to the last DeletionDate.
    assert re.search(r"120/250 keys \d+\.\d/s ETA 0:00:0\d", text)
    assert "(in 29 d 23 h)" in text
    # The retry, printed above the live area so it stays in the scrollback.
    assert "12:00:04 ↻ ScheduleKeyDeletion attempt 1 failed (ThrottlingException); " \
           "next try in 2.0 s" in text
    # The plan: every key ID and alias, the steps, the warning.
    for key in KEYS:
        assert key.id in text and key.aliases[0] in text
    assert "ScheduleKeyDeletion for 3 key(s) (30-day window)" in text
    assert "warning: external key material" in text
    # The final checklist stays in the scrollback.
    final = [
        "│ ✔ discover   3 key(s) in the store, 250 scanned",
        "│ ✔ plan       6 step(s)",
        "│ ✔ schedule   3 scheduled, 30-day window",
        "│ … wait       pending: 3/3 key(s) still pending",
        "│ ○ disconnect not yet",
        "│ ○ delete     not yet",
        "│ ○ verify     not yet",
    ]
    shown = screen(raw)
    lines = [line.rstrip(" │") for line in shown]
    assert lines.count(final[0]) == 1  # the live frames were erased
    start = lines.index(final[0])
    assert lines[start:start + len(final)] == final
    # The summary table (below 120 columns "what remains" goes under it).
    row = next(line for line in lines if line.startswith(" cks-1234567890abcdef0"))
    assert row.split()[:7] == ["cks-1234567890abcdef0", "pending", "3", "3", "2025-03-31",
                               "12:00", "UTC"]
    assert "wait for 3 key(s) to be deleted" in text
    assert DRY_RUN_BANNER not in text
    # The live view was stopped and the cursor shown again.
    assert reporter._live is None
    assert "\x1b[?25h" in raw[raw.rfind("\x1b[?25l"):]


def test_dry_run_is_visibly_a_dry_run_at_top_and_bottom() -> None:
    text = plain(render(dry_run=True)[0])
    assert text.count(DRY_RUN_BANNER) >= 2
    assert text.lstrip().startswith("─") and DRY_RUN_BANNER in text.splitlines()[0]
    assert DRY_RUN_BANNER in text.rstrip().splitlines()[-1]
    assert "Plan (dry run)" in text
    assert text.count("not run (dry run)") == 5  # schedule, wait, disconnect, delete, verify
    assert "planned" in text and "run without --dry-run" in text


@pytest.mark.parametrize("width", [80, 120])
def test_render_fits_the_terminal(width: int) -> None:
    text = "\n".join(screen(render(width=width)[0]))
    assert max(len(line) for line in text.splitlines()) <= width
    for key in KEYS:  # key IDs are never cut or wrapped
        assert key.id in text


def test_plain_and_non_terminal_output_have_no_ansi_codes() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    drive(PlainReporter(stream, clock=clock.now), clock)
    assert "retry: ScheduleKeyDeletion attempt 1" in stream.getvalue()
    assert "\x1b[" not in stream.getvalue()

    clock = FakeClock()
    console = Console(file=io.StringIO(), force_terminal=False, width=100)
    drive(RichReporter(console, get_time=clock.time, clock=clock.now), clock)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "ThrottlingException" in text and "discover" in text
    assert "\x1b[" not in text


def colours(text: str) -> list[str]:
    """The SGR parameters that set a foreground or background colour."""
    found = []
    for params in SGR.findall(text):
        codes = params.split(";")
        index = 0
        while index < len(codes):
            code = int(codes[index] or 0)
            if code in (38, 48):  # extended colour: 38;5;n or 38;2;r;g;b
                found.append(";".join(codes[index:index + 5]))
                index += 3 if index + 1 < len(codes) and codes[index + 1] == "5" else 5
                continue
            if 30 <= code <= 37 or 40 <= code <= 47 or 90 <= code <= 97 or 100 <= code <= 107:
                found.append(str(code))
            index += 1
    return found


def run_on_terminal_console(monkeypatch: pytest.MonkeyPatch, no_color: bool) -> str:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    stream = io.StringIO()
    clock = FakeClock()
    reporter = RichReporter(terminal_console(stream, force_terminal=True, width=100),
                            get_time=clock.time, clock=clock.now, auto_refresh=False)
    drive(reporter, clock, dry_run=False)
    reporter.note("something broke", level="error")
    return stream.getvalue()


def test_colours_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the NO_COLOR test: this console does colour by default."""
    text = run_on_terminal_console(monkeypatch, no_color=False)
    assert colours(text)
    # Errors are red, warnings yellow.
    assert re.search(r"\x1b\[[0-9;]*31m[^\x1b]*something broke", text)
    assert re.search(r"\x1b\[[0-9;]*33m[^\x1b]*a warning", text)


def test_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    text = run_on_terminal_console(monkeypatch, no_color=True)
    assert colours(text) == []
    assert "something broke" in text and "\x1b[1m" in text  # still a terminal: bold is kept


def test_cancel_checklist_and_several_stores() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    clock = FakeClock()
    reporter = RichReporter(console, get_time=clock.time, clock=clock.now, auto_refresh=False)
    reporter.start(command="cancel", dry_run=False)
    for ref in ("cks-first", "cks-second"):
        store = reporter.for_store(ref)
        store.begin()
        store.phase(Phase.DISCOVER, PhaseState.RUNNING, ref)
        store.phase(Phase.DISCOVER, PhaseState.DONE, "2 key(s) in the store")
        store.phase(Phase.CANCEL, PhaseState.RUNNING)
        store.progress(Phase.CANCEL, 2, 2)
        store.phase(Phase.CANCEL, PhaseState.DONE, "2 key(s) cancelled")
        store.end()
    reporter.finish([StoreResult("cks-first", Status.CANCELLED),
                     StoreResult("cks-second", Status.ERROR,
                                 error={"code": "x", "message": "AccessDenied on it"})])
    text = "\n".join(screen(console.file.getvalue()))  # type: ignore[attr-defined]
    assert "store cks-first" in text and "store cks-second" in text
    assert text.count("✔ cancel") == 2
    assert "schedule" not in text  # the cancel command has no delete pipeline
    assert "cks-second: AccessDenied on it" in text  # an error not shown before is in the summary


def test_aws_text_is_not_parsed_as_markup() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    reporter = RichReporter(console, auto_refresh=False)
    key = Key("k-1", "arn:k-1", "Enabled", STORE.id, aliases=("alias/[bold]x[/bold]",))
    store = reporter.for_store(STORE.id)
    store.begin()
    store.plan(Snapshot(STORE, (key,)), Plan(STORE.id, ()))
    store.note("[red]not markup[/red]", level="error")
    reporter.finish([])
    text = plain(console.file.getvalue())  # type: ignore[attr-defined]
    assert "alias/[bold]x[/bold]" in text and "[red]not markup[/red]" in text


def test_close_stops_the_live_view_when_the_pipeline_breaks() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    with RichReporter(console, auto_refresh=True) as reporter:
        store = reporter.for_store(STORE.id)
        store.begin()
        store.phase(Phase.DISCOVER, PhaseState.RUNNING, STORE.id)
        assert reporter._live is not None and reporter._live.is_started
    assert reporter._live is None
    reporter.close()  # idempotent
    raw = console.file.getvalue()
    assert "\x1b[?25h" in raw[raw.rfind("\x1b[?25l"):]  # the cursor is back
    assert screen(raw) == []  # and the live area is gone


def test_the_countdown_follows_the_service_clock() -> None:
    """The emulator (or a skewed host) may disagree with our clock: AWS's `now` wins."""
    clock = FakeClock()
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    reporter = RichReporter(console, get_time=clock.time, clock=clock.now, auto_refresh=False)
    reporter.start(command="delete", dry_run=False)
    store = reporter.for_store(STORE.id)
    store.begin()
    store.phase(Phase.WAIT, PhaseState.RUNNING)
    store.waiting(DELETION, 3, 3, now=DELETION - timedelta(days=2, hours=3))
    reporter.refresh()
    text = plain(console.file.getvalue())  # type: ignore[attr-defined]
    reporter.close()
    assert "(in 2 d 3 h)" in text
