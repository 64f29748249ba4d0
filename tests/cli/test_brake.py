"""The brake (`ksdelete cancel`) works whatever else is going on: it cancels what it already
knows before it scans, a read that fails stops only the key it concerns, what it cannot check
makes it fail loudly, and a run holding the store's lock is stopped before its next change
(issue 17, items 2, 3, 4 and 9)."""

from __future__ import annotations

import io
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from ksdelete.app import Settings, build
from ksdelete.cancel import cancel
from ksdelete.emulator import Emulator
from ksdelete.executor import RunOptions
from ksdelete.lock import CancelRequest, StoreLock
from ksdelete.models import Plan, Snapshot, Status
from ksdelete.reporting import Phase, PhaseState, PlainReporter

from .helpers import (
    KSDELETE,
    at_the_prompt,
    env_for,
    keys_by_id,
    ksdelete,
    mutations,
    said,
    seed_one,
    validated,
)
from .test_review_undo import deny, kms_client

ACCOUNT = "123456789012"  # the emulator's account


def pending(emulator: Emulator, ids: list[str]) -> list[str]:
    keys = keys_by_id(emulator)
    return sorted(k for k in ids if keys[k]["KeyState"] == "PendingDeletion")


def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ksdelete" / "locks"  # beside the default journal


# ---- item 2: a key the brake cannot describe is never a silent success ---------------------


def test_cancel_fails_while_a_key_it_cannot_describe_may_be_pending(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    kms = kms_client(emulator)
    ids = sorted(target["key_ids"])
    for key_id in ids:  # scheduled on another machine: this one has no journal of it
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=30)
    hidden = ids[1]
    deny(kms, hidden, "kms:DescribeKey")
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.exit_code == 1, run.stderr
    store = run.store()
    assert hidden in said(store["error"])
    assert "possibly pending" in said(store["error"])
    assert any(hidden in w and "possibly pending" in w for w in store["warnings"])
    outcomes = {k["id"]: k for k in store["key_outcomes"]}
    assert outcomes[hidden]["outcome"] == "unknown"
    assert outcomes[hidden]["error"]["code"] == "AccessDeniedException"
    assert {outcomes[k]["outcome"] for k in ids if k != hidden} == {"recovered"}
    # Not proven a member of the store: the brake does not touch it.
    assert pending(emulator, ids) == [hidden]


# ---- item 4: the brake first, then the facts -----------------------------------------------


