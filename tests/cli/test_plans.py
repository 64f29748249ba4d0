"""Approved plans: `--dry-run --save-plan FILE`, then `apply FILE` acts exactly within what the
operator reviewed, on any machine (another state directory), run after run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from click.testing import CliRunner

from ksdelete import permissions, planfile
from ksdelete.cli import cli
from ksdelete.emulator import Emulator

from .helpers import (
    DAY,
    Run,
    at_the_prompt,
    keys_by_id,
    ksdelete,
    mutations,
    said,
    seed_one,
    validated,
)


def kms_client(emulator: Emulator) -> Any:
    return boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


def save(emulator: Emulator, path: Path, *stores: str, window: str = "7",
         extra: tuple[str, ...] = ()) -> Run:
    run = ksdelete(emulator, *stores, "--dry-run", "--save-plan", str(path),
                   "--pending-window-days", window, *extra)
    assert run.exit_code == 0, run.stderr
    return run


def apply(emulator: Emulator, path: Path, journal: Path, *args: str) -> Run:
    """`apply` on "another machine": its own journal (and lock directory)."""
    return ksdelete(emulator, "apply", str(path), "--journal", str(journal), "--output", "json",
                    "--poll-interval", "0.2s", *args)


def test_save_then_apply_from_another_machine_through_to_deletion(
        emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    path = tmp_path / "plan.json"
    before = mutations(emulator)
    saved = save(emulator, path, "target")
    assert mutations(emulator) == before  # a dry run changes nothing
    doc = json.loads(path.read_text())
    plan_id = doc["digest"][:12]
    assert f"Saved plan {plan_id} to {path}" in saved.stdout
    assert doc["schema_version"] == 1 and doc["account"] == "123456789012"
    assert doc["region"] == "us-east-1" and doc["endpoint_url"] == emulator.endpoint_url
    assert doc["created_by"].startswith("arn:aws:")
    assert doc["options"] == {"pending_window_days": 7, "connect": False,
                              "allow_orphaned_key_material": False, "unused_for_days": 30,
                              "allow_service_grants": False, "protect_tags": [],
                              "expect_keys": None, "max_keys": None, "on_use": "cancel",
                              "disable_first_days": 0}
    (store,) = doc["stores"]
    assert (store["id"], store["name"], store["type"], store["connection_state"]) == (
        target["id"], "target", "AWS_CLOUDHSM", "CONNECTED")
    assert sorted(k["id"] for k in store["keys"]) == sorted(target["key_ids"])
    assert all(k["arn"] and k["state"] == "Enabled" for k in store["keys"])
    assert {g["gate"] for g in store["gates"]} >= {"membership_known", "not_cancelled"}

    other = tmp_path / "other-machine" / "journal.jsonl"
    first = apply(emulator, path, other)  # no --yes, no terminal
    assert first.exit_code == 3, first.stderr
    assert first.json()["plan_id"] == plan_id and first.json()["command"] == "apply"
    # What a log pipeline joins runs on (schema_version 2).
    doc1 = first.json()
    assert doc1["schema_version"] == 2 and doc1["ksdelete_version"]
    assert (doc1["account"], doc1["region"]) == ("123456789012", "us-east-1")
    entries = [json.loads(line) for line in other.read_text().splitlines()]
    assert {e["run_id"] for e in entries} == {doc1["run_id"]}
    (confirm,) = [e for e in entries if e.get("operation") == "ConfirmPlan"]
    assert confirm["plan_id"] == plan_id  # the journal says which reviewed plan was applied
    phase = first.store()["phase"]
    assert phase["name"] == "keys-pending" and phase["keys_pending"] == phase["keys_total"] == 3
    assert phase["keys_not_scheduled"] == 0 and phase["earliest_deletion"] is not None
    assert phase["text"].startswith("keys-pending 3/3")
    keys = keys_by_id(emulator)
    assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"PendingDeletion"}

    again = apply(emulator, path, other)
    assert again.exit_code == 3 and again.store()["actions"] == []
    emulator.advance(8 * DAY)
    emulator.configure(disconnect_seconds=0.5)
    # A third machine finishes the job: the plan is all it needs.
    done = apply(emulator, path, tmp_path / "third" / "journal.jsonl")
    assert done.exit_code == 0, done.stderr
    assert done.store()["status"] == "deleted" and done.store()["phase"]["name"] == "deleted"
    assert done.json()["run_id"] != doc1["run_id"]
    assert target["id"] not in {s["CustomKeyStoreId"] for s in emulator.state()["stores"]}
    # Everything apply called is in `ksdelete iam-policy --apply-only`.
    allowed = set(permissions.actions(read_only=False, apply_only=True))
    service = {"LookupEvents": "cloudtrail"}  # the watch and the leftovers report
    assert {f"{service.get(c['operation'], 'kms')}:{c['operation']}"
            for c in emulator.calls()} <= allowed


def test_an_edited_plan_file_is_a_usage_error(emulator: Emulator, tmp_path: Path) -> None:
    seed_one(emulator, keys=2)
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    doc = json.loads(path.read_text())
    doc["options"]["pending_window_days"] = 30
    path.write_text(json.dumps(doc))
    before = mutations(emulator)
    run = apply(emulator, path, tmp_path / "j.jsonl")
    assert run.exit_code == 2
    assert "edited" in said(run.json()["error"])
    assert mutations(emulator) == before


def test_a_missing_unreadable_or_unknown_plan_file_is_a_usage_error(
        emulator: Emulator, tmp_path: Path) -> None:
    seed_one(emulator, keys=1)
    missing = apply(emulator, tmp_path / "nope.json", tmp_path / "j.jsonl")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert apply(emulator, garbage, tmp_path / "j.jsonl").exit_code == 2
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    doc = json.loads(path.read_text())
    doc["schema_version"] = 99
    doc["digest"] = planfile.digest_of(doc)
    path.write_text(json.dumps(doc))
    future = apply(emulator, path, tmp_path / "j.jsonl")
    assert future.exit_code == 2 and "schema_version 99" in future.stderr
    assert mutations(emulator) == []


def test_a_plan_for_another_account_or_region_is_refused(emulator: Emulator,
                                                         tmp_path: Path) -> None:
    seed_one(emulator, keys=2)
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    # Other credentials' account: the plan (re-signed, as if made there) is for 111122223333.
    doc = json.loads(path.read_text())
    doc["account"] = "111122223333"
    doc["digest"] = planfile.digest_of(doc)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(doc))
    before = emulator.state()
    run = apply(emulator, elsewhere, tmp_path / "j.jsonl")
    assert run.exit_code == 4, run.stderr
    assert "account 123456789012, but the plan" in said(run.json()["error"])
    # Another Region (the last --region wins over the helper's).
    result = CliRunner().invoke(cli, ["apply", str(path), "--endpoint-url", emulator.endpoint_url,
                                      "--region", "eu-west-1", "--journal",
                                      str(tmp_path / "j.jsonl"), "--output", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 4, result.stderr
    assert "the Region is eu-west-1" in said(validated(result.stdout)["error"])
    assert emulator.state() == before


def test_a_key_added_after_the_plan_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    new = kms_client(emulator).create_key(CustomKeyStoreId=target["id"], Origin="AWS_CLOUDHSM")
    new_id = new["KeyMetadata"]["KeyId"]
    before = emulator.state()
    run = apply(emulator, path, tmp_path / "j.jsonl")
    assert run.exit_code == 4, run.stderr
    assert run.store()["status"] == "refused"
    assert new_id in said(run.store()["error"])
    assert "not in the saved plan" in said(run.store()["error"])
    assert emulator.state() == before
    # A key the plan does not name that someone already scheduled is no obstacle.
    kms_client(emulator).schedule_key_deletion(KeyId=new_id, PendingWindowInDays=7)
    ok = apply(emulator, path, tmp_path / "j.jsonl")
    assert ok.exit_code == 3, ok.stderr
    assert {keys_by_id(emulator)[k]["KeyState"] for k in target["key_ids"]} == {
        "PendingDeletion"}


def test_a_cancel_between_two_applies_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    assert apply(emulator, path, tmp_path / "a.jsonl").exit_code == 3
    assert ksdelete(emulator, "cancel", "target", "--yes").exit_code == 0
    before = emulator.state()
    run = apply(emulator, path, tmp_path / "b.jsonl")  # another machine: the marks tell
    assert run.exit_code == 4, run.stderr
    message = said(run.store()["error"])
    assert "cancelled" in message
    assert emulator.state() == before
    assert {keys_by_id(emulator)[k]["KeyState"] for k in target["key_ids"]} == {"Disabled"}
    # The way on that the refusal names: a person confirms at a terminal; then the same plan
    # applies again, run after run.
    command = f"ksdelete {target['id']}"
    assert f"run `{command}` at a terminal" in message
    confirmed = at_the_prompt(emulator, target["id"], "--pending-window-days", "7",
                              "--journal", str(tmp_path / "b.jsonl"), keys=b"target\n")
    assert confirmed.exit_code == 3, confirmed.stderr
    assert apply(emulator, path, tmp_path / "b.jsonl").exit_code == 3
    assert {keys_by_id(emulator)[k]["KeyState"] for k in target["key_ids"]} == {
        "PendingDeletion"}


def test_a_deleted_store_is_done_and_a_new_store_with_its_name_is_untouched(
        emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=1)["stores"][0]
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    assert apply(emulator, path, tmp_path / "a.jsonl").exit_code == 3
    emulator.advance(8 * DAY)
    emulator.configure(disconnect_seconds=0.5)
    assert apply(emulator, path, tmp_path / "a.jsonl").exit_code == 0
    kms = kms_client(emulator)
    new_id = kms.create_custom_key_store(
        CustomKeyStoreName="target", CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint="https://xks.example.com", XksProxyUriPath="/kms/xks/v1",
        XksProxyConnectivity="PUBLIC_ENDPOINT",
        XksProxyAuthenticationCredential={"AccessKeyId": "ABCDEFGHIJKLMNOPQRST",
                                          "RawSecretAccessKey": "a" * 43})["CustomKeyStoreId"]
    before = emulator.state()
    # From another machine (no journal): the plan is the evidence; the name is never looked up.
    run = apply(emulator, path, tmp_path / "b.jsonl")
    assert run.exit_code == 0, run.stderr
    assert run.store()["status"] == "deleted" and run.store()["id"] is None
    assert run.store()["ref"] == target["id"]
    assert emulator.state() == before
    assert new_id in {s["CustomKeyStoreId"] for s in before["stores"]}


def test_save_plan_needs_a_dry_run(emulator: Emulator, tmp_path: Path) -> None:
    seed_one(emulator, keys=1)
    run = ksdelete(emulator, "target", "--yes", "--save-plan", str(tmp_path / "p.json"))
    assert run.exit_code == 2 and "--save-plan" in run.stderr
    assert mutations(emulator) == [] and not (tmp_path / "p.json").exists()


def test_a_refused_dry_run_saves_no_plan(emulator: Emulator, tmp_path: Path) -> None:
    seed_one(emulator, keys=2, state="DISCONNECTED")
    path = tmp_path / "plan.json"
    run = ksdelete(emulator, "target", "--dry-run", "--save-plan", str(path))
    assert run.exit_code == 4
    assert "the plan was not saved" in run.stdout and not path.exists()


def test_show_plan_renders_the_saved_plan_without_aws(emulator: Emulator,
                                                       tmp_path: Path) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    path = tmp_path / "plan.json"
    saved = save(emulator, path, "target")
    plan_id = json.loads(path.read_text())["digest"][:12]
    calls = len(emulator.calls())
    text = CliRunner().invoke(cli, ["show-plan", str(path)], catch_exceptions=False)
    assert text.exit_code == 0, text.stderr
    assert f"plan {plan_id} ({path})" in text.stdout
    assert f"store {target['id']} (target)" in text.stdout
    assert all(f"key {k} Enabled" in text.stdout for k in target["key_ids"])
    assert "ScheduleKeyDeletion for 2 key(s) (7-day window)" in text.stdout
    assert "account 123456789012, Region us-east-1" in text.stdout
    as_json = CliRunner().invoke(cli, ["show-plan", str(path), "--output", "json"],
                                 catch_exceptions=False)
    assert as_json.exit_code == 0
    assert len(emulator.calls()) == calls  # no AWS call at all
    doc = validated(as_json.stdout)
    dry = validated(ksdelete(emulator, "target", "--dry-run", "--output", "json",
                              "--pending-window-days", "7").stdout)
    assert doc["plan_id"] == plan_id and doc["command"] == "show-plan"
    store, live = doc["stores"][0], dry["stores"][0]
    for field in ("id", "name", "type", "status", "keys", "plan", "gates", "warnings"):
        assert store[field] == live[field], field
    assert saved.exit_code == 0
    missing = CliRunner().invoke(cli, ["show-plan", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_a_plan_for_aws_is_refused_against_another_endpoint(emulator: Emulator,
                                                            tmp_path: Path) -> None:
    """A plan made against AWS (no endpoint recorded) applied where AWS_ENDPOINT_URL or
    --endpoint-url points elsewhere (here: the emulator) must not report its store `deleted`
    because that other endpoint does not know it: refused, exit 4, before any call."""
    seed_one(emulator, keys=2)
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    doc = json.loads(path.read_text())
    doc["endpoint_url"] = None  # as if made against AWS's own endpoint
    doc["stores"][0]["id"] = "cks-0123456789abcdef0"  # a store the emulator does not have
    doc["digest"] = planfile.digest_of(doc)
    path.write_text(json.dumps(doc))
    calls = len(emulator.calls())
    run = apply(emulator, path, tmp_path / "j.jsonl")
    assert run.exit_code == 4, run.stdout
    assert run.json()["plan_id"] == doc["digest"][:12] and run.json()["stores"] == []
    message = said(run.json()["error"])
    assert "the plan" in message and "AWS's own KMS endpoint" in message
    assert emulator.endpoint_url in message
    assert len(emulator.calls()) == calls  # not even GetCallerIdentity


def test_a_plan_for_one_endpoint_is_refused_against_another(emulator: Emulator,
                                                            tmp_path: Path) -> None:
    seed_one(emulator, keys=2)
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    journal = str(tmp_path / "j.jsonl")
    for elsewhere in ("http://127.0.0.1:9", "https://kms.us-east-1.amazonaws.com"):
        result = CliRunner().invoke(cli, ["apply", str(path), "--endpoint-url", elsewhere,
                                          "--region", "us-east-1", "--journal", journal,
                                          "--output", "json"], catch_exceptions=False)
        assert result.exit_code == 4, result.stderr
        message = said(validated(result.stdout)["error"])
        assert f"the plan's endpoint: {emulator.endpoint_url}" in message, message
        assert f"--endpoint-url {emulator.endpoint_url}" in result.stderr
    # The plan's own endpoint, spelled with a trailing slash, is the same endpoint.
    same = ksdelete(emulator, "apply", str(path), "--journal", journal, "--output", "json",
                    "--endpoint-url", emulator.endpoint_url + "/")
    assert same.exit_code == 3, same.stderr
    assert mutations(emulator)


def test_aws_endpoints_are_recorded_as_aws() -> None:
    from ksdelete.planner import service_endpoint

    assert service_endpoint("https://kms.eu-west-1.amazonaws.com") is None
    assert service_endpoint("https://kms-fips.us-east-1.amazonaws.com/") is None
    assert service_endpoint("https://vpce-0a1b.kms.us-east-1.vpce.amazonaws.com") is None
    assert service_endpoint("https://kms.cn-north-1.amazonaws.com.cn") is None
    # Only a host under AWS's domains is AWS's; the rest is kept, normalised.
    assert service_endpoint("https://kms.us-east-1.amazonaws.com.example.net") == \
        "https://kms.us-east-1.amazonaws.com.example.net"
    assert service_endpoint("HTTP://LocalHost:4566/") == "http://localhost:4566"
    assert service_endpoint("https://proxy.example:443/kms") == "https://proxy.example/kms"


def test_a_key_pending_in_the_plan_and_cancelled_since_is_refused(emulator: Emulator,
                                                                  tmp_path: Path) -> None:
    """The reviewer saw this key already pending deletion (the plan schedules only the
    others); someone cancelled it since, outside ksdelete (no mark on the key). `apply` must
    not schedule it again: the review never approved scheduling it."""
    target = seed_one(emulator, keys=2)["stores"][0]
    kms = kms_client(emulator)
    first, second = target["key_ids"]
    kms.schedule_key_deletion(KeyId=first, PendingWindowInDays=7)
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    (store,) = json.loads(path.read_text())["stores"]
    assert [s["keys"] for s in store["steps"] if s["step"] == "ScheduleKeyDeletion"] == [[second]]
    kms.cancel_key_deletion(KeyId=first)
    before = emulator.state()
    run = apply(emulator, path, tmp_path / "j.jsonl")
    assert run.exit_code == 4, run.stderr
    error = said(run.store()["error"])
    assert first in error and "no longer pending" in error
    assert f"ksdelete {target['id']}" in error  # how a person takes it from here
    assert emulator.state() == before
    assert keys_by_id(emulator)[first]["KeyState"] == "Disabled"


def test_a_plan_file_that_is_not_a_regular_file_or_too_large_is_a_usage_error(
        emulator: Emulator, tmp_path: Path) -> None:
    """A FIFO (or /dev/zero, /dev/stdin) used to hang a cron job forever, or fill its memory;
    a symlink to a plan (a Kubernetes ConfigMap mount) is fine."""
    import os
    import subprocess

    from .helpers import KSDELETE, env_for

    seed_one(emulator, keys=1)
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    for bad in (fifo, Path("/dev/zero")):
        for command in ("apply", "show-plan"):
            proc = subprocess.run([KSDELETE, command, str(bad), "--output", "json"],
                                  env=env_for(emulator), capture_output=True, text=True,
                                  timeout=30)
            assert proc.returncode == 2, proc.stderr
            assert "not a regular file" in said(validated(proc.stdout)["error"])
    huge = tmp_path / "huge.json"
    with huge.open("wb") as out:
        out.truncate(planfile.MAX_PLAN_BYTES + 1)
    run = apply(emulator, huge, tmp_path / "j.jsonl")
    assert run.exit_code == 2 and "larger than" in said(run.json()["error"])
    path = tmp_path / "real" / "plan.json"
    path.parent.mkdir()
    save(emulator, path, "target")
    link = tmp_path / "link.json"
    link.symlink_to(path)
    assert apply(emulator, link, tmp_path / "j.jsonl").exit_code == 3
    assert mutations(emulator)


def _resealed(path: Path, edit: Any) -> Path:
    """The saved plan, edited by `edit(doc)` and its digest recomputed (anyone can)."""
    doc = json.loads(path.read_text())
    edit(doc)
    doc["digest"] = planfile.digest_of(doc)
    out = path.with_name(f"edited-{len(list(path.parent.iterdir()))}.json")
    out.write_text(json.dumps(doc))
    return out


def test_a_plan_file_ksdelete_could_not_have_written_is_a_usage_error(
        emulator: Emulator, tmp_path: Path) -> None:
    """Whatever its digest says: a duplicated JSON member (a reviewer reading the raw file sees
    the first, json.loads keeps the last), a store twice, no store, options of the wrong type
    ("false" is truthy) or out of range, a malformed store or key ID."""
    seed_one(emulator, keys=2)
    path = tmp_path / "plan.json"
    save(emulator, path, "target", window="30")
    doc = json.loads(path.read_text())
    sneaky = dict(doc)
    sneaky["options"] = {**doc["options"], "pending_window_days": 7}
    sneaky["digest"] = planfile.digest_of(sneaky)
    text = json.dumps(sneaky)
    duplicated = tmp_path / "duplicated.json"  # shows 30 days first, then 7
    duplicated.write_text(text.replace('"options": ', f'"options": {json.dumps(doc["options"])}, '
                                       '"options": ', 1))
    bad: list[Path] = [
        duplicated,
        _resealed(path, lambda d: d["stores"].append(d["stores"][0])),
        _resealed(path, lambda d: d.update(stores=[])),
        _resealed(path, lambda d: d["options"].update(connect="false")),
        _resealed(path, lambda d: d["options"].update(pending_window_days=3)),
        _resealed(path, lambda d: d["stores"][0].update(id="*")),
        _resealed(path, lambda d: d["stores"][0]["keys"][0].update(id=None)),
        _resealed(path, lambda d: d.update(account="1234")),
    ]
    for plan in bad:
        run = apply(emulator, plan, tmp_path / "j.jsonl")
        assert run.exit_code == 2, (plan.read_text()[:300], run.stderr)
        assert mutations(emulator) == [], plan
        shown = CliRunner().invoke(cli, ["show-plan", str(plan)])
        assert shown.exit_code == 2, shown.stderr
    assert "duplicate" in apply(emulator, duplicated, tmp_path / "j.jsonl").stderr


def test_no_option_of_apply_widens_the_plan(emulator: Emulator, tmp_path: Path) -> None:
    """The window, the waivers and the guards are the plan's: `apply` takes none of `delete`'s
    options that could change them (nor --yes, nor --dry-run), before or after its name."""
    seed_one(emulator, keys=2)
    path = tmp_path / "plan.json"
    save(emulator, path, "target")
    for extra in (["--pending-window-days", "30"], ["--include-new-keys"], ["--connect"],
                  ["--allow-orphaned-key-material"], ["--yes"], ["--dry-run"],
                  ["--account-id", "123456789012"], ["--missing-ok"]):
        after = apply(emulator, path, tmp_path / "j.jsonl", *extra)
        assert after.exit_code == 2, (extra, after.stderr)
        before = ksdelete(emulator, *extra, "apply", str(path))
        assert before.exit_code == 2, (extra, before.stderr)
    assert mutations(emulator) == []


def test_ctrl_c_during_apply_then_apply_again(emulator: Emulator, tmp_path: Path) -> None:
    """SIGINT while scheduling: exit 130, the JSON names the plan and every change; no key is
    left marked but not scheduled, so the next apply goes on (it is not refused as cancelled)."""
    import signal
    import subprocess
    import time

    from .helpers import KSDELETE, env_for

    target = seed_one(emulator, keys=30)["stores"][0]
    path = tmp_path / "plan.json"
    # The gates' reads (GetKeyLastUsage at 5/s, the watch at 2/s) are not under test here.
    save(emulator, path, "target", extra=("--unused-for", "0", "--on-use", "ignore"))
    plan_id = json.loads(path.read_text())["digest"][:12]
    emulator.configure(latency_ms=100)
    proc = subprocess.Popen([KSDELETE, "apply", str(path), "--output", "json"],
                            env=env_for(emulator), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "schedule: running" in line:
            break
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    doc = validated(out)
    assert doc["plan_id"] == plan_id and doc["stores"][0]["status"] == "interrupted"
    states = [keys_by_id(emulator)[k]["KeyState"] for k in target["key_ids"]]
    assert "PendingDeletion" in states and "Enabled" in states  # stopped half way
    emulator.configure(latency_ms=0)
    again = apply(emulator, path, tmp_path / "j.jsonl")
    assert again.exit_code == 3, again.stderr
    assert {keys_by_id(emulator)[k]["KeyState"] for k in target["key_ids"]} == {
        "PendingDeletion"}
