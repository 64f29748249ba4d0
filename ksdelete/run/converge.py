"""A store's run from survey to the end: decide (survey and gates), confirm (the operator's
yes, journalled), and converge: apply the plan step by step, re-planning from a fresh
snapshot before every point of no return and following that plan instead."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from ksdelete import leftovers
from ksdelete.errors import KsdeleteError, RefusedError
from ksdelete.lock import describe_request
from ksdelete.models import POINTS_OF_NO_RETURN, Plan, Snapshot, Status, StepKind
from ksdelete.reporting import STEP_PHASE, Phase, PhaseState
from ksdelete.run.act import gate_options, key_record, replan
from ksdelete.run.base import MAX_REPLANS, Rescan
from ksdelete.run.remedy import stop
from ksdelete.run.steps import HANDLERS
from ksdelete.run.store import StoreRun
from ksdelete.run.survey import leftovers_of, snapshot, survey


def decide(run: StoreRun) -> tuple[Snapshot, Plan]:
    """Survey the store and decide its gates; a refusal stops here (after its remedy)."""
    snap, plan = survey(run)
    if plan.refusal:
        run.reporter.phase(Phase.PLAN, PhaseState.FAILED, plan.refusal.reason)
        stop(run, plan, snap)
    run.reporter.phase(Phase.PLAN, PhaseState.DONE, f"{len(plan.steps)} step(s)")
    if run.options.dry_run:
        run.result.status = Status.PLANNED
        run.result.resume_after = plan.earliest_gone
    return snap, plan


def ask(run: StoreRun, snap: Snapshot, plan: Plan) -> None:
    """The operator's yes. A cancel requested since the survey stops an unattended run;
    a person who confirms at the prompt lifts it (journalled with the ConfirmPlan)."""
    guard = run.svc.guard
    request = guard.request(run.result.store.id if run.result.store else None)
    if request is not None and not run.options.interactive:
        guard.stop_if_cancel_requested(run.result)  # asked since the survey
    if request is not None:
        run.reporter.note(f"a cancel of this store was {describe_request(request)}; "
                          "confirming lifts it and goes on", level="warning")
    if not run.svc.confirm(snap, plan):
        raise RefusedError("not confirmed; nothing was changed", where=snap.store.id)
    run.lifted = request


def confirmed(run: StoreRun, snap: Snapshot, plan: Plan) -> None:
    """Journal the confirmation (ConfirmPlan), and remember what it covered."""
    store_id, options = snap.store.id, run.options
    request, run.lifted = run.lifted, None
    run.svc.guard.lift(store_id, request)  # a newer request stays, and stops this run
    run.journal.decision("ConfirmPlan", store_id=store_id, store_name=snap.store.name,
                         store_type=snap.store.type.value,
                         cluster_id=snap.store.cloudhsm_cluster_id,
                         key_ids=sorted(snap.key_ids()),
                         matched_by=snap.matched_by,
                         keys=[key_record(k) for k in snap.keys],
                         plan_id=options.plan_id,
                         waivers=[f"{v.gate}: {v.detail}" for v in plan.verdicts
                                  if v.verdict == "waived"],
                         gates=gate_options(options.plan),
                         **({"lifted_cancel_request": request} if request else {}))
    # What the person confirmed: these keys, and these cancelled keys again (listed
    # at the prompt); a key cancelled after the prompt is refused at the next re-plan.
    run.context = replace(run.context, planned=snap.key_ids(),
                          reconfirmed=frozenset(plan.reconfirm)
                          if options.interactive else None)


def go(run: StoreRun, snap: Snapshot, plan: Plan) -> None:
    """After the confirmation: converge, as far as AWS allows now."""
    run.deadline = run.clock() + (run.options.max_wait if run.options.wait else 0)
    converge(run, snap, plan)


def converge(run: StoreRun, snap: Snapshot, plan: Plan) -> None:
    """Apply the plan step by step; before each point of no return, re-plan from a fresh
    snapshot and follow that plan instead (every gate is evaluated again)."""
    result, reporter = run.result, run.reporter
    steps = list(plan.steps)
    replans = 0
    replanned = False  # steps come from a plan made on a snapshot taken just now
    uncached = False  # ... and that snapshot described every key (no membership cache)
    while steps:
        step = steps[0]
        # Before a disconnect, every key is described: a wrong cache entry must not hide
        # a live key of the store that the disconnect would make Unavailable.
        whole = step.kind is StepKind.DISCONNECT_STORE
        if step.kind in POINTS_OF_NO_RETURN and not (replanned and (uncached or not whole)):
            run.svc.guard.stop_if_cancel_requested(result)
            replans += 1
            if replans > MAX_REPLANS:
                raise KsdeleteError("the store keeps changing under this run",
                                    where=snap.store.id,
                                    hint="Check who else is working on it, then run again")
            with run.svc.membership.set_aside() if whole else contextlib.nullcontext():
                snap = snapshot(run, snap.store.id, snap.matched_by)
            fresh = replan(run, snap)
            if fresh.refusal:
                reporter.phase(STEP_PHASE[step.kind], PhaseState.FAILED, fresh.refusal.reason)
                stop(run, fresh, snap)
            steps, replanned = list(fresh.steps), True  # AWS may have moved on: follow it
            uncached = whole
            continue
        replanned = False
        phase = STEP_PHASE[step.kind]
        reporter.phase(phase, PhaseState.RUNNING, step.detail)
        try:
            detail = HANDLERS[step.kind](run, step, snap)
        except Rescan as rescan:
            reporter.note(str(rescan), level="warning")
            continue  # not re-planned: the point of no return takes a fresh snapshot
        reporter.phase(phase, PhaseState.DONE, detail)
        steps.pop(0)
    result.status = Status.DELETED
    result.keys = ()
    result.leftovers = leftovers_of(run, snap.store.id, store=snap.store)
    for line in leftovers.lines(result.leftovers)[1:]:
        alarming = "ORPHANED" in line or "not confirmed" in line
        reporter.note(line.strip(), level="warning" if alarming else "info")
