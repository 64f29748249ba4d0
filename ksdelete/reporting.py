"""How a run is shown. The pipeline talks to a Reporter; it never prints.

- PlainReporter: timestamped lines on stderr, no ANSI codes (cron, CI, pipes).
- RichReporter (ksdelete.live): the live checklist view on a terminal.
- QuietReporter: only errors.
The final result line and the JSON document are written by the CLI from StoreResult.

Every event of a store names its target (the STORE argument as given): a run obtains one
StoreReporter per store (`reporter.for_store(ref)`) and reports through it, so a reporter keeps
no "current store" and the events of two stores may interleave. What is shown is built from the
view model (ksdelete.view), which the plain lines, the live view and the JSON share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, TextIO

from ksdelete.models import Identity, Plan, Snapshot, Status, StepKind, StoreResult
from ksdelete.view import (
    PlanView,
    RunSummary,
    changes,
    describe_step,
    evidence_lines,
    fmt_time,
    only_waits,
    plan_view,
    run_summary,
    where,
)

__all__ = [  # what other modules read from here (the view's helpers included)
    "PIPELINE", "STEP_PHASE", "Phase", "PhaseState", "PlainReporter", "QuietReporter",
    "Reporter", "StoreReporter", "changes", "describe_step", "evidence_lines", "fmt_time",
    "only_waits", "plan_lines", "printable", "summary_lines", "summary_text", "view_lines",
    "where",
]


class Phase(StrEnum):
    DISCOVER = "discover"
    PLAN = "plan"
    CONNECT = "connect"
    SCHEDULE = "schedule"
    WAIT = "wait"
    DISCONNECT = "disconnect"
    DELETE = "delete"
    VERIFY = "verify"
    CANCEL = "cancel"


PIPELINE: tuple[Phase, ...] = (
    Phase.DISCOVER, Phase.PLAN, Phase.SCHEDULE, Phase.WAIT, Phase.DISCONNECT, Phase.DELETE,
    Phase.VERIFY,
)

STEP_PHASE: dict[StepKind, Phase] = {
    StepKind.CONNECT_STORE: Phase.CONNECT,
    StepKind.AWAIT_CONNECTED: Phase.CONNECT,
    StepKind.DISABLE_KEYS: Phase.SCHEDULE,
    StepKind.AWAIT_SOAK: Phase.WAIT,
    StepKind.SCHEDULE_KEY_DELETION: Phase.SCHEDULE,
    StepKind.AWAIT_KEYS_DELETED: Phase.WAIT,
    StepKind.DISCONNECT_STORE: Phase.DISCONNECT,
    StepKind.AWAIT_DISCONNECTED: Phase.DISCONNECT,
    StepKind.DELETE_STORE: Phase.DELETE,
    StepKind.VERIFY_DELETED: Phase.VERIFY,
    StepKind.CANCEL_KEY_DELETION: Phase.CANCEL,
    StepKind.MARK_CANCELLED: Phase.CANCEL,
    StepKind.ENABLE_KEYS: Phase.CANCEL,
}


class PhaseState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    PENDING = "pending"
    FAILED = "failed"


class Reporter(Protocol):
    """Where a run's events go. `target` names the store an event is about ("": the
    invocation itself, before or outside any store)."""

    def start(self, *, command: str, dry_run: bool) -> None: ...
    def begin(self, target: str) -> None: ...
    def end(self, target: str) -> None: ...
    def phase(self, target: str, phase: Phase, state: PhaseState, detail: str = "") -> None: ...
    def progress(self, target: str, phase: Phase, done: int, total: int | None) -> None: ...
    def retry(self, call: str, attempt: int, delay: float, reason: str, *,
              target: str = "") -> None: ...
    def plan(self, target: str, snapshot: Snapshot, plan: Plan) -> None: ...
    def note(self, text: str, *, level: str = "info", target: str = "") -> None: ...
    def waiting(self, target: str, until: datetime | None, remaining: int, total: int,
                now: datetime | None = None) -> None: ...
    def finish(self, results: Sequence[StoreResult]) -> None: ...
    def shown(self, message: str) -> bool: ...
    def for_store(self, target: str) -> StoreReporter: ...


class StoreReporter:
    """One store's reporter: its events go to the underlying reporter with their target."""

    def __init__(self, sink: Reporter, target: str) -> None:
        self.sink = sink
        self.target = target

    def begin(self) -> None:
        """The store's section begins (its checklist, its lines)."""
        self.sink.begin(self.target)

    def end(self) -> None:
        """The store's run is over (its result is known)."""
        self.sink.end(self.target)

    def phase(self, phase: Phase, state: PhaseState, detail: str = "") -> None:
        self.sink.phase(self.target, phase, state, detail)

    def progress(self, phase: Phase, done: int, total: int | None) -> None:
        self.sink.progress(self.target, phase, done, total)

    def retry(self, call: str, attempt: int, delay: float, reason: str) -> None:
        self.sink.retry(call, attempt, delay, reason, target=self.target)

    def plan(self, snapshot: Snapshot, plan: Plan) -> None:
        self.sink.plan(self.target, snapshot, plan)

    def note(self, text: str, *, level: str = "info") -> None:
        self.sink.note(text, level=level, target=self.target)

    def waiting(self, until: datetime | None, remaining: int, total: int,
                now: datetime | None = None) -> None:
        self.sink.waiting(self.target, until, remaining, total, now)


