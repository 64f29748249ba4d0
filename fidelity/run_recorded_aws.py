"""Check the emulator against answers recorded from real AWS KMS.

    .venv/bin/python fidelity/run_recorded_aws.py [--show-answers]

``fidelity/aws_recorded/kms-recorded.json`` holds answers that LocalStack's AWS-validated tests
recorded against real AWS (Apache-2.0; source, commit and licence in that folder's README). For
each recorded test this script makes the same requests against a fresh emulator (in this
process, over HTTP, with boto3), normalises the answers the way LocalStack normalised the
recording (datetimes -> ``"datetime"``, the account -> ``111111111111``, ``arn:aws:`` ->
``arn:<partition>:``, Regions, key IDs, key ARNs and key material IDs -> the recording's
references; ``ResponseMetadata`` -> the HTTP status code) and compares them, member by member,
with the recording. Only the operations ksdelete uses are covered: CreateKey/DescribeKey shapes
and errors, tags, aliases, grants, schedule/cancel, disable/enable, and the key-state errors of
cryptographic calls (the last from S3's relayed ``KMS.*`` errors, compared by code and message).
Four AWS-validated tests have no recording, only assertions; they are checked as asserted.
``fidelity/aws_recorded/sts-recorded.json`` does the same for STS (fleet mode assumes roles):
AssumeRole's answer and its validation errors, and GetCallerIdentity with a role's credentials.

Every difference must be listed in ``fidelity/aws-recorded-divergences.toml`` with the reason
the emulator keeps it; a listed difference that no longer occurs fails the check too (the list
only shrinks on purpose). Exit status: 0 when every answer is as recorded or listed, 1
otherwise, 2 when the check could not run. The last line is ``recorded-aws: N as recorded,
M listed differences, K problems``. It takes a few seconds and needs no network.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "aws_recorded" / "kms-recorded.json"
STS_RECORDED = HERE / "aws_recorded" / "sts-recorded.json"
DIVERGENCES = HERE / "aws-recorded-divergences.toml"
KMS_TESTS = "tests/aws/services/kms/test_kms.py::"
S3_TESTS = "tests/aws/services/s3/test_s3.py::TestS3::"
STS_TESTS = "tests/aws/services/sts/test_sts.py::"
REGION, OTHER_REGION = "us-east-1", "us-west-2"
ACCOUNT, RECORDED_ACCOUNT = "123456789012", "111111111111"
FAKE_UUID = "134f2428-cec1-4b25-a1ae-9048164dba47"


class SetupError(Exception):
    """The check could not run (exit 2)."""


@dataclass(frozen=True)
class Divergence:
    test: str
    entry: str
    path: str
    reason: str


@dataclass
class Ctx:
    """One recorded test's run: clients, the references to normalise, the answers."""

    clients: Callable[..., Any]
    refs: dict[str, str] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)
    relayed: bool = False  # S3's relayed errors: compare Code (without "KMS.") and Message
    datetime_text: str = "datetime"  # how the recording writes a datetime

    def kms(self, region: str = REGION) -> Any:
        return self.clients(region)

    def sts(self, credentials: dict[str, Any] | None = None, *, validated: bool = True) -> Any:
        """An STS client: the check's own caller, or one signing with `credentials`."""
        return self.clients("sts:" + REGION + ("" if validated else "/unvalidated"),
                            credentials)

    def ref(self, value: str, placeholder: str) -> None:
        self.refs[value] = placeholder

    def key(self, n: int, meta: dict[str, Any], *, arn_ref: str | None = None) -> str:
        """Name a key's ID (and material ID) as the recording's reference n."""
        self.ref(meta["KeyId"], f"<key-id:{n}>")
        if meta.get("CurrentKeyMaterialId"):
            self.ref(meta["CurrentKeyMaterialId"], f"<current-key-material-id:{n}>")
        if arn_ref:
            self.ref(meta["Arn"], arn_ref)
        return str(meta["KeyId"])

    def answer(self, entry: str, call: Callable[..., Any], **params: Any) -> Any:
        """Record the answer (or the error response) of one call under `entry`."""
        from botocore.exceptions import ClientError

        try:
            response = call(**params)
        except ClientError as exc:
            response = exc.response
        self.answers[entry] = response
        return response


