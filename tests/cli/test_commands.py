"""The installed entry point, the demo, iam-policy, interrupts and error formatting."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request

import pytest
from click.testing import CliRunner

from ksdelete import gateway, permissions
from ksdelete.cli import cli
from ksdelete.emulator import Emulator

from .helpers import KSDELETE, at_the_prompt, env_for, seed_one, validated


def test_installed_entry_point_with_aws_endpoint_url(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    proc = subprocess.run([KSDELETE, "target", "--dry-run", "--output", "json"],
                          env=env_for(emulator), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert validated(proc.stdout)["stores"][0]["status"] == "planned"
    assert "\x1b[" not in proc.stderr  # not a terminal: plain lines


def test_version_and_help() -> None:
    proc = subprocess.run([KSDELETE, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("ksdelete ")
    assert "boto3 " in proc.stdout and "botocore " in proc.stdout
    assert "cks-1234567890abcdef0 --dry-run" in CliRunner().invoke(cli, ["--help"]).stdout


@pytest.mark.slow  # 3,000 keys discovered three times by one process: about 80 s on 2 cores
def test_demo_runs_every_phase() -> None:
    proc = subprocess.run([KSDELETE, "demo"], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for phase in ("DRY RUN", "discover:", "plan:", "schedule:", "wait:", "disconnect:",
                  "delete:", "verify:", "answered by the demo"):
        assert phase in proc.stderr, phase
    assert proc.stdout.count(": deleted") == 2


@pytest.mark.parametrize("read_only", [True, False])
def test_iam_policy_is_derived_from_the_code(read_only: bool) -> None:
    args = ["iam-policy", "--read-only"] if read_only else ["iam-policy"]
    doc = json.loads(CliRunner().invoke(cli, args).stdout)
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert actions == set(permissions.actions(read_only=read_only))
    assert "kms:ListKeys" in actions and "kms:DescribeKey" in actions
    assert ("kms:ScheduleKeyDeletion" in actions) is not read_only


def test_the_apply_only_policy_has_no_undo_but_the_watch_may_cancel() -> None:
    doc = json.loads(CliRunner().invoke(cli, ["iam-policy", "--apply-only"]).stdout)
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert actions == set(permissions.actions(read_only=False, apply_only=True))
    assert {"kms:ScheduleKeyDeletion", "kms:DisconnectCustomKeyStore",
            "kms:DeleteCustomKeyStore", "kms:TagResource",
            "kms:CancelKeyDeletion"} <= actions  # the watch cancels a key someone uses
    assert "kms:EnableKey" not in actions
    assert "kms:ConnectCustomKeyStore" in actions  # --connect
    both = CliRunner().invoke(cli, ["iam-policy", "--apply-only", "--read-only"])
    assert both.exit_code == 2


def test_every_gateway_operation_has_a_declared_permission() -> None:
    public = {name for name in vars(gateway.Gateway) if not name.startswith("_")}
    assert public - {"server_now", "identity", "endpoint_url", "endpoint_configured"} == set(
        gateway.PERMISSIONS)
    used = set(permissions.DISCOVERY)
    for calls in permissions.STEP_CALLS.values():
        used |= set(calls)
    used |= set(permissions.PROBE) | set(permissions.WITNESS)
    assert used == set(gateway.PERMISSIONS)


def test_errors_are_one_line_without_traceback_unless_debug(emulator: Emulator) -> None:
    result = CliRunner().invoke(cli, ["target", "--dry-run", "--region", "us-east-1",
                                      "--endpoint-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot reach AWS" in errors[0], result.stderr
    assert "--endpoint-url" in errors[0]  # what to do about it
    assert "Traceback" not in result.stderr
    assert "cannot reach AWS" not in result.stdout  # printed once (stdout: the result)
    debug = CliRunner().invoke(cli, ["target", "--dry-run", "--region", "us-east-1",
                                     "--endpoint-url", "http://127.0.0.1:9", "--debug"])
    assert "Traceback" in debug.stderr


def test_interactive_confirmation_needs_the_store_id_or_name(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    run = at_the_prompt(emulator, "target", keys=b"something else\n")
    assert run.exit_code == 4
    assert run.store()["status"] == "refused"
    run = at_the_prompt(emulator, "target", keys=b"target\n")
    assert run.exit_code == 3
    actions = run.store()["actions"]
    assert [a["operation"] for a in actions] == ["TagResource", "ScheduleKeyDeletion"]


def test_ksdelete_emulator_serves_until_sigterm() -> None:
    proc = subprocess.Popen([KSDELETE, "emulator", "--port", "0", "--quotas", "aws",
                             "--time-scale", "60"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith("KMS emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        with urllib.request.urlopen(f"{url}/_emulator/config", timeout=30) as response:
            config = json.loads(response.read())
        assert config["quotas"] == "aws" and config["time_scale"] == 60.0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_click_usage_errors_are_one_line_and_json_when_asked() -> None:
    proc = subprocess.run([KSDELETE, "cks-1", "--pending-window-days", "3", "--output", "json"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("ksdelete: error: ")
    assert "--pending-window-days" in proc.stderr and "--help" in proc.stderr
    doc = validated(proc.stdout)
    assert doc["exit_code"] == 2 and doc["error"]["code"] == "usage"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--profile", "nope"], 2, ["profile 'nope' not found", "--profile"]),
        (["--journal", "/proc/ksdelete/journal.jsonl"], 2, ["cannot open the journal",
                                                           "--journal"]),
    ],
)
def test_bad_input_is_one_line_with_where_and_what_to_do(
    emulator: Emulator, args: list[str], code: int, words: list[str]
) -> None:
    seed_one(emulator, keys=1)
    result = CliRunner().invoke(cli, ["target", "--yes", "--endpoint-url",
                                      emulator.endpoint_url, *args])
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert all(w in errors[0] for w in words), errors[0]
    assert "Traceback" not in result.stderr


def test_no_region_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    result = CliRunner().invoke(cli, ["status", "cks-1"])
    assert result.exit_code == 2
    assert "no AWS Region configured (--region). Pass --region or set AWS_REGION" in \
        result.stderr


@pytest.mark.parametrize("ref", ["", "x" * 257])
def test_a_store_argument_that_cannot_be_an_id_or_name_is_a_usage_error(ref: str) -> None:
    proc = subprocess.run([KSDELETE, ref, "--dry-run", "--region", "us-east-1"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "1-256 characters" in proc.stderr


def test_iam_policy_unused_for_lets_aws_enforce_the_last_use_gate() -> None:
    """An Allow with a condition refuses nothing another statement allows (a key policy with
    kms:*), and ...IfExists on an Allow fails open: AWS refuses only through a Deny."""
    doc = json.loads(CliRunner().invoke(cli, ["iam-policy", "--unused-for", "30"]).stdout)
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    deny = by_sid["KsdeleteDenyRecentlyUsedKeys"]
    assert deny["Effect"] == "Deny" and deny["Resource"] == "*"
    assert deny["Action"] == ["kms:DisableKey", "kms:ScheduleKeyDeletion"]
    assert deny["Condition"] == {"NumericLessThan": {"kms:TrailingDaysWithoutKeyUsage": 30}}
    assert "IfExists" not in json.dumps(doc)
    allowed = {a for s in doc["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}
    assert {"kms:ScheduleKeyDeletion", "kms:DisableKey"} <= allowed  # plainly allowed
    assert all("Condition" not in s for s in doc["Statement"] if s["Effect"] == "Allow")
    assert allowed == set(permissions.actions(read_only=False))
    # Without --unused-for: no Deny at all.
    plain = json.loads(CliRunner().invoke(cli, ["iam-policy"]).stdout)
    assert {s["Effect"] for s in plain["Statement"]} == {"Allow"}
    helptext = CliRunner().invoke(cli, ["iam-policy", "--help"]).stdout
    assert "Deny" in helptext and "never used" in helptext and "not documented" in helptext
    read = json.loads(CliRunner().invoke(cli, ["iam-policy", "--read-only"]).stdout)
    assert {"kms:GetKeyLastUsage", "kms:ListGrants", "cloudtrail:LookupEvents"} <= {
        a for s in read["Statement"] for a in s["Action"]}
    assert not {"kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:TagResource"} & {
        a for s in read["Statement"] for a in s["Action"]}
