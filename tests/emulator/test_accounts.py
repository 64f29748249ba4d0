"""A second account: seeded with `"account"` in the seed spec, and reached by callers whose access
key the `principals` knob maps to a principal of that account. Each account sees only its own
stores, keys, aliases, CloudTrail events and quotas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from ksdelete.emulator import Emulator, EmulatorError

A = "123456789012"  # the emulator's default account
B = "222222222222"
B_KEY = "AKIAACCOUNTBOPERATOR"
B_ARN = f"arn:aws:iam::{B}:role/operator"


def client(emulator: Emulator, service: str, access_key: str = "testing") -> Any:
    return boto3.client(service, endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=access_key, aws_secret_access_key="x",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


def two_accounts(emulator: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    emulator.configure(principals={B_KEY: B_ARN})
    a = emulator.seed({"region": "us-east-1", "plain_keys": 2, "stores": [
        {"name": "shared-name", "keys": 2, "aliases": True}]})
    b = emulator.seed({"account": B, "region": "us-east-1", "plain_keys": 1, "stores": [
        {"name": "shared-name", "keys": 3, "aliases": True}]})
    return a, b


def test_each_account_sees_only_its_own_stores_and_keys(emulator: Emulator) -> None:
    a, b = two_accounts(emulator)
    assert b["account"] == B and a["account"] == A
    for access_key, seeded, account in (("testing", a, A), (B_KEY, b, B)):
        assert client(emulator, "sts", access_key).get_caller_identity()["Account"] == account
        kms = client(emulator, "kms", access_key)
        stores = kms.describe_custom_key_stores()["CustomKeyStores"]
        assert [s["CustomKeyStoreId"] for s in stores] == [seeded["stores"][0]["id"]]
        listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
        assert listed == set(seeded["stores"][0]["key_ids"]) | set(seeded["plain_key_ids"])
        arns = {k["KeyArn"] for k in kms.list_keys()["Keys"]}
        assert all(f":{account}:key/" in arn for arn in arns)
        assert all(a["AliasArn"].split(":")[4] == account
                   for a in kms.list_aliases()["Aliases"])
    other_key = b["stores"][0]["key_ids"][0]
    with pytest.raises(client(emulator, "kms").exceptions.NotFoundException):
        client(emulator, "kms").describe_key(KeyId=other_key)
    state = emulator.state(account=B)
    assert [s["CustomKeyStoreId"] for s in state["stores"]] == [b["stores"][0]["id"]]
    assert emulator.state()["stores"][0]["CustomKeyStoreId"] == a["stores"][0]["id"]


def test_cloudtrail_and_the_clock_are_per_account(emulator: Emulator) -> None:
    _, b = two_accounts(emulator)
    kms_b = client(emulator, "kms", B_KEY)
    key = b["stores"][0]["key_ids"][0]
    kms_b.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    calls = [c for c in emulator.calls() if c["operation"] == "ScheduleKeyDeletion"]
    assert [c["account"] for c in calls] == [B]
    start = datetime.now(UTC) - timedelta(days=1)

    def scheduled(access_key: str) -> list[dict[str, Any]]:
        trail = client(emulator, "cloudtrail", access_key)
        events: list[dict[str, Any]] = trail.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName",
                               "AttributeValue": "ScheduleKeyDeletion"}],
            StartTime=start, EndTime=datetime.now(UTC) + timedelta(days=1))["Events"]
        return events

    assert len(scheduled(B_KEY)) == 1
    assert scheduled("testing") == []  # account A's Event history has none of B's events
    emulator.advance(8 * 86400)  # the clock ends waiting periods in every account
    assert key not in {k["KeyId"] for k in emulator.state(account=B)["keys"]}


def test_a_bad_account_in_the_seed_spec_is_refused(emulator: Emulator) -> None:
    with pytest.raises(EmulatorError, match="account"):
        emulator.seed({"account": "not-an-account", "plain_keys": 1})
