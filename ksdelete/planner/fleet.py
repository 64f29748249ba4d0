"""Fleet-wide gates: asked once over the whole fleet file, before the first change anywhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ksdelete.fleet.model import FleetSpec
from ksdelete.models import Refusal, RefusalReason, WitnessedKey


def too_many_targets(spec: FleetSpec) -> Refusal | None:
    """guards.max_targets: a file that names more stores than its own cap is refused whole
    (nothing changed anywhere), not cut down to the first N."""
    cap = spec.guards.max_targets
    count = len(spec.targets)
    if cap is None or count <= cap:
        return None
    accounts = len(spec.accounts)
    return Refusal(
        RefusalReason.TOO_MANY_TARGETS,
        f"the fleet file names {count} targets, more than its max_targets {cap}",
        "Raise guards.max_targets or split the file",
        (f"{count} stores in {accounts} account{'s' if accounts != 1 else ''}; "
         f"guards.max_targets: {cap}",),
    )


# ---- the second witness: an AWS Config aggregator (discovery.config_aggregator) ------------

def unwitnessed(store_id: str, listed: Sequence[WitnessedKey], found: frozenset[str]
                ) -> tuple[str, ...]:
    """The keys Config attributes to the store that the scan did not find: each is to be
    described individually. Config's silence (a key the scan found that Config does not
    list) is never evidence of anything."""
    return tuple(sorted({k.key_id for k in listed if k.store_id == store_id}
                        - found))


def witness_refusal(store_id: str, aggregator: str, *, in_store: Sequence[str] = (),
                    undescribed: Mapping[str, str] | None = None,
                    failed: str | None = None, said: str = "") -> Refusal | None:
    """A target's verdict from the second witness, before its first change: refused when the
    query failed (the operator asked for the witness: fail closed), when DescribeKey confirms
    in the store a key that Config lists and the scan did not find (the scan was
    incomplete), or when such a key cannot be described (its membership is unknown). A key
    Config lists that no longer exists is no reason (Config lags): see `witness_notes`."""
    if failed is not None:
        return Refusal(
            RefusalReason.WITNESS_FAILED,
            f"the AWS Config aggregator {aggregator} could not be queried",
            "Nothing was changed; fix it or remove discovery.config_aggregator",
            (f"AWS: {failed}" + (f": {said}" if said else ""),
             "The hub identity needs config:SelectAggregateResourceConfig on the aggregator"))
    undescribed = dict(undescribed or {})
    if in_store:
        return Refusal(
            RefusalReason.SCAN_INCOMPLETE,
            f"the scan was incomplete: ListKeys missed {len(in_store)} key(s) of the store "
            "that AWS Config lists",
            "Nothing was changed; find out why, then run again",
            (f"AWS Config ({aggregator}) attributes them to {store_id}, and DescribeKey "
             "confirms them in it:", *in_store),
            key_ids=tuple(in_store))
    if undescribed:
        return Refusal(
            RefusalReason.SCAN_INCOMPLETE,
            f"the scan may be incomplete: AWS Config lists {len(undescribed)} key(s) in the "
            "store that cannot be described",
            "Nothing was changed; check kms:DescribeKey on them",
            (f"AWS Config ({aggregator}) attributes them to {store_id}; the scan did not "
             "find them:", *(f"{k}: {code}" for k, code in sorted(undescribed.items()))),
            key_ids=tuple(sorted(undescribed)))
    return None


def witness_notes(aggregator: str, gone: Sequence[str]) -> list[str]:
    """What a target's result says of keys Config lists that no longer exist."""
    return [f"AWS Config ({aggregator}) still lists key {k}, which no longer exists "
            "(Config lags); noted only" for k in gone]
