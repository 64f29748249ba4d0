"""`ksdelete fleet ...` end to end: the real CLI, real boto3, over HTTP against the emulator
with several accounts (each reached by a profile whose access key the emulator maps to that
account; roles: tests/fleet/test_fleet_roles.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli.helpers import MUTATING, unpaced, validated
from click.testing import CliRunner

from fleet.accounts import use_profiles
from ksdelete.cli import cli
from ksdelete.emulator import Emulator

ACCOUNTS = {"111111111111": "dev", "222222222222": "stage", "333333333333": "prod"}
REGIONS = ("us-east-1", "eu-west-1")
DAY = 24 * 3600


@pytest.fixture
def profiles(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_profiles(emulator, tmp_path, monkeypatch, ACCOUNTS)


def seed(emulator: Emulator, stores: dict[tuple[str, str], int] | None = None,
         keys: int = 2) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """One store per (account, Region), two in the first account's first Region."""
    stores = stores or {(a, r): 1 for a in ACCOUNTS for r in REGIONS}
    stores[("111111111111", "us-east-1")] = 2
    made = {}
    for (account, region), count in stores.items():
        made[(account, region)] = emulator.seed({
            "account": account, "region": region, "plain_keys": 1,
            "stores": [{"name": f"s{n}-{region}", "type": "EXTERNAL_KEY_STORE", "keys": keys}
                       for n in range(count)]})["stores"]
    return made


def fleet_file(path: Path, made: dict[tuple[str, str], list[dict[str, Any]]], *,
               allowed: tuple[str, ...] = tuple(ACCOUNTS), extra: str = "",
               rollout: str = "rollout: {max_accounts: 3, canary: 1, failure_tolerance: 0}\n"
               ) -> Path:
    lines = ["version: 1", "name: retire-test", "defaults:", "  pending_window_days: 7",
             "  unused_for_days: 0", "guards:",
             f"  allowed_accounts: [{', '.join(repr(a) for a in allowed)}]", extra.rstrip(),
             rollout.rstrip(), "accounts:"]
    for account, name in ACCOUNTS.items():
        stores = [(r, s) for (a, r), ss in made.items() if a == account for s in ss]
        if not stores:
            continue
        lines += [f'  - account_id: "{account}"', f"    name: {name}", f"    profile: {name}",
                  "    stores:"]
        lines += [f"      - {{id: {s['id']}, region: {r}, expect_name: {s['name']}, "
                  f"expect_type: EXTERNAL_KEY_STORE}}" for r, s in stores]
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return path


