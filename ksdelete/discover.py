"""Reads only: find the store, then every key in it (ListKeys + DescribeKey; no server filter).

Discovery is ksdelete's one bulk job: KMS cannot list a store's keys, so every key in the account
and Region is described. ListKeys pages (up to 1,000 keys) stream into a pool of DescribeKey
workers whose size adapts to what it observes (PoolSizer: grow while throughput rises and
nothing is throttled, halve on ThrottlingException). What a scan learns is kept as IDs only: a
key outside the store leaves its ID in the MembershipCache and nothing else.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Set
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from ksdelete.errors import AccessDenied, AwsError, IncompleteDiscoveryError, KeyNotFound
from ksdelete.models import Key, KeyStore, Snapshot, UndescribableKey
from ksdelete.shapes import key_from_metadata

log = logging.getLogger("ksdelete.discover")

# on_progress(keys accounted for, keys listed so far, listing_done)
ProgressObserver = Callable[[int, int, bool], None]

# DescribeKey calls in flight at most (the gateway keeps as many connections open).
MAX_WORKERS = 64
# Seconds between progress reports (and the last one, always).
PROGRESS_EVERY = 0.1


class MembershipCache:
    """key ID -> the custom key store it was created in ("" for none). Thread safe.

    KMS fixes a key's CustomKeyStoreId at CreateKey and never changes it, and key IDs are
    never reused, so an entry stays true for as long as the key exists. Discovery uses an
    entry only to skip a key proven to belong elsewhere; a key is a member only if this
    scan's DescribeKey says so.

    `trusted=False` (or `distrust()`) keeps learning but skips nothing: every key is described.
    `on_scan` is called after each scan that changed what is known (ksdelete.cache saves it).
    """

    def __init__(self, entries: dict[str, str] | None = None, *, trusted: bool = True,
                 on_scan: Callable[[MembershipCache], None] | None = None) -> None:
        self._stores: dict[str, str] = dict(entries or {})
        self._lock = threading.Lock()
        self.trusted = trusted
        self.changed = False  # learnt or forgot something since the last on_scan
        self.on_scan = on_scan

    def get(self, key_id: str) -> str | None:
        """The key's store, or None when unknown (or when the cache is not trusted)."""
        if not self.trusted:
            return None
        with self._lock:
            return self._stores.get(key_id)

    def put(self, key_id: str, store_id: str) -> None:
        with self._lock:
            if self._stores.get(key_id) != store_id:
                self._stores[key_id] = store_id
                self.changed = True

    def distrust(self) -> None:
        """Describe every key from now on in this process (what is learnt is still kept)."""
        self.trusted = False

    @contextmanager
    def set_aside(self) -> Iterator[None]:
        """Describe every key for the scans inside this block (the one before a disconnect:
        a wrong entry must not hide a live key that the disconnect would make Unavailable);
        what they learn is kept."""
        trusted, self.trusted = self.trusted, False
        try:
            yield
        finally:
            self.trusted = trusted

    def items(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._stores.items())

    def scanned(self, listed: Set[str] | None) -> None:
        """A scan ended. After a complete one (`listed`: every key ID ListKeys returned),
        forget keys that no longer exist; then hand what changed to `on_scan`."""
        with self._lock:
            if listed is not None:
                gone = [k for k in self._stores if k not in listed]
                for key_id in gone:
                    del self._stores[key_id]
                self.changed = self.changed or bool(gone)
            changed, self.changed = self.changed, False
        if changed and self.on_scan is not None:
            self.on_scan(self)

    def __len__(self) -> int:
        with self._lock:
            return len(self._stores)


class KeyReader(Protocol):
    """What discovery needs from the gateway (Gateway has it; unit tests pass a fake)."""

    def list_keys(self) -> Iterable[list[tuple[str, str]]]: ...

    def describe_key(self, key_id: str) -> dict[str, Any]: ...

    def list_aliases(self) -> dict[str, list[str]]: ...


