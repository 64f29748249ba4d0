"""CloudTrail on the emulator's endpoint: KMS events, DeleteKey at the end of a waiting period,
LookupEvents semantics, callers told apart by their access key (real boto3 over HTTP)."""

from __future__ import annotations

import json
import re
from datetime import UTC, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator
from ksdelete.emulator.client import EmulatorError

from .conftest import connect, disconnect, error_of, hsm_store, xks_store
from .test_last_usage import APP, APP_ARN, client

DAY = 86400.0
OPERATOR_ARN = "arn:aws:iam::123456789012:user/testing"


def events(trail: Any, name: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    if name is not None:
        kwargs["LookupAttributes"] = [{"AttributeKey": "EventName", "AttributeValue": name}]
    out = []
    for page in trail.get_paginator("lookup_events").paginate(**kwargs):
        out.extend(page["Events"])
    return out


def record(event: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(event["CloudTrailEvent"])
    return doc


def test_failed_decrypt_on_a_pending_key_names_the_application(
    kms: Any, emulator: Emulator
) -> None:
    emulator.configure(principals={APP: APP_ARN})
    app = client(emulator, "kms", APP)
    trail = client(emulator, "cloudtrail")
    key = kms.create_key()["KeyMetadata"]
    blob = app.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    with pytest.raises(ClientError):
        app.decrypt(CiphertextBlob=blob)
    (failed,) = events(trail, "Decrypt")
    doc = record(failed)
    assert doc["errorCode"] == "KMSInvalidStateException"
    assert doc["errorMessage"] == f"{key['Arn']} is pending deletion."
    assert re.fullmatch(r".* is pending deletion\.", doc["errorMessage"])  # AWS's alarm filter
    assert doc["responseElements"] is None and doc["readOnly"] is True
    assert doc["userIdentity"]["arn"] == APP_ARN and doc["userIdentity"]["accessKeyId"] == APP
    assert doc["resources"] == [
        {"accountId": "123456789012", "type": "AWS::KMS::Key", "ARN": key["Arn"]}
    ]
    assert doc["requestParameters"]["keyId"] == key["Arn"]
    assert doc["eventSource"] == "kms.amazonaws.com" and doc["eventType"] == "AwsApiCall"
    assert doc["awsRegion"] == "us-east-1" and doc["recipientAccountId"] == "123456789012"
    for member in ("eventVersion", "eventTime", "sourceIPAddress", "userAgent", "requestID",
                   "eventID"):
        assert doc[member], member
    assert failed["Username"] == "app" and failed["AccessKeyId"] == APP
    # LookupEvents' resource index is not the record's `resources`: AWS fills it for
    # management operations that change a key, not for cryptographic ones (facts corr. 1).
    assert failed["Resources"] == []
    assert failed["ReadOnly"] == "true" and failed["EventId"] == doc["eventID"]
    by_key = events(
        trail, LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": key["Arn"]}]
    )
    assert [e["EventName"] for e in by_key] == ["ScheduleKeyDeletion", "CreateKey"]
    assert by_key[0]["Resources"] == [
        {"ResourceType": "AWS::KMS::Key", "ResourceName": key["Arn"]}
    ]
    emulator.configure(cloudtrail_index_crypto=True)  # issue 22's probe: index them anyway
    by_key = events(
        trail, LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": key["Arn"]}]
    )
    assert [e["EventName"] for e in by_key] == ["Decrypt", "ScheduleKeyDeletion", "Encrypt",
                                                "CreateKey"]
    assert events(trail, "Decrypt")[0]["Resources"] == [
        {"ResourceType": "AWS::KMS::Key", "ResourceName": key["Arn"]}
    ]
    by_user = events(
        trail, LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "app"}]
    )
    assert [e["EventName"] for e in by_user] == ["Decrypt", "Encrypt"]


