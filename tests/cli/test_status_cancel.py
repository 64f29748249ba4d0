"""`ksdelete status` at every phase and `ksdelete cancel` (including while disconnected)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksdelete.emulator import Emulator

from .helpers import DAY, keys_by_id, ksdelete, mutations, said, seed_one


def phase(emulator: Emulator, ref: str = "target", *extra: str) -> tuple[int, str]:
    run = ksdelete(emulator, "status", ref, "--output", "json", *extra)
    phase = run.store()["phase"]
    return run.exit_code, str(phase["text"] if phase else None)


def test_status_follows_every_phase(emulator: Emulator, tmp_path: Path) -> None:
    emulator.configure(disconnect_seconds=3600.0)
    journal = str(tmp_path / "journal.jsonl")
    seed_one(emulator, keys=3)
    before = emulator.state()
    assert phase(emulator) == (3, "keys-not-scheduled 3/3")
    assert emulator.state() == before and mutations(emulator) == []  # read-only

    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7",
                    "--journal", journal).exit_code == 3
    code, text = phase(emulator)
    assert code == 3 and text.startswith("keys-pending 3/3, earliest deletion 20")

    emulator.advance(8 * DAY)
    assert phase(emulator) == (3, "ready-to-disconnect")

    run = ksdelete(emulator, "target", "--yes", "--journal", journal, "--max-wait", "1s")
    assert run.exit_code == 3  # disconnecting takes an emulated hour: not awaited forever
    assert phase(emulator) == (3, "disconnecting")

    emulator.advance(2 * 3600)
    assert phase(emulator) == (3, "ready-to-delete")

    assert ksdelete(emulator, "target", "--yes", "--journal", journal).exit_code == 0
    assert phase(emulator, "target", "--journal", journal) == (0, "deleted")


def test_status_of_an_unknown_store_and_unknown_membership(emulator: Emulator) -> None:
    assert phase(emulator, "nope") == (1, "not-found")
    seed_one(emulator, keys=1)
    emulator.seed({"region": "us-east-1", "stores": [
        {"name": "locked", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED", "keys": 1,
         "undescribable_keys": 1}]})
    code, text = phase(emulator)
    assert code == 4 and text.startswith("membership-unknown")


def test_cancel_while_disconnected_then_enable_and_reconnect(emulator: Emulator) -> None:
    emulator.configure(connect_seconds=0.3, disconnect_seconds=0.0)
    seeded = seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=3)
    target = seeded["stores"][0]
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    emulator.set_store_state(target["id"], "DISCONNECTED")
    assert {keys_by_id(emulator)[k]["KeyState"] for k in target["key_ids"]} == {"PendingDeletion"}

    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.exit_code == 0, run.stderr
    store = run.store()
    assert store["status"] == "cancelled"
    assert sorted(a["key_id"] for a in store["actions"]
                  if a["operation"] == "CancelKeyDeletion") == sorted(target["key_ids"])
    keys = keys_by_id(emulator)
    # While the store is disconnected the keys show Unavailable; underneath they are Disabled.
    assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"Unavailable"}
    assert {keys[k]["UnderlyingState"] for k in target["key_ids"]} == {"Disabled"}

    again = ksdelete(emulator, "cancel", "target", "--yes", "--enable", "--connect",
                     "--output", "json")
    assert again.exit_code == 0, again.stderr
    # --enable restores the state before deletion (Enabled; shown once the store reconnects).
    assert sorted(a["operation"] for a in again.store()["actions"]) == \
        ["ConnectCustomKeyStore"] + ["EnableKey"] * 3 + ["TagResource"] * 3
    emulator.advance(60)
    run = ksdelete(emulator, "status", "target", "--output", "json")
    assert run.store()["connection_state"] == "CONNECTED"
    assert {k["state"] for k in run.store()["keys"]} == {"Enabled"}


def test_cancel_enable_reenables_the_keys(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=2)
    target = seeded["stores"][0]
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    run = ksdelete(emulator, "cancel", target["id"], "--yes", "--enable", "--output", "json")
    assert run.exit_code == 0, run.stderr
    operations = sorted(a["operation"] for a in run.store()["actions"])
    # TagResource: the cancel's mark on each key, then "restored" added to it.
    assert operations == ["CancelKeyDeletion"] * 2 + ["EnableKey"] * 2 + ["TagResource"] * 4
    assert {k["state"] for k in run.store()["keys"]} == {"Enabled"}


def test_cancel_reports_keys_already_deleted(emulator: Emulator, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.jsonl")
    seeded = seed_one(emulator, keys=2)
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7",
                    "--journal", journal).exit_code == 3
    emulator.advance(8 * DAY)
    run = ksdelete(emulator, "cancel", "target", "--yes", "--journal", journal,
                   "--output", "json")
    assert run.exit_code == 1  # nothing could be recovered
    assert said(run.store()["error"]) == "all 2 key(s) were already deleted; nothing " \
        "to recover"
    assert {k["outcome"] for k in run.store()["key_outcomes"]} == {"already-deleted"}
    warning = " ".join(run.store()["warnings"])
    assert "cannot be recovered" in warning
    assert all(k in warning for k in seeded["stores"][0]["key_ids"])


def test_cancel_without_terminal_or_yes_is_a_usage_error(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    run = ksdelete(emulator, "cancel", "target")
    assert run.exit_code == 2 and "--yes" in run.stderr


def test_cancel_of_a_deleted_store_says_nothing_can_be_undone(emulator: Emulator,
                                                              tmp_path: Path) -> None:
    emulator.configure(disconnect_seconds=0.0)
    journal = str(tmp_path / "journal.jsonl")
    seed_one(emulator, keys=1)
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7",
                    "--journal", journal).exit_code == 3
    emulator.advance(8 * DAY)
    assert ksdelete(emulator, "target", "--yes", "--journal", journal).exit_code == 0
    run = ksdelete(emulator, "cancel", "target", "--yes", "--journal", journal,
                   "--output", "json")
    assert run.exit_code == 1
    assert run.store()["status"] == "missing"
    assert "was deleted at" in said(run.store()["error"])


def test_cancel_plan_in_json_names_the_cancel_step(emulator: Emulator) -> None:
    seed_one(emulator, keys=2)
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.store()["plan"] == [
        {"step": "CancelKeyDeletion", "keys": 2, "detail": ""},
        {"step": "MarkCancelled", "keys": 2, "detail": "no unattended run schedules them again"}]


def test_a_cancel_before_anything_was_scheduled_sticks(emulator: Emulator,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel with nothing pending yet (the first run has not scheduled anything) still
    keeps every unattended run off the store, on any machine: each key carries the cancel
    mark, and a `delete --yes` from another state directory is refused."""
    seeded = seed_one(emulator, keys=2)
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.exit_code == 0, run.stderr
    assert run.store()["status"] == "cancelled"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-machine"))
    again = ksdelete(emulator, "target", "--yes", "--unused-for", "0", "--output", "json")
    assert again.exit_code == 4, again.stderr
    assert again.store()["error"]["key_ids"] == sorted(seeded["stores"][0]["key_ids"]) or \
        set(again.store()["error"]["key_ids"]) == set(seeded["stores"][0]["key_ids"])
    assert [c for c in emulator.calls() if c["operation"] == "ScheduleKeyDeletion"] == []
