"""One workspace per scope (account, Region, KMS endpoint): what every store of that scope
shares. Built once by the composition root (ksdelete.app) and handed to the executor.

- its gateway, paced by the scope's one pacer (AWS counts its quotas per account and Region);
- its journal view (the journal's entries of this account and Region);
- its key membership cache and the watch's positions (files named by the scope);
- its locks directory (a lock and a cancel request per store of the scope);
- the reading of its keys (`keys`): the surveys of an invocation's stores share one
  membership scan (ListKeys chain) of the scope, however many stores it names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksdelete.cache import WatchFile, open_cache, open_watch_file
from ksdelete.discover import MembershipCache
from ksdelete.gateway import Gateway
from ksdelete.journal import Journal
from ksdelete.lock import CancelRequest, StoreLock
from ksdelete.models import Identity
from ksdelete.pacing import Pacer
from ksdelete.scope import Scope

# A survey round's listing serves later surveys of the round for at most this long; an older
# one is read again (a round that long is a run surveying many stores with a lot to read).
SHARED_FOR = 300.0


class ScopeKeys:
    """The reader discovery scans a scope's keys through (discover.KeyReader).

    Outside a survey round, every scan is the gateway's own. Inside one (`survey_round()`:
    the surveys of an invocation's stores, before anything is confirmed), a complete ListKeys
    chain (and ListAliases) is read once and serves every later scan of the round, and a key
    that a DescribeKey of the round placed in a custom key store (or in none) is not described
    again for a scan of another store: which store a key is in never changes. A scan's own
    members are always described afresh. Nothing acts on a round's scan: before every point of
    no return the executor re-plans on a fresh snapshot, read outside any round.
    """

    def __init__(self, gateway: Gateway, *, clock: Any = time.monotonic) -> None:
        self.gateway = gateway
        self._clock = clock
        self._lock = threading.Lock()
        self._rounds = 0
        self._pages: list[list[tuple[str, str]]] | None = None
        self._listed_at = 0.0
        self._aliases: dict[str, list[str]] | None = None
        # key ARN (as listed) -> (key ID, its store ID or ""): no more, however many keys
        self._owners: dict[str, tuple[str, str]] = {}
        self.listings = 0  # ListKeys chains read (for the tests and benchmarks)
        # A read-only invocation (a dry run, status, report): every scan is a survey.
        self.always_shared = False

    @property
    def pacing(self) -> Pacer:
        """The scope's pacer (discovery sizes its DescribeKey pool by it)."""
        return self.gateway.pacing

    @contextmanager
    def survey_round(self) -> Iterator[None]:
        """Scans inside share one listing (rounds nest; the outermost one ends the sharing)."""
        with self._lock:
            self._rounds += 1
        try:
            yield
        finally:
            with self._lock:
                self._rounds -= 1
                if not self._sharing():
                    self._pages, self._aliases, self._owners = None, None, {}

    def _sharing(self) -> bool:
        return self.always_shared or self._rounds > 0

    def for_store(self, store_id: str) -> StoreKeys:
        return StoreKeys(self, store_id)

    def list_keys(self) -> Iterator[list[tuple[str, str]]]:
        with self._lock:
            pages = self._pages if self._sharing() and \
                self._clock() - self._listed_at < SHARED_FOR else None
        if pages is not None:
            yield from pages
            return
        read: list[list[tuple[str, str]]] = []
        started = self._clock()
        self.listings += 1
        for page in self.gateway.list_keys():
            read.append(page)
            yield page
        with self._lock:  # complete: a listing cut short is never shared
            if self._sharing():
                self._pages, self._listed_at = read, started

    def list_aliases(self) -> dict[str, list[str]]:
        with self._lock:
            if self._sharing() and self._aliases is not None:
                return self._aliases
        aliases = self.gateway.list_aliases()
        with self._lock:
            if self._sharing():
                self._aliases = aliases
        return aliases

    def describe_key(self, key_id: str, store_id: str | None = None) -> dict[str, Any]:
        """DescribeKey; in a round, a key already placed in another store than `store_id`
        answers only its ID and store (discovery counts it elsewhere, as the cache would)."""
        with self._lock:
            known = self._owners.get(key_id) if self._sharing() else None
        if known is not None and store_id is not None and known[1] != store_id:
            return {"KeyId": known[0], "CustomKeyStoreId": known[1] or None}
        metadata = self.gateway.describe_key(key_id)
        with self._lock:
            if self._sharing():
                self._owners[key_id] = (str(metadata.get("KeyId", "")),
                                        str(metadata.get("CustomKeyStoreId") or ""))
        return metadata


@dataclass(frozen=True)
class StoreKeys:
    """A scope's keys as one store's scan reads them (see ScopeKeys)."""

    scope_keys: ScopeKeys
    store_id: str

    @property
    def pacing(self) -> Pacer:
        return self.scope_keys.pacing

    def list_keys(self) -> Iterator[list[tuple[str, str]]]:
        return self.scope_keys.list_keys()

    def list_aliases(self) -> dict[str, list[str]]:
        return self.scope_keys.list_aliases()

    def describe_key(self, key_id: str) -> dict[str, Any]:
        return self.scope_keys.describe_key(key_id, self.store_id)


@dataclass
class Workspace:
    """Everything the stores of one scope share (see the module docstring)."""

    scope: Scope
    identity: Identity
    gateway: Gateway
    journal: Journal
    membership: MembershipCache = field(default_factory=MembershipCache)
    watch_file: WatchFile | None = None
    lock_dir: Path | None = None
    # How a run sleeps while another holds a store's lock (a fleet's: one that Ctrl-C in the
    # main thread ends in every account's thread).
    lock_sleep: Callable[[float], None] = time.sleep
    keys: ScopeKeys = field(init=False)

    def __post_init__(self) -> None:
        self.keys = ScopeKeys(self.gateway)

    @property
    def pacer(self) -> Pacer:
        return self.gateway.pacing

    def lock(self, store_id: str, *, command: str = "") -> StoreLock | None:
        """The store's lock (None without a locks directory)."""
        if self.lock_dir is None:
            return None
        return StoreLock(self.lock_dir, self.scope.account, self.scope.region, store_id,
                         command=command, sleep=self.lock_sleep)

    def cancel_request(self, store_id: str) -> CancelRequest | None:
        """Where a `ksdelete cancel` of the store leaves its request (beside the lock)."""
        if self.lock_dir is None:
            return None
        return CancelRequest(self.lock_dir, self.scope.account, self.scope.region, store_id)


def open_workspace(scope: Scope, identity: Identity, gateway: Gateway, journal: Journal, *,
                   directory: Path, cache: bool, warn: Any,
                   membership: MembershipCache | None = None) -> Workspace:
    """The workspace of one scope, its files beside the journal (`directory`): the membership
    cache and the watch's positions (neither with `cache` False: --no-cache), the locks."""
    if membership is None:
        membership = open_cache(directory, account=scope.account, region=scope.region,
                                endpoint=scope.endpoint, enabled=cache, warn=warn)
    watch_file = open_watch_file(directory, account=scope.account, region=scope.region,
                                 enabled=cache, warn=warn)
    return Workspace(scope, identity, gateway, journal, membership, watch_file,
                     directory / "locks")