def test_schedule_cancel_and_state_change_events(kms: Any, emulator: Emulator) -> None:
    trail = client(emulator, "cloudtrail")
    key = kms.create_key()["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "b"}])
    kms.untag_resource(KeyId=key_id, TagKeys=["a"])
    kms.disable_key(KeyId=key_id)
    kms.enable_key(KeyId=key_id)
    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=20)
    kms.cancel_key_deletion(KeyId=arn)
    names = [e["EventName"] for e in events(trail)]
    assert names == ["CancelKeyDeletion", "ScheduleKeyDeletion", "EnableKey", "DisableKey",
                     "UntagResource", "TagResource", "CreateKey"]
    docs = {e["EventName"]: record(e) for e in events(trail)}
    schedule = docs["ScheduleKeyDeletion"]
    assert schedule["requestParameters"] == {"keyId": key_id, "pendingWindowInDays": 20}
    elements = schedule["responseElements"]
    assert elements["keyId"] == arn and elements["keyState"] == "PendingDeletion"
    assert elements["pendingWindowInDays"] == 20
    assert re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2} [AP]M",
                        elements["deletionDate"])
    deletion = scheduled["DeletionDate"].astimezone(UTC)  # the same instant, e.g.
    clock = f"{deletion.hour % 12 or 12}:{deletion:%M:%S %p}"  # "Nov 2, 2021, 11:25:25 PM"
    assert elements["deletionDate"] == f"{deletion:%b} {deletion.day}, {deletion.year}, {clock}"
    assert docs["CancelKeyDeletion"]["requestParameters"] == {"keyId": arn}
    assert docs["CancelKeyDeletion"]["responseElements"] == {"keyId": arn}
    assert docs["TagResource"]["requestParameters"] == {
        "keyId": key_id, "tags": [{"tagKey": "a", "tagValue": "b"}]
    }
    assert docs["UntagResource"]["requestParameters"] == {"keyId": key_id, "tagKeys": ["a"]}
    for name in ("EnableKey", "DisableKey", "TagResource", "UntagResource"):
        assert docs[name]["responseElements"] is None
    for name in ("ScheduleKeyDeletion", "CancelKeyDeletion", "EnableKey", "DisableKey"):
        assert docs[name]["readOnly"] is False
        assert docs[name]["userIdentity"]["type"] == "IAMUser"
        assert docs[name]["userIdentity"]["arn"] == OPERATOR_ARN
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.cancel_key_deletion(KeyId=key_id)
    failed = record(events(trail, "CancelKeyDeletion")[0])
    assert failed["errorMessage"] == f"{arn} is not pending deletion."


def _deleted_event(trail: Any, arn: str) -> dict[str, Any]:
    (event,) = [e for e in events(trail, "DeleteKey") if record(e)["resources"][0]["ARN"] == arn]
    return record(event)


