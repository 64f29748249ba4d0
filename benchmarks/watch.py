"""The watch's cost in LookupEvents calls: does it grow with the number of pending keys?

    .venv/bin/python benchmarks/watch.py            # 30 and 300 keys, about 2 minutes
    .venv/bin/python benchmarks/watch.py --keys 30 100 300

For each size, against the emulator under AWS's quotas (`--quotas aws`: LookupEvents 2 per
second per account and Region) in a quiet account (no cryptographic traffic), a store whose keys
are all pending deletion (seeded: each with its ScheduleKeyDeletion event), it runs the installed
CLI as cron would, during the waiting period:
- `ksdelete STORE --yes` (the first run: it reads every key's anchor, one page per 50 keys);
- the same again (the anchors and how far each chain was read are remembered);
- `ksdelete status STORE`;
and prints the LookupEvents calls and the wall time of each. Before issue 18 the watch made one
LookupEvents chain per key (100 keys: 56 s per run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ksdelete.emulator import Emulator, EmulatorConfig

KSDELETE = str(Path(sys.executable).parent / "ksdelete")


def lookups(emulator: Emulator) -> int:
    return sum(1 for c in emulator.calls() if c["operation"] == "LookupEvents")


def measure(keys: int) -> list[tuple[str, int, float, int]]:
    rows = []
    with Emulator(EmulatorConfig(quotas="aws")) as emulator, \
            tempfile.TemporaryDirectory() as state:
        emulator.seed({"region": "us-east-1", "stores": [
            {"name": "target", "type": "EXTERNAL_KEY_STORE", "connection_state": "CONNECTED",
             "keys": keys, "pending_keys": keys}]})
        emulator.advance(3600)
        env = dict(os.environ, AWS_ENDPOINT_URL=emulator.endpoint_url, AWS_REGION="us-east-1",
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   XDG_STATE_HOME=state)
        for label, args in (("cron run 1", ["target", "--yes"]),
                            ("cron run 2", ["target", "--yes"]),
                            ("status", ["status", "target"])):
            emulator.advance(3600)
            before = lookups(emulator)
            start = time.monotonic()
            done = subprocess.run([KSDELETE, *args], env=env, capture_output=True, text=True,
                                  check=False)
            rows.append((label, lookups(emulator) - before, time.monotonic() - start,
                         done.returncode))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[30, 300])
    sizes = parser.parse_args().keys
    print(f"{'keys':>5} {'run':<11} {'LookupEvents':>12} {'seconds':>8} {'exit':>4}")
    for keys in sizes:
        for label, calls, seconds, code in measure(keys):
            print(f"{keys:>5} {label:<11} {calls:>12} {seconds:>8.1f} {code:>4}")


if __name__ == "__main__":
    main()
