"""The fleet file (ksdelete/fleet/spec.py): strict, one line per error naming the file, the line
and the key path, with a hint; pure (no AWS call, no credentials read)."""

from __future__ import annotations

import hashlib
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ksdelete import planner
from ksdelete.errors import ExitStatus, UsageError
from ksdelete.fleet import spec as fleetspec
from ksdelete.fleet import write as fleetwrite
from ksdelete.fleet.model import AccountSpec, FleetSpec, Guards, Hub, Rollout, StoreTarget
from ksdelete.models import PlanOptions, RefusalReason

# The file every case of tests/fleet and tests/cli/test_fleet_validate.py starts from.
GOOD = (Path(__file__).parent / "fleet.yml").read_text(encoding="utf-8")


def parse(text: str) -> FleetSpec:
    return fleetspec.parse(text, Path("fleet.yml"))


def error(text: str) -> str:
    """The one line a bad file is refused with (a usage error, exit 2)."""
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert caught.value.exit_status is ExitStatus.USAGE
    line = str(caught.value)
    assert "\n" not in line
    return line


def test_a_good_file_becomes_the_fleet_spec() -> None:
    fleet = parse(GOOD)
    assert fleet.name == "retire-payments-hsm"
    assert fleet.version == 1
    assert fleet.hub == Hub(profile="security-automation")
    assert fleet.path == Path("fleet.yml")
    assert fleet.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()
    assert fleet.options == PlanOptions(pending_window_days=7, connect=True,
                                        protect_tags=(("keep", None), ("env", "prod")))
    assert fleet.guards == Guards(allowed_accounts=frozenset({"111122223333", "444455556666"}),
                                  forbidden_accounts=frozenset({"999988887777"}),
                                  max_targets=10, max_keys_per_target=500)
    assert fleet.rollout == Rollout(max_accounts=2, canary=1, failure_tolerance=0)
    dev, stage = fleet.accounts
    assert dev == AccountSpec(
        "111122223333", "payments-dev",
        (StoreTarget("111122223333", "eu-west-1", "cks-1234567890abcdef0", "payments-hsm",
                     "AWS_CLOUDHSM", 12),
         StoreTarget("111122223333", "us-east-1", "cks-1234567890abcdef1")),
        role=("arn:aws:iam::111122223333:role/KsdeleteExecution",),
        external_id_env="KSDELETE_EXTERNAL_ID")
    # An account's own profile overrides the default role (and its external ID).
    assert stage == AccountSpec(
        "444455556666", "payments-stage",
        (StoreTarget("444455556666", "us-east-1", "cks-0fedcba9876543210"),),
        profile="payments-stage-sso")
    assert len(fleet.targets) == 3
    assert fleet.regions("111122223333") == ("eu-west-1", "us-east-1")
    fleetspec.check_for_change(fleet)


def test_load_digests_the_bytes_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yml"
    path.write_bytes(GOOD.encode())
    fleet = fleetspec.load(path)
    assert fleet.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fleet.path == path


