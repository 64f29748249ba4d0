"""Services, shared by every store of an invocation, and StoreRun: one store's run.

A StoreRun holds everything that belongs to one store's run (its target, result, the gates'
context, its deadline, the keys it saw gone, the last uses it read, its clocks); the
Executor holds none of it, so two stores' runs never share state by accident.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ksdelete import discover
from ksdelete.gateway import Gateway
from ksdelete.journal import Journal
from ksdelete.models import Context, Identity, Key, KeyStore, StoreResult, Usage
from ksdelete.reporting import Reporter, StoreReporter
from ksdelete.retry import RetryObserver
from ksdelete.run.base import Confirm, RunOptions, Target
from ksdelete.run.guard import Guard
from ksdelete.watcher import Watcher
from ksdelete.workspace import Workspace


@dataclass
class Services:
    """What every store's run works with: the gateway, journal, reporter, options, identity,
    the brake, the watch and the key membership cache; and what the invocation learns once
    for all its stores (read by later stores, never decided from alone)."""

    workspace: Workspace  # the scope's gateway, journal, membership cache, locks
    reporters: Reporter  # every store's events, each with its target
    options: RunOptions
    confirm: Confirm
    guard: Guard
    watcher: Watcher
    # The stores of this invocation (set by the CLI): a --wait run watches the pending keys
    # of every one of them while it waits on one, and the keys it saw pending in each.
    invocation: tuple[str, ...] = ()
    elsewhere: dict[str, tuple[KeyStore, list[Key]]] = field(default_factory=dict)
    # CloudHSM stores with no key left: what CloudTrail says of their keys' material.
    orphans: dict[str, tuple[tuple[str, ...], str | None]] = field(default_factory=dict)
    # When the watch last read CloudTrail (one reading covers every store's pending keys).
    last_watch: float = 0.0
    clock: Callable[[], float] = time.monotonic
    # AWS's retries, told to the store being run now (as the gateway's own are).
    on_retry: RetryObserver = lambda call, attempt, delay, reason: None

    @property
    def gw(self) -> Gateway:
        return self.workspace.gateway

    @property
    def journal(self) -> Journal:
        return self.workspace.journal

    @property
    def identity(self) -> Identity:
        return self.workspace.identity

    @property
    def membership(self) -> discover.MembershipCache:
        return self.workspace.membership

    def start(self, target: Target, result: StoreResult,
              reporter: StoreReporter | None = None) -> StoreRun:
        """A new run of one store (its events named by its STORE argument, unless it
        reports through `reporter`), on this invocation's clocks."""
        return StoreRun(self, target, result,
                        reporter or self.reporters.for_store(target.ref),
                        now=self.gw.server_now, clock=self.clock)

    def where(self) -> str:
        return f"account {self.identity.account}, {self.identity.region}"


@dataclass
class StoreRun:
    """One STORE argument's run: what it knows and has done."""

    svc: Services
    target: Target
    result: StoreResult
    reporter: StoreReporter  # the store's own: its events name it
    now: Callable[[], datetime]  # AWS's clock (the Date of its latest response)
    clock: Callable[[], float] = time.monotonic  # for deadlines and reuse windows
    context: Context = field(default_factory=Context)
    deadline: float = 0.0  # --wait: when to stop waiting (clock)
    gone: set[str] = field(default_factory=set)  # keys seen NotFound: they never come back
    usage: dict[str, tuple[float, Usage]] = field(default_factory=dict)  # GetKeyLastUsage
    lifted: dict[str, str] | None = None  # the cancel request a prompt is lifting

    @property
    def options(self) -> RunOptions:
        return self.svc.options.for_store(self.target.ref)

    @property
    def gw(self) -> Gateway:
        return self.svc.gw

    @property
    def journal(self) -> Journal:
        return self.svc.journal

    @property
    def store_id(self) -> str:
        store = self.result.store or self.target.store
        assert store is not None
        return store.id