# What a terminal or a log reader would act on rather than show: C0 controls and DEL, C1
# controls (U+0080-U+009F: U+009B is CSI, a one-byte ESC [), and the Unicode controls that
# reorder or break a line: the bidi marks, embeddings, overrides and isolates (a name reading
# "exe.jpg" may be "gpj.exe"), and the line and paragraph separators.
_CONTROL = {
    **{c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]},
    **{c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
                                   *range(0x202A, 0x202F), *range(0x2066, 0x206A)]},
}


def printable(text: str) -> str:
    """Text from AWS (a store name, a tag, an error message) with every control character
    shown escaped, so that nothing can rewrite the operator's terminal or a log line."""
    return text.translate(_CONTROL)


def told_before(told: list[str], text: str) -> list[str] | None:
    """The lines of the message in `told` (printed already) that `text` begins with: the same
    first line (a refusal raised as an error may add where it happened). None: not told."""
    first = text.split("\n", 1)[0]
    for message in told:
        lines = message.split("\n")
        if first.startswith(lines[0]):
            return lines
    return None


def say(told: list[str], text: str, level: str) -> list[str]:
    """A note's lines as printed: `level: first line` (info: no label), the details indented
    under it. An error or a refusal is printed once: told again (the plan showed the refusal,
    then the run stopped on it), only the lines not printed yet (what the run had done)."""
    first, *rest = text.split("\n")
    if level in ("error", "refused"):
        lines = told_before(told, text)
        if lines is not None:
            return [printable(f"  {line}") for line in rest if line not in lines]
        told.append(text)
    if level == "info":
        return [printable(first), *(printable(f"  {line}") for line in rest)]
    return labelled(level, first, rest)


def labelled(label: str, first: str, details: Sequence[str] = ()) -> list[str]:
    """A message as printed: `label: first line`, then each detail line indented under it
    (every line printable)."""
    return [printable(f"{label}: {first}"), *(printable(f"  {line}") for line in details)]


def _compact_lines(view: PlanView, head: list[str]) -> list[str]:
    """A plan that only waits, in a bounded number of lines whatever the number of keys: the
    keys by state, the checks that did not simply pass, the next step (cron mail)."""
    counts = ", ".join(f"{n} {state}" for state, n in view.key_states)
    dates = view.deletion_dates
    first, last = (fmt_time(dates[0]), fmt_time(dates[1])) if dates else ("", "")
    deleting = f", deleting {first}" + (f" .. {last}" if last != first else "") if dates \
        else ""
    lines = [*head, f"{len(view.keys)} key(s) in the store" + (
        f": {counts}{deleting}" if counts else "") + f" ({view.scanned} key(s) in the "
        "account and Region scanned)"]
    lines.extend(f"  {line}" for line in view.undescribable)
    passed = sum(1 for c in view.checks if c.verdict == "pass")
    others = [f"{c.gate} {c.verdict}" for c in view.checks if c.verdict != "pass"]
    lines.append(f"checks: {passed} pass" + (f", {', '.join(others)}" if others else ""))
    if view.next_step is not None:
        more = view.more_steps
        lines.append(f"next: {view.next_step}" + (f" (then {more} more step(s))" if more else ""))
    if view.earliest_gone:
        lines.append(f"earliest the store can be gone: {fmt_time(view.earliest_gone)}")
    lines.extend(f"warning: {w}" for w in view.warnings)
    return lines


