"""The real CLI against the emulator with AWS's request quotas on: no throttling error reaches
the user (the pace and its adaptation are unit-tested in tests/test_pacing.py)."""

from __future__ import annotations

from ksdelete.emulator import Emulator

from .helpers import ksdelete, seed_one


def test_scheduling_under_aws_quotas_surfaces_no_throttling(emulator: Emulator) -> None:
    seeded = seed_one(emulator, keys=40, plain=20, other=0)
    emulator.configure(quotas="aws")
    run = ksdelete(emulator, "target", "--yes", "--pending-window-days", "7", "--output",
                   "json")
    assert run.exit_code == 3, run.stderr
    store = run.store()
    scheduled = [a for a in store["actions"] if a["operation"] == "ScheduleKeyDeletion"]
    assert sorted(a["key_id"] for a in scheduled) == sorted(seeded["stores"][0]["key_ids"])
    assert all(a["outcome"] == "ok" for a in store["actions"])
    assert "error" not in run.stderr.lower().replace("retry:", "")
