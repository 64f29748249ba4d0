"""The store's lock (one run per store at a time on this machine) and the cancel request
beside it: the brake, read again right before every point of no return."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from ksdelete.errors import KsdeleteError, RefusedError, UsageError
from ksdelete.lock import CancelRequest, describe_request
from ksdelete.models import StepKind, StoreResult
from ksdelete.run.base import TRANSITION_TIMEOUT, RunOptions, done_text
from ksdelete.workspace import Workspace


class Guard:
    """The locks this invocation holds, by store ID (a run over several stores holds all
    their locks), each with the cancel request file beside it."""

    def __init__(self, workspace: Workspace, options: RunOptions,
                 warn: Callable[[str], None]) -> None:
        self.workspace = workspace
        self.journal = workspace.journal
        self.options = options
        self.warn = warn
        self.brakes: dict[str, CancelRequest] = {}

    @contextlib.contextmanager
    def locked(self, store_id: str) -> Iterator[None]:
        """One run per store at a time on this machine (dry runs need no lock)."""
        if self.options.dry_run or self.workspace.lock_dir is None:
            yield
            return
        lock = self.workspace.lock(store_id)
        assert lock is not None
        timeout = self.options.max_wait if self.options.wait else min(
            TRANSITION_TIMEOUT, self.options.max_wait)
        try:
            lock.acquire(timeout, on_wait=self.warn)
        except UsageError as exc:  # this store only: other stores may already have changed
            raise KsdeleteError(exc.what, where=exc.where, hint=exc.hint) from exc
        self.journal.reload()  # the run that held the lock may have written to it
        brake = self.request_file(store_id)
        if brake is not None:
            self.brakes[store_id] = brake
        try:
            yield
        finally:
            self.brakes.pop(store_id, None)
            lock.release()

    def request_file(self, store_id: str) -> CancelRequest | None:
        """Where a `ksdelete cancel` of the store leaves its request (beside the lock)."""
        return self.workspace.cancel_request(store_id)

    def request(self, store_id: str | None) -> dict[str, str] | None:
        """A `ksdelete cancel` of the store this run holds the lock of, if one was requested."""
        brake = self.brakes.get(store_id) if store_id is not None else None
        return brake.read() if brake is not None else None

    def lift(self, store_id: str, request: dict[str, str] | None) -> None:
        """A person confirmed at the prompt: the request they saw is lifted (a newer one
        stays, and stops this run)."""
        brake = self.brakes.get(store_id)
        if request is not None and brake is not None:
            brake.lift(request)

    def stop_if_cancel_requested(self, result: StoreResult,
                                 step: StepKind | None = None) -> None:
        """The brake: called right before every point of no return (each key scheduled or
        disabled, a disconnect, a delete). A cancel request beside the store's lock stops
        the run there, refused, saying what it had already done."""
        if self.options.brake is not None:
            self.options.brake(result, step)
        request = self.request(result.store.id if result.store is not None else None)
        if request is not None:
            done = done_text(result)
            raise RefusedError(
                "a cancel of this store was requested: this run stops here",
                where=result.store.id if result.store else "",
                hint="To go on, a person must confirm again (`ksdelete STORE` at a terminal, "
                     "without --yes)",
                details=(f"the cancel was {describe_request(request)}", *([done] if done else ()),
                         "`ksdelete cancel` undoes what was done"))
