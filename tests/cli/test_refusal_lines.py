"""A refusal reads at a glance, over HTTP against the emulator: its first line says what and
the fix in at most 160 characters however many keys the store holds; the keys and the
details follow on lines of their own (and in the JSON, which the schema validates); each
piece of information is said once; it is labelled a refusal (exit 4), not an error."""

from __future__ import annotations

import re

from ksdelete.emulator import Emulator

from .helpers import ksdelete, mutations, seed_one

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?:target: )?")


def _lines(text: str) -> list[str]:
    return [STAMP.sub("", line) for line in text.splitlines()]


def _refusal(text: str) -> tuple[str, list[str]]:
    """The refusal's first line (without its label) and the indented lines under it."""
    lines = _lines(text)
    at = next(i for i, line in enumerate(lines) if line.startswith("refused: "))
    details = []
    for line in lines[at + 1:]:
        if not line.startswith("  "):
            break
        details.append(line.strip())
    return lines[at].removeprefix("refused: "), details


def test_a_refusal_over_many_keys_has_a_short_first_line_that_says_the_fix(
        emulator: Emulator) -> None:
    seed_one(emulator, keys=60, tags={"keep": "yes"})
    run = ksdelete(emulator, "target", "--yes", "--protect-tag", "keep")
    assert run.exit_code == 4, run.stderr
    first, details = _refusal(run.stderr)
    assert len(first) <= 160, first
    assert "60 key(s)" in first and "--protect-tag" in first  # what, and the fix
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", first)  # no key on the first line
    assert any("keep=yes" in line for line in details)  # the evidence, below it
    assert any("more (every key in --output json)" in line for line in details)
    assert max(len(line) for line in details) <= 200
    text = run.stdout + run.stderr
    assert "error:" not in text  # a refusal is not an error
    assert "changed nothing" not in text and "nothing was changed" not in text  # said once:
    assert run.stdout.splitlines()[-1].endswith(": refused, 60 key(s) in the store, no change")
    assert mutations(emulator) == []


def test_the_json_carries_the_first_line_the_details_and_every_key(
        emulator: Emulator) -> None:
    seed_one(emulator, keys=60, tags={"keep": "yes"})
    run = ksdelete(emulator, "target", "--yes", "--protect-tag", "keep", "--output", "json")
    assert run.exit_code == 4
    error = run.store()["error"]  # (validated against docs/ksdelete-output.schema.json)
    assert error["code"] == "refused"
    assert "\n" not in error["message"] and len(error["message"]) <= 160
    assert error["message"].count(run.store()["id"]) == 1  # where: once
    assert len(error["key_ids"]) == 60
    assert any("keep=yes" in line for line in error["details"])
    first, _ = _refusal(run.stderr)
    assert first == error["message"]


def test_quiet_prints_the_refusal_labelled_as_one_with_its_details(
        emulator: Emulator) -> None:
    seed_one(emulator, keys=30)
    run = ksdelete(emulator, "target", "--yes", "--quiet", "--expect-keys", "5")
    assert run.exit_code == 4
    lines = _lines(run.stderr)
    assert lines[0].startswith("refused: ") and len(lines[0]) <= 170, lines
    assert "--expect-keys 30" in lines[0]
    assert all(line.startswith("  ") for line in lines[1:]) and len(lines) > 1, lines
    assert "error" not in run.stderr
    # the summary line does not say the refusal again
    assert "--expect-keys" not in run.stdout


def test_a_refusal_that_stops_the_invocation_is_labelled_refused(emulator: Emulator) -> None:
    seed_one(emulator, keys=2)
    run = ksdelete(emulator, "status", "target", "--account-id", "444455556666",
                   "--output", "json")
    assert run.exit_code == 4
    assert run.stderr.startswith("ksdelete: refused: "), run.stderr
    assert "error" not in run.stderr.splitlines()[0]
    assert run.json()["error"]["code"] == "refused"
    assert "--account-id" in run.json()["error"]["message"]
