"""The IAM actions each part of ksdelete needs, and the least-privilege policy built from them."""

from __future__ import annotations

from typing import Any

from ksdelete.gateway import PERMISSIONS
from ksdelete.models import StepKind

# Gateway methods each piece of work calls. Tests check these against the gateway's table.
DISCOVERY = ("describe_store", "list_keys", "describe_key", "list_aliases", "list_resource_tags",
             # `fleet inventory`: every store of an account and Region.
             "list_stores",
             # The preflight gates (grants, last use) and the watch (CloudTrail).
             "list_grants", "get_key_last_usage", "lookup_page", "lookup_events",
             "filter_log_events")
STEP_CALLS: dict[StepKind, tuple[str, ...]] = {
    StepKind.CONNECT_STORE: ("describe_store", "disconnect_store", "connect_store"),
    StepKind.AWAIT_CONNECTED: ("describe_store",),
    # --disable-first: the soak's mark (and, for keys a person confirmed again after a cancel,
    # the old marks removed), then DisableKey.
    StepKind.DISABLE_KEYS: ("tag_resource", "untag_resource", "disable_key"),
    StepKind.AWAIT_SOAK: ("describe_key",),
    # ksdelete marks each key (a tag) just before scheduling it: the evidence of a cancel.
    StepKind.SCHEDULE_KEY_DELETION: ("tag_resource", "untag_resource", "schedule_key_deletion",
                                     "describe_key"),
    # The watch cancels the deletion of a key someone tried to use, and marks it.
    StepKind.AWAIT_KEYS_DELETED: ("describe_key", "cancel_key_deletion", "tag_resource"),
    StepKind.DISCONNECT_STORE: ("describe_store", "disconnect_store"),
    StepKind.AWAIT_DISCONNECTED: ("describe_store",),
    StepKind.DELETE_STORE: ("delete_store", *DISCOVERY),
    StepKind.VERIFY_DELETED: ("describe_store",),
    # `ksdelete cancel`: the undo path (its --connect is a CONNECT_STORE step).
    StepKind.CANCEL_KEY_DELETION: ("cancel_key_deletion", "describe_key"),
    StepKind.MARK_CANCELLED: ("tag_resource",),
    StepKind.ENABLE_KEYS: ("enable_key", "describe_key"),
}
# The steps only `ksdelete cancel` takes (`apply`'s policy leaves them out).
UNDO = frozenset({StepKind.CANCEL_KEY_DELETION, StepKind.MARK_CANCELLED, StepKind.ENABLE_KEYS})


# `ksdelete probe`: its one key, used once, scheduled, then CloudTrail and last use read back.
PROBE = ("create_probe_key", "tag_resource", "encrypt", "schedule_key_deletion",
         "get_key_last_usage", "lookup_events")


