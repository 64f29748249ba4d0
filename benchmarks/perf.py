"""Every figure of docs/performance.md, measured in one run on this machine.

    .venv/bin/pip install -e '.[test,bench]'
    .venv/bin/python benchmarks/perf.py

Against the emulator in its own process (`ksdelete emulator --latency-ms 20`), with 10,000
unrelated keys and a store of 100, it measures keys described per second for:
- the AWS CLI loop from AWS's documentation (one `aws kms describe-key` per key), on a sample;
- a sequential boto3 loop (ListKeys pages, then DescribeKey per key), on a sample;
- an unpaced 32-thread boto3 loop over every key (one shared client, 32 connections): what
  the machine allows;
- ksdelete's discovery: `ksdelete status STORE`, the installed CLI end to end (process start,
  STS, store lookup included), with an empty key membership cache;
- ksdelete's second run, with the cache the first one wrote;
then, with the emulator's AWS quotas on, the ScheduleKeyDeletion and CancelKeyDeletion rates
of `ksdelete STORE --yes` and `ksdelete cancel STORE --yes` over hundreds of keys (from the
journal's timestamps) and how many calls were throttled; and the peak RSS of the ksdelete
process (wait4) for a dry run over 30,000 and 100,000 keys.

It prints each figure and the issue's targets, writes the numbers to benchmarks/results.json
and draws docs/performance.png (keys/s per method; needs the `bench` extra). About 8 minutes
on 2 cores; `--quick` (smaller, writes nothing) about 1. The numbers measure the emulator (one
Python process on the same 2 cores) as much as ksdelete: compare ratios from the same run, not
absolute rates, with real KMS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from ksdelete.emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
SCHEDULE_QUOTA = 15.0  # ScheduleKeyDeletion, requests per second (kms-reference 6.1)
CANCEL_QUOTA = 5.0  # CancelKeyDeletion
TAG_QUOTA = 10.0  # TagResource (AWS's request quota table)
DOCS_LOOP = ("for key in $KEYS; do aws kms describe-key --key-id $key | "
             "grep '\"CustomKeyStoreId\": \"{store}\"' --context 100; done")


@dataclass
class Results:
    machine: dict[str, Any] = field(default_factory=dict)
    keys: int = 0
    store_keys: int = 0
    latency_ms: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)  # method -> keys described per second
    details: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)


def say(text: str) -> None:
    print(text, flush=True)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f})"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def emulator_pid(emulator: Emulator) -> int:
    process = emulator._proc  # the benchmark's own child: its CPU shows who the bottleneck is
    assert process is not None
    return process.pid


def environment(state: Path, endpoint: str) -> dict[str, str]:
    """The CLI's environment: dummy credentials, no AWS config of the user's, a fresh state
    directory (journal, locks, key membership cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=str(state / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(state / "no-aws-credentials"),
               AWS_ENDPOINT_URL=endpoint, XDG_STATE_HOME=str(state))
    return env


def tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"benchmarks/perf.py: {name} not found; pip install -e '.[test]'")
    return found


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float
    cpu: float


