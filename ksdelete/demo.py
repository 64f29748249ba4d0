"""`ksdelete demo`: the real pipeline against an embedded emulator with a fast clock."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from ksdelete.errors import ExitStatus
from ksdelete.models import Plan, PlanOptions, Snapshot, Status, StoreResult
from ksdelete.reporting import summary_lines
from ksdelete.retry import RetryPolicy

# Emulated seconds per real second: a 7-day window passes in about 1.5 s, 30 days in 6.5 s.
TIME_SCALE = 400_000.0
WINDOW_DAYS = 7

ACCOUNT = {
    "region": "us-east-1",
    "stores": [
        {"name": "payments-hsm", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
         "keys": 12, "pending_keys": 2, "disabled_keys": 3, "aliases": True},
        {"name": "partner-xks", "type": "EXTERNAL_KEY_STORE", "connection_state": "CONNECTED",
         "keys": 3, "aliases": True},
        {"name": "analytics-hsm", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
         "keys": 4},
    ],
    "plain_keys": 3000,
}


def _say(text: str, stream: TextIO | None = None) -> None:
    """One line, at once (stdout: the result; stderr: the story around it)."""
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()


@contextmanager
def _demo_environment(endpoint_url: str) -> Iterator[None]:
    """Dummy credentials and the emulator endpoint for this process only; restored after."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_STS")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo",
                      AWS_ENDPOINT_URL=endpoint_url)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(*, quiet: bool = False) -> int:
    try:
        from ksdelete.emulator import Emulator, EmulatorConfig
    except ImportError as exc:
        _say(f"ksdelete: error: the demo needs the emulator extra ({exc}). "
             "pip install 'ksdelete[emulator]'", sys.stderr)
        return int(ExitStatus.USAGE)
    from ksdelete import service
    from ksdelete.app import Settings, make_reporter
    from ksdelete.executor import RunOptions

    # Real time while the operator looks at the dry run; the fast clock from the real run on.
    config = EmulatorConfig(time_scale=1.0, deletion_lateness=6 * 3600.0, seed=2026)
    with Emulator(config, in_process=True) as emulator, \
            _demo_environment(emulator.endpoint_url):
        seeded = emulator.seed(ACCOUNT)
        refs = [s["name"] for s in seeded["stores"][:2]]  # analytics-hsm stays untouched
        settings = Settings(region="us-east-1", journal=Path(
            tempfile.mkdtemp(prefix="ksdelete-demo-")) / "journal.jsonl")
        policy = RetryPolicy(poll_initial=0.25, poll_max=1.0)
        plan_options = PlanOptions(pending_window_days=WINDOW_DAYS)

        _say(
            f"ksdelete demo: an emulated AWS account at {emulator.endpoint_url} with "
            f"{len(seeded['stores'])} custom key stores and {ACCOUNT['plain_keys']} unrelated "
            f"keys. After the dry run the emulator's clock runs {TIME_SCALE:,.0f}x fast, so "
            f"a {WINDOW_DAYS}-day waiting period passes in seconds. No AWS account is used.",
            sys.stderr)

        # 1. The dry run an operator starts with: nothing changes.
        reporter = make_reporter(quiet)
        dry = service.open_app(settings, RunOptions(plan=plan_options, dry_run=True), reporter,
                               lambda s, p: False, read_only=True, policy=policy)
        reporter.start(command="delete", dry_run=True)
        dry_results: list[StoreResult] = []
        service.delete(dry, refs, dry_results, missing_ok=False)
        reporter.finish(dry_results)

        # 2. The real run, confirmation answered by the demo, blocking with --wait.
        emulator.configure(time_scale=TIME_SCALE)
        reporter = make_reporter(quiet)

        def confirm(snap: Snapshot, plan: Plan) -> bool:
            reporter.note(f"Type the store ID ({snap.store.id}) or name to delete it: "
                          f"{snap.store.id}   <- answered by the demo",
                          target=snap.store.name)  # the demo names its stores (refs)
            return True

        # What the dry run learnt about unrelated keys stays true: the real run reuses it.
        live = service.open_app(settings, RunOptions(plan=plan_options, wait=True,
                                                     max_wait=300.0),
                                reporter, confirm, read_only=False, policy=policy,
                                membership=dry.executor.membership)
        reporter.start(command="delete", dry_run=False)
        results: list[StoreResult] = []
        try:
            service.delete(live, refs, results, missing_ok=False)
        finally:
            live.journal.close()
        reporter.finish(results)
        for line in summary_lines(results, live.identity):
            _say(line)
        _say(f"journal of every change: {settings.journal}", sys.stderr)
        ok = all(r.status is Status.DELETED for r in results)
        return int(ExitStatus.OK if ok else ExitStatus.ERROR)
