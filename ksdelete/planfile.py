"""Saved plans (`--dry-run --save-plan FILE`, `apply FILE`, `show-plan FILE`).

A plan file is the reviewed dry run as JSON: who made it, where, every store and key, the
options and the gates in force, and a digest over the canonical content (sorted keys, no
whitespace, the digest itself left out) so that an edited file is detected. The plan's ID is
the first 12 hex digits of the digest. The digest has no secret: it detects edits made without
recomputing it and names the content, but it is no signature (whoever can write the file can
reseal it); plan files are protected by where they live.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ksdelete import __version__
from ksdelete.errors import DISK_FULL, UsageError, disk_full_hint, os_reason
from ksdelete.models import (
    PENDING_DELETION,
    STORE_ID,
    ApprovedStore,
    ConnectionState,
    Grant,
    Identity,
    Key,
    KeyStore,
    Plan,
    PlanOptions,
    Status,
    Step,
    StepKind,
    StoreResult,
    StoreType,
    Usage,
    Verdict,
)
from ksdelete.options import from_plan_file, is_account_id, plan_file_options
from ksdelete.output import key_json

PLAN_SCHEMA_VERSION = 1
KIND = "ksdelete-plan"
# A plan of 100,000 keys (the default KMS keys quota of an account and Region) is about 45 MB.
MAX_PLAN_BYTES = 128 * 2**20


@dataclass(frozen=True)
class SavedPlan:
    """A plan file, read and checked."""

    path: Path
    document: dict[str, Any]
    digest: str
    account: str
    region: str
    endpoint_url: str | None  # None: AWS's own KMS endpoint
    options: PlanOptions
    stores: tuple[ApprovedStore, ...]

    @property
    def plan_id(self) -> str:
        return short_id(self.digest)


def digest_of(content: dict[str, Any]) -> str:
    body = {k: v for k, v in content.items() if k != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def short_id(digest: str) -> str:
    return digest[:12]


def build(results: Sequence[StoreResult], identity: Identity, options: PlanOptions, *,
          endpoint_url: str | None, now: datetime) -> dict[str, Any]:
    """The plan document for a dry run's results (every one of them `planned`)."""
    stores = []
    for result in results:
        store, plan = result.store, result.plan
        assert store is not None and plan is not None
        stores.append({
            "ref": result.ref,
            "id": store.id,
            "name": store.name,
            "type": store.type.value,
            "connection_state": store.connection_state.value,
            "phase": plan.phase,
            "scanned": result.scanned,
            "keys": [key_json(k) for k in result.keys],
            "steps": [{"step": s.kind.value, "keys": list(s.key_ids), "detail": s.detail}
                      for s in plan.steps],
            "gates": [{"gate": v.gate, "verdict": v.verdict, "detail": v.detail}
                      for v in plan.verdicts],
            "earliest_gone": plan.earliest_gone.isoformat() if plan.earliest_gone else None,
            "warnings": list(result.warnings),
        })
    content: dict[str, Any] = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "kind": KIND,
        "created_at": now.isoformat(),
        "created_by": identity.caller_arn,
        "ksdelete_version": __version__,
        "account": identity.account,
        "region": identity.region,
        "endpoint_url": endpoint_url,
        "options": plan_file_options(options),
        "stores": stores,
    }
    content["digest"] = digest_of(content)
    return content


