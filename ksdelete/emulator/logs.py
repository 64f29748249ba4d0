"""CloudWatch Logs for the emulator: ``FilterLogEvents`` over a log group that a CloudTrail trail
delivers the Region's events to (the ``cloudtrail_log_group`` knob names it; "" = none).

AWS's own alarm on use of a key pending deletion is a metric filter on such a group
(kms-gates-facts, correction 3). What is served: the events of :data:`cloudtrail.TRAIL` (each
record one log event, message = the record's JSON), ``cloudtrail_delay`` applied, oldest first,
``startTime``/``endTime`` (ms, inclusive), ``limit`` (default 10,000), ``nextToken`` and a
``filterPattern`` in the JSON syntax's subset: ``{ TERM }`` where a TERM is ``$.a.b = VALUE``
or ``$.a.b != VALUE`` (VALUE a "quoted string" or a bare word, ``*`` a wildcard), ``&&``, ``||``
and parentheses. Any other pattern is ``InvalidParameterException`` ("Invalid filter pattern"),
as AWS answers an invalid one; an unknown group is ``ResourceNotFoundException``.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import re
from collections.abc import Callable
from typing import Any

from . import cloudtrail
from .realism import RUNTIME

TARGET_PREFIX = "Logs_20140328."
STREAM = "{account}_CloudTrail_{region}"
DEFAULT_LIMIT = 10_000

Predicate = Callable[[dict[str, Any]], bool]
_TOKEN = re.compile(r'\s*(\(|\)|&&|\|\||!=|=|"(?:[^"\\]|\\.)*"'
                    r'|\$(?:\.[A-Za-z0-9_]+)+|[^\s()=!&|"]+)')


class LogsError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid() -> LogsError:
    return LogsError("InvalidParameterException", "Invalid filter pattern")


def parse_pattern(pattern: str) -> Predicate:
    """The predicate of a JSON filter pattern (the subset above)."""
    text = pattern.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise _invalid()
    tokens: list[str] = []
    body = text[1:-1]
    pos = 0
    while pos < len(body):
        if body[pos:].strip() == "":
            break
        match = _TOKEN.match(body, pos)
        if match is None:
            raise _invalid()
        tokens.append(match.group(1))
        pos = match.end()
    predicate, rest = _or(tokens)
    if rest:
        raise _invalid()
    return predicate


def _or(tokens: list[str]) -> tuple[Predicate, list[str]]:
    left, tokens = _and(tokens)
    while tokens and tokens[0] == "||":
        right, tokens = _and(tokens[1:])
        left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
    return left, tokens


def _and(tokens: list[str]) -> tuple[Predicate, list[str]]:
    left, tokens = _term(tokens)
    while tokens and tokens[0] == "&&":
        right, tokens = _term(tokens[1:])
        left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
    return left, tokens


def _term(tokens: list[str]) -> tuple[Predicate, list[str]]:
    if not tokens:
        raise _invalid()
    if tokens[0] == "(":
        inner, rest = _or(tokens[1:])
        if not rest or rest[0] != ")":
            raise _invalid()
        return inner, rest[1:]
    if len(tokens) < 3 or not tokens[0].startswith("$.") or tokens[1] not in ("=", "!="):
        raise _invalid()
    path = tokens[0][2:].split(".")
    raw = tokens[2]
    if raw in ("(", ")", "&&", "||", "=", "!="):
        raise _invalid()
    value = json.loads(raw) if raw.startswith('"') else raw
    equal = tokens[1] == "="

    def check(record: dict[str, Any]) -> bool:
        node: Any = record
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None or isinstance(node, dict | list):
            return not equal
        text = str(node).lower() if isinstance(node, bool) else str(node)
        matched = fnmatch.fnmatchcase(text, value) if "*" in value else text == value
        return matched == equal

    return check, tokens[3:]


def _encode(when: float, seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([when, seq]).encode()).decode()


def _decode(token: Any) -> tuple[float, int]:
    try:
        when, seq = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        return float(when), int(seq)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise LogsError("InvalidParameterException", "The specified nextToken is invalid.") \
            from exc


def filter_log_events(region: str, params: dict[str, Any], account: str = "123456789012"
                      ) -> dict[str, Any]:
    group = params.get("logGroupName")
    if not group or group != RUNTIME.config.cloudtrail_log_group:
        raise LogsError("ResourceNotFoundException", "The specified log group does not exist.")
    predicate = parse_pattern(str(params["filterPattern"])) if params.get("filterPattern") \
        else (lambda record: True)
    limit = int(params.get("limit") or DEFAULT_LIMIT)
    if not 1 <= limit <= DEFAULT_LIMIT:
        raise LogsError("InvalidParameterException", "limit must be 1 through 10000.")
    start = params.get("startTime")
    end = params.get("endTime")
    cursor = _decode(params["nextToken"]) if params.get("nextToken") else None
    visible = RUNTIME.clock.epoch() - RUNTIME.config.cloudtrail_delay
    stream = STREAM.format(account=account, region=region)
    out: list[dict[str, Any]] = []
    more = False
    for event in reversed(cloudtrail.TRAIL.events(region, account)):  # oldest first
        if event.time > visible:
            break
        millis = int(event.time * 1000)
        if start is not None and millis < int(start):
            continue
        if end is not None and millis > int(end):
            break
        if cursor is not None and (event.time, event.seq) <= cursor:
            continue
        if not predicate(event.record):
            continue
        if len(out) == limit:
            more = True
            break
        out.append({"logStreamName": stream, "timestamp": millis,
                    "message": json.dumps(event.record, separators=(",", ":")),
                    "ingestionTime": millis, "eventId": f"{millis:020d}{event.seq:016d}",
                    "_cursor": (event.time, event.seq)})
    answer: dict[str, Any] = {
        "events": [{k: v for k, v in e.items() if k != "_cursor"} for e in out],
        "searchedLogStreams": [{"logStreamName": stream, "searchedCompletely": not more}],
    }
    if more:
        answer["nextToken"] = _encode(*out[-1]["_cursor"])
    return answer
