"""Review of the safety gates, the watch, the soak and the leftovers report (issue 12): how a
careless operator or an adversary could break their promises, each reproduced over HTTP
against the emulator."""

from __future__ import annotations

import json

import pytest

from ksdelete.emulator import Emulator

from .helpers import DAY, keys_by_id, ksdelete, mutations, seed_one
from .test_gates import app_uses, client


def deny(emulator: Emulator, key_id: str, action: str) -> None:
    client(emulator).put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": action, "Resource": "*"}]}))


def cancels(emulator: Emulator) -> list[str]:
    return [c["key_id"].rsplit("/", 1)[-1] for c in mutations(emulator)
            if c["operation"] == "CancelKeyDeletion"]


# ---- the watch's remedy -------------------------------------------------------------------

@pytest.mark.parametrize("stuck_index", [0, 1])
def test_one_key_the_remedy_cannot_cancel_does_not_leave_the_others_pending(
        emulator: Emulator, stuck_index: int) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    used = sorted(target["key_ids"])[:2]
    for key_id in used:
        assert app_uses(emulator, key_id) is not None
    stuck = used[stuck_index]
    deny(emulator, stuck, "kms:CancelKeyDeletion")
    emulator.advance(DAY)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    keys = keys_by_id(emulator)
    (other,) = set(used) - {stuck}
    assert keys[other]["KeyState"] == "Disabled", run.stderr  # cancelled despite the other
    assert keys[stuck]["KeyState"] == "PendingDeletion"
    # The run fails (AWS refused the cancel), says the key in use is STILL pending, and
    # still names who used what.
    assert run.exit_code == 1, run.stderr
    message: str = run.store()["error"]["message"]
    assert stuck in message and "still pending deletion" in message
    assert "Encrypt" in message and "used-while-pending" in json.dumps(run.store()["phase"])
    assert "AccessDeniedException" in message
