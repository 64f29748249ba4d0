"""The key membership cache, kept between runs: which custom key store each key ID is in.

KMS fixes a key's CustomKeyStoreId when the key is created and never reuses a key ID, so what
one scan learnt stays true: a later scan describes only the store's own keys and the key IDs
it has never seen, and counts the rest as elsewhere. It never widens what gets acted on:
discovery skips only keys proven to be in another store (or in none), and a key is acted on
only if this run's DescribeKey says it is in the store.

One file per account, Region and KMS endpoint, beside the journal
(`cache/membership-ACCOUNT-REGION.json` for AWS's own endpoints; another endpoint, such as an
emulator, adds a digest of its URL), mode 0600 in 0700 directories, opened without following
symlinks, replaced atomically (a temporary file in the same directory, fsync, rename). A file
that cannot be read, is not valid, or belongs to another account, Region, endpoint or format is
ignored with a warning: every key is described and the file is written anew. `--no-cache`
neither reads nor writes it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ksdelete.discover import MembershipCache
from ksdelete.errors import os_reason
from ksdelete.journal import make_private_dirs, open_private
from ksdelete.models import STORE_ID
from ksdelete.planner import service_endpoint

FORMAT = "ksdelete-key-membership"
VERSION = 1
# A key ID as KMS makes them: a UUID, or mrk- and 32 hex digits for a multi-Region key.
KEY_ID = re.compile(r"^(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                    r"[0-9a-f]{12})$")
SAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_BYTES = 256 * 1024 * 1024  # about 6 million keys; anything larger is not ours

Warn = Callable[[str], None]


def cache_path(directory: Path, account: str, region: str, *, endpoint: str | None = None
               ) -> Path:
    """The file of one account, Region and KMS endpoint (None, or any of AWS's own: one file;
    another endpoint, e.g. an emulator whose key IDs may repeat after a reset: its own)."""
    parts = [account, region]
    service = service_endpoint(endpoint)
    if service is not None:
        parts.append(hashlib.sha256(service.encode()).hexdigest()[:16])
    name = "-".join(SAFE.sub("_", part) for part in parts)
    return directory / "cache" / f"membership-{name}.json"



def read_json(path: Path) -> Any:
    """A cache file's JSON: opened without following symlinks, bounded in size; a file that is
    too large or not JSON is a CacheFileError (the caller ignores it and writes it anew)."""
    fd = open_private(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > MAX_BYTES:
            raise CacheFileError("it is too large to be a ksdelete cache")
        raw = handle.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CacheFileError("it is not valid JSON (a torn or foreign file)") from exc

class CacheFileError(Exception):
    """Why a cache file is ignored."""


class MembershipFile:
    """The file behind one account's and Region's MembershipCache."""

    def __init__(self, path: Path, *, account: str, region: str, warn: Warn,
                 endpoint: str | None = None) -> None:
        self.path = path
        self.account = account
        self.region = region
        self.endpoint = service_endpoint(endpoint)  # None: AWS's own
        self._warn = warn
        self._save_failed = False

    def load(self) -> dict[str, str]:
        """key ID -> store ID ("" for none); empty if there is no file or it is ignored."""
        try:
            return self._read()
        except FileNotFoundError:
            return {}
        except (OSError, CacheFileError) as exc:
            self._warn(f"ignoring the key membership cache {self.path}: {_reason(exc)}; every "
                       "key is described and the cache is written anew")
            return {}

    def _read(self) -> dict[str, str]:
        return self.parse(read_json(self.path))

    def parse(self, doc: Any) -> dict[str, str]:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CacheFileError("it is not a ksdelete key membership cache")
        if doc.get("version") != VERSION:
            raise CacheFileError(f"it has version {doc.get('version')!r}, not {VERSION}")
        if doc.get("account") != self.account or doc.get("region") != self.region:
            raise CacheFileError(
                f"it belongs to account {doc.get('account')!r}, Region {doc.get('region')!r}, "
                f"not account {self.account}, {self.region}")
        if doc.get("endpoint") != self.endpoint:
            raise CacheFileError(
                f"it belongs to the KMS endpoint {doc.get('endpoint') or 'of AWS'}, not "
                f"{self.endpoint or 'of AWS'}")
        stores = doc.get("stores")
        if not isinstance(stores, dict):
            raise CacheFileError("it has no valid 'stores' map")
        entries: dict[str, str] = {}
        for store_id, key_ids in stores.items():
            if store_id != "" and not STORE_ID.match(store_id):
                raise CacheFileError(f"{store_id!r} is not a custom key store ID")
            if not isinstance(key_ids, list):
                raise CacheFileError(f"the keys of {store_id!r} are not a list")
            for key_id in key_ids:
                if not isinstance(key_id, str) or not KEY_ID.match(key_id):
                    raise CacheFileError(f"{key_id!r} is not a KMS key ID")
                if entries.setdefault(key_id, store_id) != store_id:
                    raise CacheFileError(f"key {key_id} is listed in two stores")
        return entries

    def save(self, cache: MembershipCache) -> None:
        """Replace the file with what `cache` knows; a failure is a warning (once), not an
        error: the cache only saves work."""
        try:
            self._write(self.render(cache))
        except OSError as exc:
            if not self._save_failed:
                self._save_failed = True
                self._warn(f"cannot write the key membership cache {self.path}: "
                           f"{_reason(exc)}; the next run describes every key again")

    def render(self, cache: MembershipCache) -> bytes:
        stores: dict[str, list[str]] = {}
        for key_id, store_id in cache.items():
            stores.setdefault(store_id, []).append(key_id)
        doc = {
            "format": FORMAT, "version": VERSION, "account": self.account,
            "region": self.region, "endpoint": self.endpoint,
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
            "stores": {store: sorted(ids) for store, ids in sorted(stores.items())},
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def _write(self, data: bytes) -> None:
        directory = self.path.parent
        make_private_dirs(directory)
        temp = directory / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)


def open_cache(directory: Path, *, account: str, region: str, enabled: bool,
               warn: Warn, endpoint: str | None = None) -> MembershipCache:
    """The MembershipCache for one run: loaded from its file and saved after every scan that
    learnt something, or (not `enabled`, --no-cache) one that describes every key and
    touches no file."""
    if not enabled:
        return MembershipCache(trusted=False)
    backing = MembershipFile(cache_path(directory, account, region, endpoint=endpoint),
                             account=account, region=region, warn=warn, endpoint=endpoint)
    return MembershipCache(backing.load(), on_scan=backing.save)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CacheFileError):
        return str(exc)
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP:
            return "it is a symbolic link"
        if exc.errno in (errno.ENXIO, errno.EINVAL):
            return "it is not a regular file"
        if exc.errno == errno.EPERM:
            return "it is owned by another user"
        return os_reason(exc)
    return str(exc)


# ---- the watch's positions ------------------------------------------------------------------

WATCH_FORMAT = "ksdelete-watch-positions"
WATCH_VERSION = 1


def watch_path(directory: Path, account: str, region: str) -> Path:
    name = "-".join(SAFE.sub("_", part) for part in (account, region))
    return directory / "cache" / f"watch-{name}.json"


class WatchFile:
    """How far the watch read each CloudTrail chain completely, per key, and each key's
    anchor (its ScheduleKeyDeletion's time, with the DeletionDate it set), for one account and
    Region (`cache/watch-ACCOUNT-REGION.json`, beside the membership cache, written the same
    way). Only ever makes a read shorter where it can be trusted: an entry of another account
    or Region, a time that does not parse, or a file that cannot be read is left out (the next
    read is longer, never shorter)."""

    def __init__(self, path: Path, *, account: str, region: str, warn: Warn) -> None:
        self.path = path
        self.account = account
        self.region = region
        self._warn = warn
        self._save_failed = False
        self._prefix = f"arn:aws:kms:{region}:{account}:key/"

    def load(self) -> tuple[dict[str, dict[str, datetime]],
                            dict[str, tuple[datetime, datetime]]]:
        """(chain -> key ARN -> read completely up to, key ARN -> (anchor, DeletionDate))."""
        try:
            return self.parse(read_json(self.path))
        except FileNotFoundError:
            return {}, {}
        except (OSError, CacheFileError) as exc:
            self._warn(f"ignoring the watch's positions {self.path}: {_reason(exc)}; CloudTrail "
                       "is read from each key's scheduling")
            return {}, {}

    def parse(self, doc: Any) -> tuple[dict[str, dict[str, datetime]],
                                       dict[str, tuple[datetime, datetime]]]:
        if not isinstance(doc, dict) or doc.get("format") != WATCH_FORMAT:
            raise CacheFileError("it is not ksdelete's watch positions")
        if doc.get("version") != WATCH_VERSION:
            raise CacheFileError(f"it has version {doc.get('version')!r}, not {WATCH_VERSION}")
        if doc.get("account") != self.account or doc.get("region") != self.region:
            raise CacheFileError(
                f"it belongs to account {doc.get('account')!r}, Region {doc.get('region')!r}, "
                f"not account {self.account}, {self.region}")
        chains: dict[str, dict[str, datetime]] = {}
        raw_chains = doc.get("chains")
        for name, keys in (raw_chains.items() if isinstance(raw_chains, dict) else ()):
            if not isinstance(keys, dict):
                continue
            for arn, when in keys.items():
                parsed = _instant(when)
                if isinstance(arn, str) and arn.startswith(self._prefix) and parsed:
                    chains.setdefault(str(name), {})[arn] = parsed
        anchors: dict[str, tuple[datetime, datetime]] = {}
        raw_anchors = doc.get("anchors")
        for arn, entry in (raw_anchors.items() if isinstance(raw_anchors, dict) else ()):
            if not isinstance(entry, dict) or not str(arn).startswith(self._prefix):
                continue
            since, deletion = _instant(entry.get("since")), _instant(entry.get("deletion_date"))
            if since and deletion:
                anchors[str(arn)] = (since, deletion)
        return chains, anchors

    def save(self, chains: dict[str, dict[str, datetime]],
             anchors: dict[str, tuple[datetime, datetime]]) -> None:
        doc = {
            "format": WATCH_FORMAT, "version": WATCH_VERSION, "account": self.account,
            "region": self.region, "written": datetime.now(UTC).isoformat(timespec="seconds"),
            "chains": {name: {arn: when.isoformat() for arn, when in sorted(keys.items())}
                       for name, keys in sorted(chains.items())},
            "anchors": {arn: {"since": since.isoformat(), "deletion_date": deletion.isoformat()}
                        for arn, (since, deletion) in sorted(anchors.items())},
        }
        try:
            MembershipFile(self.path, account=self.account, region=self.region,
                           warn=self._warn)._write(json.dumps(doc, separators=(",", ":")).encode())
        except OSError as exc:
            if not self._save_failed:
                self._save_failed = True
                self._warn(f"cannot write the watch's positions {self.path}: {_reason(exc)}; "
                           "the next run reads CloudTrail from each key's scheduling")


def open_watch_file(directory: Path, *, account: str, region: str, enabled: bool,
                    warn: Warn) -> WatchFile | None:
    """The watch's positions for one run (None with --no-cache: nothing read or written)."""
    if not enabled:
        return None
    return WatchFile(watch_path(directory, account, region), account=account, region=region,
                     warn=warn)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
