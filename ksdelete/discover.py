"""Reads only: find the store, then every key in it (ListKeys + DescribeKey; no server filter)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from ksdelete.errors import AccessDenied, AwsError, StoreNotFoundError
from ksdelete.gateway import Gateway, key_from_metadata
from ksdelete.models import STORE_ID, Key, KeyStore, Snapshot, UndescribableKey

KEY_GONE = "NotFoundException"

# on_progress(described, known_total, listing_done)
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


def find_store(gateway: Gateway, ref: str) -> tuple[KeyStore, str]:
    """The store named by `ref` (ID or name) and how it matched ("id" or "name")."""
    if STORE_ID.match(ref):
        store = gateway.describe_store(store_id=ref)
        if store is not None:
            return store, "id"
    store = gateway.describe_store(name=ref)
    if store is not None:
        return store, "name"
    raise StoreNotFoundError(
        f"no custom key store with ID or name {ref!r}",
        where=f"region {gateway.region}",
        hint="Check the ID/name and --region; `aws kms describe-custom-key-stores` lists them",
    )


def snapshot(
    gateway: Gateway,
    store: KeyStore,
    *,
    matched_by: str = "id",
    workers: int = 8,
    on_progress: ProgressObserver | None = None,
    cache: MembershipCache | None = None,
) -> Snapshot:
    """Every key of `store`, with aliases. Keys that cannot be described are reported."""
    members: list[Key] = []
    undescribable: list[UndescribableKey] = []
    described = 0
    total = 0

    def describe(key_id: str, arn: str) -> tuple[str, str, dict[str, object] | AwsError]:
        try:
            return key_id, arn, gateway.describe_key(arn)
        except AwsError as exc:
            return key_id, arn, exc

    def collect(futures: Iterable[Future[tuple[str, str, dict[str, object] | AwsError]]],
                listing_done: bool) -> None:
        nonlocal described
        for future in futures:
            key_id, arn, result = future.result()
            described += 1
            if isinstance(result, AwsError):
                if result.aws_code != KEY_GONE:  # deleted between ListKeys and DescribeKey
                    undescribable.append(
                        UndescribableKey(key_id, arn, result.aws_code, result.what,
                                         access_denied=isinstance(result, AccessDenied))
                    )
            else:
                owner = str(result.get("CustomKeyStoreId") or "")
                if cache is not None:
                    cache.put(key_id, owner)
                if owner == store.id:
                    members.append(key_from_metadata(result))
            if on_progress:
                on_progress(described, total, listing_done)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="describe") as pool:
        pending: list[Future[tuple[str, str, dict[str, object] | AwsError]]] = []
        for page in gateway.list_keys():
            total += len(page)
            for key_id, arn in page:
                owner = cache.get(key_id) if cache is not None else None
                if owner is not None and owner != store.id:
                    described += 1  # known to belong elsewhere: no need to ask again
                else:
                    pending.append(pool.submit(describe, key_id, arn))
            done = [f for f in pending if f.done()]
            pending = [f for f in pending if not f.done()]
            collect(done, False)
        collect(pending, True)

    if members:
        aliases = gateway.list_aliases()
        members = [
            Key(k.id, k.arn, k.state, k.custom_key_store_id, k.deletion_date,
                tuple(sorted(aliases.get(k.id, ()))), k.external_key_id)
            for k in members
        ]
    members.sort(key=lambda k: k.id)
    undescribable.sort(key=lambda k: k.id)
    return Snapshot(store, tuple(members), tuple(undescribable), total, matched_by)


def recheck_keys(gateway: Gateway, keys: Iterable[Key]) -> tuple[list[Key], list[Key]]:
    """Re-read keys that should be vanishing, earliest deletion first: (gone, still_there).

    Stops at the first key still present, since keys scheduled later are very unlikely to be
    gone already; the caller asks again later. Nothing is declared gone without NotFound.
    """
    ordered = sorted(keys, key=lambda k: (k.deletion_date is None, k.deletion_date, k.id))
    gone: list[Key] = []
    for index, key in enumerate(ordered):
        try:
            metadata = gateway.describe_key(key.arn)
        except AwsError as exc:
            if exc.aws_code == KEY_GONE:
                gone.append(key)
                continue
            raise
        refreshed = key_from_metadata(metadata, key.aliases)
        return gone, [refreshed, *ordered[index + 1 :]]
    return gone, []