def probe_policy() -> dict[str, Any]:
    """Exactly what `ksdelete probe` needs (TagResource: the tag given at CreateKey)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "KsdeleteProbe", "Effect": "Allow",
         "Action": sorted({PERMISSIONS[c] for c in PROBE}), "Resource": "*"}]}


# The actions AWS lets a policy condition on kms:TrailingDaysWithoutKeyUsage.
USAGE_CONDITIONED = frozenset({"kms:ScheduleKeyDeletion", "kms:DisableKey"})


def actions(*, read_only: bool, apply_only: bool = False) -> list[str]:
    """apply_only: what `ksdelete apply` needs (the pipeline, without the undo)."""
    calls = set(DISCOVERY)
    if not read_only:
        for kind, step_calls in STEP_CALLS.items():
            if not (apply_only and kind in UNDO):
                calls.update(step_calls)
    return sorted({PERMISSIONS[c] for c in calls})


def policy(*, read_only: bool, apply_only: bool = False,
           unused_for: int | None = None) -> dict[str, Any]:
    """With `unused_for` DAYS, AWS itself refuses ScheduleKeyDeletion and DisableKey on a key
    used within DAYS, even to a caller that bypasses ksdelete's own check: a Deny under
    `NumericLessThan kms:TrailingDaysWithoutKeyUsage DAYS` (kms-gates-facts correction 4). A
    condition on an Allow refuses nothing that another statement (a key policy with kms:*, an
    admin policy) allows, and ...IfExists on an Allow fails open; a Deny wins over every Allow.
    No IfExists: where AWS gives no value the Deny does not apply. AWS's value for a key never
    used is not documented (one 3rd-party test found days since creation: a never-used key
    younger than DAYS was denied)."""
    read = actions(read_only=True)
    statements: list[dict[str, Any]] = [
        {"Sid": "KsdeleteDiscover", "Effect": "Allow", "Action": read, "Resource": "*"}
    ]
    if not read_only:
        write = [a for a in actions(read_only=False, apply_only=apply_only) if a not in read]
        statements.append(
            {"Sid": "KsdeleteApply" if apply_only else "KsdeleteDeleteAndUndo",
             "Effect": "Allow", "Action": write, "Resource": "*"}
        )
        guarded = [a for a in write if a in USAGE_CONDITIONED] if unused_for else []
        if guarded:
            statements.append(
                {"Sid": "KsdeleteDenyRecentlyUsedKeys", "Effect": "Deny", "Action": guarded,
                 "Resource": "*",
                 "Condition": {"NumericLessThan": {
                     "kms:TrailingDaysWithoutKeyUsage": unused_for}}}
            )
    return {"Version": "2012-10-17", "Statement": statements}


# ---- a fleet: the hub assumes a role in each account -------------------------------------

# The hub's AWS Config query, when the fleet file names an aggregator (the second witness).
WITNESS = ("select_aggregate_keys",)
DEFAULT_ROLE = "KsdeleteExecution"
ANY_ACCOUNT_ROLE = f"arn:aws:iam::*:role/{DEFAULT_ROLE}"  # without a fleet file
HUB_PRINCIPAL = "arn:aws:iam::<HUB_ACCOUNT_ID>:role/<HUB_ROLE>"
DEFAULT_EXTERNAL_ID_ENV = "KSDELETE_EXTERNAL_ID"


def hub_policy(first_roles: list[str], aggregator: tuple[str, str] | None = None
               ) -> dict[str, Any]:
    """What the hub identity needs: sts:AssumeRole on the first role of each account's chain
    (each further role of a chain is assumed by the role before it, whose own policy must
    allow that); with the file's AWS Config aggregator (the second witness), its query. An
    aggregator's ARN ends in a generated ID, not its name: any aggregator of its Region."""
    statements: list[dict[str, Any]] = []
    if first_roles:
        statements.append(
            {"Sid": "KsdeleteAssumeTargetRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
             "Resource": sorted(set(first_roles))})
    if aggregator is not None:
        statements.append(
            {"Sid": "KsdeleteConfigWitness", "Effect": "Allow",
             "Action": PERMISSIONS[WITNESS[0]],
             "Resource": [f"arn:aws:config:{aggregator[1]}:*:config-aggregator/*"]})
    return {"Version": "2012-10-17", "Statement": statements}


def trust_policy(external_id_env: str, principal: str = HUB_PRINCIPAL) -> dict[str, Any]:
    """A template of the target role's trust policy: the hub (or the role before it in a
    chain) may assume it, and only with the external ID ($external_id_env holds it at run
    time; it is never in the fleet file)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "KsdeleteHubAssumes", "Effect": "Allow", "Principal": {"AWS": principal},
         "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {
             "sts:ExternalId": f"<the external ID: the value of ${external_id_env}>"}}}]}


def fleet_policies(first_roles: list[str] | None = None, external_id_env: str | None = None,
                   *, read_only: bool = False, apply_only: bool = False,
                   unused_for: int | None = None,
                   aggregator: tuple[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`iam-policy --fleet`: the hub policy, the target role policy (the same actions as for
    one store: `policy`) and the trust policy template. Without roles (no fleet file) the
    hub may assume the default role name in any account."""
    return {
        "hub_policy": hub_policy([ANY_ACCOUNT_ROLE] if first_roles is None else first_roles,
                                 aggregator),
        "target_role_policy": policy(read_only=read_only, apply_only=apply_only,
                                     unused_for=unused_for),
        "trust_policy": trust_policy(external_id_env or DEFAULT_EXTERNAL_ID_ENV),
    }
