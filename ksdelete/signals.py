"""Ctrl-C and SIGTERM stop a run cleanly, but never in the middle of a mutating AWS call.

A signal that arrives while a change is in flight (the call and its journal line) is held
until the change is recorded, then raised: the summary, the JSON and the journal always say
what AWS did. Signals are delivered to the main thread only; worker threads' calls finish on
their own while the main thread stops.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ksdelete.errors import Terminated

_state = {"depth": 0, "pending": 0}


def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state["depth"] > 0:
        _state["pending"] = signum  # raised when the change in flight is recorded
        return
    _raise(signum)


@contextmanager
def installed() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt / Terminated, except inside `held()`."""
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM (in the main thread) for the duration of one change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"]:
            signum, _state["pending"] = _state["pending"], 0
            _raise(signum)