@runtime_checkable
class Pacing(Protocol):
    """What a gateway may tell discovery about its pacing, as `gateway.pacing` (Gateway
    does; unit tests' fakes need not)."""

    max_connections: int

    def rate(self, operation: str) -> float | None: ...

    def throttles(self, operation: str) -> int: ...


def _pacing(gateway: KeyReader) -> Pacing | None:
    pacing = getattr(gateway, "pacing", None)
    return pacing if isinstance(pacing, Pacing) else None


# One DescribeKey answer: (listed key ID, listed ARN, KeyMetadata or the error).
_Outcome = tuple[str, str, "dict[str, Any] | AwsError"]


class PoolSizer:
    """How many DescribeKey calls to keep in flight: a hill climb on measured throughput.

    Every `window` seconds it compares the throughput of the window with the best seen:
    - a ThrottlingException in the window halves the pool (and growth waits a window);
    - throughput up by more than 5 % grows the pool (doubling until growth first fails to
      pay, by half after that), up to `maximum` and to what the pace can use at the observed
      latency (Little's law: pace x latency, doubled);
    - a pool grown without gain goes back to the best size, and tries again a few windows
      later (the machine, the network or other callers may have changed).
    """

    GAIN = 1.05  # throughput must rise by this factor for growth to count
    RETRY_AFTER = 6  # windows spent at the best size before growing is tried again

    def __init__(self, initial: int, maximum: int, *, window: float = 0.5) -> None:
        self.maximum = max(1, maximum)
        self.limit = min(max(1, initial), self.maximum)
        self.window = window
        self.best_rate = 0.0
        self.best_limit = self.limit
        self._idle_windows = 0
        self._cool = False
        self._slow_start = True  # doubling, until growing first fails to pay
        self.history: list[tuple[int, float, int]] = []  # (limit, keys/s, throttles) per window

    def update(self, completed: int, elapsed: float, throttles: int, latency: float,
               pace: float | None) -> int:
        """One window's observations (calls completed, seconds, new throttles, mean latency
        of a call, the pace allowed now); returns the new pool size."""
        rate = completed / elapsed if elapsed > 0 else 0.0
        self.history.append((self.limit, rate, throttles))
        cap = self.maximum
        if pace and latency > 0:
            cap = min(cap, max(1, math.ceil(pace * latency * 2)))
        if throttles:
            self.limit = max(1, self.limit // 2)
            self.best_rate, self.best_limit = 0.0, self.limit
            self._cool, self._slow_start = True, False
        elif self._cool:
            self._cool = False
        elif rate > self.best_rate * self.GAIN:
            self.best_rate, self.best_limit = rate, self.limit
            factor = 2.0 if self._slow_start else 1.5
            self.limit = max(self.limit + 1, math.ceil(self.limit * factor))
            self._idle_windows = 0
        elif self.limit > self.best_limit:
            self.limit = self.best_limit  # growing did not pay
            self._idle_windows, self._slow_start = 0, False
        else:
            self._idle_windows += 1
            if self._idle_windows >= self.RETRY_AFTER:
                self.best_rate = rate  # measured again at the best size: now the bar
                self.limit = max(self.limit + 1, math.ceil(self.limit * 1.5))
                self._idle_windows = 0
        self.limit = max(1, min(self.limit, cap))
        return self.limit


class _Workers:
    """DescribeKey worker threads: as many as `limit` says (threads above it retire after
    their current call), results in `results` as (outcome or exception, seconds taken)."""

    def __init__(self, call: Callable[[str, str], _Outcome], limit: int) -> None:
        self._call = call
        self._work: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[tuple[_Outcome | BaseException, float]] = \
            queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._spawned = 0
        self._alive = 0
        self._retire = 0  # threads asked to stop after their current call
        self._stopped = False
        self.resize(limit)

    def submit(self, key_id: str, arn: str) -> None:
        self._work.put((key_id, arn))

    def resize(self, limit: int) -> None:
        with self._lock:
            if self._stopped:
                return
            running = self._alive - self._retire
            if limit < running:
                self._retire += running - limit
                return
            take_back = min(self._retire, limit - running)
            self._retire -= take_back
            self._threads = [t for t in self._threads if t.is_alive()]  # retired ones
            for _ in range(limit - running - take_back):
                self._spawned += 1
                thread = threading.Thread(target=self._run, daemon=True,
                                          name=f"describe-{self._spawned}")
                self._alive += 1
                self._threads.append(thread)
                thread.start()

    def _run(self) -> None:
        clock, call, work, results = time.perf_counter, self._call, self._work, self.results
        while True:
            item = work.get()
            if item is None or self._stopped:
                return
            start = clock()
            try:
                outcome: _Outcome | BaseException = call(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the scanning thread
                outcome = exc
            results.put((outcome, clock() - start))
            if self._retire:
                with self._lock:
                    if self._retire:
                        self._retire -= 1
                        self._alive -= 1
                        return

    def close(self) -> None:
        """Stop: calls under way finish, queued work is dropped."""
        with self._lock:
            self._stopped = True
            alive = self._alive
        for _ in range(alive):
            self._work.put(None)
        for thread in self._threads:
            thread.join()


class _Tally:
    """Where each listed key ended up; proves every key is accounted for exactly once.

    Holds the IDs of every key listed (to catch a key listed twice), the IDs still being
    described, and the members in full; keys elsewhere are only counted.
    """

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        self.listed: set[str] = set()
        self.outstanding: set[str] = set()  # listed, not yet accounted for
        self.pages = 0
        self.members: dict[str, Key] = {}
        self.elsewhere = 0
        self.gone: list[str] = []
        self.undescribable: list[UndescribableKey] = []

    @property
    def accounted(self) -> int:
        return len(self.members) + self.elsewhere + len(self.gone) + len(self.undescribable)

    def add_listed(self, key_id: str) -> None:
        if key_id in self.listed:
            raise IncompleteDiscoveryError(
                f"ListKeys returned key {key_id} twice (again on page {self.pages}), so its "
                "pages cannot be trusted to hold every key",
                where="ListKeys", hint="Nothing was changed; run again",
            )
        self.listed.add(key_id)
        self.outstanding.add(key_id)

    def _settle(self, key_id: str) -> None:
        if key_id not in self.outstanding:
            raise IncompleteDiscoveryError(
                f"key {key_id} was accounted for twice, or without being listed",
                where="discovery", hint="Nothing was changed; this is a bug in ksdelete",
            )
        self.outstanding.remove(key_id)

    def elsewhere_known(self, key_id: str) -> None:
        self._settle(key_id)
        self.elsewhere += 1

    def described(self, outcome: _Outcome, cache: MembershipCache | None) -> None:
        key_id, arn, result = outcome
        if isinstance(result, AwsError):
            self._settle(key_id)
            if isinstance(result, KeyNotFound):  # deleted between ListKeys and DescribeKey
                self.gone.append(key_id)
            else:
                self.undescribable.append(
                    UndescribableKey(key_id, arn, result.aws_code, result.what,
                                     access_denied=isinstance(result, AccessDenied))
                )
            return
        if result.get("KeyId") != key_id:
            raise IncompleteDiscoveryError(
                f"DescribeKey of listed key {key_id} answered for key {result.get('KeyId')!r}",
                where="DescribeKey", hint="Nothing was changed; run again",
            )
        self._settle(key_id)
        owner = str(result.get("CustomKeyStoreId") or "")
        if cache is not None:
            cache.put(key_id, owner)
        if owner == self.store_id:
            self.members[key_id] = key_from_metadata(result)
        else:
            self.elsewhere += 1

    def check(self) -> None:
        """Raise IncompleteDiscoveryError unless every listed key is accounted for once."""
        problems = []
        if self.outstanding:
            sample = ", ".join(sorted(self.outstanding)[:5])
            problems.append(f"{len(self.outstanding)} listed key(s) never accounted for "
                            f"({sample})")
        if self.accounted != len(self.listed):
            problems.append(
                f"{len(self.listed)} key(s) listed, but {len(self.members)} in the store + "
                f"{self.elsewhere} elsewhere + {len(self.gone)} gone + "
                f"{len(self.undescribable)} undescribable = {self.accounted}"
            )
        if problems:
            raise IncompleteDiscoveryError(
                "discovery did not account for every key: " + "; ".join(problems),
                where=f"store {self.store_id}",
                hint="Nothing was changed; run again (--debug logs every call)",
            )


def snapshot(
    gateway: KeyReader,
    store: KeyStore,
    *,
    matched_by: str = "id",
    workers: int = 8,
    on_progress: ProgressObserver | None = None,
    cache: MembershipCache | None = None,
    backlog: int | None = None,
    max_workers: int = MAX_WORKERS,
    sizer: PoolSizer | None = None,
) -> Snapshot:
    """Every key of `store`, with aliases; keys that cannot be described are reported.

    Every key ListKeys returns becomes exactly one of: a member (in `keys`), elsewhere
    (counted), gone (NotFoundException) or undescribable (any other error, with its code);
    if they do not add up, IncompleteDiscoveryError is raised instead of a snapshot.

    DescribeKey starts on `workers` threads while ListKeys pages are still being read; the
    pool then sizes itself (PoolSizer) between 1 and `max_workers` (and the gateway's
    connection pool). At most `backlog` keys (default: a few pages' worth) wait to be
    described before listing pauses. A key the cache places in another store is counted
    elsewhere without being described.
    """
    pacing = _pacing(gateway)
    if pacing is not None:
        max_workers = min(max_workers, pacing.max_connections)
    sizer = sizer or PoolSizer(workers, max_workers)
    scan = _Scan(gateway, store.id, sizer, _Window(pacing, time.monotonic()), on_progress,
                 cache, backlog if backlog is not None else max(2000, sizer.maximum * 32))
    tally = scan.run()
    members = sorted(tally.members.values(), key=lambda k: k.id)
    if members:
        aliases = gateway.list_aliases()
        members = [replace(k, aliases=tuple(sorted(aliases.get(k.id, ())))) for k in members]
    return Snapshot(
        store,
        tuple(members),
        tuple(sorted(tally.undescribable, key=lambda k: k.id)),
        scanned=len(tally.listed),
        matched_by=matched_by,
        elsewhere=tally.elsewhere,
        gone=tuple(sorted(tally.gone)),
    )


class _Scan:
    """One membership scan: ListKeys pages feed a pool of DescribeKey workers, at most
    `limit` keys waiting; each finished description is accounted for in the tally."""

    def __init__(self, gateway: KeyReader, store_id: str, sizer: PoolSizer, window: _Window,
                 on_progress: ProgressObserver | None, cache: MembershipCache | None,
                 limit: int) -> None:
        self.gateway, self.store_id, self.sizer, self.window = gateway, store_id, sizer, window
        self.on_progress, self.cache, self.limit = on_progress, cache, limit
        self.tally = _Tally(store_id)
        self.in_flight = 0
        self.clock = time.monotonic
        self.last_progress = self.clock()
        self.pool = _Workers(self.describe, sizer.limit)

    def describe(self, key_id: str, arn: str) -> _Outcome:
        try:
            return key_id, arn, self.gateway.describe_key(arn)
        except AwsError as exc:
            return key_id, arn, exc

    def progress(self, listing_done: bool, *, final: bool = False) -> None:
        if self.on_progress is None:
            return
        now = self.clock()
        if final or now - self.last_progress >= PROGRESS_EVERY:
            self.last_progress = now
            self.on_progress(self.tally.accounted, len(self.tally.listed), listing_done)

    def collect(self, *, down_to: int, block: bool, listing_done: bool) -> None:
        """Account for finished descriptions until at most `down_to` are in flight (waiting
        for them if `block`, else taking only those already finished)."""
        while self.in_flight > down_to:
            try:
                outcome, seconds = self.pool.results.get(block=block)
            except queue.Empty:
                return
            self.in_flight -= 1
            if isinstance(outcome, BaseException):
                raise outcome
            self.tally.described(outcome, self.cache)
            self.window.completed(seconds)
            if self.window.due(self.clock(), self.sizer.window):
                self.pool.resize(self.window.close(self.sizer, self.clock()))
            self.progress(listing_done)

    def run(self) -> _Tally:
        """List and describe every key; the tally accounts for each one, or raises."""
        tally, cache = self.tally, self.cache
        complete = False
        try:
            for page in self.gateway.list_keys():
                tally.pages += 1
                for key_id, arn in page:
                    tally.add_listed(key_id)
                    owner = cache.get(key_id) if cache is not None else None
                    if owner is not None and owner != self.store_id:
                        tally.elsewhere_known(key_id)  # known to belong elsewhere: not asked
                        continue
                    self.pool.submit(key_id, arn)
                    self.in_flight += 1
                    if self.in_flight > self.limit:
                        self.collect(down_to=self.limit // 2, block=True, listing_done=False)
                self.collect(down_to=0, block=False, listing_done=False)
                self.progress(False)
            self.collect(down_to=0, block=True, listing_done=True)
            tally.check()
            complete = True
        finally:
            # On an error, drop the descriptions not started yet rather than wait for them.
            self.pool.close()
            if cache is not None:
                cache.scanned(tally.listed if complete else None)
        self.progress(True, final=True)
        return tally


class _Window:
    """What the DescribeKey pool did since the sizer last looked: calls completed, their
    summed latency, and the gateway's throttle count at the start."""

    def __init__(self, pacing: Pacing | None, now: float) -> None:
        self._pacing = pacing
        self.start = now
        self.calls = 0
        self.seconds = 0.0
        self.throttles = self._throttles()

    def _throttles(self) -> int:
        return self._pacing.throttles("DescribeKey") if self._pacing is not None else 0

    def completed(self, seconds: float) -> None:
        self.calls += 1
        self.seconds += seconds

    def due(self, now: float, window: float) -> bool:
        return now - self.start >= window

    def close(self, sizer: PoolSizer, now: float) -> int:
        """Hand the window to the sizer, start the next one; returns the new pool size."""
        throttles = self._throttles()
        pace = self._pacing.rate("DescribeKey") if self._pacing is not None else None
        latency = self.seconds / self.calls if self.calls else 0.0
        before = sizer.limit
        limit = sizer.update(self.calls, now - self.start, throttles - self.throttles,
                             latency, pace)
        log.debug("DescribeKey pool %d -> %d: %.0f calls/s, %.1f ms each, %d throttled",
                  before, limit, self.calls / max(now - self.start, 1e-9), latency * 1000,
                  throttles - self.throttles)
        self.start, self.calls, self.seconds, self.throttles = now, 0, 0.0, throttles
        return limit


def recheck_keys(gateway: KeyReader, keys: Iterable[Key], *, every: bool = False
                 ) -> tuple[list[Key], list[Key]]:
    """Re-read keys that should be vanishing, earliest deletion first: (gone, still_there).

    Stops at the first key still present, since keys scheduled later are very unlikely to be
    gone already; the caller asks again later. `every`: read every key (a sweep: a key
    someone cancelled is seen whatever its DeletionDate). Nothing is declared gone without
    NotFound.
    """
    ordered = sorted(keys, key=lambda k: (k.deletion_date is None, k.deletion_date, k.id))
    gone: list[Key] = []
    still: list[Key] = []
    for index, key in enumerate(ordered):
        try:
            metadata = gateway.describe_key(key.arn)
        except KeyNotFound:
            gone.append(key)
            continue
        still.append(key_from_metadata(metadata, key.aliases))
        if not every:
            return gone, [*still, *ordered[index + 1 :]]
    return gone, still
