"""Fleet mode attacked: an operator's Ctrl-C, a selection that means two things, errors before
the run, a file saved on Windows. Over HTTP against the emulator with several accounts, each
reached by a profile whose access key the emulator maps to that account (as in
tests/fleet/test_fleet_cli.py)."""

from __future__ import annotations

import _thread
import io
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cli.helpers import MUTATING, validated

from fleet.test_fleet_cli import ACCOUNTS, fleet, fleet_file, profiles, seed
from fleet.test_runner import replace_account, spec_of
from fleet.test_runner import seed as seed_targets
from ksdelete.emulator import Emulator
from ksdelete.fleet.model import AccountSpec, FleetRun, FleetSpec, Rollout
from ksdelete.fleet.runner import FleetRunner, FleetSettings
from ksdelete.fleet.view import fleet_document
from ksdelete.lock import StoreLock
from ksdelete.models import Status
from ksdelete.reporting import Phase, PhaseState, QuietReporter
from ksdelete.sessions import SessionFactory

__all__ = ["profiles"]  # the fixture, used by name

DEV, STAGE, PROD = ACCOUNTS


def changed(emulator: Emulator, account: str | None = None) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c["operation"] in MUTATING
            and c["status"] == 200 and (account is None or c.get("account") == account)]


class CtrlC(QuietReporter):
    """A reporter that stands in for the operator: once a store of `account` has its plan
    (surveyed, gates decided, nothing changed yet), Ctrl-C. `how`: "raise" (the main thread
    is running that store) or "signal" (a worker is: SIGINT to the main thread, then the
    worker goes on once the main thread has seen it)."""

    def __init__(self, runner: list[FleetRunner], account: str, how: str) -> None:
        super().__init__(io.StringIO())
        self.runner, self.account, self.how = runner, account, how

    def phase(self, target: str, phase: Phase, state: PhaseState, detail: str = "") -> None:
        if phase is Phase.PLAN and state is PhaseState.DONE and not FIRED:
            FIRED.append(target)
            if self.how == "raise":
                raise KeyboardInterrupt()
            _thread.interrupt_main()
            assert self.runner[0].interruptible.stop.wait(5), "the main thread saw no Ctrl-C"


FIRED: list[str] = []


