"""`ksdelete fleet plan|apply|status|cancel FILE`, and `ksdelete apply` of a saved fleet
plan: parse, wire, and print the fleet's one view (ksdelete/fleet/service.py does the work)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ksdelete import exitcodes
from ksdelete.cli.errors import _emit, emit_result, stopped
from ksdelete.cli.fleet import fleet
from ksdelete.cli.options import (
    POLL_INTERVAL,
    _connection_options,
    _options,
    _setup_logging,
    wait_options,
)
from ksdelete.errors import ExitStatus, KsdeleteError
from ksdelete.reporting import labelled, printable

if TYPE_CHECKING:
    from ksdelete.fleet.model import FleetRun, FleetSpec
    from ksdelete.fleet.runner import FleetSettings
    from ksdelete.fleet.view import FleetReporter

F = Callable[..., Any]


def fleet_options(fn: F) -> F:
    """Which targets, where to reach AWS and what to print: every fleet command that calls
    AWS has these (the Region, profile and account come from the fleet file)."""
    return _options(fn, [
        click.option("--target", "targets", multiple=True, metavar="TARGET",
                     help="Only this target: a store ID, ACCOUNT/REGION/STORE, an account ID "
                          "or an account name (repeatable). Matching nothing is an error."),
        click.option("--endpoint-url", metavar="URL",
                     help="KMS and STS endpoint (e.g. the emulator)."),
        *_connection_options("")[3:],  # --output, --quiet, --debug, --journal
    ])


class FleetInvocation:
    """One fleet command: whatever stops it, the summary and the JSON list every target."""

    def __init__(self, command: str, *, output: str, quiet: bool, debug: bool) -> None:
        self.command, self.output, self.quiet, self.debug = command, output, quiet, debug
        self.run: FleetRun | None = None
        self.reporter: FleetReporter | None = None
        self.after: list[str] = []

    def go(self, body: Callable[[FleetInvocation], None]) -> None:
        code: ExitStatus | None = None
        try:
            body(self)
        except KeyboardInterrupt as exc:
            code = stopped(exc)
        except Exception as exc:  # noqa: BLE001 - the CLI boundary
            self.fail(exc)
        self.finish(code)

    def finish(self, code: ExitStatus | None) -> None:
        from ksdelete.fleet.view import fleet_document, summary_lines

        run = self.run
        if self.reporter is not None:
            self.reporter.finish(run)
        if run is None:
            sys.exit(int(code or ExitStatus.ERROR))
        final = code or run.exit_code
        document = fleet_document(run)
        document["exit_code"] = int(final)
        emit_result(document, summary_lines(run) + self.after, final, output=self.output,
                    quiet=self.quiet, reporter=self.reporter)
        sys.exit(int(final))

    def fail(self, exc: BaseException) -> None:
        """One line on stderr (a traceback only with --debug), and the exit code; JSON mode
        still prints one object."""
        import traceback

        from ksdelete.fleet.view import fleet_document

        if isinstance(exc, KsdeleteError):
            code, label, message, details = exc.exit_status, exc.label, str(exc), exc.details
            error: dict[str, Any] = exc.as_json()
        else:
            code, label, details = ExitStatus.ERROR, "error", ()
            message = f"unexpected {type(exc).__name__}: {exc}"
            error = {"code": "internal", "message": message}
        if self.debug:
            traceback.print_exception(exc, file=sys.stderr)
        click.echo("\n".join(labelled(f"ksdelete: {label}", message, details)), err=True)
        if self.reporter is not None:
            self.reporter.finish(self.run)
        if self.output == "json":
            if self.run is not None:
                document = fleet_document(self.run)
                document["exit_code"] = int(code)
                document["error"] = error
            else:  # before the file was read: the plain document, with the error
                from ksdelete.output import document as plain_document

                document = plain_document(self.command, [], int(code), error=error)
            _emit(json.dumps(document, default=str), code)
        elif self.run is not None and self.run.targets:
            from ksdelete.fleet.view import summary_lines

            for line in summary_lines(self.run):
                _emit(printable(line), code)
        sys.exit(int(code))


def _settings(endpoint_url: str | None, journal: Path | None, poll_interval: float, *,
              wait: bool = False, max_wait: float = 31 * 86400.0, enable: bool = False,
              connect: bool = False) -> FleetSettings:
    from ksdelete.fleet.runner import FleetSettings
    from ksdelete.scope import check_endpoint_url, check_poll_interval

    check_endpoint_url(endpoint_url)
    check_poll_interval(poll_interval, endpoint_url)
    return FleetSettings(endpoint_url=endpoint_url, journal=journal,
                         poll_interval=poll_interval, wait=wait, max_wait=max_wait,
                         enable=enable, connect=connect)


def _run(inv: FleetInvocation, spec: FleetSpec, mode: str, targets: tuple[str, ...],
         settings: FleetSettings, *, save_plan: Path | None = None, saved: Any = None
         ) -> None:
    from ksdelete.fleet import service
    from ksdelete.fleet.model import FleetRun
    from ksdelete.fleet.service import make_fleet_reporter

    chosen = saved.targets if saved is not None else service.select(spec, targets)
    inv.run = out = FleetRun(spec, inv.command, service.new_run_id(), dry_run=mode == "plan",
                             plan_id=saved.plan_id if saved is not None else None)
    inv.reporter = reporter = make_fleet_reporter(inv.quiet, inv.debug)
    runner = service.execute(spec, mode, chosen, settings, reporter, out, saved=saved)
    if save_plan is not None:
        out.plan_id = plan_id = service.save_plan(runner, spec, out, save_plan)
        inv.after.append(f"Saved fleet plan {plan_id} to {save_plan}: {len(out.targets)} "
                         f"target(s). Apply exactly this plan with: ksdelete apply {save_plan}")


def _load(path: Path) -> FleetSpec:
    from ksdelete.fleet import spec as fleet_spec

    return fleet_spec.load(path)


@fleet.command(name="plan")
@click.argument("fleet_file", metavar="FILE", type=click.Path(path_type=Path))
@fleet_options
@POLL_INTERVAL
@click.option("--save-plan", type=click.Path(dir_okay=False, path_type=Path), metavar="PLAN",
              help="Write one fleet plan for every target (one digest over all) for review "
                   "and `ksdelete apply PLAN`.")
@exitcodes.documented("fleet plan")
def plan_cmd(fleet_file: Path, targets: tuple[str, ...], endpoint_url: str | None,
             output: str, quiet: bool, debug: bool, journal: Path | None,
             poll_interval: float, save_plan: Path | None) -> None:
    """Show every target's plan (a dry run of each); change nothing.

    \b
    Example:
      ksdelete fleet plan fleet.yml --save-plan fleet-plan.json
    """
    _setup_logging(debug)
    inv = FleetInvocation("fleet plan", output=output, quiet=quiet, debug=debug)
    inv.go(lambda inv: _run(inv, _load(fleet_file), "plan", targets,
                            _settings(endpoint_url, journal, poll_interval),
                            save_plan=save_plan))


@fleet.command(name="apply")
@click.argument("fleet_file", metavar="FILE", type=click.Path(path_type=Path))
@fleet_options
@wait_options
@click.option("--yes", "-y", is_flag=True, help="Required: the reviewed file is the approval.")
@exitcodes.documented("fleet apply")
def apply_cmd(fleet_file: Path, targets: tuple[str, ...], endpoint_url: str | None,
              output: str, quiet: bool, debug: bool, journal: Path | None,
              poll_interval: float, wait: bool, max_wait: float, yes: bool) -> None:
    """Delete every target's store, as far as AWS allows now (cron: run it daily).

    Each (account, Region) is one run of the single-store pipeline; accounts run in
    parallel (rollout.max_accounts). A role that cannot be assumed, a Region that fails or a
    refused target gets its own status; the others go on until rollout.failure_tolerance
    targets failed, after which no new change starts. The exit code is the most severe
    target's.

    \b
    Example:
      ksdelete fleet apply fleet.yml --yes --output json
    """
    _setup_logging(debug)
    inv = FleetInvocation("fleet apply", output=output, quiet=quiet, debug=debug)

    def body(inv: FleetInvocation) -> None:
        from ksdelete.errors import UsageError

        if not yes:
            raise UsageError("fleet apply changes AWS in every account of the file",
                             where=str(fleet_file),
                             hint="Review `ksdelete fleet plan FILE`, then pass --yes (or "
                                  "apply a saved fleet plan: ksdelete apply PLAN)")
        _run(inv, _load(fleet_file), "apply", targets,
             _settings(endpoint_url, journal, poll_interval, wait=wait, max_wait=max_wait))

    inv.go(body)


@fleet.command(name="status")
@click.argument("fleet_file", metavar="FILE", type=click.Path(path_type=Path))
@fleet_options
@POLL_INTERVAL
@exitcodes.documented("fleet status")
def status_cmd(fleet_file: Path, targets: tuple[str, ...], endpoint_url: str | None,
               output: str, quiet: bool, debug: bool, journal: Path | None,
               poll_interval: float) -> None:
    """Where every target stands; reads only.

    \b
    Example:
      ksdelete fleet status fleet.yml --output json
    """
    _setup_logging(debug)
    inv = FleetInvocation("fleet status", output=output, quiet=quiet, debug=debug)
    inv.go(lambda inv: _run(inv, _load(fleet_file), "status", targets,
                            _settings(endpoint_url, journal, poll_interval)))


@fleet.command(name="cancel")
@click.argument("fleet_file", metavar="FILE", type=click.Path(path_type=Path))
@fleet_options
@POLL_INTERVAL
@click.option("--enable", is_flag=True, help="Also enable the keys again.")
@click.option("--connect", is_flag=True, help="Also connect the stores again.")
@exitcodes.documented("fleet cancel")
def cancel_cmd(fleet_file: Path, targets: tuple[str, ...], endpoint_url: str | None,
               output: str, quiet: bool, debug: bool, journal: Path | None,
               poll_interval: float, enable: bool, connect: bool) -> None:
    """The brake for a fleet: cancel every target's key deletions (or --target ones).

    The cancel is durable: each key is marked, and no later `fleet apply` (on any machine)
    schedules it again without a person's fresh confirmation.

    \b
    Example:
      ksdelete fleet cancel fleet.yml --target 111122223333/eu-west-1/cks-1234567890abcdef0
    """
    _setup_logging(debug)
    inv = FleetInvocation("fleet cancel", output=output, quiet=quiet, debug=debug)
    inv.go(lambda inv: _run(inv, _load(fleet_file), "cancel", targets,
                            _settings(endpoint_url, journal, poll_interval, enable=enable,
                                      connect=connect)))


def apply_fleet_plan(plan_file: Path, *, endpoint_url: str | None, output: str, quiet: bool,
                     debug: bool, journal: Path | None, wait: bool, max_wait: float,
                     poll_interval: float) -> None:
    """`ksdelete apply PLAN` of a saved fleet plan: no prompt (its review was the approval)."""
    inv = FleetInvocation("apply", output=output, quiet=quiet, debug=debug)

    def body(inv: FleetInvocation) -> None:
        from ksdelete.fleet import plans

        saved = plans.read(plan_file)
        _run(inv, saved.spec, "apply", (),
             _settings(endpoint_url, journal, poll_interval, wait=wait, max_wait=max_wait),
             saved=saved)

    inv.go(body)


def show_fleet_plan(plan_file: Path, *, output: str) -> None:
    """`ksdelete show-plan PLAN` of a saved fleet plan: every target's plan as the dry run
    showed it, per account and Region; no AWS call."""
    inv = FleetInvocation("show-plan", output=output, quiet=True, debug=False)

    def body(inv: FleetInvocation) -> None:
        from ksdelete import planfile
        from ksdelete.fleet import plans
        from ksdelete.fleet.model import FleetRun, TargetResult
        from ksdelete.models import Snapshot, Status
        from ksdelete.options import option_words
        from ksdelete.output import exit_status
        from ksdelete.reporting import plan_lines, where

        saved = plans.read(plan_file)
        spec = saved.spec
        inv.run = out = FleetRun(spec, "show-plan", "", dry_run=True, plan_id=saved.plan_id)
        lines = [f"fleet plan {saved.plan_id} ({plan_file}) of {spec.name} "
                 f"(sha256 {spec.sha256[:12]}): {len(saved.targets)} target(s)"]
        by_store = {}
        for (account, region), sub in saved.plans.items():
            restored = {r.store.id: r for r in planfile.restore(sub) if r.store is not None}
            by_store.update({(account, region, k): r for k, r in restored.items()})
            lines += ["", f"{where(planfile.identity_of(sub))} ({spec.account(account).name}); "
                      f"plan made {sub.document.get('created_at')}",
                      "options: " + " ".join(option_words(sub.options))]
            for result in restored.values():
                assert result.plan is not None and result.store is not None
                lines += plan_lines(Snapshot(result.store, result.keys,
                                             scanned=result.scanned), result.plan)
        for t in saved.targets:
            result = by_store[t.key]
            out.targets.append(TargetResult(t, spec.account(t.account_id).name,
                                            Status.PLANNED, exit_status(result), result))
        inv.after = [f"Apply exactly this plan with: ksdelete apply {plan_file}"]
        if output != "json":
            for line in lines:
                click.echo(printable(line))

    inv.go(body)
