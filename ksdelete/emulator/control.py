"""The ``/_emulator/*`` control API (JSON in, JSON out; never throttled, faulted or delayed)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.kms.models import kms_backends

from . import cloudtrail, shapes
from .config import parse_instant
from .models import STORE_QUOTA, STORE_STATES, CustomKeyStore, EmulatorKmsBackend, KmsError
from .realism import RUNTIME
from .responses import stamp_grant

HSM_PASSWORD = "kmsPswd1"
# The caller of a seeded last use unless the spec names one (map it with the principals knob).
SEEDED_APP_ACCESS_KEY = "AKIAEMULATORSEEDAPP1"
SEEDED_OPERATOR_ACCESS_KEY = "AKIAEMULATORSEEDOPS1"  # who scheduled the keys seeded pending
DAY = 86400.0
TRUST_ANCHOR = "-----BEGIN CERTIFICATE-----\nMIIEmulatorTrustAnchor\n-----END CERTIFICATE-----"
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
ACCOUNT = re.compile(r"^[0-9]{12}$")


class ControlError(Exception):
    """A bad control request (answered 400 ``{"error": ...}``)."""


def backend_for(region: str, account: str = DEFAULT_ACCOUNT_ID) -> EmulatorKmsBackend:
    backend = kms_backends[account][region]
    assert isinstance(backend, EmulatorKmsBackend), "install() was not called"
    return backend


def account_of(spec: dict[str, Any]) -> str:
    """The account a control request names (``"account"``), else the default one."""
    account = str(spec.get("account") or DEFAULT_ACCOUNT_ID)
    if not ACCOUNT.match(account):
        raise ControlError(f"account {account!r} is not a 12-digit AWS account ID")
    return account


def all_backends() -> list[EmulatorKmsBackend]:
    """Every Region's backend of every account used so far."""
    return [b for account in list(kms_backends.values()) for b in list(account.values())
            if isinstance(b, EmulatorKmsBackend)]


def _rand(alphabet: str, n: int) -> str:
    return "".join(RUNTIME.rng.choice(alphabet) for _ in range(n))


def _safe(text: str, allowed: str) -> str:
    return re.sub(f"[^{allowed}]", "-", text)


def clock(body: dict[str, Any] | None) -> dict[str, Any]:
    if body and "advance" in body:
        RUNTIME.clock.advance(float(body["advance"]))
        with RUNTIME.lock:
            for region_backend in all_backends():
                region_backend.tick()
    return {"now": RUNTIME.clock.now().isoformat(), "time_scale": RUNTIME.clock.time_scale}


def reset() -> dict[str, Any]:
    with RUNTIME.lock:
        kms_backends.reset()  # BackendDict.reset: every moto backend, ours included
        RUNTIME.clear()
        cloudtrail.TRAIL.clear()
    return {"reset": True}


def seed(spec: dict[str, Any]) -> dict[str, Any]:
    region = str(spec.get("region", "us-east-1"))
    account = account_of(spec)
    out: dict[str, Any] = {"account": account, "stores": [], "plain_key_ids": []}
    with RUNTIME.lock:
        backend = backend_for(region, account)
        backend.tick()
        for raw in spec.get("stores", []):
            out["stores"].append(_seed_store(backend, raw))
        for _ in range(int(spec.get("plain_keys", 0))):
            key = backend.new_key(
                policy=None,
                description="",
                key_usage="ENCRYPT_DECRYPT",
                key_spec="SYMMETRIC_DEFAULT",
                tags=None,
                multi_region=False,
                origin="AWS_KMS",
            )
            out["plain_key_ids"].append(key.id)
    return out


def _deny_policy(account: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-emulator-deny-describe",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "Deny DescribeKey",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "kms:DescribeKey",
                    "Resource": "*",
                },
            ],
        }
    )


