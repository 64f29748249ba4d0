"""plan(snapshot, options, now, context) -> Plan: a pure function of what was observed.

Every rule that can refuse a run is a gate here: a small pure function of the snapshot, the
options and the context (the operator's guards and the memory of earlier decisions). The
dry run, `status` and `delete` read the same verdicts, and the executor re-plans from a fresh
snapshot before every point of no return (scheduling, disconnecting, deleting), so a refusal
can stop a run at any of them. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from ksdelete.models import (
    ConnectionState,
    Context,
    Identity,
    Key,
    Plan,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    Status,
    Step,
    StepKind,
    StoreType,
    Verdict,
)
from ksdelete.reporting import fmt_time

MIN_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 30

Gate = Callable[[Snapshot, PlanOptions, Context], "Refusal | Verdict"]


def _ids(ids: list[str] | tuple[str, ...], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


# ---- gates --------------------------------------------------------------------------------

def account_refusal(identity: Identity | None, allowed: frozenset[str]) -> Refusal | None:
    """--account-id: the credentials must be for one of these accounts. The CLI asks this
    right after GetCallerIdentity, before any other call; every plan asks it again."""
    if not allowed:
        return None
    account = identity.account if identity else "unknown"
    if account in allowed:
        return None
    return Refusal(
        RefusalReason.ACCOUNT_NOT_ALLOWED,
        f"the credentials are for account {account}, not {', '.join(sorted(allowed))} "
        "(--account-id); nothing was changed. Use credentials for the intended account",
    )


# Hosts of AWS's own KMS endpoints (public, FIPS, dual-stack, VPC endpoints, China).
AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def service_endpoint(url: str | None) -> str | None:
    """Which KMS a saved plan names: None for AWS's own endpoints (any host under AWS's
    domains), else the URL normalised (lower-case scheme and host, no default port, no
    trailing slash), so that two spellings of one endpoint compare equal."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    if host.endswith(AWS_DOMAINS):
        return None
    scheme = parts.scheme.lower()
    port = parts.port
    if port is None or (scheme, port) in (("https", 443), ("http", 80)):
        netloc = f"[{host}]" if ":" in host else host
    else:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def endpoint_refusal(planned: str | None, actual: str | None) -> Refusal | None:
    """`apply`: a saved plan acts only on the KMS it was made against. Anywhere else its
    stores are unknown (and would be reported deleted) or are someone else's. Asked before
    any AWS call."""
    planned, actual = service_endpoint(planned), service_endpoint(actual)
    if planned == actual:
        return None
    made = planned or "AWS's own KMS endpoint"
    now = actual or "AWS's own KMS endpoint"
    return Refusal(
        RefusalReason.OTHER_ENDPOINT,
        f"the plan was made against {made}, but this run would use {now}; nothing was "
        "changed. Check --endpoint-url, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_KMS",
    )


