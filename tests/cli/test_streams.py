"""Streams: what the user asked for (the plan of a dry run, a status, a report) is on stdout;
progress and diagnostics on stderr; each error printed once; with --output json, stdout is
exactly one JSON document."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ksdelete.emulator import Emulator
from ksdelete.live import RichReporter
from ksdelete.models import (
    ConnectionState,
    KeyStore,
    Plan,
    Refusal,
    RefusalReason,
    Snapshot,
    StoreType,
)

from .helpers import at_the_prompt, ksdelete, seed_one, validated


def test_the_plan_of_a_dry_run_is_on_stdout(emulator: Emulator) -> None:
    seed_one(emulator, keys=3)
    run = ksdelete(emulator, "target", "--dry-run")
    assert run.exit_code == 0, run.stderr
    assert "steps:" in run.stdout and "ScheduleKeyDeletion for 3 key(s)" in run.stdout
    assert "steps:" not in run.stderr and "ScheduleKeyDeletion for" not in run.stderr
    assert "discover: " in run.stderr  # progress stays on stderr
    quiet = ksdelete(emulator, "target", "--dry-run", "--quiet")
    assert "ScheduleKeyDeletion for 3 key(s)" in quiet.stdout and quiet.stderr == ""


def test_json_stdout_is_one_document_and_the_plan_goes_to_stderr(emulator: Emulator) -> None:
    seed_one(emulator, keys=2)
    for args in (["target", "--dry-run"], ["status", "target"], ["report", "target"],
                 ["target", "--yes", "--expect-keys", "5"], ["status", "nope"]):
        run = ksdelete(emulator, *args, "--output", "json")
        doc = validated(run.stdout)  # exactly one document, nothing else
        assert doc["schema_version"] == 2, args
    run = ksdelete(emulator, "target", "--dry-run", "--output", "json")
    assert "ScheduleKeyDeletion for 2 key(s)" in run.stderr


def test_status_says_the_phase_on_stdout(emulator: Emulator) -> None:
    seed_one(emulator, keys=3)
    run = ksdelete(emulator, "status", "target")
    assert run.exit_code == 3, run.stderr
    assert "keys-not-scheduled 3/3" in run.stdout
    assert "keys-not-scheduled" not in run.stderr


def test_report_says_the_leftovers_on_stdout(emulator: Emulator) -> None:
    seed_one(emulator, keys=2, type="EXTERNAL_KEY_STORE")
    run = ksdelete(emulator, "report", "target")
    assert run.exit_code == 3, run.stderr
    assert "external key" in run.stdout.lower()
    assert "external key" not in run.stderr.lower()


def test_a_refusal_is_printed_once(emulator: Emulator) -> None:
    seed_one(emulator, keys=3)
    for output in ("text", "json"):
        run = ksdelete(emulator, "target", "--yes", "--expect-keys", "5", "--output", output)
        assert run.exit_code == 4
        text = run.stderr + (run.stdout if output == "text" else "")
        assert text.count("but --expect-keys says 5") == 1, (output, text)
    dry = ksdelete(emulator, "target", "--dry-run", "--expect-keys", "5")
    assert (dry.stdout + dry.stderr).count("but --expect-keys says 5") == 1


def test_an_error_that_stops_the_invocation_is_printed_once(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_one(emulator, keys=1)
    monkeypatch.setenv("AWS_PROFILE", "nope")
    run = ksdelete(emulator, "status", "target")
    assert run.exit_code == 2
    assert (run.stdout + run.stderr).count("profile 'nope' not found") == 1
    assert run.stderr.startswith("ksdelete: error: ")


def test_the_live_view_shows_a_refusal_once() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=300)
    reporter = RichReporter(console, auto_refresh=False)
    store = KeyStore("cks-1234567890abcdef0", "p", StoreType.EXTERNAL,
                     ConnectionState.CONNECTED)
    refusal = Refusal(RefusalReason.KEY_COUNT, "it holds 0 key(s), but --expect-keys says 5",
                      "Check the store, then pass --expect-keys 0", ("keys: none",))
    reporter.start(command="delete", dry_run=False)
    bound = reporter.for_store(store.id)
    bound.begin()
    bound.plan(Snapshot(store, ()), Plan(store.id, (), refusal=refusal))
    bound.note(refusal.as_error(where=store.id).text, level="refused")
    reporter.finish([])
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert text.count("but --expect-keys says 5") == 1, text
    assert text.count("keys: none") == 1, text
    assert "refused: it holds" in text and "error" not in text, text


def test_every_line_of_a_store_names_it_even_the_gateways_retries(emulator: Emulator) -> None:
    """The plain lines of a store begin with it: its phases, notes and the retries of the
    AWS calls made for it (the gateway's own, which know no store, included)."""
    seed_one(emulator, keys=3, plain=10)
    emulator.configure(fault_rate=0.2, seed=7)
    run = ksdelete(emulator, "target", "--yes")
    emulator.configure(fault_rate=0.0)
    assert run.exit_code == 3, run.stderr
    retries = [line for line in run.stderr.splitlines() if "retry:" in line]
    assert retries, run.stderr
    assert all(" target: retry: " in line for line in retries), retries
    assert " target: discover: running" in run.stderr


def test_a_declined_plan_is_said_under_its_own_store(emulator: Emulator) -> None:
    """Two stores, surveyed both before the first prompt: the refusal of the one the operator
    declines is said under it, not under the store surveyed last."""
    seed_one(emulator, keys=1, other=1)
    run = at_the_prompt(emulator, "other", "target", keys=b"n\n")
    assert run.exit_code == 4, run.stderr
    declined = [line for line in run.stderr.splitlines() if "not confirmed" in line]
    assert declined and all(" other: refused: " in line for line in declined), run.stderr
