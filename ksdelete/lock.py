"""One run per store at a time on this machine: an advisory lock (flock) per account, Region and
store, in a `locks/` directory beside the journal. A crashed holder releases it automatically."""

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


class StoreLock:
    def __init__(self, directory: Path, account: str, region: str, store_id: str, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        name = "-".join(SAFE.sub("_", part) for part in (account, region, store_id))
        self.path = directory / f"{name}.lock"
        self.store_id = store_id
        self._clock = clock
        self._sleep = sleep
        self._fd: int | None = None

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
                    holder = _holder(fd)
                    os.close(fd)
                    raise LockTimeoutError(
                        f"another ksdelete run is still working on {self.store_id} ({holder})",
                        where=str(self.path), hint="Run again later, or raise --max-wait",
                    ) from None
                self._sleep(min(poll, max(0.0, deadline - self._clock())))
        self._fd = fd
        try:  # who holds it, for a run that waits for it
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(),
                                      "since": datetime.now(UTC).isoformat()}).encode(), 0)
        except OSError as exc:  # a disk this full would fail the journal next: stop now
            self.release()
            raise UsageError(f"cannot write the lock file: {os_reason(exc)}",
                             where=str(self.path),
                             hint=disk_full_hint(self.path.parent) if exc.errno in DISK_FULL
                             else "Pass --journal PATH in a directory of yours") from exc

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info.get('pid', '?')}, since {info.get('since', '?')}"
    except (OSError, ValueError):
        return "holder unknown"