@pytest.fixture
def sigint() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in the main thread (as in the installed ksdelete)."""
    FIRED.clear()
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def interrupted_run(emulator: Emulator, spec: FleetSpec, *, account: str, how: str,
                    mode: str = "apply") -> FleetRun:
    out = FleetRun(spec, f"fleet {mode}", "r-adv")
    holder: list[FleetRunner] = []

    def reporter_for(acct: AccountSpec, region: str) -> QuietReporter:
        if acct.account_id == account:
            return CtrlC(holder, account, how)
        return QuietReporter(io.StringIO())

    runner = FleetRunner(spec, mode, FleetSettings(endpoint_url=emulator.endpoint_url,
                                                   poll_interval=0.01),
                         reporter_for, "r-adv", SessionFactory())
    holder.append(runner)
    try:
        runner.run(spec.targets, out)
    except KeyboardInterrupt:
        pass
    else:
        # One thread: the interrupted store's own run stops; the fleet must stop too.
        assert any(t.status is Status.INTERRUPTED for t in out.targets)
    return out


def test_ctrl_c_stops_a_fleet_that_runs_one_account_at_a_time(
        emulator: Emulator, profiles: None, sigint: None) -> None:
    targets = seed_targets(emulator)
    spec = spec_of(targets, rollout=Rollout(max_accounts=1, canary=0, failure_tolerance=0))
    out = interrupted_run(emulator, spec, account=DEV, how="raise")
    assert FIRED
    assert changed(emulator) == [], "accounts after the Ctrl-C were changed"
    # every target is listed, none of the others as started
    assert [t.target.key for t in out.targets] == [t.key for t in spec.targets]
    assert out.targets[0].status is Status.INTERRUPTED
    assert all(t.status in (Status.INTERRUPTED, Status.SKIPPED) for t in out.targets), \
        [t.status for t in out.targets]


def test_ctrl_c_stops_every_account_thread_before_its_next_change(
        emulator: Emulator, profiles: None, sigint: None) -> None:
    targets = seed_targets(emulator)
    spec = spec_of(targets, rollout=Rollout(max_accounts=3, canary=0, failure_tolerance=0))
    out = interrupted_run(emulator, spec, account=DEV, how="signal")
    assert FIRED
    # the store that was being planned when the operator pressed Ctrl-C is not changed
    assert changed(emulator, DEV) == [], "a worker changed its store after the Ctrl-C"
    # and every target is in the result, whatever stage it was in
    assert sorted(t.target.key for t in out.targets) == sorted(t.key for t in spec.targets)
    dev = [t for t in out.targets if t.target.account_id == DEV]
    assert dev and all(t.status in (Status.INTERRUPTED, Status.SKIPPED) for t in dev), \
        [(t.status, t.error) for t in dev]


def test_ctrl_c_in_a_region_with_two_stores_lists_both(
        emulator: Emulator, profiles: None, sigint: None) -> None:
    targets = seed_targets(emulator, stores_per_group=2)
    spec = spec_of(targets, rollout=Rollout(max_accounts=1, canary=0, failure_tolerance=0))
    out = interrupted_run(emulator, spec, account=DEV, how="raise", mode="plan")
    assert [t.target.key for t in out.targets] == [t.key for t in spec.targets]
    assert out.targets[0].status is Status.INTERRUPTED
    assert out.targets[1].status is Status.SKIPPED, out.targets[1]
    assert "not started" in (out.targets[1].error or {}).get("message", "")
    # every entry, interrupted, not started, of another account: the schema's
    validated(json.dumps(fleet_document(out), default=str))


def test_json_mode_prints_one_object_when_the_run_cannot_start(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made)
    cases: list[tuple[str, ...]] = [
        ("fleet", "apply", str(path)),  # no --yes
        ("fleet", "status", str(tmp_path / "no-such.yml")),  # the file cannot be read
    ]
    plan = tmp_path / "fleet-plan.json"
    code, _, err = fleet(emulator, "fleet", "plan", str(path), "--save-plan", str(plan))
    assert code == 0, err
    plan.write_text(plan.read_text().replace('"pending_window_days": 7',
                                             '"pending_window_days": 30', 1))
    cases.append(("apply", str(plan)))  # an edited fleet plan
    for args in cases:
        code, doc, err = fleet(emulator, *args)
        assert code == 2, (args, err)
        assert doc, f"{args}: no JSON object on stdout"
        assert doc["exit_code"] == 2 and doc["error"]["code"] == "usage", doc
        assert err.count("\n") == 1, err  # and one line on stderr
    assert changed(emulator) == []


def test_a_target_word_that_names_one_account_and_is_the_id_of_another_is_refused(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made)
    # dev's name is prod's account ID: `--target 333333333333` must not mean dev
    path.write_text(path.read_text().replace("    name: dev\n", f'    name: "{PROD}"\n'))
    for command in ("status", "cancel"):
        code, doc, err = fleet(emulator, "fleet", command, str(path), "--target", PROD)
        assert code == 2, (command, err, [t["account_id"] for t in doc.get("targets", [])])
        assert "ambiguous" in err and err.count("\n") == 1, err
    # a word that means one thing still selects it
    code, doc, err = fleet(emulator, "fleet", "status", str(path), "--target", STAGE)
    assert code == 3 and {t["account_id"] for t in doc["targets"]} == {STAGE}, err
    assert changed(emulator) == []


def test_a_fleet_file_with_windows_line_ends_can_be_saved_as_a_plan(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    plan = tmp_path / "fleet-plan.json"
    code, doc, err = fleet(emulator, "fleet", "plan", str(path), "--save-plan", str(plan))
    assert code == 0, err
    assert doc["plan_id"] and plan.exists()
    code, doc, err = fleet(emulator, "apply", str(plan))
    assert code == 3, err
    assert doc["fleet"]["sha256"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()


def test_a_fleet_cancel_sticks_against_a_saved_fleet_plan(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made,
                      rollout="rollout: {max_accounts: 3, canary: 0, failure_tolerance: 7}")
    plan = tmp_path / "fleet-plan.json"
    code, _, err = fleet(emulator, "fleet", "plan", str(path), "--save-plan", str(plan))
    assert code == 0, err
    code, doc, err = fleet(emulator, "apply", str(plan))
    assert code == 3 and doc["summary"]["keys_scheduled"] == 14, err
    code, doc, err = fleet(emulator, "fleet", "cancel", str(path))
    assert code == 0, err
    before = len(emulator.calls())
    code, doc, err = fleet(emulator, "apply", str(plan))  # cron, the next day
    assert code == 4, err
    assert all(t["status"] == "refused" for t in doc["targets"]), doc["summary"]
    assert [c for c in emulator.calls()[before:] if c["operation"] in MUTATING
            and c["status"] == 200] == []


def test_a_canary_that_fails_stops_the_rest_whatever_the_tolerance(
        emulator: Emulator, profiles: None) -> None:
    targets = seed_targets(emulator)
    spec = spec_of(targets, rollout=Rollout(max_accounts=3, canary=1, failure_tolerance=3))
    # the canary (the file's first store) is not the store the file says: refused
    wrong = spec_of([replace(targets[0], expect_name="not-its-name"), *targets[1:]],
                    rollout=spec.rollout)
    out = FleetRun(wrong, "fleet apply", "r-adv")
    FleetRunner(wrong, "apply", FleetSettings(endpoint_url=emulator.endpoint_url,
                                              poll_interval=0.01),
                lambda a, r: QuietReporter(io.StringIO()), "r-adv",
                SessionFactory()).run(wrong.targets, out)
    assert out.targets[0].status is Status.REFUSED
    assert changed(emulator) == [], "targets after a failed canary were changed"
    assert all(t.status is Status.SKIPPED for t in out.targets[1:]), \
        [t.status for t in out.targets]
    assert out.halted and "canary" in (out.halt_reason or "")


class CtrlCWhileWaiting(QuietReporter):
    """Ctrl-C (SIGINT to the main thread) once a worker says it waits for a store's lock."""

    def note(self, text: str, *, level: str = "info", target: str = "") -> None:
        if "holds the lock" in text and not FIRED:
            FIRED.append(text)
            _thread.interrupt_main()


