"""The workspace of a scope: one workspace (gateway, pacer, cache, locks) per account, Region
and endpoint, and its key reader, whose surveys share one listing (and nothing else)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ksdelete import workspace as ws
from ksdelete.app import Settings, build
from ksdelete.emulator import Emulator
from ksdelete.executor import RunOptions
from ksdelete.reporting import QuietReporter
from ksdelete.scope import Scope, ScopeRequest


class FakeGateway:
    """ListKeys in two pages; DescribeKey answers from `owners` (key -> store)."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners
        self.listings = 0
        self.described: list[str] = []
        self.pacing = object()

    def list_keys(self) -> Iterator[list[tuple[str, str]]]:
        self.listings += 1
        ids = sorted(self.owners)
        half = len(ids) // 2
        for page in (ids[:half], ids[half:]):
            yield [(k, f"arn:{k}") for k in page]

    def describe_key(self, key_id: str) -> dict[str, Any]:
        self.described.append(key_id)
        return {"KeyId": key_id.removeprefix("arn:"), "CustomKeyStoreId": self.owners.get(
            key_id.removeprefix("arn:")) or None, "KeyState": "Enabled"}

    def list_aliases(self) -> dict[str, list[str]]:
        return {}


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def reader(owners: dict[str, str]) -> tuple[ws.ScopeKeys, FakeGateway, Clock]:
    gateway, clock = FakeGateway(owners), Clock()
    return ws.ScopeKeys(gateway, clock=clock), gateway, clock  # type: ignore[arg-type]


OWNERS = {"k1": "cks-a", "k2": "cks-a", "k3": "cks-b", "k4": ""}


def scan(keys: ws.ScopeKeys, store: str) -> set[str]:
    view = keys.for_store(store)
    return {k for page in view.list_keys() for k, _ in page
            if view.describe_key(f"arn:{k}").get("CustomKeyStoreId") == store}


def test_outside_a_survey_round_every_scan_is_its_own() -> None:
    keys, gateway, _ = reader(OWNERS)
    assert scan(keys, "cks-a") == {"k1", "k2"}
    assert scan(keys, "cks-b") == {"k3"}
    assert gateway.listings == 2 and len(gateway.described) == 8


def test_in_a_round_the_listing_is_shared_and_only_members_are_described_again() -> None:
    keys, gateway, _ = reader(OWNERS)
    with keys.survey_round():
        assert scan(keys, "cks-a") == {"k1", "k2"}
        assert scan(keys, "cks-b") == {"k3"}
    assert gateway.listings == 1
    # The second scan describes only its own key again (k3); k1, k2, k4 are known elsewhere.
    assert gateway.described == ["arn:k1", "arn:k2", "arn:k3", "arn:k4", "arn:k3"]
    scan(keys, "cks-a")  # the round is over: a scan of its own
    assert gateway.listings == 2


def test_a_listing_cut_short_is_not_shared() -> None:
    keys, gateway, _ = reader(OWNERS)
    with keys.survey_round():
        for _page in keys.list_keys():
            break  # the scan failed after its first page
        scan(keys, "cks-a")
        scan(keys, "cks-b")
    assert gateway.listings == 2  # the cut one, then one complete (shared)


def test_an_old_listing_is_read_again() -> None:
    keys, gateway, clock = reader(OWNERS)
    with keys.survey_round():
        scan(keys, "cks-a")
        clock.now += ws.SHARED_FOR + 1
        scan(keys, "cks-b")
    assert gateway.listings == 2


# ---- the composition root ------------------------------------------------------------------


def test_one_workspace_and_one_pacer_per_scope(emulator: Emulator, tmp_path: Path) -> None:
    emulator.seed({"region": "us-east-1", "plain_keys": 1})
    settings = Settings(region="us-east-1", endpoint_url=emulator.endpoint_url,
                        journal=tmp_path / "journal.jsonl")
    app = build(settings, RunOptions(dry_run=True), QuietReporter(io.StringIO()),
                lambda s, p: False, read_only=True)
    assert app.workspace.scope == Scope("123456789012", "us-east-1", emulator.endpoint_url)
    pacer = app.workspace.pacer
    assert app.executor.gw.pacing is pacer and app.workspace.keys.pacing is pacer
    # Another store of the same scope: its gateway is made before its account is known, and
    # dropped for the scope's, with the scope's one pacer.
    request = ScopeRequest("us-east-1", endpoint_url=emulator.endpoint_url)
    second = app.workspaces.gateway(request)
    assert second.pacing is not pacer
    same = app.workspaces.workspace(second, second.identity(), app.journal)
    assert same is app.workspace and same.gateway is app.gateway and same.pacer is pacer
    assert list(app.workspaces.by_scope) == [app.workspace.scope]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_the_locks_and_the_cache_are_named_by_the_scope(emulator: Emulator, tmp_path: Path,
                                                        region: str) -> None:
    settings = Settings(region=region, endpoint_url=emulator.endpoint_url,
                        journal=tmp_path / "journal.jsonl")
    app = build(settings, RunOptions(dry_run=True), QuietReporter(io.StringIO()),
                lambda s, p: False, read_only=True)
    lock = app.workspace.lock("cks-1234567890abcdef0")
    assert lock is not None
    assert lock.path == tmp_path / "locks" / f"123456789012-{region}-cks-1234567890abcdef0.lock"
    assert app.workspace.watch_file is not None
    assert app.workspace.watch_file.path.name == f"watch-123456789012-{region}.json"


def test_another_account_gets_a_workspace_and_a_pacer_of_its_own(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, b_key = "222222222222", "AKIAACCOUNTBOPERATOR"
    emulator.configure(principals={b_key: f"arn:aws:iam::{b}:role/operator"})
    settings = Settings(region="us-east-1", endpoint_url=emulator.endpoint_url,
                        journal=tmp_path / "journal.jsonl")
    app = build(settings, RunOptions(dry_run=True), QuietReporter(io.StringIO()),
                lambda s, p: False, read_only=True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", b_key)
    gateway = app.workspaces.gateway(ScopeRequest("us-east-1",
                                                  endpoint_url=emulator.endpoint_url))
    other = app.workspaces.workspace(gateway, gateway.identity(), app.journal)
    assert other.scope == Scope(b, "us-east-1", emulator.endpoint_url)
    assert other is not app.workspace and other.pacer is not app.workspace.pacer
    assert other.membership is not app.workspace.membership
    lock, mine = other.lock("cks-1234567890abcdef0"), app.workspace.lock("cks-1234567890abcdef0")
    assert lock is not None and mine is not None and lock.path != mine.path
    assert set(app.workspaces.by_scope) == {app.workspace.scope, other.scope}
    # Its journal view: the same file and run, read and written as account B.
    assert other.journal is not app.journal and other.journal.run_id == app.journal.run_id
    assert (other.journal.account, app.journal.account) == (b, "123456789012")
