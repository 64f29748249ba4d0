"""--max-keys (a fleet's guards.max_keys_per_target): the cap gate."""

from __future__ import annotations

from ksdelete import planner
from ksdelete.models import (
    ConnectionState,
    Context,
    Key,
    KeyStore,
    PlanOptions,
    Refusal,
    RefusalReason,
    Snapshot,
    StoreType,
    Verdict,
)

STORE = KeyStore("cks-1234567890abcdef0", "s", StoreType.EXTERNAL, ConnectionState.CONNECTED)


def _snap(count: int) -> Snapshot:
    keys = tuple(Key(id=f"{n:08d}-0000-0000-0000-000000000000",
                     arn=f"arn:aws:kms:eu-west-1:123456789012:key/{n:08d}",
                     state="Enabled", custom_key_store_id=STORE.id) for n in range(count))
    return Snapshot(STORE, keys)


def test_a_store_over_the_cap_is_refused_and_one_at_it_passes() -> None:
    over = planner.key_cap(_snap(4), PlanOptions(max_keys=3), Context())
    assert isinstance(over, Refusal) and over.reason is RefusalReason.TOO_MANY_KEYS
    assert "4 keys" in over.summary and "3" in over.summary
    at = planner.key_cap(_snap(3), PlanOptions(max_keys=3), Context())
    assert isinstance(at, Verdict) and at.verdict == "pass"
    off = planner.key_cap(_snap(99), PlanOptions(), Context())
    assert isinstance(off, Verdict) and off.verdict == "n/a"