def test_ctrl_c_reaches_a_worker_that_waits_for_a_store_lock(
        emulator: Emulator, profiles: None, sigint: None, tmp_path: Path) -> None:
    targets = seed_targets(emulator)
    spec = spec_of(targets, rollout=Rollout(max_accounts=3, canary=0, failure_tolerance=0))
    first = targets[0]
    locks = tmp_path / "state" / "ksdelete" / "locks"
    locks.mkdir(parents=True)
    held = StoreLock(locks, first.account_id, first.region, first.store_id)
    held.acquire(0)  # another ksdelete run works on the first store
    out = FleetRun(spec, "fleet apply", "r-adv")
    runner = FleetRunner(
        spec, "apply", FleetSettings(endpoint_url=emulator.endpoint_url, poll_interval=0.01,
                                     max_wait=20.0),
        lambda a, r: CtrlCWhileWaiting(io.StringIO()) if a.account_id == DEV
        else QuietReporter(io.StringIO()), "r-adv", SessionFactory())
    started = time.monotonic()
    try:
        runner.run(spec.targets, out)
    except KeyboardInterrupt:
        pass
    finally:
        held.release()
    took = time.monotonic() - started
    assert FIRED
    assert took < 10, f"the fleet took {took:.1f}s to stop: its worker slept on the lock"
    assert changed(emulator, DEV) == []


class AtFirstKey(QuietReporter):
    """Calls `then` once, in the worker's thread, when the first key of a store of this
    account was scheduled."""

    def __init__(self, then: Callable[[], None]) -> None:
        super().__init__(io.StringIO())
        self.then = then

    def progress(self, target: str, phase: Phase, done: int, total: int | None) -> None:
        if phase is Phase.SCHEDULE and done == 1 and not FIRED:
            FIRED.append(target)
            self.then()


KEYS = 40  # in one store: many more than are scheduled at once (4)


def scheduled(emulator: Emulator, account: str) -> int:
    return len([c for c in changed(emulator, account)
                if c["operation"] == "ScheduleKeyDeletion"])


def test_ctrl_c_stops_a_worker_between_the_keys_it_schedules(
        emulator: Emulator, profiles: None, sigint: None) -> None:
    targets = seed_targets(emulator, keys=KEYS)
    spec = spec_of(targets, rollout=Rollout(max_accounts=3, canary=0, failure_tolerance=0))
    holder: list[FleetRunner] = []
    at_stop: list[int] = []

    def ctrl_c() -> None:
        _thread.interrupt_main()
        assert holder[0].interruptible.stop.wait(5), "the main thread saw no Ctrl-C"
        at_stop.append(scheduled(emulator, DEV))

    out = FleetRun(spec, "fleet apply", "r-adv")
    runner = FleetRunner(
        spec, "apply", FleetSettings(endpoint_url=emulator.endpoint_url, poll_interval=0.01),
        lambda a, r: AtFirstKey(ctrl_c) if a.account_id == DEV
        else QuietReporter(io.StringIO()), "r-adv", SessionFactory())
    holder.append(runner)
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec.targets, out)
    assert FIRED
    # the keys already in flight (4 at a time) may finish; no key is started after Ctrl-C
    assert scheduled(emulator, DEV) <= at_stop[0] + 4 < KEYS, (at_stop, scheduled(emulator, DEV))
    dev = [t for t in out.targets if t.target.account_id == DEV]
    assert dev[0].status is Status.INTERRUPTED, dev[0]