def test_delete_key_event_success_while_connected_failure_after_disconnect(
    kms: Any, emulator: Emulator
) -> None:
    trail = client(emulator, "cloudtrail")
    out = emulator.seed({"stores": [{"name": "kept", "keys": 1}, {"name": "cut", "keys": 1}]})
    kept, cut = out["stores"]
    arns = {}
    for store in (kept, cut):
        scheduled = kms.schedule_key_deletion(KeyId=store["key_ids"][0], PendingWindowInDays=7)
        arns[store["name"]] = scheduled["KeyId"]
    disconnect(kms, emulator, cut["id"])  # during the waiting period
    emulator.advance(8 * DAY)
    assert kms.list_keys()["Keys"] == []
    for name, store, status in (("kept", kept, "SUCCESS"), ("cut", cut, "FAILURE")):
        doc = _deleted_event(trail, arns[name])
        assert doc["eventType"] == "AwsServiceEvent" and doc["eventName"] == "DeleteKey"
        assert doc["userIdentity"] == {"accountId": "123456789012", "invokedBy": "AWS Internal"}
        assert doc["sourceIPAddress"] == doc["userAgent"] == "AWS Internal"
        assert doc["requestParameters"] is None
        assert doc["responseElements"] == {"keyId": arns[name]}
        data = doc["additionalEventData"]
        assert data["customKeyStoreId"] == store["id"]
        assert re.fullmatch(r"cluster-[2-7a-z]{11,16}", data["clusterId"])
        backing = json.loads(data["backingKeys"])
        statuses = json.loads(data["backingKeysDeletionStatus"])
        # AWS's current example (ct-delete-key.html): backingKeyId only, no keyHandle.
        assert len(backing) == 1 and set(backing[0]) == {"backingKeyId"}
        assert statuses == [dict(backing[0], deletionStatus=status)]
    # the event time is the end of the window, not the time of the lookup
    doc = _deleted_event(trail, arns["kept"])
    assert doc["eventTime"] <= (emulator.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_delete_key_event_for_xks_and_plain_keys(kms: Any, emulator: Emulator) -> None:
    trail = client(emulator, "cloudtrail")
    store = xks_store(kms)
    connect(kms, emulator, store)
    xks = kms.create_key(CustomKeyStoreId=store, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-1")
    plain = kms.create_key()["KeyMetadata"]["Arn"]
    for arn in (xks["KeyMetadata"]["Arn"], plain):
        kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
    emulator.advance(8 * DAY)
    doc = _deleted_event(trail, xks["KeyMetadata"]["Arn"])
    assert doc["additionalEventData"] == {"customKeyStoreId": store, "xksKeyId": "ext-1"}
    assert "additionalEventData" not in _deleted_event(trail, plain)


def test_lookup_pagination_and_next_token(kms: Any, emulator: Emulator) -> None:
    trail = client(emulator, "cloudtrail")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(7):
        kms.describe_key(KeyId=key_id)
    first = trail.lookup_events(MaxResults=3)
    assert len(first["Events"]) == 3 and "NextToken" in first
    seen = [e["EventId"] for e in first["Events"]]
    token = first["NextToken"]
    while token:
        page = trail.lookup_events(MaxResults=3, NextToken=token)
        seen += [e["EventId"] for e in page["Events"]]
        token = page.get("NextToken")
    assert len(seen) == len(set(seen)) == 8
    times = [e["EventTime"] for e in trail.lookup_events()["Events"]]
    assert times == sorted(times, reverse=True)
    assert len(trail.lookup_events()["Events"]) == 8  # default MaxResults 50
    with pytest.raises(trail.exceptions.InvalidNextTokenException):
        trail.lookup_events(
            NextToken=first["NextToken"],
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeKey"}],
        )
    with pytest.raises(trail.exceptions.InvalidNextTokenException):
        trail.lookup_events(NextToken="garbage")
    with pytest.raises(ClientError) as excinfo:
        trail.lookup_events(MaxResults=51)
    assert error_of(excinfo)[0] == "InvalidMaxResultsException"
    with pytest.raises(trail.exceptions.InvalidLookupAttributesException):
        trail.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "DescribeKey"},
                {"AttributeKey": "ReadOnly", "AttributeValue": "true"},
            ]
        )
    only = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "false"}]
    )["Events"]
    assert [e["EventName"] for e in only] == ["CreateKey"]