def write(path: Path, content: dict[str, Any]) -> None:
    """Write the plan (via a temporary file beside it, so a reader never sees half)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write the plan file: {os_reason(exc)}", where=str(path),
                         hint=disk_full_hint(path.parent) if exc.errno in DISK_FULL
                         else "Pass --save-plan a path in a directory of yours") from exc


def _read_text(path: Path) -> str:
    """The file's text: a regular file (a symlink to one is fine) of at most MAX_PLAN_BYTES.
    A FIFO, a device (/dev/zero, /dev/stdin) or a directory is refused before it is read, so
    an unattended run can neither hang on it nor fill its memory."""
    where = str(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UsageError("the plan file is not a regular file", where=where,
                             hint="Pass the plan file itself (a symlink to it is fine)")
        data = file.read(MAX_PLAN_BYTES + 1)
    if len(data) > MAX_PLAN_BYTES:
        raise UsageError(f"the plan file is larger than {MAX_PLAN_BYTES // 2**20} MiB",
                         where=where, hint="Pass the file --save-plan wrote")
    return data.decode("utf-8")


def read(path: Path) -> SavedPlan:
    """Read and check a plan file; anything wrong with it is a usage error (exit 2)."""
    where = str(path)
    try:
        if path.exists() and not path.is_file():  # never open a FIFO or a device: it can block
            raise UsageError("the plan file is not a regular file", where=where,
                             hint="Pass the plan file itself (a symlink to it is fine)")
        text = _read_text(path)
    except FileNotFoundError as exc:
        raise UsageError("the plan file does not exist", where=where,
                         hint="Save one with: ksdelete STORE --dry-run --save-plan FILE") from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot read the plan file: {reason}", where=where) from exc
    try:
        content = json.loads(text, object_pairs_hook=unique_members)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the plan file is not JSON: {exc.msg} at line {exc.lineno}",
                         where=where) from exc
    except ValueError as exc:  # a duplicated member
        raise UsageError(f"the plan file is not as ksdelete writes it: {exc}", where=where,
                         hint="Save a new plan with --dry-run --save-plan and review that"
                         ) from exc
    if not isinstance(content, dict) or content.get("kind") != KIND:
        raise UsageError("not a ksdelete plan file", where=where)
    version = content.get("schema_version")
    if version != PLAN_SCHEMA_VERSION:
        raise UsageError(f"unknown plan schema_version {version!r} (this ksdelete reads "
                         f"{PLAN_SCHEMA_VERSION})", where=where,
                         hint="Save the plan again with this version of ksdelete")
    digest = content.get("digest")
    if digest != digest_of(content):
        raise UsageError("the plan file was edited after it was saved (its digest does not "
                         "match its content)", where=where,
                         hint="Save a new plan with --dry-run --save-plan and review that")
    try:
        return checked(path, content, str(digest))
    except (KeyError, TypeError, ValueError) as exc:
        why = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise UsageError(f"the plan file is incomplete or malformed ({why})",
                         where=where) from exc


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose members are all named once: with a name twice, a person reading
    the file sees the first value and json.loads keeps the last."""
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise ValueError(f"the member {name!r} appears twice in one object")
        seen[name] = value
    return seen


def _field(obj: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict):
        raise TypeError(f"expected an object holding {name!r}, got {obj!r}")
    value = obj[name]
    # bool is an int in Python, and "false" is a truthy string: types are checked exactly.
    if type(value) not in (kind if isinstance(kind, tuple) else (kind,)):
        raise TypeError(f"{name!r} is {value!r}")
    return value


