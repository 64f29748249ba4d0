"""Run a golden case: the real CLI (in-process, real boto3, real HTTP to the emulator, as
tests/cli/helpers.py does), every command's exit code, stdout and stderr normalised
(normalise.py) into one transcript, compared with tests/golden/data/CASE.txt.

KSDELETE_UPDATE_GOLDEN=1 writes the transcripts instead of comparing them."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.emulator import Emulator

from .normalise import Normaliser

DATA = Path(__file__).resolve().parent / "data"
UPDATE = os.environ.get("KSDELETE_UPDATE_GOLDEN") == "1"
# Commands that take the AWS options (--endpoint-url, --region); show-plan makes no AWS call.
LOCAL = {"show-plan"}


class Case:
    """One golden transcript: seed, then `run` commands; `check` compares (or writes) it."""

    def __init__(self, name: str, emulator: Emulator, tmp: Path) -> None:
        self.name = name
        self.emulator = emulator
        self.tmp = tmp
        self.seeded: list[dict[str, Any]] = []
        self.norm: Normaliser | None = None
        self.parts: list[str] = []

    def seed(self, spec: dict[str, Any]) -> dict[str, Any]:
        assert self.norm is None, "seed before the first command"
        answer = self.emulator.seed(spec)
        self.seeded.extend(answer["stores"])
        return answer

    def _normaliser(self) -> Normaliser:
        if self.norm is None:
            self.norm = Normaliser(self.seeded, self.emulator.state()["keys"],
                                   self.emulator.now(), self.emulator.endpoint_url, self.tmp)
        return self.norm

    def note(self, text: str) -> None:
        """A line of the transcript saying what happened between two commands."""
        self._normaliser()
        self.parts.append(f"# {text}\n")

    def run(self, *args: str, expect: int, saves: Path | None = None) -> str:
        """Run `ksdelete ARGS`; returns its raw stdout. The exit code is pinned by the
        transcript; `expect` fails early, with the output, when it is not the one expected.
        `saves`: the plan file the command writes (its plan ID is learnt first)."""
        norm = self._normaliser()
        aws = [] if args[0] in LOCAL else [
            "--endpoint-url", self.emulator.endpoint_url, "--region", "us-east-1"]
        result = CliRunner().invoke(cli, [*args, *aws], catch_exceptions=False)
        assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
        if saves is not None and saves.exists():
            norm.learn(json.loads(saves.read_text(encoding="utf-8"))["digest"][:12], "PLAN")
        journal = Path(os.environ["XDG_STATE_HOME"]) / "ksdelete" / "journal.jsonl"
        as_json = "--output" in args and args[args.index("--output") + 1] == "json"
        stdout = norm.json(result.stdout) if as_json else ""  # learns run_id, plan_id first
        norm.learn_journal(journal)
        if not as_json:
            stdout = norm.text(result.stdout)
        shown = " ".join(args).replace(str(self.tmp), "<TMP>")
        self.parts.append(f"$ ksdelete {shown}\n[exit {result.exit_code}]\n"
                          f"--- stdout\n{stdout}--- stderr\n{norm.text(result.stderr)}")
        return str(result.stdout)

    def file(self, path: Path) -> None:
        """A file ksdelete wrote, normalised, in the transcript."""
        norm = self._normaliser()
        raw = path.read_text(encoding="utf-8")
        shown = str(path).replace(str(self.tmp), "<TMP>")
        self.parts.append(f"=== file {shown}\n{norm.text(raw)}"
                          + ("" if raw.endswith("\n") else "\n[no newline at end of file]\n"))

    def check(self) -> None:
        got = "\n".join(self.parts)
        path = DATA / f"{self.name}.txt"
        if UPDATE:
            DATA.mkdir(exist_ok=True)
            path.write_text(got, encoding="utf-8")
            return
        assert path.exists(), f"no golden file {path}: run with KSDELETE_UPDATE_GOLDEN=1"
        want = path.read_text(encoding="utf-8")
        if got != want:
            diff = "".join(difflib.unified_diff(
                want.splitlines(keepends=True), got.splitlines(keepends=True),
                fromfile=f"golden/{path.name}", tofile="this run"))
            raise AssertionError(
                f"output differs from {path} (KSDELETE_UPDATE_GOLDEN=1 rewrites it):\n{diff}")