def test_a_halt_stops_a_run_in_flight_at_its_next_point_of_no_return(
        emulator: Emulator, profiles: None) -> None:
    FIRED.clear()
    targets = seed_targets(emulator, keys=KEYS)
    spec = replace_account(
        spec_of(targets, rollout=Rollout(max_accounts=3, canary=0, failure_tolerance=0)),
        STAGE, profile="nobody-such")  # stage cannot be reached: the fleet halts
    holder: list[FleetRunner] = []
    scheduling = threading.Event()

    at_halt: list[int] = []

    def halted_meanwhile() -> None:
        scheduling.set()
        assert wait_until(lambda: holder[0].brake.halted), "stage's failure did not halt"
        at_halt.append(scheduled(emulator, DEV))

    def reporter_for(account: AccountSpec, region: str) -> QuietReporter:
        if account.account_id == DEV:
            return AtFirstKey(halted_meanwhile)
        if account.account_id == STAGE:  # stage fails once dev is scheduling
            assert scheduling.wait(10)
        return QuietReporter(io.StringIO())

    out = FleetRun(spec, "fleet apply", "r-adv")
    runner = FleetRunner(spec, "apply", FleetSettings(endpoint_url=emulator.endpoint_url,
                                                      poll_interval=0.01),
                         reporter_for, "r-adv", SessionFactory())
    holder.append(runner)
    runner.run(spec.targets, out)
    assert out.halted
    assert scheduled(emulator, DEV) <= at_halt[0] + 4 < KEYS, (at_halt, scheduled(emulator, DEV))
    dev = out.targets[0]
    assert dev.status is Status.REFUSED and "halted" in (dev.error or {})["message"], dev
    validated(json.dumps(fleet_document(out), default=str))


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_store_the_file_names_that_does_not_exist_counts_as_a_failure(
        emulator: Emulator, profiles: None) -> None:
    targets = seed_targets(emulator)
    typo = replace(targets[0], store_id="cks-0123456789abcdef0", expect_name=None)
    spec = spec_of([typo, *targets[1:]],
                   rollout=Rollout(max_accounts=1, canary=0, failure_tolerance=0))
    out = FleetRun(spec, "fleet apply", "r-adv")
    FleetRunner(spec, "apply", FleetSettings(endpoint_url=emulator.endpoint_url,
                                             poll_interval=0.01),
                lambda a, r: QuietReporter(io.StringIO()), "r-adv",
                SessionFactory()).run(spec.targets, out)
    assert out.targets[0].status is Status.MISSING and int(out.targets[0].exit_code) == 1
    assert out.halted, [t.status for t in out.targets]
    assert changed(emulator) == []
    assert all(t.status is Status.SKIPPED for t in out.targets[1:])


class AdvanceAtFirstPlan(QuietReporter):
    """Moves the emulator's clock once, when the first store of the run has its plan: AWS
    removes the keys whose window has passed between the survey and the wait's check."""

    def __init__(self, emulator: Emulator, seconds: float) -> None:
        super().__init__(io.StringIO())
        self.emulator, self.seconds = emulator, seconds

    def phase(self, target: str, phase: Phase, state: PhaseState, detail: str = "") -> None:
        if phase is Phase.PLAN and state is PhaseState.DONE and not FIRED:
            FIRED.append(target)
            self.emulator.advance(self.seconds)


def deletes(emulator: Emulator) -> list[str]:
    return [c["operation"] for c in changed(emulator)
            if c["operation"] == "DeleteCustomKeyStore"]


@pytest.mark.parametrize("late", [False, True], ids=["keys-gone", "keys-lingering"])
def test_max_irreversible_per_run_caps_deletions_however_the_keys_go(
        emulator: Emulator, profiles: None, late: bool) -> None:
    FIRED.clear()
    day = 24 * 3600.0
    emulator.configure(deletion_lateness=day)  # AWS removes a key up to a day after its date
    targets = [t for t in seed_targets(emulator) if t.account_id == DEV]
    spec = spec_of(targets, max_irreversible_per_run=1,
                   rollout=Rollout(max_accounts=1, canary=0, failure_tolerance=0))

    def apply(reporter: Callable[[], QuietReporter]) -> FleetRun:
        out = FleetRun(spec, "fleet apply", "r-adv")
        FleetRunner(spec, "apply", FleetSettings(endpoint_url=emulator.endpoint_url,
                                                 poll_interval=0.01),
                    lambda a, r: reporter(), "r-adv", SessionFactory()).run(spec.targets, out)
        return out

    first = apply(lambda: QuietReporter(io.StringIO()))
    assert [t.status for t in first.targets] == [Status.PENDING] * 2
    if late:  # the date has passed, the keys are still there at the survey, gone at the check
        emulator.advance(7 * day + 1)
        second = apply(lambda: AdvanceAtFirstPlan(emulator, day))
        assert FIRED
    else:
        emulator.advance(9 * day)
        second = apply(lambda: QuietReporter(io.StringIO()))
    assert len(deletes(emulator)) == 1, [(t.status, t.error) for t in second.targets]
    assert sorted(t.status for t in second.targets) == [Status.DELETED, Status.PENDING]
    validated(json.dumps(fleet_document(second), default=str))


