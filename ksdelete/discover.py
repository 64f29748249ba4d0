"""Reads only: find the store, then every key in it (ListKeys + DescribeKey; no server filter)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from ksdelete.errors import AccessDenied, AwsError, IncompleteDiscoveryError, KeyNotFound
from ksdelete.gateway import key_from_metadata
from ksdelete.models import Key, KeyStore, Snapshot, UndescribableKey

# on_progress(keys accounted for, keys listed so far, listing_done)
ProgressObserver = Callable[[int, int, bool], None]


class MembershipCache:
    """key ID -> the custom key store it was created in ("" for none). Thread safe.

    KMS fixes a key's CustomKeyStoreId at CreateKey and never changes it, and key IDs are
    never reused, so an entry stays true for as long as the key exists.
    """

    def __init__(self) -> None:
        self._stores: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key_id: str) -> str | None:
        with self._lock:
            return self._stores.get(key_id)

    def put(self, key_id: str, store_id: str) -> None:
        with self._lock:
            self._stores[key_id] = store_id

    def __len__(self) -> int:
        with self._lock:
            return len(self._stores)


class KeyReader(Protocol):
    """What discovery needs from the gateway (Gateway has it; unit tests pass a fake)."""

    def list_keys(self) -> Iterable[list[tuple[str, str]]]: ...

    def describe_key(self, key_id: str) -> dict[str, Any]: ...

    def list_aliases(self) -> dict[str, list[str]]: ...


# One DescribeKey answer: (listed key ID, listed ARN, KeyMetadata or the error).
_Outcome = tuple[str, str, "dict[str, Any] | AwsError"]


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
) -> Snapshot:
    """Every key of `store`, with aliases; keys that cannot be described are reported.

    Every key ListKeys returns becomes exactly one of: a member (in `keys`), elsewhere
    (counted), gone (NotFoundException) or undescribable (any other error, with its code);
    if they do not add up, IncompleteDiscoveryError is raised instead of a snapshot.

    DescribeKey runs on `workers` threads while ListKeys pages are still being read; at most
    `backlog` keys (default: a few pages' worth) wait to be described before listing pauses.
    """
    tally = _Tally(store.id)
    limit = backlog if backlog is not None else max(2000, workers * 64)
    results: queue.SimpleQueue[Future[_Outcome]] = queue.SimpleQueue()
    in_flight = 0

    def describe(key_id: str, arn: str) -> _Outcome:
        try:
            return key_id, arn, gateway.describe_key(arn)
        except AwsError as exc:
            return key_id, arn, exc

    def progress(listing_done: bool) -> None:
        if on_progress:
            on_progress(tally.accounted, len(tally.listed), listing_done)

    def collect(*, down_to: int, block: bool, listing_done: bool) -> None:
        """Account for finished descriptions until at most `down_to` are in flight (waiting
        for them if `block`, else taking only those already finished)."""
        nonlocal in_flight
        while in_flight > down_to:
            try:
                future = results.get(block=block)
            except queue.Empty:
                return
            in_flight -= 1
            tally.described(future.result(), cache)
            progress(listing_done)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="describe")
    try:
        for page in gateway.list_keys():
            tally.pages += 1
            for key_id, arn in page:
                tally.add_listed(key_id)
                owner = cache.get(key_id) if cache is not None else None
                if owner is not None and owner != store.id:
                    tally.elsewhere_known(key_id)  # known to belong elsewhere: no need to ask
                    continue
                future = pool.submit(describe, key_id, arn)
                future.add_done_callback(results.put)  # exactly once, even if already done
                in_flight += 1
                if in_flight > limit:
                    collect(down_to=limit // 2, block=True, listing_done=False)
            collect(down_to=0, block=False, listing_done=False)
            progress(False)
        collect(down_to=0, block=True, listing_done=True)
    finally:
        # On an error, drop the descriptions not started yet rather than wait for them.
        pool.shutdown(wait=True, cancel_futures=True)
    tally.check()
    progress(True)

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


def recheck_keys(gateway: KeyReader, keys: Iterable[Key]) -> tuple[list[Key], list[Key]]:
    """Re-read keys that should be vanishing, earliest deletion first: (gone, still_there).

    Stops at the first key still present, since keys scheduled later are very unlikely to be
    gone already; the caller asks again later. Nothing is declared gone without NotFound.
    """
    ordered = sorted(keys, key=lambda k: (k.deletion_date is None, k.deletion_date, k.id))
    gone: list[Key] = []
    for index, key in enumerate(ordered):
        try:
            metadata = gateway.describe_key(key.arn)
        except KeyNotFound:
            gone.append(key)
            continue
        refreshed = key_from_metadata(metadata, key.aliases)
        return gone, [refreshed, *ordered[index + 1 :]]
    return gone, []
