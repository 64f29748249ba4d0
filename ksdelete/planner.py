"""plan(snapshot, options, now) -> Plan: a pure function of what was observed. No I/O, no clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from ksdelete.models import (
    ConnectionState,
    Plan,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    Step,
    StepKind,
    StoreType,
)

MIN_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 30


def plan(snapshot: Snapshot, options: PlanOptions, now: datetime) -> Plan:
    """The steps that take this store from what AWS shows now to deleted.

    Every step is safe to repeat: the executor re-reads AWS before each one, so a plan built
    from a snapshot that is a little stale still converges.
    """
    if not MIN_WINDOW_DAYS <= options.pending_window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"pending window must be 7..30 days, got {options.pending_window_days}")
    store = snapshot.store
    if snapshot.undescribable:
        ids = tuple(k.id for k in snapshot.undescribable)
        return _refused(
            store.id, RefusalReason.UNKNOWN_MEMBERSHIP,
            f"{len(ids)} KMS key(s) in this account and Region could not be described, so "
            f"whether they belong to {store.id} is unknown; nothing was changed. Grant "
            "kms:DescribeKey on them (key policy) and run again",
            ids,
        )

    keys = snapshot.keys
    if snapshot.confirmed_before is not None and not options.include_new_keys:
        new = tuple(k.id for k in keys if not k.pending and k.id not in snapshot.confirmed_before)
        if new:
            return _refused(
                store.id, RefusalReason.UNPLANNED_KEYS,
                f"{len(new)} key(s) appeared in {store.id} after its deletion was confirmed in "
                f"an earlier run: {', '.join(new)}. They may be in use; nothing was changed. "
                "Review them, then run again with --include-new-keys to delete them too (or "
                "`ksdelete cancel` to stop)",
                new,
            )
    to_schedule = tuple(k.id for k in keys if not k.pending)
    state = store.connection_state
    steps: list[Step] = []
    warnings: list[str] = []

    connecting = False
    if store.type is StoreType.CLOUDHSM and keys and state is not ConnectionState.CONNECTED:
        if options.connect:
            connecting = True
            if state is not ConnectionState.CONNECTING:
                steps.append(Step(StepKind.CONNECT_STORE, detail=f"from {state}"))
            steps.append(Step(StepKind.AWAIT_CONNECTED))
        elif options.allow_orphaned_key_material:
            warnings.append(
                f"the CloudHSM key store is {state}: when the waiting period ends KMS cannot "
                "delete the HSM key material, which stays orphaned in the cluster "
                "(--allow-orphaned-key-material)"
            )
        else:
            return _refused(
                store.id, RefusalReason.ORPHANED_KEY_MATERIAL,
                f"the CloudHSM key store is {state} but still holds {len(keys)} key(s); "
                "KMS can only delete their HSM key material if the store stays CONNECTED "
                "through the waiting period. Pass --connect to connect it first, or "
                "--allow-orphaned-key-material to accept orphaned material",
                tuple(k.id for k in keys),
            )

    if to_schedule:
        steps.append(Step(StepKind.SCHEDULE_KEY_DELETION, key_ids=to_schedule))
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

    return Plan(
        store_id=store.id,
        steps=tuple(steps),
        warnings=tuple(warnings),
        earliest_gone=_earliest_gone(snapshot, options, now, bool(to_schedule)),
        external_key_ids=external_ids,
    )


def _refused(store_id: str, reason: RefusalReason, message: str, key_ids: tuple[str, ...]
             ) -> Plan:
    return Plan(store_id=store_id, steps=(), refusal=Refusal(reason, message, key_ids))


def _earliest_gone(
    snapshot: Snapshot, options: PlanOptions, now: datetime, scheduling: bool
) -> datetime:
    dates = [k.deletion_date for k in snapshot.keys if k.deletion_date is not None]
    if scheduling:
        dates.append(now + timedelta(days=options.pending_window_days))
    return max(dates, default=now)
