"""Plain data: what ksdelete observed in AWS, what it plans to do, and what it did.

Everything here is frozen; the planner is a pure function from a Snapshot to a Plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ksdelete import marks as codec
from ksdelete.errors import KsdeleteError, RefusedError

# Re-exported here: what the gates read about each key besides its metadata
# (ksdelete.evidence), and the marks' tag names, which live with their codec (ksdelete.marks).
from ksdelete.evidence import Attempt as Attempt
from ksdelete.evidence import Grant as Grant
from ksdelete.evidence import Usage as Usage
from ksdelete.evidence import Watch as Watch
from ksdelete.marks import CANCELLED_TAG as CANCELLED_TAG
from ksdelete.marks import DISABLED_TAG as DISABLED_TAG
from ksdelete.marks import SCHEDULED_TAG as SCHEDULED_TAG


class StoreType(StrEnum):
    CLOUDHSM = "AWS_CLOUDHSM"
    EXTERNAL = "EXTERNAL_KEY_STORE"


class ConnectionState(StrEnum):
    CONNECTED = "CONNECTED"
    CONNECTING = "CONNECTING"
    DISCONNECTED = "DISCONNECTED"
    DISCONNECTING = "DISCONNECTING"
    FAILED = "FAILED"


PENDING_DELETION = "PendingDeletion"
STORE_ID = re.compile(r"^cks-[0-9a-z]+$")  # what a custom key store ID looks like


@dataclass(frozen=True)
class Identity:
    """Who and where: GetCallerIdentity's account and caller ARN, and the Region in use."""

    account: str
    region: str
    caller_arn: str = ""


@dataclass(frozen=True)
class Pin:
    """A STORE name pinned to the store ID it resolved to when the operator confirmed."""

    name: str
    store_id: str
    time: str


@dataclass(frozen=True)
class KeyStore:
    id: str
    name: str
    type: StoreType
    connection_state: ConnectionState
    connection_error_code: str | None = None
    cloudhsm_cluster_id: str | None = None
    creation_date: datetime | None = None


@dataclass(frozen=True)
class Key:
    id: str
    arn: str
    state: str
    custom_key_store_id: str
    deletion_date: datetime | None = None
    aliases: tuple[str, ...] = ()
    external_key_id: str | None = None
    # ksdelete's marks on the key (tags, so that every machine sees them): `scheduled` is
    # written just before ScheduleKeyDeletion, `cancelled` by `ksdelete cancel`.
    marks: Marks | None = None
    creation_date: datetime | None = None
    # What the preflight gates look at, read for keys about to be scheduled (None: not read).
    tags: tuple[tuple[str, str], ...] | None = None
    grants: tuple[Grant, ...] | None = None
    usage: Usage | None = None
    watch: Watch | None = None  # for a key pending deletion: use attempted since (CloudTrail)

    @property
    def pending(self) -> bool:
        return self.state == PENDING_DELETION

    @property
    def soaking(self) -> bool:
        """Disabled by ksdelete's --disable-first soak (its mark), and not since cancelled."""
        marks = self.marks
        return (marks is not None and marks.disabled is not None and marks.cancelled is None
                and marks.scheduled is None and not self.pending and self.state != "Enabled")

    @property
    def soak_broken(self) -> bool:
        """Disabled by ksdelete's soak, then enabled again by someone (not scheduled, not
        cancelled): someone needs it; only a person's confirmation starts its soak again."""
        marks = self.marks
        return (marks is not None and marks.disabled is not None and marks.scheduled is None
                and marks.cancelled is None and self.state == "Enabled")

    @property
    def cancelled(self) -> bool:
        """A mark of ksdelete's on a key that is no longer pending: someone cancelled its
        deletion (or a run failed between marking and scheduling it)."""
        return self.marks is not None and self.marks.any and not self.pending


# --disable-first: CloudTrail's Event history keeps 90 days, and the soak's end is checked
# against the key's DisableKey event there: a soak must end (and the runs after it find that
# event) well inside them; 5 days of slack for runs after the soak's end.
MAX_SOAK_DAYS = 85
# AWS allows at most 50 tags per KMS key (TagException "Too many tags", kms-gates-facts 6).
MAX_TAGS_PER_KEY = 50


