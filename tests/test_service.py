"""The service layer (ksdelete/service.py): one resolve-all rule and one loop over stores that
stops on interrupt, used by every command and the demo; no click, no rich (issue 20)."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cli.helpers import mutations, seed_one

from ksdelete import service
from ksdelete.app import App, Settings
from ksdelete.emulator import Emulator
from ksdelete.executor import RunOptions
from ksdelete.models import Status, StoreResult
from ksdelete.reporting import Phase, PhaseState, QuietReporter


class InterruptingReporter(QuietReporter):
    """Ctrl-C while the first store is being read (the operator gave up waiting)."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.interrupted = False

    def phase(self, target: str, phase: Phase, state: PhaseState, detail: str = "") -> None:
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        super().phase(target, phase, state, detail)


def _app(emulator: Emulator, tmp_path: Path, reporter: QuietReporter, *,
         dry_run: bool = True) -> App:
    settings = Settings(region="us-east-1", endpoint_url=emulator.endpoint_url,
                        journal=tmp_path / "journal.jsonl")
    return service.open_app(settings, RunOptions(dry_run=dry_run), reporter,
                            lambda snap, plan: False, read_only=dry_run)


@pytest.mark.parametrize("command", [service.status, service.report])
def test_a_read_only_command_stops_after_an_interrupted_store(
        emulator: Emulator, tmp_path: Path, command: Any) -> None:
    """Ctrl-C during the first STORE of `status A B` ends the invocation (exit 130): the
    second store is not read (before, status and report went on with it)."""
    seed_one(emulator)
    app = _app(emulator, tmp_path, InterruptingReporter())
    results: list[StoreResult] = []
    command(app, ["target", "other"], results)
    assert [r.status for r in results] == [Status.INTERRUPTED]


def test_a_dry_run_stops_after_an_interrupted_store(emulator: Emulator,
                                                     tmp_path: Path) -> None:
    seed_one(emulator)
    app = _app(emulator, tmp_path, InterruptingReporter())
    results: list[StoreResult] = []
    service.delete(app, ["target", "other"], results, missing_ok=False)
    assert [r.status for r in results] == [Status.INTERRUPTED]
    assert mutations(emulator) == []


def test_a_changing_run_with_an_unresolved_store_changes_nothing(emulator: Emulator,
                                                                 tmp_path: Path) -> None:
    """The one resolve-all rule: every STORE resolved first; one that cannot be stops the
    changing run before it starts, the others `skipped`."""
    seed_one(emulator)
    app = _app(emulator, tmp_path, QuietReporter(io.StringIO()), dry_run=False)
    results: list[StoreResult] = []
    service.delete(app, ["target", "no-such-store"], results, missing_ok=False)
    assert [r.status for r in results] == [Status.SKIPPED, Status.MISSING]
    assert mutations(emulator) == []


@dataclass
class FakeExecutor:
    stopped: bool = False
    seen: list[str] = field(default_factory=list)


@pytest.mark.parametrize("stop", [Status.INTERRUPTED, Status.TERMINATED])
def test_the_loop_stops_after_an_interrupted_or_terminated_store(stop: Status) -> None:
    executor = FakeExecutor()
    results: list[StoreResult] = []

    def one(ref: str) -> StoreResult:
        executor.seen.append(ref)
        return StoreResult(ref=ref, status=stop if ref == "b" else Status.PENDING)

    service.each(executor, ["a", "b", "c"], one, results)
    assert executor.seen == ["a", "b"] and [r.ref for r in results] == ["a", "b"]


def test_the_loop_stops_when_the_executor_stopped() -> None:
    """A journal failure stops the invocation (Executor.stopped): no store after it runs."""
    executor = FakeExecutor()
    results: list[StoreResult] = []

    def one(ref: str) -> StoreResult:
        executor.seen.append(ref)
        executor.stopped = ref == "a"
        return StoreResult(ref=ref, status=Status.ERROR)

    service.each(executor, ["a", "b"], one, results)
    assert executor.seen == ["a"]


def test_the_service_imports_neither_click_nor_rich() -> None:
    code = ("import sys, ksdelete.service, ksdelete.demo\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich'))\n"
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_click_stays_in_the_cli_package() -> None:
    """The CLI layer is ksdelete/cli/ (the help's renderers too: cli/meta.py, cli/manpage.py)."""
    import ast

    package = Path(__file__).resolve().parents[1] / "ksdelete"
    importers = []
    for path in package.rglob("*.py"):
        if package / "cli" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name.split(".")[0] == "click" for name in names):
                importers.append(str(path.relative_to(package)))
    assert importers == []
