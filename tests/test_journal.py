"""The journal: append-only lines, operator decisions, and reading back after a crash."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ksdelete.errors import UsageError
from ksdelete.journal import Journal, read_entries

STORE = "cks-1234567890abcdef0"


def test_decisions_accumulate_until_a_cancel(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.jsonl"
    journal = Journal(path, region="us-east-1")
    assert journal.confirmed_keys(STORE) is None
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k1"])
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k2"])
    journal.decision("ConfirmPlan", store_id="cks-other", store_name="o", key_ids=["k9"])
    assert journal.confirmed_keys(STORE) == frozenset({"k1", "k2"})
    journal.decision("CancelPlan", store_id=STORE, store_name="p", key_ids=["k1", "k2"])
    assert journal.confirmed_keys(STORE) is None
    journal.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_read_only_journal_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, region="us-east-1", read_only=True)
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k1"])
    with journal.record(store_id=STORE, operation="ScheduleKeyDeletion", key_id="k1"):
        pass
    assert not path.exists()


def test_reading_survives_a_torn_last_line_and_refuses_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, region="us-east-1")
    with journal.record(store_id=STORE, store_name="p", operation="DeleteCustomKeyStore"):
        pass
    journal.close()
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"torn": ')  # a crash mid-write
    assert [e["phase"] for e in read_entries(path)] == ["intent", "result"]
    assert Journal(path, region="us-east-1").deleted_at("p") is not None
    assert Journal(path, region="us-east-1").deleted_at(STORE) is not None
    assert Journal(path, region="us-east-1").deleted_at("other") is None
    with pytest.raises(UsageError):
        read_entries(tmp_path)  # a directory cannot be read as a journal