def view_lines(view: PlanView, *, compact: bool = False) -> list[str]:
    """The plan as plain text lines; `compact` for a plan that only waits (see
    `_compact_lines`)."""
    store = view.store
    head = [
        *([view.where] if view.where else []),
        f"store {store.id} ({store.name}), matched by {view.matched_by}: "
        f"type {store.type}, connection {store.connection_state}"
        + (f" ({store.connection_error_code})" if store.connection_error_code else ""),
    ]
    if compact and view.refusal is None and view.only_waits:
        return _compact_lines(view, head)
    lines = [
        *head,
        f"{len(view.keys)} key(s) in the store ({view.scanned} key(s) in the "
        "account and Region scanned)",
    ]
    for key in view.keys:
        extra = f" deletes after {fmt_time(key.deletion_date)}" if key.deletion_date else ""
        aliases = f" aliases {', '.join(key.aliases)}" if key.aliases else ""
        external = f" external key {key.external_key_id}" if key.external_key_id else ""
        lines.append(f"  key {key.id} {key.state}{extra}{aliases}{external}")
        lines.extend(f"    {line}" for line in key.evidence)
    lines.extend(f"  {line}" for line in view.undescribable)
    lines.extend(f"check {c.gate} {c.verdict}" + (f": {c.detail}" if c.detail else "")
                 for c in view.checks)
    if view.refusal is not None:  # the first line (what, and the fix), then its details
        first, *details = view.refusal.split("\n")
        lines.extend(labelled("refused", first, details))
        return lines
    lines.append("steps:")
    lines.extend(f"  {index}. {step}" for index, step in enumerate(view.steps, 1))
    if view.earliest_gone:
        lines.append(
            f"earliest the store can be gone: {fmt_time(view.earliest_gone)} "
            "(AWS may delete keys up to 24 h after their DeletionDate)"
        )
    lines.extend(f"warning: {w}" for w in view.warnings)
    return lines


def plan_lines(snapshot: Snapshot, plan: Plan, *, compact: bool = False) -> list[str]:
    """The plan as plain text lines (the plain reporter, the dry run, `show`)."""
    return view_lines(plan_view(snapshot, plan), compact=compact)


