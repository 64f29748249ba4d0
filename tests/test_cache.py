"""The key membership cache file: round trip, hardening, and every way a file is ignored."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ksdelete.cache import FORMAT, VERSION, MembershipFile, cache_path, open_cache
from ksdelete.discover import MembershipCache

ACCOUNT, REGION = "111122223333", "eu-west-1"
KEY_A = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_B = "0987dcba-09fe-87dc-65ba-ab0987654321"
KEY_MRK = "mrk-1234abcd12ab34cd56ef1234567890ab"
STORE = "cks-1234567890abcdef0"


@pytest.fixture
def warnings() -> list[str]:
    return []


def backing(tmp_path: Path, warnings: list[str], *, account: str = ACCOUNT,
            region: str = REGION) -> MembershipFile:
    return MembershipFile(cache_path(tmp_path, account, region), account=account,
                          region=region, warn=warnings.append)


def write_doc(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    path.chmod(0o600)


def valid_doc(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {"format": FORMAT, "version": VERSION, "account": ACCOUNT,
                              "region": REGION, "stores": {"": [KEY_A], STORE: [KEY_B]}}
    doc.update(changes)
    return doc


def test_what_one_run_learns_the_next_run_knows(tmp_path: Path, warnings: list[str]) -> None:
    cache = open_cache(tmp_path, account=ACCOUNT, region=REGION, enabled=True,
                       warn=warnings.append)
    assert len(cache) == 0
    cache.put(KEY_A, "")
    cache.put(KEY_B, STORE)
    cache.put(KEY_MRK, "cks-0000000000other")
    cache.scanned({KEY_A, KEY_B, KEY_MRK})

    again = open_cache(tmp_path, account=ACCOUNT, region=REGION, enabled=True,
                       warn=warnings.append)
    assert sorted(again.items()) == sorted(
        [(KEY_A, ""), (KEY_B, STORE), (KEY_MRK, "cks-0000000000other")])
    assert warnings == []
    path = cache_path(tmp_path, ACCOUNT, REGION)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_a_complete_scan_forgets_deleted_keys_and_an_unchanged_cache_is_not_rewritten(
        tmp_path: Path) -> None:
    saves: list[list[tuple[str, str]]] = []
    cache = MembershipCache({KEY_A: "", KEY_B: STORE},
                            on_scan=lambda c: saves.append(sorted(c.items())))
    cache.scanned({KEY_A, KEY_B})
    assert saves == []  # nothing new: no write
    cache.scanned({KEY_A})  # KEY_B was deleted
    assert saves == [[(KEY_A, "")]]
    cache.put(KEY_MRK, "")
    cache.scanned(None)  # an interrupted scan: keep what it learnt, forget nothing
    assert saves[-1] == [(KEY_A, ""), (KEY_MRK, "")]


def test_a_distrusted_cache_skips_nothing_but_keeps_learning() -> None:
    cache = MembershipCache({KEY_A: ""})
    assert cache.get(KEY_A) == ""
    cache.distrust()
    assert cache.get(KEY_A) is None
    cache.put(KEY_B, STORE)
    assert sorted(cache.items()) == sorted([(KEY_A, ""), (KEY_B, STORE)])


def test_no_cache_reads_and_writes_nothing(tmp_path: Path, warnings: list[str]) -> None:
    path = cache_path(tmp_path, ACCOUNT, REGION)
    write_doc(path, valid_doc())
    cache = open_cache(tmp_path, account=ACCOUNT, region=REGION, enabled=False,
                       warn=warnings.append)
    assert len(cache) == 0 and not cache.trusted
    cache.put(KEY_MRK, "")
    cache.scanned({KEY_MRK})
    assert json.loads(path.read_text()) == valid_doc()  # untouched
    assert warnings == []


@pytest.mark.parametrize(("content", "reason"), [
    (b"{\"format\": \"ksdelete-key-membership\", \"vers", "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
    (b"[]", "not a ksdelete key membership cache"),
    (json.dumps(valid_doc(format="something-else")).encode(), "not a ksdelete"),
    (json.dumps(valid_doc(version=2)).encode(), "version 2"),
    (json.dumps(valid_doc(account="999999999999")).encode(), "belongs to account"),
    (json.dumps(valid_doc(region="us-east-1")).encode(), "belongs to account"),
    (json.dumps(valid_doc(stores=[KEY_A])).encode(), "no valid 'stores'"),
    (json.dumps(valid_doc(stores={"": [KEY_A, 7]})).encode(), "is not a KMS key ID"),
    (json.dumps(valid_doc(stores={"": ["alias/x"]})).encode(), "is not a KMS key ID"),
    (json.dumps(valid_doc(stores={"not-a-store": [KEY_A]})).encode(), "not a custom key"),
    (json.dumps(valid_doc(stores={"": [KEY_A], STORE: [KEY_A]})).encode(), "two stores"),
])
def test_a_corrupt_or_foreign_file_is_ignored_with_a_warning_and_rewritten(
        tmp_path: Path, warnings: list[str], content: bytes, reason: str) -> None:
    path = cache_path(tmp_path, ACCOUNT, REGION)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    cache = open_cache(tmp_path, account=ACCOUNT, region=REGION, enabled=True,
                       warn=warnings.append)
    assert len(cache) == 0 and cache.get(KEY_A) is None
    assert len(warnings) == 1 and reason in warnings[0] and str(path) in warnings[0]
    cache.put(KEY_MRK, "")
    cache.scanned({KEY_MRK})
    assert backing(tmp_path, []).load() == {KEY_MRK: ""}  # replaced by a valid file


def test_a_symlinked_cache_is_neither_read_nor_written_through(tmp_path: Path,
                                                                warnings: list[str]) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    write_doc(elsewhere, valid_doc())
    path = cache_path(tmp_path, ACCOUNT, REGION)
    path.parent.mkdir(parents=True)
    path.symlink_to(elsewhere)
    cache = open_cache(tmp_path, account=ACCOUNT, region=REGION, enabled=True,
                       warn=warnings.append)
    assert len(cache) == 0 and "symbolic link" in warnings[0]
    cache.put(KEY_MRK, "")
    cache.scanned({KEY_MRK})
    assert json.loads(elsewhere.read_text()) == valid_doc()  # the link's target untouched
    assert not path.is_symlink() and backing(tmp_path, []).load() == {KEY_MRK: ""}


def test_a_cache_that_is_not_a_regular_file_is_ignored(tmp_path: Path,
                                                        warnings: list[str]) -> None:
    path = cache_path(tmp_path, ACCOUNT, REGION)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert backing(tmp_path, warnings).load() == {}
    assert "not a regular file" in warnings[0]


def test_an_unwritable_cache_is_a_warning_once_not_an_error(tmp_path: Path,
                                                             warnings: list[str]) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the cache directory should be")
    cache = open_cache(blocker, account=ACCOUNT, region=REGION, enabled=True,
                       warn=warnings.append)
    for key_id in (KEY_A, KEY_B):
        cache.put(key_id, "")
        cache.scanned({KEY_A, KEY_B})
    assert len(warnings) == 2  # reading it, then writing it (once, not after every scan)
    assert "ignoring the key membership cache" in warnings[0]
    assert "cannot write the key membership cache" in warnings[1]


def test_each_account_and_region_has_its_own_file(tmp_path: Path) -> None:
    assert cache_path(tmp_path, ACCOUNT, REGION) != cache_path(tmp_path, ACCOUNT, "us-east-1")
    assert cache_path(tmp_path, ACCOUNT, REGION) != cache_path(tmp_path, "444455556666", REGION)
    assert cache_path(tmp_path, "../x", REGION).parent == tmp_path / "cache"


def test_each_endpoint_has_its_own_file_and_awss_own_endpoints_share_one(tmp_path: Path) -> None:
    aws = cache_path(tmp_path, ACCOUNT, REGION)
    assert cache_path(tmp_path, ACCOUNT, REGION,
                      endpoint=f"https://kms.{REGION}.amazonaws.com") == aws
    one = cache_path(tmp_path, ACCOUNT, REGION, endpoint="http://127.0.0.1:4566")
    assert one not in (aws, cache_path(tmp_path, ACCOUNT, REGION,
                                       endpoint="http://127.0.0.1:4567"))
    assert one == cache_path(tmp_path, ACCOUNT, REGION, endpoint="HTTP://127.0.0.1:4566/")


def test_a_file_of_another_endpoint_is_ignored(tmp_path: Path, warnings: list[str]) -> None:
    path = cache_path(tmp_path, ACCOUNT, REGION)
    write_doc(path, valid_doc(endpoint="http://127.0.0.1:4566"))  # copied, or renamed
    assert backing(tmp_path, warnings).load() == {}
    assert "belongs to the KMS endpoint http://127.0.0.1:4566, not of AWS" in warnings[0]