def test_the_brake_recovers_every_journalled_key_while_listkeys_fails(emulator: Emulator
                                                                     ) -> None:
    target = seed_one(emulator, keys=4)["stores"][0]
    ids = sorted(target["key_ids"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    assert pending(emulator, ids) == ids
    deny(kms_client(emulator), ids[0], "kms:ListResourceTags")
    emulator.configure(fault_rate=1.0, fault_operations="ListKeys")
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    emulator.configure(fault_rate=0.0, fault_operations="")
    assert run.exit_code == 1, run.stderr
    assert pending(emulator, ids) == []
    store = run.store()
    outcomes = {k["id"]: k["outcome"] for k in store["key_outcomes"]}
    assert outcomes == dict.fromkeys(ids, "recovered")
    message = said(store["error"])
    assert "ListKeys" in message and "could not be checked" in message


def test_one_keys_denied_tags_do_not_stop_the_brake(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    ids = sorted(target["key_ids"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    denied = ids[2]
    deny(kms_client(emulator), denied, "kms:ListResourceTags")
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.exit_code == 0, run.stderr
    assert pending(emulator, ids) == []
    store = run.store()
    assert {k["id"]: k["outcome"] for k in store["key_outcomes"]} == \
        dict.fromkeys(ids, "recovered")
    assert any(denied in w and "ListResourceTags" in w for w in store["warnings"])


def test_the_brake_cancels_known_keys_before_the_account_scan(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=3, plain=20)["stores"][0]
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    start = len(emulator.calls())
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.exit_code == 0, run.stderr
    ops = [c["operation"] for c in emulator.calls()[start:]]
    first_cancel = ops.index("CancelKeyDeletion")
    assert "ListKeys" not in ops[:first_cancel]
    assert ops[first_cancel:first_cancel + 3] == ["CancelKeyDeletion"] * 3
    assert pending(emulator, target["key_ids"]) == []


# ---- item 9: an interrupted brake still says what it did to every key ----------------------


def test_ctrl_c_during_cancel_reports_every_keys_outcome_so_far(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=30)["stores"][0]
    ids = sorted(target["key_ids"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    emulator.configure(quotas="aws")  # CancelKeyDeletion: 5 per second
    proc = subprocess.Popen([KSDELETE, "cancel", "target", "--yes", "--output", "json"],
                            env=env_for(emulator), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if "cancel: running" in line:
            time.sleep(1.5)  # a few of the 30 CancelKeyDeletion calls (5 a second) are done
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + err
    store = validated(out)["stores"][0]
    outcomes = {k["id"]: k["outcome"] for k in store["key_outcomes"]}
    assert sorted(outcomes) == ids
    cancelled = {a["key_id"] for a in store["actions"]
                 if a["operation"] == "CancelKeyDeletion" and a["outcome"] == "ok"}
    assert cancelled and all(outcomes[k] == "recovered" for k in cancelled)
    assert {outcomes[k] for k in set(ids) - cancelled} <= {"not-attempted", "still-pending"}
    assert len(pending(emulator, ids)) == len(ids) - len(cancelled)


# ---- item 3: a run holding the store's lock is stopped before its next change --------------


def _hold_lock_until_asked(tmp_path: Path, store_id: str, then: Any) -> threading.Thread:
    """A changing run (simulated) holds the store's lock until a cancel request appears; it
    then does `then()` (a last change of its own) and lets go."""
    lock = StoreLock(lock_dir(tmp_path), ACCOUNT, "us-east-1", store_id)
    lock.acquire(0)
    request = CancelRequest(lock_dir(tmp_path), ACCOUNT, "us-east-1", store_id)

    def run() -> None:
        deadline = time.monotonic() + 60
        while request.read() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        then()
        lock.release()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_cancel_stops_a_run_holding_the_lock_and_waits_for_it(emulator: Emulator,
                                                             tmp_path: Path) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    ids = sorted(target["key_ids"])
    kms = kms_client(emulator)
    # The run schedules one key right when the cancel request lands, then stops.
    holder = _hold_lock_until_asked(
        tmp_path, target["id"],
        lambda: kms.schedule_key_deletion(KeyId=ids[0], PendingWindowInDays=30))
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    holder.join(5)
    assert run.exit_code == 0, run.stderr
    store = run.store()
    assert store["run_in_progress"] is not None and store["run_in_progress"]["stopped"]
    assert any("in progress" in w for w in store["warnings"])
    assert pending(emulator, ids) == [], (run.stderr, store["key_outcomes"], store["warnings"])
    assert {k["id"]: k["outcome"] for k in store["key_outcomes"]} == {ids[0]: "recovered"}
    # The reversal sticks: no unattended run goes on ...
    calls = len(mutations(emulator))
    refused = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert refused.exit_code == 4, refused.stderr
    assert "cancel" in said(refused.store()["error"])
    assert "requested" in said(refused.store()["error"])
    assert len(mutations(emulator)) == calls
    request = CancelRequest(lock_dir(tmp_path), ACCOUNT, "us-east-1", target["id"])
    assert request.read() is not None
    status = ksdelete(emulator, "status", "target", "--output", "json")  # the same gate
    assert status.exit_code == 4
    assert status.store()["phase"]["text"] == "refused (cancel-requested)"
    # ... until a person confirms again at a terminal, which lifts the request.
    typed = at_the_prompt(emulator, "target", keys=b"target\n")
    assert typed.exit_code == 3, typed.stderr
    assert "cancel of this store was requested" in typed.stderr
    assert request.read() is None
    assert pending(emulator, ids) == ids


def test_cancel_during_a_planning_run_of_150_keys_leaves_no_key_pending(
        emulator: Emulator) -> None:
    target = seed_one(emulator, keys=150, plain=0, other=0)["stores"][0]
    ids = sorted(target["key_ids"])
    emulator.configure(quotas="aws")  # GetKeyLastUsage: 5 per second, 30 s for 150 keys
    proc = subprocess.Popen([KSDELETE, "target", "--yes", "--output", "json"],
                            env=env_for(emulator), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    seen: list[str] = []
    out: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        seen.extend(proc.stderr)

    def read_out() -> None:
        assert proc.stdout is not None
        out.append(proc.stdout.read())  # its JSON is larger than a pipe holds

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out_reader = threading.Thread(target=read_out, daemon=True)
    out_reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("last use" in line for line in seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any("last use" in line for line in seen), "".join(seen)
        time.sleep(2)  # well into reading the last use of 150 keys, holding the lock
        run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
        # cancel reports only once the run has stopped (released the lock; it exits just after)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(run.stderr + "\n----\n" + "".join(seen)) from None
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    out_reader.join(timeout=10)
    assert run.exit_code == 0, run.stderr
    assert pending(emulator, ids) == []
    assert run.store()["run_in_progress"]["stopped"] is True
    assert proc.returncode == 4, "".join(seen)
    message = said(validated(out[0])["stores"][0]["error"])
    assert "cancel" in message and "requested" in message


# ---- issue 19 item 9: the screen tells what the brake really did -------------------------


class _Recorder(PlainReporter):
    """The plain reporter, remembering the order of phases, progress and the prompt."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.events: list[str] = []

    def phase(self, target: str, phase: Phase, state: PhaseState, detail: str = "") -> None:
        self.events.append(f"{phase}:{state}")
        super().phase(target, phase, state, detail)

    def progress(self, target: str, phase: Phase, done: int, total: int | None) -> None:
        self.events.append(f"{phase}:progress")
        super().progress(target, phase, done, total)


def test_the_prompt_comes_before_any_progress_panel(emulator: Emulator) -> None:
    seed_one(emulator, keys=2)
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    reporter = _Recorder()

    def confirm(snap: Snapshot, plan: Plan) -> bool:
        reporter.events.append("prompt")
        return True

    app = build(Settings("us-east-1", None, emulator.endpoint_url), RunOptions(), reporter,
                confirm, read_only=False)
    result = cancel(app.executor, app.executor.resolve("target"), enable=False, connect=False,
                    confirm=confirm)
    app.journal.close()
    assert result.status is Status.CANCELLED, result.error
    # A live view runs from the first running phase or progress: never under the prompt.
    assert reporter.events[0] == "prompt", reporter.events


def test_cancel_enable_says_how_many_keys_it_re_enabled(emulator: Emulator) -> None:
    seed_one(emulator, keys=3)
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    assert ksdelete(emulator, "cancel", "target", "--yes").exit_code == 0
    run = ksdelete(emulator, "cancel", "target", "--yes", "--enable")
    assert run.exit_code == 0, run.stderr
    assert "EnableKey for 3 key(s) (back to their state before deletion)" in run.stderr
    assert "0 recovered, 3 re-enabled, 0 still pending" in run.stderr


def test_the_brake_recovers_a_saved_plans_keys_without_journal_or_scan(
        emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    ids = sorted(target["key_ids"])
    plan = str(tmp_path / "plan.json")
    runner = str(tmp_path / "runner.jsonl")  # the unattended runner's machine
    assert ksdelete(emulator, "target", "--dry-run", "--save-plan", plan).exit_code == 0
    assert ksdelete(emulator, "apply", plan, "--journal", runner).exit_code == 3
    assert pending(emulator, ids) == ids
    emulator.configure(fault_rate=1.0, fault_operations="ListKeys")
    # A person's machine: no journal of the scheduling, only the reviewed plan.
    run = ksdelete(emulator, "cancel", "--plan", plan, "--yes", "--journal",
                   str(tmp_path / "person.jsonl"), "--output", "json")
    emulator.configure(fault_rate=0.0, fault_operations="")
    assert run.exit_code == 1, run.stderr
    assert pending(emulator, ids) == []
    store = run.store()
    assert {k["id"]: k["outcome"] for k in store["key_outcomes"]} == \
        dict.fromkeys(ids, "recovered")
    assert "could not be checked" in said(store["error"])


def test_a_second_cancel_is_no_run_to_stop(emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    ids = sorted(target["key_ids"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    other = StoreLock(lock_dir(tmp_path), ACCOUNT, "us-east-1", target["id"], command="cancel")
    other.acquire(0)  # a cancel of the same store, still at work
    try:
        run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    finally:
        other.release()
    assert run.exit_code == 0, run.stderr
    assert run.store()["run_in_progress"] is None
    assert CancelRequest(lock_dir(tmp_path), ACCOUNT, "us-east-1", target["id"]).read() is None
    assert pending(emulator, ids) == []
    assert ksdelete(emulator, "target", "--yes").exit_code == 4  # the cancelled-keys gate
