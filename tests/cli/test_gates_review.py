"""Review of the safety gates, the watch, the soak and the leftovers report (issue 12): how a
careless operator or an adversary could break their promises, each reproduced over HTTP
against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ksdelete.emulator import Emulator

from .helpers import DAY, at_the_prompt, keys_by_id, ksdelete, mutations, said, seed_one
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
    message: str = said(run.store()["error"])
    assert stuck in message and "still pending deletion" in message
    assert "Encrypt" in message and "used-while-pending" in json.dumps(run.store()["phase"])
    assert "AccessDeniedException" in message


# ---- the soak across runs -----------------------------------------------------------------

def test_a_soak_is_not_cut_short_by_a_later_run_without_disable_first(
        emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--disable-first", "14").exit_code == 3
    emulator.advance(DAY)
    # A colleague's cron line without the option (or with a shorter one): the soak started
    # for 14 days goes on; nothing is scheduled before it ends.
    for args in ((), ("--disable-first", "2")):
        run = ksdelete(emulator, "target", "--yes", *args, "--output", "json")
        assert run.exit_code == 3, run.stderr
        assert run.store()["phase"]["name"] == "soaking", run.store()["phase"]
        assert not [c for c in mutations(emulator) if c["operation"] == "ScheduleKeyDeletion"]
    emulator.advance(14 * DAY)
    done = ksdelete(emulator, "target", "--yes")
    assert done.exit_code == 3, done.stderr
    keys = keys_by_id(emulator)
    assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"PendingDeletion"}


def test_a_soaked_key_enabled_again_refuses_a_run_without_disable_first(
        emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--disable-first", "7").exit_code == 3
    wanted = sorted(target["key_ids"])[0]
    client(emulator).enable_key(KeyId=wanted)  # someone needs it back
    emulator.advance(8 * DAY)
    run = ksdelete(emulator, "target", "--yes", "--unused-for", "0", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert run.store()["phase"]["reason"] == "soak-broken"
    assert wanted in said(run.store()["error"])
    assert not [c for c in mutations(emulator) if c["operation"] == "ScheduleKeyDeletion"]


def test_a_soak_cancelled_then_restarted_at_a_terminal_can_end(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--disable-first", "7").exit_code == 3
    assert ksdelete(emulator, "cancel", "target", "--yes").exit_code == 0
    # Unattended runs stay off the keys a cancel stopped the soak of ...
    assert ksdelete(emulator, "target", "--yes", "--disable-first", "7").exit_code == 4
    # ... until a person confirms them again: their soak starts over, and it can end.
    again = at_the_prompt(emulator, "target", "--disable-first", "7", keys=b"target\n")
    assert again.exit_code == 3, again.stderr
    emulator.advance(8 * DAY)
    after = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--output", "json")
    assert after.exit_code == 3, after.stderr
    keys = keys_by_id(emulator)
    assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"PendingDeletion"}
    # cancel --enable still restores the state before the first soak (Enabled).
    assert ksdelete(emulator, "cancel", "target", "--yes", "--enable").exit_code == 0
    keys = keys_by_id(emulator)
    assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"Enabled"}


# ---- the leftovers report -----------------------------------------------------------------

def test_leftovers_read_past_the_first_page_of_delete_key_events(emulator: Emulator) -> None:
    emulator.configure(disconnect_seconds=0.5)
    target = seed_one(emulator, keys=2, plain=55)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    kms = client(emulator)
    plain = [k["KeyId"] for k in emulator.state()["keys"] if not k.get("CustomKeyStoreId")]
    assert len(plain) >= 55
    for key_id in plain:  # 55 later DeleteKey events: the store's own are on the second page
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=8)
    emulator.advance(9 * DAY)
    run = ksdelete(emulator, "target", "--yes", "--wait", "--poll-interval", "0.2s",
                   "--output", "json")
    assert run.exit_code == 0, run.stderr
    left = run.store()["leftovers"]
    assert left["unknown"] == [] and left["orphaned"] == [], json.dumps(left)
    assert {k["material_deletion"] for k in left["keys"]} == {"SUCCESS"}
    assert sorted(k["id"] for k in left["keys"]) == sorted(target["key_ids"])


def test_orphaned_material_is_reported_by_a_run_with_another_journal(
        emulator: Emulator, tmp_path: Path) -> None:
    """The run that ends the deletion may not be the one that confirmed it (another machine,
    a container with fresh state): CloudTrail's DeleteKey events name the store."""
    target = seed_one(emulator, keys=2)["stores"][0]
    store_id = target["id"]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    client(emulator).disconnect_custom_key_store(CustomKeyStoreId=store_id)
    emulator.advance(9 * DAY)
    run = ksdelete(emulator, store_id, "--yes", "--allow-orphaned-key-material", "--wait",
                   "--poll-interval", "0.2s", "--journal", str(tmp_path / "fresh.jsonl"),
                   "--output", "json")
    assert run.exit_code == 0, run.stderr
    left = run.store()["leftovers"]
    assert sorted(left["orphaned"]) == sorted(target["key_ids"]), json.dumps(left)
    assert all(k["key_handles"] for k in left["keys"])