def _norm(value: Any, ctx: Ctx) -> Any:
    if isinstance(value, datetime):
        return ctx.datetime_text
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "ResponseMetadata":
                out[k] = {"HTTPHeaders": {}, "HTTPStatusCode": v.get("HTTPStatusCode")}
            else:
                out[k] = _norm(v, ctx)
        return out
    if isinstance(value, list):
        return [_norm(v, ctx) for v in value]
    if isinstance(value, str):
        for raw in sorted(ctx.refs, key=len, reverse=True):
            value = value.replace(raw, ctx.refs[raw])
        return value.replace("arn:aws:", "arn:<partition>:").replace(ACCOUNT, RECORDED_ACCOUNT)
    return value


def _enum_set(text: str) -> str:
    """AWS lists an enum's values in its own (hash) order: compare them as a set."""
    def sort(match: re.Match[str]) -> str:
        return "enum value set: [" + ", ".join(sorted(match.group(1).split(", "))) + "]"

    return re.sub(r"enum value set: \[([^\]]*)\]", sort, text)


def compare(recorded: Any, actual: Any, path: str = "") -> Iterator[str]:
    """Differences as `path: what`, `path` like `KeyMetadata.CurrentKeyMaterialId`."""
    here = path or "(answer)"
    if isinstance(recorded, dict) and isinstance(actual, dict):
        for k in sorted(set(recorded) | set(actual)):
            sub = f"{path}.{k}" if path else k
            if k not in actual:
                yield f"{sub}: missing (AWS: {json.dumps(recorded[k])[:120]})"
            elif k not in recorded:
                yield f"{sub}: extra ({json.dumps(actual[k])[:120]})"
            else:
                yield from compare(recorded[k], actual[k], sub)
    elif isinstance(recorded, list) and isinstance(actual, list):
        if len(recorded) != len(actual):
            yield f"{here}: {len(actual)} item(s), AWS {len(recorded)}"
        for i, (r, a) in enumerate(zip(recorded, actual, strict=False)):
            yield from compare(r, a, f"{path}[{i}]")
    elif isinstance(recorded, str) and isinstance(actual, str):
        if _enum_set(recorded) != _enum_set(actual):
            yield f"{here}: {actual!r}, AWS {recorded!r}"
    elif recorded != actual:
        yield f"{here}: {json.dumps(actual)[:160]}, AWS {json.dumps(recorded)[:160]}"


def _relayed(answer: dict[str, Any]) -> dict[str, Any]:
    error = answer.get("Error", {})
    return {"Error": {"Code": error.get("Code"), "Message": error.get("Message")}}


# ---------------------------------------------------------------------------- the requests
# Reconstructed from the test names and LocalStack's test code (the requests are not in the
# recording); written for this check, not copied.

CASES: dict[str, Callable[[Ctx], None]] = {}


def case(test: str) -> Callable[[Callable[[Ctx], None]], Callable[[Ctx], None]]:
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        CASES[test] = fn
        return fn

    return register


def _create(ctx: Ctx, region: str = REGION, **params: Any) -> dict[str, Any]:
    meta: dict[str, Any] = ctx.kms(region).create_key(**params)["KeyMetadata"]
    return meta


def _tags(**pairs: str) -> list[dict[str, str]]:
    return [{"TagKey": k, "TagValue": v} for k, v in pairs.items()]


@case(KMS_TESTS + "TestKMS::test_create_key")
def _create_key(ctx: Ctx) -> None:
    ctx.ref(REGION, "<region>")
    key = ctx.key(1, _create(ctx, Description="test key 123", KeyUsage="ENCRYPT_DECRYPT"))
    ctx.answers["describe-key"] = ctx.kms().describe_key(KeyId=key)["KeyMetadata"]


