"""Scheduling pace against the emulator with AWS's request quotas switched on.

Measures the rate ksdelete achieves for ScheduleKeyDeletion (quota 15 req/s) and how many
requests the emulator throttled, against a baseline from the same run: the same calls made as
fast as one boto3 client can, with botocore's standard retries.

    python benchmarks/bench_pacing.py [--keys 60]
"""

from __future__ import annotations

import argparse
import os
import time

import boto3
from botocore.config import Config

from ksdelete.emulator import Emulator, EmulatorConfig
from ksdelete.gateway import AwsTarget, Gateway

QUOTA = 15.0  # ScheduleKeyDeletion, requests per second (kms-reference 6.1)


def throttled(emu: Emulator) -> int:
    return sum(1 for c in emu.calls() if c["operation"] == "ScheduleKeyDeletion"
               and c["error"] == "ThrottlingException")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=60)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    spec = {"region": "us-east-1", "stores": [
        {"name": "target", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
         "keys": args.keys}]}
    with Emulator(EmulatorConfig(quotas="aws", validate=False)) as emu:
        keys = emu.seed(spec)["stores"][0]["key_ids"]
        kms = boto3.client("kms", endpoint_url=emu.endpoint_url, region_name="us-east-1",
                           config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
        start = time.perf_counter()
        failed = 0
        for key in keys:
            try:
                kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
            except kms.exceptions.ClientError:
                failed += 1
        base = time.perf_counter() - start
        base_throttled = throttled(emu)

        emu.reset()
        keys = emu.seed(spec)["stores"][0]["key_ids"]
        gateway = Gateway(AwsTarget(region="us-east-1", endpoint_url=emu.endpoint_url))
        start = time.perf_counter()
        for key in keys:
            gateway.schedule_key_deletion(key, 7)
        paced = time.perf_counter() - start
        paced_throttled = throttled(emu)

    n = len(keys)
    print(f"ScheduleKeyDeletion x{n}, emulator quota {QUOTA:.0f} req/s")
    print(f"baseline (unpaced boto3, standard retries): {n / base:.1f} req/s, "
          f"{base_throttled} throttled, {failed} failed after retries")
    print(f"ksdelete gateway (paced): {n / paced:.1f} req/s = {n / paced / QUOTA:.2f} of the "
          f"quota, {paced_throttled} throttled; rate vs baseline x{base / paced:.2f}")


if __name__ == "__main__":
    main()
