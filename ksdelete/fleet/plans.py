"""A saved fleet plan: the fleet file as it was read, and one saved plan (planfile) per
(account, Region), under one digest over all of it.

`ksdelete fleet plan FILE --save-plan PLAN` writes it; `ksdelete apply PLAN` (and
`ksdelete fleet apply --plan PLAN`) acts only within it, from any machine and any state
directory: it needs neither the fleet file nor the journal that made it. The fleet file's
text travels inside, so the roles, guards and rollout applied are the ones reviewed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import ksdelete.fleet.spec as fleet_spec
from ksdelete import __version__, planfile
from ksdelete.errors import UsageError
from ksdelete.fleet.model import FleetSpec, StoreTarget

KIND = "ksdelete-fleet-plan"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SavedFleetPlan:
    path: Path
    digest: str
    spec: FleetSpec  # the fleet file as it was reviewed
    plans: dict[tuple[str, str], planfile.SavedPlan]  # by (account, Region)

    @property
    def plan_id(self) -> str:
        return planfile.short_id(self.digest)

    @property
    def targets(self) -> tuple[StoreTarget, ...]:
        """The file's targets the plan holds (in the file's order)."""
        return tuple(t for t in self.spec.targets
                     if (t.account_id, t.region) in self.plans
                     and any(s.id == t.store_id
                             for s in self.plans[(t.account_id, t.region)].stores))


def build(spec: FleetSpec, text: str, plans: list[dict[str, Any]], *, now: datetime
          ) -> dict[str, Any]:
    content: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "created_at": now.isoformat(),
        "ksdelete_version": __version__,
        "fleet": {"name": spec.name, "file": str(spec.path or ""), "sha256": spec.sha256,
                  "text": text},
        "plans": sorted(plans, key=lambda p: (p["account"], p["region"])),
    }
    content["digest"] = planfile.digest_of(content)
    return content


def is_fleet_plan(path: Path) -> bool:
    """Whether FILE is a saved fleet plan (its kind), without checking more of it."""
    try:
        if not path.is_file():  # never open a FIFO or a device: it can block
            return False
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return f'"kind": "{KIND}"' in head


def read(path: Path) -> SavedFleetPlan:
    """Read and check a fleet plan: anything wrong with it is a usage error (exit 2)."""
    where = str(path)
    edited = UsageError("the fleet plan was edited after it was saved (its digest does not "
                        "match its content)", where=where,
                        hint="Save a new one with `ksdelete fleet plan FILE --save-plan` "
                             "and review that")
    try:
        # Every member once: with one twice, a person reading the file sees the first value
        # (say, the fleet file's text) and json.loads keeps the last (as planfile.read).
        content = json.loads(path.read_text(encoding="utf-8"),
                             object_pairs_hook=planfile.unique_members)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read the fleet plan: {exc}", where=where) from exc
    except ValueError as exc:  # a member twice
        raise UsageError(f"the fleet plan is not as ksdelete writes it: {exc}", where=where,
                         hint="Save a new one with `ksdelete fleet plan FILE --save-plan` "
                              "and review that") from exc
    if not isinstance(content, dict) or content.get("kind") != KIND:
        raise UsageError("not a ksdelete fleet plan", where=where)
    if content.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"unknown fleet plan schema_version {content.get('schema_version')!r}",
                         where=where, hint="Save the plan again with this version of ksdelete")
    if content.get("digest") != planfile.digest_of(content):
        raise edited
    try:
        fleet = content["fleet"]
        spec = fleet_spec.parse(str(fleet["text"]), Path(fleet["file"]) if fleet["file"]
                                else None)
        if spec.sha256 != fleet["sha256"]:
            raise edited
        plans: dict[tuple[str, str], planfile.SavedPlan] = {}
        for document in content["plans"]:
            digest = str(document.get("digest"))
            if digest != planfile.digest_of(document):
                raise edited
            saved = planfile.checked(path, document, digest)
            plans[(saved.account, saved.region)] = saved
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"the fleet plan is incomplete or malformed ({exc})",
                         where=where) from exc
    for (account, region) in plans:
        if not any(t.account_id == account and t.region == region for t in spec.targets):
            raise UsageError(f"the fleet plan holds a plan for account {account}, {region}, "
                             "which its fleet file does not name", where=where)
    return SavedFleetPlan(path, str(content["digest"]), spec, plans)
