"""The rollout's brake, shared by every account's thread of a fleet run: failures against
`rollout.failure_tolerance` (and the halt), the per-run caps that defer a target to the next
run, and the stop (Ctrl-C, SIGTERM) every waiting run sleeps on."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ksdelete.errors import RefusedError
from ksdelete.fleet.model import FleetSpec, TargetResult
from ksdelete.models import Plan, Snapshot, Status, StepKind, StoreResult
from ksdelete.run.base import Pending, done_text

# What counts against rollout.failure_tolerance (and fails a canary): a store the file names
# that does not exist (exit 1) too.
FAILED = (Status.ERROR, Status.REFUSED, Status.MISSING)
HALT_PREFIX = "stopped here, the fleet halted"  # a run in flight, at its next point of no return


def irreversible(plan: Plan, *, wait: bool) -> bool:
    """Whether a target's run may take an irreversible step now: its plan ends with the
    store's deletion and no key wait stands before it (or the run waits them out)."""
    if plan.step(StepKind.DELETE_STORE) is None and plan.step(StepKind.DISCONNECT_STORE) is None:
        return False
    return wait or (plan.step(StepKind.AWAIT_KEYS_DELETED) is None
                    and plan.step(StepKind.SCHEDULE_KEY_DELETION) is None)


class Brake:
    """The rollout's state, shared by every account's thread: failures against the
    tolerance, and what the per-run caps have left."""

    def __init__(self, spec: FleetSpec, *, wait: bool,
                 stop: threading.Event | None = None) -> None:
        self.spec = spec
        self.wait = wait
        self.stop = stop or threading.Event()  # set once the operator stops the fleet
        self._lock = threading.Lock()
        self.failures = 0
        self.reason: str | None = None
        self.keys_left = spec.guards.max_keys_scheduled_per_run
        self.irreversible_left = spec.guards.max_irreversible_per_run
        self.deferred: dict[str, str] = {}  # store ID -> why the caps deferred it
        self._irreversible: set[str] = set()  # stores that hold a place under that cap

    @property
    def halted(self) -> bool:
        return self.reason is not None

    def halt(self, reason: str) -> None:
        with self._lock:
            self.reason = self.reason or reason

    def confirm(self, snap: Snapshot, plan: Plan) -> bool:
        """The confirmation of one target's plan (an unattended yes, within the brake)."""
        if self.stop.is_set():  # Ctrl-C reached the main thread: no change starts after it
            raise KeyboardInterrupt()
        with self._lock:
            if self.reason is not None:
                raise RefusedError(f"not started: {self.reason}", where=snap.store.id,
                                   hint="Fix the failed targets, then run again")
            count = len(plan.to_schedule)
            why = None
            final = irreversible(plan, wait=self.wait)
            if self.keys_left is not None and count > self.keys_left:
                why = (f"deferred to the next run: scheduling {count} key(s) would pass "
                       f"guards.max_keys_scheduled_per_run ({self.keys_left} left this run); "
                       "nothing was changed")
            elif final and self.irreversible_left is not None and self.irreversible_left < 1:
                why = ("deferred to the next run: guards.max_irreversible_per_run is spent "
                       "for this run; nothing was changed")
            if why is not None:
                self.deferred[snap.store.id] = why
                raise Pending(None, why)
            if self.keys_left is not None:
                self.keys_left -= count
            if final and self.irreversible_left is not None:
                self.irreversible_left -= 1
                self._irreversible.add(snap.store.id)
        return True

    def check(self, result: StoreResult, step: StepKind | None = None) -> None:
        """Before every point of no return of every store (RunOptions.brake): once the
        operator stopped the fleet, the run stops there (interrupted); once the rollout
        halted, it is refused there, saying what it had already done. A disconnect or a
        delete the confirmation did not count (the keys went while the run looked) takes
        its store's place under max_irreversible_per_run here, or is deferred."""
        if self.stop.is_set():
            raise KeyboardInterrupt()
        if self.reason is not None:
            done = done_text(result)
            raise RefusedError(f"{HALT_PREFIX}: {self.reason}",
                               where=result.store.id if result.store else "",
                               hint="Fix the failed targets, then run again",
                               details=(done,) if done else ())
        store = result.store.id if result.store is not None else ""
        if step in (StepKind.DISCONNECT_STORE, StepKind.DELETE_STORE):
            with self._lock:
                if self.irreversible_left is None or store in self._irreversible:
                    return
                if self.irreversible_left < 1:
                    why = ("deferred to the next run: guards.max_irreversible_per_run is "
                           "spent for this run; nothing further was changed")
                    self.deferred[store] = why
                    raise Pending(None, why)
                self.irreversible_left -= 1
                self._irreversible.add(store)

    def count(self, results: Sequence[TargetResult]) -> None:
        """Failures of finished targets; past the tolerance, the run halts."""
        with self._lock:
            for t in results:
                if t.status in FAILED and not skipped(t):
                    self.failures += 1
            tolerance = self.spec.rollout.failure_tolerance
            if self.failures > tolerance and self.reason is None:
                self.reason = (f"the fleet halted after {self.failures} failed target(s) "
                               f"(rollout.failure_tolerance {tolerance})")


def skipped(t: TargetResult) -> bool:
    error = t.error or (t.result.error if t.result else None) or {}
    return t.status is Status.SKIPPED or str(error.get("message", "")).startswith(
        ("not started", HALT_PREFIX))


class Interruptible:
    """Every wait of every account's run sleeps here: once the operator stops the fleet
    (Ctrl-C, SIGTERM in the main thread), a waiting run in another thread stops too."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise KeyboardInterrupt()
