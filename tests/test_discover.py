"""discover.snapshot accounts for every key it lists, whatever order DescribeKey answers come in.

This is concurrency logic, not AWS behaviour, so the gateway here is a plain fake: ListKeys
pages and DescribeKey answers (KeyMetadata, or AwsError with an AWS code) after random delays,
so the worker threads finish in a random order while listing is still going on. What AWS
answers is covered over HTTP against the emulator (tests/cli/test_discovery_scale.py).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksdelete import discover
from ksdelete.discover import MembershipCache, snapshot
from ksdelete.errors import (
    ERROR_TYPES,
    AwsError,
    CredentialsError,
    ExitStatus,
    IncompleteDiscoveryError,
    IncompleteListingError,
)
from ksdelete.models import ConnectionState, KeyStore, Snapshot, StoreType

STORE = KeyStore("cks-1234567890abcdefg", "target", StoreType.CLOUDHSM,
                 ConnectionState.CONNECTED)
OTHER_STORE = "cks-0000000000other"
ARN = "arn:aws:kms:us-east-1:123456789012:key/"

# What DescribeKey says about a key of each kind.
MEMBER, OTHER, PLAIN, GONE, DENIED, FAULT = "member", "other", "plain", "gone", "denied", "5xx"
KINDS = (MEMBER, OTHER, PLAIN, GONE, DENIED, FAULT)
ERRORS = {GONE: "NotFoundException", DENIED: "AccessDeniedException",
          FAULT: "KMSInternalException"}
ELSEWHERE = (OTHER, PLAIN)


@pytest.fixture(autouse=True)
def _switch_threads_often() -> Iterator[None]:
    """Let threads interleave every 0.1 ms instead of every 5 ms (the default GIL switch
    interval), so a race between a worker finishing and the collecting thread shows up in
    every run rather than now and then."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    yield
    sys.setswitchinterval(before)


def key_id(i: int) -> str:
    return f"{i:08x}-1111-2222-3333-444455556666"


