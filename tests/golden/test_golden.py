"""Golden transcripts of the main commands, plain and --output json: what an operator and a log
pipeline see today, pinned (normalised: see normalise.py) so that a restructuring provably
changes no output. A difference fails with a diff; `KSDELETE_UPDATE_GOLDEN=1 pytest
tests/golden` rewrites tests/golden/data/ (review the diff before committing it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ksdelete.emulator import Emulator

from .golden import Case

DAY = 86400.0
MODES = {"text": (), "json": ("--output", "json")}


def store_spec(state: str = "CONNECTED") -> dict[str, Any]:
    """A CloudHSM store 'target' with 3 keys (aliased), a bystander store and 2 plain keys."""
    return {"region": "us-east-1", "plain_keys": 2, "stores": [
        {"name": "target", "type": "AWS_CLOUDHSM", "connection_state": state, "keys": 3,
         "aliases": True},
        {"name": "other", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED", "keys": 1}]}


@pytest.fixture
def instant(emulator: Emulator) -> Emulator:
    """Connecting and disconnecting take no emulated time: no waiting, no polling."""
    emulator.configure(connect_seconds=0.0, disconnect_seconds=0.0)
    return emulator


def case(name: str, mode: str, emulator: Emulator, tmp_path: Path,
         state: str = "CONNECTED") -> tuple[Case, tuple[str, ...]]:
    golden = Case(f"{name}-{mode}", emulator, tmp_path)
    golden.seed(store_spec(state))
    return golden, MODES[mode]


@pytest.mark.parametrize("mode", MODES)
def test_the_plan_of_a_dry_run(instant: Emulator, tmp_path: Path, mode: str) -> None:
    golden, out = case("dry-run", mode, instant, tmp_path)
    golden.run("delete", "target", "--dry-run", *out, expect=0)
    golden.check()


@pytest.mark.parametrize("mode", MODES)
def test_the_first_run_then_cron_status_and_report_while_pending(
        instant: Emulator, tmp_path: Path, mode: str) -> None:
    """The first run schedules (exit 3); the cron line of a run that changes nothing; status
    and report while the keys are pending (both read CloudTrail: the watch)."""
    golden, out = case("pending", mode, instant, tmp_path)
    golden.run("delete", "target", "--yes", "--pending-window-days", "7", *out, expect=3)
    golden.run("delete", "target", "--yes", "-q", *out, expect=3)
    golden.run("status", "target", *out, expect=3)
    golden.run("report", "target", *out, expect=3)
    golden.check()


@pytest.mark.parametrize("mode", MODES)
def test_the_journey_to_deleted(instant: Emulator, tmp_path: Path, mode: str) -> None:
    """Keys scheduled (the cron line of a first run); 8 days later (the emulator's clock) the
    status, the run that disconnects and deletes the store, then what cron, status and report
    say of the deleted store."""
    golden, out = case("deleted", mode, instant, tmp_path)
    golden.run("delete", "target", "--yes", "--pending-window-days", "7", "-q", *out, expect=3)
    golden.note("8 days later")
    instant.advance(8 * DAY)
    golden.run("status", "target", *out, expect=3)
    golden.run("delete", "target", "--yes", *out, expect=0)
    golden.run("delete", "target", "--yes", "-q", *out, expect=0)
    golden.run("status", "target", *out, expect=0)
    golden.run("report", "target", *out, expect=0)
    golden.check()


@pytest.mark.parametrize("mode", MODES)
def test_cancel_then_enable(instant: Emulator, tmp_path: Path, mode: str) -> None:
    golden, out = case("cancel", mode, instant, tmp_path)
    golden.run("delete", "target", "--yes", "--pending-window-days", "7", "-q", expect=3)
    golden.run("cancel", "target", "--yes", *out, expect=0)
    golden.run("cancel", "target", "--yes", "--enable", *out, expect=0)
    golden.run("status", "target", *out, expect=4)
    golden.check()


@pytest.mark.parametrize("mode", MODES)
def test_save_show_and_apply_a_plan(instant: Emulator, tmp_path: Path, mode: str) -> None:
    golden, out = case("saved-plan", mode, instant, tmp_path)
    plan = tmp_path / "plan.json"
    golden.run("delete", "target", "--dry-run", "--save-plan", str(plan),
               "--pending-window-days", "7", *out, expect=0, saves=plan)
    golden.file(plan)
    golden.run("show-plan", str(plan), *out, expect=0)
    golden.run("apply", str(plan), *out, expect=3)
    golden.note("8 days later")
    instant.advance(8 * DAY)
    golden.run("apply", str(plan), *out, expect=0)
    golden.check()


@pytest.mark.parametrize("mode", MODES)
def test_a_gate_refuses(instant: Emulator, tmp_path: Path, mode: str) -> None:
    """A disconnected CloudHSM store without --connect (cloudhsm_connected). The wording of
    refusals is being rewritten (issue 19 item 7): expect to regenerate this one."""
    golden, out = case("refused", mode, instant, tmp_path, state="DISCONNECTED")
    golden.run("delete", "target", "--yes", *out, expect=4)
    golden.check()