@dataclass(frozen=True)
class Marks:
    """The values of ksdelete's tags on a key (None: tag absent)."""

    scheduled: str | None = None  # "<time> prior=<state> run=<run id>"
    cancelled: str | None = None  # "<time> by=<caller ARN>"
    disabled: str | None = None  # "<time> prior=<state> days=<N> run=<id>" (--disable-first)

    @property
    def any(self) -> bool:
        """ksdelete put the key on the way to deletion, or someone took it off again (a
        soak's mark alone is not: the soak is still on)."""
        return self.scheduled is not None or self.cancelled is not None

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Marks:
        return cls(tags.get(SCHEDULED_TAG), tags.get(CANCELLED_TAG), tags.get(DISABLED_TAG))

    def field(self, name: str) -> str | None:
        """A `name=value` field of the scheduled mark, else of the soak's (e.g. prior: the
        state before ksdelete changed anything)."""
        for mark in (self.disabled, self.scheduled) if name == "prior" else (self.scheduled,):
            value = codec.field(mark, name)
            if value is not None:
                return value
        return None

    @property
    def soak_days(self) -> int | None:
        """How long the soak was to last when it began (`days=` of the soak's mark)."""
        days = codec.field(self.disabled, "days")
        try:
            return int(days) if days is not None else None
        except ValueError:
            return None

    @property
    def disabled_at(self) -> datetime | None:
        """When the soak disabled the key (the mark's first word)."""
        word = codec.time_text(self.disabled)
        try:
            return datetime.fromisoformat(word.replace("Z", "+00:00")) if word else None
        except ValueError:
            return None


@dataclass(frozen=True)
class CancelEvent:
    """A CancelKeyDeletion of one key that CloudTrail recorded: who, when."""

    key_id: str
    caller: str
    time: datetime | None
    event_id: str = ""


@dataclass(frozen=True)
class CancelTrail:
    """CloudTrail's CancelKeyDeletion events for a store's keys since its deletion was first
    confirmed (a saved plan, ksdelete's marks on its keys, or this journal): the memory of a
    cancel that outlives every machine's state."""

    since: datetime  # the confirmation: events before it were seen by whoever confirmed
    events: tuple[CancelEvent, ...] = ()
    error: str | None = None  # the lookup failed (e.g. AccessDenied): nothing is known

    def of(self, key_id: str) -> CancelEvent | None:
        """The key's latest cancel since the confirmation, if CloudTrail shows one."""
        return next((e for e in self.events if e.key_id == key_id), None)


@dataclass(frozen=True)
class UndescribableKey:
    """A key whose store membership could not be proven (DescribeKey failed)."""

    id: str
    arn: str
    error_code: str
    message: str
    access_denied: bool = False  # the key policy or IAM denies DescribeKey (vs. AWS failing)


@dataclass(frozen=True)
class Snapshot:
    """One consistent-enough reading of a store and every key in it."""

    store: KeyStore
    keys: tuple[Key, ...]
    undescribable: tuple[UndescribableKey, ...] = ()
    scanned: int = 0  # keys in the account and Region that were looked at
    matched_by: str = "id"  # how the operator's STORE argument matched: "id" or "name"
    identity: Identity | None = None
    # How discovery accounted for the `scanned` keys (the distinct key IDs ListKeys returned).
    # In a snapshot from discovery, always:
    #   scanned == len(keys) + elsewhere + len(gone) + len(undescribable)
    # (discovery raises IncompleteDiscoveryError rather than return one where it does not hold).
    elsewhere: int = 0  # in another store or in none (described, or known from the cache)
    gone: tuple[str, ...] = ()  # listed, then NotFoundException on DescribeKey: deleted since
    observed_at: datetime | None = None  # AWS's clock when the snapshot was taken
    # CloudTrail's cancels of the store's keys since the confirmation; None: not read (this
    # journal remembers the confirmation, or there was none before this run).
    cancel_trail: CancelTrail | None = None
    # CloudHSM, once the store holds no key: the keys whose DeleteKey event says their HSM
    # key material was not deleted (FAILURE: the store was not CONNECTED then); None: not read.
    orphaned: tuple[str, ...] | None = None
    orphaned_error: str | None = None  # CloudTrail could not be read for it

    def key_ids(self) -> frozenset[str]:
        return frozenset(k.id for k in self.keys)