# Runs a command and writes its wall time, peak RSS and CPU (wait4: that process alone). A
# process's ru_maxrss starts from the RSS of whatever it was forked from (Linux keeps the old
# address space's high-water mark across exec), so the command is forked from this small
# interpreter, not from the benchmark with its emulator client and 100,000 key IDs.
RUNNER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
with open(os.environ["BENCH_RUSAGE"], "w") as out:
    out.write(f"{time.perf_counter() - start} {usage.ru_maxrss} "
              f"{usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(args: list[str], env: dict[str, str]) -> Ran:
    """Run a command: its output, wall time, and its own peak RSS and CPU."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as usage:
        code = subprocess.call([sys.executable, "-S", "-c", RUNNER, *args],
                               env={**env, "BENCH_RUSAGE": usage.name}, stdout=out,
                               stderr=err, stdin=subprocess.DEVNULL)
        seconds, max_rss_kb, cpu = (float(x) for x in usage.read().split())
        out.seek(0)
        err.seek(0)
        return Ran(code, out.read().decode(), err.read().decode(), seconds, max_rss_kb / 1024,
                   cpu)


def client(endpoint: str, connections: int = 10) -> Any:
    return boto3.session.Session().client(
        "kms", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3},
                                      max_pool_connections=connections))


def list_all(kms: Any) -> list[str]:
    keys: list[str] = []
    for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1000}):
        keys.extend(entry["KeyId"] for entry in page["Keys"])
    return keys


@contextmanager
def measured(emulator: Emulator) -> Iterator[dict[str, float]]:
    """Wall seconds, and the emulator's CPU seconds, of the block."""
    pid = emulator_pid(emulator)
    numbers: dict[str, float] = {}
    cpu, start = cpu_seconds(pid), time.perf_counter()
    yield numbers
    numbers["seconds"] = time.perf_counter() - start
    numbers["emulator_cpu"] = cpu_seconds(pid) - cpu


# ---- discovery ------------------------------------------------------------------------------


def sequential_boto3(emulator: Emulator, total: int, sample: int, results: Results) -> None:
    kms = client(emulator.endpoint_url)
    start = time.perf_counter()
    keys = list_all(kms)
    listing = time.perf_counter() - start
    assert len(keys) == total
    sample_keys = keys[:sample]
    start = time.perf_counter()
    for key in sample_keys:
        kms.describe_key(KeyId=key)
    per_key = (time.perf_counter() - start) / len(sample_keys)
    rate = total / (listing + total * per_key)
    results.rates["sequential boto3 loop"] = rate
    results.details["sequential boto3 loop"] = {
        "sample": len(sample_keys), "ms_per_key": per_key * 1000, "listing_s": listing}
    say(f"  sequential boto3 loop: {rate:7.1f} keys/s  ({per_key * 1000:.1f} ms per key on a "
        f"sample of {len(sample_keys)}, ListKeys {listing:.2f} s)")


def threaded_boto3(emulator: Emulator, total: int, threads: int, results: Results) -> None:
    kms = client(emulator.endpoint_url, connections=threads)
    kms.describe_key(KeyId=list_all(kms)[0])  # warm: the client's first call loads models
    with measured(emulator) as numbers:
        keys = list_all(kms)
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(lambda key: kms.describe_key(KeyId=key), keys):
                pass
    assert len(keys) == total
    rate = total / numbers["seconds"]
    name = f"unpaced {threads}-thread boto3 loop"
    results.rates[name] = rate
    results.details[name] = {**numbers, "emulator_cpu_share": numbers["emulator_cpu"]
                             / numbers["seconds"]}
    say(f"  {name}: {rate:7.1f} keys/s  ({numbers['seconds']:.1f} s; the emulator used "
        f"{numbers['emulator_cpu'] / numbers['seconds']:.0%} of a core)")


def aws_cli_loop(emulator: Emulator, store_id: str, total: int, sample: int, state: Path,
                 results: Results) -> None:
    env = environment(state, emulator.endpoint_url)
    aws = tool("aws")
    env["PATH"] = f"{Path(aws).parent}{os.pathsep}{env.get('PATH', '')}"
    listing = run(["aws", "kms", "list-keys", "--query", "Keys[*].KeyId", "--output", "text"],
                  env)
    keys = listing.stdout.split()
    assert listing.code == 0 and len(keys) == total, listing.stderr[-500:]
    env["KEYS"] = " ".join(keys[:sample])
    loop = run(["bash", "-c", DOCS_LOOP.format(store=store_id)], env)
    per_key = loop.seconds / sample
    rate = total / (listing.seconds + total * per_key)
    results.rates["AWS CLI loop (docs)"] = rate
    results.details["AWS CLI loop (docs)"] = {
        "sample": sample, "s_per_key": per_key, "listing_s": listing.seconds}
    say(f"  AWS CLI loop (docs):   {rate:7.2f} keys/s  ({per_key:.2f} s per key on a sample "
        f"of {sample}, list-keys {listing.seconds:.1f} s)")


def ksdelete_status(emulator: Emulator, state: Path, name: str, expected: set[str],
                    results: Results, total: int, latency: float) -> Ran:
    seen = len(emulator.calls())
    with measured(emulator) as numbers:
        # Discovery alone: the last-use gate (GetKeyLastUsage, 5 per second) is left out.
        ran = run([tool("ksdelete"), "status", "bench-store", "--output", "json",
                   "--unused-for", "0"],
                  environment(state, emulator.endpoint_url))
    assert ran.code == 3, ran.stderr[-2000:]
    store = json.loads(ran.stdout)["stores"][0]
    assert {k["id"] for k in store["keys"]} == expected, "ksdelete found other keys"
    rate = total / ran.seconds
    results.rates[name] = rate
    results.details[name] = {"seconds": ran.seconds, "client_cpu": ran.cpu,
                             "emulator_cpu": numbers["emulator_cpu"],
                             "max_rss_mb": ran.max_rss_mb}
    say(f"  {name}: {rate:7.1f} keys/s  ({ran.seconds:.2f} s end to end; client CPU "
        f"{ran.cpu:.1f} s, emulator CPU {numbers['emulator_cpu']:.1f} s)")
    # After discovery, the grants gate reads ListGrants for each of the store's keys (paced
    # under its 100 req/s quota): measured from the emulator's log, to tell the two apart.
    grants = [c["wall"] for c in emulator.calls()[seen:] if c["operation"] == "ListGrants"]
    gates = max(grants) - min(grants) + latency if grants else 0.0
    results.details[name]["grants_s"] = gates
    say(f"    of which reading the store keys' grants (the grants gate): {gates:.2f} s")
    return ran



def discovery(args: argparse.Namespace, results: Results) -> None:
    total = args.keys + args.store_keys
    say(f"\n== Discovery: {args.keys:,} unrelated keys + a store of {args.store_keys}, emulator "
        f"latency {args.latency_ms:g} ms ({load()})")
    with Emulator(EmulatorConfig(latency_ms=args.latency_ms)) as emulator, \
            tempfile.TemporaryDirectory() as scratch:
        seeded = emulator.seed({"region": REGION, "plain_keys": args.keys, "stores": [
            {"name": "bench-store", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
             "keys": args.store_keys}]})
        store = seeded["stores"][0]
        expected = set(store["key_ids"])
        state = Path(scratch)
        sequential_boto3(emulator, total, args.sequential_sample, results)
        aws_cli_loop(emulator, store["id"], total, args.cli_sample, state / "aws", results)
        # The two that fill the pipe, back to back (what the machine allows vs ksdelete).
        threaded_boto3(emulator, total, 32, results)
        first = ksdelete_status(emulator, state / "ksdelete", "ksdelete, first run", expected,
                                results, total, args.latency_ms / 1000)
        second = ksdelete_status(emulator, state / "ksdelete", "ksdelete, second run (cache)",
                                 expected, results, total, args.latency_ms / 1000)
        results.details["second run speed-up"] = first.seconds / second.seconds
        say(f"  second run: {first.seconds / second.seconds:.1f}x faster than the first")
        # The grants read costs both runs the same (the store's keys at the ListGrants quota):
        # discovery alone is what the cache speeds up.
        alone = (first.seconds - results.details["ksdelete, first run"]["grants_s"]) / (
            second.seconds - results.details["ksdelete, second run (cache)"]["grants_s"])
        results.details["second run speed-up, discovery alone"] = alone
        say(f"  second run, discovery alone (without the grants read): {alone:.1f}x faster")


# ---- scheduling and cancel under the quotas ---------------------------------------------------


def journal_rate(state: Path, operation: str) -> tuple[float, int]:
    """Calls per second of `operation` from the journal's result lines (first to last)."""
    stamps = []
    for line in (state / "ksdelete" / "journal.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("operation") == operation and entry.get("phase") == "result" \
                and entry.get("outcome") == "ok":
            stamps.append(datetime.fromisoformat(entry["time"]).timestamp())
    if len(stamps) < 2:
        return 0.0, len(stamps)
    return (len(stamps) - 1) / (max(stamps) - min(stamps)), len(stamps)


def paced(args: argparse.Namespace, results: Results) -> None:
    say(f"\n== Scheduling and cancel under --quotas aws: a store of {args.schedule_keys} keys "
        f"({load()})")
    with Emulator(EmulatorConfig(latency_ms=args.latency_ms, quotas="aws")) as emulator, \
            tempfile.TemporaryDirectory() as scratch:
        state = Path(scratch)
        emulator.seed({"region": REGION, "plain_keys": 1000, "stores": [
            {"name": "bench-store", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
             "keys": args.schedule_keys}]})
        env = environment(state, emulator.endpoint_url)
        for command, operation, quota in (
                (["bench-store", "--yes", "--pending-window-days", "7"], "ScheduleKeyDeletion",
                 SCHEDULE_QUOTA),
                (["cancel", "bench-store", "--yes"], "CancelKeyDeletion", CANCEL_QUOTA)):
            ran = run([tool("ksdelete"), *command, "--output", "json"], env)
            doc = json.loads(ran.stdout)
            actions = [a for s in doc["stores"] for a in s["actions"]
                       if a["operation"] == operation]
            surfaced = [a for a in actions if a["outcome"].startswith("error")]
            calls = [c for c in emulator.calls() if c["operation"] == operation]
            throttled = sum(1 for c in calls if c["error"] == "ThrottlingException")
            rate, done = journal_rate(state, operation)
            results.details[operation] = {
                "keys": done, "rate": rate, "quota": quota, "share_of_quota": rate / quota,
                "requests": len(calls), "throttled": throttled,
                "throttled_share": throttled / len(calls) if calls else 0.0,
                "errors_surfaced": len(surfaced), "exit_code": ran.code}
            say(f"  {operation}: {done} keys at {rate:.2f} req/s = {rate / quota:.0%} of the "
                f"{quota:g} req/s quota; {throttled} of {len(calls)} requests throttled "
                f"({throttled / max(1, len(calls)):.1%}), {len(surfaced)} errors reached the "
                f"user (exit {ran.code})")
            if operation == "ScheduleKeyDeletion":
                # Each key is tagged (ksdelete's mark) just before it is scheduled, and
                # TagResource's own quota (10 req/s) is below ScheduleKeyDeletion's (15).
                tag_rate, tagged = journal_rate(state, "TagResource")
                results.details["TagResource"] = {
                    "keys": tagged, "rate": tag_rate, "quota": TAG_QUOTA,
                    "share_of_quota": tag_rate / TAG_QUOTA}
                say(f"  TagResource (the mark before each ScheduleKeyDeletion): {tagged} at "
                    f"{tag_rate:.2f} req/s = {tag_rate / TAG_QUOTA:.0%} of its {TAG_QUOTA:g} "
                    "req/s quota, which bounds scheduling")


# ---- memory ------------------------------------------------------------------------------


def memory(args: argparse.Namespace, results: Results) -> None:
    say(f"\n== Peak RSS of `ksdelete STORE --dry-run` (the ksdelete process alone), emulator "
        f"latency {args.latency_ms:g} ms ({load()})")
    with Emulator(EmulatorConfig(latency_ms=args.latency_ms)) as emulator, \
            tempfile.TemporaryDirectory() as scratch:
        emulator.seed({"region": REGION, "stores": [
            {"name": "bench-store", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
             "keys": args.store_keys}]})
        seeded = args.store_keys
        for total in sorted(args.memory_keys):
            emulator.seed({"region": REGION, "plain_keys": total - seeded})
            seeded = total
            ran = run([tool("ksdelete"), "bench-store", "--dry-run", "--output", "json",
                       "--unused-for", "0"],
                      environment(Path(scratch) / str(total), emulator.endpoint_url))
            assert ran.code == 0, ran.stderr[-2000:]
            results.details[f"dry run, {total} keys"] = {
                "max_rss_mb": ran.max_rss_mb, "seconds": ran.seconds,
                "keys_per_s": total / ran.seconds}
            say(f"  {total:>7,} keys: peak RSS {ran.max_rss_mb:.0f} MB ({ran.seconds:.0f} s, "
                f"{total / ran.seconds:.0f} keys/s)")


# ---- targets and chart ------------------------------------------------------------------------


def targets(results: Results) -> None:
    rates = results.rates
    ks = rates.get("ksdelete, first run", 0.0)
    checks: list[tuple[str, float, str, float]] = []
    if ks:
        checks += [
            ("discovery / sequential boto3 loop", ks / rates["sequential boto3 loop"], ">=", 8),
            ("discovery / unpaced 32-thread boto3 loop",
             ks / rates["unpaced 32-thread boto3 loop"], ">=", 0.7),
            ("discovery / AWS CLI loop", ks / rates["AWS CLI loop (docs)"], ">=", 100),
        ]
        if results.keys >= 10_000:  # the target is for 10,000 keys, 1 % in the store
            checks.append(("second run speed-up", results.details["second run speed-up"], ">=",
                           10))
            checks.append(("second run speed-up, discovery alone",
                           results.details["second run speed-up, discovery alone"], ">=", 10))
    for operation, share in (("ScheduleKeyDeletion", 0.85), ("CancelKeyDeletion", 0.85)):
        detail = results.details.get(operation)
        if detail:
            checks += [
                (f"{operation} share of quota", detail["share_of_quota"], ">=", share),
                (f"{operation} requests throttled", detail["throttled_share"], "<=", 0.05),
                (f"{operation} errors surfaced", detail["errors_surfaced"], "<=", 0),
            ]
    tag = results.details.get("TagResource")
    if tag:  # what bounds scheduling: one mark per key, under TagResource's 10 req/s
        checks.append(("TagResource share of its quota", tag["share_of_quota"], ">=", 0.85))
    for total, limit in ((30000, 150.0), (100000, 200.0)):
        detail = results.details.get(f"dry run, {total} keys")
        if detail:
            checks.append((f"peak RSS MB, dry run over {total:,} keys", detail["max_rss_mb"],
                           "<", limit))
    say("\n== Targets (ratios from this run)")
    for name, value, op, bound in checks:
        met = value >= bound if op == ">=" else value <= bound if op == "<=" else value < bound
        results.targets.append({"target": name, "value": value, "op": op, "bound": bound,
                                "met": met})
        say(f"  {'met ' if met else 'MISS'}  {name}: {value:,.2f} (target {op} {bound:g})")


def chart(results: Results, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say(f"\n(no chart: matplotlib is missing; pip install -e '.[bench]' to draw {path})")
        return
    order = ["AWS CLI loop (docs)", "sequential boto3 loop", "unpaced 32-thread boto3 loop",
             "ksdelete, first run", "ksdelete, second run (cache)"]
    names = [n for n in order if n in results.rates]
    values = [results.rates[n] for n in names]
    colours = ["#8c8c8c", "#8c8c8c", "#5b7fa6", "#d95f02", "#f2a65a"][:len(names)]
    figure, axes = plt.subplots(figsize=(9, 4.2), dpi=110)
    labels = {"ksdelete, second run (cache)": "ksdelete, second run\n(describes the store's "
              "keys only)"}
    bars = axes.barh([labels.get(n, n) for n in names], values, color=colours)
    axes.set_xscale("log")
    axes.invert_yaxis()
    axes.set_xlabel("keys of the account scanned per second, end to end (log scale)")
    for bar, value in zip(bars, values, strict=True):
        axes.text(value * 1.08, bar.get_y() + bar.get_height() / 2,
                  f"{value:,.1f}" if value < 10 else f"{value:,.0f}", va="center", fontsize=9)
    axes.set_xlim(right=max(values) * 4)
    machine = results.machine
    axes.set_title(
        f"Finding a store's {results.store_keys} keys among {results.keys:,}: emulator at "
        f"{results.latency_ms:g} ms latency,\n{machine['cores']} cores, "
        f"{machine['date']} (benchmarks/perf.py)", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    say(f"\nchart: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--keys", type=int, default=10_000, help="unrelated keys")
    parser.add_argument("--store-keys", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--sequential-sample", type=int, default=1000,
                        help="keys the sequential boto3 loop describes")
    parser.add_argument("--cli-sample", type=int, default=20,
                        help="keys the AWS CLI loop describes")
    parser.add_argument("--schedule-keys", type=int, default=300)
    parser.add_argument("--memory-keys", type=int, nargs="*", default=[30_000, 100_000])
    parser.add_argument("--only", choices=["discovery", "quotas", "memory"], action="append",
                        help="run only these parts (repeatable); nothing is written")
    parser.add_argument("--quick", action="store_true",
                        help="smaller everything (about 1 minute), for trying it out")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "performance.png")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.sequential_sample, args.cli_sample = 3000, 300, 5
        args.schedule_keys, args.memory_keys = 60, [10_000]
    results = Results(keys=args.keys + args.store_keys, store_keys=args.store_keys,
                      latency_ms=args.latency_ms)
    results.machine = {
        "cores": os.cpu_count(), "python": platform.python_version(),
        "boto3": boto3.__version__, "date": datetime.now().strftime("%Y-%m-%d"),
    }
    say(f"ksdelete benchmark: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"boto3 {boto3.__version__}, {load()}")
    started = time.perf_counter()
    parts = args.only or ["discovery", "quotas", "memory"]
    if "discovery" in parts:
        discovery(args, results)
    if "quotas" in parts:
        paced(args, results)
    if "memory" in parts and args.memory_keys:
        memory(args, results)
    targets(results)
    if not args.quick and not args.only:
        args.results.write_text(json.dumps(asdict(results), indent=2) + "\n")
        chart(results, args.chart)
    else:
        say("\n(--quick or --only: results.json and the chart are left as they are)")
    say(f"\ndone in {time.perf_counter() - started:.0f} s ({load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
