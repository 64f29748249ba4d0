"""plan(snapshot, options, now, context) -> Plan: a pure function of what was observed.

Every rule that can refuse a run is a gate here: a small pure function of the snapshot, the
options and the context (the operator's guards and the memory of earlier decisions). The
dry run, `status` and `delete` read the same verdicts, and the executor re-plans from a fresh
snapshot before every point of no return (scheduling, disconnecting, deleting), so a refusal
can stop a run at any of them. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ksdelete import marks as codec
from ksdelete.marks import DISABLED_TAG, SCHEDULED_TAG
from ksdelete.models import (
    MAX_SOAK_DAYS,
    MAX_TAGS_PER_KEY,
    Attempt,
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
from ksdelete.phase import PhaseName, StorePhase
from ksdelete.reporting import fmt_time

MIN_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 30

Gate = Callable[[Snapshot, PlanOptions, Context], "Refusal | Verdict"]


def _ids(ids: list[str] | tuple[str, ...], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


# A refusal's first line (summary and fix) stays short and says the same for 3 keys or 3,000:
# the keys and the evidence go on the lines after it (`details`), and all of them in the JSON.

def _keys(ids: list[str] | tuple[str, ...], per_line: int = 3, lines: int = 4
          ) -> tuple[str, ...]:
    """The detail lines that list a refusal's keys: a few per line, the first dozen (the
    JSON has them all, as `key_ids`)."""
    shown = list(ids[:per_line * lines])
    out = [("keys: " if not i else "      ") + ", ".join(shown[i:i + per_line])
           for i in range(0, len(shown), per_line)]
    if len(ids) > len(shown):
        out.append(f"and {len(ids) - len(shown)} more (every key in --output json)")
    return tuple(out)


def _each(items: list[str], limit: int = 10) -> tuple[str, ...]:
    """One detail line per item (a key and what was seen of it), the first `limit` of them."""
    more = len(items) - limit
    return (*items[:limit], *([f"and {more} more (every key in --output json)"]
                              if more > 0 else []))


# ---- gates --------------------------------------------------------------------------------

def account_refusal(identity: Identity | None, allowed: frozenset[str]) -> Refusal | None:
    """--account-id: the credentials must be for one of these accounts. The CLI asks this
    right after GetCallerIdentity, before any other call; every plan asks it again."""
    if not allowed:
        return None
    account = identity.account if identity else "unknown"
    if account in allowed:
        return None
    wanted = next(iter(allowed)) if len(allowed) == 1 else "one it allows"
    return Refusal(
        RefusalReason.ACCOUNT_NOT_ALLOWED,
        f"the credentials are for account {account}, not {wanted} (--account-id)",
        "Use credentials for the intended account",
        (f"--account-id allows: {', '.join(sorted(allowed))}",) if len(allowed) > 1 else (),
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
        "the plan was made against another KMS endpoint than this run would use",
        "Run with --endpoint-url set to the plan's endpoint" if planned else
        "Run without --endpoint-url, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_KMS",
        (f"the plan's endpoint: {made}", f"this run's endpoint: {now}",
         "check --endpoint-url, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_KMS"),
    )


def _option(ctx: Context, option: str) -> str:
    """An option as a refusal's fix names it. `apply` takes none of the plan's options (the
    reviewed plan carries them), so there the fix names a new plan (`_new_plan` says how)."""
    if ctx.approved is None:
        return option
    return f"{option} in a new plan"


def _new_plan(ctx: Context, option: str = "") -> tuple[str, ...]:
    """`apply`: the detail line that says how to save a new plan (none for other commands)."""
    if ctx.approved is None:
        return ()
    option = f" {option}" if option else ""
    return (f"to save a new plan: ksdelete {ctx.approved.id} --dry-run{option} "
            "--save-plan FILE",)


def _leave_out(ctx: Context, option: str) -> str:
    """How to drop an option: for `apply`, a new plan saved without it."""
    if ctx.approved is None:
        return f"leave out {option}"
    return f"save a new plan without {option}"


def _include_new(ctx: Context) -> str:
    """How to delete keys that appeared after the confirmation: --include-new-keys, or for
    `apply` a new plan (which lists them)."""
    if ctx.approved is None:
        return "--include-new-keys deletes them too"
    return "a new plan can include them"


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
            (f"AWS said: {codes}", *_keys([k.id for k in failed])),
            ids, error=True,
        )
    return Refusal(
        RefusalReason.UNKNOWN_MEMBERSHIP,
        f"{len(bad)} KMS key(s) could not be described (AccessDenied): are they in "
        f"{snap.store.id}?", "Grant kms:DescribeKey on them (key policy), then run again",
        ("the keys are in this account and Region", *_keys(list(ids))),
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
        "and may be in use", f"Review them; {_include_new(ctx)}",
        (*_keys(new), "this run stops here; `ksdelete cancel` stops the deletion",
         *_new_plan(ctx)),
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
            f"{approved.type} store", "Review it and save a new plan", _new_plan(ctx),
        )
    new = [k.id for k in snap.keys if not k.pending and k.id not in approved.key_ids]
    if not new:
        return Verdict("within_saved_plan", "pass",
                       f"{len(approved.key_ids)} key(s) in the saved plan")
    return Refusal(
        RefusalReason.OUTSIDE_SAVED_PLAN,
        f"{len(new)} key(s) in {snap.store.id} are not in the saved plan: nobody reviewed "
        "them, and they may be in use", "Review them and save a new plan",
        (*_keys(new), *_new_plan(ctx)),
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
        marked = [k for k in snap.keys if _marked(k)]
        if not marked:
            return Verdict("covered_by_confirmation", "n/a", "no earlier confirmation")
        new = [k.id for k in snap.keys if not k.pending and not _marked(k)
               and not (k.marks and k.marks.cancelled) and k.id not in cancelled]
        since = f"ksdelete's marks on {len(marked)} other key(s) show its deletion was " \
            "confirmed (on whatever machine)"
        if new and ctx.interactive and not options.include_new_keys:
            return Verdict("covered_by_confirmation", "waived",
                           f"to be confirmed at the prompt (marked store): {_ids(new)}")
    else:
        new = [k.id for k in snap.keys if not k.pending and k.id not in confirmed
               and k.id not in cancelled]
        since = "its deletion was confirmed in an earlier run"
    if not new:
        return Verdict("covered_by_confirmation", "pass")
    if options.include_new_keys:
        return Verdict("covered_by_confirmation", "waived",
                       f"--include-new-keys: {_ids(new)}")
    return Refusal(
        RefusalReason.UNPLANNED_KEYS,
        f"{len(new)} key(s) appeared in {snap.store.id} after its deletion was confirmed and "
        "may be in use", f"Review them; {_include_new(ctx)}",
        (*_keys(new), since, "`ksdelete cancel` stops the deletion", *_new_plan(ctx)),
        tuple(new),
    )


def _marked(key: Key) -> bool:
    """ksdelete's mark is on the key: a run scheduled it (or began its soak), and no cancel
    withdrew that since (a cancelled mark is no confirmation in force)."""
    marks = key.marks
    return marks is not None and marks.cancelled is None and (
        marks.scheduled is not None or marks.disabled is not None)


def not_cancelled(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """A cancel stays cancelled: a key that any record shows pending deletion (ksdelete's mark
    on it, this journal's scheduling or confirmation, the saved plan, or CloudTrail's
    CancelKeyDeletion since the confirmation) that is no longer pending was cancelled by
    someone. No unattended run schedules it again; only a person's fresh confirmation, which
    lists it, does, and only for the keys it listed."""
    cancelled = cancelled_keys(snap, ctx)
    blind = _trail_blind(snap, ctx, cancelled)
    if blind and not cancelled and options.on_use == "ignore":
        return Verdict("not_cancelled", "waived",
                       "--on-use ignore: CloudTrail's CancelKeyDeletion events not read for "
                       f"{_ids([k.id for k in blind])}")
    if not cancelled and not blind:
        return Verdict("not_cancelled", "pass", _trail_text(snap))
    if ctx.reconfirmed is not None:
        cancelled = [k for k in cancelled if k.id not in ctx.reconfirmed]
        if not cancelled:
            return Verdict("not_cancelled", "waived",
                           f"the operator confirmed again: {_ids(sorted(ctx.reconfirmed))}")
    elif ctx.interactive:
        listed = [k.id for k in cancelled] + [k.id for k in blind]
        return Verdict("not_cancelled", "waived",
                       f"to be confirmed again at the prompt: {_ids(listed)}")
    if not cancelled:
        trail = snap.cancel_trail
        assert trail is not None
        return Refusal(
            RefusalReason.CANCELLED_KEYS,
            f"{len(blind)} key(s) of {snap.store.id} may have been cancelled (CloudTrail "
            "unreadable)",
            "Grant cloudtrail:LookupEvents, or confirm at a terminal (without --yes)",
            (f"this machine has no record of the confirmation ({fmt_time(trail.since)}) and "
             f"CloudTrail could not be read ({trail.error})",
             "an unattended run never schedules a key that may have been cancelled",
             f"to confirm: run `ksdelete {snap.store.id}` at a terminal, without --yes",
             *_keys([k.id for k in blind])),
            tuple(k.id for k in blind),
        )
    ids = [k.id for k in cancelled]
    return Refusal(
        RefusalReason.CANCELLED_KEYS,
        f"{len(ids)} key(s) of {snap.store.id} are no longer pending deletion: their deletion "
        "was cancelled", "To delete them anyway, confirm at a terminal (without --yes)",
        ("they were pending deletion (scheduled by ksdelete, or by hand and seen by a "
         "confirmation, the saved plan or CloudTrail): someone cancelled their deletion, or an "
         "earlier run failed between marking and scheduling them",
         *_each([f"{k.id}: {_cancel_story(k, snap, ctx)}" for k in cancelled], 5),
         "an unattended run never schedules such a key again",
         f"to confirm: run `ksdelete {snap.store.id}` at a terminal, without --yes (the prompt "
         "lists them)"),
        tuple(ids),
    )


def cancelled_keys(snap: Snapshot, ctx: Context) -> list[Key]:
    """Keys not pending now that any record shows pending deletion: ksdelete's mark on the
    key (unless this journal shows the run that wrote it never sent the ScheduleKeyDeletion),
    this journal's scheduling, cancelling or confirmation, the saved plan being applied, or
    CloudTrail's CancelKeyDeletion since the deletion was confirmed."""
    pending_before = ctx.approved.pending_key_ids if ctx.approved else frozenset()
    trail = snap.cancel_trail
    return [k for k in snap.keys if not k.pending and (
        _mark_says_pending(k, ctx) or k.id in ctx.scheduled_before
        or k.id in ctx.pending_before or k.id in pending_before
        or (trail is not None and trail.of(k.id) is not None))]


