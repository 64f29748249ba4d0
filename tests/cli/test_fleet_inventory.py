"""`ksdelete fleet inventory --regions R1,R2 [--fleet FILE]`: read-only; which stores exist in
each account and Region, with type, state and key count, written as a fleet file whose every
store is commented out. Over HTTP against the emulator, with two accounts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.emulator import Emulator
from ksdelete.errors import UsageError
from ksdelete.fleet import spec as fleetspec

from .helpers import mutations, seed_one, unpaced

OTHER = "222222222222"
OTHER_KEY = "AKIAACCOUNTBOPERATOR"


def inventory(emulator: Emulator, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["fleet", "inventory", *args, "--endpoint-url", emulator.endpoint_url],
        catch_exceptions=False, env=unpaced(emulator))
    return result.exit_code, result.stdout, result.stderr


def uncomment(text: str, store_id: str) -> str:
    """The file with one store's lines, and its account's lines, uncommented (what a person
    does in an editor): the account's `- account_id` to `stores:`, the store's `- id` entry."""
    lines = text.split("\n")
    at = lines.index(f"  #     - id: {store_id}")
    start = max(i for i in range(at) if lines[i].startswith("  # - account_id:"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("  #   stores:"))
    store_end = next((i for i in range(at + 1, len(lines))
                      if not lines[i].startswith("  #       ")), len(lines))
    for i in [*range(start, end + 1), *range(at, store_end)]:
        lines[i] = "  " + lines[i][4:]
    return "\n".join(lines)


def seed_two_accounts(emulator: Emulator) -> dict[str, Any]:
    emulator.configure(principals={OTHER_KEY: f"arn:aws:iam::{OTHER}:role/operator"})
    seeded = seed_one(emulator, keys=3, other=2)
    east = {s["name"]: s["id"] for s in seeded["stores"]}
    west = emulator.seed({"region": "eu-west-1", "stores": [
        {"name": "xks", "type": "EXTERNAL_KEY_STORE", "connection_state": "DISCONNECTED",
         "keys": 1}]})
    other = emulator.seed({"account": OTHER, "region": "eu-west-1", "stores": [
        {"name": "b-hsm", "keys": 4}]})
    return {"target": east["target"], "other": east["other"], "xks": west["stores"][0]["id"],
            "b": other["stores"][0]["id"]}


def test_the_current_account_is_inventoried_as_a_commented_fleet_file(
        emulator: Emulator, tmp_path: Path) -> None:
    ids = seed_two_accounts(emulator)
    code, out, err = inventory(emulator, "--regions", "us-east-1,eu-west-1,ap-south-1")
    assert code == 0, err
    # Read-only: nothing changed; one ListKeys chain per Region however many stores.
    assert mutations(emulator) == []
    listings = [c["region"] for c in emulator.calls() if c["operation"] == "ListKeys"]
    assert sorted(listings) == ["eu-west-1", "us-east-1"]
    assert OTHER not in out and ids["b"] not in out  # the other account: not these credentials
    # Every store is commented out, with its type, state and key count.
    assert re.search(r"#\s+# us-east-1: AWS_CLOUDHSM \"target\", CONNECTED, 3 keys", out), out
    assert re.search(r"#\s+# us-east-1: AWS_CLOUDHSM \"other\", CONNECTED, 2 keys", out)
    assert re.search(r"#\s+# eu-west-1: EXTERNAL_KEY_STORE \"xks\", DISCONNECTED, 1 key\b", out)
    assert re.search(r"#\s+# ap-south-1: no custom key store", out)
    for store in ("target", "other", "xks"):
        assert f"\n  #     - id: {ids[store]}\n" in out
    assert yaml.safe_load(out)["guards"]["allowed_accounts"] == ["123456789012"]
    with pytest.raises(UsageError, match="empty selection"):
        fleetspec.parse(out, None)
    assert "3 stores in 1 account" in err

    chosen = uncomment(out, ids["target"])
    fleet = fleetspec.parse(chosen, None)
    (target,) = fleet.targets
    assert (target.account_id, target.region, target.store_id) == (
        "123456789012", "us-east-1", ids["target"])
    assert (target.expect_name, target.expect_type, target.expect_keys) == (
        "target", "AWS_CLOUDHSM", 3)
    path = tmp_path / "fleet.yml"
    path.write_text(chosen, encoding="utf-8")
    validated = CliRunner().invoke(cli, ["fleet", "validate", str(path)])
    assert validated.exit_code == 0, validated.output


def test_a_fleet_file_names_the_accounts_and_how_to_reach_them(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = seed_two_accounts(emulator)
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[main]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
        f"[other]\naws_access_key_id = {OTHER_KEY}\naws_secret_access_key = x\n",
        encoding="utf-8")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(
        "version: 1\nname: retire-hsm\naccounts:\n"
        '  - {account_id: "123456789012", name: main, profile: main}\n'
        f'  - {{account_id: "{OTHER}", name: other, profile: other}}\n'
        '  - {account_id: "333333333333", name: wrong, profile: main}\n', encoding="utf-8")
    out_file = tmp_path / "inventory.yml"
    code, out, err = inventory(emulator, "--regions", "us-east-1,eu-west-1", "--fleet",
                               str(accounts), "--output-file", str(out_file))
    # The third account's profile answers for another account: refused, nothing read there.
    assert code == 4, err
    assert out == ""
    text = out_file.read_text(encoding="utf-8")
    assert mutations(emulator) == []
    assert yaml.safe_load(text)["guards"]["allowed_accounts"] == ["123456789012", OTHER]
    assert yaml.safe_load(text)["name"] == "retire-hsm"
    assert re.search(r"# 333333333333 \(wrong\): not read: the credentials are for account "
                     r"123456789012", text), text
    assert "333333333333" in err
    assert re.search(r"#\s+# eu-west-1: AWS_CLOUDHSM \"b-hsm\", CONNECTED, 4 keys", text)
    fleet = fleetspec.parse(uncomment(uncomment(text, ids["b"]), ids["target"]), None)
    assert [(t.account_id, t.store_id, t.expect_keys) for t in fleet.targets] == [
        ("123456789012", ids["target"], 3), (OTHER, ids["b"], 4)]
    assert fleet.account(OTHER).profile == "other"
    fleetspec.check_for_change(fleet)


def test_misuse_is_a_usage_error_before_any_call(emulator: Emulator, tmp_path: Path) -> None:
    code, _, err = inventory(emulator, "--regions", "us-east-1,EU_WEST")
    assert code == 2 and "Region" in err
    code, _, err = inventory(emulator)
    assert code == 2 and "--regions" in err
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nname: x\naccounts: [{account_id: 1, name: a}]\n", encoding="utf-8")
    code, _, err = inventory(emulator, "--regions", "us-east-1", "--fleet", str(bad))
    assert code == 2 and "quote it" in err
    assert emulator.calls() == []


def test_a_store_with_keys_that_cannot_be_described_gets_no_expected_count(
        emulator: Emulator) -> None:
    seeded = emulator.seed({"region": "us-east-1", "stores": [
        {"name": "locked", "keys": 3, "undescribable_keys": 1}]})
    store = seeded["stores"][0]["id"]
    code, out, err = inventory(emulator, "--regions", "us-east-1")
    assert code == 0, err
    assert re.search(r"# us-east-1: AWS_CLOUDHSM \"locked\", CONNECTED, 2 keys, 1 more that "
                     r"cannot be described \(expect_keys left out\)", out), out
    (target,) = fleetspec.parse(uncomment(out, store), None).targets
    assert target.expect_keys is None and target.expect_name == "locked"
