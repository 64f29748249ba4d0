"""Step handlers of the store itself: connect (and wait for it), disconnect (and wait),
delete, verify. Each returns the line the reporter shows when the step is done."""

from __future__ import annotations

from ksdelete.errors import AwsError, KsdeleteError, StoreHasKeys, StoreInvalidState
from ksdelete.models import ConnectionState, KeyStore, Snapshot, Step
from ksdelete.retry import poll_until
from ksdelete.run.act import mutate, read_store, store_moved_on
from ksdelete.run.base import TRANSITION_TIMEOUT, Pending, Rescan
from ksdelete.run.store import StoreRun


def transition_timeout(run: StoreRun) -> float:
    if run.options.wait:
        return max(0.0, run.deadline - run.clock())
    return min(TRANSITION_TIMEOUT, run.options.max_wait)


def await_state(run: StoreRun, store_id: str, target: ConnectionState) -> KeyStore:
    """Poll the store until it reaches `target` (a connect that FAILED ends the wait)."""
    def done(store: KeyStore) -> bool:
        return store.connection_state is target or (
            target is ConnectionState.CONNECTED
            and store.connection_state is ConnectionState.FAILED
        )

    def note(call: str, attempt: int, delay: float, why: str) -> None:
        run.reporter.note(f"{why}; checking again in {delay:.1f}s")

    policy = run.gw.policy
    store = poll_until(
        lambda: read_store(run, store_id), done, call="DescribeCustomKeyStores",
        timeout=transition_timeout(run), initial=policy.poll_initial,
        maximum=policy.poll_max, policy=policy, on_retry=run.reporter.retry,
        on_poll=note, describe=lambda s: f"store is {s.connection_state}",
    )
    if store.connection_state is ConnectionState.FAILED:
        raise KsdeleteError(
            f"connecting the store failed: {store.connection_error_code}",
            where=store_id, hint="Fix the cluster or proxy, then run again"
            + ("" if run.options.plan_id else " with --connect"),
        )
    if store.connection_state is not target:
        raise Pending(None, f"the store is still {store.connection_state}; run again later")
    return store


def connect(run: StoreRun, store_id: str) -> str:
    """Connect the store: from FAILED, disconnect it first; from DISCONNECTING, wait for it."""
    store = read_store(run, store_id)
    if store.connection_state is ConnectionState.FAILED:
        mutate(run.svc, run.result, "DisconnectCustomKeyStore",
               lambda: run.gw.disconnect_store(store_id), already=store_moved_on)
        store = await_state(run, store_id, ConnectionState.DISCONNECTED)
    elif store.connection_state is ConnectionState.DISCONNECTING:
        store = await_state(run, store_id, ConnectionState.DISCONNECTED)
    if store.connection_state is ConnectionState.DISCONNECTED:
        mutate(run.svc, run.result, "ConnectCustomKeyStore",
               lambda: run.gw.connect_store(store_id), already=store_moved_on)
        return "connect requested"
    return f"already {store.connection_state}"


def connect_store(run: StoreRun, step: Step, snap: Snapshot) -> str:
    return connect(run, snap.store.id)


def await_connected(run: StoreRun, step: Step, snap: Snapshot) -> str:
    store = await_state(run, snap.store.id, ConnectionState.CONNECTED)
    return f"store is {store.connection_state}"


def disconnect_store(run: StoreRun, step: Step, snap: Snapshot) -> str:
    store_id = snap.store.id
    store = read_store(run, store_id)
    if store.connection_state in (ConnectionState.DISCONNECTED,
                                  ConnectionState.DISCONNECTING):
        return f"already {store.connection_state}"
    run.svc.guard.stop_if_cancel_requested(run.result, step.kind)
    mutate(run.svc, run.result, "DisconnectCustomKeyStore",
           lambda: run.gw.disconnect_store(store_id), already=store_moved_on)
    return "disconnect requested"


def await_disconnected(run: StoreRun, step: Step, snap: Snapshot) -> str:
    store = await_state(run, snap.store.id, ConnectionState.DISCONNECTED)
    return f"store is {store.connection_state}"


def delete_store(run: StoreRun, step: Step, snap: Snapshot) -> str:
    store_id = snap.store.id
    membership = run.svc.membership

    def attempt() -> AwsError | None:
        run.svc.guard.stop_if_cancel_requested(run.result, step.kind)
        try:
            mutate(run.svc, run.result, "DeleteCustomKeyStore",
                   lambda: run.gw.delete_store(store_id))
        except StoreHasKeys as exc:
            if membership.trusted:  # the cache may have hidden a key: look again
                membership.distrust()
                raise Rescan(f"DeleteCustomKeyStore: the store still has keys ({exc.what}"
                             "); scanning again, describing every key") from exc
            return exc  # a write not yet visible everywhere: try again for a while
        except StoreInvalidState as exc:
            return exc
        return None

    policy = run.gw.policy
    error = poll_until(
        attempt, lambda e: e is None, call="DeleteCustomKeyStore",
        timeout=policy.consistency_timeout, initial=policy.consistency_initial,
        maximum=policy.consistency_max, policy=policy, on_retry=run.reporter.retry,
        describe=lambda e: e.aws_code if e else "ok",
    )
    if error is not None:
        raise error
    return "DeleteCustomKeyStore accepted"


def verify_deleted(run: StoreRun, step: Step, snap: Snapshot) -> str:
    store_id = snap.store.id
    policy = run.gw.policy
    store = poll_until(
        lambda: run.gw.describe_store(store_id=store_id), lambda s: s is None,
        call="DescribeCustomKeyStores", timeout=policy.consistency_timeout,
        initial=policy.consistency_initial, maximum=policy.consistency_max, policy=policy,
        on_retry=run.reporter.retry, describe=lambda s: "store still listed",
    )
    if store is not None:
        raise KsdeleteError("the store is still listed after DeleteCustomKeyStore",
                            where=store_id, hint="Run again to re-check")
    return "CustomKeyStoreNotFoundException: the store is gone"
