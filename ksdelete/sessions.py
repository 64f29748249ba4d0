"""boto3 sessions for scope requests (the gateway's one neighbour that imports boto3).

`SessionFactory.session_for(request)` is where credentials come from: the profile (or boto3's
default chain), the hub session; and, when the request names roles, the credentials of
assuming that chain from the hub session. Those are botocore `RefreshableCredentials` whose
refresh assumes the whole chain again, so a week-long `--wait` outlives the one-hour limit of a
chained session. A factory assumes a chain once, however many Regions of the account ask for
it. Credentials live in memory only: never logged, journalled or exported.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.loaders
import botocore.regions
import botocore.session

from ksdelete.errors import AssumeRoleError, UsageError
from ksdelete.gateway import Gateway
from ksdelete.pacing import Pacer
from ksdelete.retry import RetryObserver, RetryPolicy
from ksdelete.scope import ScopeRequest, check_endpoint_url, check_region, is_local

# arn:<partition>:iam::<12 digits>:role/<optional path/><name> (IAM's limits on both).
ROLE_ARN = re.compile(
    r"^arn:(aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):iam::([0-9]{12}):role/"
    r"(?:[\x21-\x7e]{0,510}/)?[\w+=,.@-]{1,64}$")
# STS's rule for RoleSessionName.
SESSION_NAME_MAX = 64
_NOT_IN_SESSION_NAME = re.compile(r"[^\w+=,.@-]", re.ASCII)
ASSUME_HINT = ("Check the role's trust policy, the hub's sts:AssumeRole permission and the "
               "ExternalId")
UNREACHABLE_HINT = "Check the network and the Region's STS endpoint"


def check_role_arn(arn: str) -> str:
    """The account of a role ARN; a usage error if it is not one (before any call)."""
    match = ROLE_ARN.match(arn)
    if match is None:
        raise UsageError(f"{arn!r} is not an IAM role ARN", where="role",
                         hint="Use arn:aws:iam::<12-digit account>:role/<name>")
    return match.group(2)


def clean_session_name(text: str) -> str:
    """`text` as STS takes a RoleSessionName: 2-64 characters of [\\w+=,.@-]."""
    cleaned = _NOT_IN_SESSION_NAME.sub("-", text)[:SESSION_NAME_MAX]
    return cleaned if len(cleaned) >= 2 else (cleaned + "--")[:2]


def default_session_name() -> str:
    """`ksdelete-<UTC time>-<random>`: unique per run, and telling when it ran."""
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return clean_session_name(f"ksdelete-{now}-{uuid.uuid4().hex[:8]}")


def sts_endpoint(region: str, endpoint_url: str | None) -> str | None:
    """Where the chain's AssumeRole calls go: the emulator when the KMS endpoint is on this
    machine (it serves STS on the same port); boto3's own setting when one is made
    (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL: None lets boto3 read it); else STS's regional
    endpoint for the Region, named explicitly (never the global one). Another --endpoint-url
    (a KMS VPC endpoint) is for KMS only."""
    if endpoint_url and is_local(endpoint_url):
        return endpoint_url
    if os.environ.get("AWS_ENDPOINT_URL_STS") or os.environ.get("AWS_ENDPOINT_URL"):
        return None
    return f"https://sts.{region}.{_dns_suffix(region)}"


@functools.cache
def _dns_suffix(region: str) -> str:
    """The DNS suffix of the Region's partition (amazonaws.com, amazonaws.com.cn, ...)."""
    resolver = botocore.regions.EndpointResolver(
        botocore.loaders.create_loader().load_data("endpoints"))
    return str(resolver.get_partition_dns_suffix(resolver.get_partition_for_region(region)))


