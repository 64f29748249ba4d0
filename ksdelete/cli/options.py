"""The options shared by several commands, as click options: connection, plan (derived from
ksdelete/options.py), wait; and what they become for a run (Settings, logging)."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from ksdelete.options import (
    BY_FIELD,
    PARSER_ORDER,
    SPECS,
    OptionSpec,
    from_params,
    is_account_id,
    parse_tag,
)

if TYPE_CHECKING:
    from ksdelete.app import Settings

F = TypeVar("F", bound=Callable[..., Any])

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(ctx: click.Context | None, param: click.Parameter | None, value: Any
                   ) -> float:
    """`90s`, `30m`, `12h`, `7d`, `2w`, or plain seconds."""
    if isinstance(value, int | float):
        return float(value)
    match = DURATION.match(str(value))
    if not match:
        raise click.BadParameter(
            f"{value!r} is not a duration: use e.g. 90s, 30m, 12h, 7d or 2w", ctx, param)
    return float(match.group(1)) * UNITS[match.group(2)]


Decorator = Callable[[Any], Any]


def _options(fn: F, options: list[Decorator]) -> F:
    for option in reversed(options):
        fn = option(fn)
    return fn


def _connection_options(region_help: str) -> list[Decorator]:
    """Where and how to reach AWS, and what to print: every AWS-facing command has these."""
    return [
        click.option("--region", envvar=None, help=region_help),
        click.option("--profile", help="AWS profile from ~/.aws/config (default: AWS_PROFILE)."),
        click.option("--endpoint-url", metavar="URL",
                     help="KMS endpoint (e.g. the emulator). AWS_ENDPOINT_URL_KMS also works."),
        click.option("--output", "output", type=click.Choice(["text", "json"]), default="text",
                     show_default=True,
                     help="json: exactly one JSON object on stdout; messages stay on stderr."),
        click.option("--quiet", "-q", is_flag=True, help="Print only errors and the result."),
        click.option("--debug", is_flag=True, help="Log AWS calls and retries; show tracebacks."),
        click.option("--journal", type=click.Path(dir_okay=False, path_type=Path),
                     help="Audit journal file (default: $XDG_STATE_HOME/ksdelete/journal.jsonl);"
                          " per-store locks live beside it."),
    ]


def aws_options(fn: F) -> F:
    connection = _connection_options("AWS Region (default: AWS_REGION / profile).")
    return _options(fn, [
        *connection[:3],
        click.option("--account-id", "account_ids", multiple=True, callback=check_accounts,
                     metavar="ID",
                     help="Refuse to run unless the credentials are for this account "
                          "(repeatable); checked before any other AWS call."),
        *connection[3:],
        # Read in _settings (from the context, so no command signature changes).
        click.option("--no-cache", is_flag=True, expose_value=False, callback=_remember_no_cache,
                     help="Describe every key: neither read nor write the key membership cache "
                          "(nor the watch's CloudTrail positions) kept beside the journal."),
        click.option("--watch-budget", expose_value=False, callback=_remember_watch_budget,
                     default="2m", show_default=True, metavar="DURATION",
                     help="Longest time one reading of CloudTrail may take (LookupEvents, 2 per "
                          "second); events not read by then leave the keys they may concern "
                          "unwatched, and the run refuses rather than call that 'no use'."),
        click.option("--watch-log-group", expose_value=False, metavar="NAME",
                     callback=_remember_log_group,
                     help="Watch by reading this CloudWatch Logs group, which a CloudTrail "
                          "trail of the account delivers to (FilterLogEvents, filtered by AWS "
                          "to the use errors): cheaper than Event history in a busy account."),
    ])


def _remember_watch_budget(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    budget = parse_duration(ctx, param, value)
    if budget <= 0:
        raise click.BadParameter("the watch needs some time: use e.g. 30s, 2m or 10m", ctx,
                                 param)
    if ctx.get_parameter_source(param.name or "") is not click.core.ParameterSource.DEFAULT \
            or "ksdelete.watch_budget" not in ctx.meta:
        ctx.meta["ksdelete.watch_budget"] = budget


def _remember_log_group(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        if not re.fullmatch(r"[\w.\-/#]{1,512}", value):
            raise click.BadParameter(f"{value!r} is not a log group name", ctx, param)
        ctx.meta["ksdelete.watch_log_group"] = value


def _remember_no_cache(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["ksdelete.no_cache"] = True


def _plan_option(spec: OptionSpec) -> Decorator:
    """One row of the plan options' table (ksdelete/options.py) as a click option."""
    if spec.kind == "flag":
        return click.option(spec.flag, spec.field, is_flag=True, help=spec.help)
    if spec.kind == "tags":
        return click.option(spec.flag, spec.field, multiple=True, metavar=spec.metavar,
                            callback=_parse_protect_tags, help=spec.help)
    kind = click.Choice(list(spec.choices)) if spec.kind == "choice" \
        else click.IntRange(spec.low, spec.high)
    return click.option(spec.flag, spec.field, type=kind, default=spec.default,
                        show_default=spec.show_default, metavar=spec.metavar, help=spec.help)


