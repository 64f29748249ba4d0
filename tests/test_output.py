"""The JSON result document: fields rendered from a StoreResult."""

from __future__ import annotations

import json

from ksdelete.models import StoreResult, UndescribableKey
from ksdelete.output import document, store_json


def test_undescribable_keys_are_in_the_json_with_their_aws_error() -> None:
    denied = UndescribableKey("k1", "arn:aws:kms:us-east-1:123456789012:key/k1",
                              "AccessDeniedException", "not authorized to perform kms:DescribeKey")
    failing = UndescribableKey("k2", "arn:aws:kms:us-east-1:123456789012:key/k2",
                               "KMSInternalException", "internal error")
    doc = store_json(StoreResult(ref="target", undescribable=(denied, failing)))
    assert doc["undescribable"] == [
        {"id": "k1", "arn": denied.arn, "error_code": "AccessDeniedException",
         "message": "not authorized to perform kms:DescribeKey"},
        {"id": "k2", "arn": failing.arn, "error_code": "KMSInternalException",
         "message": "internal error"},
    ]
    assert json.loads(json.dumps(document("status", [StoreResult(ref="x")], 0))) \
        ["stores"][0]["undescribable"] == []
