"""Accounts reached by profiles in the fleet tests: each profile's access key is one the
emulator's `principals` knob maps to a principal of that account."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksdelete.emulator import Emulator


def key_of(account: str) -> str:
    return f"AKIAFLEET{account}"[:20]


def use_profiles(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 accounts: dict[str, str]) -> None:
    """A profile per account (named as `accounts` says), stores disconnecting at once."""
    emulator.configure(principals={key_of(a): f"arn:aws:iam::{a}:role/operator"
                                   for a in accounts}, disconnect_seconds=0)
    creds = tmp_path / "credentials"
    creds.write_text("".join(f"[{name}]\naws_access_key_id = {key_of(a)}\n"
                             "aws_secret_access_key = x\n" for a, name in accounts.items()))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