def _seed_store(backend: EmulatorKmsBackend, raw: dict[str, Any]) -> dict[str, Any]:
    name = str(raw["name"])
    kind = str(raw.get("type", "AWS_CLOUDHSM"))
    if kind not in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"):
        raise ControlError(f"unknown store type {kind!r}")
    state = str(raw.get("connection_state", "CONNECTED"))
    if state not in STORE_STATES:
        raise ControlError(f"unknown connection_state {state!r}")
    if backend.store_by_name(name) is not None:
        raise ControlError(f"store name {name!r} already in use")
    if len(backend.custom_key_stores) >= STORE_QUOTA:
        raise ControlError(f"the {STORE_QUOTA}-store quota is reached")
    store = CustomKeyStore(
        id=backend.new_store_id(),
        name=name,
        type=kind,
        creation_date=RUNTIME.clock.epoch(),
        state="CONNECTED",
    )
    if kind == "AWS_CLOUDHSM":
        store.cluster_id = "cluster-" + _rand("234567abcdefghijklmnopqrstuvwxyz", 11)
        store.trust_anchor = TRUST_ANCHOR
        store.password = HSM_PASSWORD
    else:
        host = _safe(name.lower(), "a-z0-9.-").strip("-.") or "xks"
        store.xks = {
            "Connectivity": "PUBLIC_ENDPOINT",
            "AccessKeyId": _rand(_B32, 20),
            "UriEndpoint": f"https://{host}-{_rand('abcdefghij', 6)}.xks.example.com",
            "UriPath": "/example/kms/xks/v1",
        }
    backend.add_store(store)
    n = int(raw.get("keys", 0))
    pending = int(raw.get("pending_keys", 0))
    disabled = int(raw.get("disabled_keys", 0))
    denied = int(raw.get("undescribable_keys", 0))
    if pending + disabled + denied > n:
        raise ControlError("pending_keys + disabled_keys + undescribable_keys exceeds keys")
    origin = "AWS_CLOUDHSM" if kind == "AWS_CLOUDHSM" else "EXTERNAL_KEY_STORE"
    alias_base = _safe(name, "a-zA-Z0-9/_-")
    per_key = raw.get("per_key") or []
    if not isinstance(per_key, list) or len(per_key) > n:
        raise ControlError("per_key must be a list of at most `keys` objects")
    key_ids = []
    for i in range(n):
        policy = _deny_policy(backend.account_id) if i >= n - denied else None
        key = backend.new_key(
            policy=policy,
            description="",
            key_usage="ENCRYPT_DECRYPT",
            key_spec="SYMMETRIC_DEFAULT",
            tags=None,
            multi_region=False,
            origin=origin,
            store=store,
            xks_key_id=_safe(f"{name}-ext-{i}", "a-zA-Z0-9_.-")
            if origin == "EXTERNAL_KEY_STORE"
            else None,
        )
        details: dict[str, Any] = {
            member: raw[member]
            for member in ("tags", "grants", "created", "created_days_ago", "last_used")
            if member in raw
        }
        if i < len(per_key):
            if not isinstance(per_key[i], dict):
                raise ControlError("per_key entries must be objects")
            details.update(per_key[i])
        _seed_key_details(backend, key, details)
        if i < pending:
            backend.schedule(key, 30)
            _seed_scheduled(backend, key, 30)
        elif i < pending + disabled:
            backend.set_enabled(key, False)
        if raw.get("aliases"):
            backend.create_alias(key.id, f"alias/{alias_base}-{i}")
        key_ids.append(key.id)
    store.state = state
    if state == "CONNECTING":
        store.pending = ("CONNECTED", RUNTIME.clock.epoch() + RUNTIME.config.connect_seconds, None)
    elif state == "DISCONNECTING":
        store.pending = (
            "DISCONNECTED",
            RUNTIME.clock.epoch() + RUNTIME.config.disconnect_seconds,
            None,
        )
    if state == "FAILED":
        default = "NETWORK_ERRORS" if kind == "AWS_CLOUDHSM" else "XKS_PROXY_NOT_REACHABLE"
        store.error_code = str(raw.get("connection_error_code") or default)
    return {"id": store.id, "name": name, "type": kind, "key_ids": key_ids}


def _instant(spec: dict[str, Any], at: str, days_ago: str) -> float | None:
    if at in spec:
        return parse_instant(spec[at])
    if days_ago in spec:
        return RUNTIME.clock.epoch() - float(spec[days_ago]) * DAY
    return None


def _seed_key_details(backend: EmulatorKmsBackend, key: Any, details: dict[str, Any]) -> None:
    """Tags, grants, a past creation date and a recorded last use for one seeded key."""
    created = _instant(details, "created", "created_days_ago")
    if created is not None:
        key.creation_date = created
    tags = details.get("tags")
    if tags:
        pairs = (
            list(tags.items())
            if isinstance(tags, dict)
            else [(t["TagKey"], t["TagValue"]) for t in tags]
        )
        backend.tag_resource(key.arn, {str(k): str(v) for k, v in pairs})
    allowed = set(shapes.kms_model().shape_for("GrantOperation").enum)
    for spec in details.get("grants") or []:
        operations = [str(o) for o in spec.get("operations", ["Decrypt", "Encrypt"])]
        unknown = sorted(set(operations) - allowed)
        if unknown:
            raise ControlError(f"unknown grant operations {unknown}")
        grant = key.add_grant(
            spec.get("name") or "",
            str(spec["grantee"]),
            operations,
            constraints=spec.get("constraints") or {},
            retiring_principal=spec.get("retiring"),
        )
        stamp_grant(
            grant,
            max(float(key.creation_date), RUNTIME.clock.epoch() if created is None else created),
            spec.get("grantee_service_principal"),
        )
    used = details.get("last_used")
    if used:
        _seed_last_use(backend, key, used)


