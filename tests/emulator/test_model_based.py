"""Model-based test: the emulator against a small reference model of kms-reference §2.2 (store
transitions) and §3.2 (key states), driven by a hypothesis state machine over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ksdelete.emulator import Emulator

from .conftest import hsm_store

CONNECT, DISCONNECT = 100.0, 50.0
DAY = 86400.0


@dataclass
class ModelKey:
    underlying: str = "Enabled"
    deletion_at: float | None = None  # seconds on the model clock


@dataclass
class Model:
    now: float = 0.0
    state: str = "DISCONNECTED"
    until: float = 0.0  # when CONNECTING / DISCONNECTING completes
    keys: dict[str, ModelKey] = field(default_factory=dict)
    deleted: bool = False

    def settle(self) -> None:
        if self.state == "CONNECTING" and self.now >= self.until:
            self.state = "CONNECTED"
        if self.state == "DISCONNECTING" and self.now >= self.until:
            self.state = "DISCONNECTED"
        for key_id, key in list(self.keys.items()):
            if key.deletion_at is not None and self.now >= key.deletion_at:
                del self.keys[key_id]

    def visible(self, key: ModelKey) -> str:
        if key.deletion_at is not None:
            return "PendingDeletion"
        return key.underlying if self.state == "CONNECTED" else "Unavailable"


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_emulator_matches_the_reference_model(emulator: Emulator, kms: Any) -> None:
    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            emulator.reset()
            emulator.configure(connect_seconds=CONNECT, disconnect_seconds=DISCONNECT)
            self.store = hsm_store(kms)
            self.model = Model()

        def expect(self, ok: bool, call: Any, **params: Any) -> Any:
            """Call the emulator; it must succeed exactly when the model says so."""
            try:
                response = call(**params)
            except ClientError as exc:
                assert not ok, f"{call.__name__} refused ({error_code(exc)}) but model allows"
                assert error_code(exc) in ("CustomKeyStoreInvalidStateException",
                                           "KMSInvalidStateException",
                                           "CustomKeyStoreHasCMKsException",
                                           "CustomKeyStoreNotFoundException")
                return None
            assert ok, f"{call.__name__} succeeded but the model forbids it"
            return response

        @precondition(lambda self: not self.model.deleted)
        @rule()
        def connect(self) -> None:
            m = self.model
            ok = m.state not in ("DISCONNECTING", "FAILED")
            self.expect(ok, kms.connect_custom_key_store, CustomKeyStoreId=self.store)
            if ok and m.state == "DISCONNECTED":
                m.state, m.until = "CONNECTING", m.now + CONNECT

        @precondition(lambda self: not self.model.deleted)
        @rule()
        def disconnect(self) -> None:
            m = self.model
            ok = m.state in ("CONNECTED", "CONNECTING")
            self.expect(ok, kms.disconnect_custom_key_store, CustomKeyStoreId=self.store)
            if ok:
                m.state, m.until = "DISCONNECTING", m.now + DISCONNECT

        @precondition(lambda self: not self.model.deleted and len(self.model.keys) < 4)
        @rule()
        def create_key(self) -> None:
            m = self.model
            response = self.expect(m.state == "CONNECTED", kms.create_key,
                                   CustomKeyStoreId=self.store, Origin="AWS_CLOUDHSM")
            if response is not None:
                m.keys[response["KeyMetadata"]["KeyId"]] = ModelKey()

        @precondition(lambda self: bool(self.model.keys))
        @rule(data=st.data(), days=st.integers(7, 30))
        def schedule(self, data: st.DataObject, days: int) -> None:
            m = self.model
            key_id = data.draw(st.sampled_from(sorted(m.keys)))
            key = m.keys[key_id]
            ok = key.deletion_at is None
            self.expect(ok, kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=days)
            if ok:
                key.deletion_at = m.now + days * DAY

        @precondition(lambda self: bool(self.model.keys))
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            m = self.model
            key_id = data.draw(st.sampled_from(sorted(m.keys)))
            key = m.keys[key_id]
            ok = key.deletion_at is not None
            self.expect(ok, kms.cancel_key_deletion, KeyId=key_id)
            if ok:
                key.deletion_at, key.underlying = None, "Disabled"

        @precondition(lambda self: bool(self.model.keys))
        @rule(data=st.data(), enable=st.booleans())
        def enable_or_disable(self, data: st.DataObject, enable: bool) -> None:
            m = self.model
            key_id = data.draw(st.sampled_from(sorted(m.keys)))
            key = m.keys[key_id]
            ok = key.deletion_at is None
            call = kms.enable_key if enable else kms.disable_key
            self.expect(ok, call, KeyId=key_id)
            if ok:  # on an Unavailable key this changes only the hidden state
                key.underlying = "Enabled" if enable else "Disabled"

        @precondition(lambda self: not self.model.deleted)
        @rule()
        def delete_store(self) -> None:
            m = self.model
            ok = m.state == "DISCONNECTED" and not m.keys
            self.expect(ok, kms.delete_custom_key_store, CustomKeyStoreId=self.store)
            m.deleted = ok

        @rule(seconds=st.sampled_from([10.0, 60.0, 120.0, 8 * DAY, 31 * DAY]))
        def time_passes(self, seconds: float) -> None:
            emulator.advance(seconds)
            self.model.now += seconds
            self.model.settle()

        @invariant()
        def same_store_state(self) -> None:
            m = self.model
            try:
                stores = kms.describe_custom_key_stores(CustomKeyStoreId=self.store)
            except ClientError as exc:
                assert m.deleted and error_code(exc) == "CustomKeyStoreNotFoundException"
                return
            assert not m.deleted
            assert stores["CustomKeyStores"][0]["ConnectionState"] == m.state

        @invariant()
        def same_key_states(self) -> None:
            m = self.model
            listed = {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]}
            assert listed == set(m.keys)
            for key_id, key in m.keys.items():
                meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
                assert meta["KeyState"] == m.visible(key), key_id
                assert ("DeletionDate" in meta) == (key.deletion_at is not None)

    run_state_machine_as_test(Machine, settings=settings(
        max_examples=25, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
