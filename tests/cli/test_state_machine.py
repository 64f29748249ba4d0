"""Property: whatever operators, other clients and the clock do, ksdelete only ever changes the
target store and its keys, and it deletes the store only once every key in it is gone."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ksdelete.emulator import Emulator

from .helpers import DAY, ksdelete, mutations


def test_pipeline_state_machine(emulator: Emulator, tmp_path: Any) -> None:
    emulator.configure(connect_seconds=0.0, disconnect_seconds=0.0)

    class Pipeline(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            emulator.reset()
            emulator.configure(connect_seconds=0.0, disconnect_seconds=0.0)
            seeded = emulator.seed({"region": "us-east-1", "plain_keys": 3, "stores": [
                {"name": "target", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
                 "keys": 2},
                {"name": "bystander", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
                 "keys": 2}]})
            self.store_id = seeded["stores"][0]["id"]
            self.members = set(seeded["stores"][0]["key_ids"])
            keys = {k["KeyId"]: k for k in emulator.state()["keys"]}
            self.bystanders = {k: v for k, v in keys.items() if k not in self.members}
            self.kms: Any = boto3.client("kms", endpoint_url=emulator.endpoint_url,
                                         region_name="us-east-1")
            self.deleted = False
            # Each example is a new account history: its own journal (names are pinned in it).
            self.journal = str(tmp_path / f"{uuid.uuid4().hex}.jsonl")

        def _store(self) -> dict[str, Any] | None:
            return next((s for s in emulator.state()["stores"]
                         if s["CustomKeyStoreId"] == self.store_id), None)

        @rule(window=st.sampled_from(["7", "30"]), connect=st.booleans(),
              days_later=st.integers(0, 35))
        def delete(self, window: str, connect: bool, days_later: int) -> None:
            emulator.advance(days_later * DAY)
            args = ["target", "--yes", "--pending-window-days", window, "--output", "json",
                    "--journal", self.journal]
            run = ksdelete(emulator, *args, *(["--connect"] if connect else []))
            assert run.exit_code in (0, 3, 4), run.stderr
            event(f"delete exit {run.exit_code}")
            if run.exit_code == 0:
                assert run.store()["status"] == "deleted"
                # A run after the deletion finds the store gone, with the journal as evidence.
                assert self.deleted or not run.store()["warnings"]
                self.deleted = True

        @rule()
        def cancel(self) -> None:
            run = ksdelete(emulator, "cancel", "target", "--yes", "--output", "json",
                           "--journal", self.journal)
            assert run.exit_code in (0, 1), run.stderr

        @rule()
        def someone_disconnects(self) -> None:
            store = self._store()
            if store and store["ConnectionState"] == "CONNECTED":
                self.kms.disconnect_custom_key_store(CustomKeyStoreId=self.store_id)

        @rule()
        def someone_adds_a_key(self) -> None:
            store = self._store()
            if store and store["ConnectionState"] == "CONNECTED":
                new = self.kms.create_key(CustomKeyStoreId=self.store_id, Origin="AWS_CLOUDHSM")
                self.members.add(new["KeyMetadata"]["KeyId"])

        @invariant()
        def only_the_target_is_ever_changed(self) -> None:
            for call in mutations(emulator):
                key = call.get("key_id")
                if key is not None:
                    assert str(key).rsplit("/", 1)[-1] in self.members, call
                store = call.get("custom_key_store_id")
                if call["operation"].endswith("CustomKeyStore") and store is not None:
                    assert store == self.store_id, call
            keys = {k["KeyId"]: k for k in emulator.state()["keys"]}
            assert {k: keys.get(k) for k in self.bystanders} == self.bystanders

        @invariant()
        def the_store_goes_only_after_its_keys(self) -> None:
            if self._store() is None:
                remaining = {k["KeyId"] for k in emulator.state()["keys"]} & self.members
                assert remaining == set()

    run_state_machine_as_test(Pipeline, settings=settings(
        max_examples=10, stateful_step_count=10, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))


def test_a_cancel_stays_cancelled_across_machines(emulator: Emulator, tmp_path: Any) -> None:
    """Unattended runs on two machines (separate journals), interleaved with someone cancelling
    one key by hand and the operator cancelling the store: a key whose deletion was cancelled
    is never scheduled again without a person's fresh confirmation."""

    class Undo(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            emulator.reset()
            emulator.configure(connect_seconds=0.0, disconnect_seconds=0.0)
            seeded = emulator.seed({"region": "us-east-1", "plain_keys": 2, "stores": [
                {"name": "target", "type": "EXTERNAL_KEY_STORE",
                 "connection_state": "CONNECTED", "keys": 3}]})
            self.members = set(seeded["stores"][0]["key_ids"])
            self.kms: Any = boto3.client("kms", endpoint_url=emulator.endpoint_url,
                                         region_name="us-east-1")
            self.cancelled: dict[str, int] = {}  # key -> mutations seen when it was cancelled
            run = uuid.uuid4().hex
            self.journals = {m: str(tmp_path / f"{run}-{m}.jsonl") for m in "AB"}

        def _states(self) -> dict[str, str]:
            return {k["KeyId"]: k["KeyState"] for k in emulator.state()["keys"]
                    if k["KeyId"] in self.members}

        @rule(machine=st.sampled_from("AB"), days_later=st.integers(0, 10))
        def unattended_run(self, machine: str, days_later: int) -> None:
            emulator.advance(days_later * DAY)
            run = ksdelete(emulator, "target", "--yes", "--pending-window-days", "7",
                           "--journal", self.journals[machine], "--output", "json")
            assert run.exit_code in (0, 1, 3, 4), run.stderr
            event(f"unattended exit {run.exit_code}")

        @rule(data=st.data())
        def someone_cancels_one_key(self, data: st.DataObject) -> None:
            pending = sorted(k for k, s in self._states().items() if s == "PendingDeletion")
            if pending:
                key = data.draw(st.sampled_from(pending))
                self.kms.cancel_key_deletion(KeyId=key)
                self.cancelled[key] = len(mutations(emulator))

        @rule(machine=st.sampled_from("AB"))
        def operator_cancels(self, machine: str) -> None:
            pending = [k for k, s in self._states().items() if s == "PendingDeletion"]
            run = ksdelete(emulator, "cancel", "target", "--yes", "--journal",
                           self.journals[machine], "--output", "json")
            assert run.exit_code in (0, 1), run.stderr
            seen = len(mutations(emulator))
            for key in pending:
                if self._states().get(key) not in (None, "PendingDeletion"):
                    self.cancelled[key] = seen

        @invariant()
        def a_cancelled_key_is_never_scheduled_again(self) -> None:
            calls = mutations(emulator)
            for key, seen in self.cancelled.items():
                again = [c for c in calls[seen:] if c["operation"] == "ScheduleKeyDeletion"
                         and str(c.get("key_id", "")).rsplit("/", 1)[-1] == key]
                assert again == [], (key, again)

    run_state_machine_as_test(Undo, settings=settings(
        max_examples=8, stateful_step_count=8, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
