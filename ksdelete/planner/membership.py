"""Gates on what the store is and holds: the name, its keys, the operator's confirmation and
the saved plan."""

from __future__ import annotations

from ksdelete.models import (
    Context,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    Verdict,
)
from ksdelete.planner.cancels import cancelled_keys, has_marks
from ksdelete.planner.where import account_refusal
from ksdelete.planner.wording import id_list, include_new, key_lines, new_plan_lines


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
        f"the store name now resolves to {snap.store.id}, not to {pin.store_id} as confirmed",
        f"To act on {snap.store.id}, pass its ID",
        (f"the name {pin.name!r} was confirmed for deletion as {pin.store_id} at {pin.time}: "
         "a different store may have taken the name",),
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
            f"AWS failed to describe {len(failed)} KMS key(s): are they in {snap.store.id}?",
            "Run again later",
            (f"AWS said: {codes}", *key_lines([k.id for k in failed])),
            ids, error=True,
        )
    return Refusal(
        RefusalReason.UNKNOWN_MEMBERSHIP,
        f"{len(bad)} KMS key(s) could not be described (AccessDenied): are they in "
        f"{snap.store.id}?", "Grant kms:DescribeKey on them (key policy), then run again",
        ("the keys are in this account and Region", *key_lines(list(ids))),
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
        f"{len(new)} key(s) appeared in {snap.store.id} after this run's plan was confirmed "
        "and may be in use", f"Review them; {include_new(ctx)}",
        (*key_lines(new), "this run stops here; `ksdelete cancel` stops the deletion",
         *new_plan_lines(ctx)),
        tuple(new),
    )


def all_or_nothing(store_id: str, others: list[tuple[str, str]], *, started: bool
                   ) -> Refusal | None:
    """A run's plan over several stores (STORE arguments, or a saved plan's stores) is all or
    nothing: a store is refused when another of the plan (`others`: store and its status) was
    refused or failed before this one's first point of no return. None: go ahead."""
    if not others:
        return None
    why = "stopped" if started else "did not pass"
    first = others[0][0] if len(others) == 1 and len(others[0][0]) <= 24 else "them"
    return Refusal(
        RefusalReason.ALL_OR_NOTHING,
        f"{store_id} not started: the plan is all or nothing and "
        f"{'another store' if len(others) == 1 else 'other stores'} {why}",
        f"Deal with {first} or leave {'it' if first != 'them' else 'them'} out, then run again",
        tuple(f"{other}: {status}" for other, status in others),
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
            f"{approved.type} store", "Review it and save a new plan", new_plan_lines(ctx),
        )
    new = [k.id for k in snap.keys if not k.pending and k.id not in approved.key_ids]
    if not new:
        return Verdict("within_saved_plan", "pass",
                       f"{len(approved.key_ids)} key(s) in the saved plan")
    return Refusal(
        RefusalReason.OUTSIDE_SAVED_PLAN,
        f"{len(new)} key(s) in {snap.store.id} are not in the saved plan: nobody reviewed "
        "them, and they may be in use", "Review them and save a new plan",
        (*key_lines(new), *new_plan_lines(ctx)),
        tuple(new),
    )


def covered_by_confirmation(snap: Snapshot, options: PlanOptions, ctx: Context
                            ) -> Refusal | Verdict:
    """Across runs: keys created after an operator confirmed the deletion need a new yes.

    The confirmation is this journal's (or the saved plan's); on a machine without it,
    ksdelete's marks on the store's other keys are: a key without a mark in a store whose
    keys carry them appeared after the deletion was confirmed, on whatever machine."""
    confirmed = ctx.confirmed_before
    cancelled = {k.id for k in cancelled_keys(snap, ctx)}
    if confirmed is None:
        marked = [k for k in snap.keys if has_marks(k)]
        if not marked:
            return Verdict("covered_by_confirmation", "n/a", "no earlier confirmation")
        new = [k.id for k in snap.keys if not k.pending and not has_marks(k)
               and not (k.marks and k.marks.cancelled) and k.id not in cancelled]
        since = f"ksdelete's marks on {len(marked)} other key(s) show its deletion was " \
            "confirmed (on whatever machine)"
        if new and ctx.interactive and not options.include_new_keys:
            return Verdict("covered_by_confirmation", "waived",
                           f"to be confirmed at the prompt (marked store): {id_list(new)}")
    else:
        new = [k.id for k in snap.keys if not k.pending and k.id not in confirmed
               and k.id not in cancelled]
        since = "its deletion was confirmed in an earlier run"
    if not new:
        return Verdict("covered_by_confirmation", "pass")
    if options.include_new_keys:
        return Verdict("covered_by_confirmation", "waived",
                       f"--include-new-keys: {id_list(new)}")
    return Refusal(
        RefusalReason.UNPLANNED_KEYS,
        f"{len(new)} key(s) appeared in {snap.store.id} after its deletion was confirmed and "
        "may be in use", f"Review them; {include_new(ctx)}",
        (*key_lines(new), since, "`ksdelete cancel` stops the deletion", *new_plan_lines(ctx)),
        tuple(new),
    )
