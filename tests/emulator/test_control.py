"""The /_emulator control API, seeding at scale, and starting the emulator in both modes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest

from ksdelete.emulator import Emulator, EmulatorConfig, EmulatorError

from .conftest import hsm_store, key_state


def _raw(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read())


def test_clock_endpoints(emulator: Emulator) -> None:
    base = emulator.endpoint_url
    got = _raw(f"{base}/_emulator/clock")
    assert set(got) == {"now", "time_scale"} and got["time_scale"] == 1.0
    before = emulator.now()
    after = emulator.advance(86400)
    assert after.tzinfo is not None
    assert timedelta(days=1) <= after - before < timedelta(days=1, seconds=30)
    with pytest.raises(EmulatorError):
        emulator.advance(-1)


def test_config_endpoint(emulator: Emulator) -> None:
    config = emulator.configure(latency_ms=5, quotas="aws")
    assert config["latency_ms"] == 5 and config["quotas"] == "aws"
    assert _raw(f"{emulator.endpoint_url}/_emulator/config") == config
    assert set(config) == set(EmulatorConfig().to_dict())
    for bad in ({"quotas": "sometimes"}, {"fault_rate": 2}, {"no_such_knob": 1}):
        with pytest.raises(EmulatorError):
            emulator.configure(**bad)


def test_seed_state_calls_reset(kms: Any, emulator: Emulator) -> None:
    out = emulator.seed(
        {
            "region": "us-east-1",
            "stores": [
                {
                    "name": "hsm",
                    "type": "AWS_CLOUDHSM",
                    "connection_state": "CONNECTED",
                    "keys": 5,
                    "pending_keys": 2,
                    "disabled_keys": 1,
                    "aliases": True,
                },
                {
                    "name": "xks",
                    "type": "EXTERNAL_KEY_STORE",
                    "connection_state": "FAILED",
                    "keys": 1,
                },
            ],
            "plain_keys": 2,
        }
    )
    hsm, xks = out["stores"]
    assert (hsm["name"], hsm["type"], len(hsm["key_ids"])) == ("hsm", "AWS_CLOUDHSM", 5)
    assert len(out["plain_key_ids"]) == 2
    states = [key_state(kms, k) for k in hsm["key_ids"]]
    assert states == ["PendingDeletion", "PendingDeletion", "Disabled", "Enabled", "Enabled"]
    assert key_state(kms, xks["key_ids"][0]) == "Unavailable"
    entry = kms.describe_custom_key_stores(CustomKeyStoreId=xks["id"])["CustomKeyStores"][0]
    assert entry["ConnectionErrorCode"] == "XKS_PROXY_NOT_REACHABLE"

    state = emulator.state()
    assert {s["CustomKeyStoreId"] for s in state["stores"]} == {hsm["id"], xks["id"]}
    assert len(state["keys"]) == 8
    by_id = {k["KeyId"]: k for k in state["keys"]}
    assert by_id[hsm["key_ids"][0]]["Aliases"] == ["alias/hsm-0"]
    assert by_id[xks["key_ids"][0]]["UnderlyingState"] == "Enabled"
    assert json.loads(json.dumps(state)) == state
    assert emulator.state() == state  # stable dump for equality comparisons
    assert emulator.state("eu-west-1")["keys"] == []

    calls = emulator.calls()
    answered, arrived = calls[0].pop("wall"), calls[0].pop("arrived")
    assert isinstance(answered, float) and arrived <= answered  # when it came in, was answered
    assert calls[0] == {
        "operation": "DescribeKey",
        "region": "us-east-1",
        "account": "123456789012",
        "status": 200,
        "error": None,
        "key_id": hsm["key_ids"][0],
    }
    assert calls[-1]["custom_key_store_id"] == xks["id"]

    with pytest.raises(EmulatorError):
        emulator.seed({"stores": [{"name": "hsm", "type": "AWS_CLOUDHSM", "keys": 0}]})
    emulator.configure(latency_ms=1)
    emulator.reset()
    assert emulator.state()["stores"] == [] and emulator.calls() == []
    assert emulator.configure()["latency_ms"] == 1  # reset keeps config
    assert kms.list_keys()["Keys"] == []


def test_store_state_endpoint_and_errors(kms: Any, emulator: Emulator) -> None:
    sid = hsm_store(kms)
    emulator.set_store_state(sid, "CONNECTED")
    assert kms.describe_custom_key_stores()["CustomKeyStores"][0]["ConnectionState"] == "CONNECTED"
    with pytest.raises(EmulatorError):
        emulator.set_store_state("cks-00000000000000000", "CONNECTED")
    with pytest.raises(EmulatorError):
        emulator.set_store_state(sid, "HALF_CONNECTED")
    with pytest.raises(urllib.error.HTTPError):
        _raw(f"{emulator.endpoint_url}/_emulator/nope")


def test_problems_endpoint_records_server_side_violations(emulator: Emulator) -> None:
    assert emulator.problems() == []
    assert _raw(f"{emulator.endpoint_url}/_emulator/problems") == {"problems": []}


def test_seed_10k_keys_fast(kms: Any, emulator: Emulator) -> None:
    start = time.perf_counter()
    out = emulator.seed(
        {"stores": [{"name": "big", "type": "AWS_CLOUDHSM", "keys": 10_000, "pending_keys": 100}]}
    )
    elapsed = time.perf_counter() - start
    assert len(out["stores"][0]["key_ids"]) == 10_000
    assert elapsed < 10.0, f"seeding 10k keys took {elapsed:.1f} s"
    pages = kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1000})
    assert sum(len(p["Keys"]) for p in pages) == 10_000


def test_in_process_mode_and_sts(emulator_server: Emulator) -> None:
    import boto3

    with Emulator(EmulatorConfig(seed=1), in_process=True) as emu:
        assert emu.endpoint_url != emulator_server.endpoint_url
        emu.reset()
        kms = boto3.client("kms", endpoint_url=emu.endpoint_url, region_name="eu-west-1")
        sid = hsm_store(kms)
        assert kms.describe_custom_key_stores()["CustomKeyStores"][0]["CustomKeyStoreId"] == sid
        assert emu.calls()[0]["region"] == "eu-west-1"
        sts = boto3.client("sts", endpoint_url=emu.endpoint_url, region_name="us-east-1")
        assert sts.get_caller_identity()["Account"] == "123456789012"
        assert emu.problems() == []


def test_module_entry_point_prints_url_and_stops_on_sigterm() -> None:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ksdelete.emulator",
            "--port",
            "0",
            "--quotas",
            "aws",
            "--time-scale",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("KMS emulator listening on http://127.0.0.1:")
        port = int(line.strip().rsplit(":", 1)[1])
        assert port > 0
        config = _raw(f"http://127.0.0.1:{port}/_emulator/config")
        assert config["quotas"] == "aws" and config["time_scale"] == 2.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_responses_carry_the_emulated_clock_and_unique_request_ids(emulator: Emulator) -> None:
    from email.utils import parsedate_to_datetime

    import boto3

    emulator.advance(10 * 86400)
    kms = boto3.client("kms", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
    first = kms.list_keys()["ResponseMetadata"]
    second = kms.list_keys()["ResponseMetadata"]
    served = parsedate_to_datetime(first["HTTPHeaders"]["date"])
    assert abs((served - emulator.now()).total_seconds()) < 5
    assert first["RequestId"] != second["RequestId"]
