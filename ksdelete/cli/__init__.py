"""The command line: parse, confirm, wire objects, map errors to exit codes. Never imports boto3."""

from __future__ import annotations

import difflib
import functools
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from ksdelete import exitcodes, signals
from ksdelete.errors import (
    DISK_FULL,
    AccountRefused,
    ExitStatus,
    KsdeleteError,
    RefusedError,
    Terminated,
    UsageError,
    disk_full_hint,
    os_reason,
)
from ksdelete.meta import SHELLS, completion_script, show_version
from ksdelete.models import (
    STORE_ID,
    Identity,
    Plan,
    PlanOptions,
    Snapshot,
    Status,
    StoreResult,
)
from ksdelete.options import (
    BY_FIELD,
    PARSER_ORDER,
    SPECS,
    OptionSpec,
    from_params,
    option_words,
    parse_tag,
)
from ksdelete.output import document, exit_status, most_severe
from ksdelete.reporting import Reporter, printable, summary_lines

if TYPE_CHECKING:
    from ksdelete.app import App, Settings
    from ksdelete.executor import RunOptions

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


# Options every AWS-facing command takes; accepted before the subcommand too, as the AWS
# CLI's habit has it (`ksdelete --region eu-west-1 status STORE`). True: takes a value.
GLOBAL_OPTIONS: dict[str, bool] = {
    "--region": True, "--profile": True, "--endpoint-url": True, "--output": True,
    "--journal": True, "--account-id": True, "--debug": False, "--quiet": False, "-q": False,
    "--no-cache": False, "--watch-budget": True, "--watch-log-group": True,
}


class DefaultGroup(click.Group):
    """A group whose default command is `delete`: `ksdelete cks-123 --dry-run` works.

    A first word that looks like a mistyped command (or `help`) is a usage error, never a
    STORE: `ksdelete cancle STORE --yes` must not delete STORE.
    """

    default_command = "delete"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:
            return super().parse_args(ctx, args)  # plain `ksdelete`: the help
        leading, rest = _split_leading_options(args)
        if rest and rest[0] in ("--help", "-h", "--version") and not leading:
            return super().parse_args(ctx, args)
        word = rest[0] if rest else None
        if word is not None and word in self.commands:
            return super().parse_args(ctx, [word, *leading, *rest[1:]])
        # The implicit `delete`: no STORE may be, or look like, a command name, wherever it
        # stands (`ksdelete --yes cancel STORE` must not delete STORE).
        for store in self._stores(rest):
            self._refuse_near_miss(ctx, store)
        return super().parse_args(ctx, [self.default_command, *leading, *rest])

    def _stores(self, args: list[str]) -> list[str]:
        """The positional words of a `delete` command line (not options, not their values)."""
        takes_value = {name for param in self.commands[self.default_command].params
                       if isinstance(param, click.Option) and not param.is_flag
                       for name in param.opts}
        words: list[str] = []
        skip = False
        for index, arg in enumerate(args):
            if skip:
                skip = False
            elif arg == "--":
                words.extend(args[index + 1:])
                break
            elif arg.startswith("-") and arg != "-":
                skip = arg in takes_value
            else:
                words.append(arg)
        return words

    def _refuse_near_miss(self, ctx: click.Context, word: str) -> None:
        if word == "help":
            raise click.UsageError("'help' is not a command; did you mean 'ksdelete --help'? "
                                   "To act on a store named 'help', use 'ksdelete delete help'",
                                   ctx)
        if STORE_ID.match(word):
            return
        if word in self.commands:
            raise click.UsageError(
                f"{word!r} is a command, but it comes after options: put the command first "
                f"('ksdelete {word} ...'). To act on a store named {word!r}, use "
                f"'ksdelete delete {word}'", ctx)
        close = difflib.get_close_matches(word.lower(), list(self.commands), n=1, cutoff=0.6)
        if close:
            raise click.UsageError(
                f"{word!r} is not a command; did you mean {close[0]!r}? To act on a store "
                f"named {word!r}, use 'ksdelete delete {word}'", ctx)


def _split_leading_options(args: list[str]) -> tuple[list[str], list[str]]:
    """Global options given before the subcommand, and everything from the subcommand on."""
    leading: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name = arg.split("=", 1)[0]
        if name not in GLOBAL_OPTIONS:
            break
        takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
        leading.extend(args[index:index + (2 if takes_value else 1)])
        index += 2 if takes_value else 1
    return leading, args[index:]


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


def wait_options(fn: F) -> F:
    """How long a changing run (delete, apply) waits for AWS, and how often it looks."""
    for option in reversed([
        click.option("--wait/--no-wait", default=False, show_default=True,
                     help="Block until the store(s) are deleted (or --max-wait) instead of "
                          "exiting 3."),
        click.option("--max-wait", callback=parse_duration, default="31d", show_default=True,
                     help="Longest wait for AWS or for another run's lock (then exit 3): the "
                          "whole deletion with --wait, else at most 30m. E.g. 45m, 12h, 31d."),
        click.option("--poll-interval", callback=parse_duration, default="60s",
                     show_default=True,
                     help="Longest pause between checks while waiting for AWS (1s or more "
                          "against AWS)."),
    ]):
        fn = option(fn)
    return fn


