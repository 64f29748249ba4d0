"""Read-only: where each store stands in the pipeline (`ksdelete status`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksdelete import planner
from ksdelete.models import (
    ConnectionState,
    PlanOptions,
    Snapshot,
    Status,
    StoreResult,
    StoreType,
)
from ksdelete.reporting import fmt_time

if TYPE_CHECKING:  # executor imports phase_of from here
    from ksdelete.executor import Executor


def phase_of(snap: Snapshot) -> tuple[Status, str, list[str]]:
    """(status, phase text, warnings) for a snapshot: a pure function."""
    store = snap.store
    keys = snap.keys
    warnings: list[str] = []
    if snap.undescribable:
        return Status.REFUSED, f"membership-unknown ({len(snap.undescribable)} key(s) cannot " \
            "be described)", warnings
    pending = [k for k in keys if k.pending]
    if keys and store.type is StoreType.CLOUDHSM and \
            store.connection_state is not ConnectionState.CONNECTED:
        warnings.append(f"the CloudHSM key store is {store.connection_state} while it still "
                        "holds keys: their HSM key material will be orphaned at deletion")
    if keys and len(pending) < len(keys):
        return Status.PENDING, f"keys-not-scheduled {len(keys) - len(pending)}/{len(keys)}", \
            warnings
    if keys:
        dates = [k.deletion_date for k in pending if k.deletion_date]
        earliest = fmt_time(min(dates)) if dates else "-"
        return Status.PENDING, f"keys-pending {len(pending)}/{len(keys)}, earliest deletion " \
            f"{earliest}", warnings
    state = store.connection_state
    if state is ConnectionState.DISCONNECTING:
        return Status.PENDING, "disconnecting", warnings
    if state is ConnectionState.DISCONNECTED:
        return Status.PENDING, "ready-to-delete", warnings
    return Status.PENDING, "ready-to-disconnect", warnings


def status(executor: Executor, ref: str) -> StoreResult:
    """Where one store stands; reads only. Discovery, error mapping and exit codes are the
    delete pipeline's own (Executor.guarded), so both commands report a store the same way."""

    def body(ref: str, result: StoreResult) -> None:
        snap = executor.discover(ref, result)
        # The plan of what is left (default options) doubles as the per-key table.
        result.plan = planner.plan(snap, PlanOptions(), executor.gw.server_now())
        executor.reporter.plan(snap, result.plan)
        result.status, result.phase, warnings = phase_of(snap)
        result.warnings.extend(warnings)
        if result.status is Status.PENDING and snap.keys and all(k.pending for k in snap.keys):
            result.resume_after = max((k.deletion_date for k in snap.keys if k.deletion_date),
                                      default=None)
        executor.reporter.note(f"phase: {result.phase}")
        for warning in warnings:
            executor.reporter.note(warning, level="warning")

    return executor.guarded(ref, body, gone_is_done=True)
