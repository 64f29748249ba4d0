"""What a fleet run shows: its one JSON document (`fleet_document`), its plain lines (one
prefix per account, Region and store; `FleetPlainReporter`) and its closing summary
(`summary_lines`). Pure: no rich (the live table is `ksdelete.fleet.live`), no click, no boto3.

Both fleet reporters (plain here, live in `ksdelete.fleet.live`) answer the same calls:
`start(command=, dry_run=, spec=)`, `for_scope(account_id, account_name, region)` (a
`ksdelete.reporting.Reporter` for the stores of one account and Region, whose events may come
from its own thread), `target_done(TargetResult)`, `note(text, level=)` and `finish(run)`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ksdelete import __version__
from ksdelete.models import Identity, Plan, Snapshot, Status, Step, StepKind, StoreResult
from ksdelete.output import SCHEMA_VERSION, store_json
from ksdelete.phase import PhaseName, StorePhase, phase_name
from ksdelete.reporting import (
    PlainReporter,
    Reporter,
    labelled,
    plan_lines,
    printable,
    say,
    told_before,
)
from ksdelete.view import fmt_time

if TYPE_CHECKING:
    from ksdelete.fleet.model import FleetRun, FleetSpec, StoreTarget, TargetResult

__all__ = ["FleetPlainReporter", "FleetReporter", "counts", "fleet_document", "keys_scheduled",
           "next_step", "next_step_waits", "phase", "plan_next",
           "scope_label", "summary_line", "summary_lines", "target_error", "totals_line"]


# ---- what a target comes to -----------------------------------------------------------------

def phase(t: TargetResult) -> str | None:
    """Where the target's store stands, as its summary says it ("keys-pending 3/3, earliest
    deletion ..."); None when no store was looked at (its role could not be assumed, or the
    rollout halted before it started)."""
    result = t.result
    return str(result.phase) if result is not None and result.phase else None


def _step_words(step: Step) -> str:
    """A plan step in a few words (a table cell)."""
    n = len(step.key_ids)
    return {
        StepKind.CONNECT_STORE: "connect the store",
        StepKind.AWAIT_CONNECTED: "wait until the store is connected",
        StepKind.DISABLE_KEYS: f"disable {n} key(s) (the soak)",
        StepKind.AWAIT_SOAK: "wait out the soak",
        StepKind.SCHEDULE_KEY_DELETION: f"schedule {n} key(s)",
        StepKind.AWAIT_KEYS_DELETED: f"wait for {n} key(s) to be deleted",
        StepKind.DISCONNECT_STORE: "disconnect and delete",
        StepKind.AWAIT_DISCONNECTED: "wait for the disconnect, then delete",
        StepKind.DELETE_STORE: "delete the store",
        StepKind.VERIFY_DELETED: "verify the store is gone",
        StepKind.CANCEL_KEY_DELETION: f"cancel the deletion of {n} key(s)",
        StepKind.MARK_CANCELLED: "mark the cancelled keys",
        StepKind.ENABLE_KEYS: f"enable {n} key(s)" if n else "enable the keys",
    }[step.kind]


def plan_next(plan: Plan) -> str | None:
    """What applying `plan` would do first, in a few words (None: nothing)."""
    return _step_words(plan.steps[0]) if plan.steps else None


_DONE = {Status.DELETED: "none (deleted)", Status.CANCELLED: "none (cancelled)",
         Status.MISSING: "none (the store does not exist)",
         Status.REFUSED: "fix and run again", Status.ERROR: "fix and run again",
         Status.SKIPPED: "run again", Status.INTERRUPTED: "run again",
         Status.TERMINATED: "run again"}


def next_step_waits(t: TargetResult) -> tuple[str, bool]:
    """The next step in a few words, and whether it is a wait until a time it names."""
    if t.status in _DONE:
        return _DONE[t.status], False
    result = t.result
    if result is None:
        return "run again", False
    if t.status is Status.PLANNED and result.plan is not None and result.plan.steps:
        return _step_words(result.plan.steps[0]), False
    value = result.phase or ""
    name = phase_name(value)
    unscheduled = sum(1 for k in result.keys if not k.pending)
    if name == PhaseName.SOAKING:
        until = result.resume_after or (value.until if isinstance(value, StorePhase) else None)
        return (f"wait out the soak until {fmt_time(until)}", True) if until \
            else ("wait out the soak", False)
    if name == PhaseName.KEYS_NOT_SCHEDULED:
        return f"schedule {unscheduled} key(s)", False
    if name == PhaseName.KEYS_PENDING:
        return (f"wait until {fmt_time(result.resume_after)}", True) if result.resume_after \
            else ("wait for the keys to be deleted", False)
    by_phase = {PhaseName.READY_TO_DISCONNECT: "disconnect and delete",
                PhaseName.DISCONNECTING: "wait for the disconnect, then delete",
                PhaseName.READY_TO_DELETE: "delete the store"}
    if name in by_phase:
        return by_phase[PhaseName(name)], False
    words = plan_next(result.plan) if result.plan is not None else None
    return words or "run again", False


def next_step(t: TargetResult) -> str:
    """What the target needs next, in a few words: "wait until 2026-12-10 12:00 UTC",
    "disconnect and delete", "schedule 3 key(s)" (what applying a dry run's plan would do
    first), "none (deleted)", "fix and run again", "run again"."""
    return next_step_waits(t)[0]


def target_error(t: TargetResult) -> dict[str, Any] | None:
    """What stopped the target: the fleet's own error (its role, a guard, the halt), else its
    store's."""
    return t.error or (t.result.error if t.result is not None else None)


