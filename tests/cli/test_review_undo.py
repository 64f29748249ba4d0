"""Undo, attacked: regression tests for the second adversarial review's findings (each failed
before its fix)."""

from __future__ import annotations

import json
from typing import Any

import boto3

from ksdelete.emulator import Emulator

from .helpers import keys_by_id, ksdelete, mutations, seed_one


def kms_client(emulator: Emulator) -> Any:
    return boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


def tags(kms: Any, key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


def states(emulator: Emulator, ids: list[str]) -> dict[str, str]:
    keys = keys_by_id(emulator)
    return {i: keys[i]["KeyState"] for i in ids}


def deny(kms: Any, key_id: str, action: str) -> None:
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": action, "Resource": "*"}]}))


def test_a_key_ksdelete_cancel_recovered_stays_cancelled_without_a_scheduled_mark(
        emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    kms = kms_client(emulator)
    ids = sorted(target["key_ids"])
    for key_id in ids:  # an earlier attempt by hand
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=30)
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    assert ksdelete(emulator, "cancel", "target", "--yes").exit_code == 0
    assert all("ksdelete:cancelled" in tags(kms, k) for k in ids)
    run = ksdelete(emulator, "target", "--yes")
    assert run.exit_code == 4
    assert "PendingDeletion" not in states(emulator, ids).values()
    assert all("ksdelete:cancelled" in tags(kms, k) for k in ids)


def test_removing_the_scheduled_mark_does_not_undo_the_cancel(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    kms = kms_client(emulator)
    ids = sorted(target["key_ids"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    assert ksdelete(emulator, "cancel", "target", "--yes").exit_code == 0
    for key_id in ids:
        kms.untag_resource(KeyId=key_id, TagKeys=["ksdelete:scheduled"])
    run = ksdelete(emulator, "target", "--yes")  # same journal: it knows it scheduled them
    assert run.exit_code == 4
    assert "PendingDeletion" not in states(emulator, ids).values()


def test_enable_does_not_undo_a_disable_made_after_the_cancel(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    kms = kms_client(emulator)
    ids = sorted(target["key_ids"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    assert ksdelete(emulator, "cancel", "target", "--yes", "--enable").exit_code == 0
    kms.disable_key(KeyId=ids[0])  # compromised: disabled on purpose
    assert ksdelete(emulator, "cancel", "target", "--yes", "--enable").exit_code == 0
    assert states(emulator, ids)[ids[0]] == "Disabled"


def test_one_enable_error_does_not_stop_the_others_nor_hide_the_outcomes(
        emulator: Emulator) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    kms = kms_client(emulator)
    ids = sorted(target["key_ids"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    deny(kms, ids[0], "kms:EnableKey")
    run = ksdelete(emulator, "cancel", "target", "--yes", "--enable", "--output", "json")
    store = run.store()
    assert {k["outcome"] for k in store["key_outcomes"]} == {"recovered"}
    assert set(states(emulator, ids[1:]).values()) == {"Enabled"}


def test_cancel_touches_only_the_store(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=3)
    target, other = seeded["stores"]
    kms = kms_client(emulator)
    for key_id in other["key_ids"] + seeded["plain_key_ids"]:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=30)
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    before = len(mutations(emulator))
    assert ksdelete(emulator, "cancel", "target", "--yes", "--enable").exit_code == 0
    touched = {str(c.get("key_id")).rsplit("/", 1)[-1] for c in mutations(emulator)[before:]}
    assert touched <= set(target["key_ids"])


def test_a_cancel_after_the_prompt_is_not_waived_by_it(emulator: Emulator) -> None:
    import os
    import pty
    import subprocess
    import time

    from .helpers import KSDELETE, env_for

    target = seed_one(emulator, keys=2)["stores"][0]
    kms = kms_client(emulator)
    ids = sorted(target["key_ids"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=target["id"])
    emulator.configure(connect_seconds=10, disconnect_seconds=0)
    kms.disconnect_custom_key_store(CustomKeyStoreId=target["id"])
    master, slave = pty.openpty()
    proc = subprocess.Popen([KSDELETE, "target", "--connect", "--include-new-keys",
                             "--output", "json"], env=env_for(emulator), stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(slave)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "plan: done" in line:
            break
    time.sleep(0.5)
    os.write(master, b"target\n")  # the prompt listed no cancelled key
    time.sleep(2)  # the store is CONNECTING: a colleague pulls the brake
    assert ksdelete(emulator, "cancel", "target", "--yes").exit_code == 0
    proc.communicate(timeout=120)
    os.close(master)
    assert "PendingDeletion" not in states(emulator, ids).values()
