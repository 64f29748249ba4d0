"""`ksdelete fleet validate FILE`: offline (no AWS call, no credentials read); says what the
file selects and whether it is fit for changes; exit 0 only when it is, 2 otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ksdelete.cli import cli

from .helpers import Run, validated

GOOD = (Path(__file__).parents[1] / "fleet" / "fleet.yml").read_text(encoding="utf-8")


def replaced(old: str, new: str, text: str = GOOD) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def validate(tmp_path: Path, text: str, *args: str) -> Run:
    path = tmp_path / "fleet.yml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["fleet", "validate", str(path), *args],
                                catch_exceptions=False)
    run = Run(result.exit_code, result.stdout, result.stderr)
    if "json" in args:
        validated(run.stdout)
    return run


def test_a_good_file_is_described_and_fit_for_changes(tmp_path: Path) -> None:
    run = validate(tmp_path, GOOD)
    assert run.exit_code == 0, run.stderr
    out = run.stdout
    assert "fleet retire-payments-hsm" in out
    assert "payments-dev 111122223333: role arn:aws:iam::111122223333:role/KsdeleteExecution" \
        " (ExternalId from $KSDELETE_EXTERNAL_ID)" in out
    assert "payments-stage 444455556666: profile payments-stage-sso" in out
    assert "eu-west-1: cks-1234567890abcdef0 (expect name payments-hsm, type AWS_CLOUDHSM, " \
        "12 keys)" in out
    assert "us-east-1: cks-1234567890abcdef1" in out
    assert "targets: 3 in 2 accounts" in out
    assert "hub: profile security-automation" in out
    assert "--pending-window-days 7" in out and "--connect" in out
    assert "allowed_accounts 111122223333, 444455556666" in out
    assert "forbidden_accounts 999988887777" in out and "max_targets 10" in out
    assert "rollout: max_accounts 2, canary 1, failure_tolerance 0" in out
    assert out.rstrip().endswith("fit for changes: yes")
    assert run.stderr == ""


def test_a_file_apply_would_refuse_fails_validation(tmp_path: Path) -> None:
    run = validate(tmp_path, replaced('  allowed_accounts: ["111122223333", "444455556666"]\n',
                                      ""))
    assert run.exit_code == 2
    assert "fit for changes: no (allowed_accounts is required for anything that changes AWS" \
        in run.stdout
    assert run.stderr.startswith("ksdelete: error: allowed_accounts is required")
    capped = validate(tmp_path, replaced("max_targets: 10", "max_targets: 2"))
    assert capped.exit_code == 2
    assert "fit for changes: no (the fleet file names 3 targets, more than its max_targets 2" \
        in capped.stdout


def test_a_bad_file_is_a_usage_error_in_one_line(tmp_path: Path) -> None:
    run = validate(tmp_path, replaced("        region: eu-west-1", "        regoin: eu-west-1"))
    assert run.exit_code == 2
    assert run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        f"ksdelete: error: unknown key 'regoin' ({tmp_path / 'fleet.yml'}:23, "
        "accounts[0].stores[0].regoin). Did you mean 'region'?"]


def test_json_says_the_same_and_validates_against_the_schema(tmp_path: Path) -> None:
    doc = json.loads(validate(tmp_path, GOOD, "--output", "json").stdout)
    assert doc["command"] == "fleet validate" and doc["exit_code"] == 0
    assert doc["error"] is None and doc["stores"] == []
    fleet = doc["fleet_file"]
    assert fleet["name"] == "retire-payments-hsm"
    assert fleet["fit_for_changes"] is True and fleet["unfit_reason"] is None
    assert fleet["targets"] == 3
    assert fleet["accounts"][0]["role"] == ["arn:aws:iam::111122223333:role/KsdeleteExecution"]
    assert fleet["accounts"][1]["profile"] == "payments-stage-sso"
    assert fleet["accounts"][0]["stores"][0] == {
        "id": "cks-1234567890abcdef0", "region": "eu-west-1", "expect_name": "payments-hsm",
        "expect_type": "AWS_CLOUDHSM", "expect_keys": 12}
    assert fleet["guards"]["allowed_accounts"] == ["111122223333", "444455556666"]
    assert fleet["rollout"] == {"max_accounts": 2, "canary": 1, "failure_tolerance": 0}
    assert fleet["options"]["pending_window_days"] == 7
    assert len(fleet["sha256"]) == 64

    unfit = json.loads(validate(tmp_path, replaced("max_targets: 10", "max_targets: 1"),
                                "--output", "json").stdout)
    assert unfit["exit_code"] == 2 and unfit["fleet_file"]["fit_for_changes"] is False
    assert unfit["error"]["code"] == "usage"
    assert "max_targets 1" in unfit["fleet_file"]["unfit_reason"]

    bad = json.loads(validate(tmp_path, "version: 2\nname: x\n", "--output", "json").stdout)
    assert bad["exit_code"] == 2 and "version" in bad["error"]["message"]
    assert "fleet_file" not in bad


def test_validate_reads_no_credentials_and_imports_no_boto3(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yml"
    path.write_text(GOOD, encoding="utf-8")
    code = (
        "import sys\n"
        "from ksdelete.cli import main\n"
        "try:\n"
        f"    main(['fleet', 'validate', {str(path)!r}])\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, 'boto3' in sys.modules, 'botocore' in sys.modules)\n")
    env = {"AWS_PROFILE": "no-such-profile", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.stdout.splitlines()[-1] == "exit 0 False False", done.stdout + done.stderr