def plan_options(fn: F) -> F:
    """What the planner's gates check and may waive; `status` takes them too, to answer as
    `delete`. The command receives them as one PlanOptions argument, `plan`."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["plan"] = from_params({spec.field: kwargs.pop(spec.field) for spec in SPECS})
        return fn(*args, **kwargs)

    return cast(F, _options(wrapper, [_plan_option(BY_FIELD[name]) for name in PARSER_ORDER]))


def _parse_protect_tags(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
                        ) -> tuple[tuple[str, str | None], ...]:
    try:
        return tuple(parse_tag(item) for item in value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


POLL_INTERVAL = click.option(
    "--poll-interval", callback=parse_duration, default="60s", show_default=True,
    help="Longest pause between checks while waiting for AWS (1s or more against AWS).")


def wait_options(fn: F) -> F:
    """How long a changing run (delete, apply) waits for AWS, and how often it looks."""
    return _options(fn, [
        click.option("--wait/--no-wait", default=False, show_default=True,
                     help="Block until the store(s) are deleted (or --max-wait) instead of "
                          "exiting 3."),
        click.option("--max-wait", callback=parse_duration, default="31d", show_default=True,
                     help="Longest wait for AWS or for another run's lock (then exit 3): the "
                          "whole deletion with --wait, else at most 30m. E.g. 45m, 12h, 31d."),
        POLL_INTERVAL,
    ])


def check_accounts(ctx: click.Context | None, param: click.Parameter | None,
                   value: tuple[str, ...]) -> frozenset[str]:
    for account in value:
        if not is_account_id(account):
            raise click.BadParameter(f"{account!r} is not a 12-digit AWS account ID", ctx, param)
    return frozenset(value)


def _setup_logging(debug: bool) -> None:
    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        for noisy in ("urllib3", "botocore.hooks", "botocore.loaders", "botocore.parsers",
                      "botocore.endpoint", "botocore.auth", "botocore.utils",
                      "botocore.regions", "botocore.httpsession"):
            logging.getLogger(noisy).setLevel(logging.INFO)


def _settings(region: str | None, profile: str | None, endpoint_url: str | None,
              journal: Path | None, poll_interval: float = 60.0, *,
              default_region: str | None = None) -> Settings:
    """What the connection options (and --no-cache, --watch-budget, --watch-log-group, read
    from the context) say for the run."""
    from ksdelete.app import Settings

    context = click.get_current_context(silent=True)
    no_cache = bool(context and context.meta.get("ksdelete.no_cache"))
    budget = context.meta.get("ksdelete.watch_budget") if context else None
    group = context.meta.get("ksdelete.watch_log_group") if context else None
    return Settings(region, profile, endpoint_url, journal, poll_interval, cache=not no_cache,
                    default_region=default_region,
                    watch_budget=float(budget) if budget is not None else None,
                    watch_log_group=str(group) if group else None)


def check_stores(ctx: click.Context | None, param: click.Parameter | None,
                 value: tuple[str, ...]) -> tuple[str, ...]:
    """A STORE is a custom key store ID or name: 1 to 256 characters (the KMS limits)."""
    for ref in value:
        if not 1 <= len(ref) <= 256:
            raise click.BadParameter(
                f"{ref!r} is not a custom key store ID or name (1-256 characters)", ctx, param)
    return value


def apply_options(fn: F) -> F:
    """The options of `apply`: those of `delete` that do not change what was reviewed."""
    return _options(fn, _connection_options(
        "AWS Region (default: AWS_REGION / profile, else the plan's); must be the "
        "plan's."))
