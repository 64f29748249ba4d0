"""The watch finds use attempts where AWS records them (issue 18): by event name, for all keys
at once, since LookupEvents' ResourceName does not find cryptographic events. The real CLI
over HTTP against the emulator with its defaults; an application calls KMS with its own key."""

from __future__ import annotations

import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator

from .helpers import KSDELETE, env_for, keys_by_id, ksdelete, mutations, said, seed_one

APP_KEY = "AKIAAPPLICATION0001"
APP_ARN = "arn:aws:iam::123456789012:role/billing-app"


def app(emulator: Emulator, access_key: str = APP_KEY) -> Any:
    return boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=access_key, aws_secret_access_key="testing",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                                      max_pool_connections=16))


def fails(call: Any, **params: Any) -> str:
    try:
        call(**params)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    raise AssertionError("the call on a pending key succeeded")


def cancelled(emulator: Emulator) -> list[str]:
    return sorted(c["key_id"].rsplit("/", 1)[-1] for c in mutations(emulator)
                  if c["operation"] == "CancelKeyDeletion")


def schedule(emulator: Emulator, keys: int = 4) -> tuple[list[str], bytes]:
    """Seed the store and let ksdelete schedule its keys (7 days); the application encrypted
    with the first key before: its ciphertext."""
    emulator.configure(principals={APP_KEY: APP_ARN})
    target = seed_one(emulator, keys=keys, plain=1, other=0)["stores"][0]
    key_ids = sorted(target["key_ids"])
    blob: bytes = app(emulator).encrypt(KeyId=key_ids[0], Plaintext=b"x")["CiphertextBlob"]
    run = ksdelete(emulator, "target", "--yes", "--pending-window-days", "7",
                   "--unused-for", "0")
    assert run.exit_code == 3, run.stderr
    return key_ids, blob


def busy(emulator: Emulator, key_id: str, calls: int) -> None:
    """Another key's successful Decrypts, many of them (an application at work)."""
    client = app(emulator, "AKIAOTHERAPP00000001")
    blob = client.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: client.decrypt(CiphertextBlob=blob), range(calls)))


def plain_key(emulator: Emulator) -> str:
    keys = [k for k in emulator.state()["keys"] if not k.get("CustomKeyStoreId")
            and k["KeyState"] == "Enabled"]
    return str(keys[0]["KeyId"])


def test_decrypt_encrypt_by_alias_and_generate_data_key_cancel_exactly_those_keys(
        emulator: Emulator) -> None:
    kms = app(emulator)
    emulator.configure(principals={APP_KEY: APP_ARN})
    target = seed_one(emulator, keys=4, plain=1, other=0)["stores"][0]
    first, second, third, untouched = sorted(target["key_ids"])
    blob = kms.encrypt(KeyId=first, Plaintext=b"secret")["CiphertextBlob"]
    alias = kms.list_aliases(KeyId=second)["Aliases"][0]["AliasName"]
    run = ksdelete(emulator, "target", "--yes", "--pending-window-days", "7", "--unused-for", "0")
    assert run.exit_code == 3, run.stderr
    emulator.advance(3600)
    assert fails(kms.decrypt, CiphertextBlob=blob) == "KMSInvalidStateException"
    assert fails(kms.encrypt, KeyId=alias, Plaintext=b"x") == "KMSInvalidStateException"
    assert fails(kms.generate_data_key, KeyId=third, KeySpec="AES_256") \
        == "KMSInvalidStateException"
    emulator.advance(3600)
    watched = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert watched.exit_code == 4, watched.stderr
    store = watched.store()
    assert store["phase"]["reason"] == "used-while-pending"
    message = said(store["error"])
    for key_id, operation in ((first, "Decrypt"), (second, "Encrypt"),
                              (third, "GenerateDataKey")):
        assert f"{key_id}: {operation} by {APP_ARN} at " in message
    assert cancelled(emulator) == sorted([first, second, third])
    states = keys_by_id(emulator)
    assert states[untouched]["KeyState"] == "PendingDeletion"
    assert {states[k]["KeyState"] for k in (first, second, third)} == {"Disabled"}
    # The calls do not grow with the keys: one chain per event name.
    lookups = [c for c in emulator.calls() if c["operation"] == "LookupEvents"]
    assert len(lookups) <= 2 * 8, len(lookups)


