"""The command line: parse, confirm, wire objects, map errors to exit codes. Never imports boto3."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ksdelete.errors import ExitStatus, KsdeleteError, UsageError
from ksdelete.meta import SHELLS, completion_script, show_version
from ksdelete.models import Plan, PlanOptions, Snapshot, Status, StoreResult
from ksdelete.output import document, exit_status, most_severe
from ksdelete.reporting import Reporter, make_reporter, summary_lines

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


class DefaultGroup(click.Group):
    """A group whose default command is `delete`: `ksdelete cks-123 --dry-run` works."""

    default_command = "delete"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h",
                                                                      "--version"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def aws_options(fn: F) -> F:
    for option in reversed([
        click.option("--region", envvar=None, help="AWS Region (default: AWS_REGION / profile)."),
        click.option("--profile", help="AWS profile from ~/.aws/config (default: AWS_PROFILE)."),
        click.option("--endpoint-url", metavar="URL",
                     help="KMS endpoint (e.g. the emulator). AWS_ENDPOINT_URL_KMS also works."),
        click.option("--output", "output", type=click.Choice(["text", "json"]), default="text",
                     show_default=True,
                     help="json: exactly one JSON object on stdout; messages stay on stderr."),
        click.option("--quiet", "-q", is_flag=True, help="Print only errors and the result."),
        click.option("--debug", is_flag=True, help="Log AWS calls and retries; show tracebacks."),
        click.option("--journal", type=click.Path(dir_okay=False, path_type=Path),
                     help="Audit journal file (default: $XDG_STATE_HOME/ksdelete/journal.jsonl)."),
    ]):
        fn = option(fn)
    return fn


def _setup_logging(debug: bool) -> None:
    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        for noisy in ("urllib3", "botocore.hooks", "botocore.loaders", "botocore.parsers",
                      "botocore.endpoint", "botocore.auth", "botocore.utils",
                      "botocore.regions", "botocore.httpsession"):
            logging.getLogger(noisy).setLevel(logging.INFO)


def _journal_path(journal: Path | None) -> Path:
    from ksdelete.journal import default_path

    return journal or default_path()


def _confirmer(yes: bool, action: str) -> Callable[[Snapshot, Plan], bool]:
    def confirm(snap: Snapshot, plan: Plan) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to {action} without confirmation: there is no terminal",
                where=snap.store.id, hint="Pass --yes for unattended runs (after a --dry-run)",
            )
        store = snap.store
        answer = click.prompt(
            f"Type the store ID ({store.id}) or name to {action}", default="",
            show_default=False, err=True,
        )
        return answer.strip() in (store.id, store.name) and answer.strip() != ""

    return confirm


def _require_confirmation_channel(yes: bool, command: str) -> None:
    """Fail before touching AWS if a change would need a confirmation nobody can type."""
    if not yes and not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {command} without confirmation: there is no terminal",
            where="stdin", hint="Pass --yes for unattended runs (after a --dry-run)",
        )


def _finish(command: str, results: Sequence[StoreResult], *, output: str, quiet: bool,
            reporter: Reporter, missing_ok: bool = False, dry_run: bool = False) -> None:
    codes = [exit_status(r, missing_ok=missing_ok) for r in results]
    code = most_severe(codes)
    reporter.finish(results)
    if output == "json":
        click.echo(json.dumps(document(command, results, int(code), dry_run=dry_run),
                              default=str))
        if not quiet and not getattr(reporter, "shows_summary", False):
            for line in summary_lines(results):
                click.echo(line, err=True)
    else:
        for line in summary_lines(results):
            click.echo(line)
    sys.exit(int(code))


def _fail(exc: BaseException, *, command: str, output: str, debug: bool) -> None:
    """One line on stderr (a traceback only with --debug); JSON mode still prints one object."""
    if isinstance(exc, KsdeleteError):
        code, message, error_code = exc.exit_status, str(exc), exc.code
    else:
        code, message, error_code = ExitStatus.ERROR, f"unexpected {type(exc).__name__}: {exc}", \
            "internal"
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"ksdelete: error: {message}", err=True)
    if output == "json":
        click.echo(json.dumps(document(command, [], int(code),
                                       error={"code": error_code, "message": message})))
    sys.exit(int(code))


def _run_guarded(command: str, output: str, debug: bool, body: Callable[[], None]) -> None:
    try:
        body()
    except KeyboardInterrupt:
        click.echo("ksdelete: interrupted; everything done so far is in the journal", err=True)
        sys.exit(int(ExitStatus.INTERRUPTED))
    except (KsdeleteError, Exception) as exc:  # noqa: BLE001 - the CLI boundary
        _fail(exc, command=command, output=output, debug=debug)


def _gateway(region: str | None, profile: str | None, endpoint_url: str | None,
             reporter: Reporter, poll_interval: float = 60.0) -> Any:
    from ksdelete.gateway import AwsTarget, Gateway
    from ksdelete.retry import RetryPolicy

    policy = RetryPolicy(poll_initial=min(1.0, poll_interval), poll_max=max(poll_interval, 0.01))
    return Gateway(AwsTarget(region, profile, endpoint_url), on_retry=reporter.retry,
                   policy=policy)


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
@click.option("--pending-window-days", type=click.IntRange(7, 30), default=30, show_default=True,
              help="Waiting period for ScheduleKeyDeletion.")
@click.option("--wait/--no-wait", default=False, show_default=True,
              help="Block until the store is deleted (or --max-wait) instead of exiting 3.")
@click.option("--max-wait", callback=parse_duration, default="31d", show_default=True,
              help="Longest wait for AWS (then exit 3): the whole deletion with --wait, else "
                   "a connect/disconnect (at most 30m). E.g. 45m, 12h, 31d.")
@click.option("--poll-interval", callback=parse_duration, default="60s", show_default=True,
              help="Longest pause between checks while waiting for AWS.")
@click.option("--missing-ok", is_flag=True, help="A store that does not exist is not an error.")
@click.option("--connect", is_flag=True,
              help="Connect a disconnected CloudHSM store first (it must stay CONNECTED).")
@click.option("--allow-orphaned-key-material", is_flag=True,
              help="Schedule keys of a disconnected CloudHSM store anyway (material orphaned).")
@click.option("--include-new-keys", is_flag=True,
              help="Also delete keys created in the store after an earlier run's confirmation.")
def delete(stores: tuple[str, ...], region: str | None, profile: str | None,
           endpoint_url: str | None, output: str, quiet: bool, debug: bool,
           journal: Path | None, dry_run: bool, yes: bool, pending_window_days: int,
           wait: bool, max_wait: float, poll_interval: float, missing_ok: bool, connect: bool,
           allow_orphaned_key_material: bool, include_new_keys: bool) -> None:
    """Delete custom key store(s) STORE (ID or name), as far as AWS allows now.

    \b
    Exit codes: 0 deleted (or --dry-run planned), 1 error, 2 usage,
    3 pending (run again after resume_after), 4 refused by a safety check, 130 interrupted.

    \b
    Examples:
      ksdelete cks-1234567890abcdef0 --dry-run
      ksdelete cks-1234567890abcdef0 --pending-window-days 7 --yes
      ksdelete my-xks-store --wait --max-wait 45d --yes --output json
    """
    _setup_logging(debug)
    reporter = make_reporter(quiet, pending_window_days, debug=debug)

    def body() -> None:
        from ksdelete.executor import Executor, RunOptions
        from ksdelete.journal import Journal

        if not dry_run:
            _require_confirmation_channel(yes, "delete")
        gateway = _gateway(region, profile, endpoint_url, reporter, poll_interval)
        account, caller = (None, None) if dry_run else gateway.caller_identity()
        log = Journal(_journal_path(journal), region=gateway.region, account=account,
                      caller_arn=caller, read_only=dry_run)
        options = RunOptions(
            plan=PlanOptions(pending_window_days, connect, allow_orphaned_key_material,
                             include_new_keys),
            dry_run=dry_run, wait=wait, max_wait=max_wait, missing_ok=missing_ok,
        )
        executor = Executor(gateway, log, reporter, options, _confirmer(yes, "delete it"))
        reporter.start(command="delete", dry_run=dry_run)
        results: list[StoreResult] = []
        try:
            for ref in stores:
                results.append(executor.run(ref))
                if results[-1].status is Status.INTERRUPTED:
                    break
        finally:
            log.close()
        _finish("delete", results, output=output, quiet=quiet, reporter=reporter,
                missing_ok=missing_ok, dry_run=dry_run)

    _run_guarded("delete", output, debug, body)


@cli.command()
@click.argument("stores", nargs=-1, required=True, metavar="STORE...", callback=check_stores)
@aws_options
@click.option("--missing-ok", is_flag=True, help="A store that does not exist is not an error.")
def status(stores: tuple[str, ...], region: str | None, profile: str | None,
           endpoint_url: str | None, output: str, quiet: bool, debug: bool,
           journal: Path | None, missing_ok: bool) -> None:
    """Show where each STORE stands; read-only.

    \b
    Phases: keys-not-scheduled N/M, keys-pending N/M (earliest deletion),
    ready-to-disconnect, disconnecting, ready-to-delete, deleted (from the journal),
    membership-unknown. Exit codes as for delete: 0 deleted, 3 pending, 4 membership
    unknown, 1 error / not found.

    \b
    Example:
      ksdelete status cks-1234567890abcdef0 --output json
    """
    _setup_logging(debug)
    reporter = make_reporter(quiet, debug=debug)

    def body() -> None:
        from ksdelete.executor import Executor, RunOptions
        from ksdelete.journal import Journal
        from ksdelete.status import status as read_status

        gateway = _gateway(region, profile, endpoint_url, reporter)
        log = Journal(_journal_path(journal), region=gateway.region, read_only=True)
        executor = Executor(gateway, log, reporter, RunOptions(missing_ok=missing_ok),
                            lambda snap, plan: False)  # reads only: never asks to confirm
        results = [read_status(executor, ref) for ref in stores]
        _finish("status", results, output=output, quiet=quiet, reporter=reporter,
                missing_ok=missing_ok)

    _run_guarded("status", output, debug, body)


@cli.command()
@click.argument("stores", nargs=-1, required=True, metavar="STORE...", callback=check_stores)
@aws_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--enable", is_flag=True, help="Re-enable the keys after cancelling.")
@click.option("--connect", is_flag=True, help="Reconnect the store afterwards.")
def cancel(stores: tuple[str, ...], region: str | None, profile: str | None,
           endpoint_url: str | None, output: str, quiet: bool, debug: bool,
           journal: Path | None, yes: bool, enable: bool, connect: bool) -> None:
    """Undo: cancel the pending deletion of every key in STORE (works while disconnected).

    Keys come back Disabled (AWS's rule); --enable re-enables them, --connect reconnects
    the store. Keys already deleted cannot be recovered; they are listed.

    \b
    Example:
      ksdelete cancel cks-1234567890abcdef0 --enable --connect
    """
    _setup_logging(debug)
    reporter = make_reporter(quiet, debug=debug)

    def body() -> None:
        from ksdelete.cancel import cancel as undo
        from ksdelete.executor import Executor, RunOptions
        from ksdelete.journal import Journal

        _require_confirmation_channel(yes, "cancel")
        gateway = _gateway(region, profile, endpoint_url, reporter)
        account, caller = gateway.caller_identity()
        path = _journal_path(journal)
        log = Journal(path, region=gateway.region, account=account, caller_arn=caller)
        confirm = _confirmer(yes, "cancel its key deletions")
        executor = Executor(gateway, log, reporter, RunOptions(), confirm)
        reporter.start(command="cancel", dry_run=False)
        try:
            results = [undo(executor, ref, enable=enable, connect=connect, journal=path,
                            confirm=confirm) for ref in stores]
        finally:
            log.close()
        _finish("cancel", results, output=output, quiet=quiet, reporter=reporter)

    _run_guarded("cancel", output, debug, body)


@cli.command(name="iam-policy")
@click.option("--read-only", is_flag=True, help="Only what --dry-run and status need.")
def iam_policy(read_only: bool) -> None:
    """Print the least-privilege IAM policy ksdelete needs, as JSON.

    Derived from the permissions each pipeline step declares, so it cannot drift.

    \b
    Example:
      ksdelete iam-policy > ksdelete-policy.json
    """
    from ksdelete.permissions import policy

    click.echo(json.dumps(policy(read_only=read_only), indent=2))


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
def emulator(host: str, port: int, latency_ms: float, quotas: str, consistency_lag: float,
             fault_rate: float, time_scale: float, deletion_lateness: float,
             connect_seconds: float, disconnect_seconds: float, seed: int | None) -> None:
    """Serve the KMS emulator (moto + custom key stores) over HTTP until Ctrl-C.

    Any Region and any credentials are accepted. Control API: POST /_emulator/clock
    {"advance": SECONDS}, /_emulator/reset, /_emulator/seed.

    \b
    Example:
      ksdelete emulator --port 4566 --time-scale 3600 &
      AWS_ENDPOINT_URL=http://127.0.0.1:4566 ksdelete my-store --dry-run
    """
    try:
        from ksdelete.emulator import EmulatorConfig, serve
    except ImportError as exc:  # moto is an optional extra
        _fail(UsageError(f"the emulator needs moto: {exc}", where="ksdelete emulator",
                         hint="pip install 'ksdelete[emulator]'"),
              command="emulator", output="text", debug=False)
        return
    serve(host, port, EmulatorConfig(
        latency_ms=latency_ms, quotas=quotas, consistency_lag=consistency_lag,
        fault_rate=fault_rate, time_scale=time_scale, deletion_lateness=deletion_lateness,
        connect_seconds=connect_seconds, disconnect_seconds=disconnect_seconds, seed=seed))


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
    --output json), exit code 2."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=args, prog_name="ksdelete", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ksdelete: interrupted", err=True)
        sys.exit(int(ExitStatus.INTERRUPTED))
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "ksdelete"
        message = f"{exc.format_message().rstrip('.')} ({where}). Run '{where} --help' for usage"
        click.echo(f"ksdelete: error: {message}", err=True)
        if _wants_json(args):
            click.echo(json.dumps(document(where.split()[-1], [], int(ExitStatus.USAGE),
                                           error={"code": "usage", "message": message})))
        sys.exit(int(ExitStatus.USAGE) if isinstance(exc, click.UsageError) else exc.exit_code)
    sys.exit(0)


def _wants_json(args: Sequence[str]) -> bool:
    pairs = zip(args, [*args[1:], ""], strict=True)
    return any(a == "--output=json" or (a == "--output" and b == "json") for a, b in pairs)
