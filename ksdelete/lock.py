"""One run per store at a time on this machine: an advisory lock (flock) per account, Region and
store, in a `locks/` directory beside the journal. A crashed holder releases it automatically.

Beside each lock, `ksdelete cancel` may leave a cancel request (CancelRequest): the brake for a
run that holds the lock, which re-reads it before every point of no return and stops.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ksdelete.errors import DISK_FULL, LockTimeoutError, UsageError, disk_full_hint, os_reason
from ksdelete.journal import open_private

SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _name(account: str, region: str, store_id: str) -> str:
    return "-".join(SAFE.sub("_", part) for part in (account, region, store_id))


class StoreLock:
    def __init__(self, directory: Path, account: str, region: str, store_id: str, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, command: str = "") -> None:
        self.path = directory / f"{_name(account, region, store_id)}.lock"
        self.store_id = store_id
        self.command = command  # written into the lock file: what holds it ("cancel")
        self.holder_command = ""  # the holder's, when the lock could not be taken
        self._clock = clock
        self._sleep = sleep
        self._fd: int | None = None
        self.held_by = ""  # who held the lock when it could not be taken

    def acquire(self, timeout: float, *, on_wait: Callable[[str], None] | None = None,
                poll: float = 0.25) -> None:
        """Take the lock, waiting at most `timeout` seconds for another run to finish."""
        if self.path.parent.is_symlink():
            raise UsageError("the lock directory is a symbolic link", where=str(self.path.parent),
                             hint="Remove the link; ksdelete creates the directory itself")
        try:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise UsageError(f"cannot open the lock file: {os_reason(exc)}",
                             where=str(self.path),
                             hint=disk_full_hint(self.path.parent) if exc.errno in DISK_FULL
                             else "Pass --journal PATH in a directory of yours") from exc
        deadline = self._clock() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    told = True
                    on_wait(f"another ksdelete run holds the lock for {self.store_id} "
                            f"({_holder(fd)}); waiting for it (at most {timeout:.0f}s)")
                if self._clock() >= deadline:
                    holder = self.held_by = _holder(fd)
                    self.holder_command = str(_info(fd).get("command", ""))
                    os.close(fd)
                    raise LockTimeoutError(
                        f"another ksdelete run is still working on {self.store_id} ({holder})",
                        where=str(self.path), hint="Run again later, or raise --max-wait",
                    ) from None
                self._sleep(min(poll, max(0.0, deadline - self._clock())))
        self._fd = fd
        try:  # who holds it, for a run that waits for it (and cancel: which command)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": datetime.now(UTC).isoformat(),
                                      **({"command": self.command} if self.command else {})}
                                     ).encode(), 0)
        except OSError as exc:  # a disk this full would fail the journal next: stop now
            self.release()
            raise UsageError(f"cannot write the lock file: {os_reason(exc)}",
                             where=str(self.path),
                             hint=disk_full_hint(self.path.parent) if exc.errno in DISK_FULL
                             else "Pass --journal PATH in a directory of yours") from exc

    def try_acquire(self) -> str | None:
        """Take the lock if it is free (None), else say who holds it; never waits."""
        try:
            self.acquire(0)
        except LockTimeoutError:
            return self.held_by
        return None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _info(fd: int) -> dict[str, object]:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _holder(fd: int) -> str:
    info = _info(fd)
    if not info:
        return "holder unknown"
    command = f"ksdelete {info['command']}, " if info.get("command") else ""
    return f"{command}pid {info.get('pid', '?')}, since {info.get('since', '?')}"


class CancelRequest:
    """`ksdelete cancel` found a run holding the store's lock: a file beside the lock asks it
    to stop. The run re-reads it before every point of no return (each key it schedules or
    disables, a disconnect, a delete) and stops there, refused.

    The request outlives the cancel (a reversal sticks): while it exists, no unattended run of
    this store goes on. A person's fresh confirmation at a terminal lifts it (`lift`)."""

    def __init__(self, directory: Path, account: str, region: str, store_id: str) -> None:
        self.path = directory / f"{_name(account, region, store_id)}.cancel"
        self.store_id = store_id

    def write(self, **details: str) -> dict[str, str]:
        """Leave the request (atomically: a reader sees all of it or nothing)."""
        request = {"requested_at": datetime.now(UTC).isoformat(timespec="seconds"),
                   "pid": str(os.getpid()), **details}
        temp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                os.write(fd, json.dumps(request, sort_keys=True).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except OSError as exc:
            raise UsageError(f"cannot write the cancel request: {exc.strerror or exc}",
                             where=str(self.path),
                             hint="Free space or fix the directory, then run again") from exc
        return request

    def read(self) -> dict[str, str] | None:
        """The request, or None. A request that cannot be read still counts (as one by an
        unknown requester): the brake errs on the side of stopping."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError:
            return {"requested_at": "?", "by": "unknown (the request file cannot be read)"}
        try:
            info = json.loads(os.read(fd, 65536) or b"{}")
        except (OSError, ValueError):
            info = None
        finally:
            os.close(fd)
        if not isinstance(info, dict):
            return {"requested_at": "?", "by": "unknown (the request file is damaged)"}
        return {str(k): str(v) for k, v in info.items()}

    def lift(self, seen: dict[str, str]) -> bool:
        """Remove the request a person has just confirmed past, unless a newer one replaced
        it meanwhile (that one stays, and stops the run at its next point of no return)."""
        if self.read() != seen:
            return False
        self.path.unlink(missing_ok=True)
        return True


def describe_request(request: dict[str, str]) -> str:
    """Who asked, when, from which process: for messages."""
    return (f"requested at {request.get('requested_at', '?')} by "
            f"{request.get('by', 'someone')} (pid {request.get('pid', '?')})")
