"""The append-only audit journal: one JSON line before and one after every mutating AWS call,
and one for every operator decision.

It lives in the user's state directory ($XDG_STATE_HOME/ksdelete/, by default
~/.local/state/ksdelete/), file mode 0600, and is never rewritten. It is opened without
following symlinks and must be a regular file owned by the user.

What later runs read back from it (deleted stores, confirmations, pins, scheduled keys) is
scoped to the account and Region of the run: entries of other accounts or Regions, and entries
written without an account, never count.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ksdelete.errors import (
    DISK_FULL,
    AwsError,
    JournalError,
    UsageError,
    disk_full_hint,
    os_reason,
)
from ksdelete.models import Pin


def state_dir() -> Path:
    """Where the journal, the locks and the cache live: $XDG_STATE_HOME/ksdelete, else
    ~/.local/state/ksdelete. A relative directory would move ksdelete's memory with the
    working directory (cron, systemd and a shell each start elsewhere): a usage error."""
    variable = "XDG_STATE_HOME"
    base = os.environ.get(variable)
    if not base:
        variable, base = "HOME", os.environ.get("HOME") or str(Path.home())
        base = str(Path(base) / ".local" / "state")
    if not Path(base).is_absolute():
        raise UsageError(f"{variable} is a relative path ({base!r}), not an absolute one",
                         where=variable, hint=f"Set {variable} to an absolute path, or pass "
                         "--journal PATH")
    return Path(base) / "ksdelete"


def default_path() -> Path:
    return state_dir() / "journal.jsonl"


def make_private_dirs(directory: Path) -> None:
    """Create missing directories with mode 0700, whatever the umask."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask


def open_private(path: Path, flags: int) -> int:
    """Open (or create, 0600) a file of ours: never through a symlink, only a regular file
    owned by this user; its mode is set on the open descriptor."""
    make_private_dirs(path.parent)
    # O_NONBLOCK: opening a FIFO must not hang; it is refused below like any non-file.
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_uid != os.geteuid():
            raise OSError(errno.EPERM, "owned by another user")
        if info.st_nlink != 1:  # a hard link planted to make us write elsewhere
            raise OSError(errno.EMLINK, "it has other hard links")
        os.set_blocking(fd, True)
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass(frozen=True)
class ScheduledKey:
    """A key ksdelete scheduled for deletion (ScheduleKeyDeletion answered ok)."""

    key_id: str
    arn: str | None
    time: str
    prior_state: str | None = None  # the key's state just before it was scheduled
    deletion_date: str | None = None  # the DeletionDate ScheduleKeyDeletion answered
    window_days: int | None = None  # the PendingWindowInDays ksdelete asked for


@dataclass
class Outcome:
    """Filled in by the caller inside `Journal.record`."""

    request_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


_PATH_LOCKS: dict[str, threading.Lock] = {}
_PATH_LOCKS_LOCK = threading.Lock()


def _path_lock(path: Path) -> threading.Lock:
    with _PATH_LOCKS_LOCK:
        return _PATH_LOCKS.setdefault(os.path.abspath(path), threading.Lock())


@dataclass
class _File:
    """What every view of one journal shares: the open descriptor and what was read."""

    fd: int | None = None
    entries: list[dict[str, Any]] | None = None  # parsed once, then appended to
    lock: threading.Lock = field(default_factory=threading.Lock)


