"""What each fleet command does (the CLI and the tests call it): select the targets, check
the file's guards before any AWS call, run every (account, Region), and save or apply a
fleet plan. No click, no rich."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import ksdelete.fleet.spec as fleet_spec
from ksdelete import planfile, planner
from ksdelete.errors import UsageError
from ksdelete.fleet import plans
from ksdelete.fleet.model import FleetRun, FleetSpec, StoreTarget, TargetResult
from ksdelete.fleet.runner import FleetRunner, FleetSettings
from ksdelete.fleet.view import FleetPlainReporter, FleetReporter
from ksdelete.models import Status
from ksdelete.sessions import SessionFactory


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def select(spec: FleetSpec, wanted: Sequence[str]) -> tuple[StoreTarget, ...]:
    """The targets `--target` names (a store ID, or ACCOUNT/REGION/STORE, or ACCOUNT, or an
    account's name), all of them without one. A selection that matches nothing is a usage
    error: for a deletion tool an empty match is a typo, not "nothing to do"."""
    if not wanted:
        return spec.targets
    names = {a.name: a.account_id for a in spec.accounts}
    chosen: list[StoreTarget] = []
    for word in wanted:
        # Each meaning of the word on its own: a word that is one account's name and another
        # account's ID (or a store's) would otherwise quietly select the wrong account.
        meanings = {
            "an account name": [t for t in spec.targets if t.account_id == names.get(word)],
            "an account ID": [t for t in spec.targets if t.account_id == word],
            "a store": [t for t in spec.targets if word in (t.store_id, t.label)],
        }
        distinct = {tuple(found): kind for kind, found in meanings.items() if found}
        if len(distinct) > 1:
            raise UsageError(f"--target {word!r} is ambiguous: it is "
                             f"{' and '.join(distinct.values())} in the fleet file",
                             where=str(spec.path or spec.name),
                             hint="Name the store as ACCOUNT/REGION/STORE, and give the "
                                  "account a name that is not an ID")
        found = next(iter(distinct), ())
        if not found:
            raise UsageError(f"--target {word!r} matches no target of the fleet file",
                             where=str(spec.path or spec.name),
                             hint="Use a store ID, ACCOUNT/REGION/STORE, an account ID or "
                                  "an account name from the file")
        chosen += [t for t in found if t not in chosen]
    order = {t.key: i for i, t in enumerate(spec.targets)}
    return tuple(sorted(chosen, key=lambda t: order[t.key]))


def check_guards(spec: FleetSpec, *, changing: bool, capped: bool) -> None:
    """The file's own guards, before any AWS call: a forbidden account is a usage error
    whatever the command (the file's reading says so too; a spec is asked again here); a
    change needs every account on the allow-list; max_targets refuses a run that would
    change (nothing changed anywhere)."""
    for account in spec.accounts:
        if account.account_id in spec.guards.forbidden_accounts:
            raise UsageError(f"account {account.account_id} ({account.name}) is in "
                             "guards.forbidden_accounts", where=str(spec.path or spec.name),
                             hint="Remove it from the file: a forbidden account is never "
                                  "touched")
    if changing:
        fleet_spec.check_for_change(spec)
    refusal = planner.too_many_targets(spec) if capped else None
    if refusal is not None:
        raise refusal.as_error(where=str(spec.path or spec.name))


def execute(spec: FleetSpec, mode: str, targets: Sequence[StoreTarget],
            settings: FleetSettings, reporter: FleetReporter, out: FleetRun, *,
            saved: plans.SavedFleetPlan | None = None,
            sessions: SessionFactory | None = None) -> FleetRunner:
    """Run `mode` over `targets`; `out` gets every target's result, whatever stops it."""
    check_guards(spec, changing=mode in ("apply", "cancel"), capped=mode == "apply")
    reporter.start(command=out.command, dry_run=mode == "plan", spec=spec)
    said = threading.Lock()

    def done(results: Sequence[TargetResult]) -> None:
        with said:
            for t in results:
                reporter.target_done(t)

    runner = FleetRunner(
        spec, mode, settings,
        lambda account, region: reporter.for_scope(account.account_id, account.name, region),
        out.run_id, sessions or SessionFactory(),
        saved=saved.plans if saved else None, on_done=done)
    witness = runner.consult(targets)  # the second witness: one query per run
    if witness is not None and witness.failed is not None:
        refusal = planner.witness_refusal("", witness.aggregator, failed=witness.failed,
                                          said=witness.said)
        assert refusal is not None
        changing = mode == "apply"  # plan and status: only a warning
        reporter.note(refusal.message if changing else
                      f"the AWS Config aggregator {witness.aggregator} could not be queried "
                      f"({witness.failed}): no second witness this run\nAWS: {witness.said}",
                      level="refused" if changing else "warning")
    try:
        runner.run(targets, out)
    finally:
        if runner.brake.halted:
            reporter.note(f"no new change started: {runner.brake.reason}", level="refused")
    return runner


def save_plan(runner: FleetRunner, spec: FleetSpec, out: FleetRun, path: Path) -> str:
    """`fleet plan --save-plan`: one file for every target, if every one was planned (a
    target refused or not reached leaves no plan: fix it first). Returns the plan ID."""
    if not out.targets or any(t.status is not Status.PLANNED for t in out.targets):
        bad = [t.target.label for t in out.targets if t.status is not Status.PLANNED]
        raise UsageError(f"not saved: {len(bad)} target(s) could not be planned "
                         f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})",
                         where=str(path), hint="Fix them (or leave them out with "
                                               "--target), then plan again")
    if spec.path is None:
        raise UsageError("a fleet plan needs its fleet file", where=str(path))
    try:
        data = spec.path.read_bytes()  # as read for the digest: no newline translation
    except OSError as exc:
        raise UsageError(f"not saved: cannot read the fleet file again: "
                         f"{exc.strerror or exc}", where=str(spec.path),
                         hint="Plan it again") from exc
    text = data.decode("utf-8", "replace")
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise UsageError("not saved: the fleet file changed while it was being planned",
                         where=str(spec.path), hint="Plan it again")
    content = plans.build(spec, text, runner.plans, now=datetime.now(UTC))
    planfile.write(path, content)
    return planfile.short_id(content["digest"])


def make_fleet_reporter(quiet: bool = False, debug: bool = False, stream: TextIO | None = None,
                        *, plan_stream: TextIO | None = None) -> FleetReporter:
    """The live table on a terminal, plain lines otherwise (and with --quiet, or --debug,
    whose log lines would tear a live view apart), as `app.make_reporter` chooses."""
    stream = stream if stream is not None else sys.stderr
    if not quiet and not debug and stream.isatty() and os.environ.get("TERM") != "dumb":
        from ksdelete.fleet.live import FleetLiveReporter, fleet_console

        return FleetLiveReporter(fleet_console(stream), plan_stream=plan_stream)
    return FleetPlainReporter(stream, quiet=quiet, plan_stream=plan_stream)
