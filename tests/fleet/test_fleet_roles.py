"""Fleet accounts reached by roles assumed from the hub (the emulator's STS AssumeRole): a role
that cannot be assumed, one that lands in another account, the ExternalId from the environment."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cli.helpers import KSDELETE, MUTATING, env_for, validated

from fleet.test_fleet_cli import ACCOUNTS, DAY, REGIONS, by_status, fleet, seed
from ksdelete.emulator import Emulator

ROLE = "KsdeleteExecution"


def role_file(path: Path, made: dict[tuple[str, str], list[dict[str, Any]]], *,
              tolerance: int = 7, external: bool = False, accounts: int = 3) -> Path:
    lines = ["version: 1", "name: retire-roles", "defaults:", f"  role: {ROLE}",
             "  pending_window_days: 7", "  unused_for_days: 0"]
    if external:
        lines.append("  external_id_env: FLEET_EXTERNAL_ID")
    lines += ["guards:", f"  allowed_accounts: [{', '.join(repr(a) for a in ACCOUNTS)}]",
              f"rollout: {{max_accounts: {accounts}, canary: 0, failure_tolerance: {tolerance}}}",
              "accounts:"]
    for account, name in ACCOUNTS.items():
        lines += [f'  - account_id: "{account}"', f"    name: {name}", "    stores:"]
        lines += [f"      - {{id: {s['id']}, region: {r}, expect_name: {s['name']}}}"
                  for (a, r), ss in made.items() if a == account for s in ss]
    path.write_text("\n".join(lines) + "\n")
    return path


def sts_calls(emulator: Emulator) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c.get("service") == "sts"]


def changed(emulator: Emulator, account: str) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c.get("account") == account
            and c["operation"] in MUTATING]


@pytest.fixture
def fast(emulator: Emulator) -> None:
    emulator.configure(disconnect_seconds=0)


def test_roles_converge_and_each_account_is_assumed_once_per_run(
        emulator: Emulator, fast: None, tmp_path: Path) -> None:
    made = seed(emulator)
    path = role_file(tmp_path / "fleet.yml", made)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3, err
    assert by_status(doc) == {"pending": 7}
    for t in doc["targets"]:
        assert t["assumed_role_arn"].startswith(
            f"arn:aws:sts::{t['account_id']}:assumed-role/{ROLE}/ksdelete-{doc['run_id']}"), t
    assert len(sts_calls(emulator)) == 3  # one per account, shared by its two Regions
    # every journal line of the run names its account, Region, run ID and assumed role
    journal = tmp_path / "state" / "ksdelete" / "journal.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    ours = [e for e in lines if e.get("run_id") == doc["run_id"]]
    assert len(ours) >= 14
    for entry in ours:
        assert entry["account"] in ACCOUNTS and entry["region"] in REGIONS, entry
        assert entry["caller_arn"].startswith(
            f"arn:aws:sts::{entry['account']}:assumed-role/{ROLE}/"), entry
    emulator.advance(8 * DAY)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 0 and by_status(doc) == {"deleted": 7}, err


def test_a_role_that_cannot_be_assumed_is_that_accounts_error_and_the_others_go_on(
        emulator: Emulator, fast: None, tmp_path: Path) -> None:
    made = seed(emulator)
    emulator.configure(assume_role_deny=["222222222222"])
    path = role_file(tmp_path / "fleet.yml", made)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 1, err
    for t in doc["targets"]:
        if t["account_id"] == "222222222222":
            assert t["status"] == "error" and t["exit_code"] == 1
            assert "222222222222" in t["error"]["message"], t["error"]
            assert t["store"] is None
        else:
            assert t["status"] == "pending", t["error"]
    assert changed(emulator, "222222222222") == []
    assert "222222222222" in err


def test_with_no_failure_tolerance_the_other_accounts_make_no_new_change(
        emulator: Emulator, fast: None, tmp_path: Path) -> None:
    made = seed(emulator)
    emulator.configure(assume_role_deny=["111111111111"])
    path = role_file(tmp_path / "fleet.yml", made, tolerance=0, accounts=1)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 1, err
    assert doc["halted"] and "failure_tolerance 0" in doc["halt_reason"]
    assert [t["status"] for t in doc["targets"]] == ["error"] * 3 + ["skipped"] * 4
    assert all("not started" in t["error"]["message"] for t in doc["targets"][3:])
    # read-only work still finishes: where each skipped store stands was read
    assert all(t["store"] and t["store"]["keys"] for t in doc["targets"][3:]), doc["targets"]
    assert [c for c in emulator.calls() if c["operation"] in MUTATING] == []


def test_a_role_that_lands_in_another_account_is_refused_with_nothing_changed(
        emulator: Emulator, fast: None, tmp_path: Path) -> None:
    made = seed(emulator)
    emulator.configure(assume_role_redirect={
        f"arn:aws:iam::222222222222:role/{ROLE}": "333333333333"})
    path = role_file(tmp_path / "fleet.yml", made)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 4, err
    for t in doc["targets"]:
        if t["account_id"] == "222222222222":
            assert t["status"] == "refused"
            assert "answer for account 333333333333" in t["error"]["message"]
        else:
            assert t["status"] == "pending"
    assert changed(emulator, "222222222222") == []
    # prod's keys were scheduled by prod's own role only (the redirected one changed nothing)
    assert {c.get("account") for c in emulator.calls()
            if c["operation"] in MUTATING} <= {"111111111111", "333333333333"}
    for region in REGIONS:
        stage = [k for k in emulator.state(region, "222222222222")["keys"]
                 if k.get("CustomKeyStoreId")]
        assert stage and all(k["KeyState"] == "Enabled" for k in stage)


def test_the_external_id_comes_from_the_environment(
        emulator: Emulator, fast: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    made = seed(emulator)
    emulator.configure(assume_role_external_id=dict.fromkeys(ACCOUNTS, "s3cret-id"))
    path = role_file(tmp_path / "fleet.yml", made, external=True)
    code, doc, err = fleet(emulator, "fleet", "status", str(path))
    assert code == 2 and "FLEET_EXTERNAL_ID" in err, err
    assert emulator.calls() == []
    monkeypatch.setenv("FLEET_EXTERNAL_ID", "wrong")
    code, doc, err = fleet(emulator, "fleet", "status", str(path))
    assert code == 1 and by_status(doc) == {"error": 7}, err
    monkeypatch.setenv("FLEET_EXTERNAL_ID", "s3cret-id")
    code, doc, err = fleet(emulator, "fleet", "status", str(path))
    assert code == 3 and by_status(doc) == {"pending": 7}, err
    assert "s3cret-id" not in (doc.__repr__() + err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_accounts_wait_and_the_summary_lists_every_target(
        emulator: Emulator, fast: None, tmp_path: Path, sig: int) -> None:
    """`fleet apply --wait`: accounts wait in threads; Ctrl-C (or SIGTERM) in the main thread
    stops every one of them at its next sleep, and the JSON still lists every target."""
    made = seed(emulator)
    path = role_file(tmp_path / "fleet.yml", made)
    env = {**env_for(emulator), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("AWS_REGION", None)
    proc = subprocess.Popen(
        [KSDELETE, "fleet", "apply", str(path), "--yes", "--wait", "--max-wait", "1h",
         "--poll-interval", "1s", "--endpoint-url", emulator.endpoint_url, "--output", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every store's keys scheduled: every account waits
        scheduled = {c.get("custom_key_store_id") or c.get("account") for c in emulator.calls()
                     if c["operation"] == "ScheduleKeyDeletion" and c["status"] == 200}
        if len({c["account"] for c in emulator.calls()
                if c["operation"] == "ScheduleKeyDeletion" and c["status"] == 200}) == 3 \
                and scheduled:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 20, err
    want = 143 if sig == signal.SIGTERM else 130
    assert proc.returncode == want, err
    doc = validated(out)
    assert doc["summary"]["targets"] == 7 and doc["exit_code"] == want
    for t in doc["targets"]:  # stopped, or not started (nothing changed in it)
        assert t["status"] in ("interrupted", "terminated") or (
            t["status"] in ("skipped", "refused")
            and "not started" in t["error"]["message"]), t
    assert any(t["status"] in ("interrupted", "terminated") for t in doc["targets"])
