"""The reporter per store and the view model (ksdelete.reporting, ksdelete.view): pure units."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

from rich.console import Console

from ksdelete.live import RichReporter
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
    Verdict,
)
from ksdelete.output import phase_json
from ksdelete.reporting import Phase, PhaseState, PlainReporter, plan_lines
from ksdelete.view import plan_view, run_summary, store_summary

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STORE = KeyStore("cks-1234567890abcdef0", "payments", StoreType.CLOUDHSM,
                 ConnectionState.CONNECTED)


def _interleave(a_ref: str, b_ref: str, reporter: PlainReporter | RichReporter) -> None:
    """Two stores' events, interleaved as a run over two stores at once would send them."""
    reporter.start(command="delete", dry_run=False)
    a, b = reporter.for_store(a_ref), reporter.for_store(b_ref)
    a.begin()
    a.phase(Phase.DISCOVER, PhaseState.RUNNING, "a-scanning")
    b.begin()
    b.phase(Phase.DISCOVER, PhaseState.RUNNING, "b-scanning")
    a.phase(Phase.DISCOVER, PhaseState.DONE, "a-found")
    b.retry("ListKeys", 1, 0.5, "b-throttled")
    a.note("a-note", level="warning")
    b.phase(Phase.DISCOVER, PhaseState.DONE, "b-found")
    a.phase(Phase.PLAN, PhaseState.DONE, "a-planned")
    b.waiting(T0, 2, 3)
    b.phase(Phase.WAIT, PhaseState.PENDING, "b-pending")


def test_interleaved_events_of_two_stores_are_each_under_their_own_store_plain() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream, clock=lambda: T0)
    _interleave("cks-aaaa", "cks-bbbb", reporter)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 9, lines
    for line in lines:
        if re.search(r"\ba-", line):
            assert " cks-aaaa: " in line, line
        else:
            assert " cks-bbbb: " in line, line
    assert any("cks-bbbb: wait: 2/3 key(s)" in line for line in lines)


def _panels(text: str) -> list[list[str]]:
    """The boxes of a rendered console: each a list of its lines, the title line first."""
    panels: list[list[str]] = []
    box: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("╭"):
            box = [line]
        elif box is not None:
            box.append(line)
            if line.startswith("╰"):
                panels.append(box)
                box = None
    return panels


def test_interleaved_events_of_two_stores_are_each_under_their_own_store_rich() -> None:
    # Not interactive: what stays in the scrollback, without the live frames.
    console = Console(file=io.StringIO(), force_terminal=True, force_interactive=False,
                      width=100, color_system=None)
    reporter = RichReporter(console, get_time=lambda: 0.0, clock=lambda: T0,
                            auto_refresh=False)
    _interleave("cks-aaaa", "cks-bbbb", reporter)
    live = Console(file=io.StringIO(), width=100, color_system=None)
    live.print(reporter._live_view())  # both stores run: both checklists are on the screen
    screen = live.file.getvalue()  # type: ignore[attr-defined]
    assert "store cks-aaaa" in screen and "store cks-bbbb" in screen, screen
    reporter.finish([])
    output = console.file.getvalue()  # type: ignore[attr-defined]
    panels = _panels(output)
    assert panels, output
    seen: dict[str, set[str]] = {"cks-aaaa": set(), "cks-bbbb": set()}
    for panel in panels:
        ref = "cks-aaaa" if "cks-aaaa" in panel[0] else "cks-bbbb"
        assert ref in panel[0], panel
        body = "\n".join(panel[1:])
        seen[ref].update(re.findall(r"\b[ab]-[a-z]+", body))
    assert seen["cks-aaaa"] == {"a-found", "a-planned"}, seen
    assert seen["cks-bbbb"] == {"b-found", "b-pending"}, seen


def _key(index: int, *, pending: bool = False) -> Key:
    return Key(f"key-{index}", f"arn:aws:kms:us-east-1:111122223333:key/key-{index}",
               PENDING_DELETION if pending else "Enabled", STORE.id,
               T0 + timedelta(days=index) if pending else None, aliases=(f"alias/k{index}",))


def test_the_plan_view_is_what_every_renderer_shows() -> None:
    keys = (_key(1), _key(2, pending=True), _key(3, pending=True))
    plan = Plan(STORE.id, (
        Step(StepKind.SCHEDULE_KEY_DELETION, ("key-1",), detail="1 left", window_days=7),
        Step(StepKind.AWAIT_KEYS_DELETED, ("key-1", "key-2", "key-3")),
    ), verdicts=(Verdict("membership_known", "pass"), Verdict("unused_for", "n/a"),
                 Verdict("cloudhsm_connected", "waived", "--connect")),
        earliest_gone=T0 + timedelta(days=7), warnings=("careful",))
    view = plan_view(Snapshot(STORE, keys, scanned=40), plan)
    assert view.steps == ("ScheduleKeyDeletion for 1 key(s) (7-day window, 1 left)",
                          "wait until all 3 key(s) are really deleted")
    assert view.next_step == "ScheduleKeyDeletion for 1 key(s) (1 left)"
    assert view.more_steps == 1 and not view.only_waits
    assert [c.gate for c in view.checks] == ["membership_known", "cloudhsm_connected"]
    assert view.key_states == (("Enabled", 1), (PENDING_DELETION, 2))
    assert view.deletion_dates == (T0 + timedelta(days=2), T0 + timedelta(days=3))
    lines = plan_lines(Snapshot(STORE, keys, scanned=40), plan)
    assert "  1. ScheduleKeyDeletion for 1 key(s) (7-day window, 1 left)" in lines
    assert "check cloudhsm_connected waived: --connect" in lines
    assert not any("unused_for" in line for line in lines)


def test_the_summary_view_and_the_json_phase_count_the_same_keys() -> None:
    keys = (_key(1), _key(2, pending=True), _key(3, pending=True))
    result = StoreResult("payments", Status.PENDING, "name", STORE, keys,
                         actions=[Action("ScheduleKeyDeletion", "ok", "key-2"),
                                  Action("ScheduleKeyDeletion", "ok", "key-3"),
                                  Action("TagResource", "ok", "key-2")],
                         phase="keys-not-scheduled 2/3", resume_after=T0)
    summary = store_summary(result)
    assert (summary.label, summary.keys_total, summary.keys_pending) == (STORE.id, 3, 2)
    assert (summary.changed, summary.changes) == (2, "2 key(s) scheduled")
    assert summary.remaining == "1 key(s) not scheduled yet: run ksdelete delete"
    phase = phase_json(summary)
    assert phase is not None
    assert (phase["keys_total"], phase["keys_pending"], phase["keys_not_scheduled"]) == (3, 2, 1)
    assert phase["earliest_deletion"] == (T0 + timedelta(days=2)).isoformat()
    assert run_summary([result]).stores == (summary,)
