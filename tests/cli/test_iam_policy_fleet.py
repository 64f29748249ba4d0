"""`ksdelete iam-policy --fleet`: the hub policy (sts:AssumeRole on the target roles), the
target role policy (the same KMS/CloudTrail actions as for one store) and a trust policy
template with the sts:ExternalId condition; plain (three headed JSON blocks) and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from ksdelete.cli import cli
from ksdelete.permissions import policy

GOOD = (Path(__file__).parents[1] / "fleet" / "fleet.yml").read_text(encoding="utf-8")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["iam-policy", *args], catch_exceptions=False)


def policies(*args: str) -> dict[str, Any]:
    result = run("--fleet", "--output", "json", *args)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    assert set(doc) == {"hub_policy", "target_role_policy", "trust_policy"}
    return doc


def test_without_a_file_the_hub_may_assume_the_default_role_in_any_account() -> None:
    doc = policies()
    (statement,) = doc["hub_policy"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    assert statement["Resource"] == ["arn:aws:iam::*:role/KsdeleteExecution"]
    assert doc["target_role_policy"] == policy(read_only=False)
    (trust,) = doc["trust_policy"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole" and trust["Effect"] == "Allow"
    assert "AWS" in trust["Principal"]
    assert "sts:ExternalId" in trust["Condition"]["StringEquals"]


def test_with_a_fleet_file_the_hub_may_assume_exactly_its_roles(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yml"
    path.write_text(GOOD.replace(
        "    profile: payments-stage-sso",
        "    role: [arn:aws:iam::222233334444:role/Jump, Exec]"), encoding="utf-8")
    doc = policies("--fleet-file", str(path))
    (statement,) = doc["hub_policy"]["Statement"]
    # The first role of each chain is the hub's to assume (a chain's next ones are assumed
    # by the role before them); an account reached by profile needs nothing of the hub.
    assert statement["Resource"] == ["arn:aws:iam::111122223333:role/KsdeleteExecution",
                                     "arn:aws:iam::222233334444:role/Jump"]
    (trust,) = doc["trust_policy"]["Statement"]
    assert "KSDELETE_EXTERNAL_ID" in trust["Condition"]["StringEquals"]["sts:ExternalId"]


def test_the_target_role_policy_follows_apply_only_and_unused_for() -> None:
    doc = policies("--apply-only", "--unused-for", "30")
    assert doc["target_role_policy"] == policy(read_only=False, apply_only=True, unused_for=30)


def test_plain_output_is_three_headed_json_blocks() -> None:
    result = run("--fleet")
    assert result.exit_code == 0
    blocks = result.stdout.strip().split("\n\n")
    assert len(blocks) == 3
    heads = [b.split("\n", 1)[0] for b in blocks]
    assert heads[0].startswith("# Hub policy")
    assert heads[1].startswith("# Target role policy")
    assert heads[2].startswith("# Trust policy")
    assert [json.loads(b.split("\n", 1)[1]) for b in blocks] == list(policies().values())


def test_misuse_is_a_usage_error(tmp_path: Path) -> None:
    assert run("--fleet-file", "x.yml").exit_code == 2
    assert run("--fleet", "--probe").exit_code == 2
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 2\n", encoding="utf-8")
    result = run("--fleet", "--fleet-file", str(bad))
    assert result.exit_code == 2
    assert result.stderr.startswith("ksdelete: error: version 2 is not known")
    profiles = tmp_path / "profiles.yml"
    profiles.write_text('version: 1\nname: p\naccounts:\n  - {account_id: "111122223333", '
                        "name: a, profile: p, stores: [{id: cks-1, region: us-east-1}]}\n",
                        encoding="utf-8")
    result = run("--fleet", "--fleet-file", str(profiles))
    assert result.exit_code == 2 and "no account" in result.stderr
