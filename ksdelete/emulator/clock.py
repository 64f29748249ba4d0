"""The emulator's clock: wall time scaled by ``time_scale`` plus explicit ``advance()`` jumps."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Emulated time. ``now = anchor_emulated + (wall - anchor_wall) * scale``.

    Changing the scale re-anchors, so emulated time never jumps when the scale changes.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._scale = float(time_scale)
        self._anchor_wall = time.time()
        self._anchor_emulated = self._anchor_wall

    @property
    def time_scale(self) -> float:
        return self._scale

    def epoch(self) -> float:
        """Emulated now as POSIX seconds."""
        with self._lock:
            return self._anchor_emulated + (time.time() - self._anchor_wall) * self._scale

    def now(self) -> datetime:
        """Emulated now as an aware UTC datetime."""
        return datetime.fromtimestamp(self.epoch(), tz=UTC)

    def advance(self, seconds: float) -> datetime:
        """Jump forward by ``seconds`` emulated seconds (negative values are refused)."""
        if seconds < 0:
            raise ValueError("the emulated clock only moves forward")
        with self._lock:
            self._anchor_emulated += seconds
        return self.now()

    def set_scale(self, time_scale: float) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        with self._lock:
            wall = time.time()
            self._anchor_emulated += (wall - self._anchor_wall) * self._scale
            self._anchor_wall = wall
            self._scale = float(time_scale)

    def reset(self) -> None:
        """Back to wall-clock time (keeps the scale)."""
        with self._lock:
            self._anchor_wall = time.time()
            self._anchor_emulated = self._anchor_wall
