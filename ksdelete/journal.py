"""The append-only audit journal: one JSON line before and one after every mutating AWS call.

It lives in the user's state directory ($XDG_STATE_HOME/ksdelete/, by default
~/.local/state/ksdelete/), file mode 0600, and is never rewritten.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ksdelete.errors import AwsError, UsageError


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ksdelete"


def default_path() -> Path:
    return state_dir() / "journal.jsonl"


@dataclass
class Outcome:
    """Filled in by the caller inside `Journal.record`."""

    request_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


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
        self._lock = threading.Lock()
        self._fd: int | None = None

    def open(self) -> None:
        if self.path is None or self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise UsageError(
                f"cannot open the journal: {exc.strerror}", where=str(self.path),
                hint="Pass --journal PATH to a writable file",
            ) from exc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, entry: dict[str, Any]) -> None:
        if self.path is None or self.read_only:
            return
        self.open()
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            assert self._fd is not None
            os.write(self._fd, line)
            os.fsync(self._fd)

    def decision(self, operation: str, *, store_id: str, store_name: str,
                 key_ids: list[str]) -> None:
        """Journal an operator's decision: ConfirmPlan (these keys may be deleted) or
        CancelPlan (the deletion of this store was undone)."""
        self._write({"time": self._now().isoformat(), "phase": "decision", "run_id": self.run_id,
                     "account": self.account, "caller_arn": self.caller_arn,
                     "region": self.region, "store_id": store_id, "store_name": store_name,
                     "operation": operation, "key_ids": key_ids})

    def confirmed_keys(self, store_id: str) -> frozenset[str] | None:
        """Keys confirmed for deletion in this store since its last cancel; None if none."""
        if self.path is None:
            return None
        confirmed: set[str] | None = None
        for entry in read_entries(self.path):
            if entry.get("store_id") != store_id or entry.get("phase") != "decision":
                continue
            if entry.get("operation") == "ConfirmPlan":
                confirmed = (confirmed or set()) | set(entry.get("key_ids") or ())
            elif entry.get("operation") == "CancelPlan":
                confirmed = None
        return frozenset(confirmed) if confirmed is not None else None

    def deleted_at(self, ref: str) -> str | None:
        """When this journal saw DeleteCustomKeyStore succeed for `ref` (ID or name), if ever."""
        if self.path is None:
            return None
        return next(
            (str(e.get("time")) for e in reversed(read_entries(self.path))
             if e.get("operation") == "DeleteCustomKeyStore" and e.get("phase") == "result"
             and e.get("outcome") == "ok" and ref in (e.get("store_id"), e.get("store_name"))),
            None,
        )

    @contextmanager
    def record(self, *, store_id: str, operation: str, key_id: str | None = None,
               store_name: str | None = None) -> Iterator[Outcome]:
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
        except BaseException as exc:
            self._write({"time": self._now().isoformat(), "phase": "result", **base,
                         "request_id": None, "outcome": f"error:{type(exc).__name__}",
                         "message": str(exc)})
            raise
        self._write({"time": self._now().isoformat(), "phase": "result", **base,
                     "request_id": outcome.request_id, "outcome": "ok", **outcome.detail})


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Every entry of a journal (skipping a torn last line after a crash)."""
    entries: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        return entries
    except OSError as exc:
        raise UsageError(f"cannot read the journal: {exc.strerror}", where=str(path),
                         hint="Pass --journal PATH to a readable file") from exc
    return entries
