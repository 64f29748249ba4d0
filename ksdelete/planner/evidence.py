"""Gates on each key's evidence: the store's connection, the key material, the count the
operator expects, protective tags, room for the marks, grants, last use."""

from __future__ import annotations

from datetime import timedelta

from ksdelete.marks import DISABLED_TAG, SCHEDULED_TAG
from ksdelete.models import (
    MAX_TAGS_PER_KEY,
    ConnectionState,
    Context,
    Key,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    StoreType,
    Verdict,
)
from ksdelete.planner.wording import (
    each_line,
    id_list,
    key_lines,
    leave_out,
    new_plan_lines,
    option_of,
)
from ksdelete.reporting import fmt_time


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
               f"waiting period ends: {id_list(pending)}",) if pending else ()
    return Refusal(
        RefusalReason.ORPHANED_KEY_MATERIAL,
        f"{store.id} is {state} with {len(snap.keys)} key(s): KMS would orphan their HSM key "
        "material",
        f"Reconnect it ({option_of(ctx, '--connect')}) or `ksdelete cancel`",
        ("KMS can only delete HSM key material while the store is CONNECTED", *at_risk,
         "to reconnect: --connect, or aws kms connect-custom-key-store"
         if ctx.approved is None else "to reconnect: aws kms connect-custom-key-store, or "
         "--connect in a new plan",
         f"{option_of(ctx, '--allow-orphaned-key-material')} accepts orphaned material",
         *new_plan_lines(ctx, "--connect"), *key_lines([k.id for k in snap.keys])),
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
                       "--allow-orphaned-key-material: the HSM key material of "
                       f"{id_list(orphaned)} stays orphaned")
    cluster = snap.store.cloudhsm_cluster_id or "its CloudHSM cluster"
    return Refusal(
        RefusalReason.ORPHANED_KEY_MATERIAL,
        f"{len(orphaned)} deleted key(s) of {snap.store.id} left their HSM key material "
        "orphaned", f"Delete it, then pass {option_of(ctx, '--allow-orphaned-key-material')}",
        ("KMS deleted them while the store was not CONNECTED (their DeleteKey events say "
         f"FAILURE); the material stays in {cluster}",
         "`ksdelete report` lists the key handles to delete in the cluster",
         *new_plan_lines(ctx, "--allow-orphaned-key-material"), *key_lines(orphaned)),
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
        f"Check the store, then pass --expect-keys {count}", key_lines(keys), keys,
    )


def key_cap(snap: Snapshot, options: PlanOptions, ctx: Context) -> Refusal | Verdict:
    """--max-keys N (a fleet's guards.max_keys_per_target): a cap on how many keys one store's
    deletion may take, checked on every plan (pending keys included), so a store that grew
    past it is refused before its next change."""
    cap = options.max_keys
    if cap is None:
        return Verdict("key_cap", "n/a", "no --max-keys")
    count = len(snap.keys)
    if count <= cap:
        return Verdict("key_cap", "pass", f"{count} key(s), at most {cap}")
    return Refusal(
        RefusalReason.TOO_MANY_KEYS,
        f"{snap.store.id} holds {count} keys, over the cap of {cap}",
        f"Check the store, or raise the cap to {count}",
        ("the cap: --max-keys, or a fleet file's guards.max_keys_per_target",),
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
        f"Untag a key that is really meant to go, or {leave_out(ctx, '--protect-tag')}",
        (f"protected: {_tags_text(options.protect_tags)}", *each_line(hits),
         *new_plan_lines(ctx)),
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
        ("ksdelete tags each key before it schedules (or disables) it", *each_line(full),
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
             "be named)", *key_lines(unread)),
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
                       f"--allow-service-grants: {id_list(listed)}")
    return Refusal(
        RefusalReason.SERVICE_GRANTS,
        f"{len(live)} grant(s) on keys of {snap.store.id} are to AWS services (live "
        "integrations)",
        f"Stop what uses them, or go on with {option_of(ctx, '--allow-service-grants')}",
        ("AWS services use the keys on someone's behalf", *each_line(listed),
         "or retire the grants", *new_plan_lines(ctx, "--allow-service-grants")),
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
            f"{grant} {option_of(ctx, '--unused-for 0')} to skip this check",
            (f"why: {why}", "whether they are still used is unknown",
             *new_plan_lines(ctx, "--unused-for 0"), *key_lines([k.id for k in unknown])),
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
            f"{option_of(ctx, '--unused-for DAYS')} (0: off)",
            ("something may still depend on them", *each_line(listed),
             *new_plan_lines(ctx, "--unused-for DAYS")),
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
                   f"{id_list([k.id for k in untracked], 5)} (check CloudTrail)")
    return Verdict("not_recently_used", "pass", detail)
