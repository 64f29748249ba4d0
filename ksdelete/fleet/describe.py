"""What `ksdelete fleet validate` says about a checked fleet file: its lines and its JSON, and
whether the file is fit for changes (the checks `fleet apply` would make before any AWS call).
Pure: no AWS call, no click."""

from __future__ import annotations

from typing import Any

from ksdelete import planner
from ksdelete.errors import UsageError
from ksdelete.fleet.model import AccountSpec, FleetSpec, StoreTarget
from ksdelete.fleet.spec import CAPS, PARTITION, check_for_change
from ksdelete.options import option_words, plan_file_options


def unfit(spec: FleetSpec) -> UsageError | None:
    """Why `fleet apply` would refuse this file before any AWS call, or None: every account
    allowed (check_for_change), no more targets than guards.max_targets."""
    try:
        check_for_change(spec)
    except UsageError as exc:
        return exc
    refusal = planner.too_many_targets(spec)
    if refusal is not None:
        return UsageError(refusal.summary, where=f"{spec.path or 'fleet file'}, "
                          "guards.max_targets", hint=refusal.fix, details=refusal.details)
    return None


def reached(account: AccountSpec) -> str:
    """`role A -> B (ExternalId from $X)` or `profile P`."""
    if account.profile is not None:
        return f"profile {account.profile}"
    text = "role " + " -> ".join(account.role)
    if account.external_id_env:
        text += f" (ExternalId from ${account.external_id_env})"
    return text


def expected(store: StoreTarget) -> str:
    parts = []
    if store.expect_name is not None:
        parts.append(f"expect name {store.expect_name}")
    if store.expect_type is not None:
        parts.append(f"type {store.expect_type}")
    if store.expect_keys is not None:
        parts.append(f"{store.expect_keys} key{'s' if store.expect_keys != 1 else ''}")
    return f" ({', '.join(parts)})" if parts else ""


def guards_text(spec: FleetSpec) -> str:
    guards = spec.guards
    parts = [f"allowed_accounts {', '.join(sorted(guards.allowed_accounts)) or '(none)'}"]
    if guards.forbidden_accounts:
        parts.append(f"forbidden_accounts {', '.join(sorted(guards.forbidden_accounts))}")
    parts += [f"{cap} {getattr(guards, cap)}" for cap in CAPS
              if getattr(guards, cap) is not None]
    return "; ".join(parts)


def lines(spec: FleetSpec, problem: UsageError | None) -> list[str]:
    """The plain description: name, accounts (how each is reached) and their targets by
    Region, hub, options, guards, rollout, and the verdict."""
    digest = spec.sha256[:12]
    out = [f"fleet {spec.name} ({spec.path or 'fleet file'}, sha256 {digest})", "accounts:"]
    for account in spec.accounts:
        out.append(f"  {account.name} {account.account_id}: {reached(account)}")
        out += [f"    {store.region}: {store.store_id}{expected(store)}"
                for store in account.stores]
    regions = len({t.region for t in spec.targets})
    out.append(f"targets: {len(spec.targets)} in {len(spec.accounts)} account"
               f"{'s' if len(spec.accounts) != 1 else ''}, {regions} Region"
               f"{'s' if regions != 1 else ''}")
    out.append("hub: " + (f"profile {spec.hub.profile}" if spec.hub.profile
                          else "boto3's default credentials"))
    if spec.config_aggregator is not None:
        out.append("second witness: AWS Config aggregator " + "@".join(spec.config_aggregator))
    out.append("options: " + " ".join(option_words(spec.options)))
    out.append("guards: " + guards_text(spec))
    rollout = spec.rollout
    out.append(f"rollout: max_accounts {rollout.max_accounts}, canary {rollout.canary}, "
               f"failure_tolerance {rollout.failure_tolerance}")
    out.append("fit for changes: " + ("yes" if problem is None else f"no ({problem})"))
    return out


def _store_json(store: StoreTarget) -> dict[str, Any]:
    return {"id": store.store_id, "region": store.region, "expect_name": store.expect_name,
            "expect_type": store.expect_type, "expect_keys": store.expect_keys}


def as_json(spec: FleetSpec, problem: UsageError | None) -> dict[str, Any]:
    """The `fleet_file` member of `fleet validate --output json`."""
    guards = spec.guards
    return {
        "name": spec.name,
        "file": str(spec.path) if spec.path is not None else None,
        "sha256": spec.sha256,
        "version": spec.version,
        "partition": PARTITION,
        "hub": {"profile": spec.hub.profile},
        "options": {**plan_file_options(spec.options),
                    "include_new_keys": spec.options.include_new_keys},
        "guards": {"allowed_accounts": sorted(guards.allowed_accounts),
                   "forbidden_accounts": sorted(guards.forbidden_accounts),
                   **{cap: getattr(guards, cap) for cap in CAPS}},
        "rollout": {"max_accounts": spec.rollout.max_accounts, "canary": spec.rollout.canary,
                    "failure_tolerance": spec.rollout.failure_tolerance},
        "accounts": [{"account_id": a.account_id, "name": a.name, "role": list(a.role),
                      "profile": a.profile, "external_id_env": a.external_id_env,
                      "stores": [_store_json(s) for s in a.stores]} for a in spec.accounts],
        "targets": len(spec.targets),
        "fit_for_changes": problem is None,
        "unfit_reason": str(problem) if problem is not None else None,
    }
