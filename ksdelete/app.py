"""The composition root: builds the session, gateway, identity, journal, workspace (one per
scope: account, Region, endpoint), reporter and executor for every command (and the demo), in
one order that puts every check of the operator's input before the first AWS call and the
account guard right after it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from ksdelete.discover import MembershipCache
from ksdelete.errors import AccountRefused, RefusedError
from ksdelete.executor import Confirm, Executor, RunOptions
from ksdelete.gateway import Gateway
from ksdelete.journal import Journal, default_path
from ksdelete.models import Identity
from ksdelete.pacing import Pacer
from ksdelete.planner import account_refusal, endpoint_refusal, service_endpoint
from ksdelete.reporting import PlainReporter, QuietReporter, Reporter
from ksdelete.retry import RetryPolicy
from ksdelete.scope import Scope, ScopeRequest, check_poll_interval, is_local
from ksdelete.sessions import SessionFactory
from ksdelete.workspace import Workspace, open_workspace


@dataclass(frozen=True)
class Settings:
    """What every AWS-facing command is told on the command line."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    journal: Path | None = None
    poll_interval: float = 60.0
    cache: bool = True  # the key membership cache between runs (--no-cache: False)
    # `apply`: the plan's Region, used when none is configured.
    default_region: str | None = None
    watch_budget: float | None = None  # --watch-budget (None: the default)
    watch_log_group: str | None = None  # --watch-log-group
    # A fleet account's role chain, ExternalId and STS session name (ScopeRequest).
    role: tuple[str, ...] = ()
    external_id: str | None = None
    session_name: str | None = None
    run_id: str | None = None  # a fleet's one run ID, in every journal line of every scope


@dataclass
class App:
    gateway: Gateway
    identity: Identity
    journal: Journal
    executor: Executor
    workspace: Workspace  # the scope of this invocation's stores
    workspaces: Workspaces


def make_reporter(quiet: bool = False, *, debug: bool = False,
                  plan_stream: TextIO | None = None) -> Reporter:
    """The live view on a terminal, plain lines otherwise, errors only with --quiet; all on
    stderr, except a dry run's plan when `plan_stream` (stdout) is given: it is the result.

    --debug logs to stderr as well, which would tear a live view apart: it gets plain lines.
    """
    stream = sys.stderr
    if quiet:
        return QuietReporter(stream, plan_stream=plan_stream)
    if stream.isatty() and os.environ.get("TERM") != "dumb" and not debug:
        from ksdelete.live import RichReporter, terminal_console

        return RichReporter(terminal_console(), plan_stream=plan_stream)
    return PlainReporter(stream, plan_stream=plan_stream)


class Workspaces:
    """The scopes of one invocation and their workspaces, each built once (on the first store
    of its scope) and shared by every store of it: one gateway and pacer, one membership scan,
    one cache, one set of locks per account, Region and endpoint."""

    def __init__(self, settings: Settings, reporter: Reporter, *, read_only: bool,
                 policy: RetryPolicy, sessions: SessionFactory | None = None) -> None:
        self.settings = settings
        self.reporter = reporter
        self.read_only = read_only
        self.policy = policy
        self.sessions = sessions or SessionFactory()
        self.by_scope: dict[Scope, Workspace] = {}

    def gateway(self, request: ScopeRequest) -> Gateway:
        """A gateway for the request, with a pacer of its own until its scope is known (no
        AWS call yet: a bad Region, profile or endpoint fails here)."""
        return self.sessions.gateway(request, pacer=Pacer(), policy=self.policy,
                                     on_retry=self.reporter.retry)

    def workspace(self, gateway: Gateway, identity: Identity, journal: Journal, *,
                  membership: MembershipCache | None = None) -> Workspace:
        """The workspace of the scope these credentials answered for: the one already built
        for it (whose gateway and pacer then serve), or a new one around `gateway`."""
        scope = Scope.of(identity.account, identity.region, gateway.endpoint_url)
        known = self.by_scope.get(scope)
        if known is not None:
            return known
        directory = (journal.path or default_path()).parent
        if (journal.account, journal.region) != (scope.account, scope.region):
            journal = journal.view(scope.account, scope.region, caller_arn=identity.caller_arn)
        workspace = open_workspace(
            scope, identity, gateway, journal, directory=directory,
            cache=self.settings.cache, membership=membership,
            warn=lambda text: self.reporter.note(text, level="warning"))
        if self.read_only:
            # Nothing this invocation does can change anything: every scan of it is a survey.
            workspace.keys.always_shared = True
        self.by_scope[scope] = workspace
        return workspace


def build(settings: Settings, options: RunOptions, reporter: Reporter, confirm: Confirm, *,
          read_only: bool, policy: RetryPolicy | None = None,
          membership: MembershipCache | None = None,
          sessions: SessionFactory | None = None) -> App:
    """Everything a command needs. Order: bad input (region, endpoint, profile, poll interval,
    journal file) fails first, with no AWS call, and so does `apply` against another endpoint
    than its plan's; then GetCallerIdentity and the account
    guard; only then may the executor call KMS."""
    poll = settings.poll_interval
    request = ScopeRequest(settings.region, settings.profile, settings.endpoint_url,
                           default_region=settings.default_region, role=settings.role,
                           external_id=settings.external_id,
                           session_name=settings.session_name)
    policy = policy or RetryPolicy(poll_initial=min(1.0, poll), poll_max=max(poll, 0.01))
    workspaces = Workspaces(settings, reporter, read_only=read_only, policy=policy,
                            sessions=sessions)
    gateway = workspaces.gateway(request)
    planned = options.plan_endpoint if options.plan_id is not None else None
    if planned and is_local(planned) and not gateway.endpoint_configured:
        # `apply` of a plan made against an endpoint on this machine (the emulator), with
        # no endpoint configured: the plan's. Never a remote one: the requests it would be
        # sent are signed with the operator's credentials.
        gateway = workspaces.gateway(replace(request, endpoint_url=planned))
    check_poll_interval(poll, gateway.endpoint_url)
    if options.plan_id is not None:  # `apply`: only against the KMS the plan was made for
        refusal = endpoint_refusal(options.plan_endpoint, gateway.endpoint_url)
        if refusal:
            planned = service_endpoint(options.plan_endpoint)
            raise RefusedError(
                refusal.summary, where=f"plan {options.plan_id}",
                hint=f"Run with --endpoint-url {planned}" if planned else refusal.fix,
                details=refusal.details)
    path = settings.journal or default_path()
    journal = Journal(path, region=gateway.region, read_only=read_only, run_id=settings.run_id)
    if not read_only:
        journal.open()  # an unwritable journal is a usage error before anything changes
    identity = gateway.identity()
    refusal = account_refusal(identity, options.allowed_accounts)
    if refusal:
        raise AccountRefused(refusal.headline, identity=identity, details=refusal.details)
    journal.scope_to(identity.account, identity.region, caller_arn=identity.caller_arn)
    workspace = workspaces.workspace(gateway, identity, journal, membership=membership)
    if settings.watch_budget is not None:
        options = replace(options, watch_budget=settings.watch_budget)
    if settings.watch_log_group is not None:
        options = replace(options, watch_log_group=settings.watch_log_group)
    executor = Executor(workspace, reporter, options, confirm)
    return App(workspace.gateway, identity, journal, executor, workspace, workspaces)
