"""GetKeyLastUsage, cryptographic calls by key state, grants and tags on custom-store keys, and
the seed fields that model older keys (real boto3 over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator

from .conftest import connect, disconnect, error_of, hsm_store, key_state

TRACKING_START = datetime(2026, 4, 23, tzinfo=UTC)
APP = "AKIAAPPLICATION00001"
APP_ARN = "arn:aws:iam::123456789012:role/app"


def client(emulator: Emulator, service: str, access_key_id: str = "testing") -> Any:
    return boto3.client(
        service,
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key="secret",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def seeded_store_key(emulator: Emulator, **store: Any) -> tuple[str, str]:
    out = emulator.seed({"stores": [{"name": "hsm", "keys": 1, **store}]})
    entry = out["stores"][0]
    return entry["id"], entry["key_ids"][0]


def test_an_unused_key_has_empty_last_usage(kms: Any, emulator: Emulator) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    got = kms.get_key_last_usage(KeyId=key_id)
    assert got["KeyId"] == key_id and got["KeyLastUsage"] == {}
    assert got["TrackingStartDate"] == got["KeyCreationDate"]  # created after tracking began
    _, old = seeded_store_key(emulator, created="2025-01-02T03:04:05Z")
    got = kms.get_key_last_usage(KeyId=f"arn:aws:kms:us-east-1:123456789012:key/{old}")
    assert got["KeyCreationDate"] == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got["TrackingStartDate"] == TRACKING_START
    assert kms.describe_key(KeyId=old)["KeyMetadata"]["CreationDate"] == got["KeyCreationDate"]


def test_encrypt_decrypt_and_generate_data_key_feed_last_usage(
    kms: Any, emulator: Emulator
) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    trail = client(emulator, "cloudtrail")
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"] == "Encrypt"
    emulator.advance(3600)
    answer = kms.decrypt(CiphertextBlob=blob)
    usage = kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]
    assert usage["Operation"] == "Decrypt"
    assert usage["KmsRequestId"] == answer["ResponseMetadata"]["RequestId"]
    assert abs((usage["Timestamp"] - emulator.now()).total_seconds()) < 30
    events = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": usage["CloudTrailEventId"]}]
    )["Events"]
    assert [e["EventName"] for e in events] == ["Decrypt"]
    kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"] == "GenerateDataKey"
    kms.generate_data_key_without_plaintext(KeyId=key_id, KeySpec="AES_256")
    got = kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"]
    assert got == "GenerateDataKeyWithoutPlaintext"
    kms.describe_key(KeyId=key_id)  # not cryptographic: not tracked
    assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"] == got


def test_re_encrypt_records_both_keys(kms: Any) -> None:
    source = kms.create_key()["KeyMetadata"]["KeyId"]
    target = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=source, Plaintext=b"x")["CiphertextBlob"]
    kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=target)
    for key_id in (source, target):
        assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"] == "ReEncrypt"


def test_failed_calls_leave_last_usage_untouched(kms: Any, emulator: Emulator) -> None:
    key = kms.create_key()["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    before = kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]
    kms.disable_key(KeyId=key_id)
    with pytest.raises(kms.exceptions.DisabledException) as excinfo:
        kms.decrypt(CiphertextBlob=blob)
    assert error_of(excinfo) == ("DisabledException", 400, f"{arn} is disabled.")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("decrypt", {"CiphertextBlob": blob}),
        ("encrypt", {"KeyId": key_id, "Plaintext": b"x"}),
        ("generate_data_key", {"KeyId": arn, "KeySpec": "AES_256"}),
    ]
    for method, kwargs in calls:
        with pytest.raises(kms.exceptions.KMSInvalidStateException) as excinfo:
            getattr(kms, method)(**kwargs)
        assert error_of(excinfo) == ("KMSInvalidStateException", 400, f"{arn} is pending deletion.")
    # GetKeyLastUsage answers in every state and still shows the last successful use.
    assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"] == before


def test_pending_deletion_error_code_is_a_knob(kms: Any, emulator: Emulator) -> None:
    emulator.configure(pending_deletion_crypto_error="DisabledException")
    key = kms.create_key()["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=key["KeyId"])
    with pytest.raises(kms.exceptions.DisabledException) as excinfo:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert error_of(excinfo)[2] == f"{key['Arn']} is pending deletion."
    with pytest.raises(Exception, match="pending_deletion_crypto_error"):
        emulator.configure(pending_deletion_crypto_error="Nope")


def test_custom_store_keys_by_state(kms: Any, emulator: Emulator) -> None:
    store = hsm_store(kms)
    connect(kms, emulator, store)
    key = kms.create_key(CustomKeyStoreId=store, Origin="AWS_CLOUDHSM")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    disconnect(kms, emulator, store)
    assert key_state(kms, key_id) == "Unavailable"
    with pytest.raises(kms.exceptions.KMSInvalidStateException) as excinfo:
        kms.decrypt(CiphertextBlob=blob)
    assert error_of(excinfo)[2] == f"{arn} is unavailable."
    assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"] == "Decrypt"
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(kms.exceptions.KMSInvalidStateException) as excinfo:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert error_of(excinfo)[2] == f"{arn} is pending deletion."


def test_tracking_start_and_recording_delay_knobs(kms: Any, emulator: Emulator) -> None:
    emulator.configure(last_usage_delay=3600)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"] == {}
    emulator.advance(3601)
    assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"] == "Encrypt"
    later = (emulator.now() + timedelta(days=1)).isoformat()
    config = emulator.configure(key_usage_tracking_start=later)
    assert config["key_usage_tracking_start"].endswith("Z")
    got = kms.get_key_last_usage(KeyId=key_id)
    assert got["KeyLastUsage"] == {}  # used before tracking began: no record
    assert got["TrackingStartDate"] > got["KeyCreationDate"]


def test_get_key_last_usage_takes_key_id_or_arn_only(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.get_key_last_usage(KeyId="alias/app")
    with pytest.raises(kms.exceptions.InvalidArnException):
        kms.get_key_last_usage(KeyId="arn:aws:kms:us-east-1:123456789012:alias/app")
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.get_key_last_usage(KeyId="11111111-2222-3333-4444-555555555555")


def test_grants_and_tags_on_store_keys_in_every_state(kms: Any, emulator: Emulator) -> None:
    store = hsm_store(kms)
    connect(kms, emulator, store)
    key = kms.create_key(CustomKeyStoreId=store, Origin="AWS_CLOUDHSM")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    kms.create_grant(
        KeyId=key_id, GranteePrincipal="rds.us-east-1.amazonaws.com", Operations=["Decrypt"]
    )
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "app", "TagValue": "billing"}])
    kms.disable_key(KeyId=key_id)
    with pytest.raises(kms.exceptions.DisabledException):
        kms.create_grant(KeyId=key_id, GranteePrincipal=APP_ARN, Operations=["Decrypt"])
    kms.enable_key(KeyId=key_id)
    disconnect(kms, emulator, store)  # Unavailable: CreateGrant and TagResource succeed
    kms.create_grant(KeyId=arn, GranteePrincipal=APP_ARN, Operations=["Encrypt"], Name="app")
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "state", "TagValue": "unavailable"}])
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.create_grant(KeyId=key_id, GranteePrincipal=APP_ARN, Operations=["Decrypt"])
    grants = kms.list_grants(KeyId=key_id)["Grants"]  # PendingDeletion: still listed
    assert {g["GranteePrincipal"] for g in grants} == {"rds.us-east-1.amazonaws.com", APP_ARN}
    assert all(g["KeyId"] == arn and g["IssuingAccount"].endswith(":root") for g in grants)
    assert len(kms.list_resource_tags(KeyId=key_id)["Tags"]) == 2
    page = kms.list_grants(KeyId=key_id, Limit=1)
    assert page["Truncated"] and len(page["Grants"]) == 1
    rest = kms.list_grants(KeyId=key_id, Limit=1, Marker=page["NextMarker"])
    assert not rest["Truncated"] and rest["Grants"][0]["GrantId"] != page["Grants"][0]["GrantId"]


def test_seed_gives_store_keys_tags_grants_age_and_last_use(kms: Any, emulator: Emulator) -> None:
    emulator.configure(principals={APP: APP_ARN})
    out = emulator.seed(
        {
            "stores": [
                {
                    "name": "hsm",
                    "keys": 3,
                    "created_days_ago": 400,
                    "tags": {"team": "payments"},
                    "grants": [
                        {"grantee": "rds.us-east-1.amazonaws.com", "operations": ["Decrypt"]}
                    ],
                    "per_key": [
                        {"last_used": {"operation": "Decrypt", "days_ago": 2,
                                       "access_key_id": APP}},
                        {"tags": [{"TagKey": "team", "TagValue": "other"}], "grants": []},
                    ],
                }
            ]
        }
    )
    used, other, plain = out["stores"][0]["key_ids"]
    usage = kms.get_key_last_usage(KeyId=used)
    assert usage["KeyLastUsage"]["Operation"] == "Decrypt"
    assert usage["TrackingStartDate"] == TRACKING_START
    assert usage["KeyCreationDate"] < TRACKING_START
    age = emulator.now() - usage["KeyLastUsage"]["Timestamp"]
    assert timedelta(days=2) - timedelta(minutes=1) < age < timedelta(days=2, minutes=1)
    trail = client(emulator, "cloudtrail")
    event_id = usage["KeyLastUsage"]["CloudTrailEventId"]
    event = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": event_id}]
    )["Events"][0]
    assert event["EventName"] == "Decrypt" and event["Username"] == "app"
    assert APP_ARN in event["CloudTrailEvent"]
    assert kms.get_key_last_usage(KeyId=plain)["KeyLastUsage"] == {}
    assert kms.list_resource_tags(KeyId=other)["Tags"] == [{"TagKey": "team", "TagValue": "other"}]
    assert kms.list_grants(KeyId=other)["Grants"] == []
    grants = kms.list_grants(KeyId=plain)["Grants"]
    assert [g["GranteePrincipal"] for g in grants] == ["rds.us-east-1.amazonaws.com"]
    with pytest.raises(Exception, match="not a tracked operation"):
        emulator.seed({"stores": [{"name": "x", "keys": 1, "last_used": {"operation": "Nope"}}]})


def test_quotas_for_get_key_last_usage(kms: Any, emulator: Emulator) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    emulator.configure(quotas="aws")
    codes = []
    for _ in range(12):  # 5 requests per second
        try:
            kms.get_key_last_usage(KeyId=key_id)
            codes.append("ok")
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
    assert codes.count("ok") >= 5 and "ThrottlingException" in codes
    for _ in range(20):  # ListGrants: 100 per second
        kms.list_grants(KeyId=key_id)
