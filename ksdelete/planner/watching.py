"""Gates fed by CloudTrail (the watch, the soak) and by `ksdelete cancel`'s request."""

from __future__ import annotations

from ksdelete.models import (
    Attempt,
    ConnectionState,
    Context,
    Key,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
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
    hints.append(f"pass {option_of(ctx, '--on-use ignore')} to go on unwatched")
    return text, hints


def _blind_details(why: str, hints: list[str], ctx: Context) -> tuple[str, ...]:
    """The detail lines of a watch that cannot see: why, and every way to go on."""
    budget = ["(the account logs these events faster than they can be read in time)"] \
        if "budget" in why else []
    return (f"why: {why}", *budget, f"to go on: {', or '.join(hints)}",
            *new_plan_lines(ctx, "--on-use ignore"))


def _blind_refusal(blind: list[Key], since: str, ctx: Context, summary: str, stop: str
                   ) -> Refusal:
    """The watch cannot see these keys (since they were `since`: scheduled, or disabled):
    the refusal, with why, every way to go on, and what the run does about it (`stop`)."""
    why, hints = _blindness(blind, since, ctx)
    return Refusal(
        RefusalReason.WATCH_BLIND, summary, f"To go on: {hints[0]}",
        (*_blind_details(why, hints, ctx), stop, *key_lines([k.id for k in blind])),
        tuple(k.id for k in blind),
    )


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
            (*each_line(told), action, "to delete a key after all, run ksdelete again without "
             "--yes and confirm it"),
            tuple(k.id for k, _ in used),
        )
    blind = _blind(pending)
    if blind:
        return _blind_refusal(
            blind, "scheduled", ctx,
            f"the watch cannot see {len(blind)} pending key(s) of {snap.store.id}",
            "whether they are still used is unknown, so this run stops here")
    late = _late(pending)
    detail = f"no use attempted on {len(pending) - len(late)} pending key(s) since scheduled"
    if late:
        detail += (f"; {len(late)} key(s) scheduled less than an hour ago are not visible in "
                   f"CloudTrail yet (it delivers late): {id_list([k.id for k in late], 5)}; "
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
            (*each_line(told), "nothing is scheduled; the keys stay Disabled"),
            tuple(k.id for k, _ in used),
        )
    blind = _blind(soaking)
    if blind:
        return _blind_refusal(
            blind, "disabled", ctx,
            f"the watch cannot see {len(blind)} key(s) ksdelete disabled to soak in "
            f"{snap.store.id}", "a soak that cannot see proves nothing, so nothing is scheduled")
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
             *key_lines(enabled)),
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
            f"Connect it ({option_of(ctx, '--connect')}), or "
            f"{leave_out(ctx, '--disable-first')}",
            ("its keys are Unavailable, DisableKey does not take effect until the store "
             "reconnects, and every attempt to use them fails anyway, so a soak would prove "
             "nothing", *new_plan_lines(ctx, "--connect"), *key_lines([k.id for k in fresh])),
            tuple(k.id for k in fresh),
        )
    return Verdict("soak_possible", "pass",
                   f"{options.disable_first_days}-day soak with the keys disabled")


# Ordered by what they protect: the first refusal is the one the operator reads, and the
# watch comes early so that its remedy (cancelling a key in use) is never held back by another:
# right after the gates that say this is the store meant (account, name). Not after
# membership_known: keys already pending are deleted by AWS whatever ksdelete does, and which
# of them are in the store is known even when some other key of the account is not.
