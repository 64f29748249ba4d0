"""The composition root: builds gateway, identity, journal, reporter and executor for every
command (and the demo), in one order that puts every check of the operator's input before the
first AWS call and the account guard right after it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from ksdelete.discover import MembershipCache
from ksdelete.errors import AccountRefused, RefusedError, UsageError
from ksdelete.executor import Confirm, Executor, RunOptions
from ksdelete.gateway import AwsTarget, Gateway, is_local
from ksdelete.journal import Journal, default_path
from ksdelete.models import Identity
from ksdelete.planner import account_refusal, endpoint_refusal, service_endpoint
from ksdelete.reporting import PlainReporter, QuietReporter, Reporter
from ksdelete.retry import RetryPolicy


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


@dataclass
class App:
    gateway: Gateway
    identity: Identity
    journal: Journal
    executor: Executor


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


def build(settings: Settings, options: RunOptions, reporter: Reporter, confirm: Confirm, *,
          read_only: bool, policy: RetryPolicy | None = None,
          membership: MembershipCache | None = None) -> App:
    """Everything a command needs. Order: bad input (region, endpoint, profile, poll interval,
    journal file) fails first, with no AWS call, and so does `apply` against another endpoint
    than its plan's; then GetCallerIdentity and the account
    guard; only then may the executor call KMS."""
    poll = settings.poll_interval
    target = AwsTarget(settings.region, settings.profile, settings.endpoint_url,
                       default_region=settings.default_region)
    policy = policy or RetryPolicy(poll_initial=min(1.0, poll), poll_max=max(poll, 0.01))
    gateway = Gateway(target, on_retry=reporter.retry, policy=policy)
    planned = options.plan_endpoint if options.plan_id is not None else None
    if planned and is_local(planned) and not gateway.endpoint_configured:
        # `apply` of a plan made against an endpoint on this machine (the emulator), with
        # no endpoint configured: the plan's. Never a remote one: the requests it would be
        # sent are signed with the operator's credentials.
        gateway = Gateway(replace(target, endpoint_url=planned), on_retry=reporter.retry,
                          policy=policy)
    if poll < 1.0 and not is_local(gateway.endpoint_url):
        raise UsageError(
            f"a poll interval of {poll:g}s would spend AWS's request quotas",
            where="--poll-interval", hint="Use 1s or more against AWS")
    if options.plan_id is not None:  # `apply`: only against the KMS the plan was made for
        refusal = endpoint_refusal(options.plan_endpoint, gateway.endpoint_url)
        if refusal:
            planned = service_endpoint(options.plan_endpoint)
            raise RefusedError(
                refusal.message, where=f"plan {options.plan_id}",
                hint=f"Run with --endpoint-url {planned}" if planned else
                "Run without --endpoint-url, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_KMS")
    path = settings.journal or default_path()
    journal = Journal(path, region=gateway.region, read_only=read_only)
    if not read_only:
        journal.open()  # an unwritable journal is a usage error before anything changes
    identity = gateway.identity()
    refusal = account_refusal(identity, options.allowed_accounts)
    if refusal:
        raise AccountRefused(refusal.message, identity=identity, where="--account-id")
    journal.account, journal.caller_arn = identity.account, identity.caller_arn
    if membership is None:
        from ksdelete.cache import open_cache

        membership = open_cache(path.parent, account=identity.account, region=identity.region,
                                endpoint=gateway.endpoint_url, enabled=settings.cache,
                                warn=lambda text: reporter.note(text, level="warning"))
    from ksdelete.cache import open_watch_file

    watch_file = open_watch_file(path.parent, account=identity.account, region=identity.region,
                                 enabled=settings.cache,
                                 warn=lambda text: reporter.note(text, level="warning"))
    if settings.watch_budget is not None:
        options = replace(options, watch_budget=settings.watch_budget)
    if settings.watch_log_group is not None:
        options = replace(options, watch_log_group=settings.watch_log_group)
    executor = Executor(gateway, journal, reporter, options, confirm, identity,
                        membership=membership, lock_dir=path.parent / "locks",
                        watch_file=watch_file)
    return App(gateway, identity, journal, executor)
