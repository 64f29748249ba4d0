"""The leftovers report from journal records and CloudTrail DeleteKey events (pure)."""

from __future__ import annotations

import json
from typing import Any

from ksdelete.leftovers import as_json, lines, report
from ksdelete.models import StoreType

STORE = {"store_id": "cks-1", "store_name": "payments", "store_type": "AWS_CLOUDHSM",
         "cluster_id": "cluster-1a23b4cdefg"}


def arn(n: int) -> str:
    return f"arn:aws:kms:eu-west-1:111122223333:key/k{n}"


def keys(*ns: int) -> dict[str, dict[str, Any]]:
    return {f"k{n}": {"id": f"k{n}", "arn": arn(n), "creation_date": f"2026-0{n}-01T00:00:00",
                      "external_key_id": f"ext-{n}"} for n in ns}


def delete_event(n: int, status: str, *, handles: bool = True, store: str = "cks-1"
                 ) -> dict[str, Any]:
    entry: dict[str, Any] = {"backingKeyId": f"bk-{n}", "deletionStatus": status}
    if handles:
        entry["keyHandle"] = str(10 + n)
    backing = {k: v for k, v in entry.items() if k != "deletionStatus"}
    return {"eventName": "DeleteKey", "eventType": "AwsServiceEvent",
            "eventTime": "2026-11-20T00:00:00Z", "responseElements": {"keyId": arn(n)},
            "resources": [{"ARN": arn(n), "type": "AWS::KMS::Key"}],
            "additionalEventData": {"customKeyStoreId": store,
                                    "clusterId": "cluster-1a23b4cdefg",
                                    "backingKeys": json.dumps([backing]),
                                    "backingKeysDeletionStatus": json.dumps([entry])}}


def test_cloudhsm_orphaned_material_is_named_with_its_key_handle() -> None:
    events = [delete_event(1, "FAILURE"), delete_event(2, "SUCCESS", handles=False)]
    left = report(STORE, keys(1, 2, 3), events)
    assert left.store_type is StoreType.CLOUDHSM
    assert [k.id for k in left.orphaned] == ["k1"]
    assert left.orphaned[0].key_handles == ("11",)
    assert left.orphaned[0].backing_key_ids == ("bk-1",)
    assert [k.id for k in left.unknown] == ["k3"]  # no DeleteKey event (yet)
    text = "\n".join(lines(left))
    assert "ORPHANED key material of k1" in text and "11" in text
    assert "cluster backups" in text and "cluster-1a23b4cdefg" in text
    doc = as_json(left)
    assert doc["orphaned"] == ["k1"] and doc["unknown"] == ["k3"]
    assert doc["keys"][1]["material_deletion"] == "SUCCESS"


def test_the_newest_delete_event_of_each_key_counts_and_other_keys_are_ignored() -> None:
    newest_first = [delete_event(9, "FAILURE", store="cks-2"), delete_event(1, "SUCCESS"),
                    delete_event(1, "FAILURE")]
    left = report(STORE, keys(1), newest_first)
    assert left.keys[0].material == "SUCCESS" and not left.orphaned
    assert [k.id for k in left.keys] == ["k1"]


def test_keys_the_journal_never_kept_are_found_by_the_store_their_event_names() -> None:
    events = [delete_event(9, "FAILURE", store="cks-2"), delete_event(2, "FAILURE"),
              delete_event(1, "SUCCESS")]
    left = report(STORE, {}, events, by_store=True)
    assert [k.id for k in left.keys] == ["k1", "k2"]
    assert [k.id for k in left.orphaned] == ["k2"] and left.orphaned[0].key_handles == ("12",)


def test_external_key_store_lists_every_external_key_left_behind() -> None:
    left = report({**STORE, "store_type": "EXTERNAL_KEY_STORE", "cluster_id": None},
                  keys(1, 2), [delete_event(1, "FAILURE")])
    assert left.store_type is StoreType.EXTERNAL
    assert not left.orphaned  # CloudHSM material only
    text = "\n".join(lines(left))
    assert "external key ext-1" in text and "external key ext-2" in text
    assert "external key manager" in text


def current_delete_event(n: int, status: str) -> dict[str, Any]:
    """The shape of AWS's current example (ct-delete-key.html): backingKeyId only, no
    keyHandle; AWS calls backingKeyId "the key handle of the key material"."""
    return delete_event(n, status, handles=False)


def test_backing_key_id_is_the_handle_when_the_event_has_no_key_handle() -> None:
    left = report(STORE, keys(1), [current_delete_event(1, "FAILURE")])
    assert [k.id for k in left.orphaned] == ["k1"]
    assert left.orphaned[0].key_handles == ("bk-1",)
    text = "\n".join(lines(left))
    assert "key handle(s) -" not in text and "key handle(s) bk-1" in text


def test_only_success_counts_as_deleted() -> None:
    """AWS documents SUCCESS and FAILURE only: anything else is not a confirmed deletion."""
    odd = current_delete_event(1, "IN_PROGRESS")
    empty = current_delete_event(2, "SUCCESS")
    empty["additionalEventData"]["backingKeysDeletionStatus"] = "[]"
    mixed = current_delete_event(3, "SUCCESS")
    entries = json.loads(mixed["additionalEventData"]["backingKeysDeletionStatus"])
    entries.append({"backingKeyId": "bk-3b", "deletionStatus": "PENDING"})
    mixed["additionalEventData"]["backingKeysDeletionStatus"] = json.dumps(entries)
    left = report(STORE, keys(1, 2, 3, 4), [odd, empty, mixed, current_delete_event(4, "SUCCESS")])
    by_id = {k.id: k for k in left.keys}
    assert by_id["k4"].material == "SUCCESS"
    assert all(by_id[k].material != "SUCCESS" for k in ("k1", "k2", "k3"))
    assert {k.id for k in left.unconfirmed} == {"k1", "k2", "k3"}
    text = "\n".join(lines(left))
    assert "1 key(s): material deleted from the cluster (SUCCESS)" in text
    assert "not confirmed" in text and "IN_PROGRESS" in text
    assert sorted(as_json(left)["unconfirmed"]) == ["k1", "k2", "k3"]
