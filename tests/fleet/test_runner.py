"""The fleet runner over HTTP against the emulator: accounts reached by profiles (each an
access key the emulator maps to a principal of that account), every (account, Region) one
invocation of today's pipeline."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from fleet.accounts import use_profiles
from ksdelete.emulator import Emulator
from ksdelete.errors import ExitStatus, RefusedError, UsageError
from ksdelete.fleet.model import (
    AccountSpec,
    FleetRun,
    FleetSpec,
    Guards,
    Rollout,
    StoreTarget,
    TargetResult,
)
from ksdelete.fleet.runner import FleetRunner, FleetSettings
from ksdelete.fleet.service import check_guards
from ksdelete.models import PlanOptions, Status
from ksdelete.reporting import QuietReporter
from ksdelete.sessions import SessionFactory

ACCOUNTS = {"111111111111": "dev", "222222222222": "stage", "333333333333": "prod"}
REGIONS = ("us-east-1", "eu-west-1")
WEEK = 7 * 24 * 3600.0


@pytest.fixture
def profiles(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile per account: its access key lands in that account."""
    use_profiles(emulator, tmp_path, monkeypatch, ACCOUNTS)


def seed(emulator: Emulator, *, stores_per_group: int = 1, keys: int = 2
         ) -> list[StoreTarget]:
    targets = []
    for account in ACCOUNTS:
        for region in REGIONS:
            made = emulator.seed({"account": account, "region": region, "plain_keys": 1,
                                  "stores": [{"name": f"s{n}", "type": "EXTERNAL_KEY_STORE",
                                              "keys": keys}
                                             for n in range(stores_per_group)]})
            targets += [StoreTarget(account, region, s["id"], expect_name=s["name"],
                                    expect_type="EXTERNAL_KEY_STORE")
                        for s in made["stores"]]
    return targets


def spec_of(targets: list[StoreTarget], **guards: Any) -> FleetSpec:
    accounts = tuple(
        AccountSpec(a, name, tuple(t for t in targets if t.account_id == a), profile=name)
        for a, name in ACCOUNTS.items() if any(t.account_id == a for t in targets))
    rollout = guards.pop("rollout", Rollout(max_accounts=3, canary=1, failure_tolerance=0))
    return FleetSpec("retire-test", accounts,
                     Guards(allowed_accounts=frozenset(ACCOUNTS), **guards), rollout,
                     options=PlanOptions(pending_window_days=7, unused_for_days=0))


def run(emulator: Emulator, spec: FleetSpec, mode: str = "apply", tmp: Path | None = None,
        **settings: Any) -> FleetRun:
    out = FleetRun(spec, f"fleet {mode}", "r-test")
    runner = FleetRunner(
        spec, mode, FleetSettings(endpoint_url=emulator.endpoint_url, poll_interval=0.01,
                                  **settings),
        lambda account, region: QuietReporter(io.StringIO()), "r-test",
        SessionFactory())
    runner.run(spec.targets, out)
    return out


def statuses(out: FleetRun) -> list[str]:
    return [t.status.value for t in out.targets]


def by_label(out: FleetRun) -> dict[str, TargetResult]:
    return {t.target.label: t for t in out.targets}


def test_three_accounts_two_regions_converge_to_deleted(emulator: Emulator,
                                                       profiles: None) -> None:
    targets = seed(emulator)
    spec = spec_of(targets)
    first = run(emulator, spec)
    assert statuses(first) == ["pending"] * 6, [t.error for t in first.targets]
    assert first.exit_code is ExitStatus.PENDING
    # every account's keys were scheduled in its own account, by its own principal
    for t in first.targets:
        assert t.assumed_role_arn == f"arn:aws:iam::{t.target.account_id}:role/operator"
        pending = [k for k in emulator.state(t.target.region, t.target.account_id)["keys"]
                   if k.get("CustomKeyStoreId") == t.target.store_id]
        assert pending and all(k["KeyState"] == "PendingDeletion" for k in pending), t
    emulator.advance(8 * 24 * 3600)
    second = run(emulator, spec)
    assert statuses(second) == ["deleted"] * 6, [t.error for t in second.targets]
    assert second.exit_code is ExitStatus.OK


