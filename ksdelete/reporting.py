"""How a run is shown. The pipeline talks to a Reporter; it never prints.

- PlainReporter: timestamped lines on stderr, no ANSI codes (cron, CI, pipes).
- RichReporter (ksdelete.live): the live checklist view on a terminal.
- QuietReporter: only errors.
The final result line and the JSON document are written by the CLI from StoreResult.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, TextIO

from ksdelete.models import Identity, Key, Plan, Snapshot, Status, StepKind, StoreResult


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
}


class PhaseState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    PENDING = "pending"
    FAILED = "failed"


class Reporter(Protocol):
    def start(self, *, command: str, dry_run: bool) -> None: ...
    def store(self, ref: str) -> None: ...
    def phase(self, phase: Phase, state: PhaseState, detail: str = "") -> None: ...
    def progress(self, phase: Phase, done: int, total: int | None) -> None: ...
    def retry(self, call: str, attempt: int, delay: float, reason: str) -> None: ...
    def plan(self, snapshot: Snapshot, plan: Plan) -> None: ...
    def note(self, text: str, *, level: str = "info") -> None: ...
    def waiting(self, until: datetime | None, remaining: int, total: int,
                now: datetime | None = None) -> None: ...
    def finish(self, results: Sequence[StoreResult]) -> None: ...


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


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


def where(identity: Identity) -> str:
    """Who and where, as the plan, the prompt and the summary say it."""
    return f"account {identity.account}, Region {identity.region}, as {identity.caller_arn}"


def describe_step(kind: StepKind, key_count: int, detail: str) -> str:
    text = {
        StepKind.CONNECT_STORE: "ConnectCustomKeyStore",
        StepKind.AWAIT_CONNECTED: "wait until the store is CONNECTED",
        StepKind.DISABLE_KEYS: f"DisableKey for {key_count} key(s) (the soak)",
        StepKind.AWAIT_SOAK: "wait out the soak, watching CloudTrail for attempts to use them",
        StepKind.SCHEDULE_KEY_DELETION: f"ScheduleKeyDeletion for {key_count} key(s)",
        StepKind.AWAIT_KEYS_DELETED: f"wait until all {key_count} key(s) are really deleted",
        StepKind.DISCONNECT_STORE: "DisconnectCustomKeyStore",
        StepKind.AWAIT_DISCONNECTED: "wait until the store is DISCONNECTED",
        StepKind.DELETE_STORE: "re-scan the store, then DeleteCustomKeyStore",
        StepKind.VERIFY_DELETED: "verify DescribeCustomKeyStores says CustomKeyStoreNotFound",
        StepKind.CANCEL_KEY_DELETION: f"CancelKeyDeletion for {key_count} key(s)",
    }[kind]
    return f"{text} ({detail})" if detail else text


# The steps that only wait: a plan that starts with one of them changes nothing now.
_WAITS = frozenset({StepKind.AWAIT_KEYS_DELETED, StepKind.AWAIT_SOAK,
                    StepKind.AWAIT_CONNECTED, StepKind.AWAIT_DISCONNECTED})


def only_waits(plan: Plan) -> bool:
    """Whether the plan changes nothing now (its first step waits): then it is shown compact.
    A plan that schedules, disables, cancels, connects, disconnects or deletes the store is
    listed in full (each key, every step)."""
    return not plan.steps or plan.steps[0].kind in _WAITS


def _compact_plan_lines(snapshot: Snapshot, plan: Plan, head: list[str]) -> list[str]:
    """A plan that only waits, in a bounded number of lines whatever the number of keys: the
    keys by state, the checks that did not simply pass, the next step (cron mail)."""
    states: dict[str, int] = {}
    for key in snapshot.keys:
        states[key.state] = states.get(key.state, 0) + 1
    dates = [k.deletion_date for k in snapshot.keys if k.deletion_date]
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    first, last = (fmt_time(min(dates)), fmt_time(max(dates))) if dates else ("", "")
    deleting = f", deleting {first}" + (f" .. {last}" if last != first else "") if dates \
        else ""
    lines = [*head, f"{len(snapshot.keys)} key(s) in the store" + (
        f": {counts}{deleting}" if counts else "") + f" ({snapshot.scanned} key(s) in the "
        "account and Region scanned)"]
    lines.extend(f"  key {bad.id} cannot be described: {bad.error_code}"
                 for bad in snapshot.undescribable)
    verdicts = [v for v in plan.verdicts if v.verdict != "n/a"]
    passed = sum(1 for v in verdicts if v.verdict == "pass")
    others = [f"{v.gate} {v.verdict}" for v in verdicts if v.verdict != "pass"]
    lines.append(f"checks: {passed} pass" + (f", {', '.join(others)}" if others else ""))
    if plan.steps:
        step = plan.steps[0]
        more = len(plan.steps) - 1
        lines.append(f"next: {describe_step(step.kind, len(step.key_ids), step.detail)}"
                     + (f" (then {more} more step(s))" if more else ""))
    if plan.earliest_gone:
        lines.append(f"earliest the store can be gone: {fmt_time(plan.earliest_gone)}")
    lines.extend(f"warning: {w}" for w in plan.warnings)
    return lines


def plan_lines(snapshot: Snapshot, plan: Plan, *, window_days: int,
               compact: bool = False) -> list[str]:
    """The plan as plain text lines (used by the plain reporter and the dry run); `compact`
    for a plan that only waits (see `_compact_plan_lines`)."""
    store = snapshot.store
    head = [
        *([where(snapshot.identity)] if snapshot.identity else []),
        f"store {store.id} ({store.name}), matched by {snapshot.matched_by}: "
        f"type {store.type}, connection {store.connection_state}"
        + (f" ({store.connection_error_code})" if store.connection_error_code else ""),
    ]
    if compact and not plan.refusal and only_waits(plan):
        return _compact_plan_lines(snapshot, plan, head)
    lines = [
        *head,
        f"{len(snapshot.keys)} key(s) in the store ({snapshot.scanned} key(s) in the "
        "account and Region scanned)",
    ]
    for key in snapshot.keys:
        extra = f" deletes after {fmt_time(key.deletion_date)}" if key.deletion_date else ""
        aliases = f" aliases {', '.join(key.aliases)}" if key.aliases else ""
        external = f" external key {key.external_key_id}" if key.external_key_id else ""
        lines.append(f"  key {key.id} {key.state}{extra}{aliases}{external}")
        lines.extend(f"    {line}" for line in evidence_lines(key))
    lines.extend(
        f"  key {bad.id} cannot be described: {bad.error_code}" for bad in snapshot.undescribable
    )
    lines.extend(f"check {v.gate} {v.verdict}" + (f": {v.detail}" if v.detail else "")
                 for v in plan.verdicts if v.verdict != "n/a")
    if plan.refusal:
        lines.append(f"refused: {plan.refusal.message}")
        return lines
    lines.append("steps:")
    for index, step in enumerate(plan.steps, 1):
        detail = step.detail
        if step.window_days is not None:
            detail = f"{step.window_days}-day window" + (f", {detail}" if detail else "")
        lines.append(f"  {index}. {describe_step(step.kind, len(step.key_ids), detail)}")
    if plan.earliest_gone:
        lines.append(
            f"earliest the store can be gone: {fmt_time(plan.earliest_gone)} "
            "(AWS may delete keys up to 24 h after their DeletionDate)"
        )
    lines.extend(f"warning: {w}" for w in plan.warnings)
    return lines


def evidence_lines(key: Key) -> list[str]:
    """What the preflight gates saw of one key: last use, grants, tags."""
    lines: list[str] = []
    usage = key.usage
    if usage is not None:
        if usage.error:
            lines.append(f"last use: unknown ({usage.error})")
        elif usage.last_used:
            event = f", CloudTrail event {usage.event_id}" if usage.event_id else ""
            lines.append(f"last use: {usage.operation} at {fmt_time(usage.last_used)}{event}")
        else:
            since = fmt_time(usage.tracking_start) if usage.tracking_start else "-"
            older = (key.creation_date is not None and usage.tracking_start is not None
                     and key.creation_date < usage.tracking_start)
            lines.append(f"last use: none recorded since {since}" + (
                f" (the key is older, created {fmt_time(key.creation_date)}: earlier use "
                "unknown, see CloudTrail)" if older else ""))
    for grant in key.grants or ():
        who = grant.grantee or grant.retiring
        kind = "AWS service " if grant.service else ""
        lines.append(f"grant {grant.grant_id[:12]} to {kind}{who}: "
                     f"{', '.join(grant.operations) or '-'}")
    own = [f"{k}={v}" for k, v in key.tags or () if not k.startswith("ksdelete:")]
    if own:
        lines.append(f"tags: {', '.join(own)}")
    return lines


class PlainReporter:
    """Timestamped plain lines, for anything that is not a terminal.

    `plan_stream`: where a dry run's plan goes, as plain lines (it is the result the operator
    asked for: stdout); None: with the progress lines.
    """

    def __init__(self, stream: TextIO, *, window_days: int = 30,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 plan_stream: TextIO | None = None) -> None:
        self.stream = stream
        self.window_days = window_days
        self.clock = clock
        self.plan_stream = plan_stream
        self._ref = ""
        self.dry_run = False
        self._last_progress: dict[Phase, float] = {}
        self._last_wait: tuple[tuple[int, int], float] = ((-1, -1), 0.0)
        self._told: list[str] = []  # refusals and errors printed so far (each only once)

    def shown(self, message: str) -> bool:
        """Whether `message` (or the refusal it begins with) was printed already."""
        return any(message.startswith(told) for told in self._told)

    def _tells(self) -> bool:
        """Whether this reporter prints what it is told (--quiet: errors only)."""
        return True

    def _line(self, text: str) -> None:
        stamp = self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        prefix = f"{self._ref}: " if self._ref else ""
        self.stream.write(printable(f"{stamp} {prefix}{text}") + "\n")
        self.stream.flush()

    def start(self, *, command: str, dry_run: bool) -> None:
        self.dry_run = dry_run
        if dry_run:
            self._line("DRY RUN: nothing will be changed")

    def store(self, ref: str) -> None:
        self._ref = ref
        self._last_progress.clear()

    def phase(self, phase: Phase, state: PhaseState, detail: str = "") -> None:
        self._last_progress.pop(phase, None)  # progress is timed from the phase's start
        self._line(f"{phase}: {state}" + (f": {detail}" if detail else ""))

    def progress(self, phase: Phase, done: int, total: int | None) -> None:
        # A line when a phase has run for 30 seconds, then every 30 seconds: a log shows a long
        # scan is alive, and a short run (cron) prints none (its "done" line says the count).
        now = self.clock().timestamp()
        last = self._last_progress.setdefault(phase, now)
        if now - last >= 30:
            self._last_progress[phase] = now
            self._line(f"{phase}: {done}/{total if total is not None else '?'}")

    def retry(self, call: str, attempt: int, delay: float, reason: str) -> None:
        self._line(f"retry: {call} attempt {attempt} failed ({reason}); next try in {delay:.1f}s")

    def plan(self, snapshot: Snapshot, plan: Plan) -> None:
        # A run that only waits (cron during the waiting period) lists no key: its output
        # stays the same length for 3 keys or 3,000. A dry run is for review: every key.
        lines = plan_lines(snapshot, plan, window_days=self.window_days,
                           compact=not self.dry_run)
        if self.plan_stream is not None:
            self.plan_stream.write("".join(printable(line) + "\n" for line in lines))
            self.plan_stream.flush()
        elif self._tells():
            for line in lines:
                self._line(line)
        else:
            return
        if plan.refusal:
            self._told.append(plan.refusal.message)

    def note(self, text: str, *, level: str = "info") -> None:
        if level == "error":
            if self.shown(text):
                return
            self._told.append(text)
        self._line(text if level == "info" else f"{level}: {text}")

    def waiting(self, until: datetime | None, remaining: int, total: int,
                now: datetime | None = None) -> None:
        # A line when the count changes, else at most every 10 minutes: --wait can run weeks.
        stamp = self.clock().timestamp()
        if (remaining, total) != self._last_wait[0] or stamp - self._last_wait[1] >= 600:
            self._last_wait = ((remaining, total), stamp)
            self._line(f"wait: {remaining}/{total} key(s) still pending; latest deletion "
                       f"after {fmt_time(until)}")

    def finish(self, results: Sequence[StoreResult]) -> None:
        # The CLI prints the result lines themselves (stdout, or stderr in JSON mode).
        self._ref = ""


class QuietReporter(PlainReporter):
    """--quiet: errors only (the CLI still prints the final result line, and a dry run's plan
    still goes to its `plan_stream`)."""

    def _line(self, text: str) -> None:
        return None

    def _tells(self) -> bool:
        return False

    def note(self, text: str, *, level: str = "info") -> None:
        if level == "error" and not self.shown(text):
            self._told.append(text)
            super()._line(f"error: {text}")


# What a person counts as a change (ksdelete's tag marks are bookkeeping, not changes).
_CHANGES: tuple[tuple[str, str], ...] = (
    ("CancelKeyDeletion", "key(s) recovered"), ("EnableKey", "key(s) enabled"),
    ("DisableKey", "key(s) disabled"), ("ScheduleKeyDeletion", "key(s) scheduled"),
    ("ConnectCustomKeyStore", "store connected"),
    ("DisconnectCustomKeyStore", "store disconnected"),
    ("DeleteCustomKeyStore", "store deleted"),
)


def changes(result: StoreResult) -> tuple[int, str]:
    """The changes a run made, counted the way a person counts them: keys scheduled (not API
    calls: the tag written before each is not a change of its own), the store disconnected;
    the count and the words ("3 key(s) scheduled, store disconnected", or "no change")."""
    done: dict[str, set[str | None]] = {}
    for action in result.actions:
        if action.outcome == "ok":
            done.setdefault(action.operation, set()).add(action.key_id)
    parts: list[str] = []
    count = 0
    for operation, words in _CHANGES:
        if operation in done:
            n = len(done[operation]) if words.startswith("key") else 1
            count += n
            parts.append(f"{n} {words}" if words.startswith("key") else words)
    return count, ", ".join(parts) or "no change"


def summary_lines(results: Sequence[StoreResult], identity: Identity | None = None, *,
                  command: str = "", shown: Callable[[str], bool] | None = None
                  ) -> list[str]:
    """The result of an invocation, one line per store (plus what `report` found). An error
    the reporter already printed (`shown`) is not repeated: each error is printed once."""
    lines = [where(identity)] if identity and results else []
    for r in results:
        store = r.store.id if r.store else r.ref
        # `status` answers where each store stands: its phase, whatever the status.
        where_now = f" ({r.phase})" if r.phase and r.phase != str(r.status) and (
            r.status is Status.PENDING or command == "status") else ""
        text = f"{store}: {r.status}{where_now}, {len(r.keys)} key(s) in the store, " \
            f"{changes(r)[1]}"
        if r.resume_after and r.status is Status.PLANNED:
            text += f", gone at the earliest {fmt_time(r.resume_after)}"
        elif r.resume_after:
            text += f", run again after {fmt_time(r.resume_after)}"
        if r.error and not (shown and shown(r.error["message"])):
            text += f"; {r.error['message']}"
        if r.repeated:
            text += " (no change since the last run)"
        lines.append(printable(text))
        if not r.repeated:  # the waivers were said when the phase began
            lines.extend(printable(f"  waived: {w}") for w in r.waivers)
        if command == "report" and r.leftovers is not None:
            from ksdelete.leftovers import lines as leftover_lines

            lines.extend(printable(f"  {line}") for line in leftover_lines(r.leftovers))
    return lines
