"""The unattended path end to end, as operators deploy it: a reviewed plan applied daily by
cron, systemd or Kubernetes with nothing in the environment but credentials."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.emulator import Emulator

from .helpers import DAY, Run, keys_by_id, ksdelete, mutations, said, seed_one, validated

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


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
    assert "--expect-keys 3" in said(run.store()["error"])
    assert mutations(emulator) == []
    # A later run of a deletion confirmed for 3 keys still holds it to 3.
    assert ksdelete(emulator, "target", "--yes", "--expect-keys", "3").exit_code == 3
    again = ksdelete(emulator, "target", "--yes", "--expect-keys", "2", "--output", "json")
    assert again.exit_code == 4, again.stderr
    assert "--expect-keys 3" in said(again.store()["error"])


def test_a_configured_region_or_endpoint_that_conflicts_with_the_plan_is_still_refused(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_one(emulator, keys=1)
    plan = tmp_path / "plan.json"
    assert ksdelete(emulator, "target", "--dry-run", "--save-plan", str(plan)).exit_code == 0
    only_credentials(monkeypatch)
    journal = str(tmp_path / "j.jsonl")

    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    run = bare("apply", str(plan), "--journal", journal, "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert "the Region is eu-west-1, but the plan" in said(run.json()["error"])
    monkeypatch.delenv("AWS_REGION")

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # another endpoint
    run = bare("apply", str(plan), "--journal", journal, "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert f"the plan's endpoint: {emulator.endpoint_url}" in said(run.json()["error"])
    assert mutations(emulator) == []


def env_with_only_credentials(tmp_path: Path) -> dict[str, str]:
    """What cron (or a unit without its EnvironmentFile) gives a job: a PATH, a HOME and
    credentials."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home),
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "LANG": "C.UTF-8"}


def test_the_cron_script_runs_with_only_credentials_and_tells_outcomes_apart(
        emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=2, type="EXTERNAL_KEY_STORE")["stores"][0]
    plan = tmp_path / "payments.json"
    assert ksdelete(emulator, "target", "--dry-run", "--save-plan", str(plan),
                    "--pending-window-days", "7").exit_code == 0
    env = env_with_only_credentials(tmp_path) | {"KSDELETE_LOG_DIR": str(tmp_path / "log")}
    script = str(EXAMPLES / "cron" / "ksdelete-apply")

    def cron(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, str(path)], env=env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    first = cron(plan)
    assert first.returncode == 0 and first.stdout == "", first.stderr  # 3: nothing to say
    assert validated((tmp_path / "log" / "payments.json").read_text())["exit_code"] == 3

    edited = tmp_path / "edited.json"
    doc = json.loads(plan.read_text())
    doc["options"]["pending_window_days"] = 30
    edited.write_text(json.dumps(doc))
    run = cron(edited)
    assert run.returncode == 2 and "the plan file or a setting is wrong" in run.stderr
    assert "digest" in run.stderr or "edited" in run.stderr

    # A key added to the store after the review: refused.
    import boto3

    boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_key(
        CustomKeyStoreId=target["id"], Origin="EXTERNAL_KEY_STORE",
        XksKeyId="new-external-key")
    run = cron(plan)
    assert run.returncode == 4 and "refused by a safety check" in run.stderr, run.stderr


def test_the_systemd_unit_and_the_cronjob_need_no_region(emulator: Emulator,
                                                         tmp_path: Path) -> None:
    seed_one(emulator, keys=1)
    plan = tmp_path / "payments.json"
    assert ksdelete(emulator, "target", "--dry-run", "--save-plan", str(plan)).exit_code == 0
    env = env_with_only_credentials(tmp_path)
    unit = (EXAMPLES / "systemd" / "ksdelete-apply@.service").read_text()
    assert not [line for line in unit.splitlines() if "AWS_REGION" in line
                and not line.startswith("#")]  # no Region required
    (exec_start,) = [line.split("=", 1)[1] for line in unit.splitlines()
                     if line.startswith("ExecStart=")]
    command = exec_start.replace("/usr/local/bin/ksdelete", "ksdelete").replace(
        "/etc/ksdelete/plans/%i.json", str(plan))
    state = tmp_path / "var-lib"
    run = subprocess.run(["sh", "-c", command], env=env | {"XDG_STATE_HOME": str(state)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr  # SuccessExitStatus=3

    cronjob = (EXAMPLES / "kubernetes" / "cronjob.yaml").read_text()
    assert "name: AWS_REGION" not in cronjob
    script = re.search(r"- >-\n((?:\s{18}.*\n)+)", cronjob)
    assert script is not None
    command = " ".join(script.group(1).split()).replace("/plans/plan.json", str(plan))
    run = subprocess.run(["sh", "-c", command], env=env | {"XDG_STATE_HOME": str(state)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr  # exit 3 maps to a successful Job


def test_the_cron_script_says_deleted_once(emulator: Emulator, tmp_path: Path) -> None:
    store = emulator.seed({"region": "us-east-1", "stores": [
        {"name": "empty", "type": "EXTERNAL_KEY_STORE", "connection_state": "DISCONNECTED",
         "keys": 0}]})["stores"][0]
    plan = tmp_path / "payments.json"
    assert ksdelete(emulator, store["id"], "--dry-run", "--save-plan", str(plan)).exit_code == 0
    env = env_with_only_credentials(tmp_path) | {"KSDELETE_LOG_DIR": str(tmp_path / "log")}
    script = str(EXAMPLES / "cron" / "ksdelete-apply")
    runs = [subprocess.run([script, str(plan)], env=env, capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert "the store is deleted; remove this job" in runs[0].stdout
    assert runs[1].stdout == "" and runs[1].stderr == ""  # cron mails nothing after that
