"""The fleet's JSON document and plain lines (ksdelete.fleet.view), from a FleetRun built by
hand: every document validated against docs/ksdelete-output.schema.json (issue 21)."""

from __future__ import annotations

import copy
import io
import json
import re
import threading
import time
from dataclasses import replace
from typing import Any

import jsonschema
import pytest
from cli.helpers import SCHEMA, validated

from ksdelete import __version__
from ksdelete.errors import ExitStatus
from ksdelete.fleet.model import FleetRun, TargetResult
from ksdelete.fleet.view import (
    FleetPlainReporter,
    fleet_document,
    next_step,
    phase,
    summary_lines,
)
from ksdelete.models import (
    Action,
    Identity,
    Plan,
    Snapshot,
    Status,
    Step,
    StepKind,
    StoreResult,
)
from ksdelete.output import SCHEMA_VERSION, document, exit_status
from ksdelete.phase import PhaseName, StorePhase
from ksdelete.reporting import Phase, PhaseState

from .builders import (
    AFTER_SCHEDULE,
    DELETED_T,
    DENIED,
    DEV,
    GONE,
    HALT,
    PENDING_T,
    REFUSAL,
    RESUME,
    SPEC,
    STAGE,
    T0,
    fleet_run,
    keys,
    pending_result,
    role_arn,
    store,
)


def as_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as `--output json` prints it, read back through the schema."""
    return validated(json.dumps(doc))


def target(t: TargetResult, **changes: Any) -> FleetRun:
    return FleetRun(spec=SPEC, command="fleet status", run_id="r-1",
                    targets=[replace(t, **changes)])


# ---- the JSON document --------------------------------------------------------------------

def test_the_fleet_document_has_its_summary_and_one_entry_per_target() -> None:
    doc = as_json(fleet_document(fleet_run()))
    assert {k: doc[k] for k in ("schema_version", "ksdelete_version", "kind", "command",
                                "run_id", "dry_run", "exit_code", "plan_id", "halted",
                                "halt_reason")} == {
        "schema_version": SCHEMA_VERSION, "ksdelete_version": __version__, "kind": "fleet",
        "command": "fleet apply", "run_id": "r-7f3c", "dry_run": False, "exit_code": 1,
        "plan_id": None, "halted": True, "halt_reason": HALT}
    assert doc["fleet"] == {"name": "retire-payments", "file": "fleet.yml", "sha256": "ab" * 32}
    assert doc["hub"] == {"arn": "arn:aws:sts::222233334444:assumed-role/ksdelete-hub/ops"}
    assert doc["summary"] == {
        "targets": 5, "deleted": 1, "pending": 1, "planned": 0, "refused": 1, "error": 1,
        "missing": 0, "skipped": 1, "cancelled": 0, "interrupted": 0, "terminated": 0,
        "keys_scheduled": 2}
    assert [(t["account_id"], t["account_name"], t["region"], t["store_id"], t["status"],
             t["exit_code"]) for t in doc["targets"]] == [
        (DEV, "payments-dev", "eu-west-1", "cks-1111111111111111a", "pending", 3),
        (DEV, "payments-dev", "us-east-1", "cks-1111111111111111b", "deleted", 0),
        (DEV, "payments-dev", "us-east-1", "cks-1111111111111111c", "refused", 4),
        (STAGE, "payments-stage", "eu-west-1", "cks-4444444444444444a", "error", 1),
        (STAGE, "payments-stage", "us-east-1", "cks-4444444444444444b", "skipped", 4)]


def test_a_target_entry_carries_the_per_store_object_in_its_scope() -> None:
    pending, _, refused, denied, skipped = as_json(fleet_document(fleet_run()))["targets"]
    assert pending["assumed_role_arn"] == role_arn(DEV)
    assert pending["duration_s"] == 41.25
    assert pending["resume_after"] == RESUME.isoformat()
    assert pending["phase"] == "keys-pending 3/3, earliest deletion 2026-12-10 12:00 UTC"
    assert pending["next_step"] == "wait until 2026-12-11 12:00 UTC"
    assert pending["error"] is None
    # The per-store object, as single-store mode writes it, in the target's account and Region.
    assert pending["store"] == json.loads(json.dumps(document(
        "x", [pending_result()], 3, identity=Identity(DEV, "eu-west-1", role_arn(DEV))
    )["stores"][0]))
    assert (pending["store"]["account"], pending["store"]["region"]) == (DEV, "eu-west-1")
    assert refused["error"] == REFUSAL and refused["store"]["error"] == REFUSAL
    assert refused["phase"] == "refused (cancelled-keys)"
    # An account whose role could not be assumed: no store was looked at.
    assert denied["store"] is None and denied["assumed_role_arn"] is None
    assert denied["error"] == DENIED and denied["phase"] is None
    assert denied["next_step"] == "fix and run again" and denied["resume_after"] is None
    assert skipped["error"]["code"] == "skipped" and skipped["next_step"] == "run again"


def test_keys_scheduled_counts_only_the_keys_this_run_scheduled() -> None:
    """ScheduleKeyDeletion with outcome ok, each key once: already pending, failed or a
    dry run's plan are not counted."""
    result = pending_result()
    result.actions.append(Action("ScheduleKeyDeletion", "ok", result.keys[0].id))  # a retry
    second = pending_result(DELETED_T)
    run = FleetRun(spec=SPEC, command="fleet apply", run_id="r", targets=[
        TargetResult(PENDING_T, "payments-dev", Status.PENDING, ExitStatus.PENDING, result),
        TargetResult(DELETED_T, "payments-dev", Status.PENDING, ExitStatus.PENDING, second)])
    assert fleet_document(run)["summary"]["keys_scheduled"] == 4
    planned = replace(pending_result(), actions=[], status=Status.PLANNED)
    assert fleet_document(target(fleet_run().targets[0], result=planned,
                                 status=Status.PLANNED))["summary"]["keys_scheduled"] == 0