class PlainReporter:
    """Timestamped plain lines, for anything that is not a terminal; each line of a store
    begins with its target.

    `plan_stream`: where a dry run's plan goes, as plain lines (it is the result the operator
    asked for: stdout); None: with the progress lines.
    """

    def __init__(self, stream: TextIO, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 plan_stream: TextIO | None = None) -> None:
        self.stream = stream
        self.clock = clock
        self.plan_stream = plan_stream
        self.dry_run = False
        self._last_progress: dict[tuple[str, Phase], float] = {}
        self._last_wait: dict[str, tuple[tuple[int, int], float]] = {}
        self._told: list[str] = []  # refusals and errors printed so far (each only once)

    def for_store(self, target: str) -> StoreReporter:
        return StoreReporter(self, target)

    def shown(self, message: str) -> bool:
        """Whether `message` (or the refusal it begins with) was printed already."""
        return told_before(self._told, message) is not None

    def _tells(self) -> bool:
        """Whether this reporter prints what it is told (--quiet: errors only)."""
        return True

    def _line(self, text: str, target: str = "") -> None:
        stamp = self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        prefix = f"{target}: " if target else ""
        self.stream.write(printable(f"{stamp} {prefix}{text}") + "\n")
        self.stream.flush()

    def start(self, *, command: str, dry_run: bool) -> None:
        self.dry_run = dry_run
        if dry_run:
            self._line("DRY RUN: nothing will be changed")

    def begin(self, target: str) -> None:
        for key in [k for k in self._last_progress if k[0] == target]:
            del self._last_progress[key]

    def end(self, target: str) -> None:
        return None

    def phase(self, target: str, phase: Phase, state: PhaseState, detail: str = "") -> None:
        self._last_progress.pop((target, phase), None)  # progress is timed from its start
        self._line(f"{phase}: {state}" + (f": {detail}" if detail else ""), target)

    def progress(self, target: str, phase: Phase, done: int, total: int | None) -> None:
        # A line when a phase has run for 30 seconds, then every 30 seconds: a log shows a long
        # scan is alive, and a short run (cron) prints none (its "done" line says the count).
        now = self.clock().timestamp()
        last = self._last_progress.setdefault((target, phase), now)
        if now - last >= 30:
            self._last_progress[(target, phase)] = now
            self._line(f"{phase}: {done}/{total if total is not None else '?'}", target)

    def retry(self, call: str, attempt: int, delay: float, reason: str, *,
              target: str = "") -> None:
        self._line(f"retry: {call} attempt {attempt} failed ({reason}); next try in {delay:.1f}s",
                   target)

    def plan(self, target: str, snapshot: Snapshot, plan: Plan) -> None:
        # A run that only waits (cron during the waiting period) lists no key: its output
        # stays the same length for 3 keys or 3,000. A dry run is for review: every key.
        lines = plan_lines(snapshot, plan, compact=not self.dry_run)
        if self.plan_stream is not None:
            self.plan_stream.write("".join(printable(line) + "\n" for line in lines))
            self.plan_stream.flush()
        elif self._tells():
            for line in lines:
                self._line(line, target)
        else:
            return
        if plan.refusal:
            self._told.append(plan.refusal.message)

    def note(self, text: str, *, level: str = "info", target: str = "") -> None:
        for line in say(self._told, text, level):
            self._line(line, target)

    def waiting(self, target: str, until: datetime | None, remaining: int, total: int,
                now: datetime | None = None) -> None:
        # A line when the count changes, else at most every 10 minutes: --wait can run weeks.
        stamp = self.clock().timestamp()
        last = self._last_wait.get(target, ((-1, -1), 0.0))
        if (remaining, total) != last[0] or stamp - last[1] >= 600:
            self._last_wait[target] = ((remaining, total), stamp)
            self._line(f"wait: {remaining}/{total} key(s) still pending; latest deletion "
                       f"after {fmt_time(until)}", target)

    def finish(self, results: Sequence[StoreResult]) -> None:
        """The CLI prints the result lines themselves (stdout, or stderr in JSON mode)."""


class QuietReporter(PlainReporter):
    """--quiet: errors only (the CLI still prints the final result line, and a dry run's plan
    still goes to its `plan_stream`)."""

    def _line(self, text: str, target: str = "") -> None:
        return None

    def _tells(self) -> bool:
        return False

    def note(self, text: str, *, level: str = "info", target: str = "") -> None:
        if level in ("error", "refused"):
            for line in say(self._told, text, level):
                super()._line(line, target)


def summary_text(view: RunSummary, *, shown: Callable[[str], bool] | None = None
                 ) -> list[str]:
    """The result of an invocation, one line per store (plus what `report` found). An error
    the reporter already printed (`shown`) is not repeated: each error is printed once."""
    lines = [view.where] if view.where and view.stores else []
    for s in view.stores:
        # `status` answers where each store stands: its phase, whatever the status.
        phase = s.phase or ""
        if phase.startswith(f"{s.status} ("):  # "refused (REASON)": the status is said once
            phase = phase.removeprefix(f"{s.status} (").removesuffix(")")
        where_now = f" ({phase})" if phase and phase != str(s.status) and (
            s.status is Status.PENDING or view.command == "status") else ""
        text = f"{s.label}: {s.status}{where_now}, {s.keys_total} key(s) in the store, " \
            f"{s.changes}"
        if s.resume_after and s.status is Status.PLANNED:
            text += f", gone at the earliest {fmt_time(s.resume_after)}"
        elif s.resume_after:
            text += f", run again after {fmt_time(s.resume_after)}"
        if s.error and not (shown and shown(s.error)):
            text += f"; {s.error}"
        if s.repeated:
            text += " (no change since the last run)"
        lines.append(printable(text))
        if not s.repeated:  # the waivers were said when the phase began
            lines.extend(printable(f"  waived: {w}") for w in s.waivers)
        lines.extend(printable(f"  {line}") for line in s.leftovers or ())
    return lines


def summary_lines(results: Sequence[StoreResult], identity: Identity | None = None, *,
                  command: str = "", shown: Callable[[str], bool] | None = None
                  ) -> list[str]:
    """`summary_text` of these results."""
    return summary_text(run_summary(results, identity, command=command), shown=shown)
