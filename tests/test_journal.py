"""The journal: append-only lines, operator decisions scoped to account and Region, the file's
hardening, and reading back after a crash; the per-store lock."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from ksdelete.errors import JournalError, LockTimeoutError, UsageError
from ksdelete.journal import Journal, read_entries
from ksdelete.lock import StoreLock

STORE = "cks-1234567890abcdef0"
ACCOUNT = "111122223333"


def journal_at(path: Path, account: str = ACCOUNT, region: str = "us-east-1") -> Journal:
    return Journal(path, region=region, account=account, caller_arn="arn:aws:iam::x:user/me")


def test_decisions_accumulate_until_a_cancel(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.jsonl"
    journal = journal_at(path)
    assert journal.confirmed_keys(STORE) is None
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k1"])
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k2"])
    journal.decision("ConfirmPlan", store_id="cks-other", store_name="o", key_ids=["k9"])
    assert journal.confirmed_keys(STORE) == frozenset({"k1", "k2"})
    journal.decision("CancelPlan", store_id=STORE, store_name="p", key_ids=["k1", "k2"])
    assert journal.confirmed_keys(STORE) is None
    journal.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_lookup_is_scoped_to_the_account_and_region(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    here = journal_at(path)
    here.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k1"],
                  matched_by="name")
    with here.record(store_id=STORE, store_name="p", operation="ScheduleKeyDeletion",
                     key_id="k1", key_arn="arn:k1"):
        pass
    with here.record(store_id=STORE, store_name="p", operation="DeleteCustomKeyStore"):
        pass
    here.close()
    assert here.deleted_at(STORE) is not None
    assert here.pinned("p") is not None and here.scheduled_keys(STORE)
    for other in (journal_at(path, region="eu-west-1"), journal_at(path, account="999988887777"),
                  journal_at(path, account=None)):  # type: ignore[arg-type]
        assert other.deleted_at(STORE) is None
        assert other.confirmed_keys(STORE) is None
        assert other.pinned("p") is None
        assert other.scheduled_keys(STORE) == {}


def test_a_name_is_pinned_by_confirmations_by_name_and_by_deletions(tmp_path: Path) -> None:
    journal = journal_at(tmp_path / "journal.jsonl")
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=[],
                     matched_by="id")
    assert journal.pinned("p") is None  # confirmed by ID: the name was not what was typed
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=[],
                     matched_by="name")
    pin = journal.pinned("p")
    assert pin is not None and pin.store_id == STORE and pin.name == "p"
    with journal.record(store_id="cks-newer", store_name="p", operation="DeleteCustomKeyStore"):
        pass
    assert journal.pinned("p").store_id == "cks-newer"  # type: ignore[union-attr]
    assert journal.deleted_at("p") is None  # by ID only


def test_scheduled_keys_carry_their_arn(tmp_path: Path) -> None:
    journal = journal_at(tmp_path / "journal.jsonl")
    with journal.record(store_id=STORE, operation="ScheduleKeyDeletion", key_id="k1",
                        key_arn="arn:aws:kms:us-east-1:111122223333:key/k1"):
        pass
    with pytest.raises(RuntimeError), journal.record(store_id=STORE, key_id="k2",
                                                     operation="ScheduleKeyDeletion"):
        raise RuntimeError("failed")
    keys = journal.scheduled_keys(STORE)
    assert list(keys) == ["k1"]
    assert keys["k1"].arn == "arn:aws:kms:us-east-1:111122223333:key/k1"


def test_a_read_only_journal_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, region="us-east-1", read_only=True)
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k1"])
    with journal.record(store_id=STORE, operation="ScheduleKeyDeletion", key_id="k1"):
        pass
    assert not path.exists()


def test_reading_survives_a_torn_last_line_and_refuses_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = journal_at(path)
    with journal.record(store_id=STORE, store_name="p", operation="DeleteCustomKeyStore"):
        pass
    journal.close()
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"torn": ')  # a crash mid-write
    assert [e["phase"] for e in read_entries(path)] == ["intent", "result"]
    assert journal_at(path).deleted_at(STORE) is not None
    assert journal_at(path).deleted_at("other") is None
    with pytest.raises(UsageError):
        read_entries(tmp_path)  # a directory cannot be read as a journal


# ---- the file itself ---------------------------------------------------------------------------

def test_a_symlink_is_refused_and_its_target_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("")
    target.chmod(0o644)
    link = tmp_path / "journal.jsonl"
    link.symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        journal_at(link).open()
    with pytest.raises(UsageError):
        read_entries(link)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_only_a_regular_file_of_ours(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="regular file"):
        Journal(fifo, region="r", account=ACCOUNT).open()  # O_WRONLY on a FIFO: opened first
    theirs = tmp_path / "theirs.jsonl"
    theirs.write_text("")
    os.chown(theirs, 12345, 12345)
    with pytest.raises(UsageError, match="another user"):
        journal_at(theirs).open()
    with pytest.raises(UsageError):
        read_entries(theirs)
    linked = tmp_path / "linked.jsonl"
    linked.write_text("")
    os.link(linked, tmp_path / "second-name")
    with pytest.raises(UsageError, match="hard links"):
        journal_at(linked).open()


def test_missing_directories_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "a" / "b" / "journal.jsonl"
        journal_at(path).open()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write

    def dribble(fd: int, data: bytes) -> int:
        return real(fd, bytes(data)[:7])  # at most 7 bytes per call

    path = tmp_path / "journal.jsonl"
    journal = journal_at(path)
    journal.open()
    monkeypatch.setattr(os, "write", dribble)
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k1", "k2"])
    monkeypatch.setattr(os, "write", real)
    assert read_entries(path)[0]["key_ids"] == ["k1", "k2"]


def test_a_failed_write_is_a_journal_error_and_leaves_no_half_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "journal.jsonl"
    journal = journal_at(path)
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k1"])
    real = os.write
    calls: list[int] = []

    def full(fd: int, data: bytes) -> int:
        calls.append(fd)
        if len(calls) == 1:
            return real(fd, bytes(data)[:10])  # part of the line reaches the disk...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(JournalError, match="No space left"):
        journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k2"])
    monkeypatch.setattr(os, "write", real)
    journal.close()
    assert path.read_bytes().endswith(b"\n")
    assert [e["key_ids"] for e in read_entries(path)] == [["k1"]]


def test_a_torn_last_line_is_closed_before_the_next_entry(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"torn": ')
    path.chmod(0o600)
    journal = journal_at(path)
    journal.decision("ConfirmPlan", store_id=STORE, store_name="p", key_ids=["k1"])
    journal.close()
    assert [e.get("key_ids") for e in read_entries(path)] == [["k1"]]


# ---- the lock --------------------------------------------------------------------------------

def _hold(directory: str, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    lock = StoreLock(Path(directory), ACCOUNT, "us-east-1", STORE)
    lock.acquire(0)
    ready.set()
    time.sleep(seconds)
    lock.release()


def _hold_forever(directory: str, ready: multiprocessing.synchronize.Event) -> None:
    StoreLock(Path(directory), ACCOUNT, "us-east-1", STORE).acquire(0)
    ready.set()
    time.sleep(600)


def test_a_second_run_waits_for_the_lock_then_gets_it(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), 1.5, ready))
    holder.start()
    assert ready.wait(30)
    told: list[str] = []
    lock = StoreLock(tmp_path, ACCOUNT, "us-east-1", STORE)
    start = time.monotonic()
    lock.acquire(60, on_wait=told.append)
    assert time.monotonic() - start > 0.5
    assert len(told) == 1 and "pid" in told[0] and STORE in told[0]
    lock.release()
    holder.join(30)
    assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600


def test_the_lock_times_out_and_a_crashed_holder_releases_it(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_forever, args=(str(tmp_path), ready))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(LockTimeoutError) as caught:
        StoreLock(tmp_path, ACCOUNT, "us-east-1", STORE).acquire(0.3)
    assert caught.value.exit_status == 3
    holder.kill()
    holder.join(30)
    with StoreLock(tmp_path, ACCOUNT, "us-east-1", STORE) as lock:
        lock.acquire(5)
    # Locks are per store (and per account and Region).
    other = StoreLock(tmp_path, ACCOUNT, "eu-west-1", STORE)
    assert other.path != lock.path


def test_a_view_of_the_journal_writes_and_reads_as_its_own_scope(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, region="us-east-1", account=ACCOUNT, caller_arn="arn:a")
    other = journal.view("222222222222", "eu-west-1", caller_arn="arn:b")
    assert journal.entries() == [] and other.entries() == []  # both read (once, shared)
    journal.decision("ConfirmPlan", store_id=STORE, store_name="a", key_ids=["k1"])
    other.decision("ConfirmPlan", store_id=STORE, store_name="b", key_ids=["k2"])
    assert journal.confirmed_keys(STORE) == frozenset({"k1"})
    assert other.confirmed_keys(STORE) == frozenset({"k2"})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["account"], e["region"], e["caller_arn"], e["run_id"]) for e in lines] == [
        (ACCOUNT, "us-east-1", "arn:a", journal.run_id),
        ("222222222222", "eu-west-1", "arn:b", journal.run_id)]
    other.close()  # one descriptor: closing a view closes the journal
    journal.decision("CancelPlan", store_id=STORE, store_name="a", key_ids=[])
    assert len(path.read_text().splitlines()) == 3