def test_a_failed_create_grant_on_a_pending_key_is_a_use(emulator: Emulator) -> None:
    (granted, _), _ = schedule(emulator, keys=2)
    assert fails(app(emulator).create_grant, KeyId=granted, GranteePrincipal=APP_ARN,
                 Operations=["Decrypt"]) == "KMSInvalidStateException"
    emulator.advance(600)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert f"{granted}: CreateGrant by {APP_ARN}" in said(run.store()["error"])
    assert cancelled(emulator) == [granted]


@pytest.mark.slow
def test_an_attempt_buried_in_thousands_of_calls_is_found_or_the_watch_is_blind(
        emulator: Emulator) -> None:
    (used, *others), blob = schedule(emulator, keys=3)
    assert fails(app(emulator).decrypt, CiphertextBlob=blob) == "KMSInvalidStateException"
    busy(emulator, plain_key(emulator), 2100)  # 42 pages of Decrypt events newer than the attempt
    emulator.advance(600)
    # CloudTrail's quota (2 LookupEvents a second) is what makes 42 pages take time: on, and
    # the runs paced as against AWS (unpaced, 4 s reads them all).
    emulator.configure(quotas="aws")
    # A budget too short to read the Decrypt events to the end: blind, never "no use".
    short = ksdelete(emulator, "target", "--yes", "--watch-budget", "4s", "--output", "json")
    assert short.exit_code == 4, short.stderr
    assert short.store()["phase"]["reason"] == "watch-blind"
    message = said(short.store()["error"])
    assert "Decrypt events could not be read to the end within the watch budget" in message
    assert "--watch-budget" in message and "no use attempted" not in short.stderr
    assert cancelled(emulator) == []
    # The default budget reads them all and finds the attempt under the others.
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert f"{used}: Decrypt by {APP_ARN}" in said(run.store()["error"])
    assert cancelled(emulator) == [used]
    assert {keys_by_id(emulator)[k]["KeyState"] for k in others} == {"PendingDeletion"}


def test_late_delivery_is_not_blindness_and_a_late_attempt_is_caught(
        emulator: Emulator) -> None:
    emulator.configure(cloudtrail_delay=600)
    (used, _), _ = schedule(emulator, keys=2)
    status = ksdelete(emulator, "status", "target", "--output", "json")
    assert status.exit_code == 3, status.stderr  # keys-pending, not refused
    (gate,) = [g for g in status.store()["gates"] if g["gate"] == "no_use_while_pending"]
    assert gate["verdict"] == "pass" and "not visible in CloudTrail yet" in gate["detail"]
    assert fails(app(emulator).encrypt, KeyId=used, Plaintext=b"x") == "KMSInvalidStateException"
    emulator.advance(300)  # neither the scheduling nor the attempt delivered yet
    assert ksdelete(emulator, "status", "target").exit_code == 3
    emulator.advance(400)  # both delivered
    seen = ksdelete(emulator, "status", "target", "--output", "json")
    assert seen.exit_code == 4, seen.stderr
    assert f"{used}: Encrypt by {APP_ARN}" in said(seen.store()["error"])
    run = ksdelete(emulator, "target", "--yes")
    assert run.exit_code == 4 and cancelled(emulator) == [used]


def test_no_anchor_after_the_allowance_is_blind_and_says_so(emulator: Emulator) -> None:
    emulator.configure(cloudtrail_delay=3 * 3600)  # CloudTrail far behind
    schedule(emulator, keys=1)
    emulator.advance(2 * 3600)
    run = ksdelete(emulator, "status", "target", "--output", "json")
    assert run.exit_code == 4, run.stderr
    assert run.store()["phase"]["reason"] == "watch-blind"
    message = said(run.store()["error"])
    assert "no ScheduleKeyDeletion event of it in CloudTrail" in message
    assert "more than CloudTrail's delivery allowance" in message
    assert "grant cloudtrail:LookupEvents" not in message  # not a permission problem


