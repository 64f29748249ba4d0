"""Assume-role sessions (ksdelete.sessions): a ScopeRequest with `role` gets a session whose
refreshable credentials come from assuming the chain from the hub session, once per factory,
over real HTTP against the emulator's STS."""

from __future__ import annotations

import io
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials

from ksdelete.emulator import Emulator
from ksdelete.errors import AssumeRoleError, ExitStatus, UsageError
from ksdelete.scope import ScopeRequest
from ksdelete.sessions import SessionFactory, clean_session_name, sts_endpoint

A = "123456789012"
B = "222222222222"
C = "333333333333"
ROLE_B = f"arn:aws:iam::{B}:role/ksdelete-target"
ROLE_C = f"arn:aws:iam::{C}:role/ops/ksdelete-target"


def assumes(emulator: Emulator) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c.get("operation") == "AssumeRole"]


def request(emulator: Emulator, *roles: str, region: str = "us-east-1",
            **more: Any) -> ScopeRequest:
    return ScopeRequest(region, endpoint_url=emulator.endpoint_url, role=roles, **more)


def credentials_of(factory: SessionFactory, scope: ScopeRequest) -> RefreshableCredentials:
    creds = factory.session_for(scope).get_credentials()
    assert isinstance(creds, RefreshableCredentials)
    return creds


def expire(creds: RefreshableCredentials) -> None:
    """As if the hour were up: botocore refreshes before the next call."""
    creds._expiry_time = datetime.now(UTC) - timedelta(seconds=1)  # noqa: SLF001


def test_a_role_gateway_is_in_the_roles_account_and_sees_only_its_stores(
        emulator: Emulator) -> None:
    b = emulator.seed({"account": B, "stores": [{"name": "hsm-b", "keys": 2}]})
    a = emulator.seed({"stores": [{"name": "hsm-a", "keys": 1}]})
    gateway = SessionFactory().gateway(request(emulator, ROLE_B, session_name="ksdelete-r42"))
    identity = gateway.identity()
    assert identity.account == B
    assert identity.caller_arn == f"arn:aws:sts::{B}:assumed-role/ksdelete-target/ksdelete-r42"
    store = gateway.describe_store(store_id=b["stores"][0]["id"])
    assert store is not None and store.name == "hsm-b"
    assert gateway.describe_store(store_id=a["stores"][0]["id"]) is None
    keys = {key_id for page in gateway.list_keys() for key_id, _ in page}
    assert keys == set(b["stores"][0]["key_ids"])
    assert [c["role_arn"] for c in assumes(emulator)] == [ROLE_B]


def test_without_a_role_the_hub_session_is_used(emulator: Emulator) -> None:
    gateway = SessionFactory().gateway(request(emulator))
    assert gateway.identity().account == A
    assert assumes(emulator) == []


def test_two_regions_of_one_account_share_one_assume_role(emulator: Emulator) -> None:
    factory = SessionFactory()
    east = factory.gateway(request(emulator, ROLE_B))
    west = factory.gateway(request(emulator, ROLE_B, region="eu-west-1"))
    assert (east.identity().account, west.identity().account) == (B, B)
    assert west.region == "eu-west-1"
    assert len(assumes(emulator)) == 1
    assert credentials_of(factory, request(emulator, ROLE_B)) is credentials_of(
        factory, request(emulator, ROLE_B, region="eu-west-1"))
    # another account, or another factory (another run), assumes again
    factory.gateway(request(emulator, ROLE_C)).identity()
    SessionFactory().gateway(request(emulator, ROLE_B)).identity()
    assert [c["role_arn"] for c in assumes(emulator)] == [ROLE_B, ROLE_C, ROLE_B]


def test_regions_with_their_own_sts_endpoints_share_one_assume_role(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """On AWS each Region has its own STS endpoint: the chain is still assumed once, at the
    first Region's (the emulator answers STS on any path)."""
    from ksdelete import sessions

    monkeypatch.setattr(sessions, "sts_endpoint",
                        lambda region, url: f"{emulator.endpoint_url}/sts-{region}/")
    factory = SessionFactory()
    for region in ("us-east-1", "eu-west-1", "eu-central-1"):
        assert factory.gateway(request(emulator, ROLE_B, region=region)).identity().account == B
    assert len(assumes(emulator)) == 1


def test_parallel_scopes_of_one_account_still_assume_once(emulator: Emulator) -> None:
    factory = SessionFactory()
    regions = ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2"] * 3

    def account_of(region: str) -> str:
        return factory.gateway(request(emulator, ROLE_B, region=region)).identity().account

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(account_of, regions)) == {B}
    assert len(assumes(emulator)) == 1


