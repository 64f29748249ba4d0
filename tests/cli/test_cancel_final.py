"""A cancel is final wherever it came from, and a plan is all or nothing (issue 17).

Each test reproduces one finding over HTTP against the emulator: the real CLI, real boto3. A
"machine without the journal" is a run with another --journal (its own state directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ksdelete.emulator import Emulator

from .helpers import DAY, Run, at_the_prompt, keys_by_id, ksdelete, mutations, said, seed_one
from .test_gates import client


def yes(emulator: Emulator, *args: str, journal: Path | None = None) -> Run:
    extra = ("--journal", str(journal)) if journal else ()
    return ksdelete(emulator, "target", "--yes", "--pending-window-days", "7", "--output",
                    "json", *extra, *args)


def state(emulator: Emulator, key_id: str) -> str:
    return str(keys_by_id(emulator)[key_id]["KeyState"])


def schedules(emulator: Emulator, since: int = 0) -> list[str]:
    """The keys ScheduleKeyDeletion was called for, from the `since`-th mutation on."""
    return [c["key_id"].rsplit("/", 1)[-1] for c in mutations(emulator)[since:]
            if c["operation"] == "ScheduleKeyDeletion"]


def refused_for(run: Run, key_id: str) -> str:
    assert run.exit_code == 4, run.stderr
    store = run.store()
    assert store["status"] == "refused", store
    message = str(said(store["error"]))
    assert key_id in message, message
    return message


# ---- item 1 (a): a hand cancel of a key ksdelete did not schedule, with --yes ---------------

def _hand_scheduled_then_cancelled(emulator: Emulator) -> tuple[str, list[str]]:
    """K1 scheduled by hand; `--yes` schedules K2 and K3 (its confirmation sees K1 pending);
    then the owner cancels K1 by hand. Returns K1 and the others."""
    target = seed_one(emulator, keys=3)["stores"][0]
    first, *others = target["key_ids"]
    kms = client(emulator)
    kms.schedule_key_deletion(KeyId=first, PendingWindowInDays=7)
    since = len(mutations(emulator))
    run = yes(emulator)
    assert run.exit_code == 3, run.stderr
    assert sorted(schedules(emulator, since)) == sorted(others)
    emulator.advance(DAY)
    kms.cancel_key_deletion(KeyId=first)
    return first, others


def test_a_hand_cancel_of_a_key_the_confirmation_saw_pending_stays_cancelled(
        emulator: Emulator) -> None:
    first, _ = _hand_scheduled_then_cancelled(emulator)
    before = mutations(emulator)
    run = yes(emulator)
    message = refused_for(run, first)
    assert "cancelled" in message
    assert "CancelKeyDeletion by arn:aws:" in message  # who and when, from CloudTrail
    assert run.store()["phase"]["reason"] == "cancelled-keys"
    assert mutations(emulator) == before  # not even a mark
    assert state(emulator, first) == "Disabled"


def test_a_hand_cancel_stays_cancelled_on_a_machine_without_the_journal(
        emulator: Emulator, tmp_path: Path) -> None:
    """No local memory: CloudTrail's CancelKeyDeletion says who cancelled it, and when."""
    first, _ = _hand_scheduled_then_cancelled(emulator)
    before = mutations(emulator)
    run = yes(emulator, journal=tmp_path / "elsewhere" / "journal.jsonl")
    message = refused_for(run, first)
    assert "cancelled" in message
    assert "CancelKeyDeletion by arn:aws:" in message  # who, from CloudTrail
    assert emulator.now().strftime("%Y-%m-%d") in message  # and when
    assert mutations(emulator) == before
    assert state(emulator, first) == "Disabled"


def test_only_a_person_at_the_prompt_schedules_a_hand_cancelled_key_again(
        emulator: Emulator, tmp_path: Path) -> None:
    first, _ = _hand_scheduled_then_cancelled(emulator)
    run = at_the_prompt(emulator, "target", "--pending-window-days", "7", "--journal",
                        str(tmp_path / "elsewhere.jsonl"), keys=b"target\n")
    assert f"then cancelled by someone: {first}" in run.stderr
    assert run.exit_code == 3, run.stderr
    assert state(emulator, first) == "PendingDeletion"
    # Marked, although AWS still saw it pending for a moment after the cancel: a later cancel
    # of it is seen on every machine.
    tags = client(emulator).list_resource_tags(KeyId=first)["Tags"]
    assert "ksdelete:scheduled" in {t["TagKey"] for t in tags}