def test_a_dry_run_and_a_saved_plan_are_said() -> None:
    run = fleet_run("fleet plan")
    run.dry_run, run.plan_id, run.halted, run.halt_reason = True, "9b1d0c47e2aa", False, None
    doc = as_json(fleet_document(run))
    assert (doc["dry_run"], doc["plan_id"], doc["halted"]) == (True, "9b1d0c47e2aa", False)


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("reached", [True, False])
def test_every_status_with_or_without_a_store_is_a_valid_entry(status: Status,
                                                                reached: bool) -> None:
    result = replace(pending_result(), status=status) if reached else None
    code = exit_status(result) if result is not None else ExitStatus.ERROR
    t = TargetResult(PENDING_T, "payments-dev", status, code, result,
                     error=None if reached else {"code": "x", "message": "why"})
    doc = as_json(fleet_document(target(t)))
    assert doc["summary"][status.value] == 1 and doc["targets"][0]["next_step"]
    assert summary_lines(target(t))[0].startswith(f"[{PENDING_T.label}] {status}")


def test_an_empty_fleet_run_is_a_valid_document() -> None:
    doc = as_json(fleet_document(FleetRun(spec=replace(SPEC, path=None), command="fleet status",
                                          run_id="r")))
    assert doc["targets"] == [] and doc["exit_code"] == 0 and doc["fleet"]["file"] is None
    assert doc["summary"]["targets"] == 0


# ---- the schema ---------------------------------------------------------------------------

