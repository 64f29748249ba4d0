"""Read-only: where each store stands in the pipeline (`ksdelete status`)."""

from __future__ import annotations

from pathlib import Path

from ksdelete import discover, planner
from ksdelete.errors import StoreNotFoundError
from ksdelete.gateway import Gateway
from ksdelete.journal import Journal
from ksdelete.models import (
    ConnectionState,
    PlanOptions,
    Snapshot,
    Status,
    StoreResult,
    StoreType,
)
from ksdelete.reporting import Phase, PhaseState, Reporter, fmt_time


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


def status(gateway: Gateway, ref: str, reporter: Reporter, *, journal: Path | None,
           workers: int = 8) -> StoreResult:
    result = StoreResult(ref=ref)
    reporter.store(ref)
    reporter.phase(Phase.DISCOVER, PhaseState.RUNNING, ref)
    try:
        store, matched_by = discover.find_store(gateway, ref)
    except StoreNotFoundError as exc:
        deleted_at = Journal(journal, region=gateway.region, read_only=True).deleted_at(ref)
        if deleted_at:
            result.status, result.phase = Status.DELETED, "deleted"
            reporter.phase(Phase.DISCOVER, PhaseState.DONE,
                           f"deleted at {deleted_at} (per the journal)")
        else:
            result.status, result.phase = Status.MISSING, "not-found"
            result.error = {"code": exc.code, "message": str(exc)}
            reporter.phase(Phase.DISCOVER, PhaseState.FAILED, exc.what)
        return result
    result.store, result.matched_by = store, matched_by
    snap = discover.snapshot(
        gateway, store, matched_by=matched_by, workers=workers,
        on_progress=lambda done, total, _: reporter.progress(Phase.DISCOVER, done, total),
    )
    result.keys = snap.keys
    # The plan of what is left (default options) doubles as the per-key table.
    result.plan = planner.plan(snap, PlanOptions(), gateway.server_now())
    reporter.plan(snap, result.plan)
    result.status, result.phase, warnings = phase_of(snap)
    result.warnings.extend(warnings)
    if result.status is Status.PENDING and snap.keys and all(k.pending for k in snap.keys):
        result.resume_after = max((k.deletion_date for k in snap.keys if k.deletion_date),
                                  default=None)
    reporter.phase(Phase.DISCOVER, PhaseState.DONE, result.phase)
    for warning in warnings:
        reporter.note(warning, level="warning")
    return result