class FakeGateway:
    """ListKeys pages, DescribeKey after a random delay, ListAliases; counts the calls."""

    def __init__(self, kinds: list[str], *, page_size: int = 100, max_delay: float = 0.003,
                 page_delay: float = 0.001, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.keys = [(key_id(i), kind) for i, kind in enumerate(kinds)]
        self.kind = dict(self.keys)
        self.delay = {k: rng.uniform(0.0, max_delay) for k, _ in self.keys}
        self.page_size = page_size
        self.page_delay = page_delay
        self.lock = threading.Lock()
        self.described: Counter[str] = Counter()
        self.alias_calls = 0

    def pages(self) -> list[list[tuple[str, str]]]:
        entries = [(k, ARN + k) for k, _ in self.keys]
        return [entries[i:i + self.page_size] for i in range(0, len(entries), self.page_size)]

    def list_keys(self) -> Iterator[list[tuple[str, str]]]:
        for page in self.pages():
            time.sleep(self.page_delay)
            yield page

    def describe_key(self, arn: str) -> dict[str, Any]:
        key = arn.rsplit("/", 1)[1]
        with self.lock:
            self.described[key] += 1
        time.sleep(self.delay[key])
        kind = self.kind[key]
        if kind in ERRORS:
            error = ERROR_TYPES.get(ERRORS[kind], AwsError)  # typed, as the gateway raises them
            raise error(f"{ERRORS[kind]} for {key}", operation="DescribeKey",
                        aws_code=ERRORS[kind], where="DescribeKey")
        metadata: dict[str, Any] = {"KeyId": key, "Arn": arn, "KeyState": "Enabled"}
        if kind == MEMBER:
            metadata["CustomKeyStoreId"] = STORE.id
        elif kind == OTHER:
            metadata["CustomKeyStoreId"] = OTHER_STORE
        return metadata

    def list_aliases(self) -> dict[str, list[str]]:
        with self.lock:
            self.alias_calls += 1
        return {k: [f"alias/{k[:8]}"] for k, kind in self.keys if kind == MEMBER}

    def ids(self, *kinds: str) -> set[str]:
        return {k for k, kind in self.keys if kind in kinds}


def assert_accounted(snap: Snapshot, fake: FakeGateway) -> None:
    """Members exactly right first (where the old race showed), then every other category."""
    assert {k.id for k in snap.keys} == fake.ids(MEMBER)
    assert {(u.id, u.arn, u.error_code) for u in snap.undescribable} == {
        (k, ARN + k, ERRORS[fake.kind[k]]) for k in fake.ids(DENIED, FAULT)}
    assert all(u.message == f"{u.error_code} for {u.id}" for u in snap.undescribable)
    assert set(snap.gone) == fake.ids(GONE) and len(snap.gone) == len(fake.ids(GONE))
    assert snap.elsewhere == len(fake.ids(*ELSEWHERE))
    assert snap.scanned == len(fake.keys)
    assert len(snap.keys) + snap.elsewhere + len(snap.gone) + len(snap.undescribable) \
        == snap.scanned
    assert all(k.aliases == (f"alias/{k.id[:8]}",) and k.arn == ARN + k.id for k in snap.keys)
    assert [k.id for k in snap.keys] == sorted(k.id for k in snap.keys)


def mix(n: int, seed: int) -> list[str]:
    """n keys: a third in the store, the rest mostly elsewhere, some gone, denied or failing."""
    rng = random.Random(seed)
    return rng.choices(KINDS, weights=(33, 30, 25, 4, 4, 4), k=n)


@pytest.mark.parametrize("run", range(20))
def test_every_listed_key_is_accounted_for_whatever_the_completion_order(run: int) -> None:
    fake = FakeGateway(mix(3000, run), page_size=100, max_delay=0.003, seed=run)
    progress: list[tuple[int, int, bool]] = []
    snap = snapshot(fake, STORE, workers=16,
                    on_progress=lambda done, total, final: progress.append((done, total, final)))
    assert_accounted(snap, fake)
    assert all(n == 1 for n in fake.described.values()) and len(fake.described) == 3000
    assert fake.alias_calls == 1
    assert progress[-1] == (3000, 3000, True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(KINDS), max_size=400),
    page_size=st.integers(1, 120),
    workers=st.integers(1, 12),
    max_delay=st.sampled_from([0.0, 0.0005, 0.002]),
    backlog=st.none() | st.integers(1, 60),
    cached=st.sets(st.integers(0, 399), max_size=100),
    seed=st.integers(0, 2**16),
)
def test_random_mixes_are_accounted_for(kinds: list[str], page_size: int, workers: int,
                                        max_delay: float, backlog: int | None,
                                        cached: set[int], seed: int) -> None:
    fake = FakeGateway(kinds, page_size=page_size, max_delay=max_delay, page_delay=0.0,
                       seed=seed)
    cache = MembershipCache()
    for i in cached:
        if i < len(kinds) and kinds[i] in (MEMBER, OTHER, PLAIN):
            owner = {MEMBER: STORE.id, OTHER: OTHER_STORE, PLAIN: ""}[kinds[i]]
            cache.put(key_id(i), owner)
    known_elsewhere = {key_id(i) for i in cached if i < len(kinds) and kinds[i] in ELSEWHERE}

    snap = snapshot(fake, STORE, workers=workers, cache=cache, backlog=backlog)

    assert_accounted(snap, fake)
    # Keys the cache places elsewhere are not asked about again; every other key once.
    assert set(fake.described) == {k for k, _ in fake.keys} - known_elsewhere
    assert all(n == 1 for n in fake.described.values())
    # Every key described is now in the cache, with its store ("" for none).
    assert all(cache.get(k) == STORE.id for k in fake.ids(MEMBER))
    assert all(cache.get(k) == "" for k in fake.ids(PLAIN))
    assert fake.alias_calls == (1 if MEMBER in kinds else 0)


