"""The unattended path end to end, as operators deploy it: a reviewed plan applied daily by
cron, systemd or Kubernetes with nothing in the environment but credentials."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.emulator import Emulator

from .helpers import DAY, Run, keys_by_id, ksdelete, mutations, seed_one


def only_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """What cron gives a job: credentials, and no Region or endpoint anywhere."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_KMS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def bare(*args: str) -> Run:
    """The CLI with no --region and no --endpoint-url."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def test_a_plan_saved_with_expect_keys_is_applied_daily_to_deletion_with_no_region(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = seed_one(emulator, keys=3, type="EXTERNAL_KEY_STORE")["stores"][0]
    plan = tmp_path / "plan.json"
    saved = ksdelete(emulator, "target", "--dry-run", "--save-plan", str(plan),
                     "--pending-window-days", "7", "--expect-keys", "3")
    assert saved.exit_code == 0, saved.stderr
    assert json.loads(plan.read_text())["options"]["expect_keys"] == 3

    only_credentials(monkeypatch)
    emulator.configure(disconnect_seconds=0.5)
    journal = tmp_path / "cron" / "journal.jsonl"
    codes = []
    for day in range(12):  # daily, through the whole 7-day window and past it
        run = bare("apply", str(plan), "--journal", str(journal), "--output", "json",
                   "--poll-interval", "0.2s")
        codes.append(run.exit_code)
        assert run.exit_code in (0, 3), (day, run.stdout, run.stderr)
        if run.exit_code == 0:
            break
        if day == 0:
            keys = keys_by_id(emulator)
            assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"PendingDeletion"}
        emulator.advance(DAY)
    assert codes[-1] == 0, codes
    assert run.json()["region"] == "us-east-1"
    assert run.store()["status"] == "deleted"
    assert target["id"] not in {s["CustomKeyStoreId"] for s in emulator.state()["stores"]}
    assert 7 <= len(codes) <= 10


def test_delete_with_expect_keys_converges_after_the_keys_are_gone(
        emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2, type="EXTERNAL_KEY_STORE")["stores"][0]
    emulator.configure(disconnect_seconds=0.5)
    args = ("target", "--yes", "--expect-keys", "2", "--pending-window-days", "7",
            "--output", "json", "--poll-interval", "0.2s")
    assert ksdelete(emulator, *args).exit_code == 3
    emulator.advance(3 * DAY)
    assert ksdelete(emulator, *args).exit_code == 3  # still 2 keys, pending
    emulator.advance(5 * DAY)  # the keys are gone: the store holds 0
    last = ksdelete(emulator, *args)
    assert last.exit_code == 0, last.stdout
    assert target["id"] not in {s["CustomKeyStoreId"] for s in emulator.state()["stores"]}


def test_expect_keys_still_guards_the_confirmation(emulator: Emulator) -> None:
    seed_one(emulator, keys=3)
    run = ksdelete(emulator, "target", "--yes", "--expect-keys", "2", "--output", "json")
    assert run.exit_code == 4
    assert "--expect-keys 3" in run.store()["error"]["message"]
    assert mutations(emulator) == []
    # A later run of a deletion confirmed for 3 keys still holds it to 3.
    assert ksdelete(emulator, "target", "--yes", "--expect-keys", "3").exit_code == 3
    again = ksdelete(emulator, "target", "--yes", "--expect-keys", "2", "--output", "json")
    assert again.exit_code == 4, again.stderr
    assert "--expect-keys 3" in again.store()["error"]["message"]
