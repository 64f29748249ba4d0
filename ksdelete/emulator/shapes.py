"""Validate raw KMS (and CloudTrail) JSON bodies against botocore's service models.

botocore's own ``ParamValidator`` checks only types, ``required`` and ``min``; the walker here also
checks enums, ``max``, regex patterns (inputs only: AWS's own responses break some request
patterns, see kms-reference §8.2), unknown members, ``null`` values (AWS omits absent members)
and that timestamps are epoch numbers (awsJson 1.1). Error bodies must carry a ``__type`` that is
one of the operation's modeled errors or a common AWS error, with the right HTTP status.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

# Errors every AWS JSON API may return although the KMS model does not list them.
COMMON_ERRORS: frozenset[str] = frozenset(
    {
        "AccessDeniedException",
        "IncompleteSignature",
        "InternalFailure",
        "InvalidAction",
        "InvalidClientTokenId",
        "InvalidParameterCombination",
        "InvalidParameterValue",
        "InvalidQueryParameter",
        "MalformedQueryString",
        "MissingAction",
        "MissingAuthenticationToken",
        "MissingParameter",
        "NotAuthorized",
        "OptInRequired",
        "UnknownOperationException",  # JSON protocol: an X-Amz-Target the service lacks
        "RequestExpired",
        "ServiceUnavailable",
        "ThrottlingException",
        "UnrecognizedClientException",
        "ValidationError",
        "ValidationException",
    }
)
# Common errors that are server faults (HTTP 5xx).
COMMON_FAULTS: frozenset[str] = frozenset({"InternalFailure", "ServiceUnavailable"})


@cache
def service_model(service: str) -> ServiceModel:
    """A service model shipped with the installed botocore (``"kms"``, ``"cloudtrail"``)."""
    return botocore.session.get_session().get_service_model(service)


def kms_model() -> ServiceModel:
    """The KMS service model shipped with the installed botocore."""
    return service_model("kms")


@cache
def fault_errors(service: str = "kms") -> frozenset[str]:
    """Error shapes the model marks ``"fault": true`` (answered with HTTP 500)."""
    raw = service_model(service)._shape_resolver._shape_map
    return frozenset(name for name, spec in raw.items() if spec.get("fault"))


@cache
def operation(name: str, service: str = "kms") -> OperationModel:
    """The operation model for ``name`` (e.g. ``"DescribeKey"``)."""
    return service_model(service).operation_model(name)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def validate(
    value: Any, shape: Shape | None, path: str = "", *, check_patterns: bool = True
) -> list[str]:
    """Return a list of problems found walking ``value`` (decoded JSON) against ``shape``."""
    problems: list[str] = []
    if shape is None:
        if value not in (None, {}):
            problems.append(f"{path or '<body>'}: body present but operation has no shape")
        return problems
    _walk(value, shape, path, problems, check_patterns)
    return problems


def _walk(value: Any, shape: Shape, path: str, out: list[str], patterns: bool) -> None:
    where = path or "<body>"
    if value is None:
        out.append(f"{where}: null value (absent members must be omitted)")
        return
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            out.append(f"{where}: expected object, got {type(value).__name__}")
            return
        members = shape.members
        required = shape.required_members
        out.extend(f"{where}: missing required member {n}" for n in required if n not in value)
        for name, item in value.items():
            if name not in members:
                out.append(f"{where}: unknown member {name}")
                continue
            _walk(item, members[name], f"{path}.{name}" if path else name, out, patterns)
        return
    if kind == "list":
        if not isinstance(value, list):
            out.append(f"{where}: expected array, got {type(value).__name__}")
            return
        _check_len(len(value), meta, where, out)
        for i, item in enumerate(value):
            _walk(item, shape.member, f"{where}[{i}]", out, patterns)
        return
    if kind == "map":
        if not isinstance(value, dict):
            out.append(f"{where}: expected object (map), got {type(value).__name__}")
            return
        _check_len(len(value), meta, where, out)
        for k, item in value.items():
            _walk(k, shape.key, f"{where}<key>", out, patterns)
            _walk(item, shape.value, f"{where}[{k}]", out, patterns)
        return
    if kind == "string":
        if not isinstance(value, str):
            out.append(f"{where}: expected string, got {type(value).__name__}")
            return
        _check_len(len(value), meta, where, out)
        if shape.enum and value not in shape.enum:
            out.append(f"{where}: {value!r} not in enum {sorted(shape.enum)}")
        pattern = meta.get("pattern")
        if patterns and pattern and _compiled(pattern).search(value) is None:
            out.append(f"{where}: {value!r} does not match pattern {pattern}")
        return
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            out.append(f"{where}: expected integer, got {type(value).__name__}")
            return
        _check_range(value, meta, where, out)
        return
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(f"{where}: expected number, got {type(value).__name__}")
            return
        _check_range(value, meta, where, out)
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{where}: expected boolean, got {type(value).__name__}")
        return
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(f"{where}: expected epoch-seconds number, got {type(value).__name__}")
        return
    if kind == "blob":
        if not isinstance(value, str):
            out.append(f"{where}: expected base64 string, got {type(value).__name__}")
            return
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            out.append(f"{where}: not valid base64")
            return
        _check_len(len(raw), meta, where, out)
        return
    out.append(f"{where}: unsupported shape type {kind}")  # pragma: no cover


def _check_len(n: int, meta: dict[str, Any], where: str, out: list[str]) -> None:
    if "min" in meta and n < meta["min"]:
        out.append(f"{where}: length {n} below min {meta['min']}")
    if "max" in meta and n > meta["max"]:
        out.append(f"{where}: length {n} above max {meta['max']}")


def _check_range(n: float, meta: dict[str, Any], where: str, out: list[str]) -> None:
    if "min" in meta and n < meta["min"]:
        out.append(f"{where}: value {n} below min {meta['min']}")
    if "max" in meta and n > meta["max"]:
        out.append(f"{where}: value {n} above max {meta['max']}")


def validate_request(operation_name: str, body: Any, service: str = "kms") -> list[str]:
    """Problems in a request body (decoded JSON) for ``operation_name``; patterns are checked."""
    return validate(body, operation(operation_name, service).input_shape, check_patterns=True)


def validate_response_body(
    operation_name: str, status: int, raw: bytes, service: str = "kms"
) -> list[str]:
    """Problems in a raw response: output shape for 2xx, modeled/common error for the rest."""
    op = operation(operation_name, service)
    prefix = f"{operation_name} (HTTP {status})"
    if status < 300:
        if not raw.strip():
            body: Any = {}
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                return [f"{prefix}: response body is not JSON: {raw[:80]!r}"]
        # Response patterns are not checked: AWS itself returns values that break request patterns
        # (kms-reference §8.2, XksProxyConfiguration.UriEndpoint with a port).
        found = validate(body, op.output_shape, check_patterns=False)
        return [f"{prefix}: {p}" for p in found]
    try:
        err = json.loads(raw)
    except ValueError:
        return [f"{prefix}: error body is not JSON: {raw[:80]!r}"]
    if not isinstance(err, dict) or not isinstance(err.get("__type"), str):
        return [f"{prefix}: error body has no __type"]
    code = err["__type"].rsplit("#", 1)[-1]
    modeled = {s.name: s for s in op.error_shapes}
    if code in modeled:
        fault = code in fault_errors(service)
        if fault != (status >= 500):
            return [f"{prefix}: {code} sent with wrong HTTP status"]
        return []
    if code in COMMON_ERRORS:
        if (code in COMMON_FAULTS) != (status >= 500):
            return [f"{prefix}: {code} sent with wrong HTTP status"]
        return []
    # A fault of another operation used here (KMSInternalException is modeled nearly everywhere).
    return [f"{prefix}: error {code} is not modeled for this operation"]


def request_errors(operation_name: str, body: Any, service: str = "kms", *,
                   full_match: bool = False) -> list[str]:
    """A request's problems in AWS's words (``1 validation error detected: <these, joined by
    "; ">``), as recorded from real AWS: ``Value 'v' at 'tags.1.member.tagKey' failed to
    satisfy constraint: Member must have length less than or equal to 128``: member names in
    lowerCamelCase, list items ``.N.member`` counted from 1. Problems AWS words otherwise
    (wrong JSON types, unknown members) keep the emulator's own wording. `full_match`: a
    pattern must match the whole value (STS's unanchored patterns, such as ``[\\w+=,.@-]*``
    for a session name, mean that)."""
    out: list[str] = []
    shape = operation(operation_name, service).input_shape
    if shape is not None and isinstance(body, dict):
        _aws_walk(body, shape, "", out, full_match)
    return out


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _aws_walk(value: Any, shape: Shape, path: str, out: list[str],
              full_match: bool = False) -> None:
    def fail(constraint: str) -> None:
        shown = "null" if value is None else f"'{_value_text(value)}'"
        out.append(f"Value {shown} at '{path}' failed to satisfy constraint: Member must "
                   f"{constraint}")

    if value is None:
        fail("not be null")
        return
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            out.append(f"{path or '<body>'}: expected object, got {type(value).__name__}")
            return
        for name in shape.required_members:
            if name not in value:
                where = f"{path}.{_camel(name)}" if path else _camel(name)
                out.append(f"Value null at '{where}' failed to satisfy constraint: Member "
                           "must not be null")
        for name, item in value.items():
            if name not in shape.members:
                out.append(f"{path or '<body>'}: unknown member {name}")
                continue
            where = f"{path}.{_camel(name)}" if path else _camel(name)
            _aws_walk(item, shape.members[name], where, out, full_match)
        return
    if kind == "list":
        if not isinstance(value, list):
            out.append(f"{path}: expected array, got {type(value).__name__}")
            return
        _aws_len(len(value), meta, fail)
        for i, item in enumerate(value, 1):
            _aws_walk(item, shape.member, f"{path}.{i}.member", out, full_match)
        return
    if kind == "map":
        if not isinstance(value, dict):
            out.append(f"{path}: expected object (map), got {type(value).__name__}")
            return
        _aws_len(len(value), meta, fail)
        for k, item in value.items():
            _aws_walk(k, shape.key, f"{path}.{k}.key", out, full_match)
            _aws_walk(item, shape.value, f"{path}.{k}.value", out, full_match)
        return
    problems: list[str] = []
    _walk(value, shape, path, problems, True)  # types, base64: the emulator's own wording
    if any("expected" in p or "base64" in p for p in problems):
        out.extend(problems)
        return
    if kind == "string":
        _aws_len(len(value), meta, fail)
        if shape.enum and value not in shape.enum:
            fail(f"satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and (compiled.fullmatch(value) if full_match
                                     else compiled.search(value)) is None:
            fail(f"satisfy regular expression pattern: {pattern}")
    elif kind in ("integer", "long", "float", "double"):
        if "min" in meta and value < meta["min"]:
            fail(f"have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            fail(f"have value less than or equal to {meta['max']}")
    elif kind == "blob":
        _aws_len(len(base64.b64decode(value)), meta, fail)


def _aws_len(n: int, meta: dict[str, Any], fail: Any) -> None:
    if "min" in meta and n < meta["min"]:
        fail(f"have length greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        fail(f"have length less than or equal to {meta['max']}")