class StepKind(StrEnum):
    """Imperative steps; each is a no-op when AWS shows its work already done."""

    CONNECT_STORE = "ConnectKeyStore"
    AWAIT_CONNECTED = "AwaitConnected"
    SCHEDULE_KEY_DELETION = "ScheduleKeyDeletion"
    AWAIT_KEYS_DELETED = "AwaitKeysDeleted"
    DISCONNECT_STORE = "DisconnectKeyStore"
    AWAIT_DISCONNECTED = "AwaitDisconnected"
    DELETE_STORE = "DeleteKeyStore"
    VERIFY_DELETED = "VerifyDeleted"
    CANCEL_KEY_DELETION = "CancelKeyDeletion"  # `ksdelete cancel` (and the watch's remedy)
    MARK_CANCELLED = "MarkCancelled"  # `ksdelete cancel`: the cancel mark on each key
    ENABLE_KEYS = "EnableKeys"  # `ksdelete cancel --enable`
    DISABLE_KEYS = "DisableKeys"  # --disable-first: the soak
    AWAIT_SOAK = "AwaitSoak"


# Re-planned from a fresh snapshot before they run (every gate evaluated again). Disabling
# is reversible, but it is the first change a soak makes, so it is checked the same way.
POINTS_OF_NO_RETURN = frozenset({StepKind.DISABLE_KEYS, StepKind.SCHEDULE_KEY_DELETION,
                                 StepKind.DISCONNECT_STORE, StepKind.DELETE_STORE})


@dataclass(frozen=True)
class Step:
    """One imperative step with every parameter it needs: the executor adds no policy."""

    kind: StepKind
    key_ids: tuple[str, ...] = ()
    detail: str = ""
    window_days: int | None = None  # ScheduleKeyDeletion's PendingWindowInDays
    soak_days: int | None = None  # DisableKeys: the soak's length (its mark's days=)


class RefusalReason(StrEnum):
    ACCOUNT_NOT_ALLOWED = "account-not-allowed"
    NAME_RETARGETED = "name-retargeted"
    UNKNOWN_MEMBERSHIP = "unknown-membership"
    DESCRIBE_FAILED = "describe-failed"
    KEYS_APPEARED = "keys-appeared"
    UNPLANNED_KEYS = "unplanned-keys"
    CANCELLED_KEYS = "cancelled-keys"
    ORPHANED_KEY_MATERIAL = "orphaned-key-material"
    RECENTLY_USED = "recently-used"  # --unused-for: a key was used within DAYS
    SERVICE_GRANTS = "service-grants"  # a key is granted to an AWS service (live integration)
    PROTECTED = "protected-tag"  # --protect-tag
    KEY_COUNT = "unexpected-key-count"  # --expect-keys
    TOO_MANY_KEYS = "too-many-keys"  # --max-keys (a fleet's guards.max_keys_per_target)
    STORE_NOT_AS_EXPECTED = "store-not-as-expected"  # a fleet target's expect_name/expect_type
    USED_WHILE_PENDING = "used-while-pending"  # the watch saw a pending key being used
    WATCH_BLIND = "watch-blind"  # the watch cannot read CloudTrail for a pending key
    USED_WHILE_DISABLED = "used-while-disabled"  # --disable-first: a soaking key was wanted
    SOAK_IMPOSSIBLE = "soak-impossible"  # --disable-first on a store that is not connected
    SOAK_BROKEN = "soak-broken"  # someone enabled a key the soak disabled
    TOO_MANY_TAGS = "too-many-tags"  # a key has no room for ksdelete's mark (AWS: 50 tags)
    OUTSIDE_SAVED_PLAN = "outside-saved-plan"  # `apply`: the store is not as the plan saw it
    OTHER_ENDPOINT = "other-endpoint"  # `apply`: not the KMS endpoint the plan was made against
    CANCEL_REQUESTED = "cancel-requested"  # `ksdelete cancel` asked runs of the store to stop
    ALL_OR_NOTHING = "all-or-nothing"  # another store of the run's plan was refused or failed
    TOO_MANY_TARGETS = "too-many-targets"  # a fleet file names more targets than max_targets
    SCAN_INCOMPLETE = "scan-incomplete"  # AWS Config knows a key of the store the scan missed
    WITNESS_FAILED = "witness-failed"  # the fleet's AWS Config aggregator could not be queried


