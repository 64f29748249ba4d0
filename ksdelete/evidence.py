"""What the gates read about each key besides its metadata: its grants (ListGrants), its last
use (GetKeyLastUsage) and CloudTrail's watch over it (its scheduling and the attempts to use
it since). Plain frozen data; ksdelete.models re-exports it with the key it belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Grant:
    """One grant on a key (ListGrants): who may use it, and for what."""

    grant_id: str
    grantee: str
    operations: tuple[str, ...] = ()
    name: str = ""
    retiring: str = ""

    @property
    def service(self) -> bool:
        """Granted to an AWS service principal (e.g. rds.eu-west-1.amazonaws.com): a live
        integration that uses the key on someone's behalf."""
        return any(p.endswith(".amazonaws.com") or p.endswith(".amazonaws.com.cn")
                   for p in (self.grantee, self.retiring) if p)


@dataclass(frozen=True)
class Usage:
    """GetKeyLastUsage: the last successful cryptographic use KMS recorded, if any."""

    tracking_start: datetime | None = None
    last_used: datetime | None = None
    operation: str | None = None
    event_id: str | None = None
    error: str | None = None  # GetKeyLastUsage failed (e.g. AccessDenied): usage unknown


@dataclass(frozen=True)
class Attempt:
    """A failed cryptographic call on a key ksdelete put on the way out (CloudTrail)."""

    operation: str
    caller: str
    time: datetime | None
    error_code: str
    message: str = ""
    event_id: str = ""


@dataclass(frozen=True)
class Watch:
    """What CloudTrail shows of a pending key: its current scheduling, and use since."""

    since: datetime | None  # the key's latest ScheduleKeyDeletion; None: not found
    attempts: tuple[Attempt, ...] = ()
    error: str | None = None  # why the key could not be seen (no permission, a read cut short)
    # The anchor is not there, but the key was put on the way out less than CloudTrail's
    # delivery allowance ago: not visible yet (blind only once the allowance has passed).
    late: bool = False
    anchor: str = "ScheduleKeyDeletion"  # the event that proves the read sees the key
    scheduled: datetime | None = None  # when it was put on the way out, if known
