"""The watch's reading of CloudTrail for a run: which keys, how far back, how long, and what
it remembers between reads (in this process, and in the positions file beside the membership
cache). The reading itself is `watch.Sweep` (pure); this module gives it the pages
(LookupEvents through the gateway), the keys' bounds and what earlier reads left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from ksdelete import watch
from ksdelete.cache import WatchFile
from ksdelete.gateway import Gateway
from ksdelete.journal import Journal, ScheduledKey
from ksdelete.models import Key, Watch

# The watch's default budget for one reading: a chain not read to its end within it leaves
# the keys it did not cover blind. 240 LookupEvents calls (2 a second, 50 events each) read
# about 12,000 events, what a normal account logs of these event names in hours.
WATCH_BUDGET = 120.0

Note = Callable[[str], None]


class Watcher:
    def __init__(self, gateway: Gateway, journal: Journal, *, own_caller: str,
                 budget: float = WATCH_BUDGET, store: WatchFile | None = None,
                 note: Note = lambda text: None, log_group: str | None = None) -> None:
        self.gw = gateway
        self.log_group = log_group  # --watch-log-group: FilterLogEvents instead of LookupEvents
        self.journal = journal
        self.own_caller = own_caller
        self.budget = budget
        self.store = store
        self.note = note
        self.positions: dict[str, dict[str, datetime]] = {}
        self.anchors: dict[str, tuple[datetime, datetime]] = {}
        if store is not None:
            self.positions, self.anchors = store.load()
        self.seen: dict[str, Watch] = {}  # key ARN -> the latest reading
        self.scheduled: dict[str, tuple[datetime, int]] = {}  # this run: ARN -> (DD, days)
        self.calls = 0
        self._sweep: watch.Sweep | None = None
        self._deadline = 0.0
        self._deletion: dict[str, datetime] = {}  # key ARN -> its DeletionDate when read
        self._journalled: dict[str, dict[str, ScheduledKey]] = {}  # per store, per reading

    # ---- reading ---------------------------------------------------------------------------

    def read(self, keys: Iterable[Key]) -> None:
        """A fresh reading for these keys (pending deletion, or in a soak). It stops after
        the first round of pages that shows an attempt, so that the caller can act on it at
        once; `finish` reads the rest."""
        now = self.gw.server_now()
        self._journalled = {}
        targets = [self._target(k, now) for k in keys]
        if not targets:
            return
        sweep = watch.Sweep(targets, now, own_caller=self.own_caller, positions=self.positions,
                            log_group=self.log_group is not None)
        self._sweep = sweep
        self._deadline = time.monotonic() + self.budget
        self._run(sweep, first_round_only=True)

    def finish(self) -> bool:
        """Read on where the last reading stopped (within its budget): True if it did."""
        sweep = self._sweep
        if sweep is None or sweep.finished:
            return False
        self._run(sweep, first_round_only=False)
        return True

    def _run(self, sweep: watch.Sweep, *, first_round_only: bool) -> None:
        before = sweep.calls
        sweep.read(self._fetch, deadline=self._deadline, first_round_only=first_round_only)
        self.calls += sweep.calls - before
        self.seen.update(sweep.watches())
        if sweep.finished:
            self._remember(sweep)
            self.note(f"CloudTrail read for {len(sweep.keys)} key(s): {sweep.summary()}")

    def _fetch(self, name: str, start: datetime, end: datetime, token: str | None
               ) -> tuple[list[dict[str, Any]], str | None]:
        if name == watch.LOG_CHAIN and self.log_group is not None:
            return self.gw.filter_log_events(self.log_group, watch.LOG_PATTERN, start, end,
                                             token)
        return self.gw.lookup_page(("EventName", name), start, end, token)

    def _remember(self, sweep: watch.Sweep) -> None:
        self.positions = sweep.new_positions()
        for key in sweep.keys:
            since = sweep.since(key)
            deletion = self._deletion.get(key.arn)
            if key.anchor == watch.SCHEDULED and since is not None and deletion is not None:
                self.anchors[key.arn] = (since, deletion)
        # Keys gone from Event history's reach are of no use to remember.
        floor = sweep.now - watch.RETENTION
        self.positions = {name: {arn: t for arn, t in keys.items() if t > floor}
                          for name, keys in self.positions.items()}
        self.anchors = {arn: v for arn, v in self.anchors.items() if v[1] > floor}
        if self.store is not None:
            self.store.save(self.positions, self.anchors)

    # ---- what a key needs ------------------------------------------------------------------

    def _target(self, key: Key, now: datetime) -> watch.Watched:
        if not key.pending:  # a soak: since its DisableKey (the mark), at most 90 days back
            began = key.marks.disabled_at if key.marks else None
            bound = max(now - watch.RETENTION, (began or now - watch.RETENTION)
                        - watch.ALLOWANCE)
            return watch.Watched(key.arn, watch.DISABLED, bound=bound,
                                 scheduled=began if began and began <= now else None)
        if key.deletion_date is not None:
            self._deletion[key.arn] = key.deletion_date
        scheduled = self._scheduled_at(key, now)
        bound = watch.scheduled_bound(key.deletion_date, now)
        if scheduled is not None:  # (its event may be stamped a little earlier)
            bound = max(bound, scheduled - watch.ALLOWANCE)
        kept = self.anchors.get(key.arn)
        since = None
        if kept is not None and key.deletion_date is not None \
                and abs((kept[1] - key.deletion_date).total_seconds()) < 1:
            since = watch.remembered(kept[0], key.deletion_date)
        return watch.Watched(key.arn, watch.SCHEDULED, bound=bound, since=since,
                             scheduled=scheduled)

    def _scheduled_at(self, key: Key, now: datetime) -> datetime | None:
        """When ksdelete scheduled this key, if it did so for its current DeletionDate (this
        run, or the journal): that DeletionDate minus the window it asked for."""
        if key.deletion_date is None:
            return None
        known = self.scheduled.get(key.arn)
        if known is None:
            store = key.custom_key_store_id
            if store not in self._journalled:
                self._journalled[store] = self.journal.scheduled_keys(store)
            entry = self._journalled[store].get(key.id)
            if entry is not None and entry.deletion_date and entry.window_days:
                try:
                    deletion = datetime.fromisoformat(entry.deletion_date)
                except ValueError:
                    deletion = None
                if deletion is not None and deletion.tzinfo is not None:
                    known = (deletion, entry.window_days)
        if known is None or abs((known[0] - key.deletion_date).total_seconds()) >= 1:
            return None
        began = known[0] - timedelta(days=known[1])
        return began if began <= now + timedelta(minutes=5) else None

    def watch_of(self, key: Key) -> Watch | None:
        return self.seen.get(key.arn)