@case(KMS_TESTS + "TestKMS::test_non_multi_region_keys_should_not_have_multi_region_properties")
def _non_multi_region(ctx: Ctx) -> None:
    ctx.ref(REGION, "<region>")
    key = ctx.key(1, _create(ctx, Description="test non multi region key", MultiRegion=False))
    ctx.answers["non_multi_region_keys_should_not_have_multi_region_properties"] = \
        ctx.kms().describe_key(KeyId=key)["KeyMetadata"]


@case(KMS_TESTS + "TestKMS::test_describe_with_alias_arn")
def _describe_with_alias_arn(ctx: Ctx) -> None:
    ctx.ref(REGION, "<region>")
    meta = _create(ctx, Description="test - description")
    ctx.key(1, meta)
    ctx.answers["created-key"] = meta
    ctx.kms().create_alias(AliasName="alias/recorded-check", TargetKeyId=meta["KeyId"])
    arn = meta["Arn"].split(":key/")[0] + ":alias/recorded-check"
    ctx.answer("describe-key", ctx.kms().describe_key, KeyId=arn)


@case(KMS_TESTS + "TestKMS::test_get_key_in_different_region")
def _key_in_other_region(ctx: Ctx) -> None:
    ctx.ref(OTHER_REGION, "<secondary-region>")
    meta = _create(ctx, OTHER_REGION, Description="test key 123")
    key = ctx.key(1, meta)
    ctx.ref(REGION, "<region>")
    ctx.answer("describe-key-diff-region-with-id", ctx.kms().describe_key, KeyId=key)
    ctx.answer("describe-key-diff-region-with-arn", ctx.kms().describe_key, KeyId=meta["Arn"])
    other = ctx.kms(OTHER_REGION)
    ctx.answer("describe-key-same-specific-region-with-id", other.describe_key, KeyId=key)
    ctx.answer("describe-key-same-specific-region-with-arn", other.describe_key,
               KeyId=meta["Arn"])


@case(KMS_TESTS + "TestKMS::test_get_key_does_not_exist")
def _key_does_not_exist(ctx: Ctx) -> None:
    meta = _create(ctx, Description="test key 123")
    fake_arn = meta["Arn"].replace(meta["KeyId"], FAKE_UUID)
    ctx.ref(fake_arn, "<key-arn>")
    mrk = "mrk-d3b95762d3b95762d3b95762d3b95762"
    ctx.ref(meta["Arn"].replace(meta["KeyId"], mrk), "<mrk-key-arn>")
    ctx.answer("describe-nonexistent-key-with-id", ctx.kms().describe_key, KeyId=FAKE_UUID)
    ctx.answer("describe-nonexistent-with-arn", ctx.kms().describe_key, KeyId=fake_arn)
    ctx.answer("describe-key-with-valid-id-mrk", ctx.kms().describe_key, KeyId=mrk)


@case(KMS_TESTS + "TestKMS::test_get_key_invalid_uuid")
def _invalid_key_ids(ctx: Ctx) -> None:
    for entry, key in (("describe-key-with-invalid-uuid", "fake-key-id"),
                       ("describe-key-with-invalid-uuid-2", "134f2428cec14b25a1ae9048164dba47"),
                       ("describe-key-with-invalid-uuid-mrk", "mrk-fake-key-id")):
        ctx.answer(entry, ctx.kms().describe_key, KeyId=key)


@case(KMS_TESTS + "TestKMS::test_create_alias")
def _alias_without_prefix(ctx: Ctx) -> None:
    key = _create(ctx)["KeyId"]
    ctx.answer("create_alias", ctx.kms().create_alias, AliasName="no-prefix", TargetKeyId=key)