def _message(t: TargetResult) -> str | None:
    error = target_error(t)
    return str(error["message"]) if error else None


def keys_scheduled(t: TargetResult) -> int:
    """The keys this run scheduled for deletion in the target (ScheduleKeyDeletion with
    outcome ok, each key once)."""
    if t.result is None:
        return 0
    return len({a.key_id for a in t.result.actions
                if a.operation == "ScheduleKeyDeletion" and a.outcome == "ok"})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _resume_after(t: TargetResult) -> datetime | None:
    return t.result.resume_after if t.result is not None else None


# ---- the JSON document ------------------------------------------------------------------------

def _target_json(t: TargetResult) -> dict[str, Any]:
    target = t.target
    store = None
    if t.result is not None:
        store = store_json(t.result, Identity(target.account_id, target.region,
                                              t.assumed_role_arn or ""))
    return {
        "account_id": target.account_id,
        "account_name": t.account_name,
        "region": target.region,
        "store_id": target.store_id,
        "assumed_role_arn": t.assumed_role_arn,
        "status": t.status.value,
        "exit_code": int(t.exit_code),
        "duration_s": round(t.duration_s, 3),
        "resume_after": _iso(_resume_after(t)),
        "phase": phase(t),
        "next_step": next_step(t),
        "store": store,
        "error": target_error(t),
    }


def counts(run: FleetRun) -> dict[str, int]:
    """Targets by status, every status present (zero included), in the order of `Status`."""
    by_status = Counter(t.status for t in run.targets)
    return {status.value: by_status.get(status, 0) for status in Status}


def fleet_document(run: FleetRun) -> dict[str, Any]:
    """The one object `--output json` prints for a fleet command (fleet plan, apply, status,
    cancel; `apply` of a saved fleet plan): the run, a summary, one entry per target in the
    file's order (docs/ksdelete-output.schema.json, `kind: fleet`)."""
    spec = run.spec
    return {
        "schema_version": SCHEMA_VERSION,
        "ksdelete_version": __version__,
        "kind": "fleet",
        "command": run.command,
        "run_id": run.run_id,
        "dry_run": run.dry_run,
        "exit_code": int(run.exit_code),
        "plan_id": run.plan_id,
        "fleet": {"name": spec.name, "file": str(spec.path) if spec.path else None,
                  "sha256": spec.sha256},
        "hub": {"arn": run.hub_arn},
        "halted": run.halted,
        "halt_reason": run.halt_reason,
        "summary": {"targets": len(run.targets), **counts(run),
                    "keys_scheduled": sum(keys_scheduled(t) for t in run.targets)},
        "targets": [_target_json(t) for t in run.targets],
    }


