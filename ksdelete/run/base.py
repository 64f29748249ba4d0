"""What every part of a store's run shares: its options, its target, its own exceptions,
and what a refusal at a later point of no return says the run had already done."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from ksdelete.errors import KsdeleteError
from ksdelete.models import (
    ApprovedStore,
    KeyStore,
    Outcome,
    Pin,
    Plan,
    PlanOptions,
    Refusal,
    Snapshot,
    StepKind,
    StoreResult,
)
from ksdelete.watcher import WATCH_BUDGET

# Connecting or disconnecting a store (and waiting for another run's lock) is awaited this
# long (or --max-wait, if shorter) even without --wait: AWS documents up to 20 minutes for a
# CloudHSM connect.
TRANSITION_TIMEOUT = 30 * 60.0
# A run re-plans before each point of no return; this many re-plans without reaching the
# end means AWS keeps changing under it (someone else is at work): stop and say so.
MAX_REPLANS = 50
# A key's last recorded use (GetKeyLastUsage) read this recently is not read again by a later
# snapshot of the same run (KMS records use up to an hour late).
USAGE_REUSE = 300.0
# The watch during --wait: CloudTrail is read again this often (LookupEvents allows 2 per
# second for the whole account; each reading goes back an hour before the last complete one,
# since CloudTrail delivers events late).
WATCH_INTERVAL = 600.0

# confirm(snapshot, plan) -> True to go ahead
Confirm = Callable[[Snapshot, Plan], bool]


@dataclass(frozen=True)
class RunOptions:
    plan: PlanOptions = PlanOptions()
    dry_run: bool = False
    wait: bool = False
    max_wait: float = 7 * 24 * 3600.0
    missing_ok: bool = False
    workers: int = 8
    allowed_accounts: frozenset[str] = frozenset()
    interactive: bool = False  # a person answers the prompt (see Context.interactive)
    approved: tuple[ApprovedStore, ...] = ()  # `apply`: the stores of the saved plan
    plan_id: str | None = None  # `apply`: the saved plan's ID (journalled with ConfirmPlan)
    plan_endpoint: str | None = None  # `apply`: the plan's KMS endpoint (None: AWS's own)
    watch_budget: float = WATCH_BUDGET  # seconds one reading of CloudTrail may take
    watch_log_group: str | None = None  # read this CloudWatch Logs group instead (FilterLogEvents)
    # A fleet: a store's own plan options (its target's expect_keys), by store ID.
    per_store: Mapping[str, PlanOptions] = field(default_factory=dict)
    # A fleet's brake, called before every point of no return with the store's result (and
    # the step, for a disconnect or a delete): it raises to stop the run there (the operator
    # stopped the fleet; the rollout halted) or to defer it (a per-run cap is spent).
    brake: Callable[[StoreResult, StepKind | None], None] | None = None

    def for_store(self, store_id: str) -> RunOptions:
        """The options of one store's run (its own plan options, if it has any)."""
        own = self.per_store.get(store_id)
        return self if own is None else replace(self, plan=own, per_store={})


@dataclass(frozen=True)
class Target:
    """A STORE argument, resolved before anything changes."""

    ref: str
    store: KeyStore | None = None
    matched_by: str | None = None  # "id" or "name"
    pin: Pin | None = None  # what the journal says this name was confirmed as
    error: KsdeleteError | None = None  # why it could not be resolved


class Pending(Exception):
    """The run went as far as AWS allows now; come back after `resume_after`."""

    def __init__(self, resume_after: datetime | None, why: str) -> None:
        super().__init__(why)
        self.resume_after = resume_after


class Rescan(Exception):
    """DeleteCustomKeyStore says the store still has keys, and discovery trusted the key
    membership cache: re-plan from a scan that describes every key."""


def done_text(result: StoreResult) -> str:
    """What this run already changed, for a refusal at a later point of no return (empty:
    nothing; the summary line says so)."""
    done = [a for a in result.actions if a.outcome == Outcome.OK]
    if not done:
        return ""
    counts: dict[str, int] = {}
    for action in done:
        counts[action.operation] = counts.get(action.operation, 0) + 1
    listed = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items())
    return f"already done by this run: {listed}; nothing further was changed"


def refusal_error(refusal: Refusal, store_id: str, done: str = "") -> KsdeleteError:
    """A gate's refusal as the error that ends this store's run (exit 4, or 1 when AWS
    failed), saying what the run had already done when it stopped at a later gate (once, on
    a line of its own; a run that changed nothing says so in its summary line)."""
    return refusal.as_error(where=store_id, done=done)


def result_outcome(result: StoreResult, key_id: str, operation: str | None = None
                   ) -> str | None:
    """What the run's latest call on a key (of `operation`, if given) came to."""
    return next((a.outcome for a in reversed(result.actions) if a.key_id == key_id
                 and (operation is None or a.operation == operation)), None)


def record(plan: Plan, result: StoreResult, *, unread: frozenset[str] = frozenset()
           ) -> list[str]:
    """Add a plan's warnings and waived gates to the result (once each); returns the new ones.
    `unread`: gates the plan was made without (their "waived" is not the operator's)."""
    new = [w for w in plan.warnings if w not in result.warnings]
    result.warnings.extend(new)
    for verdict in plan.verdicts:
        text = f"{verdict.gate}: {verdict.detail}"
        if verdict.verdict == "waived" and verdict.gate not in unread \
                and text not in result.waivers:
            result.waivers.append(text)
            new.append(f"waived {text}")
    return new
