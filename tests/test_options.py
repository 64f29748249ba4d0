"""The plan options are declared once (ksdelete/options.py); the click options, the option
words (show-plan), the plan file and the journal's ConfirmPlan record are derived from that
table, and each encoding reads back what it wrote (issue 20)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ksdelete import options as table
from ksdelete import planfile
from ksdelete.cli import cli
from ksdelete.models import (
    MAX_SOAK_DAYS,
    ConnectionState,
    Identity,
    KeyStore,
    Plan,
    PlanOptions,
    Status,
    StoreResult,
    StoreType,
)

CHARS = st.characters(exclude_categories=["Cs"])  # any text JSON and UTF-8 can carry
TAGS = st.lists(st.tuples(st.text(CHARS, min_size=1, max_size=20).filter(lambda s: "=" not in s),
                          st.none() | st.text(CHARS, max_size=20)),
                max_size=3).map(tuple)

PLAN_OPTIONS = st.builds(
    PlanOptions,
    pending_window_days=st.integers(7, 30), connect=st.booleans(),
    allow_orphaned_key_material=st.booleans(), include_new_keys=st.booleans(),
    unused_for_days=st.integers(0, 3650), allow_service_grants=st.booleans(),
    protect_tags=TAGS, expect_keys=st.none() | st.integers(0, 10**6),
    on_use=st.sampled_from(["cancel", "refuse", "ignore"]),
    disable_first_days=st.integers(0, MAX_SOAK_DAYS))

IDENTITY = Identity("111122223333", "eu-west-1", "arn:aws:iam::111122223333:user/op")


def _only(opts: PlanOptions, keep: set[str]) -> PlanOptions:
    """`opts` with every field not in `keep` at its default."""
    return dataclasses.replace(PlanOptions(), **{f: getattr(opts, f) for f in keep})


def _delete_context(argv: list[str]) -> click.Context:
    """`ksdelete delete STORE ARGV...` parsed (under its group, whose settings it inherits:
    a command parsed on its own would cache a help option without -h)."""
    root = click.Context(cli, info_name="ksdelete", **cli.context_settings)
    return cli.commands["delete"].make_context("delete", ["cks-1234567890abcdef0", *argv],
                                               parent=root)


def _planned() -> StoreResult:
    store = KeyStore("cks-1234567890abcdef0", "target", StoreType.CLOUDHSM,
                     ConnectionState.CONNECTED)
    return StoreResult(ref=store.id, status=Status.PLANNED, matched_by="id", store=store,
                       plan=Plan(store.id, ()))


def test_the_table_declares_every_field_of_plan_options_once() -> None:
    fields = [f.name for f in dataclasses.fields(PlanOptions)]
    assert sorted(s.field for s in table.SPECS) == sorted(fields)
    assert sorted(table.PARSER_ORDER) == sorted(fields)
    assert len({s.flag for s in table.SPECS}) == len(table.SPECS)
    for spec in table.SPECS:  # the table's defaults are the model's
        assert spec.default == getattr(PlanOptions(), spec.field), spec.field


def test_delete_and_status_take_exactly_the_tables_options() -> None:
    for name in ("delete", "status"):
        flags = {o for p in cli.commands[name].params for o in p.opts}
        assert {s.flag for s in table.SPECS} <= flags, name


@settings(max_examples=200, deadline=None)
@given(opts=PLAN_OPTIONS)
def test_options_to_words_and_back(opts: PlanOptions) -> None:
    words = table.option_words(opts)
    assert table.parse_words(words) == opts
    # ... and through the real command line parser of `delete`
    argv = [part for word in words for part in word.split(" ", 1)]
    ctx = _delete_context(argv)
    assert table.from_params(ctx.params) == opts


@settings(max_examples=200, deadline=None)
@given(opts=PLAN_OPTIONS)
def test_options_to_plan_file_and_back(opts: PlanOptions,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    content = planfile.build([_planned()], IDENTITY, opts, endpoint_url=None,
                             now=datetime(2026, 12, 3, tzinfo=UTC))
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    planfile.write(path, content)
    saved = planfile.read(path)
    # --include-new-keys is never part of a plan: `apply` acts only on the plan's keys.
    assert saved.options == dataclasses.replace(opts, include_new_keys=False)


@settings(max_examples=200, deadline=None)
@given(opts=PLAN_OPTIONS)
def test_options_to_journal_record_and_back(opts: PlanOptions) -> None:
    record = json.loads(json.dumps(table.journal_record(opts)))  # as a journal line holds it
    kept = {s.field for s in table.SPECS if s.journal}
    assert table.from_journal_record(record) == _only(opts, kept)


def test_the_encodings_are_todays() -> None:
    """The on-disk formats stay as they were: the plan file's members (in their order) and
    the journal's `gates` record; the option words as show-plan printed them."""
    opts = PlanOptions(pending_window_days=7, connect=True, unused_for_days=0,
                       protect_tags=(("team", "pay"), ("keep", None)), expect_keys=3,
                       on_use="refuse", disable_first_days=14)
    assert table.plan_file_options(opts) == {
        "pending_window_days": 7, "connect": True, "allow_orphaned_key_material": False,
        "unused_for_days": 0, "allow_service_grants": False,
        "protect_tags": [["team", "pay"], ["keep", None]], "expect_keys": 3,
        "max_keys": None, "on_use": "refuse", "disable_first_days": 14}
    assert list(table.plan_file_options(opts)) == [
        "pending_window_days", "connect", "allow_orphaned_key_material", "unused_for_days",
        "allow_service_grants", "protect_tags", "expect_keys", "max_keys", "on_use",
        "disable_first_days"]
    assert table.journal_record(opts) == {
        "unused_for_days": 0, "allow_service_grants": False,
        "protect_tags": [["team", "pay"], ["keep", None]], "expect_keys": 3,
        "max_keys": None, "on_use": "refuse", "disable_first_days": 14}
    assert table.option_words(opts) == [
        "--pending-window-days 7", "--unused-for 0", "--on-use refuse", "--connect",
        "--protect-tag team=pay", "--protect-tag keep", "--expect-keys 3",
        "--disable-first 14"]


