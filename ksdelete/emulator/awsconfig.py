"""AWS Config for the emulator: ``SelectAggregateResourceConfig`` (JSON protocol, target prefix
``StarlingDoveService``) for the one query shape fleet mode sends, the keys of some custom key
stores across every account and Region of an aggregator::

    SELECT accountId, awsRegion, resourceId, configuration.customKeyStoreId
    WHERE resourceType = 'AWS::KMS::Key' AND configuration.customKeyStoreId IN ('cks-1', ...)

Any other expression is ``InvalidExpressionException`` saying the emulator serves only that
shape. Answers come from every account's KMS keys in every Region, as Config would see them
``config_lag_seconds`` ago (AWS: "subject to delays"; how long is UNCONFIRMED, so by default a
whole emulated day: a key created since is not listed yet, a key deleted since still is);
``config_hide_keys`` are never listed (a key the recorder does not cover); only the
aggregators ``config_aggregators`` names exist (``NAME`` in every Region, ``NAME@REGION`` in
that one; default none: ``NoSuchConfigurationAggregatorException``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from .realism import RUNTIME

TARGET_PREFIX = "StarlingDoveService."
OPERATION = "SelectAggregateResourceConfig"
FIELDS = ("accountId", "awsRegion", "resourceId", "configuration.customKeyStoreId")
DEFAULT_LIMIT = 25  # Config's default page size (developer guide, advanced queries)
_QUERY = re.compile(
    r"^\s*SELECT\s+accountId\s*,\s*awsRegion\s*,\s*resourceId\s*,\s*"
    r"configuration\.customKeyStoreId\s+WHERE\s+resourceType\s*=\s*'AWS::KMS::Key'\s+AND\s+"
    r"configuration\.customKeyStoreId\s+IN\s*\(\s*('[^']+'(?:\s*,\s*'[^']+')*)\s*\)\s*$",
    re.IGNORECASE)


class ConfigError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def store_ids(expression: str) -> list[str]:
    """The store IDs of the one expression served; InvalidExpressionException for any other."""
    match = _QUERY.match(expression)
    if match is None:
        raise ConfigError("InvalidExpressionException",
                          "The emulator serves one SelectAggregateResourceConfig expression "
                          f"only: SELECT {', '.join(FIELDS)} WHERE resourceType = "
                          "'AWS::KMS::Key' AND configuration.customKeyStoreId IN ('cks-...', "
                          "...)")
    return [part.strip().strip("'") for part in match.group(1).split(",")]


def exists(name: str, region: str) -> bool:
    return any(entry in (name, f"{name}@{region}")
               for entry in RUNTIME.config.config_aggregators)


def select(params: dict[str, Any], region: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer: `keys` are every key Config could know of, each {"account", "region", "id",
    "store", "created", "deleted" (None while it exists)}; the caller holds RUNTIME.lock."""
    name = str(params.get("ConfigurationAggregatorName", ""))
    wanted = set(store_ids(str(params.get("Expression", ""))))
    if not exists(name, region):
        raise ConfigError("NoSuchConfigurationAggregatorException",
                          f"The configuration aggregator '{name}' does not exist.")
    limit = params.get("Limit") or params.get("MaxResults") or DEFAULT_LIMIT
    cfg = RUNTIME.config
    seen_at = RUNTIME.clock.epoch() - cfg.config_lag_seconds
    hidden = set(cfg.config_hide_keys)
    rows = sorted(
        (k["account"], k["region"], k["id"], k["store"]) for k in keys
        if k["store"] in wanted and k["id"] not in hidden and k["created"] <= seen_at
        and (k["deleted"] is None or k["deleted"] > seen_at))
    start = _offset(params.get("NextToken"))
    page = rows[start:start + int(limit)]
    answer: dict[str, Any] = {
        "Results": [json.dumps({"accountId": a, "awsRegion": r, "resourceId": i,
                                "configuration": {"customKeyStoreId": s}})
                    for a, r, i, s in page],
        "QueryInfo": {"SelectFields": [{"Name": f} for f in FIELDS]},
    }
    if start + int(limit) < len(rows):
        answer["NextToken"] = base64.b64encode(f"offset:{start + int(limit)}".encode()).decode()
    return answer


def _offset(token: Any) -> int:
    if token is None:
        return 0
    try:
        text = base64.b64decode(str(token), validate=True).decode()
        if text.startswith("offset:"):
            return max(0, int(text.removeprefix("offset:")))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ConfigError("InvalidNextTokenException", "The nextToken provided is invalid")