def fleet(emulator: Emulator, *args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(cli, [*args, "--endpoint-url", emulator.endpoint_url,
                                      "--poll-interval", "0.01", "--output", "json"],
                                catch_exceptions=False, env=unpaced(emulator))
    doc = validated(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, doc, result.stderr


def by_status(doc: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in doc["summary"].items() if v and k not in ("targets",
                                                                         "keys_scheduled")}


def kms_calls(emulator: Emulator) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c.get("service", "kms") == "kms"]


def test_a_fleet_converges_to_deleted_over_cron_runs(emulator: Emulator, profiles: None,
                                                      tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3, err
    assert doc["kind"] == "fleet" and doc["summary"]["targets"] == 7
    assert by_status(doc) == {"pending": 7}, [t["error"] for t in doc["targets"]]
    assert doc["summary"]["keys_scheduled"] == 14
    assert {(t["account_id"], t["region"]) for t in doc["targets"]} == \
        {(a, r) for a in ACCOUNTS for r in REGIONS}
    for t in doc["targets"]:
        assert t["store"]["account"] == t["account_id"] and t["exit_code"] == 3
    # one run ID in every journal line of every account and Region
    journal = (tmp_path / "state" / "ksdelete" / "journal.jsonl").read_text()
    assert journal.count(doc["run_id"]) >= 14
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3 and doc["summary"]["keys_scheduled"] == 0, err
    emulator.advance(8 * DAY)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 0, err
    assert by_status(doc) == {"deleted": 7}
    code, doc, err = fleet(emulator, "fleet", "status", str(path))
    assert code == 0 and by_status(doc) == {"deleted": 7}, err


def test_a_saved_fleet_plan_applied_from_another_state_directory(
        emulator: Emulator, profiles: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made)
    plan = tmp_path / "fleet-plan.json"
    code, doc, err = fleet(emulator, "fleet", "plan", str(path), "--save-plan", str(plan))
    assert code == 0, err
    assert by_status(doc) == {"planned": 7} and doc["plan_id"]
    assert [c for c in emulator.calls() if c["operation"] in MUTATING] == []
    calls = len(emulator.calls())
    shown = CliRunner().invoke(cli, ["show-plan", str(plan)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.stderr
    for stores in made.values():
        for store in stores:
            assert store["id"] in shown.stdout
    assert f"ksdelete apply {plan}" in shown.stdout
    shown = CliRunner().invoke(cli, ["show-plan", str(plan), "--output", "json"],
                               catch_exceptions=False)
    listed = validated(shown.stdout)
    assert shown.exit_code == 0 and by_status(listed) == {"planned": 7}
    assert listed["plan_id"] == doc["plan_id"]
    assert len(emulator.calls()) == calls  # no AWS call
    path.unlink()  # the plan carries the file it was made from
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "elsewhere"))
    code, doc, err = fleet(emulator, "apply", str(plan))
    assert code == 3, err
    assert by_status(doc) == {"pending": 7} and doc["plan_id"]
    emulator.advance(8 * DAY)
    code, doc, err = fleet(emulator, "apply", str(plan))
    assert code == 0 and by_status(doc) == {"deleted": 7}, err
    # an edited fleet plan is a usage error
    text = plan.read_text()
    plan.write_text(text.replace('"pending_window_days": 7', '"pending_window_days": 8', 1))
    code, doc, err = fleet(emulator, "apply", str(plan))
    assert code == 2 and "edited" in err


def test_guards_refuse_before_any_kms_call(emulator: Emulator, profiles: None,
                                           tmp_path: Path) -> None:
    made = seed(emulator)
    narrow = fleet_file(tmp_path / "narrow.yml", made, allowed=("111111111111",))
    code, _, err = fleet(emulator, "fleet", "apply", str(narrow), "--yes")
    assert code == 2 and "allowed_accounts" in err
    forbidden = fleet_file(tmp_path / "forbidden.yml", made,
                           extra='  forbidden_accounts: ["333333333333"]')
    code, _, err = fleet(emulator, "fleet", "status", str(forbidden))
    assert code == 2 and "forbidden" in err
    capped = fleet_file(tmp_path / "capped.yml", made, extra="  max_targets: 3")
    code, _, err = fleet(emulator, "fleet", "apply", str(capped), "--yes")
    assert code == 4 and "max_targets" in err, err
    code, _, err = fleet(emulator, "fleet", "apply", str(capped), "--yes",
                         "--target", "no-such-store")
    assert code == 2 and "matches no target" in err
    assert kms_calls(emulator) == []


def test_a_key_cap_refuses_before_the_first_change(emulator: Emulator, profiles: None,
                                                   tmp_path: Path) -> None:
    made = seed(emulator, keys=3)
    path = fleet_file(tmp_path / "fleet.yml", made, extra="  max_keys_per_target: 2",
                      rollout="rollout: {max_accounts: 3, canary: 0, failure_tolerance: 7}")
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 4, err
    assert by_status(doc) == {"refused": 7}
    assert all("over the cap of 2" in t["error"]["message"] for t in doc["targets"]), \
        [t["error"] for t in doc["targets"]]
    assert [c for c in emulator.calls() if c["operation"] in MUTATING] == []


def test_fleet_cancel_recovers_every_key_and_apply_then_refuses(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made,
                      rollout="rollout: {max_accounts: 3, canary: 0, failure_tolerance: 7}")
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3, err
    code, doc, err = fleet(emulator, "fleet", "cancel", str(path))
    assert code == 0, err
    assert by_status(doc) == {"cancelled": 7}
    for (account, region) in made:
        keys = [k for k in emulator.state(region, account)["keys"]
                if k.get("CustomKeyStoreId")]
        assert keys and all(k["KeyState"] != "PendingDeletion" for k in keys)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 4, err
    assert by_status(doc) == {"refused": 7}
    assert all("cancel" in t["error"]["message"] for t in doc["targets"])


def test_irreversible_steps_are_spread_over_runs(emulator: Emulator, profiles: None,
                                                 tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made, extra="  max_irreversible_per_run: 3")
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3 and by_status(doc) == {"pending": 7}, err  # scheduling is not capped
    emulator.advance(8 * DAY)
    deleted: list[str] = []
    for expected in (3, 6, 7):
        code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
        now = [t["store_id"] for t in doc["targets"] if t["status"] == "deleted"]
        assert len(now) == expected, (expected, by_status(doc), err)
        assert set(deleted) <= set(now)
        deleted = now
        deferred = [t for t in doc["targets"] if t["status"] == "pending"]
        assert all("max_irreversible_per_run" in (t["phase"] or "") + str(t["error"]) +
                   json.dumps(t["store"]) for t in deferred), deferred
    assert code == 0


def test_the_canary_must_pass_before_any_other_target_changes(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made,
                      rollout="rollout: {max_accounts: 3, canary: 1, failure_tolerance: 7}")
    first = made[("111111111111", "us-east-1")][0]
    wrong = path.read_text().replace(f"expect_name: {first['name']}", "expect_name: typo", 1)
    path.write_text(wrong)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 4, err
    assert doc["halted"] and "canary" in doc["halt_reason"]
    statuses = [t["status"] for t in doc["targets"]]
    # the canary (the first target) refused; its scope-mate held back; every other one skipped
    assert statuses[:2] == ["refused", "refused"] and set(statuses[2:]) == {"skipped"}, statuses
    assert [c for c in emulator.calls() if c["operation"] in MUTATING] == []


def test_bad_input_is_one_line_and_one_json_object(emulator: Emulator, profiles: None,
                                                   tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nname: x\naccounts:\n  - account_id: 111111111111\n")
    code, doc, err = fleet(emulator, "fleet", "plan", str(bad))
    assert code == 2 and doc["error"]["code"] == "usage", err
    assert len([line for line in err.splitlines() if line.startswith("ksdelete:")]) == 1
    assert "Traceback" not in err
    code, doc, err = fleet(emulator, "fleet", "apply", str(tmp_path / "missing.yml"), "--yes")
    assert code == 2 and doc["exit_code"] == 2 and "missing.yml" in err
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path))  # no --yes
    assert code == 2 and "--yes" in err and doc["error"]["code"] == "usage"
    assert kms_calls(emulator) == []


def test_a_fleet_cancel_before_anything_was_scheduled_sticks(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made,
                      rollout="rollout: {max_accounts: 3, canary: 0, failure_tolerance: 7}")
    code, doc, err = fleet(emulator, "fleet", "cancel", str(path))
    assert code == 0 and by_status(doc) == {"cancelled": 7}, err
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 4 and by_status(doc) == {"refused": 7}, err
    assert [c for c in emulator.calls() if c["operation"] == "ScheduleKeyDeletion"] == []
