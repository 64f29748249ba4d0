"""A fleet's pacing (issue 21): the real CLI (`ksdelete fleet plan|apply FILE`), real boto3,
over HTTP against the emulator with AWS's request quotas on (EmulatorConfig(quotas="aws")),
two accounts reached by profiles, two stores in each account's one Region. Read from the
emulator's call log (each call's operation, account, Region, error and arrival time):

- no call is answered ThrottlingException;
- each (account, Region) reads ONE ListKeys chain for both its stores in a read-only run, and
  in a changing run one for the survey plus the fresh one each store's point of no return
  takes (executor: never act on a shared survey);
- per operation and (account, Region), the most requests in any one second stay within AWS's
  quota for it (the emulator's table, ksdelete.emulator.realism.AWS_QUOTAS);
- the two accounts run in parallel, each with its own pacer: together, in one second, more
  TagResource requests than one account's quota allows.

benchmarks/fleet.py measures the same on a larger fleet. Pacing is what is measured, so the
runs are paced (tests/cli/helpers.unpaced: KSDELETE_TEST_UNPACED is 0 with quotas on)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ksdelete.emulator import Emulator
from ksdelete.emulator.calllog import arrival, counted, peak, quota
from ksdelete.pacing import PACE, TokenBucket

from .accounts import use_profiles
from .test_fleet_cli import fleet, fleet_file

ACCOUNTS = {"111111111111": "dev", "222222222222": "stage"}
REGION = "us-east-1"
STORES, KEYS, PLAIN = 2, 40, 20
PAGE = 1000  # ListKeys entries per page (gateway.list_keys)
# The pacer grants at most the quota in any one second (test_no_second_of_a_pacer_passes_the_
# quota, exact), but the emulator stamps a request when it arrives: a thread starved between
# taking its token and sending (two accounts' threads, 2 cores shared with other work) can
# reach the server just before the next request, one second there then holding one more
# than was granted in it. Two pacers for one scope, or none, show far more.
JITTER = 1


def peaks(calls: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """(account, Region, operation) -> the most requests in any one second."""
    times: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for c in counted(calls):
        times[(c["account"], c["region"], c["operation"])].append(arrival(c))
    return {k: peak(v) for k, v in times.items()}


@pytest.fixture
def quotas(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS's quotas on; each account reached by a profile whose key the emulator maps to it."""
    use_profiles(emulator, tmp_path, monkeypatch, ACCOUNTS)
    emulator.configure(quotas="aws")


def seed(emulator: Emulator) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {(a, REGION): emulator.seed({
        "account": a, "region": REGION, "plain_keys": PLAIN,
        "stores": [{"name": f"s{n}", "type": "EXTERNAL_KEY_STORE", "keys": KEYS}
                   for n in range(STORES)]})["stores"] for a in ACCOUNTS}


def check_quotas(calls: list[dict[str, Any]]) -> None:
    throttled = [c for c in calls if c.get("error") == "ThrottlingException"]
    assert throttled == [], f"{len(throttled)} call(s) throttled: {throttled[:3]}"
    over = {k: f"{n} in 1 s, quota {quota(k[2]):g}" for k, n in peaks(calls).items()
            if n > quota(k[2]) + JITTER}
    assert over == {}, (over, [(c["operation"], c["account"], c["arrived"], c["wall"])
                               for c in calls if (c["account"], c["region"], c["operation"])
                               in over])


def listings(calls: list[dict[str, Any]], account: str) -> int:
    return sum(1 for c in calls if c["operation"] == "ListKeys" and c["account"] == account)


def test_a_fleet_stays_under_every_quota_with_one_listing_per_scope(
        emulator: Emulator, quotas: None, tmp_path: Path) -> None:
    path = fleet_file(tmp_path / "fleet.yml", seed(emulator),
                      rollout="rollout: {max_accounts: 2, canary: 0}")
    pages = math.ceil((STORES * KEYS + PLAIN) / PAGE)  # one chain over the account's keys

    code, doc, err = fleet(emulator, "fleet", "plan", str(path))
    assert code == 0, err
    calls = emulator.calls()
    check_quotas(calls)
    for account in ACCOUNTS:  # the surveys of both stores share one listing
        assert listings(calls, account) == pages

    seen = len(emulator.calls())
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3, err
    assert doc["summary"]["keys_scheduled"] == len(ACCOUNTS) * STORES * KEYS
    calls = emulator.calls()[seen:]
    check_quotas(calls)
    for account in ACCOUNTS:  # the survey's, then each store's before it schedules
        assert listings(calls, account) == pages * (1 + STORES)
    # Each account has a pacer of its own, and both ran at once: together, in one second,
    # more than one account's quota.
    tags = [arrival(c) for c in counted(calls) if c["operation"] == "TagResource"]
    assert peak(tags) > quota("TagResource"), peak(tags)

    # The next cron run (the keys wait out their window): one listing per scope, and the
    # watch's CloudTrail reads (2 per second per account and Region) within their quota.
    seen = len(emulator.calls())
    code, doc, err = fleet(emulator, "fleet", "apply", str(path), "--yes")
    assert code == 3 and doc["summary"]["keys_scheduled"] == 0, err
    calls = emulator.calls()[seen:]
    check_quotas(calls)
    for account in ACCOUNTS:
        assert listings(calls, account) == pages
        assert any(c["operation"] == "LookupEvents" and c["account"] == account
                   for c in calls)


class Clock:
    """A fake clock that the bucket's sleeps move."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_no_second_of_a_pacer_passes_the_quota() -> None:
    """Pure: a bucket that starts full and is then drawn without pause grants, in any one
    second, no more than AWS's quota for its operation (the pace is 93 % of it, and the
    burst must fit in the rest)."""
    for operation, rate in PACE.items():
        if operation == "GetCallerIdentity":
            continue  # STS: no KMS quota
        clock = Clock()
        bucket = TokenBucket(rate, clock=clock, sleep=clock.sleep)
        grants = []
        for _ in range(int(rate * 3) + 3):
            bucket.acquire()
            grants.append(clock.now)
        assert peak(grants) <= quota(operation), (operation, peak(grants), quota(operation))


def test_a_late_wake_up_does_not_bunch_the_next_grant_with_it() -> None:
    """Pure: a caller that sleeps past its turn (a starved thread) takes its token when it
    wakes, and the next caller still waits a full interval: the turn it slept through is not
    credited again (else, after a stall, calls that were waiting go out together)."""

    class Late(Clock):
        def sleep(self, seconds: float) -> None:
            self.now += seconds + 0.5  # woken half a second late

    clock = Late()
    bucket = TokenBucket(10.0, burst=1.0, clock=clock, sleep=clock.sleep)
    grants = []
    for _ in range(3):
        bucket.acquire()
        grants.append(clock.now)
    assert grants[2] - grants[1] >= 0.1 - 1e-9, grants