def test_a_fleet_plan_with_a_member_given_twice_is_refused(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    """A reader of the file sees the first `text`; json.loads keeps the last. A fleet plan
    that shows its reviewer one fleet file and applies another is refused, as a store plan
    with a member twice is."""
    import json

    from ksdelete import planfile

    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made)
    plan = tmp_path / "fleet-plan.json"
    code, _, err = fleet(emulator, "fleet", "plan", str(path), "--save-plan", str(plan))
    assert code == 0, err
    content = json.loads(plan.read_text())
    shown = content["fleet"]["text"]
    applied = shown.replace("name: retire-test", "name: something-else")
    content["fleet"]["text"] = applied
    content["fleet"]["sha256"] = __import__("hashlib").sha256(applied.encode()).hexdigest()
    content["digest"] = planfile.digest_of(content)
    text = json.dumps(content, indent=2)
    new = f'"text": {json.dumps(applied)}'
    assert text.count(new) == 1
    plan.write_text(text.replace(new, f'"text": {json.dumps(shown)},\n    {new}'))
    code, doc, err = fleet(emulator, "apply", str(plan))
    assert code == 2 and "twice" in err, (code, err)
    assert changed(emulator) == []


def test_a_role_chain_through_a_forbidden_account_is_a_usage_error() -> None:
    """forbidden_accounts wins over everything: no role of a chain may be in one (assuming it
    is acting in that account, and its credentials reach the target's)."""
    from ksdelete.errors import UsageError
    from ksdelete.fleet import spec as fleetspec

    good = (Path(__file__).parent / "fleet.yml").read_text(encoding="utf-8")
    jump = "arn:aws:iam::999988887777:role/Jump"
    bad = good.replace("  role: KsdeleteExecution\n",
                       f'  role: ["{jump}", KsdeleteExecution]\n', 1)
    assert bad != good
    with pytest.raises(UsageError) as caught:
        fleetspec.parse(bad, Path("fleet.yml"))
    line = str(caught.value)
    assert "999988887777" in line and "forbidden" in line and "\n" not in line, line


@pytest.mark.parametrize("tagged", ["!foo bar", "!!python/name:os.system", "!!binary aGk="])
def test_a_yaml_tag_in_the_fleet_file_is_a_usage_error_naming_its_line(tagged: str) -> None:
    """One line, the file and the line, exit 2; not "unexpected ConstructorError" (exit 1)
    over several lines."""
    from ksdelete.errors import ExitStatus, UsageError
    from ksdelete.fleet import spec as fleetspec

    good = (Path(__file__).parent / "fleet.yml").read_text(encoding="utf-8")
    bad = good.replace("name: retire-payments-hsm", f"name: {tagged}", 1)
    assert bad != good
    with pytest.raises(UsageError) as caught:
        fleetspec.parse(bad, Path("fleet.yml"))
    line = str(caught.value)
    assert caught.value.exit_status is ExitStatus.USAGE
    assert "fleet.yml:2" in line and "\n" not in line, line


def test_a_missing_store_says_what_to_do_in_fleet_words(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    """The fleet commands take neither --missing-ok nor --region: a hint naming them sends the
    operator to an option that does not exist."""
    made = seed(emulator)  # two stores in dev/us-east-1
    path = fleet_file(tmp_path / "fleet.yml", made)
    first = made[(DEV, "us-east-1")][0]
    text = path.read_text().replace(first["id"], "cks-0123456789abcdef0", 1)
    path.write_text(text.replace(f"expect_name: {first['name']}, ", "", 1))
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 1, err
    dev = [t for t in doc["targets"] if (t["account_id"], t["region"]) == (DEV, "us-east-1")]
    assert [t["status"] for t in dev] == ["missing", "skipped"], dev
    for t in dev:
        message = t["error"]["message"] + " " + str(t["error"].get("hint", ""))
        assert "--missing-ok" not in message and "--region" not in message, message
    assert "fleet file" in err.split("missing:", 1)[1].split("\n", 1)[0], err
