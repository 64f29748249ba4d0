"""The fleet file as data, and what a fleet run comes to. Pure: no boto3, no click, no rich."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksdelete.errors import ExitStatus
from ksdelete.models import PlanOptions, Status, StoreResult

DEFAULT_ACCOUNT_ID = "123456789012"


@dataclass(frozen=True, order=True)
class StoreTarget:
    """One store the file names: (account, Region, store ID), with what it must look like."""

    account_id: str
    region: str
    store_id: str
    expect_name: str | None = None
    expect_type: str | None = None  # "AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE"
    expect_keys: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.account_id, self.region, self.store_id)

    @property
    def label(self) -> str:
        """`111122223333/eu-west-1/cks-...`: the prefix of every plain line about it."""
        return f"{self.account_id}/{self.region}/{self.store_id}"


@dataclass(frozen=True)
class AccountSpec:
    """One account: how to reach it (exactly one of a role chain or a profile) and its stores.

    `role` holds full role ARNs, the first assumed from the hub, each next one from the
    previous (a chain); a bare role name in the file is made an ARN in this account.
    `external_id_env` names the environment variable that holds the ExternalId (never the
    file)."""

    account_id: str
    name: str
    stores: tuple[StoreTarget, ...]
    role: tuple[str, ...] = ()
    profile: str | None = None
    external_id_env: str | None = None


@dataclass(frozen=True)
class Hub:
    """The identity that assumes the accounts' roles: a profile, or boto3's default chain."""

    profile: str | None = None


@dataclass(frozen=True)
class Guards:
    """Blast-radius limits. `allowed_accounts` is required for anything that changes AWS;
    `forbidden_accounts` wins over everything. None: no cap."""

    allowed_accounts: frozenset[str] = frozenset()
    forbidden_accounts: frozenset[str] = frozenset()
    max_targets: int | None = None
    max_keys_per_target: int | None = None
    max_keys_scheduled_per_run: int | None = None
    max_irreversible_per_run: int | None = None


@dataclass(frozen=True)
class Rollout:
    """How far a run may go at once: accounts in flight, the canary (targets that must finish
    their mutating step before any other starts one), and the failure tolerance (refusals
    and errors after which no new mutating step starts anywhere)."""

    max_accounts: int = 4
    canary: int = 1
    failure_tolerance: int = 0


@dataclass(frozen=True)
class FleetSpec:
    """A checked fleet file."""

    name: str
    accounts: tuple[AccountSpec, ...]
    guards: Guards = Guards()
    rollout: Rollout = Rollout()
    hub: Hub = Hub()
    options: PlanOptions = PlanOptions()  # `defaults:` the plan options of every target
    version: int = 1
    path: Path | None = None
    sha256: str = ""  # of the file as read (the journal and the saved plan name it)
    # `discovery.config_aggregator: NAME@REGION`: an AWS Config aggregator in the hub account,
    # the second witness of every target's scan (None: no second witness).
    config_aggregator: tuple[str, str] | None = None

    @property
    def targets(self) -> tuple[StoreTarget, ...]:
        return tuple(t for a in self.accounts for t in a.stores)

    def account(self, account_id: str) -> AccountSpec:
        return next(a for a in self.accounts if a.account_id == account_id)

    def regions(self, account_id: str) -> tuple[str, ...]:
        """The account's Regions, in the file's order."""
        return tuple(dict.fromkeys(t.region for t in self.account(account_id).stores))


@dataclass
class TargetResult:
    """What one target came to in a fleet run."""

    target: StoreTarget
    account_name: str
    status: Status
    exit_code: ExitStatus
    result: StoreResult | None = None  # the per-store result, once the store was looked at
    assumed_role_arn: str | None = None  # the caller ARN its KMS calls were made as
    error: dict[str, Any] | None = None  # {"code", "message", ...} when no store result says
    duration_s: float = 0.0


@dataclass
class FleetRun:
    """A whole fleet invocation: its targets' results (in the file's order) and its halt."""

    spec: FleetSpec
    command: str
    run_id: str
    targets: list[TargetResult] = field(default_factory=list)
    halted: bool = False
    halt_reason: str | None = None
    hub_arn: str | None = None
    plan_id: str | None = None
    dry_run: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitStatus:
        from ksdelete.output import most_severe

        return most_severe([t.exit_code for t in self.targets])