def test_an_account_that_answers_for_another_is_refused_and_the_others_go_on(
        emulator: Emulator, profiles: None) -> None:
    targets = seed(emulator)
    spec = spec_of(targets, rollout=Rollout(max_accounts=3, canary=0, failure_tolerance=2))
    # the "stage" profile lands in prod's account: stage's targets are refused
    wrong = replace_account(spec, "222222222222", profile="prod")
    out = run(emulator, wrong)
    labels = by_label(out)
    for t in out.targets:
        if t.target.account_id == "222222222222":
            assert t.status is Status.REFUSED, t
            assert "answer for account 333333333333" in (t.error or {})["message"]
        else:
            assert t.status is Status.PENDING, t.error
    assert out.exit_code is ExitStatus.REFUSED
    assert len(labels) == 6
    for region in REGIONS:  # nothing changed in stage's account
        assert all(k["KeyState"] == "Enabled" for k in
                   emulator.state(region, "222222222222")["keys"])


def test_the_failure_tolerance_stops_new_changes_after_a_failure(
        emulator: Emulator, profiles: None) -> None:
    targets = seed(emulator)
    spec = spec_of(targets, rollout=Rollout(max_accounts=1, canary=0, failure_tolerance=0))
    wrong = replace_account(spec, "111111111111", profile="nobody-such")
    out = run(emulator, wrong)
    assert [t.status for t in out.targets[:2]] == [Status.ERROR] * 2
    assert out.halted and "halted" in (out.halt_reason or "")
    assert all(t.status is Status.SKIPPED for t in out.targets[2:]), statuses(out)
    assert out.exit_code is ExitStatus.ERROR
    for account in ("222222222222", "333333333333"):
        for region in REGIONS:
            assert all(k["KeyState"] == "Enabled"
                       for k in emulator.state(region, account)["keys"])


def test_guards_before_any_aws_call(emulator: Emulator, profiles: None) -> None:
    targets = seed(emulator)
    spec = spec_of(targets, max_targets=5)
    with pytest.raises(RefusedError, match="max_targets"):
        check_guards(spec, changing=True, capped=True)
    loose = spec_of(targets)
    narrowed = FleetSpec(loose.name, loose.accounts, Guards(
        allowed_accounts=frozenset({"111111111111"})))
    with pytest.raises(UsageError, match="does not hold 222222222222, 333333333333"):
        check_guards(narrowed, changing=True, capped=True)
    forbidden = FleetSpec(loose.name, loose.accounts, Guards(
        allowed_accounts=frozenset(ACCOUNTS), forbidden_accounts=frozenset({"333333333333"})))
    with pytest.raises(UsageError, match="forbidden"):
        check_guards(forbidden, changing=False, capped=False)


def test_the_per_run_key_cap_defers_targets_to_the_next_run(
        emulator: Emulator, profiles: None) -> None:
    targets = seed(emulator, keys=2)
    spec = spec_of(targets, max_keys_scheduled_per_run=5,
                   rollout=Rollout(max_accounts=1, canary=0, failure_tolerance=0))
    out = run(emulator, spec)
    scheduled = [t for t in out.targets if any(
        a.operation == "ScheduleKeyDeletion" for a in (t.result.actions if t.result else []))]
    assert len(scheduled) == 2, statuses(out)  # 2 + 2 keys; a third target would make 6
    assert all(t.status is Status.PENDING for t in out.targets), statuses(out)
    deferred = [t for t in out.targets if t not in scheduled]
    assert deferred and all(t.result and t.result.actions == [] and any(
        "max_keys_scheduled_per_run" in w for w in t.result.warnings) for t in deferred)
    again = run(emulator, spec)
    scheduled_again = [t for t in again.targets if any(
        a.operation == "ScheduleKeyDeletion" for a in (t.result.actions if t.result else []))]
    assert len(scheduled_again) == 2


def replace_account(spec: FleetSpec, account_id: str, **changes: Any) -> FleetSpec:
    from dataclasses import replace

    return replace(spec, accounts=tuple(replace(a, **changes) if a.account_id == account_id
                                        else a for a in spec.accounts))