def check_accounts(ctx: click.Context | None, param: click.Parameter | None,
                   value: tuple[str, ...]) -> frozenset[str]:
    for account in value:
        if not re.fullmatch(r"\d{12}", account):
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


def _confirmer(yes: bool, action: str, identity: Callable[[], Identity | None], *,
               quiet: bool = False) -> Callable[[Snapshot, Plan], bool]:
    def confirm(snap: Snapshot, plan: Plan) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to {action} without confirmation: there is no terminal",
                where=snap.store.id, hint="Pass --yes for unattended runs (after a --dry-run)",
            )
        store = snap.store
        who = identity()
        if quiet:  # --quiet showed no plan: nobody confirms what they have not seen
            from ksdelete.reporting import plan_lines

            for line in plan_lines(snap, plan):
                sys.stderr.write(printable(line) + "\n")
        place = f" in account {who.account}, {who.region}" if who else ""
        cancelled = list(plan.reconfirm)
        if cancelled:
            sys.stderr.write(printable(
                f"{len(cancelled)} key(s) were pending deletion and then cancelled by "
                f"someone: {', '.join(cancelled)}. Confirming schedules them again.") + "\n")
        sys.stderr.write(printable(f"Type the store ID ({store.id}) or name to {action}{place}: "))
        sys.stderr.flush()
        answer = sys.stdin.readline()  # Ctrl-C raises KeyboardInterrupt: exit 130
        if not answer:  # end of input (Ctrl-D): not confirmed
            sys.stderr.write("\n")
            return False
        typed = answer.strip()
        return typed != "" and typed in (store.id, store.name)

    return confirm


def _require_confirmation_channel(yes: bool, command: str) -> None:
    """Fail before touching AWS if a change would need a confirmation nobody can type."""
    if not yes and not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {command} without confirmation: there is no terminal",
            where="stdin", hint="Pass --yes for unattended runs (after a --dry-run)",
        )


class Invocation:
    """One command's results so far: whatever stops it (an error, Ctrl-C, SIGTERM), the
    summary and the JSON document list every store and every action taken."""

    def __init__(self, command: str, *, output: str, quiet: bool, debug: bool,
                 dry_run: bool = False, missing_ok: bool = False) -> None:
        self.command = command
        self.output = output
        self.quiet = quiet
        self.debug = debug
        self.dry_run = dry_run
        self.missing_ok = missing_ok
        self.results: list[StoreResult] = []
        self.identity: Identity | None = None
        self.reporter: Reporter | None = None
        self.plan_id: str | None = None  # the saved plan made or applied
        self.run_id: str | None = None  # the journal's: joins the JSON to the journal
        self.after: list[str] = []  # lines after the summary (e.g. the saved plan's)

    def run(self, body: Callable[[Invocation], None]) -> None:
        try:
            body(self)
        except KeyboardInterrupt as exc:
            code = ExitStatus.TERMINATED if isinstance(exc, Terminated) \
                else ExitStatus.INTERRUPTED
            click.echo("ksdelete: stopped by " + ("SIGTERM" if code is ExitStatus.TERMINATED
                                                   else "Ctrl-C")
                       + "; every change made is listed below and in the journal", err=True)
            self.finish(code)
        except (KsdeleteError, Exception) as exc:  # noqa: BLE001 - the CLI boundary
            self.fail(exc)
        self.finish()

    def finish(self, code: ExitStatus | None = None) -> None:
        results = self.results
        if code is None:
            code = most_severe([exit_status(r, missing_ok=self.missing_ok) for r in results])
        if self.reporter is not None:
            self.reporter.finish(results)
        lines = summary_lines(results, None if self.quiet else self.identity,
                              command=self.command, shown=self._shown()) + self.after
        if self.output == "json":
            _emit(json.dumps(document(self.command, results, int(code), dry_run=self.dry_run,
                                      identity=self.identity, plan_id=self.plan_id,
                                      run_id=self.run_id),
                             default=str), code)
            if not self.quiet and not getattr(self.reporter, "shows_summary", False):
                for line in lines:
                    click.echo(printable(line), err=True)
        else:
            for line in lines:
                _emit(printable(line), code)
        sys.exit(int(code))

    def fail(self, exc: BaseException) -> None:
        """One line on stderr (a traceback only with --debug); JSON mode still prints one
        object, with every store that had already run."""
        if isinstance(exc, AccountRefused) and isinstance(exc.identity, Identity):
            self.identity = exc.identity  # the JSON says whose credentials these are
        if isinstance(exc, KsdeleteError):
            code, message, error_code = exc.exit_status, str(exc), exc.code
        elif isinstance(exc, OSError) and exc.errno in DISK_FULL:
            where = f" ({exc.filename})" if exc.filename else ""
            code, error_code = ExitStatus.ERROR, "disk-full"
            message = f"{os_reason(exc)}{where}. {disk_full_hint(exc.filename or 'it')}"
        else:
            code, message, error_code = ExitStatus.ERROR, \
                f"unexpected {type(exc).__name__}: {exc}", "internal"
        if self.debug:
            traceback.print_exception(exc, file=sys.stderr)
        click.echo(printable(f"ksdelete: error: {message}"), err=True)
        if self.output == "json":
            _emit(json.dumps(document(self.command, self.results, int(code),
                                      dry_run=self.dry_run, identity=self.identity,
                                      error={"code": error_code, "message": message},
                                      plan_id=self.plan_id, run_id=self.run_id),
                             default=str), code)
        else:  # stdout carries the result: what was done before it stopped (the error: above)
            for line in summary_lines(self.results, self.identity, command=self.command,
                                      shown=self._shown()):
                _emit(line, code)
        sys.exit(int(code))

    def _shown(self) -> Callable[[str], bool] | None:
        """Whether the reporter already printed an error (the summary does not repeat it)."""
        shown: Callable[[str], bool] | None = getattr(self.reporter, "shown", None)
        return shown


