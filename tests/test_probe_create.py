"""`ksdelete probe` acts only on the key CreateKey made for it. An answer that does not
describe a fresh, standard, Enabled key with the probe's description (AWS misbehaving, which
the emulator does not do) is refused before the probe touches the key it names: the real
Gateway's `_call` path runs against botocore's Stubber (as in test_gateway_listing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from ksdelete.errors import KsdeleteError
from ksdelete.gateway import Gateway
from ksdelete.retry import RetryPolicy
from ksdelete.scope import ScopeRequest
from ksdelete.sessions import open_gateway

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = f"arn:aws:kms:us-east-1:123456789012:key/{KEY}"


@pytest.fixture
def stubbed() -> Iterator[tuple[Gateway, Stubber]]:
    gateway = open_gateway(ScopeRequest(region="us-east-1", endpoint_url="http://127.0.0.1:9"),
                      policy=RetryPolicy(sleep=lambda _: None))
    with Stubber(gateway._kms) as stubber:
        yield gateway, stubber
        stubber.assert_no_pending_responses()


def metadata(**changes: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "KeyId": KEY, "Arn": ARN, "AWSAccountId": "123456789012",
        "CreationDate": datetime(2026, 12, 3, tzinfo=UTC), "Enabled": True,
        "Description": "ksdelete probe r1: probe", "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": "Enabled", "Origin": "AWS_KMS", "KeyManager": "CUSTOMER",
        "KeySpec": "SYMMETRIC_DEFAULT"}
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not None}


def test_a_fresh_probe_key_is_accepted(stubbed: tuple[Gateway, Stubber]) -> None:
    gateway, stub = stubbed
    stub.add_response("create_key", {"KeyMetadata": metadata()},
                      {"Description": "ksdelete probe r1: probe", "KeyUsage": ANY,
                       "KeySpec": ANY, "Origin": ANY, "Tags": ANY})
    assert gateway.create_probe_key("ksdelete probe r1: probe", {"ksdelete:probe": "r1"}).id \
        == KEY


@pytest.mark.parametrize("odd", [
    {"CustomKeyStoreId": "cks-1234567890abcdef0", "Origin": "AWS_CLOUDHSM"},
    {"KeyState": "PendingDeletion", "Enabled": False},
    {"Description": "the payments key"},
    {"KeyManager": "AWS"},
])
def test_an_answer_that_is_not_the_probe_key_is_refused(stubbed: tuple[Gateway, Stubber],
                                                        odd: dict[str, Any]) -> None:
    """The probe would have used and scheduled whatever key the answer named."""
    gateway, stub = stubbed
    stub.add_response("create_key", {"KeyMetadata": metadata(**odd)},
                      {"Description": "ksdelete probe r1: probe", "KeyUsage": ANY,
                       "KeySpec": ANY, "Origin": ANY, "Tags": ANY})
    with pytest.raises(KsdeleteError) as raised:
        gateway.create_probe_key("ksdelete probe r1: probe", {"ksdelete:probe": "r1"})
    assert KEY in str(raised.value) and "not touched" in str(raised.value)