# ---- item 1 (b): the same with `apply` of a saved plan ---------------------------------------

def _plan_applied_then_hand_cancelled(emulator: Emulator, tmp_path: Path) -> tuple[Path, str]:
    """The plan is saved while K1 is Enabled; K1 is scheduled by hand; the first `apply`
    schedules the others (its confirmation sees K1 pending); then K1 is cancelled by hand."""
    target = seed_one(emulator, keys=3)["stores"][0]
    first, *others = target["key_ids"]
    path = tmp_path / "plan.json"
    saved = ksdelete(emulator, "target", "--dry-run", "--save-plan", str(path),
                     "--pending-window-days", "7")
    assert saved.exit_code == 0, saved.stderr
    kms = client(emulator)
    kms.schedule_key_deletion(KeyId=first, PendingWindowInDays=7)
    since = len(mutations(emulator))
    run = ksdelete(emulator, "apply", str(path), "--output", "json")
    assert run.exit_code == 3, run.stderr
    assert sorted(schedules(emulator, since)) == sorted(others)
    emulator.advance(DAY)
    kms.cancel_key_deletion(KeyId=first)
    return path, first


def test_apply_does_not_undo_a_hand_cancel_with_the_journal(emulator: Emulator,
                                                           tmp_path: Path) -> None:
    path, first = _plan_applied_then_hand_cancelled(emulator, tmp_path)
    before = mutations(emulator)
    run = ksdelete(emulator, "apply", str(path), "--output", "json")
    refused_for(run, first)
    assert mutations(emulator) == before
    assert state(emulator, first) == "Disabled"


def test_apply_does_not_undo_a_hand_cancel_without_the_journal(emulator: Emulator,
                                                              tmp_path: Path) -> None:
    path, first = _plan_applied_then_hand_cancelled(emulator, tmp_path)
    before = mutations(emulator)
    run = ksdelete(emulator, "apply", str(path), "--output", "json", "--journal",
                   str(tmp_path / "elsewhere.jsonl"))
    message = refused_for(run, first)
    assert "CancelKeyDeletion by arn:aws:" in message
    assert mutations(emulator) == before
    assert state(emulator, first) == "Disabled"


def test_apply_does_not_undo_a_schedule_and_cancel_made_after_the_review(
        emulator: Emulator, tmp_path: Path) -> None:
    """Nobody ran ksdelete while K1 was pending: only CloudTrail knows it was cancelled."""
    target = seed_one(emulator, keys=2)["stores"][0]
    first = target["key_ids"][0]
    path = tmp_path / "plan.json"
    assert ksdelete(emulator, "target", "--dry-run", "--save-plan", str(path)).exit_code == 0
    kms = client(emulator)
    emulator.advance(3600)
    kms.schedule_key_deletion(KeyId=first, PendingWindowInDays=7)
    emulator.advance(3600)
    kms.cancel_key_deletion(KeyId=first)
    before = mutations(emulator)
    run = ksdelete(emulator, "apply", str(path), "--output", "json")
    message = refused_for(run, first)
    assert "CancelKeyDeletion by arn:aws:" in message
    assert mutations(emulator) == before


def _journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- item 8: a key new in a store whose other keys carry ksdelete's marks --------------------

def test_a_key_new_in_a_marked_store_is_refused_on_a_machine_without_the_journal(
        emulator: Emulator, tmp_path: Path) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    assert yes(emulator).exit_code == 3
    new = client(emulator).create_key(CustomKeyStoreId=target["id"],
                                      Origin="AWS_CLOUDHSM")["KeyMetadata"]["KeyId"]
    before = mutations(emulator)
    elsewhere = tmp_path / "elsewhere.jsonl"
    run = yes(emulator, journal=elsewhere)
    message = refused_for(run, new)
    assert run.store()["phase"]["reason"] == "unplanned-keys"
    assert "marks" in message and "--include-new-keys" in message
    assert mutations(emulator) == before
    assert state(emulator, new) == "Enabled"
    # The operator's explicit word for new keys is a waiver, and it is recorded.
    run = yes(emulator, "--include-new-keys", journal=elsewhere)
    assert run.exit_code == 3, run.stderr
    assert state(emulator, new) == "PendingDeletion"
    assert any(w.startswith("covered_by_confirmation: --include-new-keys")
               for w in run.store()["waivers"])


