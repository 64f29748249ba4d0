"""What ends an invocation: its results, an error or an interrupt become the summary (or the
JSON document) and the exit code. `main` is the entry point: click's own errors too."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from ksdelete import signals
from ksdelete.cli.group import cli
from ksdelete.errors import (
    DISK_FULL,
    AccountRefused,
    ExitStatus,
    KsdeleteError,
    Terminated,
    disk_full_hint,
    os_reason,
)
from ksdelete.models import Identity, StoreResult
from ksdelete.output import document, exit_status, most_severe
from ksdelete.reporting import Reporter, labelled, printable, summary_lines


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
            self.finish(stopped(exc))
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
        emit_result(document(self.command, results, int(code), dry_run=self.dry_run,
                             identity=self.identity, plan_id=self.plan_id,
                             run_id=self.run_id), lines, code, output=self.output,
                    quiet=self.quiet, reporter=self.reporter)
        sys.exit(int(code))

    def fail(self, exc: BaseException) -> None:
        """One line on stderr (a traceback only with --debug); JSON mode still prints one
        object, with every store that had already run."""
        if isinstance(exc, AccountRefused) and isinstance(exc.identity, Identity):
            self.identity = exc.identity  # the JSON says whose credentials these are
        label = "error"
        details: tuple[str, ...] = ()
        if isinstance(exc, KsdeleteError):
            code, message, error_code = exc.exit_status, str(exc), exc.code
            label, details = exc.label, exc.details
        elif isinstance(exc, OSError) and exc.errno in DISK_FULL:
            where = f" ({exc.filename})" if exc.filename else ""
            code, error_code = ExitStatus.ERROR, "disk-full"
            message = f"{os_reason(exc)}{where}. {disk_full_hint(exc.filename or 'it')}"
        else:
            code, message, error_code = ExitStatus.ERROR, \
                f"unexpected {type(exc).__name__}: {exc}", "internal"
        if self.debug:
            traceback.print_exception(exc, file=sys.stderr)
        # A refusal is labelled as one (a safety check said no), not as an error.
        click.echo("\n".join(labelled(f"ksdelete: {label}", message, details)), err=True)
        if self.output == "json":
            error: dict[str, Any] = {"code": error_code, "message": message}
            if isinstance(exc, KsdeleteError):
                error = exc.as_json()
            _emit(json.dumps(document(self.command, self.results, int(code),
                                      dry_run=self.dry_run, identity=self.identity,
                                      error=error,
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


def stopped(exc: KeyboardInterrupt) -> ExitStatus:
    """Ctrl-C or SIGTERM stopped the command: say so (the summary follows) and its code."""
    code = ExitStatus.TERMINATED if isinstance(exc, Terminated) else ExitStatus.INTERRUPTED
    click.echo("ksdelete: stopped by " + ("SIGTERM" if code is ExitStatus.TERMINATED
                                           else "Ctrl-C")
               + "; every change made is listed below and in the journal", err=True)
    return code


def emit_result(doc: dict[str, Any], lines: list[str], code: ExitStatus, *, output: str,
                quiet: bool, reporter: object) -> None:
    """The result: with --output json the document on stdout and the summary on stderr
    (unless the reporter showed it, or --quiet), else the summary on stdout."""
    if output == "json":
        _emit(json.dumps(doc, default=str), code)
        if not quiet and not getattr(reporter, "shows_summary", False):
            for line in lines:
                click.echo(printable(line), err=True)
    else:
        for line in lines:
            _emit(printable(line), code)


def _emit(line: str, code: ExitStatus) -> None:
    """stdout, for the result; a reader that went away (`| head`) ends the run quietly."""
    try:
        click.echo(line)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(int(code))


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