def _tag_cycle(ctx: Ctx, *, at_creation: bool, remove: list[str] | None,
               update: list[dict[str, str]] | None, tags: list[dict[str, str]],
               second: str) -> None:
    kms = ctx.kms()
    params: dict[str, Any] = {"Description": "test key 123", "KeyUsage": "ENCRYPT_DECRYPT"}
    if at_creation:
        params["Tags"] = tags
    key = _create(ctx, **params)["KeyId"]
    if not at_creation:
        kms.tag_resource(KeyId=key, Tags=tags)
    ctx.answers["list-resource-tags"] = kms.list_resource_tags(KeyId=key)["Tags"]
    if update is not None:
        kms.tag_resource(KeyId=key, Tags=update)
    else:
        kms.untag_resource(KeyId=key,
                           TagKeys=remove if remove is not None else [t["TagKey"] for t in tags])
    ctx.answers[second] = kms.list_resource_tags(KeyId=key)["Tags"]


@case(KMS_TESTS + "TestKMS::test_tag_existing_key_and_untag")
def _tag_and_untag(ctx: Ctx) -> None:
    _tag_cycle(ctx, at_creation=False, remove=None, update=None,
               tags=_tags(tag1="value1", tag2="value2"),
               second="list-resource-tags-after-all-untagged")


@case(KMS_TESTS + "TestKMS::test_create_key_with_tag_and_untag")
def _create_tagged_and_untag(ctx: Ctx) -> None:
    _tag_cycle(ctx, at_creation=True, remove=None, update=None,
               tags=_tags(tag1="value1", tag2="value2"),
               second="list-resource-tags-after-all-untagged")


@case(KMS_TESTS + "TestKMS::test_untag_key_partially")
def _untag_partially(ctx: Ctx) -> None:
    _tag_cycle(ctx, at_creation=True, remove=["tag2"], update=None,
               tags=_tags(tag1="value1", tag2="value2", tag3="value3"),
               second="list-resource-tags-after-partially-untagged")


@case(KMS_TESTS + "TestKMS::test_update_and_add_tags_on_tagged_key")
def _update_tags(ctx: Ctx) -> None:
    _tag_cycle(ctx, at_creation=True, remove=None,
               update=_tags(tag4="value4", tag2="updated_value2", tag5="value5"),
               tags=_tags(tag1="value1", tag2="value2", tag3="value3"),
               second="list-resource-tags-after-tags-updated")


@case(KMS_TESTS + "TestKMS::test_tag_key_with_duplicate_tag_keys_raises_error")
def _duplicate_tags(ctx: Ctx) -> None:
    key = _create(ctx)["KeyId"]
    ctx.answer("duplicate-tag-keys", ctx.kms().tag_resource, KeyId=key,
               Tags=[{"TagKey": "tag1", "TagValue": "value1"},
                     {"TagKey": "tag1", "TagValue": "another-value1"}])


@case(KMS_TESTS + "TestKMS::test_create_key_with_too_many_tags_raises_error")
def _too_many_tags(ctx: Ctx) -> None:
    ctx.answer("invalid-tag-key", ctx.kms().create_key, Description="test key 123",
               Tags=_tags(**{f"key{i}": f"value{i}" for i in range(51)}))


@case(KMS_TESTS + "TestKMS::test_tag_existing_key_with_invalid_tag_key")
def _reserved_tag(ctx: Ctx) -> None:
    key = _create(ctx)["KeyId"]
    ctx.answer("invalid-tag-key", ctx.kms().tag_resource, KeyId=key,
               Tags=_tags(**{"aws:key1": "value1"}))


@case(KMS_TESTS + "TestKMS::test_key_with_long_tag_value_raises_error")
def _long_tag_value(ctx: Ctx) -> None:
    ctx.answer("too-long-tag-value", ctx.kms().create_key, Tags=_tags(tag1="v" * 257))


for _id, _name in (("lowercase_prefix", "aws:key1"), ("uppercase_prefix", "AWS:key1"),
                   ("too_long_key", "a" * 129)):
    def _invalid_tag_key(ctx: Ctx, name: str = _name) -> None:
        ctx.answer("invalid-tag-key", ctx.kms().create_key, Tags=_tags(**{name: "value1"}))

    CASES[KMS_TESTS + f"TestKMS::test_create_key_with_invalid_tag_key[{_id}]"] = _invalid_tag_key