def test_an_unrelated_undescribable_key_does_not_silence_the_watch(emulator: Emulator) -> None:
    """Membership unknown (a key elsewhere in the account denies DescribeKey) refuses every
    run; the keys already pending still get deleted by AWS when their window ends, so the
    watch's remedy must not wait for membership to be known."""
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    wanted = sorted(target["key_ids"])[0]
    assert app_uses(emulator, wanted) is not None
    stranger = client(emulator).create_key()["KeyMetadata"]["KeyId"]
    deny(emulator, stranger, "kms:DescribeKey")
    emulator.advance(DAY)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert keys_by_id(emulator)[wanted]["KeyState"] == "Disabled", run.stderr
    assert cancels(emulator) == [wanted]
    assert run.store()["phase"]["reason"] == "used-while-pending"


@pytest.mark.parametrize("command", [("status",), ("--dry-run",)])
def test_a_read_only_run_does_not_claim_it_cancelled_a_key_in_use(
        emulator: Emulator, command: tuple[str, ...]) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    wanted = sorted(target["key_ids"])[0]
    assert app_uses(emulator, wanted) is not None
    emulator.advance(DAY)
    args = [*command, "target"] if command == ("status",) else ["target", *command]
    run = ksdelete(emulator, *args, "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert cancels(emulator) == []
    assert keys_by_id(emulator)[wanted]["KeyState"] == "PendingDeletion"
    message: str = said(run.store()["error"])
    assert wanted in message
    assert "cancelled now" not in message and "are safe" not in message, message
    assert "still pending deletion" in message
    assert "cancelled now" not in run.stderr and "are safe" not in run.stderr


def test_a_watch_cancel_whose_mark_could_not_be_written_still_holds(emulator: Emulator) -> None:
    """A key someone else scheduled (no mark of ksdelete's) that the watch cancels: if the
    cancel mark cannot be written (TagResource denied, or Ctrl-C between the two calls), the
    journal's record of the cancel still keeps unattended runs off it."""
    target = seed_one(emulator, keys=2)["stores"][0]
    by_hand = sorted(target["key_ids"])[0]
    client(emulator).schedule_key_deletion(KeyId=by_hand, PendingWindowInDays=7)
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    assert app_uses(emulator, by_hand) is not None
    deny(emulator, by_hand, "kms:TagResource")
    emulator.advance(DAY)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4 and cancels(emulator) == [by_hand], run.stderr
    assert keys_by_id(emulator)[by_hand]["KeyState"] == "Disabled"
    deny(emulator, by_hand, "kms:NoSuchAction")  # the denial was transient
    again = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert again.exit_code == 4, again.stderr
    assert again.store()["phase"]["reason"] == "cancelled-keys"
    assert keys_by_id(emulator)[by_hand]["KeyState"] == "Disabled"
