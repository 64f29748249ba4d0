"""Shared fixtures: no test can reach a real AWS account; one emulator per session (per worker)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config

from ksdelete.emulator import Emulator, EmulatorConfig
from ksdelete.gateway import UNPACED_ENV

TEST_CONFIG = EmulatorConfig()


@pytest.fixture(autouse=True)
def _isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Blank every AWS_* variable and point config/credentials at files that do not exist."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(autouse=True, scope="session")
def _botocore_models_read_once() -> Iterator[None]:
    """Every boto3 session of this process shares one botocore loader, so that botocore reads
    and parses its JSON models (endpoints, KMS, STS, CloudTrail, ...) once per test process
    rather than once per in-process CLI run, which spent about half of a run's CPU time. Each
    run still builds its own session and clients, as the installed `ksdelete` does."""
    original = botocore.session.create_loader
    botocore.session.create_loader = functools.lru_cache(maxsize=None)(original)
    yield
    botocore.session.create_loader = original


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Emulator]:
    """One child-process emulator per test session (per xdist worker)."""
    with Emulator(EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_server: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The session emulator, reset to empty state and default knobs; no shape problems allowed.

    Its quotas are off, so runs against it are unpaced (KSDELETE_TEST_UNPACED, see
    docs/development.md); tests/cli/helpers.py pace the runs of a test that turns them on."""
    monkeypatch.setenv(UNPACED_ENV, "1")
    emulator_server.reset()
    emulator_server.configure(**TEST_CONFIG.to_dict())
    yield emulator_server
    problems = emulator_server.problems()
    assert problems == [], f"emulator recorded response shape problems: {problems}"


@pytest.fixture
def kms(emulator: Emulator) -> Any:
    """A boto3 KMS client for the emulator: us-east-1, one attempt (no retries)."""
    return boto3.client(
        "kms",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
