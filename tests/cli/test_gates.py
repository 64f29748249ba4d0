"""Safety gates, the watch over the waiting period, the soak and the leftovers report: the real
CLI against the emulator, with an application using the keys through its own boto3 client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator

from .helpers import DAY, at_the_prompt, keys_by_id, ksdelete, mutations, said, seed_one

APP_KEY = "AKIAAPPLICATION0001"  # the application's access key: its own caller in CloudTrail


def client(emulator: Emulator, service: str = "kms", access_key: str = "testing") -> Any:
    return boto3.client(service, endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=access_key, aws_secret_access_key="testing",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


def app_uses(emulator: Emulator, key_id: str) -> str | None:
    """The application encrypts with the key: None on success, else the error code."""
    try:
        client(emulator, access_key=APP_KEY).encrypt(KeyId=key_id, Plaintext=b"payload")
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return None


def error_code(run: Any) -> str:
    """The gate's refusal reason (the error's code is "refused")."""
    store = run.store()
    assert store["error"]["code"] == "refused", store["error"]
    return str(store["phase"]["reason"])


# ---- preflight gates ----------------------------------------------------------------------

def test_a_recently_used_key_refuses_and_unused_for_waives(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    used = sorted(target["key_ids"])[0]
    assert app_uses(emulator, used) is None
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert error_code(run) == "recently-used"
    assert used in said(run.store()["error"])
    assert "Encrypt" in said(run.store()["error"])
    assert mutations(emulator) == []
    usage = {k["id"]: k["last_usage"] for k in run.store()["keys"]}
    assert usage[used]["operation"] == "Encrypt" and usage[used]["last_used"]
    # A use 31 days ago is outside the default 30 days; --unused-for 0 turns the gate off.
    emulator.advance(31 * DAY)
    assert ksdelete(emulator, "target", "--dry-run").exit_code == 0
    assert ksdelete(emulator, "target", "--dry-run", "--unused-for", "40").exit_code == 4
    waived = ksdelete(emulator, "target", "--yes", "--unused-for", "0", "--output", "json")
    assert waived.exit_code == 3, waived.stderr
    assert any("not_recently_used" in w for w in waived.store()["waivers"])


def test_grants_to_aws_services_refuse_until_allowed(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    granted = sorted(target["key_ids"])[1]
    client(emulator).create_grant(KeyId=granted, GranteePrincipal="rds.us-east-1.amazonaws.com",
                                  Operations=["Decrypt", "Encrypt"])
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert error_code(run) == "service-grants"
    assert granted in said(run.store()["error"])
    assert "rds.us-east-1.amazonaws.com" in said(run.store()["error"])
    assert mutations(emulator) == []
    allowed = ksdelete(emulator, "target", "--yes", "--allow-service-grants")
    assert allowed.exit_code == 3, allowed.stderr


def test_protected_tags_and_the_expected_key_count(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    tagged = sorted(target["key_ids"])[2]
    client(emulator).tag_resource(KeyId=tagged, Tags=[{"TagKey": "keep", "TagValue": "yes"}])
    before = len(mutations(emulator))
    protected = ksdelete(emulator, "target", "--yes", "--protect-tag", "keep=yes",
                         "--output", "json")
    assert protected.exit_code == 4 and error_code(protected) == "protected-tag"
    assert tagged in said(protected.store()["error"])
    assert ksdelete(emulator, "target", "--dry-run", "--protect-tag", "keep=no").exit_code == 0
    wrong = ksdelete(emulator, "target", "--yes", "--expect-keys", "2", "--output", "json")
    assert wrong.exit_code == 4 and error_code(wrong) == "unexpected-key-count"
    assert "--expect-keys 3" in said(wrong.store()["error"])
    assert len(mutations(emulator)) == before
    assert ksdelete(emulator, "target", "--yes", "--expect-keys", "3").exit_code == 3


def test_the_plan_shows_what_each_check_saw(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=1)["stores"][0]
    key_id = target["key_ids"][0]
    client(emulator).create_grant(KeyId=key_id, GranteePrincipal="arn:aws:iam::123456789012:"
                                  "role/app", Operations=["Decrypt"])
    client(emulator).tag_resource(KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "pay"}])
    run = ksdelete(emulator, "target", "--dry-run")
    assert run.exit_code == 0, run.stderr
    assert "last use: none recorded since" in run.stdout  # the dry run's plan: stdout
    assert "role/app: Decrypt" in run.stdout and "tags: team=pay" in run.stdout
    assert "check not_recently_used pass" in run.stdout


# ---- the watch over the waiting period -----------------------------------------------------

@pytest.mark.parametrize("on_use", ["cancel", "refuse"])
def test_an_attempt_to_use_a_pending_key_stops_the_next_run(emulator: Emulator,
                                                            on_use: str) -> None:
    target = seed_one(emulator, keys=3)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    wanted = sorted(target["key_ids"])[0]
    assert app_uses(emulator, wanted) in ("KMSInvalidStateException", "DisabledException")
    emulator.advance(DAY)
    run = ksdelete(emulator, "target", "--yes", "--on-use", on_use, "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert error_code(run) == "used-while-pending"
    message = said(run.store()["error"])
    assert wanted in message and "Encrypt" in message and APP_KEY in message
    keys = keys_by_id(emulator)
    others = set(target["key_ids"]) - {wanted}
    assert {keys[k]["KeyState"] for k in others} == {"PendingDeletion"}
    cancels = [c for c in mutations(emulator) if c["operation"] == "CancelKeyDeletion"]
    if on_use == "refuse":
        assert cancels == [] and keys[wanted]["KeyState"] == "PendingDeletion"
        return
    assert [c["key_id"].rsplit("/", 1)[-1] for c in cancels] == [wanted]
    assert keys[wanted]["KeyState"] == "Disabled"  # the caller still fails; the key is safe
    # Unattended runs stay off the key; a person who confirms again schedules it.
    assert ksdelete(emulator, "target", "--yes").exit_code == 4
    again = at_the_prompt(emulator, "target", keys=b"target\n")
    assert again.exit_code == 3, again.stderr
    assert keys_by_id(emulator)[wanted]["KeyState"] == "PendingDeletion"
    assert ksdelete(emulator, "target", "--yes").exit_code == 3


def test_attempts_before_the_current_scheduling_do_not_count(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=1)["stores"][0]
    key_id = target["key_ids"][0]
    kms = client(emulator)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert app_uses(emulator, key_id) is not None
    kms.cancel_key_deletion(KeyId=key_id)
    emulator.advance(DAY)
    # The failed use is in CloudTrail's window, but before ksdelete's scheduling: it was dealt
    # with (the deletion was cancelled by hand); only use after the current scheduling counts.
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    emulator.advance(DAY)
    assert ksdelete(emulator, "target", "--yes").exit_code == 3


# ---- --disable-first: the soak ------------------------------------------------------------

def test_a_clean_soak_disables_first_and_schedules_after_it(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    first = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--output", "json")
    assert first.exit_code == 3, first.stderr
    keys = keys_by_id(emulator)
    assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"Disabled"}
    assert not [c for c in mutations(emulator) if c["operation"] == "ScheduleKeyDeletion"]
    assert first.store()["phase"]["name"] == "soaking"
    emulator.advance(3 * DAY)
    middle = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--output", "json")
    assert middle.exit_code == 3 and middle.store()["phase"]["name"] == "soaking"
    emulator.advance(5 * DAY)
    after = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--output", "json")
    assert after.exit_code == 3, after.stderr
    keys = keys_by_id(emulator)
    assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"PendingDeletion"}
    # cancel brings them back to the state before the soak.
    assert ksdelete(emulator, "cancel", "target", "--yes", "--enable").exit_code == 0
    keys = keys_by_id(emulator)
    assert {keys[k]["KeyState"] for k in target["key_ids"]} == {"Enabled"}


def test_a_use_attempt_during_the_soak_refuses(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--disable-first", "7").exit_code == 3
    wanted = sorted(target["key_ids"])[1]
    assert app_uses(emulator, wanted) == "DisabledException"
    emulator.advance(8 * DAY)
    run = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert error_code(run) == "used-while-disabled" and wanted in said(run.store()["error"])
    assert not [c for c in mutations(emulator) if c["operation"] == "ScheduleKeyDeletion"]


def test_a_soak_refuses_a_disconnected_store(emulator: Emulator) -> None:
    seed_one(emulator, type="EXTERNAL_KEY_STORE", state="DISCONNECTED", keys=1)
    run = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--output", "json")
    assert run.exit_code == 4 and error_code(run) == "soak-impossible"
    assert "Unavailable" in said(run.store()["error"])


# ---- the leftovers report -------------------------------------------------------------------

def test_orphaned_material_after_a_disconnect_in_the_window(emulator: Emulator,
                                                           tmp_path: Path) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    store_id = target["id"]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    client(emulator).disconnect_custom_key_store(CustomKeyStoreId=store_id)
    emulator.advance(9 * DAY)  # the keys are deleted while the store is disconnected
    run = ksdelete(emulator, store_id, "--yes", "--allow-orphaned-key-material", "--wait",
                   "--poll-interval", "0.2s", "--output", "json")
    assert run.exit_code == 0, run.stderr
    left = run.store()["leftovers"]
    assert sorted(left["orphaned"]) == sorted(target["key_ids"])
    assert all(k["key_handles"] for k in left["keys"])
    assert any("backups" in note for note in left["notes"])
    report = ksdelete(emulator, "report", store_id, "--output", "json")
    assert report.exit_code == 0, report.stderr
    assert sorted(report.store()["leftovers"]["orphaned"]) == sorted(target["key_ids"])
    assert "ORPHANED key material" in ksdelete(emulator, "report", store_id).stdout


def test_a_connected_cloudhsm_store_leaves_no_orphaned_material(emulator: Emulator) -> None:
    emulator.configure(disconnect_seconds=0.5)
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    emulator.advance(9 * DAY)
    run = ksdelete(emulator, "target", "--yes", "--wait", "--poll-interval", "0.2s",
                   "--output", "json")
    assert run.exit_code == 0, run.stderr
    left = run.store()["leftovers"]
    assert left["orphaned"] == [] and left["unknown"] == []
    assert {k["material_deletion"] for k in left["keys"]} == {"SUCCESS"}
    assert len(left["keys"]) == len(target["key_ids"])


def test_an_external_store_reports_every_external_key_left(emulator: Emulator) -> None:
    emulator.configure(disconnect_seconds=0.5)
    target = seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    emulator.advance(9 * DAY)
    run = ksdelete(emulator, "target", "--yes", "--wait", "--poll-interval", "0.2s",
                   "--output", "json")
    assert run.exit_code == 0, run.stderr
    left = run.store()["leftovers"]
    assert len([k["external_key_id"] for k in left["keys"] if k["external_key_id"]]) == 2
    report = ksdelete(emulator, "report", target["id"])
    assert report.exit_code == 0
    assert report.stdout.count("external key ") >= 2  # the result: stdout


def test_report_on_a_store_nothing_is_known_of_is_an_error(emulator: Emulator) -> None:
    seed_one(emulator)
    run = ksdelete(emulator, "report", "cks-0000000000000000", "--output", "json")
    assert run.exit_code == 1


def test_on_use_ignore_waives_the_watch_and_says_so(emulator: Emulator) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    assert app_uses(emulator, sorted(target["key_ids"])[0]) is not None
    before = len(emulator.calls())
    run = ksdelete(emulator, "target", "--yes", "--on-use", "ignore", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert any(w.startswith("no_use_while_pending: --on-use ignore") for w in
               run.store()["waivers"])
    assert not [c for c in emulator.calls()[before:] if c["operation"] == "LookupEvents"]
    assert not [c for c in mutations(emulator) if c["operation"] == "CancelKeyDeletion"]


def test_connect_waives_the_soak_on_a_disconnected_cloudhsm_store(emulator: Emulator) -> None:
    emulator.configure(connect_seconds=0.5)
    target = seed_one(emulator, state="DISCONNECTED", keys=1)["stores"][0]
    refused = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--output", "json")
    assert refused.exit_code == 4 and error_code(refused) == "soak-impossible"
    run = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--connect",
                   "--poll-interval", "0.2s", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert keys_by_id(emulator)[target["key_ids"][0]]["KeyState"] == "Disabled"
    assert run.store()["phase"]["name"] == "soaking"