def checked(path: Path, content: dict[str, Any], digest: str) -> SavedPlan:
    """The plan, if it is as ksdelete writes it (whatever its digest says)."""
    account = _field(content, "account", str)
    if not is_account_id(account):
        raise ValueError(f"account {account!r} is not a 12-digit AWS account ID")
    region = _field(content, "region", str)
    if not re.fullmatch(r"[a-z0-9-]{1,64}", region):
        raise ValueError(f"region {region!r}")
    endpoint = _field(content, "endpoint_url", (str, type(None)))
    # The options, checked as the command line checks them; a plan saved before the gates'
    # options existed gets their defaults.
    options = from_plan_file(_field(content, "options", dict))
    created = datetime.fromisoformat(_field(content, "created_at", str))
    if created.tzinfo is None:
        raise ValueError(f"created_at {created} has no time zone")
    stores: list[ApprovedStore] = []
    for s in _field(content, "stores", list):
        store_id = _field(s, "id", str)
        if not STORE_ID.match(store_id):
            raise ValueError(f"store id {store_id!r} is not a custom key store ID")
        if any(a.id == store_id for a in stores):
            raise ValueError(f"the store {store_id} is in the plan twice")
        keys = _field(s, "keys", list)
        ids = [_field(k, "id", str) for k in keys]
        if not all(ids):
            raise ValueError(f"a key of {store_id} has an empty id")
        pending = frozenset(k["id"] for k in keys
                            if _field(k, "state", str) == PENDING_DELETION)
        stores.append(ApprovedStore(store_id, _field(s, "name", str),
                                    StoreType(_field(s, "type", str)), frozenset(ids),
                                    pending, created))
    if not stores:
        raise ValueError("the plan has no store")
    return SavedPlan(path, content, digest, account, region, endpoint, options, tuple(stores))


def _key(k: dict[str, Any], store_id: str) -> Key:
    """A key as the plan file keeps it (output.key_json), with what the gates saw of it."""
    usage = k.get("last_usage")
    tags = k.get("tags")
    grants = k.get("grants")
    return Key(
        k["id"], k["arn"], k["state"], store_id, _time(k.get("deletion_date")),
        tuple(k.get("aliases") or ()), k.get("external_key_id"),
        creation_date=_time(k.get("creation_date")),
        tags=tuple((str(n), str(v)) for n, v in tags.items()) if isinstance(tags, dict)
        else None,
        grants=tuple(Grant(str(g["grant_id"]), str(g["grantee"]), tuple(g["operations"]),
                           str(g.get("name", "")), str(g.get("retiring", "")))
                     for g in grants) if isinstance(grants, list) else None,
        usage=Usage(tracking_start=_time(usage.get("tracking_start")),
                    last_used=_time(usage.get("last_used")), operation=usage.get("operation"),
                    event_id=usage.get("cloudtrail_event_id"), error=usage.get("error"))
        if isinstance(usage, dict) else None)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def identity_of(saved: SavedPlan) -> Identity:
    return Identity(saved.account, saved.region, str(saved.document.get("created_by", "")))


def restore(saved: SavedPlan) -> list[StoreResult]:
    """The dry run's results as the plan file keeps them (`show-plan` renders these)."""
    results: list[StoreResult] = []
    window = saved.options.pending_window_days
    try:
        for s in saved.document["stores"]:
            store = KeyStore(s["id"], s["name"], StoreType(s["type"]),
                             ConnectionState(s["connection_state"]))
            keys = tuple(_key(k, store.id) for k in s["keys"])
            steps = tuple(
                Step(StepKind(st["step"]), tuple(st["keys"]), st.get("detail", ""),
                     window if st["step"] == StepKind.SCHEDULE_KEY_DELETION.value else None)
                for st in s["steps"])
            verdicts = tuple(Verdict(v["gate"], v["verdict"], v.get("detail", ""))
                             for v in s["gates"])
            plan = Plan(store.id, steps, verdicts=verdicts, warnings=tuple(s["warnings"]),
                        earliest_gone=_time(s.get("earliest_gone")),
                        external_key_ids=tuple(k.external_key_id for k in keys
                                               if k.external_key_id
                                               and store.type is StoreType.EXTERNAL),
                        phase=s.get("phase", ""), status=Status.PLANNED)
            results.append(StoreResult(
                ref=s.get("ref", store.id), status=Status.PLANNED, matched_by="id", store=store,
                keys=keys, plan=plan, resume_after=plan.earliest_gone,
                warnings=list(plan.warnings), phase=plan.phase, scanned=int(s.get("scanned", 0)),
                waivers=[f"{v.gate}: {v.detail}" for v in verdicts if v.verdict == "waived"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"the plan file is incomplete or malformed ({exc!r})",
                         where=str(saved.path)) from exc
    return results