class _Provided(botocore.credentials.CredentialProvider):  # type: ignore[misc]
    """Hands botocore the one credentials object a factory made for a chain."""

    METHOD = "assume-role-chain"

    def __init__(self, credentials: botocore.credentials.Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


@dataclass
class _Assumed:
    """One chain's credentials (or the error assuming it gave), shared by its Regions."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    credentials: botocore.credentials.RefreshableCredentials | None = None
    error: AssumeRoleError | None = None


@dataclass(frozen=True)
class _Chain:
    """What one assumed session is for: the same key, the same credentials."""

    profile: str | None
    roles: tuple[str, ...]
    external_id: str | None = field(repr=False)
    session_name: str
    endpoint_url: str | None  # the request's (KMS) endpoint: the emulator's, or None for AWS


class SessionFactory:
    """Sessions by request: the input checks that need no AWS call come first (endpoint URL,
    Region, profile, role ARNs), so a mistyped option never reaches AWS. One factory per run:
    it assumes each chain once, and its sessions share those credentials."""

    def __init__(self, session_name: str | None = None) -> None:
        self.session_name = clean_session_name(session_name or default_session_name())
        self._lock = threading.Lock()
        self._assumed: dict[_Chain, _Assumed] = {}

    def session_for(self, request: ScopeRequest) -> boto3.session.Session:
        check_endpoint_url(request.endpoint_url)
        if request.region == "":
            raise UsageError("the Region is empty", where="--region",
                             hint="Pass a Region code such as eu-west-1, or leave --region out")
        for arn in request.role:
            check_role_arn(arn)
        if request.external_id is not None and not request.role:
            raise UsageError("an ExternalId is given but no role to assume", where="role",
                             hint="Name the role whose trust policy asks for the ExternalId")
        hub = self._hub(request)
        if not request.role:
            return hub
        region = self.region_for(request, hub)
        credentials = self._credentials(hub, request, region)
        core = botocore.session.Session(profile=request.profile)
        resolver = botocore.credentials.CredentialResolver(providers=[_Provided(credentials)])
        core.register_component("credential_provider", resolver)
        return boto3.session.Session(botocore_session=core, region_name=region)

    def _hub(self, request: ScopeRequest) -> boto3.session.Session:
        try:
            return boto3.session.Session(
                profile_name=request.profile,
                # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what most tools set.
                region_name=request.region or os.environ.get("AWS_REGION") or None,
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise _config_error(request, exc) from exc

    def _credentials(self, hub: boto3.session.Session, request: ScopeRequest, region: str
                     ) -> botocore.credentials.RefreshableCredentials:
        """The chain's credentials: assumed on first use, then shared (errors too) by every
        Region of the account. The chain is assumed (and refreshed) at the STS endpoint of the
        Region that asked first."""
        name = clean_session_name(request.session_name or self.session_name)
        key = _Chain(request.profile, request.role, request.external_id, name,
                     request.endpoint_url)
        with self._lock:
            entry = self._assumed.setdefault(key, _Assumed())
        with entry.lock:
            if entry.error is not None:
                raise entry.error
            if entry.credentials is None:
                endpoint = sts_endpoint(region, request.endpoint_url)

                def refresh() -> dict[str, str]:
                    return assume_chain(hub, request.role, external_id=request.external_id,
                                        session_name=name, region=region, endpoint=endpoint)
                try:
                    entry.credentials = \
                        botocore.credentials.RefreshableCredentials.create_from_metadata(
                            refresh(), refresh_using=refresh, method=_Provided.METHOD)
                except AssumeRoleError as exc:
                    entry.error = exc
                    raise
            return entry.credentials

    @staticmethod
    def region_for(request: ScopeRequest, session: boto3.session.Session) -> str:
        """The Region the request resolves to (the session's, else the request's default)."""
        try:
            region = session.region_name or request.default_region
        except botocore.exceptions.BotoCoreError as exc:
            raise _config_error(request, exc) from exc
        if not region:
            raise UsageError("no AWS Region configured", where="--region",
                             hint="Pass --region or set AWS_REGION")
        check_region(region)
        return region

    def gateway(self, request: ScopeRequest, *, pacer: Pacer | None = None,
                policy: RetryPolicy | None = None, on_retry: RetryObserver | None = None
                ) -> Gateway:
        """A gateway for the request: its own pacer unless given one (a scope's)."""
        session = self.session_for(request)
        return Gateway(session, self.region_for(request, session), request.endpoint_url,
                       pacer or Pacer(), policy=policy, on_retry=on_retry)


def assume_chain(hub: boto3.session.Session, roles: tuple[str, ...], *,
                 external_id: str | None, session_name: str, region: str,
                 endpoint: str | None) -> dict[str, str]:
    """Assume `roles` in turn, the first with the hub's credentials, each next with the
    previous role's; the last role's credentials as botocore's refresh metadata. The
    ExternalId goes to the last role (the target's trust policy asks for it). Raises
    AssumeRoleError naming the role that failed and its account."""
    config = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3},
                                    connect_timeout=5, read_timeout=20)
    session = hub
    answer: dict[str, Any] = {}
    for hop, arn in enumerate(roles, 1):
        params = {"RoleArn": arn, "RoleSessionName": session_name}
        if external_id is not None and hop == len(roles):
            params["ExternalId"] = external_id
        try:
            client = session.client("sts", region_name=region, endpoint_url=endpoint,
                                    config=config)
            answer = client.assume_role(**params)["Credentials"]
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise _assume_error(roles, hop, str(error.get("Code") or "Unknown"),
                                str(error.get("Message") or "")) from exc
        except botocore.exceptions.BotoCoreError as exc:
            code = "ConnectionError" if isinstance(exc, (
                botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.ConnectTimeoutError)) else type(exc).__name__
            raise _assume_error(roles, hop, code, str(exc)) from exc
        session = boto3.session.Session(
            aws_access_key_id=answer["AccessKeyId"],
            aws_secret_access_key=answer["SecretAccessKey"],
            aws_session_token=answer["SessionToken"], region_name=region)
    expiration = answer["Expiration"]
    return {
        "access_key": answer["AccessKeyId"],
        "secret_key": answer["SecretAccessKey"],
        "token": answer["SessionToken"],
        "expiry_time": expiration.isoformat() if isinstance(expiration, datetime)
        else str(expiration),
    }


