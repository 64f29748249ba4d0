"""A fleet's pacing under AWS's request quotas (issue 21), measured in one run on this machine.

    .venv/bin/python benchmarks/fleet.py            # about 4 minutes on 2 cores
    .venv/bin/python benchmarks/fleet.py --quick    # about 1 minute

Against the emulator in its own process with AWS's quotas on (`--quotas aws`: a token bucket
per operation, account and Region) and 20 ms of latency, the installed CLI runs
`ksdelete fleet apply FILE --yes` as cron would, twice (the first run schedules every key; the
second, in the waiting period, reads the keys and the watch), for:
1. one scope: two stores of 500 keys each in one account and Region (among 1,000 other keys);
2. two scopes: two accounts (reached by profiles), each with two stores of 125 keys.

From the emulator's call log (each request's operation, account, Region, error and when it
arrived) it prints, per run:
- the requests answered ThrottlingException (must be none);
- the ListKeys chains each (account, Region) read: one survey for both stores, plus the fresh
  reading each store's point of no return takes (the executor never acts on a shared survey);
- per operation and (account, Region), the most requests that arrived in any one second, as a
  ratio of AWS's quota for it (ksdelete.emulator.realism.AWS_QUOTAS; at most 1.00), and the
  same over any 5 seconds (the sustained pace, with the arrival jitter of a busy machine
  averaged out); a second that holds more than the quota is marked, and more than JITTER
  requests over it fails the run;
- with two scopes, the most requests of both together in one second: more than one scope's
  quota means the accounts really ran in parallel, each under its own pacer.
The plan's `unused_for_days` is 0 (no GetKeyLastUsage at 5 per second per key: 1,000 keys would
take 3.5 minutes on that alone). Compare ratios, not absolute rates, with real KMS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ksdelete.emulator import Emulator, EmulatorConfig
from ksdelete.emulator.calllog import arrival, counted, peak, quota

REGION = "us-east-1"
ACCOUNTS = {"111111111111": "dev", "222222222222": "stage"}
PAGE = 1000  # ListKeys entries per page (gateway.list_keys)
KSDELETE = str(Path(sys.executable).parent / "ksdelete")
# The pacer grants at most the quota in any one second (tests/fleet/test_fleet_pacing.py), but
# the emulator stamps a request when it arrives: a thread starved between taking its token and
# sending can reach the server just before the next request, one second there then holding
# one more than was granted in it. More than JITTER over the quota is a pace over it.
JITTER = 1


@dataclass
class Case:
    name: str
    accounts: list[str]
    stores: int  # per account
    keys: int  # per store
    plain: int  # other keys per account


def say(text: str = "") -> None:
    print(text, flush=True)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f})"


def key_of(account: str) -> str:
    return f"AKIAFLEET{account}"[:20]


def environment(state: Path) -> dict[str, str]:
    """The CLI's environment: a profile per account (its access key mapped to the account by
    the emulator), nothing of the user's AWS config, a fresh state directory, paced."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "KSDELETE_TEST_UNPACED"}
    creds = state / "credentials"
    creds.write_text("".join(f"[{name}]\naws_access_key_id = {key_of(a)}\n"
                             "aws_secret_access_key = x\n" for a, name in ACCOUNTS.items()))
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=str(state / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(creds), XDG_STATE_HOME=str(state))
    return env


def fleet_file(path: Path, case: Case, stores: dict[str, list[dict[str, Any]]]) -> Path:
    lines = ["version: 1", f"name: bench-{case.name.replace(' ', '-')}", "defaults:",
             "  pending_window_days: 7", "  unused_for_days: 0", "guards:",
             f"  allowed_accounts: [{', '.join(repr(a) for a in case.accounts)}]",
             f"rollout: {{max_accounts: {len(case.accounts)}, canary: 0}}", "accounts:"]
    for account in case.accounts:
        lines += [f'  - account_id: "{account}"', f"    name: {ACCOUNTS[account]}",
                  f"    profile: {ACCOUNTS[account]}", "    stores:"]
        lines += [f"      - {{id: {s['id']}, region: {REGION}, expect_name: {s['name']}, "
                  "expect_type: EXTERNAL_KEY_STORE}" for s in stores[account]]
    path.write_text("\n".join(lines) + "\n")
    return path