def test_description_overlaps_listing_and_the_backlog_is_bounded() -> None:
    fake = FakeGateway([OTHER] * 1000, page_size=100, max_delay=0.001, page_delay=0.0)
    waiting: list[int] = []  # listed but not yet being described, each time a page is asked for
    started_before_last_page = 0

    def list_keys() -> Iterator[list[tuple[str, str]]]:
        nonlocal started_before_last_page
        listed = 0
        for page in fake.pages():
            with fake.lock:
                waiting.append(listed - sum(fake.described.values()))
                started_before_last_page = sum(fake.described.values())
            listed += len(page)
            yield page

    fake.list_keys = list_keys  # type: ignore[method-assign]
    snap = snapshot(fake, STORE, workers=4, backlog=150)
    assert snap.elsewhere == 1000 and not snap.keys
    assert started_before_last_page > 0  # DescribeKey ran while pages were still coming
    assert max(waiting) <= 150  # listing pauses rather than queue every key of the account


def test_a_key_listed_twice_fails_closed() -> None:
    fake = FakeGateway([MEMBER, OTHER, MEMBER, PLAIN], page_size=2)
    pages = fake.pages()
    fake.list_keys = lambda: iter([*pages, [pages[0][0]]])  # type: ignore[method-assign]
    with pytest.raises(IncompleteDiscoveryError, match="twice") as raised:
        snapshot(fake, STORE)
    assert raised.value.code == "incomplete-discovery"
    assert raised.value.exit_status is ExitStatus.ERROR
    assert key_id(0) in str(raised.value) and "page 3" in str(raised.value)


def test_a_lost_description_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate the old bug: one DescribeKey result arrives but is never recorded."""
    fake = FakeGateway(mix(500, 7), page_size=50)
    original = discover._Tally.described
    lost: list[str] = []

    def lossy(self: discover._Tally, outcome: Any, cache: MembershipCache | None) -> None:
        if not lost and outcome[0] in fake.ids(OTHER, PLAIN):
            lost.append(outcome[0])
            return
        original(self, outcome, cache)

    monkeypatch.setattr(discover._Tally, "described", lossy)
    with pytest.raises(IncompleteDiscoveryError) as raised:
        snapshot(fake, STORE, workers=8)
    message = str(raised.value)
    assert lost and lost[0] in message
    assert "1 listed key(s) never accounted for" in message
    assert "500 key(s) listed" in message and "= 499" in message


def test_a_description_of_another_key_fails_closed() -> None:
    fake = FakeGateway([MEMBER, MEMBER, OTHER])
    describe = fake.describe_key

    def confused(arn: str) -> dict[str, Any]:
        metadata = describe(arn)
        if metadata["KeyId"] == key_id(1):
            metadata["KeyId"] = key_id(0)
        return metadata

    fake.describe_key = confused  # type: ignore[method-assign]
    with pytest.raises(IncompleteDiscoveryError, match="answered for key"):
        snapshot(fake, STORE)


def test_an_incomplete_listing_is_not_a_snapshot() -> None:
    fake = FakeGateway([MEMBER] * 30, page_size=10)

    def broken() -> Iterator[list[tuple[str, str]]]:
        yield from fake.pages()[:2]
        raise IncompleteListingError("ListKeys page 2 says ...", operation="ListKeys", pages=2)

    fake.list_keys = broken  # type: ignore[method-assign]
    with pytest.raises(IncompleteListingError):
        snapshot(fake, STORE)


def test_an_unexpected_error_stops_discovery_without_describing_everything() -> None:
    fake = FakeGateway([OTHER] * 3000, page_size=100, max_delay=0.0)

    def no_credentials(arn: str) -> dict[str, Any]:
        with fake.lock:
            fake.described[arn] += 1
        raise CredentialsError("no AWS credentials found")

    fake.describe_key = no_credentials  # type: ignore[method-assign]
    with pytest.raises(CredentialsError):
        snapshot(fake, STORE, workers=4)
    assert sum(fake.described.values()) < 3000  # the rest was cancelled, not waited for


def test_an_empty_account() -> None:
    fake = FakeGateway([])
    snap = snapshot(fake, STORE)
    assert (snap.keys, snap.undescribable, snap.gone, snap.elsewhere, snap.scanned) == \
        ((), (), (), 0, 0)
    assert fake.alias_calls == 0