class Journal:
    def __init__(self, path: Path | None, *, region: str, account: str | None = None,
                 caller_arn: str | None = None, run_id: str | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only  # a dry run reads the journal but never writes it
        self.region = region
        self.account = account
        self.caller_arn = caller_arn
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._now = now
        self._file = _File()  # shared with every view of this journal

    def scope_to(self, account: str, region: str, *, caller_arn: str | None) -> None:
        """The account, Region and caller the credentials answered for (GetCallerIdentity):
        what this journal writes with every entry and reads back (entries of other scopes, or
        written without an account, never count)."""
        self.account, self.region, self.caller_arn = account, region, caller_arn

    def view(self, account: str, region: str, *, caller_arn: str | None) -> Journal:
        """The same journal (one file, one run, one open descriptor, one reading) as another
        scope writes and reads it: each workspace has its own view."""
        other = copy.copy(self)
        other.scope_to(account, region, caller_arn=caller_arn)
        return other

    def open(self) -> None:
        """Open for appending; the CLI calls this before any AWS call, so a journal that
        cannot be written is a usage error before anything changes."""
        if self.path is None or self._file.fd is not None or self.read_only:
            return
        try:
            self._file.fd = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            if not _ends_a_line(self.path):  # a crash left half a line: start a new one
                os.write(self._file.fd, b"\n")
        except OSError as exc:
            raise UsageError(
                f"cannot open the journal: {_reason(exc)}", where=str(self.path),
                hint=disk_full_hint(self.path.parent) if exc.errno in DISK_FULL else
                "Pass --journal PATH to a regular file of yours in a writable directory",
            ) from exc

    def close(self) -> None:
        if self._file.fd is not None:
            os.close(self._file.fd)
            self._file.fd = None

    def _write(self, entry: dict[str, Any]) -> None:
        if self.path is None or self.read_only:
            return
        self.open()
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        # One writer at a time per file in this process: a fleet's accounts write one journal
        # from several threads, each through a journal of its own (its own descriptor).
        with _path_lock(self.path), self._file.lock:
            assert self._file.fd is not None
            start = os.fstat(self._file.fd).st_size
            try:
                view = memoryview(line)
                while view:  # a short write is continued, never left torn
                    view = view[os.write(self._file.fd, view):]
                os.fsync(self._file.fd)
            except OSError as exc:
                with contextlib.suppress(OSError):  # no half line for the next run to trip on
                    os.ftruncate(self._file.fd, start)
                raise JournalError(
                    f"cannot write the journal: {_reason(exc)}", where=str(self.path),
                    hint=(disk_full_hint(self.path.parent) if exc.errno in DISK_FULL
                          else "Fix the file, then run again")
                    + ": AWS state is re-read on every run",
                ) from exc
            if self._file.entries is not None:
                self._file.entries.append(json.loads(line))

    # ---- writing ----------------------------------------------------------------------------

    def decision(self, operation: str, *, store_id: str, store_name: str,
                 key_ids: list[str], matched_by: str = "id",
                 keys: list[dict[str, object]] | None = None,
                 plan_id: str | None = None, **extra: object) -> None:
        """Journal an operator's decision: ConfirmPlan (these keys may be deleted; `keys` keeps
        each one's state, ARN, aliases, external key ID, DeletionDate and creation date as
        confirmed; `plan_id` names the saved plan that was the confirmation, for `apply`;
        `extra` keeps what the leftovers report and an audit need: the store's type and
        cluster, the gates' options and every waiver) or CancelPlan (the deletion of this
        store was undone)."""
        self._write({"time": self._now().isoformat(), "phase": "decision", "run_id": self.run_id,
                     "account": self.account, "caller_arn": self.caller_arn,
                     "region": self.region, "store_id": store_id, "store_name": store_name,
                     "matched_by": matched_by, "operation": operation, "key_ids": key_ids,
                     **({"keys": keys} if keys is not None else {}),
                     **({"plan_id": plan_id} if plan_id is not None else {}), **extra})

    def report(self, *, store_id: str, store_name: str | None, phase: str,
               warnings: list[str], key_ids: list[str], waivers: list[str]) -> None:
        """Journal what a run reported for a store at its end (its phase, warnings, keys and
        waivers), so that the next unattended run repeats a warning only when the phase has
        changed (cron mail), not every day, and names a key it did not see. Written only when
        it differs from the last one (a few lines per store, one key ID per key)."""
        self._write({"time": self._now().isoformat(), "phase": "report", "run_id": self.run_id,
                     "account": self.account, "caller_arn": self.caller_arn,
                     "region": self.region, "store_id": store_id, "store_name": store_name,
                     "operation": "Report", "store_phase": phase, "warnings": warnings,
                     "key_ids": key_ids, "waivers": waivers})

    @contextmanager
    def record(self, *, store_id: str, operation: str, key_id: str | None = None,
               key_arn: str | None = None, store_name: str | None = None
               ) -> Iterator[Outcome]:
        """Journal an intent line, run the body, then journal its outcome (ok or the error)."""
        base = {
            "run_id": self.run_id,
            "account": self.account,
            "caller_arn": self.caller_arn,
            "region": self.region,
            "store_id": store_id,
            "store_name": store_name,
            "operation": operation,
            "key_id": key_id,
            "key_arn": key_arn,
        }
        self._write({"time": self._now().isoformat(), "phase": "intent", **base})
        outcome = Outcome()
        try:
            yield outcome
        except AwsError as exc:
            self._write({"time": self._now().isoformat(), "phase": "result", **base,
                         "request_id": exc.request_id, "outcome": f"error:{exc.aws_code}",
                         "message": exc.what})
            raise
        except JournalError:
            raise
        except BaseException as exc:
            self._write({"time": self._now().isoformat(), "phase": "result", **base,
                         "request_id": None, "outcome": f"error:{type(exc).__name__}",
                         "message": str(exc)})
            raise
        self._write({"time": self._now().isoformat(), "phase": "result", **base,
                     "request_id": outcome.request_id, "outcome": "ok", **outcome.detail})

    # ---- reading (scoped to this account and Region) ------------------------------------------

    def reload(self) -> None:
        """Forget what was read: another run may have written since (the store lock)."""
        self._file.entries = None

    def entries(self) -> list[dict[str, Any]]:
        """This account's and Region's entries, oldest first (parsed once per run)."""
        if self.path is None or self.account is None:
            return []
        if self._file.entries is None:
            self._file.entries = read_entries(self.path)
        return [e for e in self._file.entries
                if e.get("account") == self.account and e.get("region") == self.region]

    def confirmed_keys(self, store_id: str) -> frozenset[str] | None:
        """Keys confirmed for deletion in this store since its last cancel; None if none."""
        confirmed: set[str] | None = None
        for entry in self.entries():
            if entry.get("store_id") != store_id or entry.get("phase") != "decision":
                continue
            if entry.get("operation") == "ConfirmPlan":
                confirmed = (confirmed or set()) | set(entry.get("key_ids") or ())
            elif entry.get("operation") == "CancelPlan":
                confirmed = None
        return frozenset(confirmed) if confirmed is not None else None

    def confirmed_since(self, store_id: str) -> str | None:
        """When the store's deletion was first confirmed since its last cancel (the earliest
        ConfirmPlan after the last CancelPlan), if this journal holds a confirmation."""
        since: str | None = None
        for entry in self.entries():
            if entry.get("store_id") != store_id or entry.get("phase") != "decision":
                continue
            if entry.get("operation") == "ConfirmPlan":
                since = since or str(entry.get("time"))
            elif entry.get("operation") == "CancelPlan":
                since = None
        return since

    def pending_when_confirmed(self, store_id: str) -> dict[str, str]:
        """Keys whose latest confirmation (ConfirmPlan's per-key state) saw them pending
        deletion, with that confirmation's time: one that is no longer pending was cancelled,
        whoever had scheduled it. A later confirmation that saw a key otherwise (a person
        confirmed it again) is the one that counts."""
        latest: dict[str, tuple[str, str]] = {}
        for entry in self.entries():
            if entry.get("store_id") != store_id or entry.get("phase") != "decision" \
                    or entry.get("operation") != "ConfirmPlan":
                continue
            for record in entry.get("keys") or ():
                if isinstance(record, dict) and record.get("id"):
                    latest[str(record["id"])] = (str(record.get("state")),
                                                 str(entry.get("time")))
        return {key: when for key, (state, when) in latest.items()
                if state == "PendingDeletion"}

    def unscheduled_marks(self, store_id: str) -> frozenset[tuple[str, str]]:
        """(key ID, run ID) where the run tagged the key (its mark, just before scheduling it;
        the intent line is enough, the mark itself shows it was written) but its
        ScheduleKeyDeletion was never sent (no intent line: e.g. the disk was full) or
        AWS answered it with an error. An intent line with no result, or with a failure AWS did
        not answer (a timeout), is not among them: the call may have reached AWS."""
        tagged: set[tuple[str, str]] = set()
        intents: dict[tuple[str, str], int] = {}
        refused: dict[tuple[str, str], int] = {}
        done: set[tuple[str, str]] = set()
        for e in self.entries():
            if e.get("store_id") != store_id or not e.get("key_id"):
                continue
            pair = (str(e["key_id"]), str(e.get("run_id")))
            if e.get("operation") == "TagResource" and e.get("phase") == "intent":
                tagged.add(pair)  # the mark on the key says whether it was written
            elif e.get("operation") == "ScheduleKeyDeletion" and e.get("phase") == "intent":
                intents[pair] = intents.get(pair, 0) + 1
            elif e.get("operation") == "ScheduleKeyDeletion" and e.get("phase") == "result":
                if e.get("outcome") == "ok":
                    done.add(pair)
                elif e.get("request_id"):  # AWS answered with an error: not scheduled
                    refused[pair] = refused.get(pair, 0) + 1
        return frozenset(pair for pair in tagged if pair not in done
                         and intents.get(pair, 0) <= refused.get(pair, 0))

    def deleted_at(self, store_id: str) -> str | None:
        """When this journal saw DeleteCustomKeyStore succeed for this store ID, if ever
        (by ID only: a name can be taken by a new store)."""
        return next(
            (str(e.get("time")) for e in reversed(self.entries())
             if e.get("operation") == "DeleteCustomKeyStore" and e.get("phase") == "result"
             and e.get("outcome") == "ok" and e.get("store_id") == store_id),
            None,
        )

    def pinned(self, name: str) -> Pin | None:
        """The store ID `name` meant when an operator last confirmed a plan for a store
        given by that name, or when ksdelete last deleted a store of that name."""
        for entry in reversed(self.entries()):
            if entry.get("store_name") != name or not entry.get("store_id"):
                continue
            confirmed = entry.get("phase") == "decision" and \
                entry.get("operation") == "ConfirmPlan" and entry.get("matched_by") == "name"
            deleted = entry.get("phase") == "result" and entry.get("outcome") == "ok" and \
                entry.get("operation") == "DeleteCustomKeyStore"
            if confirmed or deleted:
                return Pin(name=name, store_id=str(entry["store_id"]),
                           time=str(entry.get("time")))
        return None

    def confirmed_store(self, store_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """What every ConfirmPlan of this store kept (the leftovers report needs it after the
        keys are gone): the store's ID, name, type and cluster, and each key's latest record."""
        store: dict[str, Any] = {"store_id": store_id}
        keys: dict[str, dict[str, Any]] = {}
        for e in self.entries():
            if e.get("store_id") != store_id or e.get("operation") != "ConfirmPlan" \
                    or e.get("phase") != "decision":
                continue
            store.update({k: e[k] for k in ("store_name", "store_type", "cluster_id")
                          if e.get(k)})
            for record in e.get("keys") or ():
                if isinstance(record, dict) and record.get("id"):
                    keys[str(record["id"])] = record
        return store, keys

    def last_report(self, store_id: str) -> dict[str, Any] | None:
        """The latest Report line of this store (see `report`), if any."""
        return next((e for e in reversed(self.entries())
                     if e.get("operation") == "Report" and e.get("store_id") == store_id),
                    None)

    def cancelled_keys(self, store_id: str) -> frozenset[str]:
        """Keys of this store whose deletion ksdelete cancelled (the watch, or `cancel`): the
        evidence that outlives a cancel mark that could not be written."""
        return frozenset(
            str(e["key_id"]) for e in self.entries()
            if e.get("store_id") == store_id and e.get("operation") == "CancelKeyDeletion"
            and e.get("phase") == "result" and e.get("outcome") == "ok" and e.get("key_id"))

    def soak_starts(self, store_id: str) -> dict[str, tuple[datetime, int | None]]:
        """Keys of this store ksdelete disabled for a soak (--disable-first): when (latest
        DisableKey each) and for how many days."""
        soaks: dict[str, tuple[datetime, int | None]] = {}
        for e in self.entries():
            if e.get("store_id") == store_id and e.get("operation") == "DisableKey" \
                    and e.get("phase") == "result" and e.get("outcome") == "ok" \
                    and e.get("key_id"):
                try:
                    when = datetime.fromisoformat(str(e.get("time")))
                except ValueError:
                    continue
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                raw = e.get("soak_days")
                days = int(raw) if isinstance(raw, str) and raw.isdigit() else None
                soaks[str(e["key_id"])] = (when, days)
        return soaks

    def scheduled_keys(self, store_id: str) -> dict[str, ScheduledKey]:
        """Keys of this store that ksdelete scheduled for deletion (latest scheduling each)."""
        keys: dict[str, ScheduledKey] = {}
        for e in self.entries():
            if e.get("store_id") == store_id and e.get("operation") == "ScheduleKeyDeletion" \
                    and e.get("phase") == "result" and e.get("outcome") == "ok" \
                    and e.get("key_id"):
                window = e.get("window_days")
                keys[str(e["key_id"])] = ScheduledKey(
                    str(e["key_id"]), e.get("key_arn"), str(e.get("time")), e.get("prior_state"),
                    e.get("deletion_date") if isinstance(e.get("deletion_date"), str) else None,
                    int(window) if isinstance(window, int | str) and str(window).isdigit()
                    else None)
        return keys


def _ends_a_line(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link"
    if exc.errno == errno.ENXIO:  # a FIFO with no reader
        return "not a regular file"
    return os_reason(exc)


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Every entry of a journal (skipping a torn last line after a crash). A journal that is a
    symlink, not a regular file, or not ours is refused (UsageError), like for writing."""
    entries: list[dict[str, Any]] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return entries
    except OSError as exc:
        raise UsageError(f"cannot read the journal: {_reason(exc)}", where=str(path),
                         hint="Pass --journal PATH to a regular file of yours") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise UsageError("cannot read the journal: not a regular file of yours",
                         where=str(path), hint="Pass --journal PATH to a regular file of yours")
    os.set_blocking(fd, True)
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
    return entries
