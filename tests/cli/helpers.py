"""Run the real CLI (in-process, real boto3 over real HTTP) against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.emulator import Emulator
from ksdelete.gateway import UNPACED_ENV

DAY = 86400.0
MUTATING = {"ScheduleKeyDeletion", "CancelKeyDeletion", "EnableKey", "DisableKey",
            "ConnectCustomKeyStore", "DisconnectCustomKeyStore", "DeleteCustomKeyStore",
            "UpdateCustomKeyStore", "CreateKey", "CreateCustomKeyStore", "TagResource",
            "UntagResource"}


SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "ksdelete-output.schema.json"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    assert not duplicated, f"JSON object with duplicate members {duplicated}"
    return dict(pairs)


def validated(stdout: str) -> dict[str, Any]:
    """stdout is exactly one JSON object, without duplicate members, that the published schema
    (docs/ksdelete-output.schema.json) accepts. Every --output json run of the tests goes
    through here."""
    import jsonschema

    doc = json.loads(stdout, object_pairs_hook=_no_duplicates)
    assert isinstance(doc, dict), stdout
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc


def _wants_json(args: tuple[str, ...]) -> bool:
    return "--output=json" in args or any(
        a == "--output" and b == "json" for a, b in zip(args, args[1:], strict=False))


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return validated(self.stdout)

    def store(self, index: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self.json()["stores"][index]
        return result


def unpaced(emulator: Emulator) -> dict[str, str]:
    """The environment of a run against the emulator: unpaced (KSDELETE_TEST_UNPACED, see
    docs/development.md) while the emulator enforces no quotas, so that no run waits for a
    quota that is not there; paced like AWS when a test turned the quotas on."""
    return {UNPACED_ENV: "1" if emulator.knobs()["quotas"] == "off" else "0"}


def ksdelete(emulator: Emulator, *args: str, input: str | None = None) -> Run:
    result = CliRunner().invoke(
        cli, [*args, "--endpoint-url", emulator.endpoint_url, "--region", "us-east-1"],
        input=input, catch_exceptions=False, env=unpaced(emulator),
    )
    if _wants_json(args) and (result.exit_code != 2 or result.stdout.strip()):
        # (click's own usage errors, exit 2, print no JSON under CliRunner: the JSON for
        # them comes from main(), which CliRunner does not call)
        validated(result.stdout)
    return Run(result.exit_code, result.stdout, result.stderr)


def seed_one(emulator: Emulator, *, type: str = "AWS_CLOUDHSM", state: str = "CONNECTED",
             keys: int = 3, plain: int = 5, other: int = 2, **extra: Any) -> dict[str, Any]:
    """A target store 'target', another store 'other' and some plain keys."""
    spec = {
        "region": "us-east-1",
        "stores": [
            {"name": "target", "type": type, "connection_state": state, "keys": keys,
             "aliases": True, **extra},
            {"name": "other", "type": "AWS_CLOUDHSM", "connection_state": "CONNECTED",
             "keys": other},
        ],
        "plain_keys": plain,
    }
    return emulator.seed(spec)


def mutations(emulator: Emulator) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c["operation"] in MUTATING and c["status"] == 200]


def operations(run: Run, index: int = 0, *, marks: bool = False) -> list[str]:
    """The operations of a store's actions; ksdelete's tagging (its marks) left out unless
    `marks`."""
    return [a["operation"] for a in run.store(index)["actions"]
            if marks or a["operation"] not in ("TagResource", "UntagResource")]


def keys_by_id(emulator: Emulator) -> dict[str, dict[str, Any]]:
    return {k["KeyId"]: k for k in emulator.state()["keys"]}


KSDELETE = str(Path(sys.executable).parent / "ksdelete")


def env_for(emulator: Emulator) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AWS_ENDPOINT_URL=emulator.endpoint_url, AWS_REGION="us-east-1", **unpaced(emulator))
    return env


def at_the_prompt(emulator: Emulator, *args: str, keys: bytes | None = None,
                  sig: int | None = None) -> Run:
    """The installed `ksdelete ARGS --output json` with a terminal on stdin: wait for the plan,
    then type `keys` and/or send signal `sig` at the confirmation prompt."""
    import pty
    import threading

    master, slave = pty.openpty()
    proc = subprocess.Popen([KSDELETE, *args, "--output", "json"], env=env_for(emulator),
                            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    os.close(slave)
    assert proc.stderr is not None and proc.stdout is not None
    # One reader owns stderr from start to end: lines read ahead of "plan: done" (the prompt,
    # often in the same chunk) stay in its buffer, which communicate() would bypass.
    seen: list[str] = []
    planned = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if "plan: done" in line:
                planned.set()
        planned.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    planned.wait(60)
    time.sleep(0.5)  # at the prompt
    if keys is not None:
        os.write(master, keys)
    if sig is not None:
        proc.send_signal(sig)
    out = proc.stdout.read()
    proc.wait(timeout=60)
    reader.join(timeout=60)
    os.close(master)
    validated(out)
    return Run(proc.returncode, out, "".join(seen))


def said(error: dict[str, Any]) -> str:
    """All that an error or a refusal of the JSON says: its first line, then its details."""
    return "\n".join([error["message"], *error.get("details", [])])