def _emit(line: str, code: ExitStatus) -> None:
    """stdout, for the result; a reader that went away (`| head`) ends the run quietly."""
    try:
        click.echo(line)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(int(code))


def _settings(region: str | None, profile: str | None, endpoint_url: str | None,
              journal: Path | None, poll_interval: float = 60.0, *,
              default_region: str | None = None) -> Any:
    from ksdelete.app import Settings

    context = click.get_current_context(silent=True)
    no_cache = bool(context and context.meta.get("ksdelete.no_cache"))
    budget = context.meta.get("ksdelete.watch_budget") if context else None
    group = context.meta.get("ksdelete.watch_log_group") if context else None
    return Settings(region, profile, endpoint_url, journal, poll_interval, cache=not no_cache,
                    default_region=default_region,
                    watch_budget=float(budget) if budget is not None else None,
                    watch_log_group=str(group) if group else None)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=show_version, help="Show the versions of ksdelete, Python, boto3 and "
              "botocore, and exit.")
def cli() -> None:
    """Safely delete an AWS KMS custom key store.

    Runs the workflow AWS documents for DeleteCustomKeyStore: find every KMS key in the
    store, schedule their deletion, wait out the 7-30 day window, disconnect the store,
    delete it and verify it is gone. Each run re-reads AWS and moves as far as it can, so
    it can be called again (by hand or from cron) until the store is gone.

    `delete` is the default command:

    \b
      ksdelete cks-1234567890abcdef0 --dry-run
      ksdelete my-store-name --yes --output json
    """


def check_stores(ctx: click.Context | None, param: click.Parameter | None,
                 value: tuple[str, ...]) -> tuple[str, ...]:
    """A STORE is a custom key store ID or name: 1 to 256 characters (the KMS limits)."""
    for ref in value:
        if not 1 <= len(ref) <= 256:
            raise click.BadParameter(
                f"{ref!r} is not a custom key store ID or name (1-256 characters)", ctx, param)
    return value


