"""Undo you can trust: `cancel` recovers everything it can, `--enable` restores the state before
deletion, and a cancel stays cancelled for every unattended run, on any machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from ksdelete.emulator import Emulator

from .helpers import DAY, at_the_prompt, keys_by_id, ksdelete, mutations, said, seed_one


def kms_client(emulator: Emulator) -> Any:
    return boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


def deny(kms: Any, key_id: str, action: str) -> None:
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": action, "Resource": "*"}]}))


def test_one_key_that_cannot_be_cancelled_does_not_stop_the_others(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=4)["stores"][0]
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    stuck = sorted(target["key_ids"])[1]
    deny(kms_client(emulator), stuck, "kms:CancelKeyDeletion")
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.exit_code == 1, run.stderr
    store = run.store()
    assert stuck in said(store["error"])
    outcomes = {k["id"]: k for k in store["key_outcomes"]}
    assert outcomes[stuck]["outcome"] == "still-pending"
    assert outcomes[stuck]["error"]["code"] == "AccessDeniedException"
    assert "kms:CancelKeyDeletion" in outcomes[stuck]["error"]["hint"]
    others = set(target["key_ids"]) - {stuck}
    assert {outcomes[k]["outcome"] for k in others} == {"recovered"}
    keys = keys_by_id(emulator)
    assert {keys[k]["KeyState"] for k in others} == {"Disabled"}
    assert keys[stuck]["KeyState"] == "PendingDeletion"


def test_keys_closest_to_loss_are_cancelled_first(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=4)["stores"][0]
    kms = kms_client(emulator)
    windows = dict(zip(target["key_ids"], [20, 7, 15, 30], strict=True))
    for key_id, days in windows.items():
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=days)
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.exit_code == 0, run.stderr
    cancels = [a["key_id"] for a in run.store()["actions"]
               if a["operation"] == "CancelKeyDeletion"]
    assert cancels == sorted(windows, key=windows.__getitem__)


def test_enable_restores_the_state_before_deletion(emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=3, disabled_keys=1)["stores"][0]
    before = {k: keys_by_id(emulator)[k]["KeyState"] for k in target["key_ids"]}
    assert sorted(before.values()) == ["Disabled", "Enabled", "Enabled"]
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    # A plain cancel first (keys come back Disabled), then --enable from another machine: the
    # prior state travels with the key's mark, not the journal.
    assert ksdelete(emulator, "cancel", "target", "--yes").exit_code == 0
    run = ksdelete(emulator, "cancel", "target", "--yes", "--enable",
                   "--journal", str(tmp_path / "other-machine.jsonl"), "--output", "json")
    assert run.exit_code == 0, run.stderr
    after = {k: keys_by_id(emulator)[k]["KeyState"] for k in target["key_ids"]}
    assert after == before
    disabled = next(k for k, v in before.items() if v == "Disabled")
    assert any(disabled in w and "stays Disabled" in w for w in run.store()["warnings"])


def _unattended_run_refuses(emulator: Emulator, journal: str, cancelled: set[str]) -> None:
    before = emulator.state()
    calls = len(mutations(emulator))
    run = ksdelete(emulator, "target", "--yes", "--journal", journal, "--output", "json")
    assert run.exit_code == 4, run.stderr
    message = said(run.store()["error"])
    assert all(k in message for k in cancelled) and "without --yes" in message
    assert emulator.state() == before and len(mutations(emulator)) == calls


def test_after_ksdelete_cancel_unattended_runs_refuse(emulator: Emulator, tmp_path: Path
                                                      ) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    journal = str(tmp_path / "journal.jsonl")
    assert ksdelete(emulator, "target", "--yes", "--journal", journal).exit_code == 3
    assert ksdelete(emulator, "cancel", "target", "--yes", "--journal", journal).exit_code == 0
    _unattended_run_refuses(emulator, journal, set(target["key_ids"]))
    # Another machine, an empty journal: the evidence is on the keys themselves.
    _unattended_run_refuses(emulator, str(tmp_path / "empty.jsonl"), set(target["key_ids"]))
    status = ksdelete(emulator, "status", "target", "--output", "json")
    assert status.exit_code == 4 and status.store()["phase"]["text"] == "refused (cancelled-keys)"


def test_after_a_hand_cancel_of_one_key_unattended_runs_refuse(emulator: Emulator,
                                                               tmp_path: Path) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    journal = str(tmp_path / "journal.jsonl")
    assert ksdelete(emulator, "target", "--yes", "--journal", journal).exit_code == 3
    victim = target["key_ids"][0]
    kms_client(emulator).cancel_key_deletion(KeyId=victim)  # `aws kms cancel-key-deletion`
    _unattended_run_refuses(emulator, journal, {victim})
    _unattended_run_refuses(emulator, str(tmp_path / "empty.jsonl"), {victim})
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert "cancelled outside ksdelete" in said(run.store()["error"])


def test_a_fresh_interactive_confirmation_lists_and_reschedules_cancelled_keys(
    emulator: Emulator,
) -> None:
    target = seed_one(emulator, keys=1)["stores"][0]
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    assert ksdelete(emulator, "cancel", "target", "--yes").exit_code == 0
    run = at_the_prompt(emulator, "target", keys=b"target\n")
    err = run.stderr
    assert run.exit_code == 3, err
    assert f"then cancelled by someone: {target['key_ids'][0]}" in err
    store = run.store()
    assert [a["operation"] for a in store["actions"]] == [
        "TagResource", "UntagResource", "ScheduleKeyDeletion"]
    assert keys_by_id(emulator)[target["key_ids"][0]]["KeyState"] == "PendingDeletion"


def test_cancel_when_every_key_is_already_deleted_says_nothing_was_recovered(
    emulator: Emulator, tmp_path: Path,
) -> None:
    journal = str(tmp_path / "journal.jsonl")
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7",
                    "--journal", journal).exit_code == 3
    emulator.advance(8 * DAY)
    run = ksdelete(emulator, "cancel", "target", "--yes", "--journal", journal)
    assert run.exit_code == 1
    assert "all 2 key(s) were already deleted; nothing to recover" in run.stdout
    assert all(k in run.stdout + run.stderr for k in target["key_ids"])


def test_cancel_recovers_a_scheduled_key_it_can_no_longer_describe(emulator: Emulator,
                                                                   tmp_path: Path) -> None:
    """CancelKeyDeletion needs no DescribeKey: the journal knows ksdelete scheduled the key."""
    journal = str(tmp_path / "journal.jsonl")
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--journal", journal).exit_code == 3
    hidden = target["key_ids"][0]
    deny(kms_client(emulator), hidden, "kms:DescribeKey")
    run = ksdelete(emulator, "cancel", "target", "--yes", "--journal", journal,
                   "--output", "json")
    assert run.exit_code == 0, run.stderr
    outcomes = {k["id"]: k["outcome"] for k in run.store()["key_outcomes"]}
    assert outcomes == dict.fromkeys(target["key_ids"], "recovered")
    assert keys_by_id(emulator)[hidden]["KeyState"] == "Disabled"


def test_cancel_by_a_name_now_held_by_another_store_is_refused(emulator: Emulator) -> None:
    old = seed_one(emulator, keys=1, type="EXTERNAL_KEY_STORE")["stores"][0]
    assert ksdelete(emulator, "target", "--yes").exit_code == 3  # confirmed by name
    kms = kms_client(emulator)
    emulator.set_store_state(old["id"], "DISCONNECTED")
    kms.update_custom_key_store(CustomKeyStoreId=old["id"], NewCustomKeyStoreName="target-old")
    new = emulator.seed({"region": "us-east-1", "stores": [
        {"name": "target", "type": "EXTERNAL_KEY_STORE", "connection_state": "CONNECTED",
         "keys": 1}]})["stores"][0]
    calls = len(mutations(emulator))
    run = ksdelete(emulator, "cancel", "target", "--yes", "--connect", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert old["id"] in said(run.store()["error"]) and new["id"] in \
        said(run.store()["error"])
    assert len(mutations(emulator)) == calls