def account_allowed(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    refusal = account_refusal(snap.identity, ctx.allowed_accounts)
    if refusal:
        return refusal
    if not ctx.allowed_accounts:
        return Verdict("account_allowed", "n/a", "no --account-id given")
    return Verdict("account_allowed", "pass", snap.identity.account if snap.identity else "")


def name_pinned(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """A STORE given by name stays the store it was confirmed as: a new store that reuses
    the name (after the old one was deleted) is never acted on by name."""
    pin = ctx.pin
    if snap.matched_by != "name" or pin is None:
        return Verdict("name_pinned", "n/a")
    if pin.store_id == snap.store.id:
        return Verdict("name_pinned", "pass", f"{pin.name} is {pin.store_id}")
    return Refusal(
        RefusalReason.NAME_RETARGETED,
        f"the name {pin.name!r} now resolves to {snap.store.id}, but it was confirmed for "
        f"deletion as {pin.store_id} at {pin.time}: a different store may have taken the "
        f"name; nothing was changed. To act on {snap.store.id}, pass its ID",
    )


def membership_known(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """Every key in the account and Region was described, so store membership is proven."""
    bad = snap.undescribable
    if not bad:
        return Verdict("membership_known", "pass", f"{snap.scanned} key(s) scanned")
    failed = [k for k in bad if not k.access_denied]
    ids = tuple(k.id for k in bad)
    if failed:
        codes = ", ".join(sorted({k.error_code for k in failed}))
        return Refusal(
            RefusalReason.DESCRIBE_FAILED,
            f"{len(failed)} KMS key(s) could not be described because AWS failed ({codes}): "
            f"{_ids([k.id for k in failed])}; whether they belong to {snap.store.id} is "
            "unknown, so nothing was changed. Run again later",
            ids, error=True,
        )
    return Refusal(
        RefusalReason.UNKNOWN_MEMBERSHIP,
        f"{len(bad)} KMS key(s) in this account and Region could not be described "
        f"(AccessDenied): {_ids(list(ids))}; whether they belong to {snap.store.id} is "
        "unknown, so nothing was changed. Grant kms:DescribeKey on them (key policy) and "
        "run again",
        ids,
    )


def no_keys_appeared(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """Within a run: only the keys of the plan the operator confirmed are acted on."""
    if ctx.planned is None:
        return Verdict("no_keys_appeared", "n/a", "before the confirmation")
    new = [k.id for k in snap.keys if k.id not in ctx.planned]
    if not new:
        return Verdict("no_keys_appeared", "pass")
    return Refusal(
        RefusalReason.KEYS_APPEARED,
        f"{len(new)} key(s) appeared in {snap.store.id} after this run's plan was confirmed: "
        f"{_ids(new)}. They may be in use, so this run stops here. Review them; run again "
        "with --include-new-keys to delete them too, or `ksdelete cancel` to stop",
        tuple(new),
    )


def within_saved_plan(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """`apply`: the store is the one the operator reviewed (same type), and every key that
    is not already pending deletion is one the saved plan names."""
    approved = ctx.approved
    if approved is None:
        return Verdict("within_saved_plan", "n/a", "no saved plan")
    if snap.store.type is not approved.type:
        return Refusal(
            RefusalReason.OUTSIDE_SAVED_PLAN,
            f"{snap.store.id} is now a {snap.store.type} store, but the saved plan reviewed a "
            f"{approved.type} store; nothing was changed. Review it and save a new plan",
        )
    new = [k.id for k in snap.keys if not k.pending and k.id not in approved.key_ids]
    if not new:
        return Verdict("within_saved_plan", "pass",
                       f"{len(approved.key_ids)} key(s) in the saved plan")
    return Refusal(
        RefusalReason.OUTSIDE_SAVED_PLAN,
        f"{len(new)} key(s) in {snap.store.id} are not in the saved plan: {_ids(new)}. "
        "They may be in use and nobody reviewed them; nothing was changed. Review them and "
        "save a new plan (ksdelete STORE --dry-run --save-plan FILE)",
        tuple(new),
    )


def covered_by_confirmation(snap: Snapshot, options: PlanOptions, ctx: Context
                            ) -> Refusal | Verdict:
    """Across runs: keys created after an operator confirmed the deletion need a new yes."""
    if ctx.confirmed_before is None:
        return Verdict("covered_by_confirmation", "n/a", "no earlier confirmation")
    new = [k.id for k in snap.keys if not k.pending and k.id not in ctx.confirmed_before]
    if not new:
        return Verdict("covered_by_confirmation", "pass")
    if options.include_new_keys:
        return Verdict("covered_by_confirmation", "waived",
                       f"--include-new-keys: {_ids(new)}")
    return Refusal(
        RefusalReason.UNPLANNED_KEYS,
        f"{len(new)} key(s) appeared in {snap.store.id} after its deletion was confirmed in "
        f"an earlier run: {_ids(new)}. They may be in use; nothing was changed. Review them, "
        "then run again with --include-new-keys to delete them too (or `ksdelete cancel` to "
        "stop)",
        tuple(new),
    )


def not_cancelled(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """A cancel stays cancelled: a key ksdelete scheduled (its mark is on the key, in AWS, or
    this journal says so) that is no longer pending was cancelled by someone. No unattended run
    schedules it again; only a person's fresh confirmation, which lists it, does, and only for
    the keys it listed."""
    cancelled = cancelled_keys(snap, ctx)
    if not cancelled:
        return Verdict("not_cancelled", "pass")
    if ctx.reconfirmed is not None:
        cancelled = [k for k in cancelled if k.id not in ctx.reconfirmed]
        if not cancelled:
            return Verdict("not_cancelled", "waived",
                           f"the operator confirmed again: {_ids(sorted(ctx.reconfirmed))}")
    elif ctx.interactive:
        return Verdict("not_cancelled", "waived",
                       "to be confirmed again at the prompt: "
                       f"{_ids([k.id for k in cancelled])}")
    ids = [k.id for k in cancelled]
    who = "; ".join(f"{k.id}: {_cancel_story(k)}" for k in cancelled[:5])
    return Refusal(
        RefusalReason.CANCELLED_KEYS,
        f"{len(ids)} key(s) of {snap.store.id} that ksdelete scheduled for deletion"
        f"{' (or the saved plan saw pending deletion)' if ctx.approved else ''} are no "
        f"longer pending: someone cancelled their deletion, or an earlier run failed between "
        f"marking and scheduling them ({who}). An unattended run never schedules such a key "
        f"again; nothing was changed. To delete them after all, run `ksdelete {snap.store.id}` "
        "at a terminal, without --yes, and confirm (the prompt lists them)",
        tuple(ids),
    )


def cancelled_keys(snap: Snapshot, ctx: Context) -> list[Key]:
    """Keys ksdelete scheduled (a mark on the key, or this journal), or that the saved plan
    being applied saw pending deletion, that are not pending now."""
    pending_before = ctx.approved.pending_key_ids if ctx.approved else frozenset()
    return [k for k in snap.keys
            if k.cancelled or (not k.pending and (k.id in ctx.scheduled_before
                                                  or k.id in pending_before))]


def _cancel_story(key: Key) -> str:
    marks = key.marks
    scheduled = (marks.scheduled or "").split(" ", 1)[0] if marks and marks.scheduled else ""
    scheduled = f"scheduled {scheduled}, " if scheduled else ""
    if marks and marks.cancelled:
        return f"{scheduled}cancelled {marks.cancelled.replace(' by=', ' by ')}"
    return f"{scheduled}cancelled outside ksdelete (now {key.state})"


def cloudhsm_connected(snap: Snapshot, options: PlanOptions, ctx: Context
                       ) -> Refusal | Verdict:
    """A CloudHSM store stays CONNECTED while it holds keys, or their HSM key material is
    orphaned when KMS deletes them (kms-reference 1.4)."""
    store = snap.store
    if store.type is not StoreType.CLOUDHSM or not snap.keys:
        return Verdict("cloudhsm_connected", "n/a")
    state = store.connection_state
    if state is ConnectionState.CONNECTED:
        return Verdict("cloudhsm_connected", "pass")
    if options.connect:
        return Verdict("cloudhsm_connected", "waived", f"--connect: {state}, connecting first")
    if options.allow_orphaned_key_material:
        return Verdict("cloudhsm_connected", "waived",
                       f"--allow-orphaned-key-material: {state}")
    pending = [k.id for k in snap.keys if k.pending]
    at_risk = f"; the HSM key material of {_ids(pending)} will be orphaned when their " \
        "waiting period ends" if pending else ""
    return Refusal(
        RefusalReason.ORPHANED_KEY_MATERIAL,
        f"the CloudHSM key store {store.id} is {state} but still holds {len(snap.keys)} "
        f"key(s){at_risk}. KMS can only delete HSM key material while the store is "
        "CONNECTED. Reconnect it (--connect, or aws kms connect-custom-key-store) or stop "
        "the deletion (`ksdelete cancel`); --allow-orphaned-key-material accepts orphaned "
        "material",
        tuple(k.id for k in snap.keys),
    )


GATES: tuple[Gate, ...] = (account_allowed, name_pinned, membership_known, within_saved_plan,
                           no_keys_appeared, covered_by_confirmation, not_cancelled,
                           cloudhsm_connected)


def evaluate(snap: Snapshot, options: PlanOptions, ctx: Context
             ) -> tuple[tuple[Verdict, ...], Refusal | None]:
    """Every gate's verdict, and the first refusal (gates are ordered by what they protect)."""
    verdicts: list[Verdict] = []
    refusal: Refusal | None = None
    for gate in GATES:
        answer = gate(snap, options, ctx)
        if isinstance(answer, Refusal):
            verdicts.append(Verdict(gate.__name__, "refused", answer.reason.value))
            refusal = refusal or answer
        else:
            verdicts.append(answer)
    return tuple(verdicts), refusal


# ---- the plan -----------------------------------------------------------------------------

def plan(snapshot: Snapshot, options: PlanOptions, now: datetime,
         context: Context | None = None) -> Plan:
    """The steps that take this store from what AWS shows now to deleted, or a refusal.

    Every step is safe to repeat, and the executor re-plans from a fresh snapshot before
    each point of no return, so a plan built from a slightly stale snapshot still converges.
    """
    if not MIN_WINDOW_DAYS <= options.pending_window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"pending window must be 7..30 days, got {options.pending_window_days}")
    ctx = context or Context()
    store = snapshot.store
    verdicts, refusal = evaluate(snapshot, options, ctx)
    if refusal:
        status, phase = phase_of(snapshot, refusal)
        return Plan(store_id=store.id, steps=(), refusal=refusal, verdicts=verdicts,
                    phase=phase, status=status)

    keys = snapshot.keys
    to_schedule = tuple(k.id for k in keys if not k.pending)
    state = store.connection_state
    steps: list[Step] = []
    warnings: list[str] = []

    connecting = (store.type is StoreType.CLOUDHSM and bool(keys)
                  and state is not ConnectionState.CONNECTED and options.connect)
    if connecting:
        if state is not ConnectionState.CONNECTING:
            steps.append(Step(StepKind.CONNECT_STORE, detail=f"from {state}"))
        steps.append(Step(StepKind.AWAIT_CONNECTED))
    elif store.type is StoreType.CLOUDHSM and keys and state is not ConnectionState.CONNECTED:
        warnings.append(
            f"the CloudHSM key store is {state}: when the waiting period ends KMS cannot "
            "delete the HSM key material, which stays orphaned in the cluster "
            "(--allow-orphaned-key-material)"
        )

    if to_schedule:
        steps.append(Step(StepKind.SCHEDULE_KEY_DELETION, key_ids=to_schedule,
                          window_days=options.pending_window_days))
    if keys:
        steps.append(Step(StepKind.AWAIT_KEYS_DELETED, key_ids=tuple(k.id for k in keys)))
    if connecting or state is not ConnectionState.DISCONNECTED:
        if state is ConnectionState.DISCONNECTING and not connecting:
            steps.append(Step(StepKind.AWAIT_DISCONNECTED, detail="already disconnecting"))
        else:
            steps.append(Step(StepKind.DISCONNECT_STORE))
            steps.append(Step(StepKind.AWAIT_DISCONNECTED))
    steps.append(Step(StepKind.DELETE_STORE))
    steps.append(Step(StepKind.VERIFY_DELETED))

    external_ids: tuple[str, ...] = ()
    if store.type is StoreType.EXTERNAL:
        external_ids = tuple(k.external_key_id for k in keys if k.external_key_id)
        if external_ids:
            warnings.append(
                f"KMS never deletes external keys: {len(external_ids)} external key(s) stay in "
                "your external key manager (listed as external_key_id)"
            )
    elif keys:
        warnings.append(
            "KMS does not delete key material from CloudHSM cluster backups; delete backups "
            "that hold it if crypto-shredding is the goal"
        )

    status, phase = phase_of(snapshot, None)
    reconfirm = tuple(k.id for k in cancelled_keys(snapshot, ctx)
                      if ctx.reconfirmed is None or k.id not in ctx.reconfirmed)
    return Plan(
        store_id=store.id,
        steps=tuple(steps),
        verdicts=verdicts,
        warnings=tuple(warnings),
        earliest_gone=_earliest_gone(snapshot, options, now, bool(to_schedule)),
        external_key_ids=external_ids,
        phase=phase,
        status=status,
        reconfirm=reconfirm,
    )


def phase_of(snap: Snapshot, refusal: Refusal | None) -> tuple[Status, str]:
    """Where the store stands in the pipeline, and the status `status` reports for it."""
    if refusal is not None:
        status = Status.ERROR if refusal.error else Status.REFUSED
        if refusal.reason in (RefusalReason.UNKNOWN_MEMBERSHIP, RefusalReason.DESCRIBE_FAILED):
            return status, f"membership-unknown ({len(snap.undescribable)} key(s) cannot be " \
                "described)"
        return status, f"refused ({refusal.reason})"
    keys = snap.keys
    pending = [k for k in keys if k.pending]
    if keys and len(pending) < len(keys):
        return Status.PENDING, f"keys-not-scheduled {len(keys) - len(pending)}/{len(keys)}"
    if keys:
        dates = [k.deletion_date for k in pending if k.deletion_date]
        earliest = fmt_time(min(dates)) if dates else "-"
        return Status.PENDING, f"keys-pending {len(pending)}/{len(keys)}, earliest deletion " \
            f"{earliest}"
    state = snap.store.connection_state
    if state is ConnectionState.DISCONNECTING:
        return Status.PENDING, "disconnecting"
    if state is ConnectionState.DISCONNECTED:
        return Status.PENDING, "ready-to-delete"
    return Status.PENDING, "ready-to-disconnect"


def _earliest_gone(
    snapshot: Snapshot, options: PlanOptions, now: datetime, scheduling: bool
) -> datetime:
    dates = [k.deletion_date for k in snapshot.keys if k.deletion_date is not None]
    if scheduling:
        dates.append(now + timedelta(days=options.pending_window_days))
    return max(dates, default=now)
