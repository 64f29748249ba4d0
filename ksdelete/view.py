"""The view model: what a plan and a run's result say, as data, built by pure functions from
Snapshot, Plan and StoreResult. The plain lines, the live view (rich) and the JSON document all
render these, so that they cannot disagree on what they show.

Text from AWS is kept as it came: each renderer escapes it (`printable`) where it writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ksdelete.models import Identity, Key, KeyStore, Plan, Snapshot, Status, StepKind, StoreResult


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


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
        StepKind.MARK_CANCELLED: "TagResource ksdelete:cancelled on each key it cancels",
        StepKind.ENABLE_KEYS: f"EnableKey for {key_count} key(s)" if key_count
        else "EnableKey for the keys --enable restores",
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


# ---- the plan -----------------------------------------------------------------------------

@dataclass(frozen=True)
class StoreView:
    """The store as the plan's head and the JSON name it."""

    id: str
    name: str
    type: str
    connection_state: str
    connection_error_code: str | None


@dataclass(frozen=True)
class KeyView:
    id: str
    state: str
    pending: bool
    deletion_date: datetime | None
    aliases: tuple[str, ...]
    external_key_id: str | None
    evidence: tuple[str, ...]  # what the gates saw (evidence_lines)


@dataclass(frozen=True)
class CheckView:
    gate: str
    verdict: str  # "pass", "refused", "waived" (never "n/a": those are not shown)
    detail: str


@dataclass(frozen=True)
class PlanView:
    """A plan as a person reviews it: the store, its keys, the checks, the steps."""

    store: StoreView
    matched_by: str
    where: str | None  # account, Region and caller (None: not known)
    keys: tuple[KeyView, ...]
    scanned: int
    undescribable: tuple[str, ...]  # "key ID cannot be described: CODE"
    checks: tuple[CheckView, ...]
    refusal: str | None
    steps: tuple[str, ...]  # each step described, with its window
    next_step: str | None  # the first step, as a run that only waits names it
    more_steps: int  # steps after the first
    only_waits: bool
    earliest_gone: datetime | None
    warnings: tuple[str, ...]

    @property
    def key_states(self) -> tuple[tuple[str, int], ...]:
        """How many keys are in each state, by state."""
        states: dict[str, int] = {}
        for key in self.keys:
            states[key.state] = states.get(key.state, 0) + 1
        return tuple(sorted(states.items()))

    @property
    def deletion_dates(self) -> tuple[datetime, datetime] | None:
        """The first and the last deletion date of the store's keys (None: none pending)."""
        dates = [k.deletion_date for k in self.keys if k.deletion_date]
        return (min(dates), max(dates)) if dates else None


def store_view(store: KeyStore) -> StoreView:
    return StoreView(store.id, store.name, str(store.type), str(store.connection_state),
                     store.connection_error_code)


def key_view(key: Key) -> KeyView:
    return KeyView(key.id, key.state, key.pending, key.deletion_date, key.aliases,
                   key.external_key_id, tuple(evidence_lines(key)))


def plan_view(snapshot: Snapshot, plan: Plan) -> PlanView:
    steps: list[str] = []
    for step in plan.steps:
        detail = step.detail
        if step.window_days is not None:
            detail = f"{step.window_days}-day window" + (f", {detail}" if detail else "")
        steps.append(describe_step(step.kind, len(step.key_ids), detail))
    first = plan.steps[0] if plan.steps else None
    return PlanView(
        store=store_view(snapshot.store),
        matched_by=snapshot.matched_by,
        where=where(snapshot.identity) if snapshot.identity else None,
        keys=tuple(key_view(k) for k in snapshot.keys),
        scanned=snapshot.scanned,
        undescribable=tuple(f"key {bad.id} cannot be described: {bad.error_code}"
                            for bad in snapshot.undescribable),
        checks=tuple(CheckView(v.gate, v.verdict, v.detail) for v in plan.verdicts
                     if v.verdict != "n/a"),
        refusal=plan.refusal.message if plan.refusal else None,
        steps=tuple(steps),
        next_step=describe_step(first.kind, len(first.key_ids), first.detail) if first
        else None,
        more_steps=max(0, len(plan.steps) - 1),
        only_waits=only_waits(plan),
        earliest_gone=plan.earliest_gone,
        warnings=plan.warnings,
    )


# ---- the result ---------------------------------------------------------------------------

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


@dataclass(frozen=True)
class StoreSummary:
    """One store's line of the summary (and the counts the JSON's phase rests on)."""

    label: str  # the store's ID, else the STORE argument
    status: Status
    phase: str | None
    keys_total: int
    keys_pending: int
    earliest_deletion: datetime | None  # of the keys pending deletion
    latest_deletion: datetime | None
    changed: int  # changes counted the way a person counts them
    changes: str  # and in words
    resume_after: datetime | None
    error: str | None
    repeated: bool
    waivers: tuple[str, ...]
    leftovers: tuple[str, ...] | None  # what AWS left behind, as lines (None: not known)
    remaining: str  # what is left to do, in a few words

    @property
    def keys_not_scheduled(self) -> int:
        return self.keys_total - self.keys_pending


@dataclass(frozen=True)
class RunSummary:
    command: str
    where: str | None
    stores: tuple[StoreSummary, ...]


def remaining(r: StoreResult) -> str:
    """What is left to do, in a few words."""
    pending = sum(1 for k in r.keys if k.pending)
    match r.status:
        case Status.DELETED | Status.CANCELLED:
            return "nothing"
        case Status.PENDING if pending < len(r.keys):
            return f"{len(r.keys) - pending} key(s) not scheduled yet: run ksdelete delete"
        case Status.PENDING:
            return (f"wait for {pending} key(s) to be deleted, then run again" if pending
                    else "run again to continue")
        case Status.PLANNED:
            steps = len(r.plan.steps) if r.plan else 0
            gone = f"; gone at the earliest {fmt_time(r.resume_after)}" if r.resume_after else ""
            return f"{steps} step(s): run without --dry-run{gone}"
        case Status.REFUSED:
            return "review the refusal above"
        case Status.MISSING:
            return "nothing (the store does not exist)"
        case Status.INTERRUPTED:
            return "run again to continue"
        case _:
            return "fix the error, then run again"


def store_summary(result: StoreResult, *, leftovers: bool = False) -> StoreSummary:
    """`leftovers`: with what AWS left behind, as lines (`report`)."""
    pending = [k for k in result.keys if k.pending]
    dates = [k.deletion_date for k in pending if k.deletion_date]
    count, words = changes(result)
    left: tuple[str, ...] | None = None
    if leftovers and result.leftovers is not None:
        from ksdelete.leftovers import lines as leftover_lines

        left = tuple(leftover_lines(result.leftovers))
    return StoreSummary(
        label=result.store.id if result.store else result.ref,
        status=result.status, phase=result.phase,
        keys_total=len(result.keys), keys_pending=len(pending),
        earliest_deletion=min(dates) if dates else None,
        latest_deletion=max(dates) if dates else None,
        changed=count, changes=words, resume_after=result.resume_after,
        error=result.error["message"] if result.error else None,
        repeated=result.repeated, waivers=tuple(result.waivers), leftovers=left,
        remaining=remaining(result),
    )


def run_summary(results: Sequence[StoreResult], identity: Identity | None = None, *,
                command: str = "") -> RunSummary:
    return RunSummary(command, where(identity) if identity else None,
                      tuple(store_summary(r, leftovers=command == "report") for r in results))
