"""STS AssumeRole: credentials whose calls land in the role's account (its KMS stores, CloudTrail
Event history, quotas, GetCallerIdentity), and the knobs that deny, demand an ExternalId or
redirect a role to another account. Real boto3 over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import boto3
import botocore.parsers
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator, EmulatorConfig, EmulatorError, shapes, sts

A = "123456789012"  # the emulator's default account
B = "222222222222"
C = "333333333333"
ROLE_B = f"arn:aws:iam::{B}:role/ksdelete-target"
ROLE_C = f"arn:aws:iam::{C}:role/path/to/ksdelete-target"
HUB = f"arn:aws:iam::{A}:user/testing"


def client(emulator: Emulator, service: str, creds: dict[str, Any] | None = None,
           region: str = "us-east-1") -> Any:
    keys: dict[str, Any] = {"aws_access_key_id": "testing", "aws_secret_access_key": "x"}
    if creds is not None:
        keys = {"aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"]}
    return boto3.client(service, endpoint_url=emulator.endpoint_url, region_name=region,
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
                        **keys)


def assume(emulator: Emulator, role: str = ROLE_B, *, creds: dict[str, Any] | None = None,
           **params: Any) -> dict[str, Any]:
    answer: dict[str, Any] = client(emulator, "sts", creds).assume_role(
        RoleArn=role, RoleSessionName=params.pop("RoleSessionName", "ksdelete-run-1"), **params)
    return answer


def error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    err = excinfo.value.response
    return (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"],
            err["Error"].get("Message", ""))


def sts_calls(emulator: Emulator) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c.get("service") == "sts"]


def test_assume_into_another_account_sees_its_seeded_store(emulator: Emulator) -> None:
    seeded_b = emulator.seed({"account": B, "stores": [{"name": "hsm-b", "keys": 2}]})
    emulator.seed({"stores": [{"name": "hsm-a", "keys": 1}]})
    before = emulator.now()
    answer = assume(emulator, DurationSeconds=1800)
    creds, user = answer["Credentials"], answer["AssumedRoleUser"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40 and creds["SessionToken"]
    # Expiration is the emulator clock's now + DurationSeconds.
    expires = creds["Expiration"] - before
    assert timedelta(seconds=1795) < expires < timedelta(seconds=1810)
    assert user["Arn"] == f"arn:aws:sts::{B}:assumed-role/ksdelete-target/ksdelete-run-1"
    assert user["AssumedRoleId"].startswith("AROA")
    assert user["AssumedRoleId"].endswith(":ksdelete-run-1")

    ident = client(emulator, "sts", creds).get_caller_identity()
    assert (ident["Account"], ident["Arn"], ident["UserId"]) == (
        B, user["Arn"], user["AssumedRoleId"])
    kms = client(emulator, "kms", creds)
    stores = kms.describe_custom_key_stores()["CustomKeyStores"]
    assert [s["CustomKeyStoreId"] for s in stores] == [seeded_b["stores"][0]["id"]]
    assert {k["KeyId"] for k in kms.list_keys()["Keys"]} == set(
        seeded_b["stores"][0]["key_ids"])
    # the same credentials in another Region: the same account, its (empty) Region
    assert client(emulator, "kms", creds, "eu-west-1").list_keys()["Keys"] == []
    # the hub's own credentials stay in the default account
    assert client(emulator, "sts").get_caller_identity()["Account"] == A
    assert [s["CustomKeyStoreName"] for s in client(emulator, "kms").describe_custom_key_stores()[
        "CustomKeyStores"]] == ["hsm-a"]


def test_a_role_sessions_calls_are_assumed_role_events_in_that_account(
        emulator: Emulator) -> None:
    seeded = emulator.seed({"account": B, "stores": [{"name": "hsm-b", "keys": 1}]})
    answer = assume(emulator)
    creds = answer["Credentials"]
    key = seeded["stores"][0]["key_ids"][0]
    client(emulator, "kms", creds).schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    calls = [c for c in emulator.calls() if c.get("operation") == "ScheduleKeyDeletion"]
    assert [c["account"] for c in calls] == [B]
    trail = client(emulator, "cloudtrail", creds)
    events = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName",
                           "AttributeValue": "ScheduleKeyDeletion"}],
        StartTime=datetime.now(UTC) - timedelta(days=1),
        EndTime=datetime.now(UTC) + timedelta(days=1))["Events"]
    assert len(events) == 1 and events[0]["Username"] == "ksdelete-run-1"
    assert events[0]["AccessKeyId"] == creds["AccessKeyId"]
    ident = json.loads(events[0]["CloudTrailEvent"])["userIdentity"]
    assert ident["type"] == "AssumedRole"
    assert ident["arn"] == answer["AssumedRoleUser"]["Arn"]
    assert ident["principalId"] == answer["AssumedRoleUser"]["AssumedRoleId"]
    assert ident["accountId"] == B
    issuer = ident["sessionContext"]["sessionIssuer"]
    assert (issuer["type"], issuer["arn"], issuer["accountId"]) == ("Role", ROLE_B, B)


def test_each_assume_gets_fresh_keys_and_is_recorded(emulator: Emulator) -> None:
    first = assume(emulator)["Credentials"]
    second = assume(emulator, RoleSessionName="another")["Credentials"]
    assert first["AccessKeyId"] != second["AccessKeyId"]
    assert first["SessionToken"] != second["SessionToken"]
    calls = sts_calls(emulator)
    assert [(c["operation"], c["status"], c["account"], c["role_arn"]) for c in calls] == [
        ("AssumeRole", 200, A, ROLE_B), ("AssumeRole", 200, A, ROLE_B)]


def test_the_answer_matches_botocores_sts_output_shape(emulator: Emulator) -> None:
    status, xml = raw_sts(emulator, "AssumeRole", {
        "RoleArn": ROLE_B, "RoleSessionName": "shape",
        "SourceIdentity": "operator@example.com"})
    assert status == 200
    operation = shapes.operation("AssumeRole", "sts")
    parsed = botocore.parsers.QueryParser().parse(
        {"body": xml, "headers": {}, "status_code": 200}, operation.output_shape)
    parsed.pop("ResponseMetadata")
    parsed["Credentials"]["Expiration"] = parsed["Credentials"]["Expiration"].timestamp()
    assert shapes.validate(parsed, operation.output_shape) == []
    assert parsed["SourceIdentity"] == "operator@example.com"
    assert set(parsed) == {"Credentials", "AssumedRoleUser", "SourceIdentity"}


@pytest.mark.parametrize(("role", "session", "duration", "words"), [
    ("arn:aws:iam::22222222222:role/short-account", "s1", None, "Request ARN is invalid"),
    (f"arn:aws:iam::{B}:user/not-a-role", "s1", None, "Request ARN is invalid"),
    ("not-an-arn-but-long-enough", "s1", None, "not-an-arn-but-long-enough is invalid"),
    ("arn:a:a::aaaaaaaaaa:", "s1", None, "arn:a:a::aaaaaaaaaa: is invalid"),
    ("arn:aws:iam::123456789012:oidc-provider/x", "s1", None, "Request ARN is invalid"),
    ("arn:aws:iam::2", "s1", None, "at 'roleArn' failed to satisfy constraint: Member must "
                                  "have length greater than or equal to 20"),
    (ROLE_B, "x", None, "at 'roleSessionName' failed to satisfy constraint: Member must have "
                        "length greater than or equal to 2"),
    (ROLE_B, "has space", None, "Value 'has space' at 'roleSessionName' failed to satisfy "
                                "constraint: Member must satisfy regular expression pattern"),
    (ROLE_B, "s" * 65, None, "Member must have length less than or equal to 64"),
    (ROLE_B, "s1", 899, "at 'durationSeconds' failed to satisfy constraint: Member must have "
                        "value greater than or equal to 900"),
    (ROLE_B, "s1", 43201, "Member must have value less than or equal to 43200"),
])
def test_bad_parameters_are_validation_errors(emulator: Emulator, role: str, session: str,
                                              duration: int | None, words: str) -> None:
    # botocore checks only min lengths and ranges client-side: send the raw query instead.
    params = {"RoleArn": role, "RoleSessionName": session}
    if duration is not None:
        params["DurationSeconds"] = str(duration)
    status, code, message = raw_error(emulator, "AssumeRole", params)
    assert (status, code) == (400, "ValidationError")
    assert words in message
    assert sts_calls(emulator)[-1]["error"] == "ValidationError"


def raw_sts(emulator: Emulator, action: str, params: dict[str, str]) -> tuple[int, bytes]:
    """A signed query-protocol request as sent (botocore checks some limits client-side)."""
    body = urllib.parse.urlencode({"Action": action, "Version": "2011-06-15", **params})
    request = AWSRequest("POST", emulator.endpoint_url + "/", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials("testing", "x"), "sts", "us-east-1").add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(prepared.url, data=body.encode(),
                                  headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(sent) as answer:  # noqa: S310 (the local emulator)
            return answer.status, bytes(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, bytes(exc.read())


def raw_error(emulator: Emulator, action: str, params: dict[str, str]) -> tuple[int, str, str]:
    status, body = raw_sts(emulator, action, params)
    doc = ElementTree.fromstring(body)
    ns = {"s": sts.NS}
    return (status, doc.findtext("s:Error/s:Code", "", ns),
            doc.findtext("s:Error/s:Message", "", ns))


def test_a_denied_account_answers_access_denied(emulator: Emulator) -> None:
    emulator.configure(assume_role_deny=[B])
    with pytest.raises(ClientError) as excinfo:
        assume(emulator)
    assert error(excinfo) == (
        "AccessDenied", 403,
        f"User: {HUB} is not authorized to perform: sts:AssumeRole on resource: {ROLE_B}")
    assume(emulator, ROLE_C)  # another account is not denied
    assert [c["error"] for c in sts_calls(emulator)] == ["AccessDenied", None]


def test_an_account_that_requires_an_external_id(emulator: Emulator) -> None:
    emulator.configure(assume_role_external_id={B: "org-secret-42"})
    for given in (None, "wrong-one"):
        with pytest.raises(ClientError) as excinfo:
            if given is None:
                assume(emulator)
            else:
                assume(emulator, ExternalId=given)
        assert error(excinfo)[:2] == ("AccessDenied", 403)
        assert ROLE_B in error(excinfo)[2]
    creds = assume(emulator, ExternalId="org-secret-42")["Credentials"]
    assert client(emulator, "sts", creds).get_caller_identity()["Account"] == B
    assume(emulator, ROLE_C)  # C requires none
    assert [c.get("external_id_sent") for c in sts_calls(emulator)] == [
        False, True, True, False]


def test_a_redirected_role_lands_in_another_account(emulator: Emulator) -> None:
    seeded_c = emulator.seed({"account": C, "stores": [{"name": "hsm-c", "keys": 1}]})
    emulator.configure(assume_role_redirect={ROLE_B: C})
    answer = assume(emulator)
    assert answer["AssumedRoleUser"]["Arn"] == (
        f"arn:aws:sts::{C}:assumed-role/ksdelete-target/ksdelete-run-1")
    creds = answer["Credentials"]
    assert client(emulator, "sts", creds).get_caller_identity()["Account"] == C
    stores = client(emulator, "kms", creds).describe_custom_key_stores()["CustomKeyStores"]
    assert [s["CustomKeyStoreId"] for s in stores] == [seeded_c["stores"][0]["id"]]


def test_a_chain_assumes_from_a_role_session(emulator: Emulator) -> None:
    emulator.seed({"account": C, "stores": [{"name": "hsm-c", "keys": 1}]})
    first = assume(emulator)
    second = assume(emulator, ROLE_C, creds=first["Credentials"], RoleSessionName="hop-2")
    user = second["AssumedRoleUser"]
    assert user["Arn"] == f"arn:aws:sts::{C}:assumed-role/ksdelete-target/hop-2"
    creds = second["Credentials"]
    assert client(emulator, "sts", creds).get_caller_identity()["Account"] == C
    stores = client(emulator, "kms", creds).describe_custom_key_stores()["CustomKeyStores"]
    assert [s["CustomKeyStoreName"] for s in stores] == ["hsm-c"]
    assert [c["account"] for c in sts_calls(emulator)] == [A, B]  # the caller's account


def test_a_chained_assume_may_not_ask_more_than_an_hour(emulator: Emulator) -> None:
    first = assume(emulator, DurationSeconds=43200)["Credentials"]  # from a user: fine
    with pytest.raises(ClientError) as excinfo:
        assume(emulator, ROLE_C, creds=first, DurationSeconds=3601)
    assert error(excinfo) == (
        "ValidationError", 400,
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by "
        "role chaining.")
    second = assume(emulator, ROLE_C, creds=first, DurationSeconds=3600)["Credentials"]
    assert second["Expiration"] - emulator.now() <= timedelta(seconds=3600)
    # A caller the principals knob maps to an assumed role is chaining too.
    emulator.configure(principals={
        "AKIAHUBONAPLATFORM01": f"arn:aws:sts::{A}:assumed-role/ec2-hub/i-0abc"})
    hub = {"AccessKeyId": "AKIAHUBONAPLATFORM01", "SecretAccessKey": "x", "SessionToken": "t"}
    with pytest.raises(ClientError) as excinfo:
        assume(emulator, creds=hub, DurationSeconds=7200)
    assert error(excinfo)[0] == "ValidationError"


def test_reset_forgets_sessions(emulator: Emulator) -> None:
    creds = assume(emulator)["Credentials"]
    emulator.reset()
    assert sts_calls(emulator) == []
    # an unknown access key is a user of the default account again
    assert client(emulator, "sts", creds).get_caller_identity()["Account"] == A


def test_quotas_are_per_account_and_region(emulator: Emulator) -> None:
    emulator.seed({"account": B, "stores": [{"name": "hsm-b"}]})
    creds = assume(emulator)["Credentials"]
    emulator.configure(quotas="aws")
    kms_b = client(emulator, "kms", creds)
    throttled = 0
    for _ in range(12):  # DescribeCustomKeyStores: 5 per second, per account and Region
        try:
            kms_b.describe_custom_key_stores()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ThrottlingException"
            throttled += 1
    assert throttled > 0
    # Account A in the same Region, and B in another Region, are not throttled.
    for _ in range(4):
        client(emulator, "kms").describe_custom_key_stores()
        client(emulator, "kms", creds, "eu-west-1").describe_custom_key_stores()


@pytest.mark.parametrize("knobs", [
    {"assume_role_deny": ["12345"]},
    {"assume_role_external_id": {"not-an-account": "x"}},
    {"assume_role_redirect": {ROLE_B: "nope"}},
    {"assume_role_redirect": {"role-b": B}},
])
def test_bad_knob_values_are_refused(emulator: Emulator, knobs: dict[str, Any]) -> None:
    with pytest.raises(EmulatorError):
        emulator.configure(**knobs)


def test_knobs_are_reset_with_the_rest(emulator: Emulator) -> None:
    emulator.configure(assume_role_deny=[B], assume_role_external_id={C: "xx"},
                       assume_role_redirect={ROLE_B: C})
    knobs = emulator.configure()
    assert knobs["assume_role_deny"] == [B]
    emulator.configure(**EmulatorConfig().to_dict())  # what the test fixture does
    knobs = emulator.configure()
    assert (knobs["assume_role_deny"], knobs["assume_role_external_id"],
            knobs["assume_role_redirect"]) == ([], {}, {})


def test_the_shape_check_catches_a_bad_answer() -> None:
    broken = (b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
              b"<AssumeRoleResult><AssumedRoleUser><Arn>short</Arn></AssumedRoleUser>"
              b"</AssumeRoleResult></AssumeRoleResponse>")
    found = sts.problems("AssumeRole", 200, broken)
    assert any("missing required member AssumedRoleId" in p for p in found)
    assert sts.problems("AssumeRole", 400, sts._error(400, "Bogus", "x", {}).body) != []
    assert sts.problems("AssumeRole", 403, sts._error(403, "AccessDenied", "x", {}).body) == []


def test_every_knob_has_a_row_in_the_docs() -> None:
    from dataclasses import fields
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "emulator.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    missing = [f.name for f in fields(EmulatorConfig)
               if not any(f"`{f.name}`" in row.split("|")[1] for row in rows)]
    assert missing == []


def test_a_session_key_without_its_token_is_refused(emulator: Emulator) -> None:
    creds = assume(emulator)["Credentials"]
    for token in (None, "not-the-token"):
        keys: dict[str, Any] = {"aws_access_key_id": creds["AccessKeyId"],
                                "aws_secret_access_key": creds["SecretAccessKey"]}
        if token is not None:
            keys["aws_session_token"] = token
        config = Config(retries={"mode": "standard", "total_max_attempts": 1})
        kms = boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                           config=config, **keys)
        with pytest.raises(ClientError) as excinfo:
            kms.list_keys()
        assert error(excinfo) == ("UnrecognizedClientException", 400,
                                  "The security token included in the request is invalid.")
        sts_client = boto3.client("sts", endpoint_url=emulator.endpoint_url,
                                  region_name="us-east-1", config=config, **keys)
        with pytest.raises(ClientError) as excinfo:
            sts_client.get_caller_identity()
        assert error(excinfo) == ("InvalidClientTokenId", 403,
                                  "The security token included in the request is invalid.")
    assert client(emulator, "kms", creds).list_keys()["Keys"] == []  # with it: fine


def test_a_child_emulator_gets_the_knobs_it_was_started_with() -> None:
    from ksdelete.emulator.client import control_only_knobs

    config = EmulatorConfig(assume_role_deny=[B], assume_role_external_id={C: "xx"},
                            assume_role_redirect={ROLE_B: C})
    assert control_only_knobs(config) == {
        "assume_role_deny": [B], "assume_role_external_id": {C: "xx"},
        "assume_role_redirect": {ROLE_B: C}}
