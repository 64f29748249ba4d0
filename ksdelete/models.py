"""Plain data: what ksdelete observed in AWS, what it plans to do, and what it did.

Everything here is frozen; the planner is a pure function from a Snapshot to a Plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


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

    @property
    def pending(self) -> bool:
        return self.state == PENDING_DELETION


@dataclass(frozen=True)
class UndescribableKey:
    """A key whose store membership could not be proven (DescribeKey failed)."""

    id: str
    arn: str
    error_code: str
    message: str


@dataclass(frozen=True)
class Snapshot:
    """One consistent-enough reading of a store and every key in it."""

    store: KeyStore
    keys: tuple[Key, ...]
    undescribable: tuple[UndescribableKey, ...] = ()
    scanned: int = 0  # keys in the account and Region that were looked at
    matched_by: str = "id"  # how the operator's STORE argument matched: "id" or "name"
    # Key IDs an operator already confirmed for deletion in an earlier run (from the journal);
    # None when no earlier confirmation is known.
    confirmed_before: frozenset[str] | None = None
    # How discovery accounted for the `scanned` keys (the distinct key IDs ListKeys returned).
    # In a snapshot from discovery, always:
    #   scanned == len(keys) + elsewhere + len(gone) + len(undescribable)
    # (discovery raises IncompleteDiscoveryError rather than return one where it does not hold).
    elsewhere: int = 0  # in another store or in none (described, or known from the cache)
    gone: tuple[str, ...] = ()  # listed, then NotFoundException on DescribeKey: deleted since

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
    CANCEL_KEY_DELETION = "CancelKeyDeletion"  # `ksdelete cancel`


@dataclass(frozen=True)
class Step:
    kind: StepKind
    key_ids: tuple[str, ...] = ()
    detail: str = ""


class RefusalReason(StrEnum):
    UNKNOWN_MEMBERSHIP = "unknown-membership"
    ORPHANED_KEY_MATERIAL = "orphaned-key-material"
    UNPLANNED_KEYS = "unplanned-keys"


@dataclass(frozen=True)
class Refusal:
    reason: RefusalReason
    message: str
    key_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanOptions:
    pending_window_days: int = 30
    connect: bool = False
    allow_orphaned_key_material: bool = False
    include_new_keys: bool = False


@dataclass(frozen=True)
class Plan:
    store_id: str
    steps: tuple[Step, ...]
    refusal: Refusal | None = None
    warnings: tuple[str, ...] = ()
    # The earliest moment the store can be gone: the latest DeletionDate of its keys (already
    # pending) or now + the pending window (about to be scheduled). AWS may be up to 24 h later.
    earliest_gone: datetime | None = None
    external_key_ids: tuple[str, ...] = field(default=())

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
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"  # `ksdelete cancel` undid the pending deletions


@dataclass(frozen=True)
class Action:
    """One mutating call ksdelete made (or found already done)."""

    operation: str
    outcome: str  # "ok", "already-done", or "error:<AWS code>"
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
    error: dict[str, str] | None = None
    phase: str | None = None  # where the pipeline stands (status command): e.g. "keys-pending"
    # Keys whose membership could not be proven (DescribeKey failed), with the AWS error code.
    undescribable: tuple[UndescribableKey, ...] = ()
