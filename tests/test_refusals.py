"""Every refusal the planner can produce reads at a glance: its first line says what and the
fix in at most 160 characters, whatever the number of keys; the keys and the evidence follow
on lines of their own. Pure: each gate of ksdelete/planner/ is built into its refusal over
a store with many keys, for `delete` and for `apply` (a saved plan)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ksdelete import planner
from ksdelete.fleet.model import AccountSpec, FleetSpec, Guards, StoreTarget
from ksdelete.models import (
    ApprovedStore,
    Attempt,
    CancelTrail,
    ConnectionState,
    Context,
    Grant,
    Identity,
    Key,
    KeyStore,
    Marks,
    Pin,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    StoreType,
    UndescribableKey,
    Usage,
    Verdict,
    Watch,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STORE = "cks-1234567890abcdef0"
MANY = 150  # keys in the store: the first line must not grow with them
LIMIT = 160
ARN = "arn:aws:iam::111122223333:role/a-rather-long-role-name-for-the-operations-team/session"


def _store_refusal(s: Snapshot, o: PlanOptions, c: Context) -> Refusal | Verdict:
    return planner.store_refusal(s.store, "x" * 80, "AWS_CLOUDHSM") or Verdict("store", "pass")


def key_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def key(n: int, state: str = "Enabled", **extra: object) -> Key:
    pending = state == "PendingDeletion"
    base = Key(
        id=key_id(n), arn=f"arn:aws:kms:us-east-1:111122223333:key/{key_id(n)}", state=state,
        custom_key_store_id=STORE,
        deletion_date=NOW + timedelta(days=5) if pending else None,
        grants=None if pending else (), tags=None if pending else (),
        usage=None if pending else Usage(tracking_start=NOW - timedelta(days=200)),
        watch=Watch(since=NOW - timedelta(days=1)) if pending else None,
    )
    return replace(base, **extra)  # type: ignore[arg-type]


def keys(state: str = "Enabled", **extra: object) -> tuple[Key, ...]:
    return tuple(key(n, state, **extra) for n in range(MANY))


def store(state: ConnectionState = ConnectionState.CONNECTED,
          kind: StoreType = StoreType.CLOUDHSM) -> KeyStore:
    return KeyStore(STORE, "payments", kind, state, cloudhsm_cluster_id="cluster-abcdefghijk")


def snap(ks: tuple[Key, ...] = (), **extra: object) -> Snapshot:
    return Snapshot(store(), ks, observed_at=NOW, scanned=len(ks), **extra)  # type: ignore[arg-type]


ATTEMPT = Attempt("Decrypt", ARN, NOW - timedelta(hours=2), "KMSInvalidStateException")
MARK = f"{NOW - timedelta(days=3):%Y-%m-%dT%H:%M:%SZ} prior=Enabled days=14 run=r1"
SERVICE = Grant("g1", "rds.eu-west-1.amazonaws.com", ("Decrypt",))
FIFTY = tuple((f"team-{i:02d}", "x") for i in range(50))
LONG_NAME = "payments-" + "x" * 240  # store names may be 256 characters long

Case = tuple[Callable[..., "Refusal | Verdict"], Snapshot, PlanOptions, Context]


def _cases() -> dict[str, Case]:
    o, c = PlanOptions(), Context()
    down = Snapshot(store(ConnectionState.DISCONNECTED), keys("Unavailable"), observed_at=NOW)
    undescribable = tuple(UndescribableKey(key_id(1000 + n), f"arn:{n}", "AccessDeniedException",
                                           "denied", access_denied=True) for n in range(MANY))
    failing = tuple(replace(u, error_code="InternalFailure", access_denied=False)
                    for u in undescribable)
    soaking = keys("Disabled", marks=Marks(disabled=MARK),
                   watch=Watch(since=NOW - timedelta(days=3)))
    return {
        "account_allowed": (planner.account_allowed, snap(keys(), identity=Identity(
            "111122223333", "us-east-1", ARN)), o, replace(c, allowed_accounts=frozenset(
                {"444455556666"}))),
        "account_allowed, several accounts": (planner.account_allowed, snap(keys(), identity=(
            Identity("111122223333", "us-east-1"))), o, replace(c, allowed_accounts=frozenset(
                f"{n:012d}" for n in range(40)))),
        "name_pinned": (planner.name_pinned, snap(keys(), matched_by="name"), o,
                        replace(c, pin=Pin(LONG_NAME, "cks-0000000000aaaaaaa",
                                           "2026-11-01T10:00:00Z"))),
        "membership_known, AccessDenied": (planner.membership_known,
                                           snap(keys(), undescribable=undescribable), o, c),
        "membership_known, AWS failed": (planner.membership_known,
                                         snap(keys(), undescribable=failing), o, c),
        "no_keys_appeared": (planner.no_keys_appeared, snap(keys()), o,
                             replace(c, planned=frozenset())),
        "within_saved_plan, type": (planner.within_saved_plan, snap(keys()), o, replace(
            c, approved=ApprovedStore(STORE, "payments", StoreType.EXTERNAL, frozenset()))),
        "within_saved_plan, keys": (planner.within_saved_plan, snap(keys()), o, replace(
            c, approved=ApprovedStore(STORE, "payments", StoreType.CLOUDHSM, frozenset()))),
        "covered_by_confirmation": (planner.covered_by_confirmation, snap(keys()), o,
                                    replace(c, confirmed_before=frozenset())),
        "covered_by_confirmation, marked store": (
            planner.covered_by_confirmation,
            snap((*keys(), *(key(MANY + n, "PendingDeletion", marks=Marks(scheduled=MARK))
                            for n in range(MANY)))), o, c),
        "not_cancelled, CloudTrail unreadable": (
            planner.not_cancelled,
            snap(keys(), cancel_trail=CancelTrail(NOW - timedelta(days=9),
                                                  error="AccessDeniedException: no")), o, c),
        "not_cancelled": (planner.not_cancelled,
                          snap(keys(marks=Marks(scheduled=MARK, cancelled=f"{NOW} by={ARN}"))),
                          o, c),
        "cloudhsm_connected": (planner.cloudhsm_connected, down, o, c),
        "material_deleted": (planner.material_deleted,
                             snap(orphaned=tuple(key_id(n) for n in range(MANY))), o, c),
        "expected_key_count": (planner.expected_key_count, snap(keys()),
                               PlanOptions(expect_keys=99999), c),
        "expected_key_count, confirmed": (planner.expected_key_count, snap(keys()),
                                          PlanOptions(expect_keys=99999),
                                          replace(c, confirmed_before=frozenset(
                                              key_id(n) for n in range(MANY)))),
        "key_cap": (planner.key_cap, snap(keys()), PlanOptions(max_keys=3), c),
        "store_refusal": (_store_refusal, snap(keys()), o, c),
        "not_protected": (planner.not_protected, snap(keys(tags=(("keep", "x" * 200),))),
                          PlanOptions(protect_tags=(("keep", "x" * 200),)), c),
        "room_for_marks": (planner.room_for_marks, snap(keys(tags=FIFTY)), o, c),
        "no_service_grants, unread": (planner.no_service_grants, snap(keys(grants=None)), o, c),
        "no_service_grants": (planner.no_service_grants, snap(keys(grants=(SERVICE,))), o, c),
        "not_recently_used, unknown": (planner.not_recently_used, snap(keys(usage=Usage(
            error="AccessDeniedException"))), o, c),
        "not_recently_used": (planner.not_recently_used, snap(keys(usage=Usage(
            tracking_start=NOW - timedelta(days=200), last_used=NOW - timedelta(days=2),
            operation="Decrypt", event_id="e" * 36))), o, c),
        "no_use_while_pending": (planner.no_use_while_pending, snap(keys(
            "PendingDeletion", watch=Watch(since=NOW - timedelta(days=1),
                                           attempts=(ATTEMPT,)))), o, c),
        "no_use_while_pending, refuse only": (planner.no_use_while_pending, snap(keys(
            "PendingDeletion", watch=Watch(since=NOW - timedelta(days=1),
                                           attempts=(ATTEMPT,)))),
            PlanOptions(on_use="refuse"), c),
        "no_use_while_pending, read only": (planner.no_use_while_pending, snap(keys(
            "PendingDeletion", watch=Watch(since=NOW - timedelta(days=1),
                                           attempts=(ATTEMPT,)))), o, replace(c, read_only=True)),
        "no_use_while_pending, blind": (planner.no_use_while_pending, snap(keys(
            "PendingDeletion", watch=Watch(since=None, error="budget exhausted, failed, "
                                           "no permission"))), o, c),
        "no_use_while_pending, blind budget": (planner.no_use_while_pending, snap(keys(
            "PendingDeletion", watch=Watch(since=None, error="the budget ran out"))), o, c),
        "no_use_while_pending, blind events": (planner.no_use_while_pending, snap(keys(
            "PendingDeletion", watch=Watch(since=None, scheduled=NOW - timedelta(days=2)))),
            o, c),
        "no_use_while_pending, blind read failed": (planner.no_use_while_pending, snap(keys(
            "PendingDeletion", watch=Watch(since=None, error="a read failed"))), o, c),
        "cancel_not_requested": (planner.cancel_not_requested, snap(keys()), o, replace(
            c, cancel_requested=f"requested at 2026-11-28T11:00:00Z by {ARN} (pid 4242)")),
        "no_use_while_disabled": (planner.no_use_while_disabled, snap(tuple(
            replace(k, watch=Watch(since=NOW - timedelta(days=3), attempts=(ATTEMPT,)))
            for k in soaking)), o, c),
        "no_use_while_disabled, blind": (planner.no_use_while_disabled, snap(tuple(
            replace(k, watch=None) for k in soaking)), o, c),
        "soak_possible, broken": (planner.soak_possible, snap(keys(marks=Marks(disabled=MARK))),
                                  o, c),
        "soak_possible": (planner.soak_possible, replace(down, store=store(
            ConnectionState.DISCONNECTING)), PlanOptions(disable_first_days=14), c),
    }


CASES = _cases()


def _apply(ctx: Context, snapshot: Snapshot) -> Context:
    """The same context in `apply`: a saved plan that holds every key of the store."""
    if ctx.approved is not None:
        return ctx
    return replace(ctx, approved=ApprovedStore(STORE, "payments", StoreType.CLOUDHSM,
                                               snapshot.key_ids()))


def _refusals() -> list[tuple[str, Refusal]]:
    out: list[tuple[str, Refusal]] = []
    for name, (gate, snapshot, options, ctx) in CASES.items():
        for command, context in (("delete", ctx), ("apply", _apply(ctx, snapshot))):
            answer = gate(snapshot, options, context)
            if isinstance(answer, Refusal):
                out.append((f"{name} ({command})", answer))
            else:
                assert command == "apply", (name, answer)  # every case refuses in `delete`
    out.append(("endpoint_refusal", planner.endpoint_refusal(
        "https://kms.example.com:8443/" + "p" * 200, None)))  # type: ignore[arg-type]
    out.append(("endpoint_refusal, AWS", planner.endpoint_refusal(
        None, "http://localhost:5000")))  # type: ignore[arg-type]
    out.append(("cancelled_while_waiting", planner.cancelled_while_waiting(
        key(0, "Disabled"), "already done by this run: TagResource x150, ScheduleKeyDeletion "
        "x150; nothing further was changed")))  # type: ignore[arg-type]
    out.append(("all_or_nothing", planner.all_or_nothing(
        STORE, [("cks-0000000000aaaaaaa", "refused"), (LONG_NAME, "error")],
        started=True)))  # type: ignore[arg-type]
    out.extend((f"all_or_nothing, {other[:24]}", planner.all_or_nothing(
        STORE, [(other, "refused")], started=False))  # type: ignore[misc]
        for other in ("cks-0000000000aaaaaaa", "payments-eu-west-1-prod", LONG_NAME))
    out.append(("too_many_targets", planner.too_many_targets(_fleet(MANY))))  # type: ignore[arg-type]
    # The fleet's second witness (AWS Config): a long aggregator name, MANY keys.
    aggregator, missed = "organization-kms-keys-witness@eu-central-1", [key_id(n) for n in
                                                                         range(MANY)]
    out.append(("witness_refusal, failed", planner.witness_refusal(
        STORE, aggregator, failed="NoSuchConfigurationAggregatorException",
        said="The configuration aggregator does not exist.")))  # type: ignore[arg-type]
    out.append(("witness_refusal, in the store", planner.witness_refusal(
        STORE, aggregator, in_store=missed)))  # type: ignore[arg-type]
    out.append(("witness_refusal, undescribed", planner.witness_refusal(  # type: ignore[arg-type]
        STORE, aggregator, undescribed=dict.fromkeys(missed, "AccessDeniedException"))))
    return out


def _fleet(stores: int) -> FleetSpec:
    """A fleet file's spec with `stores` stores in one account, and a cap of 2."""
    targets = tuple(StoreTarget("111122223333", "us-east-1", f"cks-{n:017x}")
                    for n in range(stores))
    return FleetSpec("f", (AccountSpec("111122223333", "a", targets, profile="p"),),
                     guards=Guards(max_targets=2))