# ---- the summary lines ------------------------------------------------------------------------

def summary_line(t: TargetResult) -> str:
    """`[account/Region/store] status: phase or what stopped it; next: step, after time`."""
    status = t.status.value
    said = _message(t) or phase(t)
    text = f"[{t.target.label}] {status}" + (f": {said}" if said and said != status else "")
    step, waits = next_step_waits(t)
    text += f"; next: {step}"
    resume = _resume_after(t)
    if resume is not None and t.status is Status.PLANNED:
        text += f", gone at the earliest {fmt_time(resume)}"
    elif resume is not None and not waits and t.status is Status.PENDING:
        text += f", after {fmt_time(resume)}"
    return printable(text)


def totals_line(run: FleetRun) -> str:
    """The fleet's last line: its targets by status, the keys scheduled, the halt, the exit
    code."""
    by_status = ", ".join(f"{n} {status}" for status, n in counts(run).items() if n)
    text = f"fleet {run.spec.name}: {len(run.targets)} target(s)" + (
        f": {by_status}" if by_status else "")
    text += f"; {sum(keys_scheduled(t) for t in run.targets)} key(s) scheduled"
    if run.halted:
        text += f"; halted: {run.halt_reason}" if run.halt_reason else "; halted"
    return printable(f"{text}; exit {int(run.exit_code)}")


def summary_lines(run: FleetRun) -> list[str]:
    """The end of a fleet run: one line per target, then the counts and the exit code."""
    return [*(summary_line(t) for t in run.targets), totals_line(run)]


# ---- plain lines ------------------------------------------------------------------------------

def scope_label(account_id: str, region: str, target: str = "") -> str:
    """`account/Region/store` (`account/Region` for an event of no store)."""
    return f"{account_id}/{region}/{target}" if target else f"{account_id}/{region}"


class _Writer:
    """One stream shared by every scope: one lock, so that lines of several threads never
    interleave, and the lines of one message stay together."""

    def __init__(self, stream: TextIO, clock: Callable[[], datetime]) -> None:
        self.stream = stream
        self.clock = clock
        self.lock = threading.RLock()

    def line(self, text: str, label: str = "") -> None:
        stamp = self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        prefix = f"[{label}] " if label else ""
        with self.lock:
            self.stream.write(printable(f"{stamp} {prefix}{text}") + "\n")
            self.stream.flush()

    def block(self, stream: TextIO, lines: Sequence[str]) -> None:
        """Lines written in one piece (a plan on stdout)."""
        with self.lock:
            stream.write("".join(printable(line) + "\n" for line in lines))
            stream.flush()


class _ScopePlainReporter(PlainReporter):
    """The Reporter of one account and Region: PlainReporter's lines, each prefixed
    `[account/Region/store]` and written under the fleet's lock. Refusals and errors are told
    once per store (two stores may be refused for the same reason)."""

    def __init__(self, writer: _Writer, account_id: str, region: str, *, quiet: bool,
                 plan_stream: TextIO | None) -> None:
        super().__init__(writer.stream, clock=writer.clock, plan_stream=plan_stream)
        self.writer = writer
        self.account_id, self.region = account_id, region
        self.quiet = quiet
        self._told_by: dict[str, list[str]] = {}

    def _tells(self) -> bool:
        return not self.quiet

    def _emit(self, text: str, target: str = "") -> None:
        self.writer.line(text, scope_label(self.account_id, self.region, target))

    def _line(self, text: str, target: str = "") -> None:
        if not self.quiet:
            self._emit(text, target)

    def told(self, target: str) -> list[str]:
        return self._told_by.setdefault(target, [])

    def shown(self, message: str) -> bool:
        return any(told_before(told, message) is not None for told in self._told_by.values())

    def start(self, *, command: str, dry_run: bool) -> None:
        self.dry_run = dry_run  # the fleet says DRY RUN once, not each scope

    def note(self, text: str, *, level: str = "info", target: str = "") -> None:
        if self.quiet and level not in ("error", "refused"):
            return
        with self.writer.lock:
            for line in say(self.told(target), text, level):
                self._emit(line, target)

    def plan(self, target: str, snapshot: Snapshot, plan: Plan) -> None:
        lines = plan_lines(snapshot, plan, compact=not self.dry_run)
        if self.plan_stream is not None:
            label = scope_label(self.account_id, self.region, target)
            self.writer.block(self.plan_stream, [f"[{label}] {line}" for line in lines])
        elif self.quiet:
            return
        else:
            with self.writer.lock:
                for line in lines:
                    self._emit(line, target)
        if plan.refusal:
            self.told(target).append(plan.refusal.message)

    def finish(self, results: Sequence[StoreResult]) -> None:
        """The fleet says its summary once, at its end (`summary_lines`)."""