def cancelled_while_waiting(key: Key, done: str) -> Refusal | None:
    """A key the run waits on that reads back, settled, as no longer pending deletion:
    someone cancelled it, and the run stops there (`done`: what it had already done)."""
    if key.pending:
        return None
    return Refusal(RefusalReason.CANCELLED_KEYS,
                   f"key {key.id} is no longer pending deletion: someone cancelled it",
                   "Run `ksdelete status` to review, then run again",
                   details=(f"it is {key.state}; key ARN: {key.arn}", *([done] if done else ())),
                   key_ids=(key.id,))


def _mark_says_pending(key: Key, ctx: Context) -> bool:
    marks = key.marks
    if marks is None or not marks.any:
        return False
    # Marked, but this journal shows its scheduling was never sent: that mark is no cancel.
    return marks.cancelled is not None or \
        (key.id, marks.field("run") or "") not in ctx.unscheduled_marks


def _trail_blind(snap: Snapshot, ctx: Context, cancelled: list[Key]) -> list[Key]:
    """Keys an unattended run would schedule again where only CloudTrail could tell whether
    their deletion was cancelled since the confirmation, and CloudTrail could not be read."""
    trail = snap.cancel_trail
    if trail is None or trail.error is None or ctx.remembered:
        return []
    known = {k.id for k in cancelled}
    return [k for k in snap.keys if not k.pending and k.id not in known and not k.soaking]


