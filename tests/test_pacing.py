"""Pacing under the KMS quotas: the adaptive token bucket, the adaptive DescribeKey pool, and
discovery against the emulator with AWS's quotas on (scheduling through the CLI:
tests/cli/test_quotas.py). No timing assertions: what is checked is what ksdelete decided (its
pace, its pool size) and that every key is accounted for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ksdelete.discover import PoolSizer, snapshot
from ksdelete.emulator import Emulator, EmulatorConfig, realism
from ksdelete.gateway import Gateway
from ksdelete.pacing import PACE, TokenBucket
from ksdelete.scope import ScopeRequest
from ksdelete.sessions import open_gateway


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# ---- the token bucket ------------------------------------------------------------------------


def test_the_bucket_paces_at_its_rate_after_a_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=2.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(22):
        bucket.acquire()
    assert clock.now - start == pytest.approx(2.0)  # 2 from the burst, then 10 per second


def test_throttling_halves_the_pace_once_per_second_and_success_brings_it_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(14.0, clock=clock, sleep=clock.sleep)
    bucket.throttled()
    bucket.throttled()  # the same burst of throttled calls: one cut
    assert bucket.rate == 7.0 and bucket.throttles == 2
    clock.now += 1.0
    bucket.throttled()
    assert bucket.rate == 3.5
    for _ in range(40):
        clock.now += 0.25
        bucket.succeeded()
    assert bucket.rate == 14.0  # back at the ceiling, never above it
    bucket.succeeded()
    assert bucket.rate == 14.0


def test_the_pace_never_falls_below_a_fiftieth_of_the_ceiling() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100.0, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        clock.now += 1.0
        bucket.throttled()
    assert bucket.rate == 2.0


@pytest.mark.parametrize("operation", [
    "DescribeKey", "ListKeys", "ListAliases", "ScheduleKeyDeletion", "CancelKeyDeletion",
    "EnableKey", "DescribeCustomKeyStores", "ConnectCustomKeyStore", "DisconnectCustomKeyStore",
    "DeleteCustomKeyStore"])
def test_the_pace_is_at_least_85_percent_of_the_quota_and_below_it(operation: str) -> None:
    assert 0.85 * realism.AWS_QUOTAS[operation] <= PACE[operation] < \
        realism.AWS_QUOTAS[operation]


# ---- the pool sizer ----------------------------------------------------------------------


def test_the_pool_doubles_while_throughput_rises_then_grows_by_half() -> None:
    sizer = PoolSizer(4, 64)
    sizes = [sizer.limit, *(sizer.update(rate, 1.0, 0, 0.02, None)
                            for rate in (100, 150, 220, 221))]
    assert sizes == [4, 8, 16, 32, 16]  # 32 did not pay: back to 16
    sizes = [sizer.update(230, 1.0, 0, 0.02, None) for _ in range(PoolSizer.RETRY_AFTER)]
    assert sizes[-1] == 24  # tried again later, by half this time
    assert sizer.update(300, 1.0, 0, 0.02, None) == 36
    assert sizer.update(400, 1.0, 0, 0.02, None) == 54
    assert sizer.update(600, 1.0, 0, 0.02, None) == 64  # never above the maximum


def test_growth_that_does_not_pay_is_undone_and_tried_again_later() -> None:
    sizer = PoolSizer(8, 64)
    assert sizer.update(100, 1.0, 0, 0.02, None) == 16
    assert sizer.update(200, 1.0, 0, 0.02, None) == 32
    assert sizer.update(201, 1.0, 0, 0.02, None) == 16  # no gain from 32: back to 16
    sizes = [sizer.update(200, 1.0, 0, 0.02, None) for _ in range(PoolSizer.RETRY_AFTER)]
    assert sizes[:-1] == [16] * (PoolSizer.RETRY_AFTER - 1) and sizes[-1] == 24


def test_throttling_halves_the_pool_and_growth_waits_a_window() -> None:
    sizer = PoolSizer(40, 64)
    assert sizer.update(500, 1.0, 3, 0.02, None) == 20
    assert sizer.update(400, 1.0, 0, 0.02, None) == 20  # one quiet window first
    assert sizer.update(410, 1.0, 0, 0.02, None) == 30  # then growth may start again
    assert sizer.update(10, 1.0, 1, 0.02, None) == 15


def test_the_pool_is_no_bigger_than_the_pace_can_use_at_the_observed_latency() -> None:
    sizer = PoolSizer(8, 64)
    for rate in (100, 200, 300, 400):
        sizer.update(rate, 1.0, 0, 0.010, 500.0)
    assert sizer.limit == 10  # 500 req/s x 10 ms x 2


# ---- against the emulator with AWS's quotas ------------------------------------------------


@pytest.fixture
def throttling_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An in-process emulator with --quotas aws whose DescribeKey quota is scaled down from
    2,000 to 10 req/s (the emulator reads its quota table from this process): discovery's
    first 32 concurrent calls exceed it however slow or busy the machine is."""
    monkeypatch.setitem(realism.AWS_QUOTAS, "DescribeKey", 10.0)
    emulator = Emulator(EmulatorConfig(quotas="aws", latency_ms=2.0), in_process=True)
    with emulator:
        emulator.reset()
        emulator.configure(quotas="aws", latency_ms=2.0)
        try:
            yield emulator
        finally:
            emulator.reset()  # the in-process backend is shared with later tests


