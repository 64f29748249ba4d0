"""Reading the emulator's call log (`/_emulator/calls`) against AWS's request quotas: what
the fleet's pacing test and benchmark measure (tests/fleet/test_fleet_pacing.py,
benchmarks/fleet.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ksdelete.emulator.realism import quota_of

# The services whose quotas ksdelete's pacer keeps to (STS's and Config's calls are logged too).
QUOTA_SERVICES = ("kms", "cloudtrail", "logs")
# Operations the log names without their service, and the quota name the emulator counts them by.
_NAMED = {"LookupEvents": "cloudtrail:LookupEvents", "FilterLogEvents": "logs:FilterLogEvents"}


def quota(operation: str) -> float:
    """AWS's default quota for an operation of the call log, per account and Region
    (requests per second)."""
    return quota_of(_NAMED.get(operation, operation))


def counted(calls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls a KMS, CloudTrail or Logs quota counts."""
    return [c for c in calls if c.get("service", "kms") in QUOTA_SERVICES]


def arrival(call: dict[str, Any]) -> float:
    """When the call reached the emulator (where a quota counts it)."""
    return float(call.get("arrived", call["wall"]))


def peak(times: Iterable[float], window: float = 1.0) -> int:
    """The most of `times` inside any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - window:
            first += 1
        best = max(best, last - first + 1)
    return best
