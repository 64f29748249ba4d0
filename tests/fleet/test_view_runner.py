"""The fleet's views over a real fleet run (the runner, real boto3 over HTTP against the
emulator): the JSON document of every run is valid, every plain line of every account's
thread names its account and Region, and the summary has a line per target."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from cli.helpers import validated

from fleet.accounts import use_profiles
from ksdelete.emulator import Emulator
from ksdelete.fleet.model import AccountSpec, FleetRun, FleetSpec, Guards, Rollout, StoreTarget
from ksdelete.fleet.runner import FleetRunner, FleetSettings
from ksdelete.fleet.view import FleetPlainReporter, fleet_document, summary_lines
from ksdelete.models import PlanOptions
from ksdelete.sessions import SessionFactory

ACCOUNTS = {"111111111111": "dev", "222222222222": "stage"}
REGIONS = ("us-east-1", "eu-west-1")


@pytest.fixture
def spec(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FleetSpec:
    """Two accounts (a profile each) × two Regions, a store of two keys in each."""
    use_profiles(emulator, tmp_path, monkeypatch, ACCOUNTS)
    accounts = []
    for account, name in ACCOUNTS.items():
        stores: list[StoreTarget] = []
        for region in REGIONS:
            made = emulator.seed({"account": account, "region": region, "plain_keys": 1,
                                  "stores": [{"name": "s", "type": "EXTERNAL_KEY_STORE",
                                              "keys": 2}]})
            stores += [StoreTarget(account, region, s["id"]) for s in made["stores"]]
        accounts.append(AccountSpec(account, name, tuple(stores), profile=name))
    return FleetSpec("view-test", tuple(accounts), Guards(allowed_accounts=frozenset(ACCOUNTS)),
                     Rollout(max_accounts=2, canary=0, failure_tolerance=4),
                     options=PlanOptions(pending_window_days=7, unused_for_days=0),
                     path=Path("fleet.yml"), sha256="0" * 64)


def fleet_apply(emulator: Emulator, spec: FleetSpec, out: io.StringIO) -> FleetRun:
    run = FleetRun(spec, "fleet apply", "r-view")
    reporter = FleetPlainReporter(out)
    reporter.start(command="fleet apply", dry_run=False, spec=spec)
    FleetRunner(spec, "apply", FleetSettings(endpoint_url=emulator.endpoint_url,
                                             poll_interval=0.01),
                lambda account, region: reporter.for_scope(account.account_id, account.name,
                                                           region),
                "r-view", SessionFactory()).run(spec.targets, run)
    for t in run.targets:
        reporter.target_done(t)
    return run


def test_a_real_fleet_run_is_a_valid_document_and_prefixed_lines(
        emulator: Emulator, spec: FleetSpec) -> None:
    # stage's profile lands in dev's account: stage's targets are refused, dev's go on
    wrong = replace(spec, accounts=(spec.accounts[0], replace(spec.accounts[1], profile="dev")))
    out = io.StringIO()
    run = fleet_apply(emulator, wrong, out)
    doc = validated(json.dumps(fleet_document(run)))
    assert [t["status"] for t in doc["targets"]] == ["pending", "pending", "refused", "refused"]
    assert doc["summary"]["keys_scheduled"] == 4 and doc["exit_code"] == 4
    for entry in doc["targets"][:2]:
        assert entry["store"]["account"] == entry["account_id"] == "111111111111"
        assert entry["next_step"].startswith("wait until ")
    assert all(t["error"]["message"] for t in doc["targets"][2:])
    lines = out.getvalue().splitlines()
    assert lines
    label = re.compile(r"\S+ \[(111111111111|222222222222)/(us-east-1|eu-west-1)(/cks-\w+)?\] ")
    assert all(label.match(line) for line in lines), [x for x in lines if not label.match(x)]
    assert len(summary_lines(run)) == 5
    emulator.advance(8 * 24 * 3600)
    again = fleet_apply(emulator, spec, io.StringIO())
    assert validated(json.dumps(fleet_document(again)))["summary"]["deleted"] == 2
