"""The key membership cache between runs, through the real CLI: a second run describes only
the store's keys and keys it has never seen, and what the cache says never widens what is
acted on."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import boto3
from click.testing import CliRunner

from ksdelete.cache import cache_path
from ksdelete.cli import cli
from ksdelete.emulator import Emulator

from .helpers import DAY, keys_by_id, ksdelete, mutations, said, seed_one, validated

ACCOUNT = "123456789012"  # the emulator's


def cache_file(emulator: Emulator) -> Path:
    """The cache file of the emulator's account, Region and endpoint."""
    return cache_path(Path(os.environ["XDG_STATE_HOME"]) / "ksdelete", ACCOUNT, "us-east-1",
                      endpoint=emulator.endpoint_url)


def described(emulator: Emulator) -> list[str]:
    return [c["key_id"] for c in emulator.calls() if c["operation"] == "DescribeKey"]


def key_id_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def rewrite_cache(emulator: Emulator, change: dict[str, str]) -> None:
    """Edit the cache file as a stale, tampered or buggy one might be: key ID -> store."""
    doc = json.loads(cache_file(emulator).read_text())
    owners = {k: store for store, keys in doc["stores"].items() for k in keys}
    owners.update(change)
    stores: dict[str, list[str]] = {}
    for key_id, store in owners.items():
        stores.setdefault(store, []).append(key_id)
    doc["stores"] = stores
    cache_file(emulator).write_text(json.dumps(doc))


def kms(emulator: Emulator) -> Any:
    return boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


def test_a_second_run_describes_only_the_stores_keys_and_keys_never_seen(
        emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=5, plain=20, other=3)
    target = seeded["stores"][0]
    first = ksdelete(emulator, "status", "target", "--output", "json")
    assert first.exit_code == 3, first.stderr
    assert len(described(emulator)) == 28
    assert stat.S_IMODE(cache_file(emulator).stat().st_mode) == 0o600

    # A key created in the store after the first run, and an unrelated new key.
    client = kms(emulator)
    new_member = client.create_key(CustomKeyStoreId=target["id"], Origin="AWS_CLOUDHSM")
    new_plain = client.create_key()
    new_ids = {new_member["KeyMetadata"]["KeyId"], new_plain["KeyMetadata"]["KeyId"]}
    before = len(described(emulator))

    second = ksdelete(emulator, "status", "target", "--output", "json")
    assert second.exit_code == 3, second.stderr
    keys = {k["id"] for k in second.store()["keys"]}
    assert keys == set(target["key_ids"]) | {new_member["KeyMetadata"]["KeyId"]}
    again = {key_id_of(k) for k in described(emulator)[before:]}
    assert again == set(target["key_ids"]) | new_ids  # nothing else was asked about
    assert second.store()["phase"]["text"] == "keys-not-scheduled 6/6"


def test_no_cache_describes_every_key_and_writes_no_file(emulator: Emulator) -> None:
    seed_one(emulator, keys=2, plain=6, other=2)
    for _ in range(2):
        run = ksdelete(emulator, "--no-cache", "status", "target", "--output", "json")
        assert run.exit_code == 3, run.stderr
    assert len(described(emulator)) == 2 * 10
    assert not cache_file(emulator).parent.exists()


def test_a_cache_that_claims_other_keys_for_the_store_widens_nothing(
        emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=3, plain=5, other=2)
    target, other = seeded["stores"]
    assert ksdelete(emulator, "status", "target").exit_code == 3
    outsiders = [*seeded["plain_key_ids"], *other["key_ids"]]
    # A lie: "these are in the store".
    rewrite_cache(emulator, dict.fromkeys(outsiders, target["id"]))
    before = keys_by_id(emulator)

    run = ksdelete(emulator, "target", "--yes", "--pending-window-days", "7", "--output",
                   "json")
    assert run.exit_code == 3, run.stderr
    assert sorted(k["id"] for k in run.store()["keys"]) == sorted(target["key_ids"])
    touched = {key_id_of(m["key_id"]) for m in mutations(emulator) if m.get("key_id")}
    assert touched == set(target["key_ids"])
    after = keys_by_id(emulator)
    assert all(after[k] == before[k] for k in outsiders)
    # This run's DescribeKey corrected the cache.
    doc = json.loads(cache_file(emulator).read_text())
    assert set(doc["stores"][target["id"]]) == set(target["key_ids"])


