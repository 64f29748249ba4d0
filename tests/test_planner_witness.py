"""The second witness's gate (planner.fleet): pure, over hand-built inputs."""

from __future__ import annotations

from ksdelete import planner
from ksdelete.models import RefusalReason, WitnessedKey

R = RefusalReason

STORE = "cks-1234567890abcdef0"
AGG = "org@us-east-1"


def listed(*ids: str, store: str = STORE) -> list[WitnessedKey]:
    return [WitnessedKey("111111111111", "us-east-1", k, store) for k in ids]


def test_only_keys_config_lists_in_the_store_and_the_scan_missed_are_described() -> None:
    config = listed("k1", "k2", "k3") + listed("k9", store="cks-0000000000000000a")
    assert planner.unwitnessed(STORE, config, frozenset({"k1", "k4"})) == ("k2", "k3")
    # Config's silence (k4: found, not listed) is never evidence
    assert planner.unwitnessed(STORE, [], frozenset({"k4"})) == ()


def test_a_key_confirmed_in_the_store_refuses() -> None:
    refusal = planner.witness_refusal(STORE, AGG, in_store=["k2"])
    assert refusal is not None and refusal.reason is RefusalReason.SCAN_INCOMPLETE
    assert "scan was incomplete" in refusal.headline and refusal.key_ids == ("k2",)
    assert AGG in refusal.message and len(refusal.headline) <= 160
    assert not refusal.error  # a safety check said no: exit 4


def test_a_key_that_cannot_be_described_refuses() -> None:
    refusal = planner.witness_refusal(STORE, AGG, undescribed={"k2": "AccessDeniedException"})
    assert refusal is not None and refusal.reason is R.SCAN_INCOMPLETE
    assert "AccessDeniedException" in refusal.message and len(refusal.headline) <= 160


def test_a_failed_query_refuses_naming_the_aggregator() -> None:
    refusal = planner.witness_refusal(STORE, AGG, failed="NoSuchConfigurationAggregatorException")
    assert refusal is not None and refusal.reason is R.WITNESS_FAILED
    assert AGG in refusal.headline and "\n" not in refusal.headline


def test_nothing_missed_or_only_gone_keys_pass() -> None:
    assert planner.witness_refusal(STORE, AGG) is None
    notes = planner.witness_notes(AGG, ["k7"])
    assert len(notes) == 1 and "k7" in notes[0] and "no longer exists" in notes[0]