def test_lookup_time_range_and_90_days(kms: Any, emulator: Emulator) -> None:
    trail = client(emulator, "cloudtrail")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    created = trail.lookup_events()["Events"][0]["EventTime"]
    emulator.advance(DAY)
    kms.describe_key(KeyId=key_id)
    described = trail.lookup_events(MaxResults=1)["Events"][0]["EventTime"]
    window = trail.lookup_events(StartTime=created, EndTime=created)["Events"]  # inclusive
    assert [e["EventName"] for e in window] == ["CreateKey"]
    assert [e["EventName"] for e in trail.lookup_events(StartTime=described)["Events"]] == [
        "DescribeKey"
    ]
    assert [e["EventName"] for e in trail.lookup_events(EndTime=described)["Events"]] == [
        "DescribeKey", "CreateKey"
    ]
    with pytest.raises(trail.exceptions.InvalidTimeRangeException):
        trail.lookup_events(StartTime=described, EndTime=created)
    emulator.advance(89.5 * DAY)  # CreateKey is now older than 90 days, DescribeKey not yet
    assert [e["EventName"] for e in trail.lookup_events()["Events"]] == ["DescribeKey"]
    emulator.advance(DAY)
    assert trail.lookup_events()["Events"] == []


def test_lookup_events_is_throttled_at_two_per_second(emulator: Emulator) -> None:
    trail = client(emulator, "cloudtrail")
    emulator.configure(quotas="aws")
    codes = []
    for _ in range(6):
        try:
            trail.lookup_events()
            codes.append("ok")
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            codes.append(exc.response["Error"]["Code"])
    assert codes[:2] == ["ok", "ok"] and "ThrottlingException" in codes
    emulator.configure(quotas="off")
    for _ in range(6):
        trail.lookup_events()


def test_callers_and_sts_follow_the_principal_mapping(emulator: Emulator) -> None:
    sts = client(emulator, "sts")
    assert sts.get_caller_identity()["Arn"] == OPERATOR_ARN
    emulator.configure(principals={APP: APP_ARN})
    identity = client(emulator, "sts", APP).get_caller_identity()
    assert identity["Arn"] == APP_ARN and identity["Account"] == "123456789012"
    assert identity["UserId"].endswith(":app")


def test_store_operations_and_resource_name_knob(kms: Any, emulator: Emulator) -> None:
    trail = client(emulator, "cloudtrail")
    store = hsm_store(kms)
    connect(kms, emulator, store)
    emulator.configure(cloudtrail_resource_name="key_id")
    key = kms.create_key(CustomKeyStoreId=store, Origin="AWS_CLOUDHSM")["KeyMetadata"]
    names = [e["EventName"] for e in events(trail)]
    assert names[0] == "CreateKey" and "ConnectCustomKeyStore" in names
    assert "CreateCustomKeyStore" in names
    create = events(trail, "CreateCustomKeyStore")[0]
    doc = record(create)
    assert doc["responseElements"] == {"customKeyStoreId": store}
    assert "keyStorePassword" not in doc["requestParameters"]
    made = events(trail, "CreateKey")[0]
    assert made["Resources"] == [{"ResourceType": "AWS::KMS::Key", "ResourceName": key["KeyId"]}]
    assert record(made)["responseElements"]["keyMetadata"]["arn"] == key["Arn"]


def test_resource_name_finds_management_operations_that_change_a_key_only(
    kms: Any, emulator: Emulator
) -> None:
    trail = client(emulator, "cloudtrail")
    key = kms.create_key()["KeyMetadata"]
    arn = key["Arn"]
    kms.tag_resource(KeyId=arn, Tags=[{"TagKey": "a", "TagValue": "b"}])
    kms.untag_resource(KeyId=arn, TagKeys=["a"])
    kms.encrypt(KeyId=arn, Plaintext=b"x")
    kms.generate_data_key(KeyId=arn, KeySpec="AES_256")
    kms.describe_key(KeyId=arn)
    kms.list_resource_tags(KeyId=arn)
    kms.disable_key(KeyId=arn)
    kms.enable_key(KeyId=arn)
    kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
    with pytest.raises(ClientError):
        kms.encrypt(KeyId=arn, Plaintext=b"x")
    with pytest.raises(ClientError):
        kms.create_grant(KeyId=arn, GranteePrincipal=APP_ARN, Operations=["Decrypt"])
    kms.cancel_key_deletion(KeyId=arn)
    by_key = events(
        trail, LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": arn}]
    )
    assert [e["EventName"] for e in by_key] == [
        "CancelKeyDeletion", "ScheduleKeyDeletion", "EnableKey", "DisableKey", "UntagResource",
        "TagResource", "CreateKey"]
    by_type = events(
        trail, LookupAttributes=[{"AttributeKey": "ResourceType", "AttributeValue":
                                  "AWS::KMS::Key"}]
    )
    assert [e["EventName"] for e in by_type] == [e["EventName"] for e in by_key]
    # The records still carry the key, whatever the index says.
    for name in ("Encrypt", "GenerateDataKey", "CreateGrant", "DescribeKey"):
        assert record(events(trail, name)[0])["resources"][0]["ARN"] == arn, name