def apply(emulator: Emulator, path: Path, env: dict[str, str]) -> tuple[int, dict[str, Any],
                                                                         float]:
    started = time.perf_counter()
    ran = subprocess.run([KSDELETE, "fleet", "apply", str(path), "--yes", "--endpoint-url",
                          emulator.endpoint_url, "--output", "json"], env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    seconds = time.perf_counter() - started
    if ran.returncode not in (0, 3):
        raise SystemExit(f"fleet apply exited {ran.returncode}:\n{ran.stderr[-3000:]}")
    return ran.returncode, json.loads(ran.stdout), seconds


def report(case: Case, calls: list[dict[str, Any]], *, pages: int, first: bool) -> bool:
    """Print the run's figures; whether every one is within its bound."""
    ok = True
    throttled = [c for c in calls if c.get("error") == "ThrottlingException"]
    say(f"    throttled requests: {len(throttled)} of {len(calls)}")
    ok &= not throttled
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for c in counted(calls):  # not STS's, Config's
        times[(c["account"], c["operation"])].append(arrival(c))
    for account in case.accounts:
        chains = len(times[(account, "ListKeys")]) / pages
        expected = 1 + case.stores if first else 1
        why = (f"1 survey + {case.stores} fresh (one per store's point of no return)"
               if first else "1 survey")
        say(f"    {account}/{REGION}: ListKeys chains {chains:g} (expected {why}); "
            "per operation, most requests in 1 s and in 5 s / quota:")
        ok &= chains == expected
        for (acct, operation), stamps in sorted(times.items()):
            if acct != account:
                continue
            q, most = quota(operation), peak(stamps)
            one, five = most / q, peak(stamps, 5.0) / (5 * q)
            over = most - q
            flag = "" if over <= 0 else f"  +{over:g} at arrival" + (
                " (jitter)" if over <= JITTER else ": OVER THE QUOTA")
            say(f"      {operation:<24} {len(stamps):>5} calls  1 s: {most:>4} "
                f"= {one:4.2f}   5 s: {five:4.2f}   (quota {q:g}/s){flag}")
            ok &= over <= JITTER
    if len(case.accounts) > 1:
        busiest = max(((op, peak([t for (a, o), ts in times.items() if o == op for t in ts]))
                       for op in {o for _, o in times}), key=lambda x: x[1] / quota(x[0]))
        op, n = busiest
        say(f"    both accounts together: {op} {n} in 1 s = {n / quota(op):.2f} of one scope's "
            f"quota (> 1: the accounts ran in parallel, each under its own pacer)")
        if first:
            ok &= n > quota(op)
    return ok


def run_case(case: Case, latency_ms: float) -> bool:
    total = case.stores * case.keys
    say(f"\n== {case.name}: {len(case.accounts)} account(s) x {case.stores} stores x "
        f"{case.keys} keys in {REGION} (+{case.plain} other keys per account), emulator "
        f"latency {latency_ms:g} ms ({load()})")
    ok = True
    with Emulator(EmulatorConfig(quotas="aws", latency_ms=latency_ms)) as emulator, \
            tempfile.TemporaryDirectory() as scratch:
        state = Path(scratch)
        emulator.configure(principals={key_of(a): f"arn:aws:iam::{a}:role/operator"
                                       for a in ACCOUNTS}, disconnect_seconds=0)
        stores = {a: emulator.seed({
            "account": a, "region": REGION, "plain_keys": case.plain,
            "stores": [{"name": f"s{n}", "type": "EXTERNAL_KEY_STORE", "keys": case.keys}
                       for n in range(case.stores)]})["stores"] for a in case.accounts}
        path = fleet_file(state / "fleet.yml", case, stores)
        env = environment(state)
        pages = math.ceil((total + case.plain) / PAGE)
        for first in (True, False):
            seen = len(emulator.calls())
            code, doc, seconds = apply(emulator, path, env)
            scheduled = doc["summary"]["keys_scheduled"]
            say(f"  {'first' if first else 'second'} run: exit {code} in {seconds:.1f} s, "
                f"{scheduled} key(s) scheduled")
            if first and scheduled != total * len(case.accounts):
                say(f"    expected {total * len(case.accounts)} scheduled")
                ok = False
            ok &= report(case, emulator.calls()[seen:], pages=pages, first=first)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true",
                        help="2 x 60 keys in one scope, 2 x 2 x 30 in two (about 1 minute)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    accounts = list(ACCOUNTS)
    if args.quick:
        cases = [Case("one scope", accounts[:1], 2, 60, 200), Case("two scopes", accounts, 2,
                                                                    30, 100)]
    else:
        cases = [Case("one scope", accounts[:1], 2, 500, 1000),
                 Case("two scopes", accounts, 2, 125, 500)]
    say(f"ksdelete fleet pacing benchmark: {os.cpu_count()} cores, {load()}")
    started = time.perf_counter()
    results = [run_case(case, args.latency_ms) for case in cases]  # every case, even after a miss
    ok = all(results)
    say(f"\n{'every figure within its bound' if ok else 'SOME FIGURE OUT OF BOUNDS'}; done in "
        f"{time.perf_counter() - started:.0f} s ({load()})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