@case(KMS_TESTS + "TestKMS::test_hmac_create_key_invalid_operations")
def _invalid_create_key(ctx: Ctx) -> None:
    kms = ctx.clients(REGION + "/unvalidated")
    ctx.answer("create-hmac-key-without-key-usage", kms.create_key, KeySpec="HMAC_256")
    ctx.answer("create-hmac-key-invalid-spec", kms.create_key, KeySpec="HMAC_random",
               KeyUsage="GENERATE_VERIFY_MAC")
    ctx.answer("create-hmac-key-invalid-key-usage", kms.create_key, KeySpec="HMAC_256",
               KeyUsage="RANDOM")


for _n in ("None", "0", "1025"):
    def _random_bytes(ctx: Ctx, n: str = _n) -> None:
        kms = ctx.clients(REGION + "/unvalidated")
        params = {} if n == "None" else {"NumberOfBytes": int(n)}
        ctx.answer("generate-random-exc", kms.generate_random, **params)

    CASES[KMS_TESTS + f"TestKMS::test_generate_random_invalid_number_of_bytes[{_n}]"] = \
        _random_bytes


@case(S3_TESTS + "test_s3_sse_validate_kms_key")
def _relayed_key_errors(ctx: Ctx) -> None:
    """S3 PutObject/CopyObject/CreateMultipartUpload with SSE-KMS call GenerateDataKey."""
    ctx.relayed = True
    ctx.ref(REGION, "<region_1>")
    ctx.ref(OTHER_REGION, "<region_2>")
    meta = _create(ctx, OTHER_REGION, Description="recorded-check")
    ctx.ref(meta["KeyId"], "<uuid:1>")
    kms = ctx.kms()
    for entry in ("put-obj-wrong-kms-key", "copy-obj-wrong-kms-key",
                  "create-multipart-wrong-kms-key"):
        ctx.answer(entry, kms.generate_data_key, KeyId="fake-key-id", KeySpec="AES_256")
    ctx.answer("put-obj-wrong-kms-key-real-uuid", kms.generate_data_key, KeyId=FAKE_UUID,
               KeySpec="AES_256")
    fake_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{FAKE_UUID}"
    ctx.answer("put-obj-wrong-kms-key-real-uuid-arn", kms.generate_data_key, KeyId=fake_arn,
               KeySpec="AES_256")
    ctx.answer("put-obj-different-region-kms-key", kms.generate_data_key, KeyId=meta["Arn"],
               KeySpec="AES_256")
    ctx.answer("put-obj-different-region-kms-key-no-arn", kms.generate_data_key,
               KeyId=meta["KeyId"], KeySpec="AES_256")


@case(S3_TESTS + "test_s3_sse_validate_kms_key_state")
def _relayed_state_errors(ctx: Ctx) -> None:
    """GetObject calls Decrypt, PutObject GenerateDataKey, on a disabled / pending key."""
    ctx.relayed = True
    ctx.ref(REGION, "<region>")
    kms = ctx.kms()
    meta = _create(ctx, Description="recorded-check")
    ctx.ref(meta["KeyId"], "<uuid:1>")
    blob = kms.encrypt(KeyId=meta["KeyId"], Plaintext=b"test-sse")["CiphertextBlob"]
    kms.disable_key(KeyId=meta["KeyId"])
    ctx.answer("get-obj-disabled-key", kms.decrypt, CiphertextBlob=blob)
    ctx.answer("put-obj-disabled-key", kms.generate_data_key, KeyId=meta["KeyId"],
               KeySpec="AES_256")
    kms.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=7)
    ctx.answer("get-obj-pending-deletion-key", kms.decrypt, CiphertextBlob=blob)