@pytest.mark.slow
def test_two_thousand_failed_calls_are_acted_on_before_a_12_second_timeout(
        emulator: Emulator) -> None:
    (used, other), _ = schedule(emulator, keys=2)
    client = app(emulator)
    with ThreadPoolExecutor(8) as pool:
        codes = set(pool.map(lambda _: fails(client.encrypt, KeyId=used, Plaintext=b"x"),
                             range(2000)))
    assert codes == {"KMSInvalidStateException"}
    emulator.advance(600)
    proc = subprocess.Popen([KSDELETE, "target", "--yes", "--output", "json", "--journal",
                             str(_journal_path())], env=env_for(emulator),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=12)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # a timer's timeout
        proc.wait(timeout=30)
    assert cancelled(emulator) == [used]
    assert keys_by_id(emulator)[other]["KeyState"] == "PendingDeletion"


def _journal_path() -> Any:
    import os
    from pathlib import Path

    return Path(os.environ["XDG_STATE_HOME"]) / "ksdelete" / "journal.jsonl"


def test_a_wait_over_two_stores_watches_the_store_it_is_not_waiting_on(
        emulator: Emulator) -> None:
    emulator.configure(principals={APP_KEY: APP_ARN})
    seeded = seed_one(emulator, keys=1, plain=0, other=2)["stores"]
    other = sorted(seeded[1]["key_ids"])
    first = ksdelete(emulator, "target", "other", "--yes", "--pending-window-days", "7",
                     "--unused-for", "0")
    assert first.exit_code == 3, first.stderr
    # An application still uses a key of the second store.
    emulator.advance(3600)
    assert fails(app(emulator).encrypt, KeyId=other[0], Plaintext=b"x") \
        == "KMSInvalidStateException"
    emulator.advance(3600)
    # A --wait run waits on `target` first, for days (half a day a wall second here); `other`'s
    # keys reach their DeletionDate meanwhile. The key someone wanted must be cancelled, not
    # deleted.
    emulator.configure(time_scale=43200.0)
    run = ksdelete(emulator, "target", "other", "--yes", "--wait", "--poll-interval", "0.2",
                   "--output", "json")
    emulator.configure(time_scale=1.0)
    assert run.exit_code == 4, run.stderr
    assert cancelled(emulator) == [other[0]]
    states = keys_by_id(emulator)
    assert states[other[0]]["KeyState"] == "Disabled"
    # A multi-store run is all or nothing (main, issue 17): the refusal of `other` stops it.
    assert run.store(1)["status"] == "refused"


def test_a_trail_log_group_catches_the_same_attempts_in_a_few_calls(emulator: Emulator) -> None:
    emulator.configure(cloudtrail_log_group="org-trail")
    (first, second, third, untouched), blob = schedule(emulator, keys=4)
    kms = app(emulator)
    assert fails(kms.decrypt, CiphertextBlob=blob) == "KMSInvalidStateException"
    assert fails(kms.encrypt, KeyId=second, Plaintext=b"x") == "KMSInvalidStateException"
    assert fails(kms.create_grant, KeyId=third, GranteePrincipal=APP_ARN,
                 Operations=["Decrypt"]) == "KMSInvalidStateException"
    busy(emulator, plain_key(emulator), 1000)  # traffic the log group's filter leaves out
    emulator.advance(600)
    before = len(emulator.calls())
    missing = ksdelete(emulator, "target", "--yes", "--watch-log-group", "no-such-group",
                       "--output", "json")
    assert missing.exit_code == 4 and missing.store()["phase"]["reason"] == "watch-blind"
    assert "ResourceNotFoundException" in said(missing.store()["error"])
    run = ksdelete(emulator, "target", "--yes", "--watch-log-group", "org-trail",
                   "--output", "json")
    assert run.exit_code == 4, run.stderr
    message = said(run.store()["error"])
    for key_id, operation in ((first, "Decrypt"), (second, "Encrypt"),
                              (third, "CreateGrant")):
        assert f"{key_id}: {operation} by {APP_ARN}" in message
    assert cancelled(emulator) == sorted([first, second, third])
    assert keys_by_id(emulator)[untouched]["KeyState"] == "PendingDeletion"
    calls = [c["operation"] for c in emulator.calls()[before:]]
    assert "LookupEvents" not in calls
    assert 1 <= calls.count("FilterLogEvents") <= 4
