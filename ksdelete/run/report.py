"""The journal's Report lines: where a changing run left each store, so that an unattended
run (cron mails every run's output) need not say again what the last one said; and a store
that is gone, told apart from one that never was."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ksdelete.errors import JournalError, StoreNotFoundError
from ksdelete.models import (
    STORE_ID,
    Outcome,
    Plan,
    Snapshot,
    Status,
)
from ksdelete.phase import PhaseName, StorePhase, phase_name
from ksdelete.planner import phase_of
from ksdelete.reporting import Phase, PhaseState
from ksdelete.run.store import StoreRun


def last_report(run: StoreRun, store_id: str) -> dict[str, Any] | None:
    """What the last changing run reported for this store, when this run is unattended
    and changes AWS (a person at the prompt, a dry run and `status` see everything)."""
    if run.options.dry_run or run.options.interactive:
        return None
    return run.journal.last_report(store_id)


def repeating(run: StoreRun, store_id: str, snap: Snapshot, plan: Plan) -> Plan:
    """The plan as this run shows it: warnings the last run already gave in the same phase
    are not repeated (cron mails every run's output); `result.repeated` marks such a run
    until it changes something. A key the last run did not see (one that appeared already
    pending deletion leaves the phase's name as it was) is named, and a waiver that came
    into force since is not "said before": neither run is a repeat."""
    result = run.result
    last = last_report(run, store_id)
    phase = phase_of(snap, plan.refusal)[1]
    if last is None or phase_name(str(last.get("store_phase") or "")) != phase_name(phase):
        return plan
    seen = last.get("key_ids")
    if not isinstance(seen, list):  # a Report line written before key IDs were kept
        return plan
    said = set(last.get("warnings") or ())
    shown = tuple(w for w in plan.warnings if w not in said)
    new = sorted(snap.key_ids() - set(seen))
    if new:
        note = (f"{len(new)} key(s) in the store that the last run did not see: "
                f"{', '.join(new[:20])}" + (f" and {len(new) - 20} more" if len(new) > 20
                                            else ""))
        result.warnings.append(note)
        return replace(plan, warnings=(*shown, note))
    waived = {f"{v.gate}: {v.detail}" for v in plan.verdicts if v.verdict == "waived"}
    # A waiver that came into force since the last Report is listed in the summary.
    result.repeated = waived <= set(last.get("waivers") or ())
    return replace(plan, warnings=shown)


def report(run: StoreRun) -> None:
    """Journal where a changing run left the store (see Journal.report): when it changed
    something, or what it would report differs from the last Report line (a warning that
    went away must be said again when it comes back; a key that appeared is said once)."""
    result = run.result
    store_id = result.store.id if result.store else None
    if store_id is None or run.options.dry_run or result.phase is None:
        return
    result.repeated = result.repeated and not any(
        a.outcome == Outcome.OK for a in result.actions) and result.status is Status.PENDING
    last = last_report(run, store_id)
    if result.status is Status.DELETED:
        result.repeated = last is not None and last.get("store_phase") == PhaseName.DELETED
    plan_warnings = list(result.plan.warnings) if result.plan else []
    warnings = sorted(set(plan_warnings + result.warnings))
    key_ids = sorted(k.id for k in result.keys)
    waivers = sorted(set(result.waivers))
    if last is not None and phase_name(str(last.get("store_phase") or "")) \
            == phase_name(result.phase) and warnings == last.get("warnings") \
            and set(key_ids) <= set(last.get("key_ids") or ()) \
            and waivers == last.get("waivers"):
        # Nothing new to remember (keys AWS deleted meanwhile need no new line; a store
        # refused for weeks adds no line a day).
        return
    try:
        run.journal.report(store_id=store_id, store_name=result.store.name
                           if result.store else None, phase=result.phase,
                           warnings=warnings, key_ids=key_ids, waivers=waivers)
    except JournalError as exc:  # the run's outcome stands; the next run says it again
        run.reporter.note(str(exc), level="warning")


def not_found(run: StoreRun, exc: StoreNotFoundError, *, gone_is_done: bool) -> None:
    """The store does not exist: deleted, with evidence (the journal saw it deleted, or a
    saved plan meant it to go), or missing."""
    target, result, reporter = run.target, run.result, run.reporter
    store_id = result.store.id if result.store else (
        target.ref if STORE_ID.match(target.ref)
        else target.pin.store_id if target.pin else None)
    deleted_at = run.journal.deleted_at(store_id) if store_id else None
    approved = next((a for a in run.options.approved if a.id == store_id), None)
    if store_id and gone_is_done and not deleted_at and approved:
        # A store of the saved plan that no longer exists: the plan is the evidence that
        # it was meant to go (its name is never looked up again).
        result.status, result.phase = Status.DELETED, StorePhase.of(PhaseName.DELETED)
        note = f"{store_id} of the saved plan no longer exists: done"
        result.warnings.append(note)
        reporter.phase(Phase.DISCOVER, PhaseState.DONE, note)
        return
    if deleted_at and gone_is_done:
        # Already gone, with evidence: our own journal saw it deleted. Not an error.
        result.status, result.phase = Status.DELETED, StorePhase.of(PhaseName.DELETED)
        note = f"already deleted at {deleted_at} (per the journal)"
        if store_id != target.ref:
            note = f"{store_id} was {note}"
        result.warnings.append(note)
        last = last_report(run, store_id) if store_id else None
        if last is not None and last.get("store_phase") == PhaseName.DELETED:
            result.repeated = True  # said once is enough (cron mails every run's output)
        else:
            reporter.phase(Phase.DISCOVER, PhaseState.DONE, note)
        return
    result.status, result.phase = Status.MISSING, StorePhase.of(PhaseName.NOT_FOUND)
    reporter.phase(Phase.DISCOVER, PhaseState.FAILED, exc.what)
    if deleted_at:
        exc.what += f"; {store_id} was deleted at {deleted_at} (per the journal)"
    if run.options.missing_ok:
        result.warnings.append(f"{exc.what}; nothing to do (--missing-ok)")
    else:
        result.error = {"code": exc.code, "message": str(exc)}
        reporter.note(str(exc), level="error")
