"""Pacing under the request quotas: one adaptive token bucket per operation.

A pacer belongs to one scope (account, Region, KMS endpoint): AWS counts its quotas per account
and Region, so every store of a scope is served through the same pacer (ksdelete.workspace),
however many stores an invocation names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Requests per second ksdelete allows itself per operation: about 93 % of the AWS default
# quota (kms-reference 6.1). The quota is shared with every other caller in the account, so the
# pace is a ceiling, not a promise: every ThrottlingException halves it (TokenBucket.throttled)
# and calls that succeed bring it back.
PACE: dict[str, float] = {
    "DescribeCustomKeyStores": 4.65,
    "ConnectCustomKeyStore": 4.65,
    "DisconnectCustomKeyStore": 4.65,
    "DeleteCustomKeyStore": 4.65,
    "ListKeys": 465,
    "ListAliases": 465,
    "DescribeKey": 1860,
    "ScheduleKeyDeletion": 14,
    "CancelKeyDeletion": 4.65,
    "EnableKey": 4.65,
    "DisableKey": 4.65,
    "ListResourceTags": 1860,
    "TagResource": 9.3,
    "UntagResource": 4.65,
    "GetCallerIdentity": 10,
    "GetKeyLastUsage": 4.65,
    "ListGrants": 93,
    "LookupEvents": 1.86,  # CloudTrail: 2 per second per account and Region, not adjustable
    "FilterLogEvents": 4.65,  # CloudWatch Logs: 5 per second per account and Region
}

# A bucket's burst, as a share of its rate: a full bucket and then one second at the pace
# must stay within the quota in any one second (0.93 x 1.05 < 1); at least one request.
BURST = 0.05

# HTTP connections kept open to KMS: as many as discovery may have DescribeKey calls in flight.
MAX_CONNECTIONS = 64

class TokenBucket:
    """Thread-safe pacing: at most `rate` acquisitions per second, bursts up to `burst`
    (by default BURST of the rate, so that no one second passes the quota).

    The rate adapts to throttling (AIMD, as TCP does): `throttled()` halves it (at most once a
    second, however many calls were in flight when the quota ran out; never below 2 % of the
    ceiling), and while calls succeed (`succeeded()`) it grows back by about a quarter per
    second, up to the ceiling: a pace that met another caller's traffic settles under what
    the quota leaves, and recovers once the quota has room again.
    """

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ceiling = rate
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate * BURST)
        self.throttles = 0  # ThrottlingException answers seen
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._cut = -1.0e9  # when the rate was last halved
        self._grown = self._last  # when the rate last grew (or was cut)
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds slept.

        The token is taken when it is there, not promised ahead for a later moment: a caller
        that wakes late (a starved thread) does not go out together with the next one."""
        slept = 0.0
        need = min(1.0, self.capacity)
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity,
                                   self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= need - 1e-9:
                    self._tokens -= 1
                    return slept
                wait = (need - self._tokens) / self.rate
            self._sleep(wait)
            slept += wait

    def throttled(self) -> None:
        """AWS answered ThrottlingException: slow down."""
        with self._lock:
            self.throttles += 1
            now = self._clock()
            if now - self._cut >= 1.0:
                self._cut = now
                self.rate = max(self.ceiling / 50, self.rate / 2)
            self._grown = now

    def succeeded(self) -> None:
        """A call went through: after a cut, grow back towards the ceiling."""
        if self.rate < self.ceiling:  # read without the lock: the common case costs nothing
            with self._lock:
                now = self._clock()
                grown = self.rate * (1 + 0.25 * min(1.0, now - self._grown))
                self.rate = min(self.ceiling, grown)
                self._grown = now


class Pacer:
    """One scope's token buckets, one per operation, shared by every gateway of the scope;
    discovery sizes its pool by them."""

    def __init__(self, pace: dict[str, float] | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        pace = PACE if pace is None else pace
        self.buckets = {op: TokenBucket(rate) for op, rate in pace.items()}
        self.max_connections = max_connections

    def rate(self, operation: str) -> float | None:
        """Requests per second allowed for `operation` now (None: not paced)."""
        bucket = self.buckets.get(operation)
        return bucket.rate if bucket is not None else None

    def throttles(self, operation: str) -> int:
        """ThrottlingException answers to `operation` so far (each one retried)."""
        bucket = self.buckets.get(operation)
        return bucket.throttles if bucket is not None else 0