# ---- item 9: a key marked but never scheduled is no cancel ----------------------------------

def _marked_but_never_scheduled(emulator: Emulator, journal_path: Path, *,
                                intent: bool) -> tuple[str, str]:
    """What a run leaves when the disk fills up between marking a key and scheduling it: the
    ConfirmPlan, the mark (tag and its journal lines), and no ScheduleKeyDeletion intent line
    (or, with `intent`, an intent line with no result: the call may have reached AWS)."""
    from ksdelete.journal import Journal
    from ksdelete.models import SCHEDULED_TAG

    target = seed_one(emulator, keys=2)["stores"][0]
    first = target["key_ids"][0]
    kms = client(emulator)
    arn = kms.describe_key(KeyId=first)["KeyMetadata"]["Arn"]
    journal = Journal(journal_path, region="us-east-1", account="123456789012",
                      caller_arn="arn:aws:iam::123456789012:user/testing", run_id="fullrun00001")
    journal.decision("ConfirmPlan", store_id=target["id"], store_name="target",
                     key_ids=sorted(target["key_ids"]),
                     keys=[{"id": k, "state": "Enabled"} for k in target["key_ids"]])
    stamp = emulator.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    with journal.record(store_id=target["id"], store_name="target", operation="TagResource",
                        key_id=first, key_arn=arn) as outcome:
        kms.tag_resource(KeyId=first, Tags=[{
            "TagKey": SCHEDULED_TAG, "TagValue": f"{stamp} prior=Enabled run=fullrun00001"}])
        outcome.request_id = "req-1"
    if intent:
        journal._write({"time": stamp, "phase": "intent", "run_id": "fullrun00001",
                        "account": "123456789012", "region": "us-east-1",
                        "store_id": target["id"], "store_name": "target",
                        "operation": "ScheduleKeyDeletion", "key_id": first, "key_arn": arn})
    journal.close()
    return target["id"], first