REFUSALS = _refusals()


def test_every_refusal_the_planner_builds_has_a_case() -> None:
    """A new `Refusal(` in the planner needs its case here (and so its short first line)."""
    source = "".join(path.read_text(encoding="utf-8")
                     for path in sorted(Path(planner.__file__).parent.glob("*.py")))
    built = len(re.findall(r"\bRefusal\(\s*\n?\s*RefusalReason\.", source))
    assert built == source.count("Refusal(")
    assert len(CASES) + 4 >= built
    assert {r.reason for _, r in REFUSALS} == set(RefusalReason)


@pytest.mark.parametrize(("name", "refusal"), REFUSALS, ids=[n for n, _ in REFUSALS])
def test_the_first_line_says_what_and_the_fix_in_at_most_160_characters(
        name: str, refusal: Refusal) -> None:
    first = refusal.headline
    assert "\n" not in first
    assert len(first) <= LIMIT, f"{len(first)} characters: {first}"
    assert refusal.fix and first.endswith(refusal.fix), first  # the fix is on the first line
    assert refusal.fix[0].isupper() or refusal.fix[0] == "`", refusal.fix
    # Whatever the number of keys: no key's ID on the first line; the keys follow it.
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", first), first
    assert refusal.message.split("\n")[0] == first
    assert all(line and "\n" not in line for line in refusal.details)
    if refusal.key_ids and len(refusal.key_ids) > 1:
        assert refusal.key_ids[0] in "\n".join(refusal.details), refusal.details
    assert "nothing was changed" not in first  # the run says what it changed, once


def test_the_key_list_is_bounded_and_the_json_keeps_every_key() -> None:
    refusal = next(r for n, r in REFUSALS if n == "not_protected (delete)")
    assert len(refusal.key_ids) == MANY
    assert max(len(line) for line in refusal.details) < 400
    assert any("more" in line for line in refusal.details)
