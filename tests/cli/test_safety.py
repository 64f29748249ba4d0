"""Safety invariants under ordinary mistakes and races: the real CLI, boto3 and HTTP against
the emulator. Each test is one way an operator (or a race) could make ksdelete act on the wrong
thing, or act without saying what it did."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.emulator import Emulator

from .helpers import (
    DAY,
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
from .test_delete import wait_run_while


def kms_client(emulator: Emulator, region: str = "us-east-1") -> Any:
    return boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name=region)


def raw(emulator: Emulator, *args: str) -> Any:
    """The CLI exactly as typed (no options appended)."""
    return CliRunner().invoke(cli, list(args), env={
        "AWS_ENDPOINT_URL": emulator.endpoint_url, "AWS_REGION": "us-east-1"})


# ---- a typo is never a delete ---------------------------------------------------------------

@pytest.mark.parametrize(("typed", "meant"), [("cancle", "cancel"), ("stauts", "status"),
                                              ("delte", "delete")])
def test_a_mistyped_command_is_a_usage_error_not_a_store(emulator: Emulator, typed: str,
                                                         meant: str) -> None:
    seed_one(emulator, keys=2)
    result = raw(emulator, typed, "target", "--yes")
    assert result.exit_code == 2, result.output
    assert f"did you mean '{meant}'" in result.stderr
    assert mutations(emulator) == []


@pytest.mark.parametrize("args", [["--yes", "--missing-ok", "cancel", "target"],
                                  ["-y", "status", "target"],
                                  ["--pending-window-days", "7", "target", "cancle"]])
def test_a_command_name_after_options_is_never_a_store(emulator: Emulator,
                                                       args: list[str]) -> None:
    seed_one(emulator, keys=2)
    result = raw(emulator, *args)
    assert result.exit_code == 2, result.output
    assert "ksdelete delete" in result.stderr
    assert mutations(emulator) == []
    # Said explicitly, `delete` may name such a store (here: no such store, nothing changes).
    explicit = raw(emulator, "delete", "--yes", "--missing-ok", "cancel")
    assert explicit.exit_code == 0 and mutations(emulator) == []


def test_help_is_not_a_store(emulator: Emulator) -> None:
    result = raw(emulator, "help")
    assert result.exit_code == 2
    assert "ksdelete --help" in result.stderr
    assert mutations(emulator) == []


def test_global_options_before_the_subcommand(emulator: Emulator) -> None:
    seed_one(emulator, keys=2)
    assert raw(emulator, "--region", "us-east-1", "target", "--yes").exit_code == 3
    before = len(mutations(emulator))
    # `cancel` after a global option is still the cancel command, never a store named cancel.
    result = raw(emulator, "--region", "us-east-1", "--output", "json", "cancel", "target",
                 "--yes")
    assert result.exit_code == 0, result.output
    assert validated(result.stdout)["command"] == "cancel"
    assert {c["operation"] for c in mutations(emulator)[before:]} == {"CancelKeyDeletion",
                                                                      "TagResource"}
    status = raw(emulator, "-q", "status", "target")
    # Quiet, and a status: after the cancel, an unattended run would refuse (cancelled keys).
    assert status.exit_code == 4 and "target" not in status.stderr


# ---- every STORE resolved before any change ---------------------------------------------------

def test_one_unknown_store_stops_the_whole_run(emulator: Emulator) -> None:
    seed_one(emulator, keys=2)
    before = emulator.state()
    run = ksdelete(emulator, "target", "no-such-store", "other", "--yes", "--output", "json")
    assert run.exit_code == 1
    assert [s["status"] for s in run.json()["stores"]] == ["skipped", "missing", "skipped"]
    assert "could not be resolved" in said(run.store(0)["error"])
    assert mutations(emulator) == [] and emulator.state() == before
    # --missing-ok: the unknown one is not an error, the others go ahead.
    ok = ksdelete(emulator, "target", "no-such-store", "--yes", "--missing-ok",
                  "--output", "json")
    assert [s["status"] for s in ok.json()["stores"]] == ["pending", "missing"]


def test_an_id_shaped_store_is_looked_up_as_an_id_only(emulator: Emulator) -> None:
    kms = kms_client(emulator)
    seed_one(emulator, keys=1)
    named = kms.create_custom_key_store(
        CustomKeyStoreName="cks-0000000000000000a", CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint="https://xks.example.com", XksProxyUriPath="/kms/xks/v1",
        XksProxyConnectivity="PUBLIC_ENDPOINT",
        XksProxyAuthenticationCredential={"AccessKeyId": "ABCDEFGHIJKLMNOPQRST",
                                          "RawSecretAccessKey": "a" * 43})["CustomKeyStoreId"]
    before = len(mutations(emulator))
    run = ksdelete(emulator, "cks-0000000000000000a", "--yes", "--output", "json")
    assert run.exit_code == 1
    assert run.store()["status"] == "missing"
    assert named in said(run.store()["error"])  # the hint names the store that has it
    assert len(mutations(emulator)) == before


def test_a_store_argument_that_is_one_stores_id_and_anothers_name_is_refused(
    emulator: Emulator,
) -> None:
    target = seed_one(emulator, keys=1)["stores"][0]
    kms = kms_client(emulator)
    kms.create_custom_key_store(
        CustomKeyStoreName=target["id"], CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint="https://xks2.example.com", XksProxyUriPath="/kms/xks/v1",
        XksProxyConnectivity="PUBLIC_ENDPOINT",
        XksProxyAuthenticationCredential={"AccessKeyId": "ABCDEFGHIJKLMNOPQRST",
                                          "RawSecretAccessKey": "a" * 43})
    before = len(mutations(emulator))
    run = ksdelete(emulator, target["id"], "--yes", "--output", "json")
    assert run.exit_code == 4
    assert "is the ID of" in said(run.store()["error"])
    assert len(mutations(emulator)) == before


# ---- names are pinned; memory is scoped by account and Region ----------------------------------

def _delete_completely(emulator: Emulator, ref: str, journal: str) -> None:
    assert ksdelete(emulator, ref, "--yes", "--pending-window-days", "7",
                    "--journal", journal).exit_code == 3
    emulator.advance(8 * DAY)
    emulator.configure(disconnect_seconds=0.3)
    done = ksdelete(emulator, ref, "--yes", "--journal", journal, "--poll-interval", "0.2s")
    assert done.exit_code == 0, done.stderr


def test_a_name_reused_by_a_new_store_is_not_acted_on(emulator: Emulator, tmp_path: Path
                                                      ) -> None:
    journal = str(tmp_path / "journal.jsonl")
    old = seed_one(emulator, keys=1)["stores"][0]
    _delete_completely(emulator, "target", journal)
    # Someone creates a new store with the same name; the cron line still says "target".
    new = emulator.seed({"region": "us-east-1", "stores": [
        {"name": "target", "type": "EXTERNAL_KEY_STORE", "connection_state": "CONNECTED",
         "keys": 2}]})["stores"][0]
    before = emulator.state()
    run = ksdelete(emulator, "target", "--yes", "--journal", journal, "--output", "json")
    assert run.exit_code == 4, run.stderr
    message = said(run.store()["error"])
    assert old["id"] in message and new["id"] in message and "pass its ID" in message
    assert emulator.state() == before
    # By ID, the operator can still act on the new store deliberately.
    assert ksdelete(emulator, new["id"], "--yes", "--journal", journal).exit_code == 3


def test_the_journal_is_scoped_by_region(emulator: Emulator, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.jsonl")
    target = seed_one(emulator, keys=1)["stores"][0]
    _delete_completely(emulator, target["id"], journal)
    here = ksdelete(emulator, "status", target["id"], "--journal", journal, "--output", "json")
    assert here.exit_code == 0 and here.store()["status"] == "deleted"
    result = CliRunner().invoke(cli, ["status", target["id"], "--journal", journal,
                                      "--endpoint-url", emulator.endpoint_url,
                                      "--region", "eu-west-1", "--output", "json"])
    assert result.exit_code == 1, result.output
    doc = validated(result.stdout)
    assert doc["region"] == "eu-west-1" and doc["stores"][0]["status"] == "missing"


def test_who_and_where_are_shown_and_the_account_can_be_guarded(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    run = ksdelete(emulator, "target", "--dry-run", "--output", "json")
    doc = run.json()
    assert doc["account"] == "123456789012" and doc["region"] == "us-east-1"
    assert doc["caller_arn"].startswith("arn:aws:")
    assert "account 123456789012, Region us-east-1, as arn:aws:" in run.stderr
    text = ksdelete(emulator, "target", "--dry-run")
    assert text.stdout.startswith("account 123456789012, Region us-east-1, as arn:aws:")
    calls = len(emulator.calls())
    refused = ksdelete(emulator, "target", "--yes", "--account-id", "111122223333",
                       "--output", "json")
    assert refused.exit_code == 4
    assert "not 111122223333" in said(refused.json()["error"])
    assert refused.json()["account"] == "123456789012"  # whose credentials these are
    # Only GetCallerIdentity (STS) was asked: no KMS call at all.
    assert [c["operation"] for c in emulator.calls()[calls:]] == []
    ok = ksdelete(emulator, "target", "--dry-run", "--account-id", "123456789012")
    assert ok.exit_code == 0


# ---- points of no return are re-checked on a fresh snapshot -------------------------------------

def test_a_key_created_during_a_wait_run_stops_it_before_the_disconnect(
    emulator: Emulator,
) -> None:
    emulator.configure(disconnect_seconds=0.5)
    target = seed_one(emulator, keys=1)["stores"][0]
    created: list[str] = []

    def intruder(kms: Any) -> None:
        created.append(kms.create_key(CustomKeyStoreId=target["id"],
                                      Origin="AWS_CLOUDHSM")["KeyMetadata"]["KeyId"])

    run = wait_run_while(emulator, target["key_ids"][0], intruder)
    assert run.exit_code == 4, run.stderr
    message = said(run.store()["error"])
    assert created[0] in message and "already done by this run: " in message
    assert "ScheduleKeyDeletion" in message.split("already done by this run: ")[1]
    operations = [c["operation"] for c in mutations(emulator)]
    assert "DisconnectCustomKeyStore" not in operations
    assert "DeleteCustomKeyStore" not in operations
    store = next(s for s in emulator.state()["stores"] if s["CustomKeyStoreId"] == target["id"])
    assert store["ConnectionState"] == "CONNECTED"
    assert keys_by_id(emulator)[created[0]]["KeyState"] == "Enabled"  # still usable


def _until(condition: Any) -> None:
    """Wait (at most 60 s) until the run under test has done what `condition` checks (in the
    meddling thread: a run that never does fails the test's own assertions afterwards)."""
    deadline = time.monotonic() + 60
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _store(emulator: Emulator, store_id: str) -> dict[str, Any]:
    return next(s for s in emulator.state()["stores"] if s["CustomKeyStoreId"] == store_id)


def _read_after_disconnect(emulator: Emulator) -> bool:
    """The run read the store after the DisconnectCustomKeyStore (so it saw it DISCONNECTED)."""
    operations = [c["operation"] for c in emulator.calls()]
    if "DisconnectCustomKeyStore" not in operations:
        return False
    after = operations[operations.index("DisconnectCustomKeyStore") + 1:]
    return "DescribeCustomKeyStores" in after


def test_a_cloudhsm_store_disconnected_during_the_wait_stops_the_run(emulator: Emulator
                                                                     ) -> None:
    emulator.configure(disconnect_seconds=0.0)
    target = seed_one(emulator, keys=2)["stores"][0]

    def saboteur(kms: Any) -> None:
        kms.disconnect_custom_key_store(CustomKeyStoreId=target["id"])
        # The waiting run sees the store DISCONNECTED (and stops) before the clock moves.
        _until(lambda: _read_after_disconnect(emulator))

    run = wait_run_while(emulator, target["key_ids"][0], saboteur)
    assert run.exit_code == 4, run.stderr
    message = said(run.store()["error"])
    assert "orphaned" in message and all(k in message for k in target["key_ids"])
    assert "--connect" in message and "ksdelete cancel" in message
    assert "DeleteCustomKeyStore" not in [c["operation"] for c in mutations(emulator)]


def test_with_connect_a_dropped_cloudhsm_store_is_reconnected(emulator: Emulator) -> None:
    emulator.configure(disconnect_seconds=0.0, connect_seconds=0.2)
    target = seed_one(emulator, keys=1)["stores"][0]

    def saboteur(kms: Any) -> None:
        since = len(emulator.calls())
        kms.disconnect_custom_key_store(CustomKeyStoreId=target["id"])
        # The clock moves on (the keys go) only once the run has reconnected the store: a
        # fixed 3 s sleep let a slow run see the keys deleted while it was still DISCONNECTED.
        _until(lambda: any(c["operation"] == "ConnectCustomKeyStore" and c["status"] == 200
                           for c in emulator.calls()[since:])
               and _store(emulator, target["id"])["ConnectionState"] == "CONNECTED")

    run = wait_run_while(emulator, target["key_ids"][0], saboteur, "--connect")
    assert run.exit_code == 0, run.stderr
    operations = [a["operation"] for a in run.store()["actions"]
                  if a["operation"] != "TagResource"]
    assert operations[:2] == ["ScheduleKeyDeletion", "ConnectCustomKeyStore"]
    assert run.store()["status"] == "deleted"


def test_allow_orphaned_goes_on_and_says_so(emulator: Emulator) -> None:
    # Unpaced, the wait's first check (with its CloudTrail read) comes before the saboteur
    # acts: the waiver is recorded by a later check, which reads only the store (it was not,
    # once: a run went on past a disconnected CloudHSM store with no waiver on record).
    emulator.configure(disconnect_seconds=0.0)
    target = seed_one(emulator, keys=1)["stores"][0]

    def saboteur(kms: Any) -> None:
        kms.disconnect_custom_key_store(CustomKeyStoreId=target["id"])
        time.sleep(3.0)  # several polls of the waiting run see the store DISCONNECTED

    run = wait_run_while(emulator, target["key_ids"][0], saboteur,
                         "--allow-orphaned-key-material")
    assert run.exit_code == 0, run.stderr
    assert any("cloudhsm_connected" in w for w in run.store()["waivers"])


def test_status_and_delete_agree_on_a_disconnected_cloudhsm_store(emulator: Emulator) -> None:
    seed_one(emulator, state="DISCONNECTED", keys=2)
    status = ksdelete(emulator, "status", "target", "--output", "json")
    dry = ksdelete(emulator, "target", "--dry-run", "--output", "json")
    real = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert status.exit_code == dry.exit_code == real.exit_code == 4
    assert status.store()["phase"] == real.store()["phase"]
    assert status.store()["phase"]["text"] == "refused (orphaned-key-material)"
    assert ksdelete(emulator, "status", "target", "--connect").exit_code == 3


def test_an_aws_outage_on_describe_key_is_an_error_not_a_key_policy(emulator: Emulator) -> None:
    seed_one(emulator, keys=2, plain=3)
    emulator.configure(fault_rate=1.0, fault_operations="DescribeKey")
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    emulator.configure(fault_rate=0.0, fault_operations="")
    assert run.exit_code == 1, run.stderr
    store = run.store()
    assert store["status"] == "error"
    assert "KMSInternalException" in said(store["error"])
    assert "kms:DescribeKey" not in said(store["error"])
    assert {k["error_code"] for k in store["undescribable"]} == {"KMSInternalException"}
    assert len(store["undescribable"]) == 2 + 3 + 2  # every key of the account and Region
    assert mutations(emulator) == []


# ---- bad input: one line, exit 2, before any AWS call -----------------------------------------

@pytest.mark.parametrize(("args", "words"), [
    (["--endpoint-url", "notaurl"], ["is not an endpoint URL", "--endpoint-url"]),
    (["--region", "us east 1"], ["is not an AWS Region name", "--region"]),
    (["--endpoint-url", "https://kms.eu-west-1.amazonaws.com", "--poll-interval", "0.2s"],
     ["--poll-interval"]),
    (["--account-id", "12345"], ["12-digit"]),
])
def test_bad_aws_input_is_a_usage_error(emulator: Emulator, args: list[str],
                                        words: list[str]) -> None:
    calls = len(emulator.calls())
    result = CliRunner().invoke(cli, ["target", "--yes", "--region", "us-east-1", *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if "error:" in line.lower()]
    assert len(errors) == 1 and all(w in errors[0] for w in words), result.stderr
    assert "Traceback" not in result.stderr
    assert len(emulator.calls()) == calls


# ---- signals, the prompt, pipes ---------------------------------------------------------------

@pytest.mark.parametrize(("sig", "code", "status"), [(signal.SIGINT, 130, "interrupted"),
                                                     (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_wait_stops_cleanly_with_json(emulator: Emulator, sig: int, code: int,
                                                      status: str) -> None:
    seed_one(emulator, keys=2)
    proc = subprocess.Popen([KSDELETE, "target", "--yes", "--wait", "--poll-interval", "1s",
                             "--output", "json"], env=env_for(emulator),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if "wait: running" in line or time.monotonic() > deadline:
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    doc = validated(out)
    assert doc["exit_code"] == code
    assert doc["stores"][0]["status"] == status
    assert sorted(a["operation"] for a in doc["stores"][0]["actions"]) == \
        ["ScheduleKeyDeletion"] * 2 + ["TagResource"] * 2
    assert "Traceback" not in err


def test_ctrl_d_at_the_prompt_is_not_confirmed(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    run = at_the_prompt(emulator, "target", keys=b"\x04")
    assert run.exit_code == 4, run.stderr
    assert run.store()["status"] == "refused"
    assert "Abort" not in run.stderr and "Traceback" not in run.stderr
    assert mutations(emulator) == []


def test_ctrl_c_at_the_prompt_exits_130_with_json(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    run = at_the_prompt(emulator, "target", sig=signal.SIGINT)
    assert run.exit_code == 130, run.stderr
    assert run.store()["status"] == "interrupted"
    assert "Abort" not in run.stderr and "Traceback" not in run.stderr
    assert mutations(emulator) == []


def test_a_closed_stdout_pipe_ends_quietly(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    read, write = os.pipe()
    os.close(read)  # the reader (`| head -0`) is gone before ksdelete writes
    proc = subprocess.run([KSDELETE, "status", "target", "--output", "json"],
                          env=env_for(emulator), stdout=write, stderr=subprocess.PIPE,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert proc.returncode == 3


# ---- one run per store; the journal file ------------------------------------------------------

def test_two_concurrent_final_runs_both_end_deleted(emulator: Emulator, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.jsonl")
    seed_one(emulator, keys=1)
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7",
                    "--journal", journal).exit_code == 3
    emulator.advance(8 * DAY)
    emulator.configure(disconnect_seconds=2.0)
    args = [KSDELETE, "target", "--yes", "--journal", journal, "--poll-interval", "0.2s",
            "--output", "json"]
    procs = [subprocess.Popen(args, env=env_for(emulator), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
             for _ in range(2)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err
        assert validated(out)["stores"][0]["status"] == "deleted"
    assert any("lock" in err for _, err in outcomes)  # one of them said it waited
    deletes = [c for c in mutations(emulator) if c["operation"] == "DeleteCustomKeyStore"]
    assert len(deletes) == 1


def test_a_symlinked_journal_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    seed_one(emulator, keys=1)
    target = tmp_path / "elsewhere"
    target.write_text("")
    target.chmod(0o644)
    link = tmp_path / "journal.jsonl"
    link.symlink_to(target)
    run = ksdelete(emulator, "target", "--yes", "--journal", str(link))
    assert run.exit_code == 2
    assert "journal" in run.stderr and "Traceback" not in run.stderr
    assert target.stat().st_mode & 0o777 == 0o644  # not chmodded through the link
    assert mutations(emulator) == []


def test_a_journal_write_error_stops_the_run_but_reports_what_aws_did(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_one(emulator, keys=3)
    journal = tmp_path / "journal.jsonl"
    real_write = os.write
    writes: list[int] = []

    def failing_write(fd: int, data: bytes) -> int:
        line = bytes(data)
        if fd > 2 and b'"ScheduleKeyDeletion"' in line and b'"result"' in line:
            writes.append(fd)
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    run = ksdelete(emulator, "target", "--yes", "--journal", str(journal), "--output", "json")
    monkeypatch.setattr(os, "write", real_write)
    assert writes
    assert run.exit_code == 1, run.stderr
    store = run.store()
    assert store["error"]["code"] == "journal"
    done = [a for a in store["actions"] if a["operation"] == "ScheduleKeyDeletion"]
    assert done and all(a["outcome"] == "ok" for a in done)
    scheduled = [c for c in mutations(emulator) if c["operation"] == "ScheduleKeyDeletion"]
    assert len(done) == len(scheduled)


def test_a_signal_during_a_change_waits_until_the_change_is_recorded(
    emulator: Emulator, tmp_path: Path,
) -> None:
    """SIGTERM while DeleteCustomKeyStore is in flight: the call completes, the JSON and the
    journal say it succeeded, and later runs know the store was deleted."""
    store = emulator.seed({"region": "us-east-1", "stores": [
        {"name": "empty", "type": "EXTERNAL_KEY_STORE", "connection_state": "DISCONNECTED",
         "keys": 0}]})["stores"][0]
    journal = tmp_path / "journal.jsonl"
    emulator.configure(latency_ms=1500.0)
    proc = subprocess.Popen([KSDELETE, store["id"], "--yes", "--journal", str(journal),
                             "--output", "json"], env=env_for(emulator),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and b'"DeleteCustomKeyStore"' not in (
            journal.read_bytes() if journal.exists() else b""):
        time.sleep(0.05)
    time.sleep(0.3)  # the call is on the wire
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    emulator.configure(latency_ms=0.0)
    assert proc.returncode == 143, err
    actions = validated(out)["stores"][0]["actions"]
    assert [(a["operation"], a["outcome"]) for a in actions] == [("DeleteCustomKeyStore", "ok")]
    assert store["id"] not in {s["CustomKeyStoreId"] for s in emulator.state()["stores"]}
    after = ksdelete(emulator, "status", store["id"], "--journal", str(journal),
                     "--output", "json")
    assert after.exit_code == 0 and after.store()["status"] == "deleted"


def test_control_characters_from_aws_cannot_rewrite_the_terminal(emulator: Emulator) -> None:
    emulator.seed({"region": "us-east-1", "stores": [
        {"name": "evil\r\x1b[2Kstore", "type": "EXTERNAL_KEY_STORE",
         "connection_state": "CONNECTED", "keys": 1}]})
    run = ksdelete(emulator, "evil\r\x1b[2Kstore", "--dry-run")
    assert run.exit_code == 0, run.stderr
    assert "\x1b" not in run.stderr and "\r" not in run.stderr
    assert "\\x1b[2K" in run.stderr
