"""Discovery throughput against the emulator, as ratios against a baseline from the same run.

Baseline: the documented approach done in Python, one boto3 client in one thread: page through
ListKeys, DescribeKey every key, keep those of the store. Measured: ksdelete's discovery (paced,
8 workers), and a second scan that reuses the membership cache (what a re-scan before delete, or
a later store in the same run, costs).

    python benchmarks/bench_discovery.py [--keys 5000]

Numbers measure the emulator (a Python process on this machine) more than ksdelete: compare the
ratios, not the absolute rates, with real KMS.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import boto3
from botocore.config import Config

from ksdelete.discover import MembershipCache, snapshot
from ksdelete.emulator import Emulator, EmulatorConfig
from ksdelete.gateway import AwsTarget, Gateway


def baseline(endpoint: str, store_id: str) -> int:
    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                       config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
    found = 0
    for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1000}):
        for entry in page["Keys"]:
            meta: dict[str, Any] = kms.describe_key(KeyId=entry["KeyId"])["KeyMetadata"]
            found += meta.get("CustomKeyStoreId") == store_id
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with Emulator(EmulatorConfig(validate=False)) as emu:
        seeded = emu.seed({"region": "us-east-1", "plain_keys": args.keys, "stores": [
            {"name": "target", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
             "keys": 20}]})
        store_id = seeded["stores"][0]["id"]
        total = args.keys + 20

        start = time.perf_counter()
        assert baseline(emu.endpoint_url, store_id) == 20
        base = time.perf_counter() - start

        gateway = Gateway(AwsTarget(region="us-east-1", endpoint_url=emu.endpoint_url))
        store = gateway.describe_store(store_id=store_id)
        assert store is not None
        cache = MembershipCache()
        start = time.perf_counter()
        assert len(snapshot(gateway, store, cache=cache).keys) == 20
        first = time.perf_counter() - start
        start = time.perf_counter()
        assert len(snapshot(gateway, store, cache=cache).keys) == 20
        again = time.perf_counter() - start

    print(f"keys in account: {total}")
    print(f"baseline (sequential ListKeys + DescribeKey): {base:.2f} s, "
          f"{base / total * 1000:.2f} ms/key")
    print(f"ksdelete discovery (8 workers): {first:.2f} s, {first / total * 1000:.2f} ms/key, "
          f"speed-up x{base / first:.2f}")
    print(f"ksdelete re-scan (membership cache): {again:.2f} s, speed-up x{base / again:.1f}")


if __name__ == "__main__":
    main()
