"""Where a store lives: its scope (account, Region, KMS endpoint), and the target reference that
names a store in one.

A scope is what AWS counts quotas by and what ksdelete keeps its memory by: one pacer, one
membership cache, one watch-position file and one set of locks per scope (ksdelete.workspace),
shared by every store of it. A `ScopeRequest` is what the operator configured (Region, profile,
endpoint) before any credentials were asked; the account is known only once they answer
(GetCallerIdentity), which turns the request into a `Scope`.

Pure data and input checks: no boto3 here (ksdelete.sessions makes sessions from requests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ksdelete.errors import UsageError
from ksdelete.planner import service_endpoint


@dataclass(frozen=True)
class ScopeRequest:
    """What the command line (or, next, a fleet file) asks for, before the credentials answer.

    With `role`, the session factory (ksdelete.sessions) assumes that chain of roles and gives
    a session with refreshable credentials; without, the profile's (or the default chain's)."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    # The Region when none is configured (--region, AWS_REGION, AWS_DEFAULT_REGION, the
    # profile): `apply` takes its plan's.
    default_region: str | None = None
    # A fleet account reached through a role: the role ARNs to assume (a chain: the first
    # from the hub session, the profile or boto3's default chain, each next from the
    # previous; empty: the hub session itself), the ExternalId the last role's trust policy
    # asks for (read from the environment variable the fleet file names; never logged) and
    # the STS session name (visible in the target account's CloudTrail; None: the session
    # factory's `ksdelete-<unique>`).
    role: tuple[str, ...] = ()
    external_id: str | None = field(default=None, repr=False)
    session_name: str | None = None


@dataclass(frozen=True, order=True)
class Scope:
    """One account and Region at one KMS endpoint. `endpoint` is the endpoint as a saved plan
    names it: None for any of AWS's own, else the normalised URL (an emulator, a VPC endpoint)."""

    account: str
    region: str
    endpoint: str | None = None

    @classmethod
    def of(cls, account: str, region: str, endpoint_url: str | None) -> Scope:
        return cls(account, region, service_endpoint(endpoint_url))

    def where(self) -> str:
        """For messages: `account 111122223333, eu-west-1`."""
        return f"account {self.account}, {self.region}"


@dataclass(frozen=True)
class TargetRef:
    """A STORE argument in its scope: the store as given (ID or name)."""

    scope: Scope
    store: str


REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def check_region(region: str) -> None:
    """A Region name as botocore accepts it (e.g. eu-west-1): a usage error otherwise."""
    if not REGION.match(region):
        raise UsageError(f"{region!r} is not an AWS Region name", where="--region",
                         hint="Use a Region code such as eu-west-1")


def check_endpoint_url(url: str | None) -> None:
    """An http(s) URL with a host, or nothing: a usage error otherwise."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not an endpoint URL", where="--endpoint-url",
                         hint="Use e.g. https://kms.eu-west-1.amazonaws.com or "
                              "http://127.0.0.1:4566")


def check_poll_interval(poll: float, endpoint_url: str | None) -> None:
    """Under a second between checks only against an endpoint on this machine (the
    emulator): against AWS it would spend the request quotas. A usage error otherwise."""
    if poll < 1.0 and not is_local(endpoint_url):
        raise UsageError(f"a poll interval of {poll:g}s would spend AWS's request quotas",
                         where="--poll-interval", hint="Use 1s or more against AWS")


def is_local(url: str | None) -> bool:
    """Whether an endpoint is on this machine (the emulator)."""
    host = urlsplit(url).hostname or "" if url else ""
    return host == "localhost" or host == "::1" or host.startswith("127.")
