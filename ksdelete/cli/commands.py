"""The store commands: delete (the default), apply, show-plan, status, cancel, report. Each
parses, confirms, wires objects and calls the service layer (ksdelete/service.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ksdelete import exitcodes
from ksdelete.cli.confirm import _confirmer, _require_confirmation_channel
from ksdelete.cli.errors import Invocation
from ksdelete.cli.group import cli
from ksdelete.cli.options import (
    _settings,
    _setup_logging,
    apply_options,
    aws_options,
    check_stores,
    plan_options,
    wait_options,
)
from ksdelete.errors import UsageError
from ksdelete.models import PlanOptions, Snapshot, Status, StoreResult
from ksdelete.options import option_words
from ksdelete.reporting import printable

if TYPE_CHECKING:
    from ksdelete.app import App, Settings
    from ksdelete.executor import RunOptions


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
    from ksdelete.fleet.plans import is_fleet_plan

    if is_fleet_plan(plan_file):  # a saved fleet plan: every target of it
        from ksdelete.cli.fleet_run import apply_fleet_plan

        if region or profile:
            raise click.UsageError("a fleet plan names each target's account and Region, and "
                                   "how to reach it: leave out --region and --profile")
        apply_fleet_plan(plan_file, endpoint_url=endpoint_url, output=output, quiet=quiet,
                         debug=debug, journal=journal, wait=wait, max_wait=max_wait,
                         poll_interval=poll_interval)
    inv = Invocation("apply", output=output, quiet=quiet, debug=debug)

    def body(inv: Invocation) -> None:
        from ksdelete import planfile, service
        from ksdelete.app import make_reporter

        saved = planfile.read(plan_file)
        inv.plan_id = saved.plan_id
        inv.reporter = reporter = make_reporter(quiet, debug=debug)
        app = service.open_for_plan(
            _settings(region, profile, endpoint_url, journal, poll_interval,
                      default_region=saved.region), saved, reporter, wait=wait,
            max_wait=max_wait)
        inv.identity, inv.run_id = app.identity, app.journal.run_id
        try:
            service.check_plan_region(app, saved)
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
    from ksdelete.fleet.plans import is_fleet_plan

    if is_fleet_plan(plan_file):  # a saved fleet plan: every target of it
        from ksdelete.cli.fleet_run import show_fleet_plan

        show_fleet_plan(plan_file, output=output)
    inv = Invocation("show-plan", output=output, quiet=False, debug=False, dry_run=True)

    def body(inv: Invocation) -> None:
        from ksdelete import planfile
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
