"""plan(snapshot, options, now, context) -> Plan: a pure function of what was observed.

Every rule that can refuse a run is a gate here: a small pure function of the snapshot, the
options and the context (the operator's guards and the memory of earlier decisions). The
dry run, `status` and `delete` read the same verdicts, and the executor re-plans from a fresh
snapshot before every point of no return (scheduling, disconnecting, deleting), so a refusal
can stop a run at any of them. No I/O, no clock.

The gates live by what they protect: `where` (account and endpoint), `membership` (what the
store holds and what was confirmed), `cancels`, `evidence` (each key's evidence), `watching`
(CloudTrail and cancel requests); `planning` builds the plan from their verdicts.
"""

from __future__ import annotations

from ksdelete.planner.base import MAX_WINDOW_DAYS, MIN_WINDOW_DAYS, Gate
from ksdelete.planner.cancels import (
    cancelled_keys,
    cancelled_while_waiting,
    not_cancelled,
    plan_cancel,
)
from ksdelete.planner.evidence import (
    cloudhsm_connected,
    expected_key_count,
    key_cap,
    material_deleted,
    no_service_grants,
    not_protected,
    not_recently_used,
    room_for_marks,
)
from ksdelete.planner.fleet import (
    too_many_targets,
    unwitnessed,
    witness_notes,
    witness_refusal,
)
from ksdelete.planner.membership import (
    account_allowed,
    all_or_nothing,
    covered_by_confirmation,
    membership_known,
    name_pinned,
    no_keys_appeared,
    within_saved_plan,
)
from ksdelete.planner.planning import GATES, evaluate, phase_of, plan, refused_phase
from ksdelete.planner.watching import (
    cancel_not_requested,
    no_use_while_disabled,
    no_use_while_pending,
    soak_possible,
)
from ksdelete.planner.where import (
    AWS_DOMAINS,
    account_refusal,
    endpoint_refusal,
    service_endpoint,
    store_refusal,
)

__all__ = [
    "AWS_DOMAINS", "GATES", "Gate", "MAX_WINDOW_DAYS", "MIN_WINDOW_DAYS", "account_allowed",
    "account_refusal", "all_or_nothing", "cancel_not_requested", "cancelled_keys",
    "cancelled_while_waiting", "cloudhsm_connected", "covered_by_confirmation", "endpoint_refusal",
    "evaluate", "expected_key_count", "key_cap", "material_deleted", "membership_known",
    "name_pinned", "store_refusal",
    "no_keys_appeared", "no_service_grants", "no_use_while_disabled", "no_use_while_pending",
    "not_cancelled", "not_protected", "not_recently_used", "phase_of", "plan", "plan_cancel",
    "refused_phase",
    "room_for_marks", "service_endpoint", "soak_possible", "too_many_targets",
    "unwitnessed", "within_saved_plan", "witness_notes", "witness_refusal",
]
