"""The emulator's realism knobs."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

# kms-gates-facts §2: tracking began 2026-04-23 per two secondary sources (UNCONFIRMED).
DEFAULT_TRACKING_START = "2026-04-23T00:00:00Z"
PENDING_CRYPTO_ERRORS = ("KMSInvalidStateException", "DisabledException")
RESOURCE_NAMES = ("arn", "key_id")
AGGREGATOR = re.compile(r"^[\w-]{1,256}(@[a-z0-9-]+)?$")


@dataclass
class EmulatorConfig:
    """Realism knobs; every one is off (or AWS-neutral) by default.

    See the package docstring for what each one does.
    """

    latency_ms: float = 0.0
    quotas: str = "off"
    consistency_lag: float = 0.0
    fault_rate: float = 0.0
    # Comma-separated KMS operations the fault rate applies to ("" = every operation), e.g.
    # "DescribeKey" for an outage of one API. "cloudtrail:LookupEvents" (only when named) answers
    # LookupEvents with AccessDeniedException: a caller without that permission.
    fault_operations: str = ""
    # Comma-separated KMS operations answered UnknownOperationException, as an endpoint that
    # predates them would (an older KMS-compatible service), e.g. "GetKeyLastUsage".
    unknown_operations: str = ""
    time_scale: float = 1.0
    deletion_lateness: float = 0.0
    connect_seconds: float = 300.0
    disconnect_seconds: float = 60.0
    validate: bool = True
    seed: int | None = None
    # GetKeyLastUsage's TrackingStartDate is max(this, key creation); ISO-8601 UTC.
    key_usage_tracking_start: str = DEFAULT_TRACKING_START
    # Emulated seconds between a cryptographic call and GetKeyLastUsage showing it (AWS: up to
    # one hour).
    last_usage_delay: float = 0.0
    # Error code of a cryptographic call (and CreateGrant) on a PendingDeletion key: AWS documents
    # both (key-state table footnotes [2] and [3]); which it returns is UNCONFIRMED.
    pending_deletion_crypto_error: str = "KMSInvalidStateException"
    # TagResource calls on a key that answer KMSInvalidStateException "<arn> is pending
    # deletion." right after its CancelKeyDeletion (eventual consistency, kms-gates-facts
    # correction 6; how long AWS lags is UNCONFIRMED, so by default the first one fails).
    tag_after_cancel_failures: int = 1
    # LookupEvents Resources[].ResourceName of a KMS key event: "arn" or "key_id" (UNCONFIRMED).
    cloudtrail_resource_name: str = "arn"
    # LookupEvents finds cryptographic events by ResourceName/ResourceType too (AWS does not:
    # only management operations that change a key are indexed; kms-gates-facts correction 1).
    cloudtrail_index_crypto: bool = False
    # Emulated seconds between an event and its appearing in LookupEvents (AWS documents no
    # figure for Event history; trails: "about 5 minutes ... not guaranteed").
    cloudtrail_delay: float = 0.0
    # The CloudWatch Logs group a CloudTrail trail delivers the Region's events to, served by
    # FilterLogEvents ("" = none: ResourceNotFoundException).
    cloudtrail_log_group: str = ""
    # Access key ID -> principal ARN for CloudTrail userIdentity and STS GetCallerIdentity; an
    # unmapped access key ID is arn:aws:iam::<account>:user/<access key ID>.
    principals: dict[str, str] = field(default_factory=dict)
    # STS AssumeRole: account IDs whose roles cannot be assumed (AccessDenied).
    assume_role_deny: list[str] = field(default_factory=list)
    # STS AssumeRole: {account ID: the ExternalId its roles require} (missing or wrong:
    # AccessDenied).
    assume_role_external_id: dict[str, str] = field(default_factory=dict)
    # STS AssumeRole: {role ARN: the account its sessions really land in} (to test a guard that
    # checks GetCallerIdentity's account).
    assume_role_redirect: dict[str, str] = field(default_factory=dict)
    # AWS Config SelectAggregateResourceConfig: the aggregators that exist ("NAME" in every
    # Region, "NAME@REGION" in that one); none by default (NoSuchConfigurationAggregator).
    config_aggregators: list[str] = field(default_factory=list)
    # Emulated seconds Config's view lags behind KMS (keys created since are not listed yet,
    # keys deleted since still are; AWS's lag is UNCONFIRMED).
    config_lag_seconds: float = 86400.0
    # Key IDs Config never lists (keys its recorder does not cover).
    config_hide_keys: list[str] = field(default_factory=list)
    # Key IDs ListKeys leaves out (DescribeKey still answers): an incomplete scan.
    listkeys_hide: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, knobs: dict[str, Any]) -> None:
        """Set knobs from JSON-ish values, checking names, types and ranges."""
        known = {f.name: f for f in fields(self)}
        new = asdict(self)
        for name, value in knobs.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}; known: {sorted(known)}")
            new[name] = _coerce(name, value)
        checked = EmulatorConfig(**new)
        checked.check()
        for name in known:
            setattr(self, name, getattr(checked, name))

    def check(self) -> None:
        if self.quotas not in ("aws", "off"):
            raise ValueError("quotas must be 'aws' or 'off'")
        if self.pending_deletion_crypto_error not in PENDING_CRYPTO_ERRORS:
            raise ValueError(
                f"pending_deletion_crypto_error must be one of {PENDING_CRYPTO_ERRORS}"
            )
        if self.cloudtrail_resource_name not in RESOURCE_NAMES:
            raise ValueError(f"cloudtrail_resource_name must be one of {RESOURCE_NAMES}")
        parse_instant(self.key_usage_tracking_start)
        if not isinstance(self.principals, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.startswith("arn:")
            for k, v in self.principals.items()
        ):
            raise ValueError("principals must map access key IDs to principal ARNs")
        if not all(_is_account(a) for a in self.assume_role_deny):
            raise ValueError("assume_role_deny must list 12-digit account IDs")
        if not all(_is_account(a) and isinstance(v, str)
                   for a, v in self.assume_role_external_id.items()):
            raise ValueError("assume_role_external_id must map 12-digit account IDs to "
                             "external IDs")
        if not all(isinstance(k, str) and k.startswith("arn:") and _is_account(v)
                   for k, v in self.assume_role_redirect.items()):
            raise ValueError("assume_role_redirect must map role ARNs to 12-digit account IDs")
        if not all(isinstance(a, str) and AGGREGATOR.match(a) for a in self.config_aggregators):
            raise ValueError("config_aggregators must list aggregator names (NAME or "
                             "NAME@REGION)")
        for name in ("config_hide_keys", "listkeys_hide"):
            if not all(isinstance(k, str) and k for k in getattr(self, name)):
                raise ValueError(f"{name} must list key IDs")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        for name in (
            "latency_ms",
            "consistency_lag",
            "time_scale",
            "deletion_lateness",
            "connect_seconds",
            "disconnect_seconds",
            "last_usage_delay",
            "tag_after_cancel_failures",
            "cloudtrail_delay",
            "config_lag_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


    def tracking_start(self) -> float:
        """``key_usage_tracking_start`` as POSIX seconds."""
        return parse_instant(self.key_usage_tracking_start)


def _is_account(value: object) -> bool:
    return isinstance(value, str) and len(value) == 12 and value.isdigit()


def parse_instant(value: Any) -> float:
    """POSIX seconds from an epoch number or an ISO-8601 string (naive = UTC)."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _coerce(name: str, value: Any) -> Any:
    if name in (
        "quotas",
        "fault_operations",
        "unknown_operations",
        "pending_deletion_crypto_error",
        "cloudtrail_resource_name",
        "cloudtrail_log_group",
    ):
        return str(value)
    if name == "key_usage_tracking_start":
        instant = datetime.fromtimestamp(parse_instant(value), tz=UTC)
        return instant.isoformat().replace("+00:00", "Z")
    if name in ("principals", "assume_role_external_id", "assume_role_redirect"):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be an object")
        return {str(k): str(v) for k, v in value.items()}
    if name in ("assume_role_deny", "config_aggregators", "config_hide_keys", "listkeys_hide"):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError(f"{name} must be a list")
        return [str(v).strip() for v in value]
    if name in ("validate", "cloudtrail_index_crypto"):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if name == "seed":
        return None if value is None else int(value)
    if name == "tag_after_cancel_failures":
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a whole number")
        return int(value)
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    return float(value)
