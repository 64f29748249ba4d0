"""The optional second witness: an AWS Config aggregator named in the fleet file
(`discovery: {config_aggregator: NAME@REGION}`). One SelectAggregateResourceConfig query per
run; a key Config attributes to a target's store that the scan did not find, and that exists
in the store, refuses that target (the scan was incomplete); a key Config lists that no longer
exists is only noted; a query that fails refuses every target that would change. Real CLI,
real boto3, over HTTP against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from cli.helpers import MUTATING
from click.testing import CliRunner

from fleet.accounts import key_of
from fleet.test_fleet_cli import DAY, by_status, fleet, fleet_file, profiles, seed
from ksdelete.cli import cli
from ksdelete.emulator import Emulator

__all__ = ["profiles"]  # the fixture, used by name

B, EU = "222222222222", "eu-west-1"
WITNESS = "discovery: {config_aggregator: org@us-east-1}\n"
TOLERANT = "rollout: {max_accounts: 3, canary: 0, failure_tolerance: 7}\n"


def config_calls(emulator: Emulator) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c.get("service") == "config"]


def changed(emulator: Emulator, account: str, region: str) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c.get("account") == account
            and c.get("region") == region and c["operation"] in MUTATING]


def kms_as(emulator: Emulator, account: str, region: str) -> Any:
    return boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name=region,
                        aws_access_key_id=key_of(account), aws_secret_access_key="x",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


def target(doc: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [t for t in doc["targets"]
                                   if (t["account_id"], t["region"]) == (account, region)]
    assert len(found) == 1
    return found[0]


def test_a_key_hidden_from_listkeys_but_known_to_config_refuses_its_target(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    emulator.configure(config_aggregators=["org@us-east-1"], config_lag_seconds=0)
    hidden = made[(B, EU)][0]["key_ids"][0]
    emulator.configure(listkeys_hide=[hidden])
    path = fleet_file(tmp_path / "fleet.yml", made, extra=WITNESS, rollout=TOLERANT)
    # `fleet plan`: the plan's refusal, nothing changes anywhere
    code, doc, err = fleet(emulator, "fleet", "plan", str(path))
    assert code == 4, err
    refused = target(doc, B, EU)
    assert refused["status"] == "refused", refused
    assert "scan was incomplete" in refused["error"]["message"] and hidden in str(refused)
    assert by_status(doc) == {"planned": 6, "refused": 1}
    assert len(config_calls(emulator)) == 1
    # `fleet apply`: that target is refused with nothing changed there; the others go on
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 4, err
    refused = target(doc, B, EU)
    assert refused["status"] == "refused" and refused["exit_code"] == 4, refused
    assert "scan was incomplete" in refused["error"]["message"]
    assert refused["error"]["key_ids"] == [hidden]
    assert changed(emulator, B, EU) == []
    assert by_status(doc) == {"pending": 6, "refused": 1}
    assert len(config_calls(emulator)) == 2  # one query per run
    assert "org" in err or hidden in err


def test_a_deleted_key_config_still_lists_does_not_refuse(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    emulator.configure(config_aggregators=["org@us-east-1"])  # lag: one emulated day
    gone = made[(B, EU)][0]["key_ids"][0]
    emulator.advance(2 * DAY)
    kms_as(emulator, B, EU).schedule_key_deletion(KeyId=gone, PendingWindowInDays=7)
    emulator.advance(7 * DAY + 60)  # deleted; Config still lists it
    path = fleet_file(tmp_path / "fleet.yml", made, extra=WITNESS, rollout=TOLERANT)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3, err
    assert by_status(doc) == {"pending": 7}, [t["error"] for t in doc["targets"]]
    noted = target(doc, B, EU)
    assert any(gone in w and "no longer exists" in w for w in noted["store"]["warnings"]), \
        noted["store"]["warnings"]
    assert len(config_calls(emulator)) == 1


def test_an_aggregator_that_does_not_exist_refuses_apply_and_warns_plan(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)  # no aggregator exists (the knob's default)
    path = fleet_file(tmp_path / "fleet.yml", made, extra=WITNESS, rollout=TOLERANT)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 4, err
    assert by_status(doc) == {"refused": 7}
    named = [t for t in doc["targets"] if "org@us-east-1" in t["error"]["message"]]
    # the two stores of 111111111111/us-east-1 are one plan, all or nothing: one names it
    assert len(named) == 6, [t["error"] for t in doc["targets"]]
    assert [c for c in emulator.calls() if c["operation"] in MUTATING] == []
    assert "NoSuchConfigurationAggregatorException" in err
    code, doc, err = fleet(emulator, "fleet", "plan", str(path))
    assert code == 0, err
    assert by_status(doc) == {"planned": 7}
    assert "org@us-east-1" in err
    assert len(config_calls(emulator)) == 2


def test_without_an_aggregator_no_query_is_made(emulator: Emulator, profiles: None,
                                                tmp_path: Path) -> None:
    made = seed(emulator)
    path = fleet_file(tmp_path / "fleet.yml", made, rollout=TOLERANT)
    code, _, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3, err
    assert config_calls(emulator) == []


def test_iam_policy_fleet_gives_the_hub_the_config_query(tmp_path: Path) -> None:
    import json

    made = {("111111111111", "us-east-1"): [{"id": "cks-1234567890abcdef0", "name": "s"}]}
    path = fleet_file(tmp_path / "fleet.yml", made, extra=WITNESS)
    result = CliRunner().invoke(cli, ["iam-policy", "--fleet", "--fleet-file", str(path),
                                      "--output", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    statements = json.loads(result.stdout)["hub_policy"]["Statement"]
    (select,) = [s for s in statements if s["Action"] == "config:SelectAggregateResourceConfig"]
    assert select["Resource"] == ["arn:aws:config:us-east-1:*:config-aggregator/*"]
    assert not any(s["Action"] == "sts:AssumeRole" for s in statements)  # profiles only


def test_the_file_names_the_aggregator_as_name_at_region(tmp_path: Path) -> None:
    from ksdelete.errors import UsageError
    from ksdelete.fleet import spec, write

    made = {("111111111111", "us-east-1"): [{"id": "cks-1234567890abcdef0", "name": "s"}]}
    path = fleet_file(tmp_path / "fleet.yml", made, extra=WITNESS)
    fleet_spec = spec.load(path)
    assert fleet_spec.config_aggregator == ("org", "us-east-1")
    said = CliRunner().invoke(cli, ["fleet", "validate", str(path)])
    assert said.exit_code == 0, said.output
    assert "second witness: AWS Config aggregator org@us-east-1" in said.stdout
    again = spec.parse(write.dump(fleet_spec), None)
    assert again.config_aggregator == ("org", "us-east-1")
    for bad in ("discovery: {config_aggregator: org}\n",          # no Region
                "discovery: {config_aggregator: 'a b@us-east-1'}\n",
                "discovery: {aggregator: org@us-east-1}\n"):       # unknown key
        path = fleet_file(tmp_path / "bad.yml", made, extra=bad)
        try:
            spec.load(path)
        except UsageError as exc:
            assert "discovery" in str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")
    result = CliRunner().invoke(cli, ["fleet", "validate", str(path)])
    assert result.exit_code == 2 and "discovery" in result.stderr


def test_a_saved_fleet_plan_is_witnessed_again_when_applied(emulator: Emulator, profiles: None,
                                                            tmp_path: Path) -> None:
    made = seed(emulator)
    emulator.configure(config_aggregators=["org@us-east-1"], config_lag_seconds=0)
    path = fleet_file(tmp_path / "fleet.yml", made, extra=WITNESS, rollout=TOLERANT)
    plan = tmp_path / "fleet-plan.json"
    code, doc, err = fleet(emulator, "fleet", "plan", str(path), "--save-plan", str(plan))
    assert code == 0 and by_status(doc) == {"planned": 7}, err
    hidden = made[(B, EU)][0]["key_ids"][1]
    emulator.configure(listkeys_hide=[hidden])  # the scan is incomplete from now on
    code, doc, err = fleet(emulator, "apply", str(plan))
    assert code == 4, err
    refused = target(doc, B, EU)
    assert refused["status"] == "refused" and hidden in str(refused["error"]), refused
    assert changed(emulator, B, EU) == []
    assert by_status(doc) == {"pending": 6, "refused": 1}
    assert len(config_calls(emulator)) == 2


def test_fleet_status_reads_the_same_verdict(emulator: Emulator, profiles: None,
                                             tmp_path: Path) -> None:
    made = seed(emulator)
    emulator.configure(config_aggregators=["org@us-east-1"], config_lag_seconds=0)
    path = fleet_file(tmp_path / "fleet.yml", made, extra=WITNESS, rollout=TOLERANT)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3 and by_status(doc) == {"pending": 7}, err
    hidden = made[(B, EU)][0]["key_ids"][0]  # pending deletion now, missed by ListKeys
    emulator.configure(listkeys_hide=[hidden])
    code, doc, err = fleet(emulator, "fleet", "status", str(path))
    assert code == 4, err
    refused = target(doc, B, EU)
    assert refused["status"] == "refused" and hidden in str(refused["error"]), refused
    assert by_status(doc) == {"pending": 6, "refused": 1}
    assert len(config_calls(emulator)) == 2
    emulator.configure(config_aggregators=[])  # the query fails: a warning only
    code, doc, err = fleet(emulator, "fleet", "status", str(path))
    assert "org@us-east-1" in err and by_status(doc) == {"pending": 7}, err


def test_a_hub_denied_the_query_refuses_every_target_that_would_change(
        emulator: Emulator, profiles: None, tmp_path: Path) -> None:
    made = seed(emulator)
    emulator.configure(config_aggregators=["org@us-east-1"], config_lag_seconds=0,
                       fault_rate=1.0, fault_operations="config:SelectAggregateResourceConfig")
    path = fleet_file(tmp_path / "fleet.yml", made, extra=WITNESS, rollout=TOLERANT)
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 4 and by_status(doc) == {"refused": 7}, err
    assert "AccessDeniedException" in err and "org@us-east-1" in err
    assert [c for c in emulator.calls() if c["operation"] in MUTATING] == []