# AWS-validated tests with assertions but no recording: (test, check) -> None or a problem.
def _schedule_and_cancel(ctx: Ctx) -> list[str]:
    kms = ctx.kms()
    key = _create(ctx)["KeyId"]
    kms.schedule_key_deletion(KeyId=key)
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    problems = []
    if meta["Enabled"] is not False or meta["KeyState"] != "PendingDeletion" \
            or not meta.get("DeletionDate"):
        problems.append(f"after ScheduleKeyDeletion: {meta['Enabled']}, {meta['KeyState']}, "
                        f"{meta.get('DeletionDate')}")
    kms.cancel_key_deletion(KeyId=key)
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    if meta["Enabled"] is not False or meta["KeyState"] != "Disabled" or meta.get("DeletionDate"):
        problems.append(f"after CancelKeyDeletion: {meta['Enabled']}, {meta['KeyState']}")
    return problems


def _disable_and_enable(ctx: Ctx) -> list[str]:
    kms = ctx.kms()
    key = _create(ctx)["KeyId"]
    seen = []
    for action in (None, kms.disable_key, kms.enable_key):
        if action is not None:
            action(KeyId=key)
        meta = kms.describe_key(KeyId=key)["KeyMetadata"]
        seen.append((meta["Enabled"], meta["KeyState"]))
    wanted = [(True, "Enabled"), (False, "Disabled"), (True, "Enabled")]
    return [] if seen == wanted else [f"Enabled/KeyState {seen}, AWS {wanted}"]


def _invalid_key_code(operation: str) -> Callable[[Ctx], list[str]]:
    def check(ctx: Ctx) -> list[str]:
        kms = ctx.kms()
        params: dict[str, Any] = {"KeyId": "invalid"}
        if operation == "create_grant":
            params.update(GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:user/u",
                          Operations=["Decrypt", "Encrypt"])
        answer = ctx.answer(operation, getattr(kms, operation), **params)
        code = answer.get("Error", {}).get("Code")
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return [] if code == "NotFoundException" and status == 400 else \
            [f"{operation}(KeyId='invalid'): {code} (HTTP {status}), AWS NotFoundException"]

    return check


ASSERTED: dict[str, Callable[[Ctx], list[str]]] = {
    KMS_TESTS + "TestKMS::test_schedule_and_cancel_key_deletion": _schedule_and_cancel,
    KMS_TESTS + "TestKMS::test_disable_and_enable_key": _disable_and_enable,
    KMS_TESTS + "TestKMS::test_create_grant_with_invalid_key": _invalid_key_code("create_grant"),
    KMS_TESTS + "TestKMS::test_list_grants_with_invalid_key": _invalid_key_code("list_grants"),
}


# STS: a role of the check's own account (the emulator needs no role created).
ROLE_NAME = "recorded-check-role"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"


def _assumed(ctx: Ctx, entry: str | None, session: str) -> dict[str, Any]:
    """AssumeRole of ROLE (its answer under `entry`), with references for what it hands out."""
    ctx.datetime_text = "<datetime>"
    call = ctx.sts().assume_role
    answer: dict[str, Any] = ctx.answer(entry, call, RoleArn=ROLE, RoleSessionName=session) \
        if entry else call(RoleArn=ROLE, RoleSessionName=session)
    creds = answer["Credentials"]
    for member, ref in (("AccessKeyId", "<access-key-id:1>"),
                        ("SecretAccessKey", "<secret-access-key:1>"),
                        ("SessionToken", "<session-token:1>")):
        ctx.ref(creds[member], ref)
    return answer


@case(STS_TESTS + "TestSTSIntegrations::test_assume_role")
def _assume_role(ctx: Ctx) -> None:
    ctx.ref(ROLE_NAME, "<resource:1>")
    ctx.ref("recorded-session-1", "<role-session-name:1>")
    answer = _assumed(ctx, "assume-role", "recorded-session-1")
    ctx.ref(answer["AssumedRoleUser"]["AssumedRoleId"].split(":")[0], "<role-id:1>")


@case(STS_TESTS + "TestSTSCallerIdentity::test_get_caller_identity_with_assumed_role_credentials")
def _caller_identity_of_a_role(ctx: Ctx) -> None:
    answer = _assumed(ctx, None, "recorded-session-1")
    ctx.ref(answer["AssumedRoleUser"]["AssumedRoleId"], "<user-id:1>")
    ctx.ref(f"/{ROLE_NAME}/recorded-session-1", "/<role-name>/<session-name>")
    ctx.answer("caller-identity-assumed-role", ctx.sts(answer["Credentials"]).get_caller_identity)


