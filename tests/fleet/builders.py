"""A fleet run built by hand (no emulator): five targets in two accounts, one of each kind of
outcome the views must show (pending, deleted, refused, an account whose role could not be
assumed, a target skipped after the rollout halted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ksdelete.errors import ExitStatus
from ksdelete.fleet.model import AccountSpec, FleetRun, FleetSpec, StoreTarget, TargetResult
from ksdelete.models import (
    PENDING_DELETION,
    Action,
    ConnectionState,
    Key,
    KeyStore,
    Plan,
    Snapshot,
    Status,
    Step,
    StepKind,
    StoreResult,
    StoreType,
)
from ksdelete.phase import PhaseName, StorePhase
from ksdelete.planner import phase_of

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
GONE = T0 + timedelta(days=7)
RESUME = GONE + timedelta(days=1)

DEV, STAGE = "111122223333", "444455556666"
PENDING_T = StoreTarget(DEV, "eu-west-1", "cks-1111111111111111a", expect_name="dev-hsm")
DELETED_T = StoreTarget(DEV, "us-east-1", "cks-1111111111111111b")
REFUSED_T = StoreTarget(DEV, "us-east-1", "cks-1111111111111111c")
DENIED_T = StoreTarget(STAGE, "eu-west-1", "cks-4444444444444444a")
SKIPPED_T = StoreTarget(STAGE, "us-east-1", "cks-4444444444444444b")

SPEC = FleetSpec(
    name="retire-payments",
    accounts=(
        AccountSpec(DEV, "payments-dev", (PENDING_T, DELETED_T, REFUSED_T),
                    role=(f"arn:aws:iam::{DEV}:role/KsdeleteExecution",)),
        AccountSpec(STAGE, "payments-stage", (DENIED_T, SKIPPED_T),
                    role=(f"arn:aws:iam::{STAGE}:role/KsdeleteExecution",)),
    ),
    path=Path("fleet.yml"), sha256="ab" * 32,
)


def role_arn(account: str) -> str:
    return f"arn:aws:sts::{account}:assumed-role/KsdeleteExecution/ksdelete-r-7f3c"


def store(target: StoreTarget, name: str = "hsm",
          state: ConnectionState = ConnectionState.CONNECTED) -> KeyStore:
    return KeyStore(target.store_id, name, StoreType.CLOUDHSM, state)


def keys(target: StoreTarget, count: int, *, pending: int) -> tuple[Key, ...]:
    return tuple(
        Key(f"1234abcd-12ab-34cd-56ef-{target.store_id[-1]}{i:011d}",
            f"arn:aws:kms:{target.region}:{target.account_id}:key/{i}",
            PENDING_DELETION if i < pending else "Enabled", target.store_id,
            deletion_date=GONE if i < pending else None)
        for i in range(count))


AFTER_SCHEDULE = (Step(StepKind.AWAIT_KEYS_DELETED), Step(StepKind.DISCONNECT_STORE),
                  Step(StepKind.AWAIT_DISCONNECTED), Step(StepKind.DELETE_STORE),
                  Step(StepKind.VERIFY_DELETED))


def pending_result(target: StoreTarget = PENDING_T) -> StoreResult:
    """A first run: three keys scheduled (one of them already was), waiting out the window."""
    ks = keys(target, 3, pending=3)
    kstore = store(target, "dev-hsm")
    schedule = Step(StepKind.SCHEDULE_KEY_DELETION, tuple(k.id for k in ks), window_days=7)
    return StoreResult(
        ref=target.store_id, status=Status.PENDING, matched_by="id", store=kstore, keys=ks,
        plan=Plan(target.store_id, (schedule, *AFTER_SCHEDULE), earliest_gone=GONE),
        actions=[Action("TagResource", "ok", ks[0].id),
                 Action("ScheduleKeyDeletion", "ok", ks[0].id, "req-0", T0),
                 Action("ScheduleKeyDeletion", "ok", ks[1].id, "req-1", T0),
                 Action("ScheduleKeyDeletion", "already-done", ks[2].id, None, T0),
                 Action("ScheduleKeyDeletion", "error:KMSInternalException", ks[2].id)],
        resume_after=RESUME, phase=phase_of(Snapshot(kstore, ks), None)[1], scanned=40)


def deleted_result(target: StoreTarget = DELETED_T) -> StoreResult:
    return StoreResult(
        ref=target.store_id, status=Status.DELETED, matched_by="id",
        store=store(target, state=ConnectionState.DISCONNECTED),
        plan=Plan(target.store_id, (Step(StepKind.DELETE_STORE), Step(StepKind.VERIFY_DELETED))),
        actions=[Action("DeleteCustomKeyStore", "ok", None, "req-9", T0)],
        phase=StorePhase.of(PhaseName.DELETED))


REFUSAL = {"code": "refused", "message": "2 key(s) of the store were cancelled by ksdelete "
           "cancel: run ksdelete cancel --enable or remove the store from the file",
           "details": ["key 1234abcd-12ab-34cd-56ef-c00000000000 cancelled at 2026-12-01"],
           "key_ids": ["1234abcd-12ab-34cd-56ef-c00000000000"]}


def refused_result(target: StoreTarget = REFUSED_T) -> StoreResult:
    return StoreResult(
        ref=target.store_id, status=Status.REFUSED, matched_by="id", store=store(target),
        keys=keys(target, 2, pending=0), plan=Plan(target.store_id, ()), error=REFUSAL,
        phase=StorePhase.of(PhaseName.REFUSED, "(cancelled-keys)", reason="cancelled-keys"))


DENIED = {"code": "AccessDenied", "message": f"cannot assume arn:aws:iam::{STAGE}:role/"
          f"KsdeleteExecution in account {STAGE}: AccessDenied"}
HALT = "the rollout halted: 1 failure(s), tolerance 0"


def fleet_run(command: str = "fleet apply") -> FleetRun:
    return FleetRun(
        spec=SPEC, command=command, run_id="r-7f3c", hub_arn="arn:aws:sts::222233334444:"
        "assumed-role/ksdelete-hub/ops", plan_id=None, halted=True, halt_reason=HALT,
        targets=[
            TargetResult(PENDING_T, "payments-dev", Status.PENDING, ExitStatus.PENDING,
                         pending_result(), role_arn(DEV), duration_s=41.25),
            TargetResult(DELETED_T, "payments-dev", Status.DELETED, ExitStatus.OK,
                         deleted_result(), role_arn(DEV), duration_s=3.5),
            TargetResult(REFUSED_T, "payments-dev", Status.REFUSED, ExitStatus.REFUSED,
                         refused_result(), role_arn(DEV), duration_s=2.0),
            TargetResult(DENIED_T, "payments-stage", Status.ERROR, ExitStatus.ERROR,
                         error=DENIED, duration_s=0.4),
            TargetResult(SKIPPED_T, "payments-stage", Status.SKIPPED, ExitStatus.REFUSED,
                         error={"code": "skipped", "message": f"not started: {HALT}"}),
        ])