@dataclass(frozen=True, order=True)
class WitnessedKey:
    """A key an AWS Config aggregator attributes to a custom key store (fleet mode's second
    witness): never proof of anything by itself, and its silence proves nothing."""

    account: str
    region: str
    key_id: str
    store_id: str


@dataclass(frozen=True)
class Refusal:
    """A gate's "no", as a person reads it at a glance: `summary` (what, in a few words that do
    not grow with the number of keys) and `fix` (the next step) make the first line, at most
    about 160 characters; `details` (the keys, the evidence, the longer explanation) follow on
    their own lines; the JSON carries all of it, and every key in `key_ids`."""

    reason: RefusalReason
    summary: str
    fix: str = ""
    details: tuple[str, ...] = ()
    key_ids: tuple[str, ...] = ()
    error: bool = False  # AWS failed (exit 1) rather than a safety check said no (exit 4)

    @property
    def headline(self) -> str:
        """The first line: what, and the fix."""
        if not self.fix:
            return self.summary
        return f"{self.summary}{'' if self.summary.endswith(('?', '.')) else '.'} {self.fix}"

    @property
    def message(self) -> str:
        """The whole refusal: the first line, then one line per detail."""
        return "\n".join((self.headline, *self.details))

    def as_error(self, *, where: str = "", done: str = "") -> KsdeleteError:
        """The error that ends a run with this refusal (exit 4; 1 when AWS failed). `done`:
        what the run had already changed when it stopped at a later gate (a line of its own);
        `where` only when the first line does not already say it."""
        details = (*self.details, *([done] if done else ()))
        where = "" if where and where in self.headline else where
        cls = KsdeleteError if self.error else RefusedError
        return cls(self.headline, where=where, details=details, key_ids=self.key_ids)


@dataclass(frozen=True)
class ApprovedStore:
    """One store of a saved plan (`ksdelete apply`): what the operator reviewed."""

    id: str
    name: str
    type: StoreType
    key_ids: frozenset[str]
    # Keys already pending deletion when the plan was made: the plan does not schedule them,
    # so one that is no longer pending was cancelled since, and stays cancelled.
    pending_key_ids: frozenset[str] = frozenset()
    created_at: datetime | None = None  # when the plan was made (the review's moment)


