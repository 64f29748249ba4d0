"""`fleet inventory --fleet FILE` with accounts reached by roles (assumed from the hub), over
HTTP against the emulator's STS AssumeRole: the ExternalId from the file's variable, a role
that cannot be assumed named in the file, the others read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ksdelete.emulator import Emulator
from ksdelete.fleet import spec as fleetspec

from .test_fleet_inventory import inventory, uncomment


def test_accounts_reached_by_roles(emulator: Emulator, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    b = emulator.seed({"account": "222222222222", "region": "us-east-1",
                       "stores": [{"name": "b-hsm", "keys": 2}]})["stores"][0]["id"]
    emulator.seed({"account": "333333333333", "region": "us-east-1",
                   "stores": [{"name": "c-hsm", "keys": 1}]})
    emulator.configure(assume_role_external_id={"222222222222": "s3cr3t"},
                       assume_role_deny=["333333333333"])
    monkeypatch.setenv("INVENTORY_EXTERNAL_ID", "s3cr3t")
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(
        "version: 1\nname: by-roles\n"
        "defaults: {role: KsdeleteExecution, external_id_env: INVENTORY_EXTERNAL_ID}\n"
        "accounts:\n"
        '  - {account_id: "222222222222", name: b}\n'
        '  - {account_id: "333333333333", name: c}\n', encoding="utf-8")
    code, out, err = inventory(emulator, "--regions", "us-east-1", "--fleet", str(accounts))
    assert code == 1, err  # c's role cannot be assumed
    assert re.search(r"# 333333333333 \(c\): not read: .*AccessDenied", out), out
    assert "333333333333" in err
    assert yaml.safe_load(out)["guards"]["allowed_accounts"] == ["222222222222"]
    assert re.search(r"#\s+# us-east-1: AWS_CLOUDHSM \"b-hsm\", CONNECTED, 2 keys", out), out
    assert "read as arn:aws:sts::222222222222:assumed-role/KsdeleteExecution/" \
        "ksdelete-inventory-" in out
    fleet = fleetspec.parse(uncomment(out, b), None)
    assert fleet.accounts[0].role == ("arn:aws:iam::222222222222:role/KsdeleteExecution",)
    assert fleet.accounts[0].external_id_env == "INVENTORY_EXTERNAL_ID"
    sts = [c for c in emulator.calls() if c.get("service") == "sts"]
    assert {c["role_arn"] for c in sts} == {
        "arn:aws:iam::222222222222:role/KsdeleteExecution",
        "arn:aws:iam::333333333333:role/KsdeleteExecution"}