def test_load_a_missing_or_undecodable_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the fleet file"):
        fleetspec.load(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_bytes(b"version: 1\nname: \xff\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        fleetspec.load(bad)


def replaced(old: str, new: str, text: str = GOOD) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_an_unknown_key_is_named_with_its_line_path_and_the_closest_known_key() -> None:
    line = error(replaced("        region: eu-west-1", "        regoin: eu-west-1"))
    assert "unknown key 'regoin'" in line
    assert "fleet.yml:23" in line
    assert "accounts[0].stores[0].regoin" in line
    assert "Did you mean 'region'?" in line
    top = error(replaced("rollout:", "rolout:"))
    assert "fleet.yml:16" in top and "Did you mean 'rollout'?" in top
    assert "Known keys" in error("version: 1\nname: x\nzzz: 1\n")


def test_a_duplicate_key_is_an_error_at_its_second_line() -> None:
    line = error(replaced("  max_targets: 10", "  max_targets: 10\n  max_targets: 20"))
    assert "duplicate key 'max_targets'" in line and "fleet.yml:15" in line


def test_an_unquoted_account_id_is_refused_with_the_quoted_form() -> None:
    line = error(replaced('account_id: "111122223333"', "account_id: 11122223333"))
    assert "accounts[0].account_id" in line
    assert "quote it" in line
    assert 'account_id: "011122223333"' in line
    allowed = error(replaced('["111122223333", "444455556666"]', '[111122223333, "444455556666"]'))
    assert "guards.allowed_accounts[0]" in allowed and '"111122223333"' in allowed


@pytest.mark.parametrize("where", ["defaults", "account", "store"])
def test_an_external_id_in_the_file_is_refused_wherever_it_is(where: str) -> None:
    text = {
        "defaults": replaced("  role: KsdeleteExecution", "  role: X\n  external_id: s3cr3t"),
        "account": replaced("    name: payments-dev", "    name: payments-dev\n"
                            "    external_id: s3cr3t"),
        "store": replaced("        region: eu-west-1", "        region: eu-west-1\n"
                          "        external_id: s3cr3t"),
    }[where]
    line = error(text)
    assert "external IDs never live in the file" in line
    assert "external_id_env" in line
    assert "s3cr3t" not in line


@pytest.mark.parametrize(("old", "new", "said"), [
    ("version: 1", "version: 2", "version"),
    ("version: 1\n", "", "version is required"),
    ("name: retire-payments-hsm", "name: retire payments", "name"),
    ("name: retire-payments-hsm", "name: " + "n" * 65, "1-64"),
    ("name: retire-payments-hsm\n", "", "name is required"),
    ("name: retire-payments-hsm", "name: x\npartition: aws-cn", "only 'aws'"),
    ("  profile: security-automation", "  profile: 12", "hub.profile"),
    ("  external_id_env: KSDELETE_EXTERNAL_ID", "  external_id_env: ksdelete-id",
     "environment variable name"),
    ("  pending_window_days: 7", "  pending_window_days: 3", "7-30"),
    ("  pending_window_days: 7", "  pending_window_days: '7'", "pending_window_days"),
    ("  connect: true", "  connect: 'yes'", "true or false"),
    ("  connect: true", "  on_use: shout", "cancel, refuse, ignore"),
    ("  connect: true", "  unused_for_days: 4000", "0-3650"),
    ("  connect: true", "  expect_keys: 3", "per store"),
    ("  protect_tags: [keep, env=prod]", "  protect_tags: ['=x']", "protect_tags"),
    ("  role: KsdeleteExecution", "  role: 'arn:aws:iam::1:role/x'", "role"),
    ("  role: KsdeleteExecution", "  role: []", "role"),
    ("  max_targets: 10", "  max_targets: 0", "positive"),
    ("  max_targets: 10", "  max_targets: true", "positive"),
    ('  forbidden_accounts: ["999988887777"]', '  forbidden_accounts: "999988887777"', "list"),
    ("  max_accounts: 2", "  max_accounts: 0", "positive"),
    ("  max_accounts: 2", "  canary: -1", "at least 0"),
    ("  max_accounts: 2", "  failure_tolerance: x", "failure_tolerance"),
    ("        region: eu-west-1", "        region: EU_WEST_1", "Region"),
    ("      - id: cks-1234567890abcdef0", "      - id: 1234567890abcdef0", "cks-"),
    ("        expect_type: AWS_CLOUDHSM", "        expect_type: AWS_KMS", "EXTERNAL_KEY_STORE"),
    ("        expect_keys: 12", "        expect_keys: -1", "at least 0"),
    ("        expect_name: payments-hsm", "        expect_name: ''", "expect_name"),
    ("    name: payments-dev", '    name: "dev\\nfake line"', "control character"),
    ("    name: payments-dev", "    name: " + "n" * 65, "1-64"),
    ("rollout:\n  max_accounts: 2", "rollout:\n  max_accounts: 2\nhub:", "duplicate key 'hub'"),
    ("    name: payments-dev", "    name: payments-stage", "duplicate account name"),
    ('  - account_id: "444455556666"', '  - account_id: "111122223333"',
     "duplicate account_id"),
    ("      - id: cks-1234567890abcdef1\n        region: us-east-1",
     "      - id: cks-1234567890abcdef0\n        region: eu-west-1", "duplicate target"),
    ("    profile: payments-stage-sso", "    profile: p\n    role: r", "both role and profile"),
    ("    name: payments-dev", "    name: payments-dev\n    profile: p\n"
     "    external_id_env: X_ID", "external_id_env"),
    ('  allowed_accounts: ["111122223333", "444455556666"]',
     '  allowed_accounts: ["111122223333", "444455556666", "12345"]', "12-digit"),
    ('  forbidden_accounts: ["999988887777"]', '  forbidden_accounts: ["444455556666"]',
     "forbidden"),
    ("accounts:\n", "accounts: []\nx:\n", "unknown key 'x'"),
    ("    name: payments-dev\n", "    name: [a\n", "not valid YAML"),
])
def test_a_bad_file_is_one_usage_error_that_says_where(old: str, new: str, said: str) -> None:
    line = error(replaced(old, new))
    assert said in line, line
    assert re.search(r"\(fleet\.yml(:\d+)?[,)]", line), line


def test_the_path_of_a_bad_value_is_given() -> None:
    line = error(replaced("        expect_keys: 12", "        expect_keys: many"))
    assert "fleet.yml:26, accounts[0].stores[0].expect_keys" in line


def test_the_forbidden_list_wins_over_the_allowed_list() -> None:
    line = error(replaced('["999988887777"]', '["111122223333"]'))
    assert "account 111122223333 (payments-dev) is in guards.forbidden_accounts" in line


def test_an_account_needs_a_role_or_a_profile() -> None:
    line = error(replaced("  role: KsdeleteExecution\n", ""))
    assert "accounts[0]" in line and "role or a profile" in line


@pytest.mark.parametrize("text", [
    "version: 1\nname: x\n",
    "version: 1\nname: x\naccounts: []\n",
    'version: 1\nname: x\naccounts:\n  - {account_id: "111122223333", name: a, profile: p}\n',
    'version: 1\nname: x\naccounts:\n  - {account_id: "111122223333", name: a, profile: p, '
    "stores: []}\n",
])
def test_no_targets_is_an_empty_selection(text: str) -> None:
    assert "empty selection" in error(text)


@pytest.mark.parametrize("text", [
    "version: 1\nname: x\naccounts:\n  # - account_id: ...\n",
    'version: 1\nname: x\naccounts:\n  - account_id: "111122223333"\n    name: a\n'
    "    profile: p\n    stores:\n      # - id: cks-1\n",
])
def test_every_entry_commented_out_is_an_empty_selection_too(text: str) -> None:
    assert "empty selection" in error(text)


def test_a_file_read_for_its_accounts_only_may_name_no_store() -> None:
    text = 'version: 1\nname: x\naccounts:\n  - {account_id: "111122223333", name: a, ' \
        "profile: p}\n"
    fleet = fleetspec.parse(text, None, selection=False)
    assert fleet.accounts[0].stores == () and fleet.targets == ()
    with pytest.raises(UsageError, match="forbidden"):
        fleetspec.parse(text + 'guards: {forbidden_accounts: ["111122223333"]}\n', None,
                        selection=False)


def test_a_section_with_nothing_under_it_is_empty() -> None:
    fleet = parse(replaced("rollout:\n  max_accounts: 2", "rollout:\n  # max_accounts: 2"))
    assert fleet.rollout == Rollout()
    assert "account_id is required" in error(replaced('  - account_id: "444455556666"\n'
                                                      "    name: payments-stage\n", "  -\n"))


def test_an_empty_file_or_one_without_a_mapping_is_refused() -> None:
    assert "empty" in error("")
    assert "mapping" in error("just text\n")


def test_a_role_chain_keeps_arns_and_makes_bare_names_arns_of_the_target_account() -> None:
    fleet = parse(replaced("  role: KsdeleteExecution",
                           "  role: [arn:aws:iam::222233334444:role/ops/Hub, Jump, Exec]"))
    assert fleet.accounts[0].role == ("arn:aws:iam::222233334444:role/ops/Hub",
                                      "arn:aws:iam::111122223333:role/Jump",
                                      "arn:aws:iam::111122223333:role/Exec")
    own = parse(replaced("    name: payments-dev",
                         "    name: payments-dev\n    role: arn:aws:iam::111122223333:role/a/B"))
    assert own.accounts[0].role == ("arn:aws:iam::111122223333:role/a/B",)
    line = error(replaced("    name: payments-dev",
                          "    name: payments-dev\n    role: arn:aws:iam::222233334444:role/B"))
    assert "the last role of the chain must be in account 111122223333" in line


def test_check_for_change_needs_every_account_allowed() -> None:
    fleet = parse(replaced('  allowed_accounts: ["111122223333", "444455556666"]\n', ""))
    with pytest.raises(UsageError, match="allowed_accounts is required for anything that "
                                         "changes AWS"):
        fleetspec.check_for_change(fleet)
    partial = parse(replaced('["111122223333", "444455556666"]', '["111122223333"]'))
    with pytest.raises(UsageError, match="444455556666"):
        fleetspec.check_for_change(partial)
    fleetspec.check_for_change(parse(GOOD))


def test_too_many_targets_is_a_refusal_before_the_first_change() -> None:
    assert planner.too_many_targets(parse(GOOD)) is None
    refusal = planner.too_many_targets(parse(replaced("max_targets: 10", "max_targets: 2")))
    assert refusal is not None
    assert refusal.reason is RefusalReason.TOO_MANY_TARGETS
    assert "3 targets" in refusal.headline and "max_targets 2" in refusal.headline
    assert planner.too_many_targets(parse(replaced("  max_targets: 10\n", ""))) is None


# ---- round trips of the valid subset ------------------------------------------------------

ACCOUNT = st.text("0123456789", min_size=12, max_size=12)
LABEL = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
REGION = st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"])
STORE = st.text("0123456789abcdef", min_size=17, max_size=17).map(lambda s: "cks-" + s)


@st.composite
def fleets(draw: st.DrawFn) -> FleetSpec:
    ids = draw(st.lists(ACCOUNT, min_size=1, max_size=4, unique=True))
    names = draw(st.lists(LABEL, min_size=len(ids), max_size=len(ids), unique=True))
    accounts = []
    for account_id, name in zip(ids, names, strict=True):
        keys = draw(st.lists(st.tuples(REGION, STORE), min_size=1, max_size=3, unique=True))
        stores = tuple(StoreTarget(
            account_id, region, store,
            draw(st.none() | LABEL), draw(st.none() | st.sampled_from(
                ["AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"])),
            draw(st.none() | st.integers(0, 10_000))) for region, store in keys)
        if draw(st.booleans()):
            role = tuple(f"arn:aws:iam::{account_id}:role/{r}"
                         for r in draw(st.lists(LABEL, min_size=1, max_size=2)))
            accounts.append(AccountSpec(account_id, name, stores, role=role,
                                        external_id_env=draw(st.none() | st.just("EXT_ID"))))
        else:
            accounts.append(AccountSpec(account_id, name, stores, profile=draw(LABEL)))
    allowed = frozenset(draw(st.lists(ACCOUNT, max_size=2))) | frozenset(ids)
    return FleetSpec(
        name=draw(LABEL), accounts=tuple(accounts),
        guards=Guards(allowed_accounts=allowed, forbidden_accounts=frozenset(
            draw(st.lists(ACCOUNT, max_size=2))) - allowed,
            max_targets=draw(st.none() | st.integers(1, 50))),
        rollout=Rollout(draw(st.integers(1, 8)), draw(st.integers(0, 3)),
                        draw(st.integers(0, 3))),
        hub=Hub(draw(st.none() | LABEL)),
        options=PlanOptions(pending_window_days=draw(st.integers(7, 30)),
                            connect=draw(st.booleans()),
                            on_use=draw(st.sampled_from(["cancel", "refuse", "ignore"]))))


@settings(max_examples=60, deadline=None)
@given(fleets())
def test_a_valid_spec_round_trips_through_its_file(fleet: FleetSpec) -> None:
    text = fleetwrite.dump(fleet)
    back = fleetspec.parse(text, None)
    assert back.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert back == FleetSpec(**{**fleet.__dict__, "sha256": back.sha256})
    fleetspec.check_for_change(back)


def test_the_example_in_docs_fleet_md_is_valid_and_fit() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"
    example = re.search(r"```yaml\n(.*?)```", docs.read_text(encoding="utf-8"), re.S)
    assert example is not None
    fleet = fleetspec.parse(example.group(1), docs)
    assert len(fleet.targets) == 2
    fleetspec.check_for_change(fleet)
    assert planner.too_many_targets(fleet) is None