def test_a_chain_assumes_each_role_from_the_previous(emulator: Emulator) -> None:
    gateway = SessionFactory().gateway(request(emulator, ROLE_B, ROLE_C))
    assert gateway.identity().account == C
    assert [(c["account"], c["role_arn"]) for c in assumes(emulator)] == [
        (A, ROLE_B), (B, ROLE_C)]


def test_the_refresh_runs_the_whole_chain_again(emulator: Emulator) -> None:
    factory = SessionFactory()
    scope = request(emulator, ROLE_B, ROLE_C)
    gateway = factory.gateway(scope)
    assert gateway.identity().account == C
    creds = credentials_of(factory, scope)
    first_key = creds.get_frozen_credentials().access_key
    expire(creds)
    assert gateway.identity().account == C
    assert [c["role_arn"] for c in assumes(emulator)] == [ROLE_B, ROLE_C, ROLE_B, ROLE_C]
    assert creds.get_frozen_credentials().access_key != first_key
    assert first_key.startswith("ASIA")


def test_a_refresh_that_is_denied_names_the_account(emulator: Emulator) -> None:
    factory = SessionFactory()
    scope = request(emulator, ROLE_B)
    gateway = factory.gateway(scope)
    gateway.identity()
    emulator.configure(assume_role_deny=[B])
    expire(credentials_of(factory, scope))
    with pytest.raises(AssumeRoleError) as excinfo:
        gateway.identity()
    assert B in str(excinfo.value) and "AccessDenied" in str(excinfo.value)


def test_a_denied_role_is_an_error_naming_account_role_and_code(emulator: Emulator) -> None:
    emulator.configure(assume_role_deny=[B])
    factory = SessionFactory()
    with pytest.raises(AssumeRoleError) as excinfo:
        factory.session_for(request(emulator, ROLE_B))
    error = excinfo.value
    assert error.exit_status == ExitStatus.ERROR
    line = str(error)
    assert "\n" not in line
    assert f"account {B}" in line and ROLE_B in line and "AccessDenied" in line
    assert "trust policy" in line
    # AWS's own words (who asked, for what) follow on a line of their own
    assert "is not authorized" not in line and len(line) < 200
    assert error.details == (f"AWS: User: arn:aws:iam::{A}:user/testing is not authorized to "
                             f"perform: sts:AssumeRole on resource: {ROLE_B}",)
    assert error.as_json()["details"] == list(error.details)
    assert (error.account, error.role_arn, error.aws_code) == (B, ROLE_B, "AccessDenied")
    # the other Regions of that account fail the same way without asking again
    with pytest.raises(AssumeRoleError):
        factory.session_for(request(emulator, ROLE_B, region="eu-west-1"))
    assert len(assumes(emulator)) == 1


def test_a_denied_hop_of_a_chain_names_that_role(emulator: Emulator) -> None:
    emulator.configure(assume_role_deny=[C])
    with pytest.raises(AssumeRoleError) as excinfo:
        SessionFactory().session_for(request(emulator, ROLE_B, ROLE_C))
    assert excinfo.value.role_arn == ROLE_C and excinfo.value.account == C
    emulator.configure(assume_role_deny=[B])
    with pytest.raises(AssumeRoleError) as excinfo:
        SessionFactory().session_for(request(emulator, ROLE_B, ROLE_C))
    assert excinfo.value.account == B
    assert f"(role 1 of 2, on the way to account {C})" in str(excinfo.value)


def test_the_external_id_is_sent_to_the_target_role(emulator: Emulator) -> None:
    emulator.configure(assume_role_external_id={C: "fleet-ext-7"})
    with pytest.raises(AssumeRoleError) as excinfo:
        SessionFactory().session_for(request(emulator, ROLE_B, ROLE_C))
    assert "ExternalId" in str(excinfo.value)
    gateway = SessionFactory().gateway(request(emulator, ROLE_B, ROLE_C,
                                               external_id="fleet-ext-7"))
    assert gateway.identity().account == C
    # sent on the last hop only: the target's trust policy is the one that asks for it
    assert [c["external_id_sent"] for c in assumes(emulator)] == [False, False, False, True]