class FleetReporter(Protocol):
    """What the fleet runner reports to: the plain lines or the live table."""

    shows_summary: bool

    def start(self, *, command: str, dry_run: bool, spec: FleetSpec | None = None) -> None: ...
    def for_scope(self, account_id: str, account_name: str, region: str) -> Reporter: ...
    def target_done(self, t: TargetResult) -> None: ...
    def note(self, text: str, *, level: str = "info") -> None: ...
    def finish(self, run: FleetRun | None = None) -> None: ...


class FleetPlainReporter:
    """Plain timestamped lines for a fleet (off a terminal: cron mail, CI, a pipe), each
    prefixed `[account/Region/store]`. Thread-safe: every account's thread writes through one
    lock. `quiet`: errors and refusals only. `plan_stream`: where a dry run's plans go (stdout),
    each line prefixed too."""

    shows_summary = False  # the CLI prints summary_lines(run) itself

    def __init__(self, stream: TextIO, *, quiet: bool = False,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 plan_stream: TextIO | None = None) -> None:
        self.writer = _Writer(stream, clock)
        self.quiet = quiet
        self.plan_stream = plan_stream
        self.dry_run = False
        self._scopes: dict[tuple[str, str], _ScopePlainReporter] = {}
        self._said: set[tuple[str, str, str]] = set()  # targets whose target_done was said

    def start(self, *, command: str, dry_run: bool, spec: FleetSpec | None = None) -> None:
        with self.writer.lock:
            self.dry_run = dry_run
            for scope in self._scopes.values():
                scope.dry_run = dry_run
        if dry_run and not self.quiet:
            self.writer.line("DRY RUN: nothing will be changed")

    def for_scope(self, account_id: str, account_name: str, region: str) -> Reporter:
        return self._scope(account_id, region)

    def _scope(self, account_id: str, region: str) -> _ScopePlainReporter:
        with self.writer.lock:
            key = (account_id, region)
            if key not in self._scopes:
                self._scopes[key] = _ScopePlainReporter(
                    self.writer, account_id, region, quiet=self.quiet,
                    plan_stream=self.plan_stream)
                self._scopes[key].dry_run = self.dry_run  # a dry run's plans in full
            return self._scopes[key]

    def target_done(self, t: TargetResult) -> None:
        """What stopped a target, if its run did not say it (its role, a guard, the halt):
        said once, under the target's label."""
        target: StoreTarget = t.target
        if t.error is None:
            return
        scope = self._scope(target.account_id, target.region)
        message = str(t.error["message"])
        with self.writer.lock:
            if target.key in self._said or scope.shown(message):
                return
            self._said.add(target.key)
        scope.note(message, level=t.status.value, target=target.store_id)

    def note(self, text: str, *, level: str = "info") -> None:
        """A line about the whole fleet (the halt)."""
        if self.quiet and level not in ("error", "refused"):
            return
        first, *rest = text.split("\n")
        lines = labelled(level, first, rest) if level != "info" else [first, *rest]
        with self.writer.lock:
            for line in lines:
                self.writer.line(line)

    def finish(self, run: FleetRun | None = None) -> None:
        """Nothing to stop; the CLI prints `summary_lines(run)`."""