def test_cloudtrail_delay_holds_events_back_in_emulated_time(
    kms: Any, emulator: Emulator
) -> None:
    trail = client(emulator, "cloudtrail")
    emulator.configure(cloudtrail_delay=600)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert events(trail) == []
    emulator.advance(599)
    assert events(trail, "CreateKey") == []
    emulator.advance(1)
    assert [e["EventName"] for e in events(trail)] == ["CreateKey"]
    kms.describe_key(KeyId=key_id)
    assert [e["EventName"] for e in events(trail)] == ["CreateKey"]
    emulator.advance(600)
    assert [e["EventName"] for e in events(trail)] == ["DescribeKey", "CreateKey"]
    with pytest.raises(EmulatorError):
        emulator.configure(cloudtrail_delay=-1)


def test_filter_log_events_over_the_trail_log_group(kms: Any, emulator: Emulator) -> None:
    logs = client(emulator, "logs")
    with pytest.raises(ClientError) as excinfo:
        logs.filter_log_events(logGroupName="trail-logs")
    assert error_of(excinfo)[0] == "ResourceNotFoundException"
    emulator.configure(cloudtrail_log_group="trail-logs", principals={APP: APP_ARN})
    key = kms.create_key()["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    for _ in range(3):
        with pytest.raises(ClientError):
            client(emulator, "kms", APP).encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    alarm = '{ $.eventSource = kms* && $.errorMessage = "* is pending deletion." }'
    found = logs.filter_log_events(logGroupName="trail-logs", filterPattern=alarm)["events"]
    assert [json.loads(e["message"])["eventName"] for e in found] == ["Encrypt"] * 3
    assert [e["timestamp"] for e in found] == sorted(e["timestamp"] for e in found)
    either = ('{ ($.eventName = "ScheduleKeyDeletion") || ($.errorCode = "KMSInvalidState*" '
              '&& $.userIdentity.arn = "' + APP_ARN + '") }')
    names = [json.loads(e["message"])["eventName"] for e in logs.filter_log_events(
        logGroupName="trail-logs", filterPattern=either)["events"]]
    assert names == ["ScheduleKeyDeletion", "Encrypt", "Encrypt", "Encrypt"]
    first = logs.filter_log_events(logGroupName="trail-logs", filterPattern=alarm, limit=2)
    rest = logs.filter_log_events(logGroupName="trail-logs", filterPattern=alarm, limit=2,
                                  nextToken=first["nextToken"])
    assert len(first["events"]) == 2 and len(rest["events"]) == 1 and "nextToken" not in rest
    for bad in ("Encrypt", "{ $.eventName = }", '{ $.eventName IS "x" }', "[a, b]"):
        with pytest.raises(ClientError) as excinfo:
            logs.filter_log_events(logGroupName="trail-logs", filterPattern=bad)
        assert error_of(excinfo)[:2] == ("InvalidParameterException", 400), bad
    emulator.configure(cloudtrail_delay=600)
    kms.describe_key(KeyId=key["KeyId"])
    described = '{ $.eventName = "DescribeKey" }'
    assert logs.filter_log_events(logGroupName="trail-logs", filterPattern=described)[
        "events"] == []