def test_a_key_hidden_by_a_wrong_cache_is_found_before_the_store_is_disconnected(
        emulator: Emulator) -> None:
    seeded = seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=3, plain=4, other=1)
    target = seeded["stores"][0]
    hidden = target["key_ids"][0]
    assert ksdelete(emulator, "status", "target").exit_code == 3
    rewrite_cache(emulator, {hidden: ""})  # a lie: "this key is in no store"

    first = ksdelete(emulator, "target", "--yes", "--pending-window-days", "7")
    assert first.exit_code == 3, first.stderr
    scheduled = {key_id_of(m["key_id"]) for m in mutations(emulator)
                 if m["operation"] == "ScheduleKeyDeletion"}
    assert scheduled == set(target["key_ids"][1:])  # narrower, never wider

    emulator.advance(31 * DAY)
    emulator.configure(disconnect_seconds=0.5)
    last = ksdelete(emulator, "target", "--yes", "--output", "json", "--poll-interval", "0.2s")
    # The snapshot before DisconnectCustomKeyStore describes every key (no cache): it found
    # the hidden key, and the gates refused to go on with a key nobody confirmed, before the
    # disconnect that would have made that live key Unavailable.
    assert last.exit_code == 4, last.stderr
    store = last.store()
    assert [k["id"] for k in store["keys"]] == [hidden]
    assert hidden in said(store["error"])
    assert "DisconnectCustomKeyStore" not in {m["operation"] for m in mutations(emulator)}
    stores = {s["CustomKeyStoreId"]: s for s in emulator.state()["stores"]}
    assert stores[target["id"]]["ConnectionState"] == "CONNECTED"
    assert keys_by_id(emulator)[hidden]["KeyState"] == "Enabled"
    doc = json.loads(cache_file(emulator).read_text())
    assert doc["stores"][target["id"]] == [hidden]  # the cache is right again


def test_the_cache_of_one_endpoint_is_not_used_for_another(emulator: Emulator) -> None:
    """A re-seeded emulator (or another KMS endpoint) has other keys under the same account
    and Region: its runs neither read nor overwrite another endpoint's cache."""
    seeded = seed_one(emulator, keys=3, plain=4, other=1)
    target = seeded["stores"][0]
    assert ksdelete(emulator, "status", "target").exit_code == 3
    first = cache_file(emulator)
    assert json.loads(first.read_text())["endpoint"] == emulator.endpoint_url
    hidden = target["key_ids"][0]
    rewrite_cache(emulator, {hidden: ""})  # true here, perhaps not of another endpoint
    other_endpoint = emulator.endpoint_url.replace("127.0.0.1", "localhost")
    result = CliRunner().invoke(cli, ["status", "target", "--output", "json", "--endpoint-url",
                                      other_endpoint, "--region", "us-east-1"])
    assert result.exit_code == 3, result.stderr
    keys = {k["id"] for k in validated(result.stdout)["stores"][0]["keys"]}
    assert keys == set(target["key_ids"])
    files = sorted(first.parent.glob("membership-*.json"))
    assert len(files) == 2  # one per endpoint
    assert json.loads(first.read_text())["stores"][""].count(hidden) == 1  # left alone


def test_a_corrupt_cache_file_is_ignored_with_a_warning(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=2, plain=4, other=1)
    cache_file(emulator).parent.mkdir(parents=True, exist_ok=True)
    cache_file(emulator).write_bytes(b'{"format": "ksdelete-key-membership", "stor')
    run = ksdelete(emulator, "status", "target", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert "warning: ignoring the key membership cache" in run.stderr
    assert "not valid JSON" in run.stderr
    assert {k["id"] for k in run.store()["keys"]} == set(seeded["stores"][0]["key_ids"])
    assert len(described(emulator)) == 7
    assert json.loads(cache_file(emulator).read_text())["account"] == ACCOUNT  # written anew


def test_another_accounts_cache_file_is_ignored_with_a_warning(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=2, plain=4, other=1)
    target = seeded["stores"][0]
    assert ksdelete(emulator, "status", "target").exit_code == 3
    doc = json.loads(cache_file(emulator).read_text())
    doc["account"] = "999999999999"  # e.g. copied from another machine or account
    cache_file(emulator).write_text(json.dumps(doc))
    before = len(described(emulator))

    run = ksdelete(emulator, "status", "target", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert "belongs to account '999999999999'" in run.stderr
    assert {k["id"] for k in run.store()["keys"]} == set(target["key_ids"])
    assert len(described(emulator)) - before == 7  # nothing skipped on its word
