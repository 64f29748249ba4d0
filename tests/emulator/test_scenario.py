"""End to end: the documented workflow over HTTP with every raw response shape-checked,
the AWS CLI as an unmodified third-party client, and operation coverage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ksdelete.emulator import Emulator, shapes
from ksdelete.emulator.responses import EmulatorKmsResponse

from .conftest import hsm_store, key_state, store_state

KSDELETE_OPERATIONS = [
    "DescribeCustomKeyStores",
    "ListKeys",
    "DescribeKey",
    "ListAliases",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "EnableKey",
    "DisableKey",
    "ConnectCustomKeyStore",
    "DisconnectCustomKeyStore",
    "DeleteCustomKeyStore",
    "CreateCustomKeyStore",
    "CreateKey",
    "UpdateCustomKeyStore",
]


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@pytest.fixture
def checked_kms(kms: Any) -> tuple[Any, list[str], list[str]]:
    """The kms client with an after-call hook validating every raw response body."""
    problems: list[str] = []
    seen: list[str] = []

    def check(http_response: Any, model: Any, **_: Any) -> None:
        seen.append(model.name)
        problems.extend(
            shapes.validate_response_body(
                model.name, http_response.status_code, http_response.content
            )
        )

    kms.meta.events.register("after-call.kms", check)
    return kms, problems, seen


def test_documented_workflow(
    checked_kms: tuple[Any, list[str], list[str]], emulator: Emulator
) -> None:
    kms, problems, seen = checked_kms
    # 1. create and connect the store, create keys in it (plus one key outside it)
    store = hsm_store(kms, "workflow")
    kms.connect_custom_key_store(CustomKeyStoreId=store)
    emulator.advance(301)
    assert store_state(kms, store) == "CONNECTED"
    mine = [
        kms.create_key(CustomKeyStoreId=store, Origin="AWS_CLOUDHSM")["KeyMetadata"]
        for _ in range(3)
    ]
    kms.create_alias(AliasName="alias/workflow-0", TargetKeyId=mine[0]["KeyId"])
    other = kms.create_key(Description="not in the store")["KeyMetadata"]["KeyId"]
    # 2. discover: list every key, describe each, keep those in the store
    found = []
    for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}):
        for entry in page["Keys"]:
            meta = kms.describe_key(KeyId=entry["KeyArn"])["KeyMetadata"]
            if meta.get("CustomKeyStoreId") == store:
                found.append(meta["Arn"])
    assert sorted(found) == sorted(m["Arn"] for m in mine)
    assert kms.list_aliases(KeyId=mine[0]["KeyId"])["Aliases"][0]["AliasName"] == (
        "alias/workflow-0"
    )
    # 3. schedule deletion of each key (by ARN), 7 days
    for arn in found:
        assert kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)["KeyId"] == arn
    # 4. wait: advance the clock past the window, poll until NotFound
    emulator.advance(7 * 86400 + 1)
    for arn in found:
        with pytest.raises(kms.exceptions.NotFoundException):
            kms.describe_key(KeyId=arn)
    assert key_state(kms, other) == "Enabled"
    # 5. disconnect, poll until DISCONNECTED
    kms.disconnect_custom_key_store(CustomKeyStoreId=store)
    assert store_state(kms, store) == "DISCONNECTING"
    emulator.advance(61)
    assert store_state(kms, store) == "DISCONNECTED"
    # 6. delete, 7. verify
    kms.delete_custom_key_store(CustomKeyStoreId=store)
    with pytest.raises(kms.exceptions.CustomKeyStoreNotFoundException):
        kms.describe_custom_key_stores(CustomKeyStoreId=store)
    # error responses were checked too
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.cancel_key_deletion(KeyId=found[0])
    assert len(seen) > 15
    assert problems == []


def test_client_side_checker_catches_drift() -> None:
    """The walker used in the hook is not vacuous."""
    meta = {
        "KeyId": "k",
        "KeyState": "Deleted",
        "KeyUsage": None,
        "Foo": 1,
        "CreationDate": "2024-01-01T00:00:00Z",
    }
    found = shapes.validate_response_body(
        "DescribeKey", 200, json.dumps({"KeyMetadata": meta}).encode()
    )
    text = "\n".join(found)
    for fragment in (
        "'Deleted' not in enum",
        "KeyUsage: null",
        "unknown member Foo",
        "CreationDate: expected epoch-seconds",
    ):
        assert fragment in text
    assert shapes.validate_response_body("ListKeys", 200, b'{"Keys": [], "NextMarker": null}')
    assert shapes.validate_response_body("ListKeys", 500, b"<html>oops</html>")
    assert shapes.validate_response_body(
        "ListKeys", 400, b'{"__type": "CustomKeyStoreHasCMKsException", "message": "x"}'
    )
    assert shapes.validate_response_body(
        "ListKeys", 400, b'{"__type": "KMSInternalException", "message": "x"}'
    )  # must be 500
    assert not shapes.validate_response_body(
        "ListKeys", 400, b'{"__type": "ThrottlingException", "message": "x"}'
    )
    assert shapes.validate_request(
        "CreateCustomKeyStore", {"CustomKeyStoreName": "n", "CustomKeyStoreType": "NOPE"}
    )


def test_server_validates_requests_beyond_botocore(kms: Any) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as excinfo:  # max 256 is not checked by botocore
        kms.create_custom_key_store(
            CustomKeyStoreName="n" * 300, CloudHsmClusterId="cluster-234567abcdefg"
        )
    assert excinfo.value.response["Error"]["Code"] == "ValidationException"


def test_every_ksdelete_operation_is_handled() -> None:
    model_ops = set(shapes.kms_model().operation_names)
    for op in KSDELETE_OPERATIONS:
        assert op in model_ops
        handler = getattr(EmulatorKmsResponse, _snake(op), None)
        assert callable(handler), f"{op} has no handler"
        # the emulator's own implementation, not moto's partial one
        assert _snake(op) in EmulatorKmsResponse.__dict__, f"{op} falls through to moto"


def _aws(emulator: Emulator, *args: str) -> Any:
    aws = Path(sys.executable).with_name("aws")
    env = dict(os.environ, AWS_ENDPOINT_URL=emulator.endpoint_url, AWS_MAX_ATTEMPTS="1")
    return subprocess.run(
        [str(aws), "kms", *args, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_aws_cli_drives_the_emulator(kms: Any, emulator: Emulator) -> None:
    seeded = emulator.seed({"stores": [{"name": "cli", "type": "EXTERNAL_KEY_STORE", "keys": 1}]})
    store, key_id = seeded["stores"][0]["id"], seeded["stores"][0]["key_ids"][0]
    done = _aws(emulator, "describe-custom-key-stores", "--custom-key-store-id", store)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["CustomKeyStores"][0]["CustomKeyStoreName"] == "cli"
    done = _aws(
        emulator,
        "schedule-key-deletion",
        "--key-id",
        key_id,
        "--pending-window-in-days",
        "7",
        "--endpoint-url",
        emulator.endpoint_url,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["KeyState"] == "PendingDeletion" and out["KeyId"].endswith(key_id)
    done = _aws(emulator, "schedule-key-deletion", "--key-id", key_id)
    assert done.returncode != 0 and "KMSInvalidStateException" in done.stderr
    assert key_state(kms, key_id) == "PendingDeletion"
