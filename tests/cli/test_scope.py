"""One workspace per scope, through the real CLI: every store of one account and Region is
surveyed by one membership scan (one ListKeys chain), and a changing run still reads the keys
afresh before each store's first point of no return."""

from __future__ import annotations

from typing import Any

import pytest

from ksdelete.emulator import Emulator

from .helpers import ksdelete, seed_one


def calls(emulator: Emulator, operation: str) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c["operation"] == operation]


def test_two_stores_of_one_scope_get_one_membership_scan(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=3, other=2, plain=5)
    target, other = seeded["stores"]
    run = ksdelete(emulator, "target", "other", "--dry-run", "--output", "json")
    assert run.exit_code == 0, run.stderr
    assert [s["status"] for s in run.json()["stores"]] == ["planned", "planned"]
    assert {k["id"] for k in run.store(0)["keys"]} == set(target["key_ids"])
    assert {k["id"] for k in run.store(1)["keys"]} == set(other["key_ids"])
    assert len(calls(emulator, "ListKeys")) == 1  # one page: one chain for both stores


def test_without_the_cache_a_key_of_neither_store_is_described_once(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=3, other=2, plain=5)
    members = {k for s in seeded["stores"] for k in s["key_ids"]}
    run = ksdelete(emulator, "target", "other", "--dry-run", "--no-cache", "--output", "json")
    assert run.exit_code == 0, run.stderr
    described = [str(c["key_id"]).rsplit("/", 1)[-1] for c in calls(emulator, "DescribeKey")]
    plain = [k for k in described if k not in members]
    assert sorted(plain) == sorted(seeded["plain_key_ids"])  # each once, not once per store
    # Each store's own keys are described by its own scan (their state is read afresh).
    assert all(described.count(k) >= 1 for k in members)
    assert len(calls(emulator, "ListKeys")) == 1


def test_status_of_two_stores_reads_the_keys_once(emulator: Emulator) -> None:
    seed_one(emulator, keys=2, other=2, plain=3)
    run = ksdelete(emulator, "status", "target", "other", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert len(calls(emulator, "ListKeys")) == 1


def test_a_changing_run_surveys_once_and_lists_again_before_each_point_of_no_return(
        emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=2, other=2, plain=3)
    target, other = seeded["stores"]
    run = ksdelete(emulator, "target", "other", "--yes", "--output", "json")
    assert run.exit_code == 3, run.stderr
    log = emulator.calls()
    first: dict[str, int] = {}
    for index, call in enumerate(log):
        if call["operation"] == "ScheduleKeyDeletion":
            key = str(call["key_id"]).rsplit("/", 1)[-1]
            store = "target" if key in target["key_ids"] else "other"
            assert key in target["key_ids"] + other["key_ids"]
            first.setdefault(store, index)
    assert set(first) == {"target", "other"}
    listings = [i for i, c in enumerate(log) if c["operation"] == "ListKeys"]
    earlier, later = sorted(first.values())
    # The surveys of both stores: one chain; then each store's fresh snapshot of its own.
    assert len([i for i in listings if i < earlier]) == 2
    assert any(earlier < i < later for i in listings)


def test_every_store_in_the_json_names_its_account_and_region(emulator: Emulator) -> None:
    seed_one(emulator, keys=1, other=1, plain=1)
    for args in (["target", "other", "--dry-run"], ["status", "target", "other"],
                 ["target", "missing-store", "--dry-run"]):
        run = ksdelete(emulator, *args, "--output", "json")
        doc = run.json()
        assert [(s["account"], s["region"]) for s in doc["stores"]] == \
            [("123456789012", "us-east-1")] * 2, args


B = "222222222222"
B_KEY = "AKIAACCOUNTBOPERATOR"


def test_an_operator_in_one_account_never_sees_or_touches_another_accounts_store(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.configure(principals={B_KEY: f"arn:aws:iam::{B}:role/operator"})
    seeded = seed_one(emulator, keys=2, other=1, plain=2)
    b = emulator.seed({"account": B, "region": "us-east-1", "plain_keys": 2, "stores": [
        {"name": "target", "keys": 3, "aliases": True},  # the same name as A's store
        {"name": "b-only", "keys": 1}]})
    b_before = emulator.state(account=B)

    # Account A (the default credentials): B's stores do not exist, by ID or by name.
    for ref in (b["stores"][1]["id"], "b-only"):
        missing = ksdelete(emulator, ref, "--dry-run", "--output", "json")
        assert missing.exit_code == 1 and missing.store()["status"] == "missing", ref
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert run.store()["id"] == seeded["stores"][0]["id"]
    assert (run.store()["account"], run.json()["account"]) == ("123456789012",) * 2
    assert {k["id"] for k in run.store()["keys"]} == set(seeded["stores"][0]["key_ids"])
    assert emulator.state(account=B) == b_before  # nothing of B's changed
    assert {c["account"] for c in emulator.calls() if "account" in c} == {"123456789012"}

    # Account B's operator sees B's store of the same name, and only B's keys.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", B_KEY)
    status = ksdelete(emulator, "status", "target", "--output", "json")
    assert status.exit_code == 3, status.stderr
    assert status.store()["id"] == b["stores"][0]["id"]
    assert (status.store()["account"], status.json()["account"]) == (B, B)
    assert status.store()["phase"]["keys_total"] == 3
