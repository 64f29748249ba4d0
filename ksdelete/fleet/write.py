"""Writing a fleet file: what `fleet inventory` writes and `spec.parse` reads back (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ksdelete.fleet.model import AccountSpec, FleetSpec, StoreTarget
from ksdelete.fleet.spec import CAPS, DEFAULT_OPTIONS
from ksdelete.models import PlanOptions
from ksdelete.options import BY_FIELD


def _q(text: str) -> str:
    """A double-quoted YAML scalar (JSON's string syntax is YAML's)."""
    return json.dumps(text)


def _accounts_list(accounts: Sequence[str] | frozenset[str]) -> str:
    return "[" + ", ".join(_q(a) for a in sorted(accounts)) + "]"


def dump(spec: FleetSpec) -> str:
    """The file `parse` reads back as `spec` (its path and digest aside): every value
    written out, roles as ARNs."""
    lines = [f"version: {spec.version}", f"name: {_q(spec.name)}"]
    if spec.hub.profile is not None:
        lines += ["hub:", f"  profile: {_q(spec.hub.profile)}"]
    if spec.config_aggregator is not None:
        lines += ["discovery:", f"  config_aggregator: {_q('@'.join(spec.config_aggregator))}"]
    lines += ["defaults:", *(f"  {line}" for line in option_lines(spec.options))]
    guards = spec.guards
    lines += ["guards:", f"  allowed_accounts: {_accounts_list(guards.allowed_accounts)}",
              f"  forbidden_accounts: {_accounts_list(guards.forbidden_accounts)}"]
    lines += [f"  {key}: {getattr(guards, key)}" for key in CAPS
              if getattr(guards, key) is not None]
    lines += ["rollout:", *(f"  {key}: {getattr(spec.rollout, key)}"
                            for key in ("max_accounts", "canary", "failure_tolerance"))]
    lines.append("accounts:")
    for account in spec.accounts:
        lines += account_lines(account)
        lines.append("    stores:")
        for store in account.stores:
            lines += [f"      {line}" for line in store_lines(store)]
    return "\n".join(lines) + "\n"


def option_lines(options: PlanOptions) -> list[str]:
    """`defaults:`'s plan options, one `key: value` line each."""
    out = []
    for field in DEFAULT_OPTIONS:
        spec, value = BY_FIELD[field], getattr(options, field)
        if spec.kind == "tags":
            words = [name + (f"={tag}" if tag is not None else "") for name, tag in value]
            out.append(f"{field}: [{', '.join(_q(w) for w in words)}]")
        elif spec.kind == "flag":
            out.append(f"{field}: {'true' if value else 'false'}")
        elif spec.kind == "choice" or value is not None:
            out.append(f"{field}: {value}")
    return out


def account_lines(account: AccountSpec) -> list[str]:
    """An account's entry up to its `stores:` (two spaces in, as under `accounts:`)."""
    lines = [f"  - account_id: {_q(account.account_id)}", f"    name: {_q(account.name)}"]
    if account.profile is not None:
        lines.append(f"    profile: {_q(account.profile)}")
    else:
        lines.append(f"    role: [{', '.join(_q(r) for r in account.role)}]")
        if account.external_id_env is not None:
            lines.append(f"    external_id_env: {account.external_id_env}")
    return lines


def store_lines(store: StoreTarget) -> list[str]:
    """A store's entry (`- id: ...` and its keys), without indentation."""
    lines = [f"- id: {store.store_id}", f"  region: {store.region}"]
    if store.expect_name is not None:
        lines.append(f"  expect_name: {_q(store.expect_name)}")
    if store.expect_type is not None:
        lines.append(f"  expect_type: {store.expect_type}")
    if store.expect_keys is not None:
        lines.append(f"  expect_keys: {store.expect_keys}")
    return lines