@case(STS_TESTS + "TestSTSIntegrations::test_sts_invalid_parameters")
def _assume_role_invalid(ctx: Ctx) -> None:
    sts = ctx.sts(validated=False)
    for entry, arn, session in (
            ("malformed-arn", "nothing-valid-in-here", "Session1"),
            ("no-partition", "arn::b:::something/test-role", "Session1"),
            ("no-service", "arn:a::::something/test-role", "Session1"),
            ("not-enough-colons", "arn:a:::something/test-role", "Session1"),
            ("no-resource", "arn:a:a::aaaaaaaaaa:", "Session1"),
            ("invalid-session-name", "arn:a:b:::something/test-role", "Session1:2")):
        ctx.answer(entry, sts.assume_role, RoleArn=arn, RoleSessionName=session)


@case(STS_TESTS + "TestSTSIntegrations::test_assume_role_session_name_too_long")
def _assume_role_long_session_name(ctx: Ctx) -> None:
    ctx.answer("session-name-too-long-error", ctx.sts(validated=False).assume_role,
               RoleArn=ROLE, RoleSessionName="s" * 65)


# ---------------------------------------------------------------------------- the check
def load_divergences(path: Path = DIVERGENCES) -> list[Divergence]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SetupError(f"cannot read {path}: {exc}") from exc
    out = []
    for item in doc.get("divergence", []):
        for name in ("test", "entry", "path", "reason"):
            if not isinstance(item.get(name), str) or not item[name].strip():
                raise SetupError(f"{path}: every divergence needs a non-empty {name!r}")
        out.append(Divergence(item["test"], item["entry"], item["path"], item["reason"]))
    return out


