"""What an operator reads when something outside ksdelete is wrong (a full disk, a relative
state directory, a profile that does not exist, an old botocore, a lock held by another run,
no arguments at all): one line that says what and what to do, and the documented exit code."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from ksdelete.emulator import Emulator

from .helpers import ksdelete, mutations, said, seed_one


def test_a_full_disk_under_the_lock_file_says_so_and_changes_nothing(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_one(emulator, keys=2)

    def full(fd: int, data: bytes, offset: int) -> int:  # the lock's holder record
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 1, run.stderr
    message = said(run.store()["error"])
    assert "unexpected" not in message and "unexpected" not in run.stderr
    assert "the disk is full" in message and "lock" in message
    assert "Free space" in message  # what to do
    assert mutations(emulator) == []


def test_any_disk_full_error_says_so(tmp_path: Path, emulator: Emulator,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk where ksdelete did not expect one (here: creating the state directory)
    names the disk, not an "unexpected OSError"."""
    seed_one(emulator, keys=1)
    real_mkdir = os.mkdir

    def full(path: str | bytes | os.PathLike[str], *args: object, **kwargs: object) -> None:
        if "state" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", full)
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code in (1, 2), run.stderr
    message = said(run.json()["error"])
    assert "the disk is full" in message and "unexpected" not in message
    assert mutations(emulator) == []


def test_a_full_disk_under_the_saved_plan_says_so(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_one(emulator, keys=1)
    real = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        if self.name.startswith(".plan.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    run = ksdelete(emulator, "target", "--dry-run", "--save-plan", str(tmp_path / "plan.json"),
                   "--output", "json")
    assert run.exit_code == 2, run.stderr
    message = said(run.json()["error"])
    assert message.startswith("cannot write the plan file: the disk is full"), message
    assert "Free space on the file system" in message


def test_an_unforeseen_disk_full_error_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    from ksdelete.cli import Invocation

    inv = Invocation("delete", output="text", quiet=False, debug=False)
    with pytest.raises(SystemExit) as stop:
        inv.fail(OSError(errno.ENOSPC, "No space left on device", "/var/lib/x/file"))
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "the disk is full (No space left on device) (/var/lib/x/file)" in err
    assert "unexpected" not in err and "Free space" in err


@pytest.mark.parametrize("variable, value", [("XDG_STATE_HOME", "state"),
                                             ("XDG_STATE_HOME", "./x/../state"),
                                             ("HOME", "home")])
def test_a_relative_state_directory_is_a_usage_error(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str,
        value: str) -> None:
    """A relative XDG_STATE_HOME would put the journal (the memory of what was confirmed and
    scheduled) wherever the command happens to run: refused, before any AWS call."""
    seed_one(emulator, keys=1)
    if variable == "HOME":
        monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv(variable, value)
    monkeypatch.chdir(tmp_path)
    before = len(emulator.calls())
    for args in (["status", "target"], ["target", "--yes", "--output", "json"]):
        run = ksdelete(emulator, *args)
        assert run.exit_code == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1, run.stderr
        assert lines[0].startswith("ksdelete: error: ") and variable in lines[0]
        assert "absolute" in lines[0] and "Traceback" not in run.stderr
    assert len(emulator.calls()) == before  # no AWS call
    assert list(tmp_path.iterdir()) == []  # nothing created where the command ran


def test_a_profile_that_does_not_exist_is_named(emulator: Emulator,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seed_one(emulator, keys=1)
    monkeypatch.setenv("AWS_PROFILE", "nope")
    run = ksdelete(emulator, "status", "target", "--output", "json")
    assert run.exit_code == 2, run.stderr
    message = said(run.json()["error"])
    assert "profile 'nope' not found" in message and "None" not in message
    assert "AWS_PROFILE" in message

    monkeypatch.delenv("AWS_PROFILE")
    run = ksdelete(emulator, "status", "target", "--profile", "also-nope")
    assert run.exit_code == 2, run.stderr
    assert "profile 'also-nope' not found (--profile)" in run.stderr


def test_a_kms_without_get_key_last_usage_names_the_boto3_needed_and_the_way_out(
        emulator: Emulator) -> None:
    """An endpoint that predates GetKeyLastUsage (UnknownOperationException): the run is
    refused, nothing changed, and the message says what --unused-for needs and how to go on."""
    seed_one(emulator, keys=2)
    emulator.configure(unknown_operations="GetKeyLastUsage")
    run = ksdelete(emulator, "target", "--yes", "--output", "json")
    assert run.exit_code == 4, run.stderr
    message = said(run.store()["error"])
    assert "UnknownOperationException" in message
    assert "boto3 >= 1.42.97" in message and "--unused-for 0" in message
    assert "Grant kms:GetKeyLastUsage" not in message  # not a permission problem
    assert mutations(emulator) == []
    for key in run.store()["keys"]:
        assert "GetKeyLastUsage" in key["last_usage"]["error"]

    assert ksdelete(emulator, "target", "--yes", "--unused-for", "0").exit_code == 3


def test_a_botocore_without_get_key_last_usage_names_the_boto3_needed(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore before 1.42.97 has no get_key_last_usage method at all: its KMS model lacks
    the operation."""
    import botocore.loaders

    real = botocore.loaders.Loader.load_service_model

    def old_model(self: botocore.loaders.Loader, service_name: str, type_name: str,
                  api_version: str | None = None) -> Any:
        model = real(self, service_name, type_name, api_version)
        if service_name == "kms" and type_name == "service-2":
            model = dict(model, operations={k: v for k, v in model["operations"].items()
                                            if k != "GetKeyLastUsage"})
        return model

    monkeypatch.setattr(botocore.loaders.Loader, "load_service_model", old_model)
    seed_one(emulator, keys=1)
    run = ksdelete(emulator, "target", "--dry-run", "--output", "json")
    assert run.exit_code == 4, run.stderr
    message = said(run.store()["error"])
    assert "boto3 >= 1.42.97" in message and "--unused-for 0" in message


def test_a_store_locked_by_another_run_past_max_wait_is_pending(emulator: Emulator) -> None:
    """A timer run that overlaps a person's --wait run: "not yet" (exit 3), as documented."""
    from ksdelete.lock import StoreLock

    store = seed_one(emulator, keys=2)["stores"][0]
    locks = Path(os.environ["XDG_STATE_HOME"]) / "ksdelete" / "locks"
    with StoreLock(locks, "123456789012", "us-east-1", store["id"]) as held:
        held.acquire(0)
        run = ksdelete(emulator, "target", "--yes", "--max-wait", "0s", "--output", "json")
    assert run.exit_code == 3, run.stderr
    result = run.store()
    assert result["status"] == "pending"
    assert result["error"]["code"] == "locked"
    assert "another ksdelete run is still working on" in said(result["error"])
    assert "--max-wait" in said(result["error"])
    assert mutations(emulator) == []


def test_bare_ksdelete_prints_the_usage_with_no_traceback() -> None:
    """The first thing a newcomer types: click's convention (no_args_is_help), the help on
    stderr and exit 2, not labelled as an error."""
    import subprocess

    from .helpers import KSDELETE

    run = subprocess.run([KSDELETE], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "error" not in run.stderr
    assert run.stderr.startswith("Usage: ksdelete [OPTIONS] COMMAND [ARGS]...")
    assert "Commands:" in run.stderr and "\\x0a" not in run.stderr
    assert run.stdout == ""


def test_help_is_on_stdout_with_exit_0() -> None:
    import subprocess

    from .helpers import KSDELETE

    run = subprocess.run([KSDELETE, "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("Usage: ksdelete")
