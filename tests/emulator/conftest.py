"""Helpers for the emulator's own tests."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator

CLUSTER = "cluster-234567abcdefg"


def hsm_store(kms: Any, name: str = "hsm-store", cluster: str = CLUSTER) -> str:
    store_id: str = kms.create_custom_key_store(
        CustomKeyStoreName=name,
        CloudHsmClusterId=cluster,
        TrustAnchorCertificate="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----",
        KeyStorePassword="kmsPswd1",
    )["CustomKeyStoreId"]
    return store_id


def xks_store(kms: Any, name: str = "xks-store", host: str = "xks.example.com") -> str:
    store_id: str = kms.create_custom_key_store(
        CustomKeyStoreName=name,
        CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint=f"https://{host}",
        XksProxyUriPath="/example/kms/xks/v1",
        XksProxyConnectivity="PUBLIC_ENDPOINT",
        XksProxyAuthenticationCredential={
            "AccessKeyId": "ABCDEFGHIJKLMNOPQRST",
            "RawSecretAccessKey": "a" * 43,
        },
    )["CustomKeyStoreId"]
    return store_id


def store_state(kms: Any, store_id: str) -> str:
    entry = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]
    state: str = entry["ConnectionState"]
    return state


def connect(kms: Any, emulator: Emulator, store_id: str) -> None:
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    emulator.advance(emulator.configure()["connect_seconds"] + 1)
    assert store_state(kms, store_id) == "CONNECTED"


def disconnect(kms: Any, emulator: Emulator, store_id: str) -> None:
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    emulator.advance(emulator.configure()["disconnect_seconds"] + 1)
    assert store_state(kms, store_id) == "DISCONNECTED"


def key_state(kms: Any, key_id: str) -> str:
    state: str = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
    return state


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    err = excinfo.value.response
    return (
        err["Error"]["Code"],
        err["ResponseMetadata"]["HTTPStatusCode"],
        err["Error"].get("Message", ""),
    )