def _seed_last_use(backend: EmulatorKmsBackend, key: Any, used: dict[str, Any]) -> None:
    """A successful cryptographic call in the past: last usage plus its CloudTrail event."""
    operation = str(used.get("operation", "Decrypt"))
    if operation not in cloudtrail.TRACKED_OPERATIONS:
        raise ControlError(f"last_used.operation {operation!r} is not a tracked operation")
    when = _instant(used, "at", "days_ago")
    if when is None:
        when = RUNTIME.clock.epoch()
    caller = cloudtrail.Caller(
        access_key_id=str(used.get("access_key_id", SEEDED_APP_ACCESS_KEY)),
        account=key.account_id,
        source_ip=str(used.get("source_ip", "10.0.0.10")),
        user_agent=str(used.get("user_agent", "aws-sdk-java/2.20.0 (seeded by the emulator)")),
    )
    request_id, event_id = cloudtrail.new_uuid(), cloudtrail.new_uuid()
    params: dict[str, Any] = {"keyId": key.arn}
    if operation in ("Encrypt", "Decrypt"):
        params["encryptionAlgorithm"] = "SYMMETRIC_DEFAULT"
    record = cloudtrail.api_event(
        operation=operation,
        region=backend.region_name,
        when=when,
        caller=caller,
        request_id=request_id,
        event_id=event_id,
        request_parameters=params,
        response_elements=None,
        keys=[key],
        error=None,
    )
    cloudtrail.record_api_event(backend.region_name, when, caller, record, [key])
    backend.record_usage(key, operation, when, event_id, request_id)


def _seed_scheduled(backend: EmulatorKmsBackend, key: Any, days: int) -> None:
    """A key seeded pending deletion was scheduled by someone: its ScheduleKeyDeletion event,
    as a CloudTrail watch over the waiting period finds for every pending key."""
    when = RUNTIME.clock.epoch()
    caller = cloudtrail.Caller(access_key_id=SEEDED_OPERATOR_ACCESS_KEY, account=key.account_id,
                               source_ip="10.0.0.20",
                               user_agent="aws-cli/2.15.0 (seeded by the emulator)")
    deletion = key.deletion_date.timestamp() if key.deletion_date else when + days * 86400
    record = cloudtrail.api_event(
        operation="ScheduleKeyDeletion", region=backend.region_name, when=when, caller=caller,
        request_id=cloudtrail.new_uuid(), event_id=cloudtrail.new_uuid(),
        request_parameters={"keyId": key.id, "pendingWindowInDays": days},
        response_elements={"keyId": key.arn, "keyState": "PendingDeletion",
                           "deletionDate": cloudtrail.human_date(deletion),
                           "pendingWindowInDays": days},
        keys=[key], error=None)
    cloudtrail.record_api_event(backend.region_name, when, caller, record, [key])


def store_state(body: dict[str, Any]) -> dict[str, Any]:
    region = str(body.get("region", "us-east-1"))
    state = str(body["connection_state"])
    if state not in STORE_STATES:
        raise ControlError(f"unknown connection_state {state!r}")
    with RUNTIME.lock:
        backend = backend_for(region, account_of(body))
        backend.tick()
        try:
            store = backend.store_by_id(str(body["custom_key_store_id"]))
        except KmsError as exc:
            raise ControlError(str(body["custom_key_store_id"]) + " not found") from exc
        error = body.get("connection_error_code")
        if state == "FAILED" and not error:
            error = "NETWORK_ERRORS" if store.type == "AWS_CLOUDHSM" else "XKS_PROXY_NOT_REACHABLE"
        backend.force_state(store, state, error)
        return {"store": store.entry()}


def state(region: str, account: str = DEFAULT_ACCOUNT_ID) -> dict[str, Any]:
    with RUNTIME.lock:
        backend = backend_for(region, account)
        backend.tick()
        dump = backend.dump()
    dump["region"] = region  # no "now": two dumps of unchanged state compare equal
    if account != DEFAULT_ACCOUNT_ID:
        dump["account"] = account
    return dump


def handle(method: str, path: str, query: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Dispatch one control request; returns (HTTP status, JSON body)."""
    try:
        doc: Any = json.loads(body) if body.strip() else {}
    except ValueError:
        return 400, {"error": "body is not JSON"}
    if not isinstance(doc, dict):
        return 400, {"error": "body must be a JSON object"}
    args = {k: v[-1] for k, v in parse_qs(query).items()}
    route = path[len("/_emulator") :].strip("/")
    try:
        if route == "clock":
            return 200, clock(doc if method == "POST" else None)
        if route == "reset" and method == "POST":
            return 200, reset()
        if route == "config":
            if method == "POST":
                return 200, RUNTIME.apply_config(doc)
            return 200, RUNTIME.config.to_dict()
        if route == "seed" and method == "POST":
            return 200, seed(doc)
        if route == "state":
            return 200, state(str(args.get("region") or doc.get("region") or "us-east-1"),
                              account_of({**doc, **args}))
        if route == "calls":
            with RUNTIME.lock:
                return 200, {"calls": list(RUNTIME.calls)}
        if route == "problems":
            with RUNTIME.lock:
                return 200, {"problems": list(RUNTIME.problems)}
        if route == "store-state" and method == "POST":
            return 200, store_state(doc)
    except (ControlError, ValueError, KeyError, TypeError) as exc:
        return 400, {"error": f"{type(exc).__name__}: {exc}"}
    return 404, {"error": f"no control endpoint {method} {path}"}
