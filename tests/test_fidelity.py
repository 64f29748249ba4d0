"""The moto-suite check's own logic: the divergence list, classification, sdist handling.

The check itself (fidelity/run_moto_suite.py) runs in CI after pytest; these tests need no network.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fidelity import run_moto_suite as suite_check
from fidelity.run_moto_suite import Divergence, SetupError, Suite, classify, load_suites


def _suite(*divergences: Divergence) -> Suite:
    return Suite(
        service="kms",
        title="KMS",
        tests="tests/test_kms",
        install="ksdelete.emulator.models:install",
        backends="moto.kms.models:kms_backends",
        divergences=divergences,
    )


def _entry(test: str, fails_with: str = "key ARN") -> Divergence:
    return Divergence(
        test=f"tests/test_kms/test_kms.py::{test}",
        fails_with=fails_with,
        aws="The Amazon Resource Name (key ARN) of the KMS key.",
        url="https://docs.aws.amazon.com/kms/latest/APIReference/API_X.html",
        note="n",
    )


def test_the_checked_in_list_is_well_formed() -> None:
    suites = load_suites()
    kms = suites["kms"]
    assert kms.tests == "tests/test_kms"
    assert kms.divergences, "no divergences: then delete the comment about them too"
    assert callable(suite_check._resolve(kms.install))
    assert suite_check._resolve(kms.backends) is not None
    for entry in kms.divergences:
        assert entry.url.startswith("https://docs.aws.amazon.com/"), entry.test
        assert entry.aws.endswith("."), f"{entry.test}: quote whole sentences"


def test_classify_every_outcome() -> None:
    listed = _entry("test_listed")
    drifted = _entry("test_fails_differently")
    fixed = _entry("test_now_passes")
    gone = _entry("test_removed")
    tally = classify(
        _suite(listed, drifted, fixed, gone),
        {
            "tests/test_kms/test_kms.py::test_ok": "passed",
            "tests/test_kms/test_kms.py::test_skip": "skipped",
            "tests/test_kms/test_kms.py::test_listed": "failed",
            "tests/test_kms/test_kms.py::test_fails_differently": "failed",
            "tests/test_kms/test_kms.py::test_now_passes": "passed",
            "tests/test_kms/test_kms.py::test_new_failure": "failed",
            "tests/test_other/test_x.py::test_y": "failed",  # another suite's
        },
        {
            "tests/test_kms/test_kms.py::test_listed": "E  got the key ARN",
            "tests/test_kms/test_kms.py::test_fails_differently": "E  KeyError",
            "tests/test_kms/test_kms.py::test_new_failure": "E  boom",
        },
    )
    assert (tally.passed, tally.skipped) == (1, 1)
    assert tally.expected == [listed]
    new_failure = "tests/test_kms/test_kms.py::test_new_failure"
    assert [nodeid for nodeid, _ in tally.unexpected] == [drifted.test, new_failure]
    assert "not with the recorded 'key ARN'" in tally.unexpected[0][1]
    assert tally.not_failing == [fixed]
    assert tally.missing == [gone]
    assert not tally.ok
    assert (tally.as_expected, tally.problems) == (2, 4)


def test_all_as_expected_is_ok() -> None:
    entry = _entry("test_listed")
    tally = classify(
        _suite(entry),
        {entry.test: "failed", "tests/test_kms/test_kms.py::test_ok": "passed"},
        {entry.test: "... key ARN ..."},
    )
    assert tally.ok and tally.as_expected == 2 and tally.problems == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "https://example.com/x", "must be AWS documentation"),
        ("test", "tests/test_s3/test_s3.py::test_x", "is not under tests/test_kms"),
        ("aws", "", "'aws' must be a non-empty string"),
    ],
)
def test_bad_entries_are_refused(tmp_path: Path, field: str, value: str, message: str) -> None:
    entry = {
        "test": "tests/test_kms/test_kms.py::test_x",
        "fails_with": "x",
        "aws": "A sentence.",
        "url": "https://docs.aws.amazon.com/kms/latest/APIReference/API_X.html",
        "note": "n",
        field: value,
    }
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in entry.items())
    path = tmp_path / "d.toml"
    path.write_text(
        '[kms]\ntests = "tests/test_kms"\ninstall = "a:b"\nbackends = "c:d"\n'
        f"[[kms.divergences]]\n{body}\n",
        encoding="utf-8",
    )
    with pytest.raises(SetupError, match=message):
        load_suites(path)


def test_a_cached_sdist_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = tmp_path / "moto-1.2.3.tar.gz"
    cached.write_bytes(b"cached")

    def no_pip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip must not run when the sdist is cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert suite_check.fetch_sdist("1.2.3", tmp_path) == cached


def test_a_failed_download_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "download"] and "moto==1.2.3" in cmd
        assert cmd[cmd.index("--no-binary") + 1] == ":all:"
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(SetupError, match="No matching distribution found"):
        suite_check.fetch_sdist("1.2.3", tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.tar.gz"))


def test_extract_takes_the_suite_and_moto_test_helpers_only(tmp_path: Path) -> None:
    sdist = tmp_path / "moto-1.2.3.tar.gz"
    names = [
        "pyproject.toml",
        "setup.cfg",
        "moto/__init__.py",
        "tests/__init__.py",
        "tests/conftest.py",
        "tests/markers.py",
        "tests/test_kms/__init__.py",
        "tests/test_kms/test_kms.py",
        "tests/test_s3/test_s3.py",
    ]
    with tarfile.open(sdist, "w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(f"moto-1.2.3/{name}")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"#"))
    root = suite_check.extract(sdist, "1.2.3", [_suite()], tmp_path / "out")
    got = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert got == [
        "pyproject.toml",
        "tests/__init__.py",
        "tests/conftest.py",
        "tests/markers.py",
        "tests/test_kms/__init__.py",
        "tests/test_kms/test_kms.py",
    ]
    other = Suite("cloudtrail", "CloudTrail", "tests/test_cloudtrail", "a:b", "c:d", ())
    with pytest.raises(SetupError, match="has no tests/test_cloudtrail"):
        suite_check.extract(sdist, "1.2.3", [other], tmp_path / "out2")


# ---- the emulator against answers recorded from real AWS (fidelity/run_recorded_aws.py) ----

def test_the_emulator_answers_as_recorded_from_aws(capsys: pytest.CaptureFixture[str]) -> None:
    """CreateKey/DescribeKey shapes and errors, tags, aliases, grants, schedule/cancel,
    disable/enable and key-state errors, against LocalStack's AWS-validated recordings: every
    difference is listed in fidelity/aws-recorded-divergences.toml with its reason."""
    from fidelity import run_recorded_aws

    code = run_recorded_aws.main([])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 problems" in out.splitlines()[-1]


def test_the_recorded_check_compares_member_by_member() -> None:
    from fidelity.run_recorded_aws import compare

    aws = {"Error": {"Code": "NotFoundException", "Message": "Invalid arn <region>"},
           "list": [1, 2], "enum": "Member must satisfy enum value set: [A, B]"}
    same = {"Error": {"Code": "NotFoundException", "Message": "Invalid arn <region>"},
            "list": [1, 2], "enum": "Member must satisfy enum value set: [B, A]"}
    assert list(compare(aws, same)) == []
    other = {"Error": {"Code": "NotFoundException"}, "list": [1], "extra": True,
             "enum": "Member must satisfy enum value set: [A]"}
    found = list(compare(aws, other))
    assert any(f.startswith("Error.Message: missing") for f in found)
    assert any(f.startswith("extra: extra") for f in found)
    assert any(f.startswith("list: 1 item(s), AWS 2") for f in found)
    assert any(f.startswith("enum: ") for f in found)


def test_a_listed_difference_that_no_longer_occurs_fails_the_check() -> None:
    from fidelity import run_recorded_aws as check

    recorded = check.load_recorded()
    stale = check.Divergence("TestKMS::test_create_key", "describe-key",
                             "CurrentKeyMaterialId", "fixed since")
    emulator, fresh = check.emulator_clients()
    try:
        outcome = check.run(fresh, {"snapshots": {
            k: v for k, v in recorded["snapshots"].items() if k.endswith("::test_create_key")},
            "validated": recorded["validated"]}, [stale])
    finally:
        emulator.stop()
    assert outcome.stale == [stale]