def test_a_plan_file_saved_before_the_gate_options_still_loads(tmp_path: Path) -> None:
    """Plan files written before --unused-for, --protect-tag, --expect-keys, --on-use,
    --disable-first and --allow-service-grants existed hold only the first three options."""
    content = planfile.build([_planned()], IDENTITY, PlanOptions(), endpoint_url=None,
                             now=datetime(2026, 5, 1, tzinfo=UTC))
    content["options"] = {"pending_window_days": 14, "connect": False,
                          "allow_orphaned_key_material": True}
    content["digest"] = planfile.digest_of(content)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(content))
    assert planfile.read(path).options == PlanOptions(pending_window_days=14,
                                                      allow_orphaned_key_material=True)


def test_a_journal_record_without_some_gate_options_reads_as_their_defaults() -> None:
    assert table.from_journal_record({"unused_for_days": 7}) == PlanOptions(unused_for_days=7)
    assert table.from_journal_record(None) == PlanOptions()


def test_a_tag_the_command_line_refuses_is_refused_in_a_plan_file(tmp_path: Path) -> None:
    """One validation for every encoding: what --protect-tag refuses, a (resealed) plan file
    cannot carry either."""
    for bad in ("", "x" * 129):
        try:
            table.parse_tag(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(bad)
        content = planfile.build([_planned()], IDENTITY, PlanOptions(), endpoint_url=None,
                                 now=datetime(2026, 5, 1, tzinfo=UTC))
        content["options"]["protect_tags"] = [[bad, None]]
        content["digest"] = planfile.digest_of(content)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(content))
        try:
            planfile.read(path)
        except Exception as exc:  # noqa: BLE001 - the usage error
            assert "protect_tags" in str(exc), exc
        else:
            raise AssertionError(f"a tag {bad!r} loaded")
    try:
        _delete_context(["--protect-tag", ""])
    except click.BadParameter:
        pass
    else:
        raise AssertionError("--protect-tag '' was accepted")
