"""The exit code table (ksdelete/exitcodes.py) against what the commands really return."""

from __future__ import annotations

import pytest

from ksdelete import exitcodes
from ksdelete.emulator import Emulator

from .helpers import ksdelete, seed_one


@pytest.mark.parametrize("command", ["delete", "status", "cancel", "report", "probe"])
def test_every_command_that_takes_account_id_documents_its_refusal(
        emulator: Emulator, command: str) -> None:
    """`report --account-id OTHER` exits 4, and its table had no 4 at all (`apply` takes the
    account from its plan: tests/cli/test_plans.py)."""
    store = seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=1, plain=1, other=1)
    store_id = store["stores"][0]["id"]
    args: tuple[str, ...]
    if command == "delete":
        args = (store_id, "--yes")
    elif command == "probe":
        args = ("probe", "--yes")
    else:
        args = (command, store_id) + (("--yes",) if command == "cancel" else ())
    run = ksdelete(emulator, *args, "--account-id", "111122223333")
    assert run.exit_code == 4, run.stderr
    assert exitcodes.REFUSED in exitcodes.COMMANDS[command], command
    assert emulator.calls() == [] or all(c.get("service") == "sts" for c in emulator.calls())
