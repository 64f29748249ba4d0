"""Cron mail: a scheduled run in which nothing changed prints a bounded number of lines,
whatever the number of keys; warnings are repeated when the phase changes, not every day; a
store reported deleted stays quiet (issue 19)."""

from __future__ import annotations

from typing import Any

from ksdelete.emulator import Emulator

from .helpers import DAY, Run, ksdelete, seed_one

# Unattended, a 7-day window; the gates that read per key are off (this is about output).
RUN = ("--yes", "--pending-window-days", "7", "--unused-for", "0", "--on-use", "ignore")


def _lines(run: Run) -> list[str]:
    return [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]


def _waiting_day(emulator: Emulator, keys: int) -> tuple[Run, Run, Run]:
    """A store's keys scheduled by a first --yes run, and the runs of the next two days."""
    emulator.reset()
    seeded = seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=keys, plain=3, other=1)
    args = (seeded["stores"][0]["id"], *RUN)
    first = ksdelete(emulator, *args)
    assert first.exit_code == 3, first.stderr
    emulator.advance(DAY)
    second = ksdelete(emulator, *args)
    assert second.exit_code == 3, second.stderr
    emulator.advance(DAY)
    third = ksdelete(emulator, *args)
    assert third.exit_code == 3, third.stderr
    return first, second, third


def test_a_run_that_changes_nothing_prints_as_many_lines_for_100_keys_as_for_3(
        emulator: Emulator) -> None:
    few = _waiting_day(emulator, 3)[2]
    many = _waiting_day(emulator, 100)[2]
    assert len(_lines(many)) == len(_lines(few)), "\n".join(_lines(many))
    assert len(_lines(few)) <= 15, "\n".join(_lines(few))
    # What the person needs is still there: the store's phase and when to look again.
    assert "keys-pending 100/100" in many.stdout + many.stderr
    assert "run again after" in many.stdout


def test_a_warning_is_repeated_when_the_phase_changes_not_every_day(emulator: Emulator) -> None:
    first, second, third = _waiting_day(emulator, 3)
    external = "KMS never deletes external keys"
    assert external in first.stderr  # the run that scheduled the keys: a new phase
    assert "waived: not_recently_used" in first.stdout
    for later in (second, third):  # the days after: nothing changed, nothing repeated
        assert external not in later.stderr, later.stderr
    # (the second day lists the waivers once: --on-use ignore's came into force with the
    # pending keys, see test_a_waiver_that_comes_into_force_later_is_shown_once)
    assert "waived" not in third.stdout and "no change since the last run" in third.stdout


def test_a_deleted_store_is_reported_once(emulator: Emulator) -> None:
    seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=2, plain=1, other=1)
    emulator.configure(disconnect_seconds=0.5)  # not a minute of polling for the disconnect
    args = ("target", *RUN)
    assert ksdelete(emulator, *args).exit_code == 3
    emulator.advance(8 * DAY)
    done = ksdelete(emulator, *args)
    assert done.exit_code == 0, done.stderr
    assert "deleted" in done.stdout
    again = ksdelete(emulator, *args)
    assert again.exit_code == 0, again.stderr
    assert len(_lines(again)) <= 2, "\n".join(_lines(again))


def test_quiet_at_a_terminal_shows_the_plan_before_it_asks(emulator: Emulator) -> None:
    """-q on a terminal used to ask for the typed store ID without showing any plan."""
    import os
    import pty
    import subprocess

    from .helpers import KSDELETE, env_for

    seeded = seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=2, plain=1, other=1)
    master, slave = pty.openpty()
    proc = subprocess.Popen([KSDELETE, "target", "-q", "--unused-for", "0"],
                            env=env_for(emulator), stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    os.close(slave)
    os.write(master, b"no\n")  # not the store's name: not confirmed, nothing changes
    out, err = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 4, err
    asked = err.index("Type the store ID")
    for key_id in seeded["stores"][0]["key_ids"]:
        assert key_id in err[:asked], err
    assert "steps:" in err[:asked]


def test_a_key_that_appears_already_pending_is_named_not_no_change(
        emulator: Emulator, kms: Any) -> None:
    """Someone added a key to the store and scheduled it themselves: the phase's name stays
    keys-pending, and the next run said "(no change since the last run)" without naming the
    key (its compact plan lists no key)."""
    seeded = seed_one(emulator, type="AWS_CLOUDHSM", keys=3, plain=1, other=1)
    store_id = seeded["stores"][0]["id"]
    assert ksdelete(emulator, store_id, *RUN).exit_code == 3
    emulator.advance(DAY)
    new = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=new["KeyId"], PendingWindowInDays=7)
    seen = ksdelete(emulator, store_id, *RUN)
    assert seen.exit_code == 3, seen.stderr
    assert "no change since the last run" not in seen.stdout, seen.stdout
    assert new["KeyId"] in seen.stdout + seen.stderr, seen.stdout + seen.stderr
    emulator.advance(DAY)
    again = ksdelete(emulator, store_id, *RUN)  # said once: the day after is quiet again
    assert "no change since the last run" in again.stdout, again.stdout
    assert new["KeyId"] not in again.stdout + again.stderr