def load_recorded(path: Path = RECORDED, *more: Path) -> dict[str, Any]:
    """The recording at `path`, with the snapshots of `more` added (by default: STS's)."""
    doc: dict[str, Any] = {}
    for each in (path, *(more if more or path != RECORDED else (STS_RECORDED,))):
        try:
            part: dict[str, Any] = json.loads(each.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SetupError(f"cannot read {each}: {exc}") from exc
        if not doc:
            doc = part
        else:
            doc.setdefault("snapshots", {}).update(part.get("snapshots", {}))
    return doc


@dataclass
class Outcome:
    as_recorded: list[str] = field(default_factory=list)  # "test entry"
    listed: list[tuple[Divergence, str]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    stale: list[Divergence] = field(default_factory=list)


def run(clients_for: Callable[[], Callable[..., Any]], recorded: dict[str, Any],
        divergences: list[Divergence], *, show: bool = False) -> Outcome:
    """Each case on a fresh emulator (`clients_for()` resets it and returns a client maker)."""
    outcome = Outcome()
    found: set[Divergence] = set()
    snapshots = recorded.get("snapshots", {})
    missing = (set(CASES) - set(snapshots)) | (set(ASSERTED) - set(recorded.get("validated", {})))
    for test in sorted(missing):
        outcome.unexpected.append(f"{test}: no recording for this case")
    listed = {(d.test, d.entry, d.path): d for d in divergences}
    for test, fn in sorted(CASES.items()):
        if test not in snapshots:
            continue
        ctx = Ctx(clients_for())
        try:
            fn(ctx)
        except Exception as exc:  # noqa: BLE001 - a case that fails is a finding, not a crash
            outcome.unexpected.append(f"{test}: the requests failed: {exc!r}")
            continue
        content = snapshots[test]["recorded-content"]
        short = test.split("::", 1)[1]
        for entry, aws in content.items():
            if entry not in ctx.answers:
                continue  # an answer this check does not reproduce (not an operation we use)
            actual = _norm(ctx.answers[entry], ctx)
            if ctx.relayed:
                actual = _relayed(actual)
                aws = {"Error": {"Code": str(aws["Error"]["Code"]).removeprefix("KMS."),
                                 "Message": aws["Error"]["Message"]}}
            if show:
                print(f"{short} {entry}: {json.dumps(actual, sort_keys=True)}")
            diffs = list(compare(aws, actual))
            if not diffs:
                outcome.as_recorded.append(f"{short} {entry}")
            for line in diffs:
                path = line.split(": ", 1)[0]
                entry_div = listed.get((short, entry, path))
                if entry_div is None:
                    outcome.unexpected.append(f"{short} {entry}: {line}")
                else:
                    found.add(entry_div)
                    outcome.listed.append((entry_div, line))
        for entry in ctx.answers:
            if entry not in content:
                outcome.unexpected.append(f"{short} {entry}: not in the recording (typo?)")
    for test, check in sorted(ASSERTED.items()):
        ctx = Ctx(clients_for())
        short = test.split("::", 1)[1]
        try:
            problems = check(ctx)
        except Exception as exc:  # noqa: BLE001
            problems = [f"the requests failed: {exc!r}"]
        for problem in problems:
            entry_div = listed.get((short, "asserted", problem.split(": ", 1)[0]))
            if entry_div is None:
                outcome.unexpected.append(f"{short} (asserted): {problem}")
            else:
                found.add(entry_div)
                outcome.listed.append((entry_div, problem))
        if not problems:
            outcome.as_recorded.append(f"{short} (asserted)")
    outcome.stale = [d for d in divergences if d not in found]
    return outcome


def emulator_clients() -> tuple[Any, Callable[[], Callable[..., Any]]]:
    import boto3
    from botocore.config import Config

    from ksdelete.emulator import Emulator, EmulatorConfig

    emulator = Emulator(EmulatorConfig(seed=18), in_process=True).start()
    made: dict[str, Any] = {}

    def client(name: str, credentials: dict[str, Any] | None = None) -> Any:
        """`[SERVICE:]REGION[/unvalidated]` (KMS by default), signed by the check's caller or
        with `credentials` (an AssumeRole answer's; never cached)."""
        if name not in made or credentials is not None:
            where, _, mode = name.partition("/")
            service, _, region = where.rpartition(":")
            keys = {"aws_access_key_id": "AKIARECORDEDCHECK001", "aws_secret_access_key": "x"}
            if credentials is not None:
                keys = {"aws_access_key_id": credentials["AccessKeyId"],
                        "aws_secret_access_key": credentials["SecretAccessKey"],
                        "aws_session_token": credentials["SessionToken"]}
            made_now = boto3.client(
                service or "kms", endpoint_url=emulator.endpoint_url, region_name=region,
                config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                              parameter_validation=mode != "unvalidated"), **keys)
            if credentials is not None:
                return made_now
            made[name] = made_now
        return made[name]

    def fresh() -> Callable[..., Any]:
        emulator.reset()
        return client

    return emulator, fresh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--show-answers", action="store_true",
                        help="print every normalised emulator answer")
    args = parser.parse_args(argv)
    try:
        recorded = load_recorded()
        divergences = load_divergences()
        emulator, fresh = emulator_clients()
    except SetupError as exc:
        print(f"recorded-aws: cannot run: {exc}", file=sys.stderr)
        return 2
    try:
        outcome = run(fresh, recorded, divergences, show=args.show_answers)
    finally:
        emulator.stop()
    for div, line in outcome.listed:
        print(f"listed     {div.test} {div.entry}: {line}\n           why: {div.reason}")
    for line in outcome.unexpected:
        print(f"UNEXPECTED {line}")
    for div in outcome.stale:
        print(f"STALE      {div.test} {div.entry} {div.path}: listed, but the emulator now "
              "answers as recorded (delete the entry)")
    problems = len(outcome.unexpected) + len(outcome.stale)
    print(f"recorded-aws: {len(outcome.as_recorded)} as recorded, {len(outcome.listed)} listed "
          f"differences, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
