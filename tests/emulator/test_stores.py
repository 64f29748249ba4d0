"""Custom key store operations: creation rules, connection state machine, describe, delete."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator

from .conftest import connect, disconnect, error_of, hsm_store, store_state, xks_store


def test_create_and_describe_by_id_name_and_all(kms: Any) -> None:
    hsm = hsm_store(kms)
    xks = xks_store(kms)
    assert hsm.startswith("cks-") and xks.startswith("cks-")
    by_id = kms.describe_custom_key_stores(CustomKeyStoreId=hsm)["CustomKeyStores"]
    assert [s["CustomKeyStoreName"] for s in by_id] == ["hsm-store"]
    entry = by_id[0]
    assert entry["ConnectionState"] == "DISCONNECTED"
    assert entry["CustomKeyStoreType"] == "AWS_CLOUDHSM"
    assert entry["CloudHsmClusterId"] == "cluster-234567abcdefg"
    assert "ConnectionErrorCode" not in entry and "XksProxyConfiguration" not in entry
    by_name = kms.describe_custom_key_stores(CustomKeyStoreName="xks-store")["CustomKeyStores"]
    assert by_name[0]["CustomKeyStoreId"] == xks
    assert by_name[0]["XksProxyConfiguration"]["UriPath"] == "/example/kms/xks/v1"
    assert "CloudHsmClusterId" not in by_name[0] and "TrustAnchorCertificate" not in by_name[0]
    every = kms.describe_custom_key_stores()["CustomKeyStores"]
    assert {s["CustomKeyStoreId"] for s in every} == {hsm, xks}

    with pytest.raises(ClientError) as both:
        kms.describe_custom_key_stores(CustomKeyStoreId=hsm, CustomKeyStoreName="hsm-store")
    assert error_of(both)[:2] == ("ValidationException", 400)
    for kwargs in ({"CustomKeyStoreId": "cks-00000000000000000"}, {"CustomKeyStoreName": "nope"}):
        with pytest.raises(kms.exceptions.CustomKeyStoreNotFoundException):
            kms.describe_custom_key_stores(**kwargs)


def test_describe_paging(kms: Any) -> None:
    ids = [hsm_store(kms, f"s{i}", f"cluster-234567abcde{c}") for i, c in enumerate("abcde")]
    seen: list[str] = []
    marker: dict[str, str] = {}
    pages = 0
    while True:
        page = kms.describe_custom_key_stores(Limit=2, **marker)
        pages += 1
        seen += [s["CustomKeyStoreId"] for s in page["CustomKeyStores"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = {"Marker": page["NextMarker"]}
    assert pages == 3 and sorted(seen) == sorted(ids) and len(seen) == 5
    with pytest.raises(kms.exceptions.InvalidMarkerException):
        kms.describe_custom_key_stores(Marker="bogus")


def test_quota_name_and_cluster_uniqueness_and_type_rules(kms: Any) -> None:
    hsm_store(kms, "dup")
    with pytest.raises(kms.exceptions.CustomKeyStoreNameInUseException):
        hsm_store(kms, "dup", "cluster-234567abcdefh")
    with pytest.raises(kms.exceptions.CloudHsmClusterInUseException):
        hsm_store(kms, "other")
    with pytest.raises(ClientError) as missing:
        kms.create_custom_key_store(CustomKeyStoreName="incomplete")
    assert error_of(missing)[:2] == ("ValidationException", 400)
    with pytest.raises(ClientError) as bad_cluster:
        hsm_store(kms, "badcluster", "cluster-1a23b4cdefg")  # '1' breaks the model pattern
    assert error_of(bad_cluster)[:2] == ("ValidationException", 400)
    for i in range(9):
        xks_store(kms, f"x{i}", f"xks{i}.example.com")
    with pytest.raises(kms.exceptions.LimitExceededException):
        xks_store(kms, "eleventh", "xks-eleven.example.com")


def test_transition_table(kms: Any, emulator: Emulator) -> None:
    emulator.configure(connect_seconds=100, disconnect_seconds=50)
    sid = hsm_store(kms)
    invalid = kms.exceptions.CustomKeyStoreInvalidStateException

    # DISCONNECTED: disconnect invalid; update OK; delete OK (tested elsewhere); connect OK
    with pytest.raises(invalid):
        kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    kms.update_custom_key_store(CustomKeyStoreId=sid, KeyStorePassword="newPassword1")
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    # CONNECTING: delete/create key/update invalid; connect is a no-op; time completes it
    assert store_state(kms, sid) == "CONNECTING"
    with pytest.raises(invalid):
        kms.delete_custom_key_store(CustomKeyStoreId=sid)
    with pytest.raises(invalid):
        kms.create_key(CustomKeyStoreId=sid, Origin="AWS_CLOUDHSM")
    with pytest.raises(invalid):
        kms.update_custom_key_store(CustomKeyStoreId=sid, NewCustomKeyStoreName="x")
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    emulator.advance(99)
    assert store_state(kms, sid) == "CONNECTING"
    emulator.advance(2)
    assert store_state(kms, sid) == "CONNECTED"
    # CONNECTED: delete invalid; rename OK; password change invalid
    with pytest.raises(invalid):
        kms.delete_custom_key_store(CustomKeyStoreId=sid)
    kms.update_custom_key_store(CustomKeyStoreId=sid, NewCustomKeyStoreName="renamed")
    with pytest.raises(invalid):
        kms.update_custom_key_store(CustomKeyStoreId=sid, KeyStorePassword="newPassword2")
    # -> DISCONNECTING: everything invalid
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    assert store_state(kms, sid) == "DISCONNECTING"
    for call in (
        kms.connect_custom_key_store,
        kms.disconnect_custom_key_store,
        kms.delete_custom_key_store,
    ):
        with pytest.raises(invalid):
            call(CustomKeyStoreId=sid)
    emulator.advance(51)
    assert store_state(kms, sid) == "DISCONNECTED"
    kms.delete_custom_key_store(CustomKeyStoreId=sid)
    with pytest.raises(kms.exceptions.CustomKeyStoreNotFoundException):
        kms.describe_custom_key_stores(CustomKeyStoreId=sid)
    with pytest.raises(kms.exceptions.CustomKeyStoreNotFoundException):
        kms.connect_custom_key_store(CustomKeyStoreId=sid)


def test_failed_connect_and_recovery(kms: Any, emulator: Emulator) -> None:
    hsm = hsm_store(kms, "hsm-fail-connect")
    xks = xks_store(kms, "xks-fail-connect")
    kms.connect_custom_key_store(CustomKeyStoreId=hsm)
    kms.connect_custom_key_store(CustomKeyStoreId=xks)
    emulator.advance(301)
    stores = {s["CustomKeyStoreId"]: s for s in kms.describe_custom_key_stores()["CustomKeyStores"]}
    assert stores[hsm]["ConnectionState"] == "FAILED"
    assert stores[hsm]["ConnectionErrorCode"] == "NETWORK_ERRORS"
    assert stores[xks]["ConnectionErrorCode"] == "XKS_PROXY_NOT_REACHABLE"
    invalid = kms.exceptions.CustomKeyStoreInvalidStateException
    for call in (kms.connect_custom_key_store, kms.delete_custom_key_store):
        with pytest.raises(invalid):
            call(CustomKeyStoreId=hsm)
    with pytest.raises(invalid):
        kms.update_custom_key_store(CustomKeyStoreId=hsm, KeyStorePassword="newPassword1")
    disconnect(kms, emulator, hsm)
    entry = kms.describe_custom_key_stores(CustomKeyStoreId=hsm)["CustomKeyStores"][0]
    assert "ConnectionErrorCode" not in entry
    # set_store_state forces FAILED with a chosen code (test aid), and back
    sid = hsm_store(kms, "forced", "cluster-234567abcdefh")
    connect(kms, emulator, sid)
    emulator.set_store_state(sid, "FAILED", "USER_LOGGED_IN")
    entry = kms.describe_custom_key_stores(CustomKeyStoreId=sid)["CustomKeyStores"][0]
    assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == ("FAILED", "USER_LOGGED_IN")
    emulator.set_store_state(sid, "CONNECTED")
    assert store_state(kms, sid) == "CONNECTED"


def test_update_name_in_use_and_xks_uri_in_use(kms: Any) -> None:
    a = xks_store(kms, "a", "one.example.com")
    xks_store(kms, "b", "two.example.com")
    with pytest.raises(kms.exceptions.CustomKeyStoreNameInUseException):
        kms.update_custom_key_store(CustomKeyStoreId=a, NewCustomKeyStoreName="b")
    with pytest.raises(kms.exceptions.XksProxyUriInUseException):
        kms.update_custom_key_store(
            CustomKeyStoreId=a, XksProxyUriEndpoint="https://two.example.com"
        )
    with pytest.raises(ClientError) as wrong_type:
        kms.update_custom_key_store(CustomKeyStoreId=a, KeyStorePassword="newPassword1")
    assert error_of(wrong_type)[0] == "ValidationException"
    kms.update_custom_key_store(CustomKeyStoreId=a, XksProxyUriEndpoint="https://three.example.com")
    entry = kms.describe_custom_key_stores(CustomKeyStoreId=a)["CustomKeyStores"][0]
    assert entry["XksProxyConfiguration"]["UriEndpoint"] == "https://three.example.com"
