"""STS for the emulator: ``GetCallerIdentity`` and ``AssumeRole`` (query protocol, XML answers).

A caller is the access key ID of its SigV4 credential scope. ``AssumeRole`` hands out fresh
``ASIA...`` credentials and maps their access key to the assumed-role principal
(``RUNTIME.sessions``), so every later request signed with them is in the role's account: its
KMS stores and keys, CloudTrail Event history, quotas, and ``GetCallerIdentity``. The knobs
``assume_role_deny``, ``assume_role_external_id`` and ``assume_role_redirect`` decide who may
assume what, and where a role really lands. Answers are checked against botocore's STS model
like KMS ones (``validate`` knob).

Pure bookkeeping and rendering: the HTTP layer (``server``) reads the request and records it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import botocore.parsers

from . import cloudtrail, shapes
from .realism import RUNTIME, RoleSession

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
# arn:<partition>:iam::<12 digits>:role/<optional path/><name>
ROLE_ARN = re.compile(
    r"^arn:(aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):iam::([0-9]{12}):role/"
    r"((?:[\x21-\x7e]*/)?)([\w+=,.@-]{1,64})$")
DEFAULT_DURATION = 3600
CHAINED_MAX = 3600  # "Role chaining limits your ... role session to a maximum of one hour."
CHAINED_MESSAGE = ("The requested DurationSeconds exceeds the 1 hour session limit for roles "
                   "assumed by role chaining.")
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# Error codes AssumeRole answers besides its modelled ones (query protocol common errors).
COMMON_ERRORS = frozenset({"AccessDenied", "ValidationError", "InvalidClientTokenId",
                           "MissingParameter", "InvalidParameterValue", "InternalFailure"})


@dataclass
class Answer:
    """One STS answer: HTTP status, XML body, and the call log's extra members."""

    status: int
    body: bytes
    request_id: str
    logged: dict[str, Any]


def answer(action: str, form: dict[str, str], access_key_id: str, account: str) -> Answer | None:
    """The answer to an STS action the emulator serves itself; None for any other (moto's)."""
    if action == "GetCallerIdentity":
        return _caller_identity(access_key_id, account)
    if action == "AssumeRole":
        return _assume_role(form, access_key_id, account)
    return None


