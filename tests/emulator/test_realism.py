"""Realism knobs: quotas, faults, latency, eventual consistency, time scale."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ksdelete.emulator import Emulator

from .conftest import error_of


def test_quotas_throttle_a_burst(kms: Any, emulator: Emulator) -> None:
    emulator.configure(quotas="aws")
    outcomes = []
    for _ in range(12):  # DescribeCustomKeyStores: 5 rps
        try:
            kms.describe_custom_key_stores()
            outcomes.append("ok")
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert exc.response["Error"]["Message"] == (
                "You have exceeded the rate at which you may call KMS. "
                "Reduce the frequency of your calls."
            )
            outcomes.append(code)
    assert outcomes.count("ok") >= 5 and "ThrottlingException" in outcomes
    kms.list_keys()  # separate quota (500 rps): unaffected
    emulator.configure(quotas="off")
    for _ in range(10):
        kms.describe_custom_key_stores()


def test_fault_rate_one_gives_internal_errors(kms: Any, emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0)
    with pytest.raises(kms.exceptions.KMSInternalException) as excinfo:
        kms.list_keys()
    assert error_of(excinfo)[:2] == ("KMSInternalException", 500)
    assert emulator.calls()[-1]["status"] == 500
    emulator.configure(fault_rate=0.0)
    kms.list_keys()


def test_latency_is_added(kms: Any, emulator: Emulator) -> None:
    kms.list_keys()
    start = time.perf_counter()
    kms.list_keys()
    fast = time.perf_counter() - start
    emulator.configure(latency_ms=250)
    start = time.perf_counter()
    kms.list_keys()
    slow = time.perf_counter() - start
    assert slow >= 0.25 and slow > fast + 0.2
    start = time.perf_counter()
    emulator.calls()  # control endpoints are never delayed
    assert time.perf_counter() - start < 0.2


def test_consistency_lag_stale_then_converges(kms: Any, emulator: Emulator) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    emulator.configure(consistency_lag=1.5, seed=3)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    states = [kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] for _ in range(10)]
    assert "Enabled" in states  # a stale read right after the write
    time.sleep(1.6)
    states = [kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] for _ in range(10)]
    assert set(states) == {"PendingDeletion"}
    # a freshly created key may be missing from reads for a while
    new = kms.create_key()["KeyMetadata"]["KeyId"]
    listed = [new in {k["KeyId"] for k in kms.list_keys()["Keys"]} for _ in range(10)]
    assert False in listed
    time.sleep(1.6)
    assert new in {k["KeyId"] for k in kms.list_keys()["Keys"]}


def test_time_scale(emulator: Emulator) -> None:
    emulator.configure(time_scale=3600.0)
    before = emulator.now()
    time.sleep(0.5)
    elapsed = (emulator.now() - before).total_seconds()
    assert 1500 <= elapsed <= 3600  # half a wall second is about half an emulated hour
    emulator.configure(time_scale=1.0)
    before = emulator.now()
    time.sleep(0.2)
    assert (emulator.now() - before).total_seconds() < 5


def test_time_scale_drives_store_transitions(kms: Any, emulator: Emulator) -> None:
    from .conftest import hsm_store, store_state

    sid = hsm_store(kms)
    emulator.configure(time_scale=1000.0, connect_seconds=300)
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    assert store_state(kms, sid) == "CONNECTING"
    time.sleep(0.4)
    assert store_state(kms, sid) == "CONNECTED"