@dataclass(frozen=True)
class Context:
    """What the gates know besides the snapshot: the operator's guards and the memory of
    earlier decisions (journal), scoped to the snapshot's account and Region."""

    allowed_accounts: frozenset[str] = frozenset()  # --account-id; empty: any
    # Keys an operator confirmed for deletion in an earlier run; None: no earlier confirmation.
    confirmed_before: frozenset[str] | None = None
    # Keys of the plan the operator confirmed in this run; None before the confirmation.
    planned: frozenset[str] | None = None
    pin: Pin | None = None  # the store ID this STORE name was confirmed as, if any
    # A person answers the confirmation prompt in this run (not --yes, not a dry run): only
    # such a fresh confirmation may schedule again a key whose deletion was cancelled.
    interactive: bool = False
    # The cancelled keys that person saw listed at the prompt and confirmed; None before.
    reconfirmed: frozenset[str] | None = None
    # Keys this journal says ksdelete scheduled, or cancelled, in the store (evidence besides
    # the marks).
    scheduled_before: frozenset[str] = frozenset()
    # `apply`: the store as the saved plan shows it; only its keys may be scheduled.
    approved: ApprovedStore | None = None
    # Keys this journal's confirmations saw pending deletion (key ID -> when confirmed): one
    # that is no longer pending was cancelled, whoever had scheduled it.
    pending_before: dict[str, str] = field(default_factory=dict)
    # This journal holds a confirmation of the store (ConfirmPlan): the local memory. Without
    # it, CloudTrail (the snapshot's cancel_trail) stands in for it.
    remembered: bool = False
    # (key ID, run ID): this journal shows the run marked the key for scheduling but never
    # sent its ScheduleKeyDeletion (no intent line, or AWS refused it): that mark on a key that
    # is not pending is no cancel.
    unscheduled_marks: frozenset[tuple[str, str]] = frozenset()
    # This run only reads (a dry run, `status`): a refusal's remedy is not applied, and the
    # refusal says so instead of claiming it was.
    read_only: bool = False
    # --disable-first: when this journal says ksdelete disabled each key for its soak, and for
    # how many days (evidence besides the key's mark, which anyone who may tag it can edit).
    soaks: Mapping[str, tuple[datetime, int | None]] = field(default_factory=dict)
    # A `ksdelete cancel` asked the runs of this store to stop (the cancel request beside the
    # store's lock): who and when, or None.
    cancel_requested: str | None = None


@dataclass(frozen=True)
class PlanOptions:
    pending_window_days: int = 30
    connect: bool = False
    allow_orphaned_key_material: bool = False
    include_new_keys: bool = False
    # Preflight gates (issue: safety gates). 0 days turns the usage gate off.
    unused_for_days: int = 30
    allow_service_grants: bool = False
    protect_tags: tuple[tuple[str, str | None], ...] = ()  # --protect-tag KEY[=VALUE]
    expect_keys: int | None = None
    max_keys: int | None = None  # --max-keys N: refuse a store with more keys (a fleet's cap)
    # The watch: what to do about an attempt to use a key pending deletion: "cancel" its
    # deletion and refuse, only "refuse", or "ignore" (CloudTrail is not read).
    on_use: str = "cancel"
    # --disable-first DAYS: disable the keys, and schedule them only after DAYS without an
    # attempt to use them (0: schedule at once).
    disable_first_days: int = 0


@dataclass(frozen=True)
class Verdict:
    """One gate's answer: "pass", "refused", "waived" (an option let it pass) or "n/a"."""

    gate: str
    verdict: str
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    store_id: str
    steps: tuple[Step, ...]
    refusal: Refusal | None = None
    verdicts: tuple[Verdict, ...] = ()
    warnings: tuple[str, ...] = ()
    # The earliest moment the store can be gone: the latest DeletionDate of its keys (already
    # pending) or now + the pending window (about to be scheduled). AWS may be up to 24 h later.
    earliest_gone: datetime | None = None
    external_key_ids: tuple[str, ...] = field(default=())
    phase: str = ""  # where the store stands, e.g. "keys-pending 3/3, earliest deletion ..."
    # Cancelled keys the person at the prompt must confirm again (listed there explicitly).
    reconfirm: tuple[str, ...] = ()
    status: Status | None = None  # what `status` reports for this plan (exit code source)
    # With a refusal: the step that makes the refused state safe again before the run stops
    # (the watch: cancel the deletion of keys someone tried to use). None: nothing to do.
    remedy: Step | None = None
    soak_until: datetime | None = None  # --disable-first: when the keys may be scheduled

    def step(self, kind: StepKind) -> Step | None:
        return next((s for s in self.steps if s.kind is kind), None)

    @property
    def to_schedule(self) -> tuple[str, ...]:
        step = self.step(StepKind.SCHEDULE_KEY_DELETION)
        return step.key_ids if step else ()


