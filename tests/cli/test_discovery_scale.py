"""Discovery over HTTP at scale: a store of 1,500 keys among 4,000 others, a few ms of latency,
every run reports exactly the seeded keys (a race once lost a few keys, differently each run)."""

from __future__ import annotations

import pytest

from ksdelete.emulator import Emulator

from .helpers import ksdelete, mutations

STORE_KEYS = 1500
OTHER_STORE_KEYS = 1000
PLAIN_KEYS = 3000


# About 25 s on 2 cores (16,500 DescribeKey calls through the emulator): `-m "not slow"` skips it.
@pytest.mark.slow
def test_status_finds_exactly_the_stores_keys_among_thousands(emulator: Emulator) -> None:
    seeded = emulator.seed({"region": "us-east-1", "plain_keys": PLAIN_KEYS, "stores": [
        {"name": "target", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
         "keys": STORE_KEYS},
        {"name": "other", "type": "EXTERNAL_KEY_STORE", "connection_state": "CONNECTED",
         "keys": OTHER_STORE_KEYS},
    ]})
    expected = set(seeded["stores"][0]["key_ids"])
    assert len(expected) == STORE_KEYS
    emulator.configure(latency_ms=3)

    for _ in range(3):
        # --no-cache: every run describes every key (the membership cache would spare runs
        # 2 and 3 the keys outside the store; tests/cli/test_cache.py covers that).
        # --unused-for 0: discovery is under test, not the last-use gate (5 calls a second).
        run = ksdelete(emulator, "status", "target", "--output", "json", "--no-cache",
                       "--unused-for", "0")
        store = run.store()
        assert {k["id"] for k in store["keys"]} == expected
        assert len(store["keys"]) == STORE_KEYS and store["undescribable"] == []
        assert run.exit_code == 3
        assert store["phase"]["text"] == f"keys-not-scheduled {STORE_KEYS}/{STORE_KEYS}"
    assert mutations(emulator) == []
    described = [c for c in emulator.calls() if c["operation"] == "DescribeKey"]
    assert len(described) == 3 * (STORE_KEYS + OTHER_STORE_KEYS + PLAIN_KEYS)