def _invalid(doc: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validated(json.dumps(doc))


def test_the_schema_checks_the_fleet_document_strictly() -> None:
    good = json.loads(json.dumps(fleet_document(fleet_run())))
    for path in ([], ["fleet"], ["hub"], ["summary"], ["targets", 0]):
        bad = copy.deepcopy(good)
        node = bad
        for step in path:
            node = node[step]
        node["surprise"] = 1
        _invalid(bad)  # an unknown member anywhere
    for member in ("kind", "summary", "targets", "halted"):
        bad = copy.deepcopy(good)
        del bad[member]
        _invalid(bad)
    for status in ("deleted", "keys_scheduled"):
        bad = copy.deepcopy(good)
        del bad["summary"][status]
        _invalid(bad)
    bad = copy.deepcopy(good)
    bad["targets"][0]["store"]["surprise"] = 1  # the store object keeps its own strictness
    _invalid(bad)
    bad = copy.deepcopy(good)
    bad["targets"][3]["account_id"] = 444455556666  # an account ID is a 12-digit string
    _invalid(bad)


def test_the_single_store_document_is_unchanged_and_not_a_fleet_one() -> None:
    single = json.loads(json.dumps(document(
        "delete", [pending_result()], 3, identity=Identity(DEV, "eu-west-1", role_arn(DEV)))))
    validated(json.dumps(single))
    _invalid({**single, "kind": "fleet"})
    _invalid({**single, "kind": "store"})
    fleet = json.loads(json.dumps(fleet_document(fleet_run())))
    _invalid({**fleet, "stores": []})  # a fleet document is not a store document either


def test_the_fleet_targets_share_the_store_definition() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    text = json.dumps(schema)
    assert text.count('"connection_error_code": {') == 1  # the store object is declared once
    fleet_target = schema["$defs"]["fleet_target"]
    assert fleet_target["properties"]["store"] == {
        "oneOf": [{"type": "null"}, {"$ref": "#/$defs/store"}]}


# ---- phase and next step ------------------------------------------------------------------

def _pending_with(phase_value: StorePhase | str, *, resume: Any = None,
                  plan: Plan | None = None, status: Status = Status.PENDING,
                  n_keys: int = 3, n_pending: int = 3) -> TargetResult:
    ks = keys(PENDING_T, n_keys, pending=n_pending)
    result = StoreResult(ref=PENDING_T.store_id, status=status, store=store(PENDING_T),
                         keys=ks, plan=plan, phase=phase_value, resume_after=resume)
    return TargetResult(PENDING_T, "payments-dev", status, ExitStatus.PENDING, result)


SCHEDULE_3 = Plan(PENDING_T.store_id, (
    Step(StepKind.SCHEDULE_KEY_DELETION, ("a", "b", "c"), window_days=7),
    Step(StepKind.AWAIT_KEYS_DELETED, ("a", "b", "c"))))


@pytest.mark.parametrize(("made", "expected"), [
    (lambda: fleet_run().targets[0], "wait until 2026-12-11 12:00 UTC"),
    (lambda: fleet_run().targets[1], "none (deleted)"),
    (lambda: fleet_run().targets[2], "fix and run again"),
    (lambda: fleet_run().targets[3], "fix and run again"),
    (lambda: fleet_run().targets[4], "run again"),
    (lambda: _pending_with(StorePhase.of(PhaseName.READY_TO_DISCONNECT), n_keys=0),
     "disconnect and delete"),
    (lambda: _pending_with(StorePhase.of(PhaseName.DISCONNECTING), n_keys=0),
     "wait for the disconnect, then delete"),
    (lambda: _pending_with(StorePhase.of(PhaseName.READY_TO_DELETE), n_keys=0),
     "delete the store"),
    (lambda: _pending_with("keys-not-scheduled 1/3", n_pending=2), "schedule 1 key(s)"),
    (lambda: _pending_with(StorePhase.of(PhaseName.SOAKING, "3/3 key(s) disabled"),
                           resume=RESUME, n_pending=0), "wait out the soak until 2026-12-11 "
     "12:00 UTC"),
    # The dry run (fleet plan): what applying it would do first.
    (lambda: _pending_with("keys-not-scheduled 3/3", plan=SCHEDULE_3, status=Status.PLANNED,
                           resume=GONE, n_pending=0), "schedule 3 key(s)"),
    (lambda: _pending_with("", n_keys=0), "run again"),
    (lambda: replace(fleet_run().targets[1], status=Status.CANCELLED), "none (cancelled)"),
    (lambda: replace(fleet_run().targets[1], status=Status.MISSING),
     "none (the store does not exist)"),
    (lambda: replace(fleet_run().targets[1], status=Status.INTERRUPTED), "run again"),
])
def test_next_step(made: Any, expected: str) -> None:
    assert next_step(made()) == expected


def test_phase_is_the_stores_phase_text_or_none() -> None:
    run = fleet_run()
    assert [phase(t) for t in run.targets] == [
        "keys-pending 3/3, earliest deletion 2026-12-10 12:00 UTC", "deleted",
        "refused (cancelled-keys)", None, None]


# ---- the summary lines --------------------------------------------------------------------

def test_summary_lines_one_per_target_then_the_counts_and_the_exit_code() -> None:
    assert summary_lines(fleet_run()) == [
        "[111122223333/eu-west-1/cks-1111111111111111a] pending: keys-pending 3/3, earliest "
        "deletion 2026-12-10 12:00 UTC; next: wait until 2026-12-11 12:00 UTC",
        "[111122223333/us-east-1/cks-1111111111111111b] deleted; next: none (deleted)",
        f"[111122223333/us-east-1/cks-1111111111111111c] refused: {REFUSAL['message']}; "
        "next: fix and run again",
        f"[444455556666/eu-west-1/cks-4444444444444444a] error: {DENIED['message']}; "
        "next: fix and run again",
        f"[444455556666/us-east-1/cks-4444444444444444b] skipped: not started: {HALT}; "
        "next: run again",
        f"fleet retire-payments: 5 target(s): 1 deleted, 1 pending, 1 refused, 1 error, "
        f"1 skipped; 2 key(s) scheduled; halted: {HALT}; exit 1",
    ]


def test_a_summary_line_says_when_to_run_again_and_escapes_aws_text() -> None:
    t = _pending_with(StorePhase.of(PhaseName.READY_TO_DISCONNECT), n_keys=0, resume=RESUME)
    assert summary_lines(target(t))[0].endswith(
        "pending: ready-to-disconnect; next: disconnect and delete, after 2026-12-11 12:00 UTC")
    planned = _pending_with("keys-not-scheduled 3/3", plan=SCHEDULE_3, status=Status.PLANNED,
                            resume=GONE, n_pending=0)
    assert summary_lines(target(planned))[0].endswith(
        "planned: keys-not-scheduled 3/3; next: schedule 3 key(s), gone at the earliest "
        "2026-12-10 12:00 UTC")
    evil = replace(fleet_run().targets[3], error={"code": "x", "message": "bad\x1b[2J\nname"})
    line = summary_lines(target(evil))[0]
    assert "\x1b" not in line and "\n" not in line and "\\x1b[2J" in line


# ---- plain lines for several accounts at once ---------------------------------------------

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def clock() -> Any:
    return T0


def test_every_line_of_a_scope_names_its_account_region_and_store() -> None:
    out = io.StringIO()
    fleet = FleetPlainReporter(out, clock=clock)
    fleet.start(command="fleet apply", dry_run=False, spec=SPEC)
    dev = fleet.for_scope(DEV, "payments-dev", "eu-west-1")
    one = dev.for_store(PENDING_T.store_id)
    one.begin()
    one.phase(Phase.DISCOVER, PhaseState.DONE, "40 key(s) scanned")
    one.note("refused line\ndetail one", level="refused")
    one.note("refused line\ndetail one\nwhat the run did", level="refused")  # told once
    dev.retry("ListKeys", 1, 0.5, "ThrottlingException")  # no store: the scope's
    dev.note("hello", level="warning")
    assert out.getvalue().splitlines() == [
        "2026-12-03T12:00:00Z [111122223333/eu-west-1/cks-1111111111111111a] discover: done: "
        "40 key(s) scanned",
        "2026-12-03T12:00:00Z [111122223333/eu-west-1/cks-1111111111111111a] refused: "
        "refused line",
        "2026-12-03T12:00:00Z [111122223333/eu-west-1/cks-1111111111111111a]   detail one",
        "2026-12-03T12:00:00Z [111122223333/eu-west-1/cks-1111111111111111a]   what the run "
        "did",
        "2026-12-03T12:00:00Z [111122223333/eu-west-1] retry: ListKeys attempt 1 failed "
        "(ThrottlingException); next try in 0.5s",
        "2026-12-03T12:00:00Z [111122223333/eu-west-1] warning: hello",
    ]


def test_the_same_refusal_in_two_stores_is_said_for_each() -> None:
    out = io.StringIO()
    fleet = FleetPlainReporter(out, clock=clock)
    scope = fleet.for_scope(DEV, "payments-dev", "us-east-1")
    for ref in (DELETED_T.store_id, PENDING_T.store_id):
        scope.note("the store has cancelled keys", level="refused", target=ref)
    assert len(out.getvalue().splitlines()) == 2


def test_quiet_says_only_errors_and_refusals() -> None:
    out = io.StringIO()
    fleet = FleetPlainReporter(out, quiet=True, clock=clock)
    fleet.start(command="fleet apply", dry_run=True, spec=SPEC)
    scope = fleet.for_scope(STAGE, "payments-stage", "eu-west-1").for_store("cks-x")
    scope.phase(Phase.DISCOVER, PhaseState.DONE, "3 keys")
    scope.note("just so you know")
    scope.note("a warning", level="warning")
    scope.retry("ListKeys", 1, 0.5, "ThrottlingException")
    snap = pending_result()
    assert snap.store is not None and snap.plan is not None
    scope.plan(Snapshot(snap.store, snap.keys), snap.plan)
    scope.note("it broke", level="error")
    scope.note("no, refused", level="refused")
    assert [re.sub(STAMP + " ", "", line) for line in out.getvalue().splitlines()] == [
        "[444455556666/eu-west-1/cks-x] error: it broke",
        "[444455556666/eu-west-1/cks-x] refused: no, refused"]


def test_a_dry_runs_plan_goes_to_the_plan_stream_prefixed_in_one_piece() -> None:
    out, plan_out = io.StringIO(), io.StringIO()
    fleet = FleetPlainReporter(out, clock=clock, plan_stream=plan_out)
    fleet.start(command="fleet plan", dry_run=True, spec=SPEC)
    result = pending_result()
    assert result.store is not None and result.plan is not None
    fleet.for_scope(DEV, "payments-dev", "eu-west-1").for_store(PENDING_T.store_id).plan(
        Snapshot(result.store, result.keys), result.plan)
    assert out.getvalue() == "2026-12-03T12:00:00Z DRY RUN: nothing will be changed\n"
    lines = plan_out.getvalue().splitlines()
    assert len(lines) > 5
    assert all(line.startswith("[111122223333/eu-west-1/cks-1111111111111111a] ")
               for line in lines)
    assert any("ScheduleKeyDeletion for 3 key(s)" in line for line in lines)


def test_a_dry_run_lists_every_key_even_of_a_plan_that_only_waits() -> None:
    """For review, as in single-store mode: the fleet's dry run reaches every scope."""
    plan_out = io.StringIO()
    fleet = FleetPlainReporter(io.StringIO(), clock=clock, plan_stream=plan_out)
    fleet.start(command="fleet plan", dry_run=True, spec=SPEC)
    result = pending_result()
    assert result.store is not None
    waits = Plan(PENDING_T.store_id, AFTER_SCHEDULE, earliest_gone=GONE)
    fleet.for_scope(DEV, "payments-dev", "eu-west-1").plan(
        PENDING_T.store_id, Snapshot(result.store, result.keys), waits)
    assert sum(f"key {k.id} PendingDeletion" in plan_out.getvalue() for k in result.keys) == 3


def test_a_target_that_never_reached_its_store_is_said_once() -> None:
    out = io.StringIO()
    fleet = FleetPlainReporter(out, clock=clock)
    run = fleet_run()
    for t in run.targets:
        fleet.target_done(t)
    fleet.target_done(run.targets[3])  # said again: not printed again
    fleet.target_done(run.targets[4])
    assert [re.sub(STAMP + " ", "", line) for line in out.getvalue().splitlines()] == [
        f"[444455556666/eu-west-1/cks-4444444444444444a] error: {DENIED['message']}",
        f"[444455556666/us-east-1/cks-4444444444444444b] skipped: not started: {HALT}"]


def test_what_the_run_said_without_a_store_is_not_said_again_at_its_end() -> None:
    out = io.StringIO()
    fleet = FleetPlainReporter(out, clock=clock)
    fleet.for_scope(STAGE, "payments-stage", "eu-west-1").note(DENIED["message"], level="error")
    fleet.target_done(fleet_run().targets[3])
    assert len(out.getvalue().splitlines()) == 1


class SlowStream(io.StringIO):
    """Writes a character at a time, yielding between characters: an unlocked writer's lines
    would interleave."""

    def write(self, text: str) -> int:
        for char in text:
            super().write(char)
            time.sleep(0)
        return len(text)


def test_lines_of_several_accounts_at_once_never_interleave() -> None:
    out = SlowStream()
    fleet = FleetPlainReporter(out, clock=clock)
    accounts = [f"{n:012d}" for n in range(1, 7)]

    def work(account: str) -> None:
        scope = fleet.for_scope(account, f"acct-{account[-1]}", "eu-west-1")
        store_reporter = scope.for_store(f"cks-{account}")
        for i in range(10):
            store_reporter.phase(Phase.SCHEDULE, PhaseState.RUNNING, f"step {i}")
            store_reporter.note(f"first {i}\nsecond {i}\nthird {i}", level="warning")

    threads = [threading.Thread(target=work, args=(a,)) for a in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 6 * 10 * 4
    shape = re.compile(STAMP + r" \[(\d{12})/eu-west-1/cks-\1\] "
                       r"(schedule: running: step \d+|warning: first \d+|  second \d+|"
                       r"  third \d+)")
    assert all(shape.fullmatch(line) for line in lines), lines[:5]
    for index, line in enumerate(lines):  # a message's lines stay together
        if "warning: first" in line:
            n, prefix = line.rsplit(" ", 1)[1], line.split("] ")[0]
            assert lines[index + 1].startswith(prefix) and lines[index + 1].endswith(
                f"second {n}")
            assert lines[index + 2].endswith(f"third {n}")