def test_a_redirected_role_lands_where_the_emulator_says(emulator: Emulator) -> None:
    emulator.configure(assume_role_redirect={ROLE_B: C})
    assert SessionFactory().gateway(request(emulator, ROLE_B)).identity().account == C


@pytest.mark.parametrize("bad", [
    "arn:aws:iam::22222222222:role/short",
    f"arn:aws:iam::{B}:user/not-a-role",
    "ksdelete-target",
    f"arn:aws:sts::{B}:assumed-role/ksdelete-target/s",
])
def test_a_malformed_role_arn_is_a_usage_error_before_any_call(
        emulator: Emulator, bad: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        SessionFactory().session_for(request(emulator, ROLE_B, bad))
    assert bad in str(excinfo.value)
    assert emulator.calls() == []


def test_an_external_id_without_a_role_is_a_usage_error(emulator: Emulator) -> None:
    with pytest.raises(UsageError, match="ExternalId"):
        SessionFactory().session_for(request(emulator, external_id="fleet-ext-7"))
    assert emulator.calls() == []


def test_an_unreachable_sts_is_an_assume_role_error(emulator: Emulator) -> None:
    scope = ScopeRequest("us-east-1", endpoint_url="http://127.0.0.1:9", role=(ROLE_B,))
    with pytest.raises(AssumeRoleError) as excinfo:
        SessionFactory().session_for(scope)
    assert B in str(excinfo.value) and excinfo.value.aws_code == "ConnectionError"
    assert "network" in str(excinfo.value) and "127.0.0.1:9" in excinfo.value.details[0]


def test_session_names_follow_the_sts_rule() -> None:
    assert clean_session_name("ksdelete-20261203T154512-ab12") == "ksdelete-20261203T154512-ab12"
    assert clean_session_name("ksdelete-run id/with:odd chars") == "ksdelete-run-id-with-odd-chars"
    long = clean_session_name("ksdelete-" + "x" * 100)
    assert len(long) == 64 and long.startswith("ksdelete-")
    assert len(clean_session_name("")) >= 2
    rule = re.compile(r"[\w+=,.@-]{2,64}")
    assert rule.fullmatch(clean_session_name("é" * 3))


def test_the_default_session_name_is_unique_per_factory(emulator: Emulator) -> None:
    first = SessionFactory().gateway(request(emulator, ROLE_B)).identity().caller_arn
    second = SessionFactory().gateway(request(emulator, ROLE_B)).identity().caller_arn
    names = [arn.rsplit("/", 1)[-1] for arn in (first, second)]
    assert all(n.startswith("ksdelete-") for n in names) and names[0] != names[1]


def test_sts_is_regional() -> None:
    assert sts_endpoint("eu-west-1", None) == "https://sts.eu-west-1.amazonaws.com"
    assert sts_endpoint("cn-north-1", None) == "https://sts.cn-north-1.amazonaws.com.cn"
    assert sts_endpoint("eu-west-1", "http://127.0.0.1:4566") == "http://127.0.0.1:4566"
    # a KMS VPC endpoint is for KMS only
    assert sts_endpoint("eu-west-1", "https://vpce-1.kms.eu-west-1.vpce.amazonaws.com") == (
        "https://sts.eu-west-1.amazonaws.com")


def test_sts_endpoint_settings_of_boto3_are_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "https://sts.example.internal")
    assert sts_endpoint("eu-west-1", None) is None  # boto3 reads it


def test_no_secret_reaches_the_debug_log(emulator: Emulator,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ksdelete.cli.options import _setup_logging

    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = [(lg, lg.level) for lg in (root, *loggers)]
    # --debug's levels, without basicConfig(force=True) closing pytest's own handlers
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: root.setLevel(kw["level"]))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    try:
        _setup_logging(True)
        root.addHandler(handler)
        factory = SessionFactory()
        scope = request(emulator, ROLE_B, ROLE_C)
        gateway = factory.gateway(scope)
        gateway.identity()
        creds = credentials_of(factory, scope)
        expire(creds)
        gateway.identity()
        frozen = creds.get_frozen_credentials()
    finally:
        root.removeHandler(handler)
        for lg, level in levels:
            lg.setLevel(level)
    log = stream.getvalue()
    assert "GetCallerIdentity" in log  # the log did record the calls
    assert frozen.secret_key not in log and frozen.token not in log
