"""The JSON result document (stdout, exactly one object per invocation) and exit-code folding."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ksdelete import __version__, leftovers
from ksdelete.errors import ExitStatus
from ksdelete.models import Identity, Key, Status, StoreResult
from ksdelete.view import StoreSummary, store_summary, store_view

# 2: `phase` is an object; ksdelete_version, run_id and plan_id at the top level.
SCHEMA_VERSION = 2

_EXIT: dict[Status, ExitStatus] = {
    Status.DELETED: ExitStatus.OK,
    Status.PLANNED: ExitStatus.OK,
    Status.CANCELLED: ExitStatus.OK,
    Status.PENDING: ExitStatus.PENDING,
    Status.REFUSED: ExitStatus.REFUSED,
    Status.ERROR: ExitStatus.ERROR,
    Status.INTERRUPTED: ExitStatus.INTERRUPTED,
    Status.TERMINATED: ExitStatus.TERMINATED,
    Status.SKIPPED: ExitStatus.REFUSED,
}

# Most severe first: the exit code of a run over several stores is the most severe one.
SEVERITY = (ExitStatus.TERMINATED, ExitStatus.INTERRUPTED, ExitStatus.ERROR, ExitStatus.REFUSED,
            ExitStatus.USAGE, ExitStatus.PENDING, ExitStatus.OK)


def exit_status(result: StoreResult, *, missing_ok: bool = False) -> ExitStatus:
    if result.status is Status.MISSING:
        return ExitStatus.OK if missing_ok else ExitStatus.ERROR
    return _EXIT[result.status]


def most_severe(codes: Sequence[ExitStatus]) -> ExitStatus:
    for code in SEVERITY:
        if code in codes:
            return code
    return ExitStatus.OK


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def key_json(key: Key) -> dict[str, Any]:
    return {
        "id": key.id,
        "arn": key.arn,
        "state": key.state,
        "deletion_date": _iso(key.deletion_date),
        "aliases": list(key.aliases),
        "external_key_id": key.external_key_id,
        "creation_date": _iso(key.creation_date),
        # What the preflight gates saw (null: not read, e.g. the key is already pending).
        "tags": dict(key.tags) if key.tags is not None else None,
        "grants": [{"grant_id": g.grant_id, "grantee": g.grantee, "retiring": g.retiring,
                    "operations": list(g.operations), "name": g.name,
                    "aws_service": g.service} for g in key.grants]
        if key.grants is not None else None,
        "last_usage": None if key.usage is None else {
            "last_used": _iso(key.usage.last_used), "operation": key.usage.operation,
            "cloudtrail_event_id": key.usage.event_id,
            "tracking_start": _iso(key.usage.tracking_start), "error": key.usage.error},
    }


def phase_json(summary: StoreSummary) -> dict[str, Any] | None:
    """Where the store stands, for a log pipeline: a name (keys-not-scheduled, keys-pending,
    ready-to-disconnect, disconnecting, ready-to-delete, deleted, membership-unknown, refused,
    not-found), the key counts and dates it rests on, and the text the summary shows."""
    text = summary.phase
    if not text:
        return None
    name = text.split(" ", 1)[0]
    phase: dict[str, Any] = {
        "name": name,
        "keys_total": summary.keys_total,
        "keys_pending": summary.keys_pending,
        "keys_not_scheduled": summary.keys_not_scheduled,
        "earliest_deletion": _iso(summary.earliest_deletion),
        "latest_deletion": _iso(summary.latest_deletion),
        "reason": None,
        "text": text,
    }
    if name == "refused" and "(" in text:
        phase["reason"] = text[text.index("(") + 1:].rstrip(")")
    return phase


def store_json(result: StoreResult, identity: Identity | None = None) -> dict[str, Any]:
    """One store's object; `identity`: the account and Region it was looked for in (its scope;
    null when no credentials answered)."""
    store = store_view(result.store) if result.store else None
    plan = result.plan
    return {
        "ref": result.ref,
        "matched_by": result.matched_by,
        "account": identity.account if identity else None,
        "region": identity.region if identity else None,
        "id": store.id if store else None,
        "name": store.name if store else None,
        "type": store.type if store else None,
        "connection_state": store.connection_state if store else None,
        "connection_error_code": store.connection_error_code if store else None,
        "status": result.status.value,
        "phase": phase_json(store_summary(result)),
        "keys": [key_json(k) for k in result.keys],
        "undescribable": [
            {"id": k.id, "arn": k.arn, "error_code": k.error_code, "message": k.message}
            for k in result.undescribable
        ],
        "plan": [
            {"step": s.kind.value, "keys": len(s.key_ids), "detail": s.detail}
            for s in (plan.steps if plan else ())
        ],
        "actions": [
            {"operation": a.operation, "key_id": a.key_id, "outcome": a.outcome,
             "request_id": a.request_id, "time": _iso(a.time)}
            for a in result.actions
        ],
        "gates": [{"gate": v.gate, "verdict": v.verdict, "detail": v.detail}
                  for v in (plan.verdicts if plan else ())],
        "earliest_gone": _iso(plan.earliest_gone) if plan else None,
        "resume_after": _iso(result.resume_after),
        "external_key_ids": list(plan.external_key_ids) if plan else [],
        "warnings": list(result.warnings),
        "waivers": list(result.waivers),
        "key_outcomes": result.key_outcomes,
        # `cancel`: the run that held the store's lock and was asked to stop; null if none.
        "run_in_progress": result.run_in_progress,
        # What AWS leaves behind (CloudHSM material, external keys): after a deletion and
        # from `ksdelete report`; null otherwise.
        "leftovers": leftovers.as_json(result.leftovers) if result.leftovers else None,
        "error": result.error,
    }


def document(command: str, results: Sequence[StoreResult], exit_code: int, *,
             dry_run: bool = False, error: dict[str, Any] | None = None,
             identity: Identity | None = None, plan_id: str | None = None,
             run_id: str | None = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "ksdelete_version": __version__,
        "command": command,
        "run_id": run_id,
        "dry_run": dry_run,
        "exit_code": exit_code,
        "account": identity.account if identity else None,
        "region": identity.region if identity else None,
        "caller_arn": identity.caller_arn if identity else None,
        "plan_id": plan_id,
        "stores": [store_json(r, identity) for r in results],
        "error": error,
    }
