"""Where a store stands in the pipeline, as a value: `StorePhase` (its name, the key counts
and dates it rests on, a refusal's reason) reads as the text the summary shows and the
journal keeps; `phase_name` tells the name of one written down before."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any


class PhaseName(StrEnum):
    """Where a store stands in the pipeline (the first word of its phase)."""

    SOAKING = "soaking"
    KEYS_NOT_SCHEDULED = "keys-not-scheduled"
    KEYS_PENDING = "keys-pending"
    READY_TO_DISCONNECT = "ready-to-disconnect"
    DISCONNECTING = "disconnecting"
    READY_TO_DELETE = "ready-to-delete"
    DELETED = "deleted"
    MEMBERSHIP_UNKNOWN = "membership-unknown"
    REFUSED = "refused"
    NOT_FOUND = "not-found"
    LEFTOVERS = "leftovers"


class StorePhase(str):
    """Where a store stands, as data: its name, the key counts and dates it rests on, a
    refusal's reason. It reads as the text the summary shows and the journal keeps
    ("keys-pending 3/3, earliest deletion ..."), rendered once, where it is made."""

    name: PhaseName
    keys: int  # keys in the store
    pending: int  # of them, pending deletion
    earliest_deletion: datetime | None
    until: datetime | None  # a soak: when it ends
    reason: str | None  # refused: the gate's reason

    def __new__(cls, text: str, name: PhaseName, *, keys: int = 0, pending: int = 0,
                earliest_deletion: datetime | None = None, until: datetime | None = None,
                reason: str | None = None) -> StorePhase:
        phase = super().__new__(cls, text)
        phase.name, phase.keys, phase.pending = name, keys, pending
        phase.earliest_deletion, phase.until, phase.reason = earliest_deletion, until, reason
        return phase

    @classmethod
    def of(cls, name: PhaseName, detail: str = "", **data: Any) -> StorePhase:
        """A phase whose text is its name, then `detail` if any."""
        return cls(f"{name} {detail}" if detail else str(name), name, **data)


def phase_name(phase: str) -> str:
    """A phase's name: the value's own, or the first word of one written down before (a
    journal's Report line: "keys-pending 3/3, ..." -> keys-pending)."""
    if isinstance(phase, StorePhase):
        return phase.name
    return phase.split(" ", 1)[0]
