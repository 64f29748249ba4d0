"""Keys in custom key stores: creation, states, deletion scheduling, real deletion, listing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator

from .conftest import connect, disconnect, error_of, hsm_store, key_state, xks_store


@pytest.fixture
def store(kms: Any, emulator: Emulator) -> str:
    sid = hsm_store(kms)
    connect(kms, emulator, sid)
    return sid


def test_create_key_in_stores(kms: Any, emulator: Emulator, store: str) -> None:
    meta = kms.create_key(CustomKeyStoreId=store, Origin="AWS_CLOUDHSM")["KeyMetadata"]
    assert meta["CustomKeyStoreId"] == store
    assert meta["CloudHsmClusterId"] == "cluster-234567abcdefg"
    assert (meta["Origin"], meta["KeyState"], meta["Enabled"]) == ("AWS_CLOUDHSM", "Enabled", True)
    with pytest.raises(kms.exceptions.UnsupportedOperationException):
        kms.create_key(CustomKeyStoreId=store)  # Origin defaults to AWS_KMS
    with pytest.raises(kms.exceptions.CustomKeyStoreNotFoundException):
        kms.create_key(CustomKeyStoreId="cks-00000000000000000", Origin="AWS_CLOUDHSM")

    xks = xks_store(kms)
    with pytest.raises(kms.exceptions.CustomKeyStoreInvalidStateException):
        kms.create_key(CustomKeyStoreId=xks, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-1")
    connect(kms, emulator, xks)
    with pytest.raises(ClientError) as no_xks_id:
        kms.create_key(CustomKeyStoreId=xks, Origin="EXTERNAL_KEY_STORE")
    assert error_of(no_xks_id)[0] == "ValidationException"
    meta = kms.create_key(CustomKeyStoreId=xks, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-1")
    assert meta["KeyMetadata"]["XksKeyConfiguration"] == {"Id": "ext-1"}
    assert "CloudHsmClusterId" not in meta["KeyMetadata"]
    with pytest.raises(kms.exceptions.XksKeyAlreadyInUseException):
        kms.create_key(CustomKeyStoreId=xks, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-1")


def test_describe_key_member_set_matches_documented_example(kms: Any) -> None:
    loader = botocore.session.get_session().get_component("data_loader")
    examples = loader.load_service_model("kms", "examples-1")["examples"]["DescribeKey"]
    documented = next(e for e in examples if e["title"] == "To get details about a KMS key")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    raw = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    # The example predates CurrentKeyMaterialId, which AWS answers today for AWS_KMS symmetric
    # keys (recorded: LocalStack's test_create_key; checked in fidelity/run_recorded_aws.py).
    assert set(raw) == set(documented["output"]["KeyMetadata"]) | {"CurrentKeyMaterialId"}


def test_unavailable_while_disconnected_and_restored(
    kms: Any, emulator: Emulator, store: str
) -> None:
    keys = [
        kms.create_key(CustomKeyStoreId=store, Origin="AWS_CLOUDHSM")["KeyMetadata"]["KeyId"]
        for _ in range(4)
    ]
    enabled, disabled, pending, toggled = keys
    kms.disable_key(KeyId=disabled)
    kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=30)
    kms.disconnect_custom_key_store(CustomKeyStoreId=store)
    # DISCONNECTING already makes keys Unavailable (unusable right away)
    assert key_state(kms, enabled) == "Unavailable"
    emulator.advance(61)
    meta = kms.describe_key(KeyId=enabled)["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("Unavailable", False)
    assert key_state(kms, disabled) == "Unavailable"
    assert key_state(kms, pending) == "PendingDeletion"
    # Enable/Disable on an Unavailable key succeed without a visible change
    kms.disable_key(KeyId=toggled)
    kms.enable_key(KeyId=disabled)
    assert key_state(kms, toggled) == "Unavailable"
    # Cancel works while disconnected; the key is Disabled underneath, Unavailable on view
    kms.cancel_key_deletion(KeyId=pending)
    assert key_state(kms, pending) == "Unavailable"
    # Schedule works on an Unavailable key
    kms.schedule_key_deletion(KeyId=enabled, PendingWindowInDays=7)
    assert key_state(kms, enabled) == "PendingDeletion"
    # FAILED behaves like disconnected for key state
    connect(kms, emulator, store)
    assert [key_state(kms, k) for k in keys] == [
        "PendingDeletion",
        "Enabled",
        "Disabled",
        "Disabled",
    ]
    emulator.set_store_state(store, "FAILED")
    assert key_state(kms, disabled) == "Unavailable"


def test_schedule_key_deletion_rules(kms: Any, emulator: Emulator) -> None:
    meta = kms.create_key()["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    for days in (6, 31, 365):
        with pytest.raises(ClientError) as bad:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=days)
        code, status, message = error_of(bad)
        assert (code, status, message) == (
            "ValidationException",
            400,
            "PendingWindowInDays must be between 7 and 30",
        )
    now = emulator.now()
    resp = kms.schedule_key_deletion(KeyId=arn)  # by ARN, default window
    assert resp["KeyId"] == arn
    assert resp["KeyState"] == "PendingDeletion" and resp["PendingWindowInDays"] == 30
    assert abs(resp["DeletionDate"] - (now + timedelta(days=30))) < timedelta(seconds=30)
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["DeletionDate"] == resp["DeletionDate"] and described["Enabled"] is False
    with pytest.raises(kms.exceptions.KMSInvalidStateException) as again:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert error_of(again)[2] == f"{arn} is pending deletion."
    for call in (kms.disable_key, kms.enable_key):
        with pytest.raises(kms.exceptions.KMSInvalidStateException):
            call(KeyId=key_id)
    assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == arn
    assert key_state(kms, key_id) == "Disabled"
    assert "DeletionDate" not in kms.describe_key(KeyId=key_id)["KeyMetadata"]
    with pytest.raises(kms.exceptions.KMSInvalidStateException) as not_pending:
        kms.cancel_key_deletion(KeyId=key_id)
    assert error_of(not_pending)[2] == f"{arn} is not pending deletion."
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.schedule_key_deletion(KeyId=missing)


def test_keys_vanish_when_clock_passes_deletion_date(kms: Any, emulator: Emulator) -> None:
    meta = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=meta["KeyId"])
    keeper = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=7)
    emulator.advance(7 * 86400 - 60)
    assert key_state(kms, meta["KeyId"]) == "PendingDeletion"
    emulator.advance(120)
    with pytest.raises(kms.exceptions.NotFoundException) as gone:
        kms.describe_key(KeyId=meta["KeyId"])
    assert error_of(gone)[2] == f"Key '{meta['Arn']}' does not exist"
    listed = [k["KeyId"] for k in kms.list_keys()["Keys"]]
    assert meta["KeyId"] not in listed and keeper in listed
    names = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert "alias/doomed" not in names
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.cancel_key_deletion(KeyId=meta["KeyId"])


def test_deletion_lateness(kms: Any, emulator: Emulator) -> None:
    emulator.configure(deletion_lateness=86400, seed=7)
    keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(20)]
    for key_id in keys:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    emulator.advance(7 * 86400 + 1)
    alive = {k["KeyId"] for k in kms.list_keys()["Keys"]} & set(keys)
    assert len(alive) == 20  # nothing vanishes at DeletionDate itself: lateness > 0
    emulator.advance(43200)
    alive = {k["KeyId"] for k in kms.list_keys()["Keys"]} & set(keys)
    assert 0 < len(alive) < 20  # half a day late: some gone, some not (uniform 0..24 h)
    for key_id in alive:
        assert key_state(kms, key_id) == "PendingDeletion"
    emulator.advance(86400)
    assert not {k["KeyId"] for k in kms.list_keys()["Keys"]} & set(keys)


def test_delete_store_preconditions(kms: Any, emulator: Emulator, store: str) -> None:
    key_id = kms.create_key(CustomKeyStoreId=store, Origin="AWS_CLOUDHSM")["KeyMetadata"]["KeyId"]
    with pytest.raises(kms.exceptions.CustomKeyStoreInvalidStateException):
        kms.delete_custom_key_store(CustomKeyStoreId=store)  # CONNECTED
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    disconnect(kms, emulator, store)
    with pytest.raises(kms.exceptions.CustomKeyStoreHasCMKsException):
        kms.delete_custom_key_store(CustomKeyStoreId=store)  # a PendingDeletion key counts
    emulator.advance(7 * 86400 + 1)  # deleted while disconnected, as AWS does
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.describe_key(KeyId=key_id)
    kms.delete_custom_key_store(CustomKeyStoreId=store)
    with pytest.raises(kms.exceptions.CustomKeyStoreNotFoundException):
        kms.describe_custom_key_stores(CustomKeyStoreId=store)
    with pytest.raises(kms.exceptions.CustomKeyStoreNotFoundException):
        kms.delete_custom_key_store(CustomKeyStoreId=store)


def test_list_keys_paging(kms: Any, emulator: Emulator) -> None:
    seeded = set(emulator.seed({"plain_keys": 250})["plain_key_ids"])
    first = kms.list_keys()
    assert len(first["Keys"]) == 100 and first["Truncated"] is True
    seen: list[str] = []
    marker: dict[str, str] = {}
    while True:
        page = kms.list_keys(Limit=70, **marker)
        seen += [k["KeyId"] for k in page["Keys"]]
        assert all(set(k) == {"KeyId", "KeyArn"} for k in page["Keys"])
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = {"Marker": page["NextMarker"]}
    assert len(seen) == 250 and set(seen) == seeded
    paged = kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1000})
    assert sum(len(p["Keys"]) for p in paged) == 250
    with pytest.raises(ClientError) as too_big:
        kms.list_keys(Limit=1001)
    assert error_of(too_big)[0] == "ValidationException"
    with pytest.raises(kms.exceptions.InvalidMarkerException):
        kms.list_keys(Marker="not-a-marker")


def test_list_aliases_paging_and_by_key(kms: Any, emulator: Emulator) -> None:
    seeded = emulator.seed(
        {"stores": [{"name": "s", "type": "AWS_CLOUDHSM", "keys": 60, "aliases": True}]}
    )
    keys = seeded["stores"][0]["key_ids"]
    names: list[str] = []
    for page in kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 25}):
        names += [a["AliasName"] for a in page["Aliases"]]
    assert {f"alias/s-{i}" for i in range(60)} <= set(names)
    assert len(names) == len(set(names))
    own = kms.list_aliases(KeyId=keys[3])["Aliases"]
    assert [(a["AliasName"], a["TargetKeyId"]) for a in own] == [("alias/s-3", keys[3])]
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.list_aliases(KeyId="00000000-0000-0000-0000-000000000000")


def test_access_denied_by_key_policy(kms: Any, emulator: Emulator) -> None:
    seeded = emulator.seed(
        {
            "stores": [
                {"name": "s", "type": "EXTERNAL_KEY_STORE", "keys": 3, "undescribable_keys": 1}
            ]
        }
    )
    *fine, denied = seeded["stores"][0]["key_ids"]
    for key_id in fine:
        assert key_state(kms, key_id) == "Enabled"
    with pytest.raises(ClientError) as excinfo:
        kms.describe_key(KeyId=denied)
    code, status, message = error_of(excinfo)
    assert (code, status) == ("AccessDeniedException", 400) and "kms:DescribeKey" in message
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}],
    }
    wild = kms.create_key(Policy=json.dumps(policy), BypassPolicyLockoutSafetyCheck=True)
    with pytest.raises(ClientError) as star:
        kms.describe_key(KeyId=wild["KeyMetadata"]["KeyId"])
    assert error_of(star)[0] == "AccessDeniedException"


def test_tags_follow_the_key_state_rules(kms: Any, emulator: Emulator) -> None:
    """kms-gates-facts 1: TagResource/UntagResource fail with KMSInvalidStateException on a key
    pending deletion and work in every other state (Unavailable too); ListResourceTags always."""
    store = xks_store(kms)
    connect(kms, emulator, store)
    key = kms.create_key(CustomKeyStoreId=store, Origin="EXTERNAL_KEY_STORE",
                         XksKeyId="ext-tags")["KeyMetadata"]["KeyId"]
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "mark", "TagValue": "1"}])
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    calls: list[Callable[[], Any]] = [
        lambda: kms.tag_resource(KeyId=key, Tags=[{"TagKey": "b", "TagValue": "2"}]),
        lambda: kms.untag_resource(KeyId=key, TagKeys=["mark"]),
    ]
    for call in calls:
        with pytest.raises(ClientError) as caught:
            call()
        code, status, message = error_of(caught)
        assert (code, status) == ("KMSInvalidStateException", 400)
        assert message.endswith("is pending deletion.")
    tags = kms.list_resource_tags(KeyId=key)["Tags"]
    assert tags == [{"TagKey": "mark", "TagValue": "1"}]
    kms.cancel_key_deletion(KeyId=key)
    assert key_state(kms, key) == "Disabled"
    disconnect(kms, emulator, store)
    assert key_state(kms, key) == "Unavailable"
    kms.untag_resource(KeyId=key, TagKeys=["mark"])
    assert kms.list_resource_tags(KeyId=key)["Tags"] == []


def test_at_most_50_tags_per_key(kms: Any) -> None:
    """AWS answers TagException "Too many tags" past 50 tags per key (recorded from real AWS:
    LocalStack's test_create_key_with_too_many_tags_raises_error)."""
    key = kms.create_key(Tags=[{"TagKey": f"t{i}", "TagValue": "v"} for i in range(49)])
    key_id = key["KeyMetadata"]["KeyId"]
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "t49", "TagValue": "v"}])  # the 50th
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "t0", "TagValue": "new"}])  # a rewrite
    with pytest.raises(ClientError) as raised:
        kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "t50", "TagValue": "v"}])
    assert error_of(raised) == ("TagException", 400, "Too many tags")
    assert len(kms.list_resource_tags(KeyId=key_id, Limit=50)["Tags"]) == 50
    with pytest.raises(ClientError) as at_creation:
        kms.create_key(Tags=[{"TagKey": f"t{i}", "TagValue": "v"} for i in range(51)])
    assert error_of(at_creation) == ("TagException", 400, "Too many tags")
