"""boto3 sessions for scope requests (the gateway's one neighbour that imports boto3).

`SessionFactory.session_for(request)` is where credentials come from: the profile (or boto3's
default chain) today; assuming a role per scope is the next means, added here without the
gateway or the workspace changing (the Gateway takes its session from outside).
"""

from __future__ import annotations

import os

import boto3
import botocore.exceptions

from ksdelete.errors import UsageError
from ksdelete.gateway import Gateway
from ksdelete.pacing import Pacer
from ksdelete.retry import RetryObserver, RetryPolicy
from ksdelete.scope import ScopeRequest, check_endpoint_url, check_region


class SessionFactory:
    """Sessions by request: the input checks that need no AWS call come first (endpoint URL,
    Region, profile), so a mistyped option never reaches AWS."""

    def session_for(self, request: ScopeRequest) -> boto3.session.Session:
        check_endpoint_url(request.endpoint_url)
        if request.region == "":
            raise UsageError("the Region is empty", where="--region",
                             hint="Pass a Region code such as eu-west-1, or leave --region out")
        try:
            return boto3.session.Session(
                profile_name=request.profile,
                # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what most tools set.
                region_name=request.region or os.environ.get("AWS_REGION") or None,
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise _config_error(request, exc) from exc

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
