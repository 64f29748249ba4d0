"""The shipped examples: the systemd units pass `systemd-analyze verify` (where it exists) and
everything runs `ksdelete apply` on a saved plan."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
UNITS = ("ksdelete-apply@.service", "ksdelete-apply@.timer")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    ksdelete = Path(sys.executable).parent / "ksdelete"  # the unit's binary, installed here
    for name in UNITS:
        text = (EXAMPLES / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/usr/local/bin/ksdelete", str(ksdelete)))
    run = subprocess.run(["systemd-analyze", "verify", "--man=no",
                          *(str(tmp_path / n) for n in UNITS)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr == "", run.stderr


def test_the_examples_apply_a_saved_plan_and_treat_exit_3_as_success() -> None:
    service = (EXAMPLES / "systemd" / UNITS[0]).read_text()
    assert "ksdelete apply /etc/ksdelete/plans/%i.json" in service
    for setting in ("SuccessExitStatus=3", "StateDirectory=ksdelete", "ProtectSystem=strict",
                    "NoNewPrivileges=yes"):
        assert setting in service.splitlines()
    cronjob = (EXAMPLES / "kubernetes" / "cronjob.yaml").read_text()
    assert "ksdelete apply /plans/plan.json" in cronjob and '"$rc" -eq 3' in cronjob
    assert "iam-policy --apply-only" in cronjob