def test_a_key_marked_but_never_scheduled_is_not_taken_for_a_cancel(
        emulator: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    _, first = _marked_but_never_scheduled(emulator, journal, intent=False)
    run = yes(emulator, journal=journal)
    assert run.exit_code == 3, run.stderr
    assert state(emulator, first) == "PendingDeletion"


def test_a_key_whose_scheduling_may_have_reached_aws_stays_cancelled(
        emulator: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    _, first = _marked_but_never_scheduled(emulator, journal, intent=True)
    before = mutations(emulator)
    run = yes(emulator, journal=journal)
    refused_for(run, first)
    assert mutations(emulator) == before


def test_apply_without_the_journal_refuses_when_cloudtrail_cannot_tell(
        emulator: Emulator, tmp_path: Path) -> None:
    """Where only CloudTrail could say whether a key was cancelled since the review, a
    CloudTrail that cannot be read is no "not cancelled"."""
    target = seed_one(emulator, keys=2)["stores"][0]
    first = target["key_ids"][0]
    path = tmp_path / "plan.json"
    assert ksdelete(emulator, "target", "--dry-run", "--save-plan", str(path)).exit_code == 0
    kms = client(emulator)
    kms.schedule_key_deletion(KeyId=first, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=first)
    emulator.configure(fault_rate=1.0, fault_operations="cloudtrail:LookupEvents")
    before = mutations(emulator)
    run = ksdelete(emulator, "apply", str(path), "--output", "json")
    message = refused_for(run, first)
    assert "CloudTrail could not be read (AccessDeniedException)" in message
    assert mutations(emulator) == before


# ---- item 5: a plan is all or nothing --------------------------------------------------------

def test_apply_of_a_plan_over_two_stores_is_all_or_nothing(emulator: Emulator,
                                                           tmp_path: Path) -> None:
    stores = seed_one(emulator, keys=2)["stores"]
    path = tmp_path / "plan.json"
    saved = ksdelete(emulator, "target", "other", "--dry-run", "--save-plan", str(path))
    assert saved.exit_code == 0, saved.stderr
    kms = client(emulator)
    added = kms.create_key(CustomKeyStoreId=stores[1]["id"],
                           Origin="AWS_CLOUDHSM")["KeyMetadata"]["KeyId"]
    before = mutations(emulator)
    run = ksdelete(emulator, "apply", str(path), "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert [s["status"] for s in run.json()["stores"]] == ["refused", "refused"]
    assert added in said(run.store(1)["error"])
    assert "all or nothing" in said(run.store(0)["error"])
    assert run.store(0)["phase"]["reason"] == "all-or-nothing"
    assert run.store(1)["phase"]["reason"] == "outside-saved-plan"
    assert mutations(emulator) == before  # nothing scheduled (nor marked) in either store
    assert {k["KeyState"] for k in emulator.state()["keys"]} == {"Enabled"}
    assert run.store(0)["actions"] == [] and run.store(1)["actions"] == []


def test_delete_of_several_stores_is_all_or_nothing(emulator: Emulator) -> None:
    """The refused store comes after the one that could go ahead, in the command line and in
    the order of their IDs alike: nothing is changed in either."""
    target = seed_one(emulator, keys=1)["stores"][0]
    emulator.seed({"region": "us-east-1", "stores": [
        {"name": "offline", "type": "AWS_CLOUDHSM", "connection_state": "DISCONNECTED",
         "keys": 1}]})
    before = mutations(emulator)
    for order in (("target", "offline"), ("offline", "target")):
        run = ksdelete(emulator, *order, "--yes", "--output", "json")
        assert run.exit_code == 4, run.stderr
        assert [s["status"] for s in run.json()["stores"]] == ["refused", "refused"]
        assert mutations(emulator) == before
    assert state(emulator, target["key_ids"][0]) == "Enabled"


# ---- item 6: waivers cover what they name, and every waiver is recorded ---------------------

def test_allow_service_grants_does_not_waive_grants_that_could_not_be_read(
        emulator: Emulator) -> None:
    from .test_gates_review import deny

    target = seed_one(emulator, keys=2)["stores"][0]
    hidden = target["key_ids"][0]
    deny(emulator, hidden, "kms:ListGrants")
    before = mutations(emulator)
    run = yes(emulator, "--allow-service-grants")
    message = refused_for(run, hidden)
    assert run.store()["phase"]["reason"] == "service-grants"
    assert "could not be read" in message
    assert mutations(emulator) == before
    gates = {g["gate"]: g for g in run.store()["gates"]}
    assert gates["no_service_grants"]["verdict"] == "refused"


def test_a_waived_service_grant_is_recorded_as_waived(emulator: Emulator,
                                                     tmp_path: Path) -> None:
    target = seed_one(emulator, keys=2)["stores"][0]
    granted = target["key_ids"][0]
    client(emulator).create_grant(KeyId=granted, GranteePrincipal="rds.us-east-1.amazonaws.com",
                                  Operations=["Decrypt"])
    journal = tmp_path / "journal.jsonl"
    run = yes(emulator, "--allow-service-grants", journal=journal)
    assert run.exit_code == 3, run.stderr
    waivers = run.store()["waivers"]
    assert any(w.startswith("no_service_grants: --allow-service-grants") and granted in w
               for w in waivers), waivers
    assert "waived: no_service_grants" in run.stderr  # the summary
    (confirm,) = [e for e in _journal(journal) if e.get("operation") == "ConfirmPlan"]
    assert any(w.startswith("no_service_grants:") for w in confirm["waivers"])


# ---- item 7: orphaned key material is never a silent success --------------------------------

def test_material_orphaned_by_a_disconnect_between_runs_needs_the_waiver(
        emulator: Emulator, tmp_path: Path) -> None:
    """Someone disconnects the CloudHSM store between runs while the keys wait out their
    window; KMS deletes the keys, but not their HSM key material. The run that finds the keys
    gone must not end `deleted`, exit 0 (cron removes the job on exit 0), on any machine."""
    target = seed_one(emulator, keys=2)["stores"][0]
    store_id = target["id"]
    journal = tmp_path / "journal.jsonl"
    assert yes(emulator, journal=journal).exit_code == 3
    client(emulator).disconnect_custom_key_store(CustomKeyStoreId=store_id)
    emulator.advance(9 * DAY)  # the keys are deleted while the store is disconnected
    before = mutations(emulator)
    for where in (journal, tmp_path / "elsewhere.jsonl"):
        run = ksdelete(emulator, store_id, "--yes", "--wait", "--poll-interval", "0.2s",
                       "--output", "json", "--journal", str(where))
        assert run.exit_code == 4, run.stderr
        assert run.store()["phase"]["reason"] == "orphaned-key-material"
        message = said(run.store()["error"])
        assert all(k in message for k in target["key_ids"]), message
        assert "--allow-orphaned-key-material" in message
        assert mutations(emulator) == before  # the store is still there, nothing changed
    status = ksdelete(emulator, "status", store_id, "--output", "json", "--journal",
                      str(journal))
    assert status.exit_code == 4, status.stderr
    run = ksdelete(emulator, store_id, "--yes", "--wait", "--poll-interval", "0.2s",
                   "--allow-orphaned-key-material", "--output", "json", "--journal",
                   str(journal))
    assert run.exit_code == 0, run.stderr
    assert any(w.startswith("material_deleted: --allow-orphaned-key-material")
               for w in run.store()["waivers"]), run.store()["waivers"]
    recorded = [w for e in _journal(journal) if e.get("phase") == "decision"
                for w in e.get("waivers") or ()]
    assert any(w.startswith("material_deleted:") for w in recorded), recorded


# ---- item 9: the final report reflects AWS after a concurrent cancel ------------------------

def test_keys_cancelled_while_the_run_schedules_are_reported_as_aws_shows_them(
        emulator: Emulator) -> None:
    """Someone cancels each key right after the run read it back PendingDeletion (all but the
    last one read back). The run's report used to say keys-pending N/N."""
    import threading
    import time

    target = seed_one(emulator, keys=6)["stores"][0]
    ids = set(target["key_ids"])
    kms = client(emulator)
    cancelled: set[str] = set()
    stop = threading.Event()

    def cancel_after_read_back() -> None:
        while not stop.is_set():
            calls = emulator.calls()
            scheduled_at = {c["key_id"].rsplit("/", 1)[-1]: i for i, c in enumerate(calls)
                            if c["operation"] == "ScheduleKeyDeletion" and c["status"] == 200}
            read_back = {k for k, at in scheduled_at.items() if any(
                c["operation"] == "DescribeKey" and c.get("key_id", "").endswith(k)
                for c in calls[at:])}
            for key_id in sorted(read_back - cancelled):
                if len(read_back) < len(ids):  # never the last one read back
                    kms.cancel_key_deletion(KeyId=key_id)
                    cancelled.add(key_id)
            time.sleep(0.01)

    watcher = threading.Thread(target=cancel_after_read_back, daemon=True)
    watcher.start()
    try:
        run = yes(emulator, "--unused-for", "0", "--on-use", "ignore")
    finally:
        stop.set()
        watcher.join(10)
    assert cancelled, "the race never happened"
    aws = {k: state(emulator, k) for k in ids}
    reported = {k["id"]: k["state"] for k in run.store()["keys"]}
    assert reported == aws, run.stderr
    phase = run.store()["phase"]
    assert f"keys-pending {len(ids)}/{len(ids)}" not in json.dumps(phase)
    assert any("no longer pending" in w for w in run.store()["warnings"]), run.store()


def test_a_no_at_the_second_prompt_changes_nothing_in_the_first_store(
        emulator: Emulator, tmp_path: Path) -> None:
    seed_one(emulator, keys=1)
    before = mutations(emulator)
    journal = tmp_path / "journal.jsonl"
    run = at_the_prompt(emulator, "target", "other", "--journal", str(journal),
                        keys=b"target\nnot-this-one\n")
    assert run.exit_code == 4, run.stderr
    assert [s["status"] for s in run.json()["stores"]] == ["refused", "refused"]
    assert mutations(emulator) == before
    assert not [e for e in _journal(journal) if e.get("operation") == "ConfirmPlan"] \
        if journal.exists() else True