def test_a_warning_that_went_away_and_came_back_is_said_again(emulator: Emulator) -> None:
    """The CloudHSM store disconnected (its key material will be orphaned), reconnected, then
    disconnected again in the same phase: the warning was in the last Report line, so the
    third day hid it."""
    seeded = seed_one(emulator, type="AWS_CLOUDHSM", state="DISCONNECTED", keys=2, plain=1,
                      other=1)
    store_id = seeded["stores"][0]["id"]
    args = (store_id, *RUN, "--allow-orphaned-key-material")
    orphaned = "stays orphaned in the cluster"
    first = ksdelete(emulator, *args)
    assert first.exit_code == 3, first.stderr
    assert orphaned in first.stderr
    emulator.advance(DAY)
    emulator.set_store_state(store_id, "CONNECTED")
    assert orphaned not in ksdelete(emulator, *args).stderr
    emulator.advance(DAY)
    emulator.set_store_state(store_id, "DISCONNECTED")
    back = ksdelete(emulator, *args)
    assert orphaned in back.stderr, back.stderr


def test_a_waiver_that_comes_into_force_later_is_shown_once(emulator: Emulator) -> None:
    """--on-use ignore waives the watch only once keys are pending: the run that scheduled
    them did not list that waiver, and every later run in the phase hid it as said before."""
    first, second, third = _waiting_day(emulator, 3)
    assert "waived: no_use_while_pending" not in first.stdout
    assert "waived: no_use_while_pending" in second.stdout, second.stdout
    assert "waived" not in third.stdout, third.stdout


def test_a_store_refused_every_day_adds_no_report_line_per_day(emulator: Emulator,
                                                               tmp_path: Any) -> None:
    """A refusal can last weeks (cron keeps running): each run wrote a Report line, now with
    every key ID; a line is written only when what it says changed."""
    import json
    import os

    seeded = seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=3, plain=1, other=1)
    args = (seeded["stores"][0]["id"], *RUN, "--expect-keys", "5")
    for _ in range(3):
        run = ksdelete(emulator, *args)
        assert run.exit_code == 4, run.stderr
        assert "expected_key_count" in run.stdout + run.stderr  # said every time: refused
        emulator.advance(DAY)
    journal = tmp_path / "state" / "ksdelete" / "journal.jsonl"
    assert os.environ["XDG_STATE_HOME"] == str(tmp_path / "state")
    reports = [e for e in map(json.loads, journal.read_text().splitlines())
               if e.get("operation") == "Report"]
    assert len(reports) == 1, reports


def test_a_plan_that_deletes_the_store_lists_its_steps(emulator: Emulator) -> None:
    """The compact plan is for runs that only wait. A plan that disconnects and deletes the
    store (no key left) acts on no key, and was shown as "next: DisconnectCustomKeyStore
    (then 3 more step(s))": the irreversible DeleteCustomKeyStore was not in the plan, also
    when a person confirms it at the prompt with plain output (--debug, TERM=dumb, 2>file)."""
    emulator.configure(disconnect_seconds=0)
    seeded = seed_one(emulator, type="EXTERNAL_KEY_STORE", keys=0, plain=1, other=1)
    run = ksdelete(emulator, seeded["stores"][0]["id"], *RUN)
    assert run.exit_code == 0, run.stderr
    plan = run.stderr.split("plan: done", 1)[0]
    assert "DeleteCustomKeyStore" in plan, plan