class Status(StrEnum):
    DELETED = "deleted"
    PENDING = "pending"
    PLANNED = "planned"
    REFUSED = "refused"
    ERROR = "error"
    MISSING = "missing"  # the store does not exist (exit 0 with --missing-ok, else 1)
    INTERRUPTED = "interrupted"  # SIGINT
    TERMINATED = "terminated"  # SIGTERM
    SKIPPED = "skipped"  # not started: another STORE of the invocation could not be resolved
    CANCELLED = "cancelled"  # `ksdelete cancel` undid the pending deletions


class Outcome(StrEnum):
    """What a mutating call came to (besides "error:<AWS code>")."""

    OK = "ok"
    ALREADY_DONE = "already-done"  # the work was done already (e.g. a key already pending)
    ALREADY_GONE = "already-gone"  # the key no longer exists
    ALREADY_PENDING = "already-pending"  # tagging a key someone scheduled meanwhile


@dataclass(frozen=True)
class Action:
    """One mutating call ksdelete made (or found already done)."""

    operation: str
    outcome: str  # an Outcome, or "error:<AWS code>"
    key_id: str | None = None
    request_id: str | None = None
    time: datetime | None = None


@dataclass
class StoreResult:
    """What happened to one STORE argument; the report and the JSON are built from it."""

    ref: str
    status: Status = Status.ERROR
    matched_by: str | None = None
    store: KeyStore | None = None
    keys: tuple[Key, ...] = ()
    plan: Plan | None = None
    actions: list[Action] = field(default_factory=list)
    resume_after: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    waivers: list[str] = field(default_factory=list)  # gates an option let pass, e.g. orphaning
    error: dict[str, Any] | None = None
    phase: str | None = None  # where the pipeline stands: e.g. "keys-pending 3/3, ..."
    # Keys whose membership could not be proven (DescribeKey failed), with the AWS error code.
    undescribable: tuple[UndescribableKey, ...] = ()
    scanned: int = 0  # keys in the account and Region the last discovery looked at
    # `cancel`: per key, what it is now (recovered, still-pending, already-deleted) and why.
    key_outcomes: list[dict[str, Any]] = field(default_factory=list)
    leftovers: Leftovers | None = None  # what AWS left behind, once deleted (and `report`)
    # An unattended run that found the store where the last run reported it (same phase, per
    # the journal) and changed nothing: the summary leaves out what was already said.
    repeated: bool = False
    # `cancel`: the ksdelete run that held the store's lock (holder, requested_at, stopped).
    run_in_progress: dict[str, Any] | None = None


# CloudHSM DeleteKey events: backingKeysDeletionStatus[].deletionStatus (kms-gates-facts 5).
FAILED = "FAILURE"
SUCCEEDED = "SUCCESS"


@dataclass(frozen=True)
class KeyLeftover:
    id: str
    arn: str
    created: str | None = None  # the key's creation date (journal), for the backup reminder
    external_key_id: str | None = None
    deleted_at: str | None = None  # DeleteKey's eventTime, if CloudTrail still has it
    # CloudHSM: "SUCCESS" (every backing key), "FAILURE" (orphaned material), another status
    # as the event gave it (not confirmed; AWS documents only SUCCESS and FAILURE), or None
    # (no DeleteKey event seen).
    material: str | None = None
    key_handles: tuple[str, ...] = ()
    backing_key_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Leftovers:
    store_id: str
    store_name: str
    store_type: StoreType | None
    cluster_id: str | None
    keys: tuple[KeyLeftover, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def orphaned(self) -> tuple[KeyLeftover, ...]:
        return tuple(k for k in self.keys if k.material == FAILED)

    @property
    def unconfirmed(self) -> tuple[KeyLeftover, ...]:
        """CloudHSM keys whose DeleteKey event reports something other than SUCCESS or
        FAILURE (AWS documents only those two): their material is not confirmed deleted."""
        return tuple(k for k in self.keys
                     if k.material is not None and k.material not in (SUCCEEDED, FAILED))

    @property
    def unknown(self) -> tuple[KeyLeftover, ...]:
        """CloudHSM keys whose DeleteKey event was not found (not deleted yet, or older than
        CloudTrail's 90 days of Event history)."""
        return tuple(k for k in self.keys if k.material is None)

