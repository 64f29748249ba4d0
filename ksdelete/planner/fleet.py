"""Fleet-wide gates: asked once over the whole fleet file, before the first change anywhere."""

from __future__ import annotations

from ksdelete.fleet.model import FleetSpec
from ksdelete.models import Refusal, RefusalReason


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