def _trail_text(snap: Snapshot) -> str:
    trail = snap.cancel_trail
    if trail is None:
        return ""
    return f"CloudTrail: no CancelKeyDeletion of the store's keys since {fmt_time(trail.since)}"


def _cancel_story(key: Key, snap: Snapshot, ctx: Context) -> str:
    marks = key.marks
    scheduled = codec.time_text(marks.scheduled) if marks else ""
    scheduled = f"scheduled {scheduled}, " if scheduled else ""
    if marks and marks.cancelled:
        return f"{scheduled}cancelled {marks.cancelled.replace(' by=', ' by ')}"
    event = snap.cancel_trail.of(key.id) if snap.cancel_trail else None
    if event is not None:
        return f"{scheduled}cancelled outside ksdelete: CancelKeyDeletion by {event.caller} " \
            f"at {fmt_time(event.time)} (CloudTrail), now {key.state}"
    if key.id in ctx.pending_before:
        return f"pending deletion when its deletion was confirmed at " \
            f"{ctx.pending_before[key.id]}, now {key.state}"
    if ctx.approved and key.id in ctx.approved.pending_key_ids:
        return f"pending deletion in the saved plan, now {key.state}"
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
    at_risk = (f"the HSM key material of these pending keys will be orphaned when their "
               f"waiting period ends: {_ids(pending)}",) if pending else ()
    return Refusal(
        RefusalReason.ORPHANED_KEY_MATERIAL,
        f"{store.id} is {state} with {len(snap.keys)} key(s): KMS would orphan their HSM key "
        "material",
        f"Reconnect it ({_option(ctx, '--connect')}) or `ksdelete cancel`",
        ("KMS can only delete HSM key material while the store is CONNECTED", *at_risk,
         "to reconnect: --connect, or aws kms connect-custom-key-store"
         if ctx.approved is None else "to reconnect: aws kms connect-custom-key-store, or "
         "--connect in a new plan",
         f"{_option(ctx, '--allow-orphaned-key-material')} accepts orphaned material",
         *_new_plan(ctx, "--connect"), *_keys([k.id for k in snap.keys])),
        tuple(k.id for k in snap.keys),
    )