def _assume_error(roles: tuple[str, ...], hop: int, code: str, message: str
                  ) -> AssumeRoleError:
    arn = roles[hop - 1]
    account = check_role_arn(arn)
    target = check_role_arn(roles[-1])
    what = f"cannot assume {arn} (account {account}): {code}"
    if hop < len(roles):
        what += f" (role {hop} of {len(roles)}, on the way to account {target})"
    said = " ".join(message.split())
    return AssumeRoleError(what, account=account, role_arn=arn, aws_code=code,
                           hint=UNREACHABLE_HINT if code == "ConnectionError" else ASSUME_HINT,
                           details=(f"AWS: {said}",) if said else ())


def open_gateway(request: ScopeRequest, *, pacer: Pacer | None = None,
                 policy: RetryPolicy | None = None, on_retry: RetryObserver | None = None
                 ) -> Gateway:
    """A gateway for one request with the default session factory (tests, the probe)."""
    return SessionFactory().gateway(request, pacer=pacer, policy=policy, on_retry=on_retry)


def _config_error(request: ScopeRequest, exc: botocore.exceptions.BotoCoreError) -> UsageError:
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        # The profile may come from AWS_PROFILE (request.profile is then None).
        name = request.profile or exc.kwargs.get("profile") or os.environ.get("AWS_PROFILE")
        source = "--profile" if request.profile else "AWS_PROFILE"
        return UsageError(
            f"AWS profile {name!r} not found", where=source,
            hint=f"Check the profile names in ~/.aws/config (aws configure list-profiles), "
                 f"or fix {source}")
    # e.g. an unparsable config file
    return UsageError(f"cannot read the AWS configuration: {exc}", where="--profile",
                      hint="Check ~/.aws/config and ~/.aws/credentials")