def test_discovery_backs_off_on_throttling_and_still_accounts_for_every_key(
        throttling_emulator: Emulator) -> None:
    emulator = throttling_emulator
    seeded = emulator.seed({"region": "us-east-1", "plain_keys": 50, "stores": [
        {"name": "target", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
         "keys": 10}]})
    gateway = open_gateway(ScopeRequest(region="us-east-1", endpoint_url=emulator.endpoint_url))
    store = gateway.describe_store(name="target")
    assert store is not None
    sizer = PoolSizer(32, 64, window=0.2)
    snap = snapshot(gateway, store, sizer=sizer)

    assert {k.id for k in snap.keys} == set(seeded["stores"][0]["key_ids"])
    assert snap.scanned == 60 and snap.elsewhere == 50
    assert snap.undescribable == () and snap.gone == ()
    throttled = [c for c in emulator.calls()
                 if c["operation"] == "DescribeKey" and c["error"] == "ThrottlingException"]
    assert throttled, "the emulator never throttled: the test did not exceed the quota"
    assert gateway.pacing.throttles("DescribeKey") == len(throttled)  # each one retried
    # The pace came down from its ceiling, and every window that saw throttling halved the pool.
    bucket = gateway.pacing.buckets["DescribeKey"]
    assert bucket.rate < bucket.ceiling or bucket.throttles > 0
    windows = sizer.history
    cuts = [(windows[i][0], windows[i + 1][0]) for i in range(len(windows) - 1)
            if windows[i][2]]
    assert cuts and all(after == max(1, before // 2) for before, after in cuts)


# ---- the test-only switch that drops pacing against a local emulator -------------------------


def _gateway(endpoint: str, sleeps: list[float]) -> Gateway:
    from ksdelete.retry import RetryPolicy

    return open_gateway(ScopeRequest(region="us-east-1", endpoint_url=endpoint),
                        policy=RetryPolicy(sleep=sleeps.append))


def test_the_unpaced_switch_drops_pacing_and_backoff_only_against_this_machine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """KSDELETE_TEST_UNPACED=1 (docs/development.md) lets the CLI tests run against the
    emulator without its quotas at full speed; against any other endpoint it changes nothing,
    and without it the emulator is paced like AWS."""
    from ksdelete.errors import AwsError
    from ksdelete.gateway import UNPACED_ENV

    unreachable = "http://127.0.0.1:9"  # discard port: nothing listens, refused at once
    monkeypatch.delenv(UNPACED_ENV, raising=False)
    paced: list[float] = []
    gateway = _gateway(unreachable, paced)
    assert gateway.pacing.rate("DescribeKey") == PACE["DescribeKey"]
    with pytest.raises(AwsError):
        list(gateway.list_keys())
    assert len(paced) == 3  # 4 connection attempts, a backoff before each retry

    monkeypatch.setenv(UNPACED_ENV, "1")
    unpaced: list[float] = []
    gateway = _gateway(unreachable, unpaced)
    assert gateway.pacing.rate("DescribeKey") is None
    retried: list[int] = []
    gateway.on_retry = lambda call, attempt, delay, reason: retried.append(attempt)
    with pytest.raises(AwsError):
        list(gateway.list_keys())
    assert retried == [1, 2, 3] and unpaced == []  # as many attempts, none waited for
    assert gateway.policy.sleep == unpaced.append  # polls (waits on AWS's state) still wait

    aws = _gateway("https://kms.us-east-1.amazonaws.com", [])
    assert aws.pacing.rate("DescribeKey") == PACE["DescribeKey"]
