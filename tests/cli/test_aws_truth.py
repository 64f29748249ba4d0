"""Gates that hold on AWS's real rules (issue 18): the iam-policy Deny on
kms:TrailingDaysWithoutKeyUsage, AWS's 50-tag limit, the post-cancel tag write."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.emulator import Emulator

from .helpers import DAY, at_the_prompt, keys_by_id, ksdelete, mutations, said, seed_one


def client(emulator: Emulator) -> Any:
    return boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


def key_policy_with(statement: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*",
         "Resource": "*"},
        {**statement, "Principal": {"AWS": "*"}}]})


# ---- iam-policy --unused-for: a Deny AWS enforces ------------------------------------------

def test_the_unused_for_deny_refuses_a_young_key_and_the_error_says_why(
        emulator: Emulator) -> None:
    """The Deny that `iam-policy --unused-for 30` prints, in a key policy that also allows
    kms:* (an Allow with a condition would refuse nothing there): the emulator, like the one
    3rd-party test on AWS, counts a never-used key's trailing days from its creation, so a
    key created 2 days ago is refused; ksdelete says this condition may be why."""
    doc = json.loads(CliRunner().invoke(cli, ["iam-policy", "--unused-for", "30"]).stdout)
    deny = next(s for s in doc["Statement"] if s["Effect"] == "Deny")
    # 2.5 days: whole days, whatever second the Date header rounds to.
    young = seed_one(emulator, keys=1, created_days_ago=2.5)["stores"][0]["key_ids"][0]
    kms = client(emulator)
    kms.put_key_policy(KeyId=young, PolicyName="default", Policy=key_policy_with(deny))
    run = ksdelete(emulator, "target", "--yes", "--unused-for", "0", "--output", "json")
    assert run.exit_code == 1, run.stderr
    assert keys_by_id(emulator)[young]["KeyState"] == "Enabled"
    message = run.stderr
    assert "AccessDeniedException" in message or "not authorized" in message
    assert "kms:TrailingDaysWithoutKeyUsage" in message
    assert "created 2 day(s) ago" in message
    assert "iam-policy --unused-for" in message


def test_the_unused_for_deny_lets_an_old_unused_key_through(emulator: Emulator) -> None:
    doc = json.loads(CliRunner().invoke(cli, ["iam-policy", "--unused-for", "30"]).stdout)
    deny = next(s for s in doc["Statement"] if s["Effect"] == "Deny")
    old = seed_one(emulator, keys=1, created_days_ago=40)["stores"][0]["key_ids"][0]
    client(emulator).put_key_policy(KeyId=old, PolicyName="default",
                                    Policy=key_policy_with(deny))
    run = ksdelete(emulator, "target", "--yes", "--unused-for", "0")
    assert run.exit_code == 3, run.stderr
    assert keys_by_id(emulator)[old]["KeyState"] == "PendingDeletion"


# ---- AWS's 50 tags per key ------------------------------------------------------------------

def fifty_tags() -> dict[str, str]:
    return {f"team-{i:02d}": "x" for i in range(50)}


def test_a_key_that_cannot_take_the_mark_is_refused_before_anything_changes(
        emulator: Emulator) -> None:
    out = seed_one(emulator, keys=3, per_key=[{"tags": fifty_tags()}])
    full = out["stores"][0]["key_ids"][0]
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4, run.stderr
    store = run.store()
    assert store["phase"]["reason"] == "too-many-tags"
    message = said(store["error"])
    assert full in message and "50" in message and "UntagResource" in message
    assert mutations(emulator) == []  # not one key scheduled, not one tagged
    verdicts = {g["gate"]: g["verdict"] for g in store["gates"]}
    assert verdicts["room_for_marks"] == "refused"
    # The same gate in a dry run, and after one tag is removed the run goes on.
    assert ksdelete(emulator, "target", "--dry-run").exit_code == 4
    client(emulator).untag_resource(KeyId=full, TagKeys=["team-00"])
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    assert keys_by_id(emulator)[full]["KeyState"] == "PendingDeletion"


def test_a_soak_needs_room_for_two_marks(emulator: Emulator) -> None:
    tags = fifty_tags()
    del tags["team-00"]  # 49 tags: room for the scheduled mark, not for the soak's as well
    out = seed_one(emulator, keys=2, per_key=[{"tags": tags}])
    crowded = out["stores"][0]["key_ids"][0]
    assert ksdelete(emulator, "target", "--yes", "--dry-run").exit_code == 0
    run = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert run.store()["phase"]["reason"] == "too-many-tags"
    assert crowded in said(run.store()["error"])
    assert mutations(emulator) == []


# ---- the post-cancel tag write: eventual consistency --------------------------------------

def test_the_cancel_mark_is_retried_while_the_key_still_looks_pending(
        emulator: Emulator) -> None:
    """Right after CancelKeyDeletion, TagResource may still see the key pending (AWS is
    eventually consistent): the emulator answers KMSInvalidStateException to the first
    TagResource after a cancel; ksdelete retries and records its mark, no warning."""
    emulator.configure(tag_after_cancel_failures=2)
    target = seed_one(emulator, keys=2)["stores"][0]
    assert ksdelete(emulator, "target", "--yes").exit_code == 3
    run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json")
    assert run.exit_code == 0, run.stderr
    assert "could not record the cancel" not in run.stderr
    kms = client(emulator)
    for key_id in target["key_ids"]:
        tags = {t["TagKey"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
        assert "ksdelete:cancelled" in tags
    failed = [c for c in emulator.calls()
              if c["operation"] == "TagResource" and c["status"] != 200]
    assert len(failed) == 2 * len(target["key_ids"])  # the retries really happened


def test_the_watch_cancel_mark_is_retried_too(emulator: Emulator) -> None:
    emulator.configure(tag_after_cancel_failures=1)
    target = seed_one(emulator, keys=1)["stores"][0]
    key_id = target["key_ids"][0]
    assert ksdelete(emulator, "target", "--yes", "--pending-window-days", "7").exit_code == 3
    app = boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="AKIAAPPLICATION0001", aws_secret_access_key="x",
                       config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    with contextlib.suppress(ClientError):  # the failure is the point
        app.encrypt(KeyId=key_id, Plaintext=b"payload")
    emulator.advance(DAY)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert keys_by_id(emulator)[key_id]["KeyState"] != "PendingDeletion"
    assert not any("could not record the cancel" in w for w in run.store()["warnings"])
    tags = {t["TagKey"] for t in client(emulator).list_resource_tags(KeyId=key_id)["Tags"]}
    assert "ksdelete:cancelled" in tags


# ---- the soak (--disable-first) -----------------------------------------------------------

def store_state(emulator: Emulator, store_id: str) -> str:
    stores = client(emulator).describe_custom_key_stores(CustomKeyStoreId=store_id)
    return str(stores["CustomKeyStores"][0]["ConnectionState"])


def test_a_soak_with_connect_connects_a_disconnected_external_key_store(
        emulator: Emulator) -> None:
    """--connect lifted the refusal for a disconnected external key store but never connected
    it: the keys stayed Unavailable, every use failed anyway, and the soak proved nothing."""
    emulator.configure(connect_seconds=0.5)
    target = seed_one(emulator, type="EXTERNAL_KEY_STORE", state="DISCONNECTED",
                      keys=1)["stores"][0]
    run = ksdelete(emulator, "target", "--yes", "--disable-first", "7", "--connect",
                   "--poll-interval", "0.2s", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert store_state(emulator, target["id"]) == "CONNECTED"
    assert "ConnectCustomKeyStore" in [c["operation"] for c in mutations(emulator)]
    assert keys_by_id(emulator)[target["key_ids"][0]]["KeyState"] == "Disabled"
    assert run.store()["phase"]["name"] == "soaking"


def soak_mark(emulator: Emulator, key_id: str) -> str:
    tags = client(emulator).list_resource_tags(KeyId=key_id)["Tags"]
    return str(next(t["TagValue"] for t in tags if t["TagKey"] == "ksdelete:disabled"))


@pytest.mark.parametrize("edit", ["unparsable", "backdated", "shortened"])
def test_an_edited_soak_mark_does_not_end_the_soak(emulator: Emulator, tmp_path: Path,
                                                   edit: str) -> None:
    """The soak's end is checked against CloudTrail's DisableKey and the journal, not only
    against the mark, which anyone who can tag the key can edit. The soak began on another
    machine (another journal), except for the shortened one: CloudTrail tells when a soak
    began, only the journal (or the run's own --disable-first) how long it lasts."""
    target = seed_one(emulator, keys=1)["stores"][0]
    key_id = target["key_ids"][0]
    journal = [] if edit == "shortened" else ["--journal", str(tmp_path / "other.jsonl")]
    assert ksdelete(emulator, "target", "--yes", "--disable-first", "30",
                    *journal).exit_code == 3
    mark = soak_mark(emulator, key_id)
    stamp, rest = mark.split(" ", 1)
    edited = {"unparsable": f"garbage {rest}",
              "backdated": f"2026-01-01T00:00:00Z {rest}",
              "shortened": f"{stamp} {rest.replace('days=30', 'days=1')}"}[edit]
    client(emulator).tag_resource(KeyId=key_id,
                                  Tags=[{"TagKey": "ksdelete:disabled", "TagValue": edited}])
    emulator.advance(2 * DAY)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert run.store()["phase"]["name"] == "soaking", run.store()["phase"]
    assert keys_by_id(emulator)[key_id]["KeyState"] == "Disabled"
    assert not [c for c in mutations(emulator) if c["operation"] == "ScheduleKeyDeletion"]
    # After the 30 days CloudTrail shows, the soak ends (the mark's days cannot shorten it).
    emulator.advance(29 * DAY)
    done = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert done.exit_code == 3, done.stderr
    assert keys_by_id(emulator)[key_id]["KeyState"] == "PendingDeletion"


def test_disable_first_is_capped_below_cloudtrails_90_days(emulator: Emulator) -> None:
    seed_one(emulator, keys=1)
    for days in ("90", "120", "365"):
        run = ksdelete(emulator, "target", "--dry-run", "--disable-first", days)
        assert run.exit_code == 2, (days, run.stderr)
        assert "85" in run.stderr
    assert ksdelete(emulator, "target", "--dry-run", "--disable-first", "85").exit_code == 0


def test_restarting_a_broken_soak_at_a_terminal_soaks_the_key_again(
        emulator: Emulator) -> None:
    """The soak-broken advice (a person confirms at a terminal) must start the key's soak
    again, not schedule it at once, also when that run has no --disable-first."""
    target = seed_one(emulator, keys=1)["stores"][0]
    key_id = target["key_ids"][0]
    assert ksdelete(emulator, "target", "--yes", "--disable-first", "7").exit_code == 3
    client(emulator).enable_key(KeyId=key_id)  # someone needs it back
    emulator.advance(8 * DAY)
    refused = ksdelete(emulator, "target", "--yes", "--unused-for", "0", "--output", "json")
    assert refused.exit_code == 4 and refused.store()["phase"]["reason"] == "soak-broken"
    assert "soak starts again" in said(refused.store()["error"])
    again = at_the_prompt(emulator, "target", "--unused-for", "0", keys=b"target\n")
    assert again.exit_code == 3, again.stderr
    assert keys_by_id(emulator)[key_id]["KeyState"] == "Disabled"  # soaking again
    assert not [c for c in mutations(emulator) if c["operation"] == "ScheduleKeyDeletion"]
    assert "days=7" in soak_mark(emulator, key_id)
    emulator.advance(8 * DAY)
    done = ksdelete(emulator, "target", "--yes", "--unused-for", "0")
    assert done.exit_code == 3, done.stderr
    assert keys_by_id(emulator)[key_id]["KeyState"] == "PendingDeletion"