def _caller_identity(access_key_id: str, account: str) -> Answer:
    """The same principal as CloudTrail's userIdentity (``UserId`` = its ``principalId``)."""
    ident, _ = cloudtrail.user_identity(access_key_id, account)
    request_id = cloudtrail.new_uuid()
    xml = (
        f'<GetCallerIdentityResponse xmlns="{NS}">'
        "<GetCallerIdentityResult>"
        f"<Arn>{escape(ident['arn'])}</Arn><UserId>{escape(ident['principalId'])}</UserId>"
        f"<Account>{escape(ident['accountId'])}</Account>"
        "</GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    )
    return Answer(200, xml.encode(), request_id, {})


def _assume_role(form: dict[str, str], access_key_id: str, account: str) -> Answer:
    role_arn = form.get("RoleArn", "")
    logged: dict[str, Any] = {"role_arn": role_arn, "external_id_sent": "ExternalId" in form}
    params: dict[str, Any] = {name: form[name] for name in
                              ("RoleArn", "RoleSessionName", "ExternalId", "SourceIdentity")
                              if name in form}
    duration = DEFAULT_DURATION
    if "DurationSeconds" in form:
        try:
            duration = params["DurationSeconds"] = int(form["DurationSeconds"])
        except ValueError:
            return _error(400, "ValidationError",
                          f"Value '{form['DurationSeconds']}' at 'durationSeconds' failed to "
                          "satisfy constraint: Member must be a number", logged)
    problems = shapes.request_errors("AssumeRole", params, "sts", full_match=True)
    if problems:
        count = len(problems)
        return _error(400, "ValidationError",
                      f"{count} validation error{'s' if count > 1 else ''} detected: "
                      + "; ".join(problems), logged)
    match = ROLE_ARN.match(role_arn)
    if match is None:
        # Recorded from AWS (LocalStack's AWS-validated snapshot of test_sts_invalid_parameters):
        # "<arn> is invalid" when it does not parse as an ARN. An ARN that is not a role's:
        # "Request ARN is invalid" (field reports, for AssumeRoleWithWebIdentity; UNCONFIRMED
        # for AssumeRole).
        message = "Request ARN is invalid" if _parses_as_arn(role_arn) \
            else f"{role_arn} is invalid"
        return _error(400, "ValidationError", message, logged)
    partition, role_account, _, role_name = match.groups()
    caller = cloudtrail.principal_arn(access_key_id, account)
    chained = ":assumed-role/" in caller
    if chained and duration > CHAINED_MAX:
        return _error(400, "ValidationError", CHAINED_MESSAGE, logged)
    cfg = RUNTIME.config
    required = cfg.assume_role_external_id.get(role_account)
    if role_account in cfg.assume_role_deny or (
            required is not None and form.get("ExternalId") != required):
        return _error(403, "AccessDenied", f"User: {caller} is not authorized to perform: "
                                           f"sts:AssumeRole on resource: {role_arn}", logged)
    lands = cfg.assume_role_redirect.get(role_arn, role_account)
    session_name = form["RoleSessionName"]
    caller_session = RUNTIME.sessions.get(access_key_id)
    source = form.get("SourceIdentity") or (
        caller_session.source_identity if caller_session else None)
    now = RUNTIME.clock.epoch()
    session = RoleSession(
        arn=f"arn:{partition}:sts::{lands}:assumed-role/{role_name}/{session_name}",
        role_arn=role_arn,
        role_id=_role_id(f"{lands}:{role_name}"),
        account=lands,
        session_token=base64.b64encode(b"emulator-session:" + secrets.token_bytes(180)
                                       ).decode(),
        created=now,
        expiration=now + duration,
        source_identity=source,
    )
    key = _new_access_key()
    with RUNTIME.lock:
        RUNTIME.sessions[key] = session
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    request_id = cloudtrail.new_uuid()
    expiration = datetime.fromtimestamp(session.expiration, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    xml = (
        f'<AssumeRoleResponse xmlns="{NS}"><AssumeRoleResult>'
        + (f"<SourceIdentity>{escape(source)}</SourceIdentity>" if source else "")
        + "<AssumedRoleUser>"
        f"<AssumedRoleId>{session.role_id}:{escape(session_name)}</AssumedRoleId>"
        f"<Arn>{escape(session.arn)}</Arn></AssumedRoleUser>"
        f"<Credentials><AccessKeyId>{key}</AccessKeyId>"
        f"<SecretAccessKey>{secret}</SecretAccessKey>"
        f"<SessionToken>{session.session_token}</SessionToken>"
        f"<Expiration>{expiration}</Expiration></Credentials>"
        "</AssumeRoleResult>"
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        "</AssumeRoleResponse>"
    )
    return Answer(200, xml.encode(), request_id, logged)


def _parses_as_arn(text: str) -> bool:
    """arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE with a partition, service and resource."""
    parts = text.split(":", 5)
    return len(parts) == 6 and parts[0] == "arn" and all((parts[1], parts[2], parts[5]))


def _new_access_key() -> str:
    """A fresh ``ASIA`` + 16 access key ID, unique among the sessions handed out."""
    while True:
        key = "ASIA" + "".join(secrets.choice(_B32) for _ in range(16))
        if key not in RUNTIME.sessions and key not in RUNTIME.config.principals:
            return key


def _role_id(role: str) -> str:
    """A role's unique ID (``AROA`` + 17), the same for every session of that role."""
    digest = hashlib.sha256(role.encode()).hexdigest().upper()
    return "AROA" + "".join(c for c in digest if c in _B32)[:17].ljust(17, "Q")


def error_answer(status: int, code: str, message: str) -> Answer:
    """An STS error answer (XML)."""
    return _error(status, code, message, {})


def _error(status: int, code: str, message: str, logged: dict[str, Any]) -> Answer:
    request_id = cloudtrail.new_uuid()
    xml = (
        f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Answer(status, xml.encode(), request_id, {**logged, "error": code})


def problems(action: str, status: int, body: bytes) -> list[str]:
    """The answer checked against botocore's STS model: parsed the way botocore parses it, the
    output shape for a success, a modelled or common error code otherwise."""
    operation = shapes.operation(action, "sts")
    prefix = f"sts {action} (HTTP {status})"
    parsed = botocore.parsers.QueryParser().parse(
        {"body": body, "headers": {}, "status_code": status}, operation.output_shape)
    if status >= 300:
        code = parsed.get("Error", {}).get("Code", "")
        modelled = {s.metadata.get("error", {}).get("code", s.name) for s in
                    operation.error_shapes}
        if code not in modelled | COMMON_ERRORS:
            return [f"{prefix}: error {code!r} is not modelled for this operation"]
        return []
    parsed.pop("ResponseMetadata", None)
    found = shapes.validate(_epochs(parsed), operation.output_shape, check_patterns=False)
    return [f"{prefix}: {p}" for p in found]


def _epochs(value: Any) -> Any:
    """Parsed timestamps (datetimes) as epoch numbers, as the shape walker reads them."""
    if isinstance(value, dict):
        return {k: _epochs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_epochs(v) for v in value]
    if isinstance(value, datetime):
        return value.timestamp()
    return value
