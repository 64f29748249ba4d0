"""Process-wide emulator runtime: config, clock, lock, randomness, quotas, faults, call log."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .config import EmulatorConfig

THROTTLE_MESSAGE = (
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
)

# Default request quotas (requests per second, per account and Region), kms-reference §6.1.
AWS_QUOTAS: dict[str, float] = {
    "DescribeCustomKeyStores": 5,
    "ListKeys": 500,
    "DescribeKey": 2000,
    "ListAliases": 500,
    "ListResourceTags": 2000,
    "ScheduleKeyDeletion": 15,
    "CancelKeyDeletion": 5,
    "DisableKey": 5,
    "EnableKey": 5,
    "DisconnectCustomKeyStore": 5,
    "ConnectCustomKeyStore": 5,
    "DeleteCustomKeyStore": 5,
    "UpdateCustomKeyStore": 5,
    "CreateCustomKeyStore": 5,
    "CreateKey": 5,
    "ListGrants": 100,
    "ListRetirableGrants": 100,
    "GetKeyPolicy": 1000,
    "GetKeyLastUsage": 5,
    "CreateAlias": 5,
    "DeleteAlias": 15,
    "UpdateAlias": 5,
    "PutKeyPolicy": 15,
    "TagResource": 10,
    "UntagResource": 5,
    "UpdateKeyDescription": 5,
    # CloudTrail (same endpoint): "limited to two per second, per account, per Region".
    "cloudtrail:LookupEvents": 2,
}
CLOUDTRAIL_THROTTLE_MESSAGE = "Rate exceeded"
# Cryptographic operations share one symmetric quota (us-east-1 value).
CRYPTO_OPERATIONS = frozenset(
    {
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateRandom",
        "GenerateMac",
        "VerifyMac",
    }
)
CRYPTO_QUOTA = 100_000.0
OTHER_QUOTA = 5.0  # anything not listed: the most common management quota


def quota_of(name: str) -> float:
    """AWS's default quota (requests per second, per account and Region) for a quota name as
    the emulator counts it: a KMS operation (the cryptographic ones share one quota), or
    `service:Operation` for CloudTrail and CloudWatch Logs."""
    return CRYPTO_QUOTA if name in CRYPTO_OPERATIONS else AWS_QUOTAS.get(name, OTHER_QUOTA)


class _Bucket:
    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate  # a full second of burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class RoleSession:
    """Credentials STS AssumeRole handed out: who signs with its access key, and until when."""

    arn: str  # arn:aws:sts::<account>:assumed-role/<role name>/<session name>
    role_arn: str  # the role as asked for (arn:aws:iam::...)
    role_id: str  # AROA...
    account: str  # where its calls land (the role's, or the redirect's)
    session_token: str
    created: float  # emulated
    expiration: float  # emulated
    source_identity: str | None = None

    def issuer_arn(self) -> str:
        """The role as it really is: in the account the session landed in."""
        parts = self.role_arn.split(":", 5)
        return ":".join((*parts[:4], self.account, parts[5]))


class Runtime:
    """Everything the emulator shares across requests in one process."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config = EmulatorConfig()
        self.clock = Clock()
        self.rng = random.Random()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self.calls: list[dict[str, Any]] = []
        self.problems: list[str] = []
        # STS AssumeRole's credentials by access key ID (state, not a knob: reset forgets them).
        self.sessions: dict[str, RoleSession] = {}

    def apply_config(self, knobs: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            old_seed = self.config.seed
            self.config.update(knobs)
            self.clock.set_scale(self.config.time_scale)
            if "seed" in knobs and self.config.seed != old_seed:
                self.reseed()
            if "quotas" in knobs:
                self._buckets.clear()
            return self.config.to_dict()

    def reseed(self) -> None:
        from moto.moto_api._internal import mock_random

        seed = self.config.seed
        self.rng.seed(seed)
        if seed is not None:
            mock_random.seed(seed)

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()
            self.problems.clear()
            self.sessions.clear()
            self._buckets.clear()
            self.clock.reset()
            self.reseed()

    def throttled(self, region: str, operation: str, account: str = "") -> bool:
        """Whether the call exceeds its quota (per account, Region and operation)."""
        if self.config.quotas != "aws":
            return False
        rate = quota_of(operation)
        name = "<crypto>" if operation in CRYPTO_OPERATIONS else operation
        with self.lock:
            bucket = self._buckets.get((account, region, name))
            if bucket is None:
                bucket = self._buckets[(account, region, name)] = _Bucket(rate)
            return not bucket.take()

    def faulted(self, operation: str = "") -> bool:
        rate = self.config.fault_rate
        if rate <= 0.0:
            return False
        only = self.config.fault_operations
        if only and operation not in {o.strip() for o in only.split(",")}:
            return False
        with self.lock:
            return self.rng.random() < rate

    def staleness(self) -> float:
        """Seconds of staleness for one read: uniform in [0, consistency_lag]."""
        lag = self.config.consistency_lag
        if lag <= 0.0:
            return 0.0
        with self.lock:
            return self.rng.uniform(0.0, lag)


RUNTIME = Runtime()