@cli.command()
@click.argument("stores", nargs=-1, required=True, metavar="STORE...", callback=check_stores)
@aws_options
@click.option("--dry-run", is_flag=True, help="Show the plan; make no change at all.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@plan_options
@wait_options
@click.option("--missing-ok", is_flag=True, help="A store that does not exist is not an error.")
@click.option("--save-plan", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --dry-run: write the plan to FILE for review and `ksdelete apply`.")
@exitcodes.documented("delete")
def delete(stores: tuple[str, ...], region: str | None, profile: str | None,
           endpoint_url: str | None, account_ids: frozenset[str], output: str, quiet: bool,
           debug: bool, journal: Path | None, dry_run: bool, yes: bool,
           plan: PlanOptions, wait: bool, max_wait: float, poll_interval: float,
           missing_ok: bool, save_plan: Path | None) -> None:
    """Delete custom key store(s) STORE (ID or name), as far as AWS allows now.

    Every STORE is resolved before anything changes; one that cannot be stops the whole
    run. Every STORE is surveyed, checked and confirmed before the first change to any: one
    refused refuses all. A STORE that looks like a key store ID (cks-...) is only looked up
    as an ID.

    \b
    Examples:
      ksdelete cks-1234567890abcdef0 --dry-run
      ksdelete cks-1234567890abcdef0 --dry-run --save-plan plan.json
      ksdelete cks-1234567890abcdef0 --pending-window-days 7 --yes
      ksdelete my-xks-store --wait --max-wait 45d --yes --account-id 111122223333 \\
        --output json
    """
    _setup_logging(debug)
    inv = Invocation("delete", output=output, quiet=quiet, debug=debug, dry_run=dry_run,
                     missing_ok=missing_ok)

    def body(inv: Invocation) -> None:
        from ksdelete import service
        from ksdelete.app import make_reporter
        from ksdelete.executor import RunOptions

        if save_plan is not None and (not dry_run or missing_ok):
            raise UsageError("--save-plan saves a dry run's plan of existing stores",
                             where="--save-plan",
                             hint="Use it with --dry-run and without --missing-ok")
        if not dry_run:
            _require_confirmation_channel(yes, "delete")
        # A dry run's plan is what the operator asked for: stdout (JSON: in the document).
        inv.reporter = reporter = make_reporter(
            quiet, debug=debug,
            plan_stream=sys.stdout if dry_run and output == "text" else None)
        options = RunOptions(
            plan=plan,
            dry_run=dry_run, wait=wait, max_wait=max_wait, missing_ok=missing_ok,
            allowed_accounts=account_ids,
            interactive=not yes and not dry_run and sys.stdin.isatty(),
        )
        app = service.open_app(
            _settings(region, profile, endpoint_url, journal, poll_interval), options, reporter,
            _confirmer(yes, "delete it", lambda: inv.identity, quiet=quiet), read_only=dry_run)
        inv.identity, inv.run_id = app.identity, app.journal.run_id
        reporter.start(command="delete", dry_run=dry_run)
        try:
            service.delete(app, stores, inv.results, missing_ok=missing_ok)
        finally:
            app.journal.close()
        if save_plan is not None:
            _save_plan(inv, app, save_plan, options.plan)

    inv.run(body)


def _save_plan(inv: Invocation, app: App, path: Path, options: PlanOptions) -> None:
    """--save-plan: write the dry run's plan, if every store has one."""
    from ksdelete import planfile, service

    unplanned = [r for r in inv.results if r.status is not Status.PLANNED]
    if unplanned or not inv.results:
        names = ", ".join(f"{r.ref} ({r.status})" for r in unplanned)
        inv.after.append(f"the plan was not saved: {names} cannot be planned")
        return
    content = service.save_plan(app, inv.results, path, options)
    inv.plan_id = plan_id = planfile.short_id(content["digest"])
    keys = sum(len(r.keys) for r in inv.results)
    inv.after.append(f"Saved plan {plan_id} to {path}: {len(inv.results)} store(s), {keys} "
                     f"key(s). Apply exactly this plan with: ksdelete apply {path}")


def apply_options(fn: F) -> F:
    """The options of `apply`: those of `delete` that do not change what was reviewed."""
    return _options(fn, _connection_options(
        "AWS Region (default: AWS_REGION / profile, else the plan's); must be the "
        "plan's."))


@cli.command(name="apply")
@click.argument("plan_file", metavar="FILE", type=click.Path(path_type=Path))
@apply_options
@wait_options
@exitcodes.documented("apply")
def apply_plan(plan_file: Path, region: str | None, profile: str | None,
               endpoint_url: str | None, output: str, quiet: bool, debug: bool,
               journal: Path | None, wait: bool, max_wait: float, poll_interval: float) -> None:
    """Apply a saved plan (FILE from --dry-run --save-plan): no prompt, no --yes.

    The review of the plan was the approval. Each run converges as `delete` does (same
    exit codes), but only within the plan: its stores by ID (never by name), its keys, its
    options, in its account and Region, against its KMS endpoint (with none configured: the
    plan's Region, and its endpoint if that is on this machine). It refuses (exit 4, nothing
    changed) when the credentials' account, the Region or the endpoint is not the plan's, a
    store's type changed, a key the plan does not name is in a store (and not already pending
    deletion), or a planned key's deletion was cancelled. Every store of the plan is checked
    before the first change to any: one refused refuses all. A store of the plan that no
    longer exists is done.
    A missing, unreadable, malformed or edited FILE is a usage error (exit 2).

    \b
    Example:
      ksdelete cks-1234567890abcdef0 --dry-run --save-plan plan.json   # review, commit
      ksdelete apply plan.json --output json                          # cron, daily
    """
    _setup_logging(debug)
    inv = Invocation("apply", output=output, quiet=quiet, debug=debug)

    def body(inv: Invocation) -> None:
        from ksdelete import planfile, service
        from ksdelete.app import make_reporter
        from ksdelete.executor import RunOptions

        saved = planfile.read(plan_file)
        inv.plan_id = saved.plan_id
        inv.reporter = reporter = make_reporter(quiet, debug=debug)
        options = RunOptions(plan=saved.options, wait=wait, max_wait=max_wait,
                             allowed_accounts=frozenset({saved.account}), interactive=False,
                             approved=saved.stores, plan_id=saved.plan_id,
                             plan_endpoint=saved.endpoint_url)
        try:
            app = service.open_app(_settings(region, profile, endpoint_url, journal,
                                             poll_interval, default_region=saved.region),
                                   options, reporter, lambda snap, plan: True, read_only=False)
        except AccountRefused as exc:
            account = getattr(exc.identity, "account", "unknown")
            raise AccountRefused(
                f"the credentials are for account {account}, but the plan {saved.plan_id} is "
                f"for account {saved.account}; nothing was changed", identity=exc.identity,
                where=str(plan_file), hint="Use credentials for the plan's account") from exc
        inv.identity, inv.run_id = app.identity, app.journal.run_id
        try:
            if app.identity.region != saved.region:
                raise RefusedError(
                    f"the Region is {app.identity.region}, but the plan {saved.plan_id} is for "
                    f"{saved.region}; nothing was changed", where=str(plan_file),
                    hint=f"Run with --region {saved.region}")
            reporter.start(command="apply", dry_run=False)
            reporter.note(f"applying plan {saved.plan_id} ({plan_file}), made "
                          f"{saved.document.get('created_at')} by "
                          f"{saved.document.get('created_by')}")
            service.apply(app, saved, inv.results)
        finally:
            app.journal.close()

    inv.run(body)


@cli.command(name="show-plan")
@click.argument("plan_file", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--output", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: exactly one JSON object on stdout.")
@exitcodes.documented("show-plan")
def show_plan(plan_file: Path, output: str) -> None:
    """Show a saved plan (FILE from --dry-run --save-plan) as the dry run did; no AWS call.

    For a review in a pull request or a ticket. A missing, unreadable, malformed or edited
    FILE is a usage error (exit 2). The plan's digest detects edits; it is not a signature.

    \b
    Example:
      ksdelete show-plan plan.json
    """
    inv = Invocation("show-plan", output=output, quiet=False, debug=False, dry_run=True)

    def body(inv: Invocation) -> None:
        from ksdelete import planfile
        from ksdelete.models import Snapshot
        from ksdelete.reporting import plan_lines, where

        saved = planfile.read(plan_file)
        inv.plan_id = saved.plan_id
        inv.results = planfile.restore(saved)
        inv.identity = identity = planfile.identity_of(saved)
        doc = saved.document
        if output == "json":
            return
        lines = [f"plan {saved.plan_id} ({plan_file}), made {doc.get('created_at')} by "
                 f"ksdelete {doc.get('ksdelete_version')}", where(identity)]
        if doc.get("endpoint_url"):
            lines.append(f"endpoint {doc['endpoint_url']}")
        opts = saved.options
        lines.append("options: " + " ".join(option_words(opts)))
        for result in inv.results:
            assert result.store is not None and result.plan is not None
            snap = Snapshot(result.store, result.keys, scanned=result.scanned)
            lines.extend(plan_lines(snap, result.plan))
            lines.append("gates: " + ", ".join(f"{v.gate} {v.verdict}"
                                               for v in result.plan.verdicts))
        lines.append(f"Apply exactly this plan with: ksdelete apply {plan_file}")
        for line in lines:
            click.echo(printable(line))

    inv.run(body)


@cli.command()
@click.argument("stores", nargs=-1, required=True, metavar="STORE...", callback=check_stores)
@aws_options
@plan_options
@click.option("--missing-ok", is_flag=True, help="A store that does not exist is not an error.")
@exitcodes.documented("status")
def status(stores: tuple[str, ...], region: str | None, profile: str | None,
           endpoint_url: str | None, account_ids: frozenset[str], output: str, quiet: bool,
           debug: bool, journal: Path | None, plan: PlanOptions, missing_ok: bool) -> None:
    """Show where each STORE stands; read-only.

    The phase and the exit code come from the same planner and gates as `delete` (with the
    same options), so the two cannot disagree.

    \b
    Phases: soaking N/M (--disable-first), keys-not-scheduled N/M,
    keys-pending N/M (earliest deletion),
    ready-to-disconnect, disconnecting, ready-to-delete, deleted (from the journal),
    membership-unknown, refused (REASON), not-found.

    \b
    Example:
      ksdelete status cks-1234567890abcdef0 --output json
    """
    _setup_logging(debug)
    inv = Invocation("status", output=output, quiet=quiet, debug=debug, missing_ok=missing_ok)

    def body(inv: Invocation) -> None:
        from ksdelete import service
        from ksdelete.executor import RunOptions

        options = RunOptions(plan=plan, dry_run=True, missing_ok=missing_ok,
                             allowed_accounts=account_ids)
        _read_each(inv, stores, service.status, options,
                   _settings(region, profile, endpoint_url, journal), quiet=quiet, debug=debug)

    inv.run(body)


def _read_each(inv: Invocation, stores: tuple[str, ...],
               read: Callable[[App, Sequence[str], list[StoreResult]], None],
               options: RunOptions, settings: Settings, *, quiet: bool, debug: bool) -> None:
    """A read-only command (status, report): `read` each STORE; nothing is ever confirmed."""
    from ksdelete import service
    from ksdelete.app import make_reporter

    inv.reporter = reporter = make_reporter(quiet, debug=debug)
    app = service.open_app(settings, options, reporter, lambda snap, plan: False,
                           read_only=True)
    inv.identity, inv.run_id = app.identity, app.journal.run_id
    read(app, stores, inv.results)


@cli.command()
@click.argument("stores", nargs=-1, required=False, metavar="[STORE...]", callback=check_stores)
@aws_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--enable", is_flag=True, help="Re-enable the keys after cancelling.")
@click.option("--connect", is_flag=True, help="Reconnect the store afterwards.")
@click.option("--plan", "plan_file", metavar="FILE", type=click.Path(path_type=Path),
              help="A saved plan (--save-plan): its keys are cancelled first, with the "
                   "journal's; without STORE, every store of the plan.")
@exitcodes.documented("cancel")
def cancel(stores: tuple[str, ...], region: str | None, profile: str | None,
           endpoint_url: str | None, account_ids: frozenset[str], output: str, quiet: bool,
           debug: bool, journal: Path | None, yes: bool, enable: bool, connect: bool,
           plan_file: Path | None) -> None:
    """Undo: cancel the pending deletion of every key in STORE (works while disconnected).

    The brake first: the keys the journal says ksdelete scheduled are cancelled at once,
    then every other pending key an account scan finds. Keys come back Disabled (AWS's
    rule); --enable re-enables them, --connect reconnects the store. Keys already deleted
    cannot be recovered; they are listed. A key that cannot be described, or anything else
    that could not be checked, makes the exit code 1. Cancel never waits for another run's
    lock: a run holding it is asked to stop before its next change, and cancel reports once
    it has stopped; no unattended run goes on until a person confirms again.

    \b
    Examples:
      ksdelete cancel cks-1234567890abcdef0 --enable --connect
      ksdelete cancel --plan plan.json
    """
    _setup_logging(debug)
    inv = Invocation("cancel", output=output, quiet=quiet, debug=debug)

    def body(inv: Invocation) -> None:
        from ksdelete import planfile, service
        from ksdelete.app import make_reporter
        from ksdelete.executor import RunOptions

        if not stores and plan_file is None:
            raise UsageError("cancel needs a STORE or --plan FILE", where="ksdelete cancel",
                             hint="Name the store(s), or the saved plan whose keys to cancel")
        saved = planfile.read(plan_file) if plan_file is not None else None
        _require_confirmation_channel(yes, "cancel")
        inv.reporter = reporter = make_reporter(quiet, debug=debug)
        confirm = _confirmer(yes, "cancel its key deletions", lambda: inv.identity,
                             quiet=quiet)
        app = service.open_app(_settings(region, profile, endpoint_url, journal),
                               RunOptions(allowed_accounts=account_ids), reporter, confirm,
                               read_only=False)
        inv.identity, inv.run_id = app.identity, app.journal.run_id
        planned = service.planned_keys(saved, app) if saved is not None else {}
        reporter.start(command="cancel", dry_run=False)
        try:
            service.cancel(app, stores, inv.results, enable=enable, connect=connect,
                           confirm=confirm, planned=planned)
        finally:
            app.journal.close()

    inv.run(body)


@cli.command()
@click.argument("stores", nargs=-1, required=True, metavar="STORE...", callback=check_stores)
@aws_options
@exitcodes.documented("report")
def report(stores: tuple[str, ...], region: str | None, profile: str | None,
           endpoint_url: str | None, account_ids: frozenset[str], output: str, quiet: bool,
           debug: bool, journal: Path | None) -> None:
    """Report what AWS leaves behind of each STORE; read-only.

    CloudHSM key store: which keys' material KMS failed to delete from the cluster
    (CloudTrail DeleteKey events, backingKeysDeletionStatus), with key handles, and the
    reminder that cluster backups still hold it. External key store: every external key ID
    left in the external key manager. Works for a store that is gone, from the journal kept
    when its keys were confirmed (and CloudTrail's last 90 days).

    \b
    Example:
      ksdelete report cks-1234567890abcdef0 --output json
    """
    _setup_logging(debug)
    inv = Invocation("report", output=output, quiet=quiet, debug=debug)

    def body(inv: Invocation) -> None:
        from ksdelete import service
        from ksdelete.executor import RunOptions

        _read_each(inv, stores, service.report,
                   RunOptions(dry_run=True, allowed_accounts=account_ids),
                   _settings(region, profile, endpoint_url, journal), quiet=quiet, debug=debug)

    inv.run(body)


@cli.command()
@aws_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--max-wait", callback=parse_duration, default="20m", show_default=True,
              help="How long to wait for CloudTrail and GetKeyLastUsage to show the calls.")
@click.option("--poll-interval", callback=parse_duration, default="30s", show_default=True,
              help="Pause between two readings while waiting.")
@exitcodes.documented("probe")
def probe(region: str | None, profile: str | None, endpoint_url: str | None,
          account_ids: frozenset[str], output: str, quiet: bool, debug: bool,
          journal: Path | None, yes: bool, max_wait: float, poll_interval: float) -> None:
    """Check, on this account and Region, what the watch and the gates rely on.

    Creates one throwaway KMS key (a standard AWS_KMS key, tagged ksdelete:probe), uses it
    once, schedules its deletion (7-day window), makes one Encrypt call that fails because
    the key is pending deletion, then reads back what ksdelete reads: CloudTrail by event
    name (as the watch does) and by ResourceName, the key's own ScheduleKeyDeletion, and
    GetKeyLastUsage, measuring how late each event arrives. It never touches another key and
    leaves its key pending deletion (it costs one key for at most 7 days). The report says,
    per assumption, confirmed, refuted or could not tell, and what that means here.
    `ksdelete iam-policy --probe` prints the permissions it needs.

    \b
    Example:
      ksdelete probe --region eu-west-1 --account-id 111122223333
    """
    _setup_logging(debug)
    inv = Invocation("probe", output=output, quiet=quiet, debug=debug)

    def body(inv: Invocation) -> None:
        from ksdelete import probe as probing
        from ksdelete import service
        from ksdelete.app import make_reporter
        from ksdelete.executor import RunOptions

        _require_confirmation_channel(yes, "create the probe key")
        inv.reporter = reporter = make_reporter(quiet, debug=debug)
        app = service.open_app(_settings(region, profile, endpoint_url, journal),
                               RunOptions(allowed_accounts=account_ids), reporter,
                               lambda snap, plan: False, read_only=False)
        inv.identity, inv.run_id = app.identity, app.journal.run_id
        if not yes:
            sys.stderr.write(
                f"The probe creates one KMS key in account {app.identity.account}, "
                f"{app.identity.region}, uses it once and schedules its deletion (7 days). "
                "Type 'probe' to go on: ")
            sys.stderr.flush()
            if sys.stdin.readline().strip() != "probe":
                raise RefusedError("not confirmed; nothing was changed", where="probe")
        runner = probing.Probe(app.gateway, note=reporter.note)

        def record(operation: str, key_id: str | None) -> Any:
            return app.journal.record(store_id="probe", operation=operation, key_id=key_id)

        try:
            obs = runner.run(run_id=app.journal.run_id, max_wait=max_wait, poll=poll_interval,
                             record=record)
        except (KsdeleteError, KeyboardInterrupt) as exc:
            left = runner.obs.key_id
            if left:
                told = f"the probe key {left} was left pending deletion (7 days)" \
                    if runner.obs.scheduled_at else \
                    f"the probe key {left} exists and is NOT scheduled for deletion"
                if isinstance(exc, KsdeleteError):
                    exc.what += f"; {told}"
                else:  # Ctrl-C, SIGTERM: the summary lists no store; say what is left
                    inv.after.append(told)
            raise
        finally:
            app.journal.close()
        found = probing.findings(obs)
        code = probing.exit_status(found)
        if output == "json":
            doc = document("probe", [], int(code), identity=app.identity,
                           run_id=app.journal.run_id)
            doc["probe"] = probing.as_json(obs, found)
            _emit(json.dumps(doc, default=str), code)
        else:
            from ksdelete.reporting import where

            for line in [where(app.identity), *probing.lines(obs, found)]:
                _emit(printable(line), code)
        sys.exit(int(code))

    inv.run(body)


@cli.command(name="iam-policy")
@click.option("--read-only", is_flag=True, help="Only what --dry-run, show-plan and status "
              "need.")
@click.option("--apply-only", is_flag=True,
              help="Only what `apply` needs (an unattended runner: no undo).")
@click.option("--unused-for", type=click.IntRange(1, 3650), metavar="DAYS",
              help="Add a Deny of ScheduleKeyDeletion and DisableKey on keys with a "
                   "cryptographic use in the last DAYS days (NumericLessThan "
                   "kms:TrailingDaysWithoutKeyUsage DAYS): AWS itself refuses them, whatever "
                   "else allows it. AWS's value for a key never used is not documented: a "
                   "never-used key created less than DAYS days ago may be denied too.")
@click.option("--probe", "for_probe", is_flag=True,
              help="Only what `ksdelete probe` needs (CreateKey, Encrypt on its own key, ...).")
def iam_policy(read_only: bool, apply_only: bool, unused_for: int | None,
               for_probe: bool) -> None:
    """Print the least-privilege IAM policy ksdelete needs, as JSON.

    Derived from the permissions each pipeline step declares, so it cannot drift.

    \b
    Examples:
      ksdelete iam-policy > ksdelete-policy.json
      ksdelete iam-policy --apply-only --unused-for 30 > ksdelete-cron-policy.json
      ksdelete iam-policy --probe > ksdelete-probe-policy.json
    """
    from ksdelete.permissions import policy, probe_policy

    if read_only and apply_only:
        raise click.UsageError("--read-only and --apply-only exclude each other")
    if for_probe:
        if read_only or apply_only or unused_for:
            raise click.UsageError("--probe takes no other option")
        click.echo(json.dumps(probe_policy(), indent=2))
        return
    click.echo(json.dumps(policy(read_only=read_only, apply_only=apply_only,
                                 unused_for=unused_for), indent=2))


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    Examples:
      eval "$(ksdelete completion bash)"     # in ~/.bashrc
      eval "$(ksdelete completion zsh)"      # in ~/.zshrc
      ksdelete completion fish > ~/.config/fish/completions/ksdelete.fish
    """
    click.echo(completion_script(ctx.find_root().command, shell), nl=False)


@cli.command(name="man")
@click.pass_context
def man_page(ctx: click.Context) -> None:
    """Print the ksdelete(1) manual page (roff), generated from this CLI.

    \b
    Examples:
      ksdelete man | man -l -
      ksdelete man > ~/.local/share/man/man1/ksdelete.1
    """
    from ksdelete.manpage import render

    root = ctx.find_root().command
    assert isinstance(root, click.Group)
    click.echo(render(root), nl=False)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=4566, show_default=True, type=click.IntRange(0, 65535),
              help="0 picks a free port.")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(0), show_default=True,
              help="Added to every request.")
@click.option("--quotas", type=click.Choice(["aws", "off"]), default="off", show_default=True,
              help="aws: answer ThrottlingException above AWS's default request quotas.")
@click.option("--consistency-lag", default=0.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="Reads may be this stale after a write.")
@click.option("--fault-rate", default=0.0, type=click.FloatRange(0, 1), show_default=True,
              metavar="FRACTION", help="Answer this fraction of requests KMSInternalException.")
@click.option("--time-scale", default=1.0, type=click.FloatRange(min=0, min_open=True),
              show_default=True, metavar="FACTOR", help="Emulated seconds per real second.")
@click.option("--deletion-lateness", default=0.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="Keys vanish up to this long after DeletionDate (AWS: 1d).")
@click.option("--connect-seconds", default=300.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="Emulated duration of CONNECTING.")
@click.option("--disconnect-seconds", default=60.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="Emulated duration of DISCONNECTING.")
@click.option("--seed", type=int, default=None, help="Deterministic IDs and randomness.")
@click.option("--key-usage-tracking-start", default="2026-04-23T00:00:00Z", show_default=True,
              metavar="ISO8601",
              help="GetKeyLastUsage tracks use from here (or from a later key creation).")
@click.option("--last-usage-delay", default=0.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="GetKeyLastUsage shows a use this long after it.")
def emulator(host: str, port: int, latency_ms: float, quotas: str, consistency_lag: float,
             fault_rate: float, time_scale: float, deletion_lateness: float,
             connect_seconds: float, disconnect_seconds: float, seed: int | None,
             key_usage_tracking_start: str, last_usage_delay: float) -> None:
    """Serve the KMS emulator (moto + custom key stores) over HTTP until Ctrl-C.

    Any Region and any credentials are accepted; CloudTrail LookupEvents and STS
    GetCallerIdentity answer on the same port. Control API: POST /_emulator/clock
    {"advance": SECONDS}, /_emulator/reset, /_emulator/seed, /_emulator/config.

    \b
    Example:
      ksdelete emulator --port 4566 --time-scale 3600 &
      AWS_ENDPOINT_URL=http://127.0.0.1:4566 ksdelete my-store --dry-run
    """
    try:
        from ksdelete.emulator import EmulatorConfig, serve
    except ImportError as exc:  # moto is an optional extra
        Invocation("emulator", output="text", quiet=False, debug=False).fail(
            UsageError(f"the emulator needs moto: {exc}", where="ksdelete emulator",
                       hint="pip install 'ksdelete[emulator]'"))
        return
    config = EmulatorConfig(
        latency_ms=latency_ms, quotas=quotas, consistency_lag=consistency_lag,
        fault_rate=fault_rate, time_scale=time_scale, deletion_lateness=deletion_lateness,
        connect_seconds=connect_seconds, disconnect_seconds=disconnect_seconds, seed=seed,
        key_usage_tracking_start=key_usage_tracking_start, last_usage_delay=last_usage_delay)
    try:
        config.check()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--key-usage-tracking-start") from exc
    serve(host, port, config)


@cli.command()
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the result.")
def demo(quiet: bool) -> None:
    """Run the whole pipeline against an embedded emulator with a fast clock.

    No AWS account or credentials needed: it seeds a realistic account (a CloudHSM store
    with a dozen keys, an external key store, a few thousand unrelated keys), then shows a
    dry run, the confirmation, scheduling, the waiting period, disconnect, delete, verify.
    """
    from ksdelete.demo import run_demo

    sys.exit(run_demo(quiet=quiet))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: click's own usage errors become one line (and a JSON object with
    --output json), exit code 2; SIGTERM stops a run as cleanly as Ctrl-C (exit 143)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        with signals.installed():
            cli.main(args=args, prog_name="ksdelete", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ksdelete: interrupted", err=True)
        sys.exit(int(ExitStatus.INTERRUPTED))
    except KeyboardInterrupt as exc:  # before a command took over (e.g. while parsing)
        sys.exit(int(ExitStatus.TERMINATED if isinstance(exc, Terminated)
                     else ExitStatus.INTERRUPTED))
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `ksdelete`: click's convention
        exc.show()  # the help, on stderr, not labelled as an error
        sys.exit(int(ExitStatus.USAGE))
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "ksdelete"
        message = f"{exc.format_message().rstrip('.')} ({where}). Run '{where} --help' for usage"
        click.echo("\n".join(printable(line) for line in
                              f"ksdelete: error: {message}".splitlines()), err=True)
        if _wants_json(args):
            _emit(json.dumps(document(where.split()[-1], [], int(ExitStatus.USAGE),
                                      error={"code": "usage", "message": message})),
                  ExitStatus.USAGE)
        sys.exit(int(ExitStatus.USAGE) if isinstance(exc, click.UsageError) else exc.exit_code)
    except BrokenPipeError:  # --help or --version into a closed pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(int(ExitStatus.ERROR))
    sys.exit(0)


def _wants_json(args: Sequence[str]) -> bool:
    pairs = zip(args, [*args[1:], ""], strict=False)
    return any(a == "--output=json" or (a == "--output" and b == "json") for a, b in pairs)
