"""AWS Config's SelectAggregateResourceConfig in the emulator, for the one query shape fleet
mode sends (keys of some custom key stores, across every account and Region), with Config's
lag, the aggregators that exist, keys Config never lists, and ListKeys missing a key.
Real boto3 over HTTP."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator

DAY = 24 * 3600
B = "222222222222"


def config_client(emulator: Emulator, region: str = "us-east-1") -> Any:
    return boto3.client("config", endpoint_url=emulator.endpoint_url, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="x",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


def query(*stores: str) -> str:
    listed = ", ".join(f"'{s}'" for s in stores)
    return ("SELECT accountId, awsRegion, resourceId, configuration.customKeyStoreId "
            "WHERE resourceType = 'AWS::KMS::Key' AND configuration.customKeyStoreId "
            f"IN ({listed})")


def select(emulator: Emulator, *stores: str, name: str = "org", limit: int = 100
           ) -> list[dict[str, Any]]:
    pages = config_client(emulator).get_paginator("select_aggregate_resource_config").paginate(
        Expression=query(*stores), ConfigurationAggregatorName=name,
        PaginationConfig={"PageSize": limit})
    return [json.loads(r) for page in pages for r in page["Results"]]


def seed_two_accounts(emulator: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    a = emulator.seed({"stores": [{"name": "a", "type": "EXTERNAL_KEY_STORE", "keys": 3}],
                       "plain_keys": 2})["stores"][0]
    b = emulator.seed({"account": B, "region": "eu-west-1", "stores": [
        {"name": "b", "type": "EXTERNAL_KEY_STORE", "keys": 2}]})["stores"][0]
    return a, b


def test_keys_of_the_named_stores_in_every_account_and_region(emulator: Emulator) -> None:
    emulator.configure(config_aggregators=["org"], config_lag_seconds=0)
    a, b = seed_two_accounts(emulator)
    rows = select(emulator, a["id"], b["id"], limit=2)  # paginated: 3 pages
    got = sorted((r["accountId"], r["awsRegion"], r["resourceId"],
                  r["configuration"]["customKeyStoreId"]) for r in rows)
    assert got == sorted([("123456789012", "us-east-1", k, a["id"]) for k in a["key_ids"]]
                         + [(B, "eu-west-1", k, b["id"]) for k in b["key_ids"]])
    assert select(emulator, b["id"]) and all(r["accountId"] == B for r in select(
        emulator, b["id"]))
    answer = config_client(emulator).select_aggregate_resource_config(
        Expression=query(a["id"]), ConfigurationAggregatorName="org")
    assert [f["Name"] for f in answer["QueryInfo"]["SelectFields"]] == [
        "accountId", "awsRegion", "resourceId", "configuration.customKeyStoreId"]
    calls = [c for c in emulator.calls() if c.get("service") == "config"]
    assert calls and calls[-1]["operation"] == "SelectAggregateResourceConfig"


def test_config_lags_behind_creation_and_deletion(emulator: Emulator, kms: Any) -> None:
    emulator.configure(config_aggregators=["org"])  # default lag: one emulated day
    a, _ = seed_two_accounts(emulator)
    assert select(emulator, a["id"]) == []  # created within the lag: not yet listed
    emulator.advance(2 * DAY)
    assert len(select(emulator, a["id"])) == 3
    kms.schedule_key_deletion(KeyId=a["key_ids"][0], PendingWindowInDays=7)
    emulator.advance(7 * DAY + 60)
    with pytest.raises(ClientError):
        kms.describe_key(KeyId=a["key_ids"][0])  # deleted
    assert len(select(emulator, a["id"])) == 3  # Config still lists it
    emulator.advance(DAY)
    assert {r["resourceId"] for r in select(emulator, a["id"])} == set(a["key_ids"][1:])


def test_hidden_keys_and_a_listkeys_that_misses_one(emulator: Emulator, kms: Any) -> None:
    emulator.configure(config_aggregators=["org"], config_lag_seconds=0)
    a, _ = seed_two_accounts(emulator)
    hidden, missed = a["key_ids"][0], a["key_ids"][1]
    emulator.configure(config_hide_keys=[hidden], listkeys_hide=[missed])
    assert hidden not in {r["resourceId"] for r in select(emulator, a["id"])}
    listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert missed not in listed and hidden in listed
    assert kms.describe_key(KeyId=missed)["KeyMetadata"]["CustomKeyStoreId"] == a["id"]


def test_an_aggregator_that_does_not_exist(emulator: Emulator) -> None:
    a, _ = seed_two_accounts(emulator)
    with pytest.raises(ClientError) as excinfo:
        select(emulator, a["id"])  # none exists by default
    assert excinfo.value.response["Error"]["Code"] == "NoSuchConfigurationAggregatorException"
    emulator.configure(config_aggregators=["org@eu-west-1"])
    with pytest.raises(ClientError):
        select(emulator, a["id"])  # it exists in another Region only
    assert config_client(emulator, "eu-west-1").select_aggregate_resource_config(
        Expression=query(a["id"]), ConfigurationAggregatorName="org")["Results"] == []


@pytest.mark.parametrize("expression", [
    "SELECT resourceId WHERE resourceType = 'AWS::KMS::Key'",
    "SELECT accountId, awsRegion, resourceId, configuration.customKeyStoreId "
    "WHERE resourceType = 'AWS::S3::Bucket' AND configuration.customKeyStoreId IN ('cks-1')",
    "SELECT accountId, awsRegion, resourceId, configuration.customKeyStoreId "
    "WHERE resourceType = 'AWS::KMS::Key' AND configuration.customKeyStoreId IN ()",
])
def test_any_other_query_is_a_clear_error(emulator: Emulator, expression: str) -> None:
    emulator.configure(config_aggregators=["org"])
    with pytest.raises(ClientError) as excinfo:
        config_client(emulator).select_aggregate_resource_config(
            Expression=expression, ConfigurationAggregatorName="org")
    error = excinfo.value.response["Error"]
    assert error["Code"] == "InvalidExpressionException"
    assert "emulator" in error["Message"]


def test_bad_knob_values_are_refused(emulator: Emulator) -> None:
    for knobs in ({"config_lag_seconds": -1}, {"config_aggregators": ["bad name!"]},
                  {"listkeys_hide": 5}):
        with pytest.raises(Exception, match="config_|listkeys_"):
            emulator.configure(**knobs)


def test_a_hub_without_the_permission(emulator: Emulator) -> None:
    emulator.configure(config_aggregators=["org"], fault_rate=1.0,
                       fault_operations="config:SelectAggregateResourceConfig")
    with pytest.raises(ClientError) as excinfo:
        select(emulator, "cks-1234567890abcdef0")
    assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException"
