"""The golden normaliser replaces only what varies between runs, and keeps order and wording."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .normalise import Normaliser, by_key

A, B = "e2969825-3792-48fe-b370-1b1f5556b260", "7d9f3a21-add1-45e0-9f4f-9548544577a2"
T0 = datetime(2026, 12, 3, 12, 56, 40, tzinfo=UTC)


def normaliser() -> Normaliser:
    seeded = [{"id": "cks-c4eafab9a6460bd1a", "name": "target", "key_ids": [A, B]}]
    keys: list[dict[str, Any]] = [{"KeyId": A, "CustomKeyStoreId": "cks-c4eafab9a6460bd1a"},
            {"KeyId": B, "CustomKeyStoreId": "cks-c4eafab9a6460bd1a"},
            {"KeyId": "0f5aa98a-a9cd-43d5-ba4e-2a72fdcead38", "CustomKeyStoreId": None}]
    return Normaliser(seeded, keys, T0, "http://127.0.0.1:40123", Path("/tmp/pytest-1/x0"))


def test_keys_are_named_by_rank_and_their_aliases_follow_them() -> None:
    norm = normaliser()
    # B sorts first: rank 1; its seeded alias is target-1 (the second key seeded).
    assert norm.text(f"key {B} aliases alias/target-1\nkey {A} aliases alias/target-0") == (
        "key <KEY:target-1> aliases alias/target-<1>\nkey <KEY:target-2> aliases alias/target-<2>")
    assert norm.text("0f5aa98a-a9cd-43d5-ba4e-2a72fdcead38 11111111-2222-3333-4444-555555555555") \
        == "<KEY:plain-1> <UUID>"
    assert norm.text("alias/target-10 alias/target-1x") == "alias/target-10 alias/target-1x"


def test_instants_are_relative_to_t0_to_the_hour_and_keep_their_format() -> None:
    norm = normaliser()
    text = ("2026-12-03T12:56:21Z target: earliest 2026-12-10 12:56 UTC, "
            "at 2026-12-10T12:57:23.664560+00:00 or 2026-12-03T12:57:28Z; "
            "tracking since 2026-04-23T00:00:00+00:00; next try in 0.13s; 2026-12-11")
    assert norm.text(text) == (
        "<TS> target: earliest <T0+7d> UTC, at <T0+7d|iso> or <T0|isoZ>; "
        "tracking since <INSTANT|iso>; next try in <SECONDS>; <DATE>")
    assert norm.text("2026-12-04T14:00:00Z") == "<T0+1d1h|isoZ>"
    assert norm.text("2026-12-03T10:00:00Z") == "<T0-3h|isoZ>"


def test_ids_endpoint_paths_and_version() -> None:
    norm = normaliser()
    norm.learn("de2f6ab75f7c", "RUN")
    norm.learn("5fc52a412e29", "RUN")
    norm.learn("de2f6ab75f7c", "RUN")
    out = ('{"ksdelete_version": "0.2.0", "run_id": "5fc52a412e29"} run=de2f6ab75f7c '
           "cks-c4eafab9a6460bd1a cks-00000000000000000 cluster-44cawwknrlc "
           f"{'ab' * 32} http://127.0.0.1:40123 /tmp/pytest-1/x0/plan.json 123456789012")
    assert norm.text(out) == (
        '{"ksdelete_version": "<VERSION>", "run_id": "<RUN-2>"} run=<RUN-1> '
        "<STORE:target> <STORE:?> <CLUSTER> <HEX64> <ENDPOINT> <TMP>/plan.json 123456789012")


def test_json_must_be_one_compact_line_and_keeps_member_order() -> None:
    norm = normaliser()
    assert norm.json('{"b": 1, "a": "2026-12-03T12:56:40+00:00"}\n') == (
        '{\n  "b": 1,\n  "a": "<T0|iso>"\n}\n')
    for bad in ('{"b":1}\n', '{"b": 1}', '{"b": 1}\n\n'):
        try:
            norm.json(bad)
        except AssertionError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_per_key_actions_are_sorted_between_store_actions_only() -> None:
    actions: list[dict[str, Any]] = [{"operation": "TagResource", "key_id": "b"},
               {"operation": "TagResource", "key_id": "a"},
               {"operation": "ScheduleKeyDeletion", "key_id": "b"},
               {"operation": "DisconnectCustomKeyStore", "key_id": None},
               {"operation": "TagResource", "key_id": "c"}]
    assert [(a["operation"], a["key_id"]) for a in by_key(actions)] == [
        ("TagResource", "a"), ("TagResource", "b"), ("ScheduleKeyDeletion", "b"),
        ("DisconnectCustomKeyStore", None), ("TagResource", "c")]



def test_key_outcomes_are_sorted_by_key_and_keys_are_not() -> None:
    out = ('{"stores": [{"key_outcomes": [{"id": "b"}, {"id": "a"}], '
           '"keys": [{"id": "b"}, {"id": "a"}]}]}\n')
    assert json.loads(normaliser().json(out)) == {"stores": [{
        "key_outcomes": [{"id": "a"}, {"id": "b"}], "keys": [{"id": "b"}, {"id": "a"}]}]}