def material_deleted(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """A CloudHSM store whose keys are gone: KMS deleted their HSM key material too (their
    DeleteKey events say SUCCESS). Material orphaned because the store was not CONNECTED when
    KMS deleted a key, whenever and by whomever it was disconnected, is never a silent
    success: finishing needs --allow-orphaned-key-material."""
    if snap.store.type is not StoreType.CLOUDHSM or snap.orphaned is None:
        return Verdict("material_deleted", "n/a")
    if not snap.orphaned:
        detail = f"CloudTrail could not be read ({snap.orphaned_error}): the material's fate " \
            "is unknown" if snap.orphaned_error else "no DeleteKey of the store's keys says " \
            "its HSM key material was left"
        return Verdict("material_deleted", "pass", detail)
    orphaned = list(snap.orphaned)
    if options.allow_orphaned_key_material:
        return Verdict("material_deleted", "waived",
                       f"--allow-orphaned-key-material: the HSM key material of {_ids(orphaned)} "
                       "stays orphaned")
    cluster = snap.store.cloudhsm_cluster_id or "its CloudHSM cluster"
    return Refusal(
        RefusalReason.ORPHANED_KEY_MATERIAL,
        f"{len(orphaned)} deleted key(s) of {snap.store.id} left their HSM key material "
        "orphaned", f"Delete it, then pass {_option(ctx, '--allow-orphaned-key-material')}",
        ("KMS deleted them while the store was not CONNECTED (their DeleteKey events say "
         f"FAILURE); the material stays in {cluster}",
         "`ksdelete report` lists the key handles to delete in the cluster",
         *_new_plan(ctx, "--allow-orphaned-key-material"), *_keys(orphaned)),
        tuple(orphaned),
    )


def expected_key_count(snap: Snapshot, options: PlanOptions, ctx: Context
                       ) -> Refusal | Verdict:
    """--expect-keys N: a guard against the wrong store in runbooks and saved plans. It is
    checked against the store's keys (pending ones included) when the deletion is confirmed or
    the plan saved; after that, against the keys that confirmation covers, so that later runs
    converge while AWS deletes the keys (a key added since is caught by no_keys_appeared,
    covered_by_confirmation and within_saved_plan). `apply`: checked when the plan was saved."""
    expected = options.expect_keys
    if expected is None:
        return Verdict("expected_key_count", "n/a", "no --expect-keys")
    if ctx.approved is not None:
        return Verdict("expected_key_count", "pass",
                       f"{expected} key(s) when the plan was saved")
    confirmed = ctx.confirmed_before if ctx.confirmed_before is not None else ctx.planned
    if confirmed is not None:
        count = len(confirmed)
        if count == expected:
            return Verdict("expected_key_count", "pass",
                           f"{count} key(s) when the deletion was confirmed")
        found = f"{snap.store.id} was confirmed for deletion with {count} key(s)"
        keys = tuple(sorted(confirmed))
    else:
        count = len(snap.keys)
        if count == expected:
            return Verdict("expected_key_count", "pass", f"{count} key(s)")
        found = f"{snap.store.id} holds {count} key(s)"
        keys = tuple(k.id for k in snap.keys)
    return Refusal(
        RefusalReason.KEY_COUNT,
        f"{found}, but --expect-keys says {expected}: the wrong store?",
        f"Check the store, then pass --expect-keys {count}", _keys(keys), keys,
    )


def _to_schedule(snap: Snapshot) -> list[Key]:
    return [k for k in snap.keys if not k.pending]


def not_protected(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """--protect-tag KEY[=VALUE]: a key that carries the tag is never scheduled."""
    if not options.protect_tags:
        return Verdict("not_protected", "n/a", "no --protect-tag")
    hits: list[str] = []
    for key in _to_schedule(snap):
        tags = dict(key.tags or ())
        for name, value in options.protect_tags:
            if name in tags and (value is None or tags[name] == value):
                hits.append(f"{key.id} ({name}={tags[name]})")
                break
    if not hits:
        return Verdict("not_protected", "pass", _tags_text(options.protect_tags))
    return Refusal(
        RefusalReason.PROTECTED,
        f"{len(hits)} key(s) of {snap.store.id} carry a protected tag",
        f"Untag a key that is really meant to go, or {_leave_out(ctx, '--protect-tag')}",
        (f"protected: {_tags_text(options.protect_tags)}", *_each(hits),
         *_new_plan(ctx)),
        tuple(h.split(" ", 1)[0] for h in hits),
    )


def room_for_marks(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """ksdelete tags each key before it changes it (the scheduled mark; with --disable-first
    the soak's mark too), and AWS allows at most 50 tags per key: a key that has no room
    would stop the run in the middle of scheduling, so it is refused before anything
    changes."""
    keys = _to_schedule(snap)
    if not keys:
        return Verdict("room_for_marks", "n/a", "no keys to schedule")
    soak = options.disable_first_days > 0
    full: list[str] = []
    for key in keys:
        if key.tags is None:
            continue  # not read: the tag write itself fails safe (before ScheduleKeyDeletion)
        names = {name for name, _ in key.tags}
        wanted = {SCHEDULED_TAG} | ({DISABLED_TAG} if soak and not key.soaking else set())
        missing = len(wanted - names)
        if len(names) + missing > MAX_TAGS_PER_KEY:
            full.append(f"{key.id} ({len(names)} tags, needs {missing} more)")
    if not full:
        return Verdict("room_for_marks", "pass",
                       f"every key has room for ksdelete's mark ({MAX_TAGS_PER_KEY} tags "
                       "per key)")
    return Refusal(
        RefusalReason.TOO_MANY_TAGS,
        f"{len(full)} key(s) of {snap.store.id} have no room for ksdelete's mark (AWS allows "
        f"{MAX_TAGS_PER_KEY} tags per key)", "Remove a tag from each, then run again",
        ("ksdelete tags each key before it schedules (or disables) it", *_each(full),
         "to remove a tag (UntagResource): aws kms untag-resource --key-id KEY --tag-keys "
         "NAME"),
        tuple(h.split(" ", 1)[0] for h in full),
    )


def _tags_text(tags: tuple[tuple[str, str | None], ...]) -> str:
    return ", ".join(name if value is None else f"{name}={value}" for name, value in tags)


def no_service_grants(snap: Snapshot, options: PlanOptions, ctx: Context
                      ) -> Refusal | Verdict:
    """A grant to an AWS service principal is a live integration (a service uses the key on
    someone's behalf); other grants are listed in the plan. --allow-service-grants waives the
    grants it names, never grants that could not be read (nobody saw those)."""
    unread = [k.id for k in _to_schedule(snap) if k.grants is None]
    if unread:
        return Refusal(
            RefusalReason.SERVICE_GRANTS,
            f"the grants on {len(unread)} key(s) of {snap.store.id} could not be read",
            "Grant kms:ListGrants on them (key policy or IAM), then run again",
            ("whether an AWS service uses them is unknown (a waiver covers only grants that can "
             "be named)", *_keys(unread)),
            tuple(unread),
        )
    live = [(k, g) for k in _to_schedule(snap) for g in (k.grants or ()) if g.service]
    others = sum(1 for k in _to_schedule(snap) for g in (k.grants or ()) if not g.service)
    if not live:
        return Verdict("no_service_grants", "pass",
                       f"{others} grant(s) to other principals" if others else "no grants")
    listed = [f"{k.id} (to {g.grantee or g.retiring})" for k, g in live]
    if options.allow_service_grants:
        return Verdict("no_service_grants", "waived",
                       f"--allow-service-grants: {_ids(listed)}")
    return Refusal(
        RefusalReason.SERVICE_GRANTS,
        f"{len(live)} grant(s) on keys of {snap.store.id} are to AWS services (live "
        "integrations)",
        f"Stop what uses them, or go on with {_option(ctx, '--allow-service-grants')}",
        ("AWS services use the keys on someone's behalf", *_each(listed),
         "or retire the grants", *_new_plan(ctx, "--allow-service-grants")),
        tuple(dict.fromkeys(k.id for k, _ in live)),
    )


def not_recently_used(snap: Snapshot, options: PlanOptions, ctx: Context
                      ) -> Refusal | Verdict:
    """--unused-for DAYS (default 30): no key to be scheduled had a successful cryptographic
    use recorded within DAYS (GetKeyLastUsage). No use recorded is not proof of no use when
    the key is older than KMS's tracking: the verdict says so, with the date."""
    days = options.unused_for_days
    if days <= 0:
        return Verdict("not_recently_used", "waived", "--unused-for 0: last use not checked")
    keys = _to_schedule(snap)
    if not keys:
        return Verdict("not_recently_used", "n/a", "no keys to schedule")
    now = snap.observed_at
    unknown = [k for k in keys if k.usage is None or k.usage.error]
    if unknown or now is None:
        errors = sorted({(k.usage.error if k.usage else None) or "not read" for k in unknown})
        why = "; ".join(errors) or "no clock"
        grant = "Grant kms:GetKeyLastUsage, or pass" if any(
            "AccessDenied" in error for error in errors) else "Pass"
        return Refusal(
            RefusalReason.RECENTLY_USED,
            f"the last use of {len(unknown)} key(s) of {snap.store.id} could not be read",
            f"{grant} {_option(ctx, '--unused-for 0')} to skip this check",
            (f"why: {why}", "whether they are still used is unknown",
             *_new_plan(ctx, "--unused-for 0"), *_keys([k.id for k in unknown])),
            tuple(k.id for k in unknown), )
    since = now - timedelta(days=days)
    used = [k for k in keys if k.usage and k.usage.last_used and k.usage.last_used > since]
    if used:
        listed = [f"{k.id} ({k.usage.operation} at {fmt_time(k.usage.last_used)}"
                  f"{', event ' + k.usage.event_id if k.usage.event_id else ''})"
                  for k in used if k.usage and k.usage.last_used]
        return Refusal(
            RefusalReason.RECENTLY_USED,
            f"{len(used)} key(s) of {snap.store.id} were used in the last {days} day(s)",
            "Find the caller in CloudTrail, or pass a smaller "
            f"{_option(ctx, '--unused-for DAYS')} (0: off)",
            ("something may still depend on them", *_each(listed),
             *_new_plan(ctx, "--unused-for DAYS")),
            tuple(k.id for k in used),
        )
    untracked = [k for k in keys if k.usage and not k.usage.last_used and k.creation_date
                 and k.usage.tracking_start and k.creation_date < k.usage.tracking_start]
    detail = f"no use recorded in {days} day(s) (KMS records use up to an hour late)"
    if untracked:
        start = min(k.usage.tracking_start for k in untracked if k.usage and
                    k.usage.tracking_start)
        detail += (f"; {len(untracked)} key(s) are older than KMS's usage tracking (since "
                   f"{fmt_time(start)}), so earlier use is unknown: "
                   f"{_ids([k.id for k in untracked], 5)} (check CloudTrail)")
    return Verdict("not_recently_used", "pass", detail)


def _attempts(keys: list[Key]) -> tuple[list[tuple[Key, Attempt]], list[str]]:
    """The keys someone tried to use (their latest attempt), and how to tell each."""
    used = [(k, k.watch.attempts[0]) for k in keys if k.watch and k.watch.attempts]
    return used, [f"{k.id}: {a.operation} by {a.caller} at {fmt_time(a.time)} "
                  f"({a.error_code})" for k, a in used]


def _blind(keys: list[Key]) -> list[Key]:
    """The keys the watch could not see: not read, a read cut short (no permission, a failed
    page, the budget), or the key's own scheduling (or DisableKey) event not found although
    CloudTrail has had time to deliver it, so an empty result proves nothing."""
    return [k for k in keys if k.watch is None or k.watch.error
            or (k.watch.since is None and not k.watch.late)]


def _late(keys: list[Key]) -> list[Key]:
    """Keys put on the way out so recently that CloudTrail may not show them yet."""
    return [k for k in keys if k.watch and not k.watch.error and k.watch.since is None
            and k.watch.late]


def _blindness(keys: list[Key], what: str, ctx: Context) -> tuple[str, list[str]]:
    """Why the watch cannot see these keys, and what to do about it (the likeliest fix
    first; the last: go on unwatched)."""
    causes: set[str] = set()
    hints: list[str] = []
    for key in keys:
        seen = key.watch
        if seen is None:
            causes.add("not read")
        elif seen.error:
            causes.add(seen.error)
        elif seen.scheduled is not None:
            causes.add(f"no {seen.anchor} event of it in CloudTrail, although it was {what} at "
                       f"{fmt_time(seen.scheduled)}, more than CloudTrail's delivery allowance "
                       "(1 h) ago")
        else:
            causes.add(f"no {seen.anchor} event of it in CloudTrail, and this journal does not "
                       f"say when it was {what}")
    text = "; ".join(sorted(causes))
    if "permission" in text or "not read" in text:
        hints.append("grant cloudtrail:LookupEvents")
    if "budget" in text:
        hints.append("run again with a larger --watch-budget")
    if "failed" in text:
        hints.append("run again (the read of CloudTrail failed)")
    if "event of it" in text:
        hints.append("check this Region's CloudTrail Event history for the keys")
    hints.append(f"pass {_option(ctx, '--on-use ignore')} to go on unwatched")
    return text, hints


def _blind_details(why: str, hints: list[str], ctx: Context) -> tuple[str, ...]:
    """The detail lines of a watch that cannot see: why, and every way to go on."""
    budget = ["(the account logs these events faster than they can be read in time)"] \
        if "budget" in why else []
    return (f"why: {why}", *budget, f"to go on: {', or '.join(hints)}",
            *_new_plan(ctx, "--on-use ignore"))


def no_use_while_pending(snap: Snapshot, options: PlanOptions, ctx: Context
                         ) -> Refusal | Verdict:
    """The watch: nobody tried to use a key while it waits out its window (CloudTrail, since
    the key's latest ScheduleKeyDeletion). Someone did: that key is still needed."""
    pending = [k for k in snap.keys if k.pending]
    if not pending:
        return Verdict("no_use_while_pending", "n/a", "no key pending deletion")
    if options.on_use == "ignore":
        return Verdict("no_use_while_pending", "waived", "--on-use ignore: CloudTrail not read")
    used, told = _attempts(pending)
    if used:
        if options.on_use != "cancel":
            fix = "Find and fix the caller; `ksdelete cancel` stops their deletion"
            action = ("--on-use refuse: nothing was changed; they are still pending deletion "
                      "(`ksdelete cancel` stops it)")
        elif ctx.read_only:
            fix = "Find the caller; `ksdelete cancel` (or the next run) stops their deletion"
            action = ("this run only reads, so they are still pending deletion: the next run "
                      "that is not a dry run cancels their deletion (--on-use cancel), or "
                      "`ksdelete cancel` now")
        else:
            fix = "Their deletion is cancelled now; find and fix the caller"
            action = ("their deletion is cancelled now (they come back Disabled: the callers "
                      "still fail, but the keys and the data they protect are safe)")
        return Refusal(
            RefusalReason.USED_WHILE_PENDING,
            f"someone tried to use {len(used)} key(s) of {snap.store.id} while pending "
            "deletion", fix,
            (*_each(told), action, "to delete a key after all, run ksdelete again without "
             "--yes and confirm it"),
            tuple(k.id for k, _ in used),
        )
    blind = _blind(pending)
    if blind:
        why, hints = _blindness(blind, "scheduled", ctx)
        return Refusal(
            RefusalReason.WATCH_BLIND,
            f"the watch cannot see {len(blind)} pending key(s) of {snap.store.id}",
            f"To go on: {hints[0]}",
            (*_blind_details(why, hints, ctx),
             "whether they are still used is unknown, so this run stops here",
             *_keys([k.id for k in blind])),
            tuple(k.id for k in blind),
        )
    late = _late(pending)
    detail = f"no use attempted on {len(pending) - len(late)} pending key(s) since scheduled"
    if late:
        detail += (f"; {len(late)} key(s) scheduled less than an hour ago are not visible in "
                   f"CloudTrail yet (it delivers late): {_ids([k.id for k in late], 5)}; "
                   "the next run watches them")
    return Verdict("no_use_while_pending", "pass", detail)


def cancel_not_requested(snap: Snapshot, options: PlanOptions, ctx: Context
                         ) -> Refusal | Verdict:
    """A reversal sticks: after `ksdelete cancel` asked a run of this store to stop, no
    unattended run goes on; only a person's fresh confirmation at a terminal lifts it."""
    if ctx.cancel_requested is None:
        return Verdict("cancel_not_requested", "pass")
    if ctx.interactive:
        return Verdict("cancel_not_requested", "pass",
                       f"a cancel was {ctx.cancel_requested}; confirming lifts it")
    return Refusal(
        RefusalReason.CANCEL_REQUESTED,
        f"a cancel of {snap.store.id} was requested: no unattended run goes on after it",
        "A person must confirm again at a terminal (without --yes)",
        (f"the cancel was {ctx.cancel_requested}",
         "to confirm: run `ksdelete STORE` at a terminal, without --yes"))


def no_use_while_disabled(snap: Snapshot, options: PlanOptions, ctx: Context
                          ) -> Refusal | Verdict:
    """--disable-first: nobody tried to use a key since the soak disabled it (CloudTrail,
    since the key's DisableKey). Someone did: the key is still needed; it stays Disabled."""
    soaking = [k for k in snap.keys if k.soaking]
    if not soaking:
        return Verdict("no_use_while_disabled", "n/a", "no key in a soak")
    if options.on_use == "ignore":
        return Verdict("no_use_while_disabled", "waived", "--on-use ignore: CloudTrail not read")
    used, told = _attempts(soaking)
    if used:
        return Refusal(
            RefusalReason.USED_WHILE_DISABLED,
            f"someone tried to use {len(used)} key(s) of {snap.store.id} disabled to soak",
            "Find and fix the caller, or `ksdelete cancel --enable` to bring them back",
            (*_each(told), "nothing is scheduled; the keys stay Disabled"),
            tuple(k.id for k, _ in used),
        )
    blind = _blind(soaking)
    if blind:
        why, hints = _blindness(blind, "disabled", ctx)
        return Refusal(
            RefusalReason.WATCH_BLIND,
            f"the watch cannot see {len(blind)} key(s) ksdelete disabled to soak in "
            f"{snap.store.id}", f"To go on: {hints[0]}",
            (*_blind_details(why, hints, ctx),
             "a soak that cannot see proves nothing, so nothing is scheduled",
             *_keys([k.id for k in blind])),
            tuple(k.id for k in blind),
        )
    return Verdict("no_use_while_disabled", "pass",
                   f"no use attempted on {len(soaking)} disabled key(s) since the soak began")


def soak_possible(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """--disable-first needs a connected store: the keys of a disconnected one are
    Unavailable, DisableKey does not take effect until the store reconnects, and every use
    fails anyway, so a soak would prove nothing. And a key the soak disabled that someone
    enabled again is wanted: only a person's fresh confirmation starts its soak again."""
    enabled = [k.id for k in snap.keys if k.soak_broken]
    if enabled and not ctx.interactive:
        return Refusal(
            RefusalReason.SOAK_BROKEN,
            f"{len(enabled)} key(s) of {snap.store.id} disabled to soak are Enabled again: "
            "someone needs them",
            "Find out why; to go on, confirm at a terminal (without --yes)",
            ("once confirmed at the prompt, their soak starts again (they are disabled again for "
             "at least the days of their first soak) before anything is scheduled",
             *_keys(enabled)),
            tuple(enabled),
        )
    if options.disable_first_days <= 0:
        soaking = sum(1 for k in snap.keys if k.soaking)
        return Verdict("soak_possible", "n/a", f"no --disable-first; {soaking} key(s) still "
                       "in the soak an earlier run began" if soaking else "no --disable-first")
    fresh = [k for k in snap.keys if not k.pending and not k.soaking]
    state = snap.store.connection_state
    # With --connect the plan connects the store (either type) before disabling.
    if fresh and state is not ConnectionState.CONNECTED and not options.connect:
        return Refusal(
            RefusalReason.SOAK_IMPOSSIBLE,
            f"--disable-first needs {snap.store.id} CONNECTED, but it is {state}",
            f"Connect it ({_option(ctx, '--connect')}), or "
            f"{_leave_out(ctx, '--disable-first')}",
            ("its keys are Unavailable, DisableKey does not take effect until the store "
             "reconnects, and every attempt to use them fails anyway, so a soak would prove "
             "nothing", *_new_plan(ctx, "--connect"), *_keys([k.id for k in fresh])),
            tuple(k.id for k in fresh),
        )
    return Verdict("soak_possible", "pass",
                   f"{options.disable_first_days}-day soak with the keys disabled")


# Ordered by what they protect: the first refusal is the one the operator reads, and the
# watch comes early so that its remedy (cancelling a key in use) is never held back by another:
# right after the gates that say this is the store meant (account, name). Not after
# membership_known: keys already pending are deleted by AWS whatever ksdelete does, and which
# of them are in the store is known even when some other key of the account is not.
GATES: tuple[Gate, ...] = (account_allowed, name_pinned, no_use_while_pending,
                           no_use_while_disabled, cancel_not_requested, membership_known,
                           within_saved_plan,
                           expected_key_count,
                           no_keys_appeared, covered_by_confirmation, not_cancelled,
                           soak_possible, not_protected, no_service_grants, not_recently_used,
                           room_for_marks, cloudhsm_connected, material_deleted)


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
    if snapshot.observed_at is None:
        snapshot = replace(snapshot, observed_at=now)
    verdicts, refusal = evaluate(snapshot, options, ctx)
    if refusal:
        status, phase = phase_of(snapshot, refusal)
        remedy = None
        if refusal.reason is RefusalReason.USED_WHILE_PENDING and options.on_use == "cancel" \
                and not ctx.read_only:
            remedy = Step(StepKind.CANCEL_KEY_DELETION, key_ids=refusal.key_ids,
                          detail="someone tried to use them while pending deletion")
        return Plan(store_id=store.id, steps=(), refusal=refusal, verdicts=verdicts,
                    phase=phase, status=status, remedy=remedy)

    keys = snapshot.keys
    to_schedule = tuple(k.id for k in keys if not k.pending)
    state = store.connection_state
    steps: list[Step] = []
    warnings: list[str] = []

    # A soak needs the store CONNECTED whatever its type (its keys are Unavailable
    # otherwise, and every use fails anyway): --connect connects an external key store too.
    soak = bool(to_schedule) and (options.disable_first_days > 0
                                  or any(k.soaking or k.soak_broken for k in keys))
    connecting = _connect_first(snapshot, options, soak, steps, warnings)

    soak_until = None
    if soak:
        soak_until = _soak(snapshot, options, ctx, now, steps, warnings)
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

    external_ids = _left_in_key_managers(snapshot, warnings)

    status, phase = phase_of(snapshot, None)
    if soak_until is not None and soak_until > now:
        phase = StorePhase.of(
            PhaseName.SOAKING, f"{len(to_schedule)} key(s) disabled until "
            f"{fmt_time(soak_until)}", keys=phase.keys, pending=phase.pending,
            earliest_deletion=phase.earliest_deletion, until=soak_until)
    cancelled = cancelled_keys(snapshot, ctx)
    reconfirm = tuple(k.id for k in [*cancelled, *_trail_blind(snapshot, ctx, cancelled)]
                      if ctx.reconfirmed is None or k.id not in ctx.reconfirmed)
    return Plan(
        store_id=store.id,
        steps=tuple(steps),
        verdicts=verdicts,
        warnings=tuple(warnings),
        earliest_gone=_earliest_gone(snapshot, options, soak_until or now, bool(to_schedule)),
        external_key_ids=external_ids,
        phase=phase,
        status=status,
        reconfirm=reconfirm,
        soak_until=soak_until,
    )


def _connect_first(snap: Snapshot, options: PlanOptions, soak: bool, steps: list[Step],
                   warnings: list[str]) -> bool:
    """With --connect, a store whose keys need it CONNECTED (CloudHSM, or a soak) is
    connected first; returns whether it is. A CloudHSM store left unconnected is a warning."""
    store, keys = snap.store, snap.keys
    state = store.connection_state
    connecting = ((store.type is StoreType.CLOUDHSM or soak) and bool(keys)
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
    return connecting


def _left_in_key_managers(snap: Snapshot, warnings: list[str]) -> tuple[str, ...]:
    """What KMS never deletes: an external key store's keys in the external key manager
    (their IDs, returned), a CloudHSM store's key material in the cluster's backups."""
    keys = snap.keys
    external_ids: tuple[str, ...] = ()
    if snap.store.type is StoreType.EXTERNAL:
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
    return external_ids


def _soak(snap: Snapshot, options: PlanOptions, ctx: Context, now: datetime,
          steps: list[Step], warnings: list[str]) -> datetime:
    """--disable-first: disable the keys not yet soaking and wait out the soak; returns when
    the last key's soak ends (a key whose soak starts now ends DAYS from now). A soak under
    way lasts at least the DAYS it began with, whatever later runs pass: leaving out
    --disable-first, or passing fewer days, does not cut it short.

    The key's mark can be edited by anyone who may tag the key, so its end is checked against
    what ksdelete did not write on the key: CloudTrail's DisableKey event (the watch's anchor)
    and this journal's DisableKey. The soak began at the latest of them and of the mark's
    time; it lasts the longest of the days known. A mark that cannot be read, with nothing to
    confirm when the soak began, means the soak is not over. A key someone enabled again
    during its soak (a person confirmed it at the prompt) is soaked again, for at least the
    days of its first soak, even without --disable-first."""
    days = options.disable_first_days
    broken = {k.id: k for k in snap.keys if k.soak_broken and not k.pending}
    to_disable = tuple(k.id for k in snap.keys if not k.pending and not k.soaking
                       and (days > 0 or k.id in broken))
    again = max([_soak_days(k, ctx, days) for k in broken.values()], default=0)
    ends: list[datetime] = []
    unknown: list[str] = []
    for key in snap.keys:
        if not key.soaking or key.marks is None:
            continue
        journal = ctx.soaks.get(key.id)
        trail = key.watch.since if key.watch and not key.watch.error else None
        confirmed = [t for t in (trail, journal[0] if journal else None) if t is not None]
        if not confirmed:
            unknown.append(key.id)
            ends.append(now + timedelta(days=max(days, 1)))  # not over; looked at again
            continue
        start = max([*confirmed, *([key.marks.disabled_at] if key.marks.disabled_at else [])])
        ends.append(start + timedelta(days=_soak_days(key, ctx, days)))
    if unknown:
        warnings.append(
            f"the soak of {len(unknown)} key(s) is not over: when it began is not confirmed "
            f"(neither CloudTrail's DisableKey nor this journal shows it): {_ids(unknown)}; "
            "let the watch read CloudTrail (not --on-use ignore), or run from the machine "
            "whose journal began the soak")
    soak_days = max(days, again)
    until = max([*ends, *([now + timedelta(days=soak_days)] if to_disable else [])],
                default=now)
    if to_disable:
        steps.append(Step(StepKind.DISABLE_KEYS, key_ids=to_disable,
                          detail=f"{soak_days}-day soak", soak_days=soak_days))
    if until > now:
        steps.append(Step(StepKind.AWAIT_SOAK, detail=f"until {fmt_time(until)}"))
    return until


def _soak_days(key: Key, ctx: Context, days: int) -> int:
    """How long a key's soak lasts: the longest of this run's DAYS, the mark's days= and
    the journal's. A mark whose days cannot be read, with no journal to tell, means the
    longest soak ksdelete allows."""
    journal = ctx.soaks.get(key.id)
    known = [days, *([journal[1]] if journal and journal[1] else [])]
    mark_days = key.marks.soak_days if key.marks else None
    if mark_days is None and not (journal and journal[1]):
        known.append(MAX_SOAK_DAYS)
    elif mark_days is not None:
        known.append(mark_days)
    return max(known)


def phase_of(snap: Snapshot, refusal: Refusal | None) -> tuple[Status, StorePhase]:
    """Where the store stands in the pipeline, and the status `status` reports for it."""
    keys = snap.keys
    pending = [k for k in keys if k.pending]
    dates = [k.deletion_date for k in pending if k.deletion_date]
    counts = {"keys": len(keys), "pending": len(pending),
              "earliest_deletion": min(dates) if dates else None}
    if refusal is not None:
        status = Status.ERROR if refusal.error else Status.REFUSED
        if refusal.reason in (RefusalReason.UNKNOWN_MEMBERSHIP, RefusalReason.DESCRIBE_FAILED):
            return status, StorePhase.of(
                PhaseName.MEMBERSHIP_UNKNOWN, f"({len(snap.undescribable)} key(s) cannot be "
                "described)", reason=refusal.reason.value, **counts)
        return status, refused_phase(refusal, **counts)
    soaking = [k for k in keys if k.soaking]
    if soaking:
        return Status.PENDING, StorePhase.of(
            PhaseName.SOAKING, f"{len(soaking)}/{len(keys)} key(s) disabled", **counts)
    if keys and len(pending) < len(keys):
        return Status.PENDING, StorePhase.of(
            PhaseName.KEYS_NOT_SCHEDULED, f"{len(keys) - len(pending)}/{len(keys)}", **counts)
    if keys:
        earliest = fmt_time(min(dates)) if dates else "-"
        return Status.PENDING, StorePhase.of(
            PhaseName.KEYS_PENDING, f"{len(pending)}/{len(keys)}, earliest deletion "
            f"{earliest}", **counts)
    state = snap.store.connection_state
    if state is ConnectionState.DISCONNECTING:
        return Status.PENDING, StorePhase.of(PhaseName.DISCONNECTING)
    if state is ConnectionState.DISCONNECTED:
        return Status.PENDING, StorePhase.of(PhaseName.READY_TO_DELETE)
    return Status.PENDING, StorePhase.of(PhaseName.READY_TO_DISCONNECT)


def refused_phase(refusal: Refusal, **counts: Any) -> StorePhase:
    """The phase of a store a gate refused: "refused (<reason>)"."""
    return StorePhase.of(PhaseName.REFUSED, f"({refusal.reason})",
                         reason=refusal.reason.value, **counts)


def _earliest_gone(
    snapshot: Snapshot, options: PlanOptions, now: datetime, scheduling: bool
) -> datetime:
    dates = [k.deletion_date for k in snapshot.keys if k.deletion_date is not None]
    if scheduling:
        dates.append(now + timedelta(days=options.pending_window_days))
    return max(dates, default=now)
