"""What every part of the planner shares: the window's bounds and the shape of a gate."""

from __future__ import annotations

from collections.abc import Callable

from ksdelete.models import Context, PlanOptions, Refusal, Snapshot, Verdict

MIN_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 30

Gate = Callable[[Snapshot, PlanOptions, Context], "Refusal | Verdict"]

