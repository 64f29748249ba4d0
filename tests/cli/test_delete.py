"""`ksdelete delete` end to end: the real CLI, real boto3, real HTTP, the emulator's clock."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from ksdelete.emulator import Emulator
from ksdelete.journal import read_entries

from .helpers import DAY, Run, keys_by_id, ksdelete, mutations, said, seed_one


def test_dry_run_changes_nothing(emulator: Emulator) -> None:
    seeded = seed_one(emulator, pending_keys=1)
    before = emulator.state()
    run = ksdelete(emulator, "target", "--dry-run", "--output", "json")
    assert run.exit_code == 0, run.stderr
    assert emulator.state() == before
    assert mutations(emulator) == []
    doc = run.json()
    assert doc["schema_version"] == 2 and doc["dry_run"] is True
    store = run.store()
    assert store["status"] == "planned"
    assert store["id"] == seeded["stores"][0]["id"]
    assert store["matched_by"] == "name"
    assert sorted(k["id"] for k in store["keys"]) == sorted(seeded["stores"][0]["key_ids"])
    assert [s["step"] for s in store["plan"]][:2] == ["ScheduleKeyDeletion", "AwaitKeysDeleted"]
    assert "DRY RUN" in run.stderr
    assert not (Path(os.environ["XDG_STATE_HOME"]) / "ksdelete" / "journal.jsonl").exists()


@pytest.mark.parametrize("store_type", ["AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"])
def test_full_run_converges_to_a_deleted_store(emulator: Emulator, store_type: str) -> None:
    seeded = seed_one(emulator, type=store_type, keys=4, pending_keys=1)
    target = seeded["stores"][0]
    untouched = {k: v for k, v in keys_by_id(emulator).items() if k not in target["key_ids"]}

    first = ksdelete(emulator, target["id"], "--yes", "--pending-window-days", "7",
                     "--output", "json")
    assert first.exit_code == 3, first.stderr
    store = first.store()
    assert store["status"] == "pending"
    assert store["matched_by"] == "id"
    scheduled = [a["key_id"] for a in store["actions"] if a["operation"] == "ScheduleKeyDeletion"]
    assert len(scheduled) == 3  # the already-pending key was skipped
    assert store["resume_after"] is not None
    assert store["phase"]["text"].startswith("keys-pending 4/4, earliest deletion ")
    assert all(k["state"] == "PendingDeletion" for k in store["keys"])
    emulator_keys = keys_by_id(emulator)
    assert {k["id"]: k["state"] for k in store["keys"]} == {
        k: emulator_keys[k]["KeyState"] for k in target["key_ids"]}
    if store_type == "EXTERNAL_KEY_STORE":
        assert len(store["external_key_ids"]) == 4
        assert all(k["external_key_id"] for k in store["keys"])

    # Nothing to do until the window passes: the second run changes nothing and exits 3.
    again = ksdelete(emulator, target["id"], "--yes", "--output", "json")
    assert again.exit_code == 3
    assert again.store()["actions"] == []

    emulator.advance(31 * DAY)
    emulator.configure(disconnect_seconds=0.5)  # wall seconds at time scale 1
    done = ksdelete(emulator, target["id"], "--yes", "--output", "json", "--poll-interval", "0.2s")
    assert done.exit_code == 0, done.stderr
    assert done.store()["status"] == "deleted"
    operations = [a["operation"] for a in done.store()["actions"]
                  if a["operation"] != "TagResource"]
    assert operations == ["DisconnectCustomKeyStore", "DeleteCustomKeyStore"]
    state = emulator.state()
    assert target["id"] not in {s["CustomKeyStoreId"] for s in state["stores"]}
    # Running again is safe: the journal is evidence that the store is already gone.
    after = ksdelete(emulator, target["id"], "--yes", "--output", "json")
    assert after.exit_code == 0 and after.store()["status"] == "deleted"
    assert "already deleted" in after.store()["warnings"][0]
    # Keys of the other store and plain keys were never touched.
    assert {k: v for k, v in keys_by_id(emulator).items() if k in untouched} == untouched
    touched = {str(c["key_id"]).rsplit("/", 1)[-1] for c in mutations(emulator) if c.get("key_id")}
    assert touched <= set(target["key_ids"])


def test_wait_blocks_until_deleted(emulator: Emulator) -> None:
    emulator.configure(time_scale=400_000.0, disconnect_seconds=5.0)
    seed_one(emulator, keys=2)
    run = ksdelete(emulator, "target", "--yes", "--wait", "--max-wait", "2m",
                   "--pending-window-days", "7", "--poll-interval", "0.2s")
    assert run.exit_code == 0, run.stderr
    assert "deleted" in run.stdout
    assert "target" not in {s["CustomKeyStoreName"] for s in emulator.state()["stores"]}


def test_wait_gives_up_after_max_wait_with_pending(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    run = ksdelete(emulator, "target", "--yes", "--wait", "--max-wait", "1s",
                   "--poll-interval", "0.2s", "--output", "json")
    assert run.exit_code == 3
    assert run.store()["status"] == "pending"


def test_disconnected_cloudhsm_store_is_refused_without_connect(emulator: Emulator) -> None:
    seed_one(emulator, state="DISCONNECTED")
    before = emulator.state()
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4
    assert run.store()["status"] == "refused"
    assert "--connect" in said(run.store()["error"])
    assert emulator.state() == before
    assert mutations(emulator) == []


def test_connect_brings_a_disconnected_cloudhsm_store_up_first(emulator: Emulator) -> None:
    emulator.configure(connect_seconds=0.5)
    seed_one(emulator, state="DISCONNECTED", keys=2)
    run = ksdelete(emulator, "target", "--yes", "--connect", "--poll-interval", "0.2s",
                   "--output", "json")
    assert run.exit_code == 3, run.stderr
    operations = [a["operation"] for a in run.store()["actions"]
                  if a["operation"] != "TagResource"]
    assert operations[0] == "ConnectCustomKeyStore"
    assert operations.count("ScheduleKeyDeletion") == 2
    store = next(s for s in emulator.state()["stores"] if s["CustomKeyStoreName"] == "target")
    assert store["ConnectionState"] == "CONNECTED"


def test_allow_orphaned_key_material_schedules_while_disconnected(emulator: Emulator) -> None:
    seed_one(emulator, state="DISCONNECTED", keys=2)
    run = ksdelete(emulator, "target", "--yes", "--allow-orphaned-key-material",
                   "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert any("orphaned" in w for w in run.store()["warnings"])
    assert all(k["state"] == "PendingDeletion" for k in run.store()["keys"])


def test_an_undescribable_key_refuses_the_run(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=2, plain=3)
    emulator.seed({"region": "us-east-1", "stores": [
        {"name": "locked", "type": "EXTERNAL_KEY_STORE", "connection_state": "CONNECTED",
         "keys": 1, "undescribable_keys": 1}]})
    locked = emulator.state()
    run = ksdelete(emulator, seeded["stores"][0]["id"], "--yes", "--output", "json")
    assert run.exit_code == 4
    store = run.store()
    assert store["status"] == "refused"
    assert "could not be described" in said(store["error"])
    assert "AccessDenied" in run.stderr
    assert mutations(emulator) == []
    assert emulator.state() == locked


def test_keys_appearing_during_the_window_refuse_the_delete(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=1)
    target = seeded["stores"][0]
    first = ksdelete(emulator, "target", "--yes", "--pending-window-days", "7")
    assert first.exit_code == 3
    # Someone creates a key in the store while it waits; then the window passes.
    kms = boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
    new = kms.create_key(CustomKeyStoreId=target["id"], Origin="AWS_CLOUDHSM")
    new_id = new["KeyMetadata"]["KeyId"]
    emulator.advance(9 * DAY)
    before = emulator.state()
    second = ksdelete(emulator, "target", "--yes", "--output", "json")
    # Nobody confirmed the new key: the run refuses and changes nothing, not even the store.
    assert second.exit_code == 4
    assert second.store()["status"] == "refused"
    assert new_id in said(second.store()["error"])
    assert "--include-new-keys" in said(second.store()["error"])
    assert emulator.state() == before
    dry = ksdelete(emulator, "target", "--dry-run", "--output", "json")
    assert dry.exit_code == 4  # the dry run shows the same refusal
    third = ksdelete(emulator, "target", "--yes", "--include-new-keys", "--output", "json")
    assert third.exit_code == 3
    assert [a["key_id"] for a in third.store()["actions"]
            if a["operation"] == "ScheduleKeyDeletion"] == [new_id]


def wait_run_while(emulator: Emulator, key_id: str, act: Callable[[Any], None],
                   *extra: str) -> Run:
    """`ksdelete target --wait` while another client, once `key_id` is PendingDeletion, does
    `act(kms)` and then moves the clock past the 7-day window."""
    kms = boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1")

    def meddle() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion":
                break
            time.sleep(0.05)
        act(kms)
        emulator.advance(8 * DAY)

    thread = threading.Thread(target=meddle)
    thread.start()
    try:
        return ksdelete(emulator, "target", "--yes", "--wait", "--max-wait", "60s",
                        "--pending-window-days", "7", "--poll-interval", "0.2s",
                        "--output", "json", *extra)
    finally:
        thread.join()


def test_missing_store_is_an_error_unless_missing_ok(emulator: Emulator) -> None:
    run = ksdelete(emulator, "cks-0000000000000000a", "--yes", "--output", "json")
    assert run.exit_code == 1
    assert run.store()["status"] == "missing"
    assert "no custom key store" in said(run.store()["error"])
    ok = ksdelete(emulator, "cks-0000000000000000a", "--yes", "--missing-ok")
    assert ok.exit_code == 0


def test_several_stores_exit_with_the_most_severe_code(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    emulator.seed({"region": "us-east-1", "stores": [
        {"name": "offline", "type": "AWS_CLOUDHSM", "connection_state": "DISCONNECTED",
         "keys": 1}]})
    run = ksdelete(emulator, "target", "offline", "--yes", "--output", "json")
    # A run's plan is all or nothing: the refusal of one refuses the other (issue 17).
    assert [s["status"] for s in run.json()["stores"]] == ["refused", "refused"]
    assert run.exit_code == 4
    run = ksdelete(emulator, "target", "offline", "--dry-run", "--output", "json")
    assert [s["status"] for s in run.json()["stores"]] == ["planned", "refused"]
    assert run.exit_code == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["target", "--pending-window-days", "3"], "--pending-window-days"),
        (["target", "--max-wait", "soon"], "not a duration"),
        (["target"], "--yes"),  # destructive, no terminal, no --yes
    ],
)
def test_usage_errors_exit_2(emulator: Emulator, args: list[str], message: str) -> None:
    seed_one(emulator, keys=1)
    run = ksdelete(emulator, *args)
    assert run.exit_code == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert mutations(emulator) == []


def test_journal_records_every_mutating_call(emulator: Emulator, tmp_path: Path) -> None:
    seed_one(emulator, keys=2)
    journal = tmp_path / "audit" / "journal.jsonl"
    run = ksdelete(emulator, "target", "--yes", "--journal", str(journal))
    assert run.exit_code == 3
    entries = read_entries(journal)
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    schedule = [e for e in entries if e["operation"] == "ScheduleKeyDeletion"]
    assert [e["phase"] for e in schedule].count("intent") == 2
    results = [e for e in schedule if e["phase"] == "result"]
    assert len(results) == 2 and all(e["outcome"] == "ok" and e["request_id"] for e in results)
    assert all(e["account"] == "123456789012" and e["caller_arn"] for e in entries)
    assert all(e["region"] == "us-east-1" and e["store_id"].startswith("cks-") for e in entries)


def test_retries_are_visible_and_the_run_still_converges(emulator: Emulator) -> None:
    seed_one(emulator, keys=3, plain=10)
    emulator.configure(fault_rate=0.2, seed=7)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    emulator.configure(fault_rate=0.0)
    assert run.exit_code == 3, run.stderr
    assert "retry:" in run.stderr and "KMSInternalException" in run.stderr
    assert all(k["state"] == "PendingDeletion" for k in run.store()["keys"])


def test_emulator_throttling_is_absorbed_by_pacing(emulator: Emulator) -> None:
    seed_one(emulator, keys=30, plain=0, other=0)
    emulator.configure(quotas="aws")
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert len([a for a in run.store()["actions"] if a["outcome"] == "ok"
                and a["operation"] == "ScheduleKeyDeletion"]) == 30


def test_converges_under_lag_faults_quotas_and_latency(emulator: Emulator) -> None:
    """Every realism knob at once: the run still ends deleted and touches only its keys."""
    seeded = seed_one(emulator, keys=6, plain=40, other=3, pending_keys=1)
    target = seeded["stores"][0]
    emulator.configure(consistency_lag=1.0, fault_rate=0.05, quotas="aws", latency_ms=5.0,
                       time_scale=200_000.0, disconnect_seconds=30.0, seed=11)
    run = ksdelete(emulator, "target", "--yes", "--wait", "--max-wait", "5m",
                   "--pending-window-days", "7", "--poll-interval", "0.5s", "--output", "json")
    emulator.configure(consistency_lag=0.0, fault_rate=0.0, quotas="off", latency_ms=0.0)
    assert run.exit_code == 0, run.stderr[-3000:]
    assert run.store()["status"] == "deleted"
    assert target["id"] not in {s["CustomKeyStoreId"] for s in emulator.state()["stores"]}
    touched = {str(c["key_id"]).rsplit("/", 1)[-1] for c in mutations(emulator) if c.get("key_id")}
    assert touched <= set(target["key_ids"])


def test_connect_recovers_a_failed_cloudhsm_store_by_disconnecting_first(
    emulator: Emulator,
) -> None:
    emulator.configure(connect_seconds=0.3, disconnect_seconds=0.3)
    seed_one(emulator, state="FAILED", keys=1, connection_error_code="NETWORK_ERRORS")
    refused = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert refused.exit_code == 4
    assert refused.store()["connection_error_code"] == "NETWORK_ERRORS"
    run = ksdelete(emulator, "target", "--yes", "--connect", "--poll-interval", "0.2s",
                   "--output", "json")
    assert run.exit_code == 3, run.stderr
    operations = [a["operation"] for a in run.store()["actions"]
                  if a["operation"] != "TagResource"]
    assert operations == ["DisconnectCustomKeyStore", "ConnectCustomKeyStore",
                          "ScheduleKeyDeletion"]


def test_quiet_prints_only_the_result_line(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    run = ksdelete(emulator, "target", "--yes", "--quiet")
    assert run.exit_code == 3
    assert run.stderr == ""
    assert run.stdout.count("\n") == 1 and "pending" in run.stdout
    refused = ksdelete(emulator, "nope", "--yes", "--quiet")
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1 and "error:" in refused.stderr


def test_debug_logs_every_aws_call_and_retry(emulator: Emulator) -> None:
    seed_one(emulator, keys=1, plain=2)
    emulator.configure(fault_rate=0.3, seed=3)
    run = ksdelete(emulator, "target", "--dry-run", "--debug")
    emulator.configure(fault_rate=0.0)
    assert run.exit_code == 0, run.stderr
    assert "call DescribeCustomKeyStores" in run.stderr and "call ListKeys" in run.stderr
    assert "retry " in run.stderr and "KMSInternalException" in run.stderr


def test_a_stale_read_during_the_wait_is_not_taken_for_a_cancel(emulator: Emulator) -> None:
    """Reads may lag writes (and not monotonically): a key that still reads Enabled right after
    it was scheduled must not be mistaken for one somebody cancelled."""
    seed_one(emulator, keys=3, plain=0, other=0)
    emulator.configure(consistency_lag=3.0, seed=5)
    run = ksdelete(emulator, "target", "--yes", "--wait", "--max-wait", "2s",
                   "--poll-interval", "0.2s", "--output", "json")
    emulator.configure(consistency_lag=0.0)
    assert run.exit_code == 3, run.stderr
    assert run.store()["status"] == "pending"
