"""Run moto's own test suite for a service against the emulator; compare with recorded divergences.

    .venv/bin/python fidelity/run_moto_suite.py [SERVICE ...] [--cache-dir DIR] [--show-pytest]

For the moto version installed in this environment (``importlib.metadata.version("moto")``, the one
pyproject pins), ``pip download`` fetches moto's sdist from the configured package index into the
cache directory (default ``.cache/moto-suite/`` in the repository, reused when present), the
service's tests and moto's shared test helpers are extracted from it, and pytest runs them in this
process with the emulator's backend installed in place of moto's (``mock_aws`` then serves the
emulator). Each outcome is compared with ``fidelity/moto-divergences.toml``, one table per service:

* a test that passes is fine;
* a test that fails is an *expected divergence* only if it is listed and its failure text contains
  the entry's ``fails_with``; any other failure (or collection error) is *unexpected*;
* a listed test that no longer fails, or is no longer collected, also fails the check: every entry
  quotes AWS's documentation against moto's test, so a listed test passing means the emulator now
  answers like moto there (a fidelity regression), or this moto version changed the test (then
  delete the entry). The list can only shrink on purpose.

Exit status: 0 when every outcome matched, 1 otherwise, 2 when the check could not run (download,
extraction or configuration failed; never skipped silently). The last two lines are a tally per
service and ``fidelity: N passed, M failed`` (N = outcomes as expected, M = the rest).

Adding a service (e.g. ``cloudtrail`` once the emulator serves it) is one table in the TOML file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

HERE = Path(__file__).resolve().parent
DIVERGENCES = HERE / "moto-divergences.toml"
DEFAULT_CACHE = HERE.parent / ".cache" / "moto-suite"
DOCS_PREFIX = "https://docs.aws.amazon.com/"
# Environment that could send moto's tests elsewhere than the in-process mock (real AWS, a
# server) or change their defaults; removed before moto is imported.
_ENV_PREFIXES = ("AWS_", "MOTO_", "TEST_SERVER_MODE", "PYTEST_ADDOPTS")


class SetupError(Exception):
    """The check could not run at all (exit 2)."""


@dataclass(frozen=True)
class Divergence:
    test: str
    fails_with: str
    aws: str
    url: str
    note: str


@dataclass(frozen=True)
class Suite:
    service: str
    title: str
    tests: str
    install: str
    backends: str
    divergences: tuple[Divergence, ...]

    def owns(self, nodeid: str) -> bool:
        return nodeid.startswith(self.tests.rstrip("/") + "/")


@dataclass
class Tally:
    suite: Suite
    passed: int = 0
    skipped: int = 0
    expected: list[Divergence] = field(default_factory=list)
    unexpected: list[tuple[str, str]] = field(default_factory=list)
    not_failing: list[Divergence] = field(default_factory=list)
    missing: list[Divergence] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unexpected or self.not_failing or self.missing)

    @property
    def as_expected(self) -> int:
        return self.passed + len(self.expected)

    @property
    def problems(self) -> int:
        return len(self.unexpected) + len(self.not_failing) + len(self.missing)


# ---------------------------------------------------------------------------- configuration
def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SetupError(f"{where}: '{key}' must be a non-empty string")
    return value


def load_suites(path: Path = DIVERGENCES) -> dict[str, Suite]:
    """Parse the divergence file; every entry must name a test and quote AWS's docs with a URL."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SetupError(f"cannot read {path}: {exc}") from exc
    suites: dict[str, Suite] = {}
    for service, table in doc.items():
        if not isinstance(table, dict):
            raise SetupError(f"{path}: '{service}' must be a table")
        tests = _text(table, "tests", service)
        entries: list[Divergence] = []
        seen: set[str] = set()
        for i, raw in enumerate(table.get("divergences", [])):
            where = f"{service}.divergences[{i}]"
            entry = Divergence(
                test=_text(raw, "test", where),
                fails_with=_text(raw, "fails_with", where),
                aws=_text(raw, "aws", where),
                url=_text(raw, "url", where),
                note=_text(raw, "note", where),
            )
            if not entry.url.startswith(DOCS_PREFIX):
                raise SetupError(f"{where}: url must be AWS documentation ({DOCS_PREFIX}...)")
            if not entry.test.startswith(tests.rstrip("/") + "/"):
                raise SetupError(f"{where}: {entry.test} is not under {tests}")
            if entry.test in seen:
                raise SetupError(f"{where}: {entry.test} is listed twice")
            seen.add(entry.test)
            entries.append(entry)
        suites[service] = Suite(
            service=service,
            title=str(table.get("title", service.upper())),
            tests=tests,
            install=_text(table, "install", service),
            backends=_text(table, "backends", service),
            divergences=tuple(entries),
        )
    return suites


# ---------------------------------------------------------------------------- classification
def classify(suite: Suite, outcomes: Mapping[str, str], texts: Mapping[str, str]) -> Tally:
    """Compare pytest outcomes (``passed``/``failed``/``skipped`` by node id) with the list."""
    tally = Tally(suite)
    listed = {d.test: d for d in suite.divergences}
    for nodeid, outcome in sorted(outcomes.items()):
        if not suite.owns(nodeid):
            continue
        entry = listed.get(nodeid)
        text = texts.get(nodeid, "")
        if outcome == "failed":
            if entry is None:
                tally.unexpected.append((nodeid, text))
            elif entry.fails_with in text:
                tally.expected.append(entry)
            else:
                why = f"fails, but not with the recorded {entry.fails_with!r}:\n{text}"
                tally.unexpected.append((nodeid, why))
        elif entry is not None:
            tally.not_failing.append(entry)
        elif outcome == "skipped":
            tally.skipped += 1
        else:
            tally.passed += 1
    tally.missing = [d for d in suite.divergences if d.test not in outcomes]
    return tally


# ---------------------------------------------------------------------------- sdist
def fetch_sdist(version: str, cache_dir: Path) -> Path:
    """moto's sdist for ``version`` from the configured index (cached); SetupError if it fails."""
    target = cache_dir / f"moto-{version}.tar.gz"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "--dest", tmp, f"moto=={version}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = Path(tmp) / target.name
        if proc.returncode != 0 or not got.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise SetupError(
                f"could not download moto {version}'s sdist with pip "
                f"(exit {proc.returncode}):\n{tail}"
            )
        os.replace(got, target)  # only a complete file ever lands in the cache
    return target


def _wanted(name: str, prefix: str, suites: Sequence[Suite]) -> bool:
    if not name.startswith(prefix):
        return False
    rel = PurePosixPath(name[len(prefix):])
    if rel.is_absolute() or ".." in rel.parts:
        return False
    if str(rel) == "pyproject.toml":  # moto's pytest configuration (markers, warnings)
        return True
    if len(rel.parts) == 2 and rel.parts[0] == "tests":  # shared helpers: __init__, conftest...
        return True
    return any(str(rel).startswith(s.tests.rstrip("/") + "/") for s in suites)


def extract(sdist: Path, version: str, suites: Sequence[Suite], dest: Path) -> Path:
    """Extract the suites' test folders, tests/*.py helpers and pyproject.toml; return the root."""
    prefix = f"moto-{version}/"
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = [
                m for m in tar.getmembers() if m.isfile() and _wanted(m.name, prefix, suites)
            ]
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
                tar.extractall(dest, members=members, filter="data")
            else:  # member names were checked by _wanted
                tar.extractall(dest, members=members)
    except (OSError, tarfile.TarError) as exc:
        raise SetupError(f"cannot extract {sdist}: {exc} (delete it to download again)") from exc
    root = dest / prefix.rstrip("/")
    for suite in suites:
        if not (root / suite.tests).is_dir():
            raise SetupError(f"moto {version}'s sdist has no {suite.tests}")
    return root


# ---------------------------------------------------------------------------- running
class _Collector:
    """pytest plugin: the outcome of every test (failed wins over passed) and its failure text."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.texts: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        nodeid = str(report.nodeid)
        if report.failed:
            self.outcomes[nodeid] = "failed"
            self.texts[nodeid] = (self.texts.get(nodeid, "") + report.longreprtext).strip()
        elif self.outcomes.get(nodeid) != "failed" and (report.when == "call" or report.skipped):
            self.outcomes[nodeid] = "skipped" if report.skipped else "passed"

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            nodeid = str(report.nodeid) or "<collection>"
            self.outcomes[nodeid] = "failed"
            self.texts[nodeid] = report.longreprtext


def _resolve(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SetupError(f"cannot resolve {spec}: {exc}") from exc


@contextlib.contextmanager
def _isolated(root: Path) -> Iterator[None]:
    """No real credentials, endpoints or moto switches reach the tests; cwd is the sdist root."""
    saved, cwd = dict(os.environ), os.getcwd()
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(root / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(root / "no-aws-credentials"),
    )
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def run_suites(root: Path, suites: Sequence[Suite], show_pytest: bool) -> _Collector:
    import pytest

    collector = _Collector()
    args = [
        *(str(root / s.tests) for s in suites),
        "-c", str(root / "pyproject.toml"), "--rootdir", str(root),
        "-o", "addopts=", "-p", "no:cacheprovider", "--tb=short", "-q", "--color=no",
    ]
    with _isolated(root):
        for suite in suites:
            _resolve(suite.install)()
            backend = getattr(_resolve(suite.backends), "backend", None)
            if not getattr(backend, "__module__", "").startswith("ksdelete."):
                raise SetupError(f"{suite.install} did not replace {suite.backends}'s backend")
        quiet = contextlib.redirect_stdout(io.StringIO())
        with contextlib.nullcontext() if show_pytest else quiet:
            code = pytest.main(args, plugins=[collector])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise SetupError(f"pytest could not run moto's tests (exit {int(code)})")
    return collector


# ---------------------------------------------------------------------------- report
def report(tally: Tally, version: str, seconds: float) -> list[str]:
    lines = [f"  expected divergence: {entry.test}" for entry in tally.expected]
    for nodeid, text in tally.unexpected:
        lines.append(f"UNEXPECTED FAILURE: {nodeid}")
        lines.extend("    " + line for line in text.splitlines())
    lines.extend(
        f"DIVERGENCE NO LONGER FAILS: {entry.test}\n    The emulator now answers as moto's "
        f"test expects. AWS documents otherwise: \"{entry.aws}\" ({entry.url}).\n    Fix the "
        "emulator, or, if this moto version changed the test, delete the entry."
        for entry in tally.not_failing
    )
    lines.extend(
        f"DIVERGENCE NOT COLLECTED: {entry.test} (renamed or removed in this moto version?)"
        for entry in tally.missing
    )
    skipped = f", {tally.skipped} skipped" if tally.skipped else ""
    lines.append(
        f"moto {tally.suite.title} suite (moto {version}): {tally.passed} passed, "
        f"{len(tally.expected)} expected divergences, {len(tally.unexpected)} unexpected "
        f"failures, {len(tally.not_failing) + len(tally.missing)} stale divergences{skipped} "
        f"in {seconds:.1f}s"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("services", nargs="*", help="services to check (default: every table)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="where moto's sdist is kept (default: .cache/moto-suite)")
    parser.add_argument("--show-pytest", action="store_true", help="show pytest's own output")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        every = load_suites()
        unknown = sorted(set(args.services) - set(every))
        if unknown:
            raise SetupError(f"no table for {', '.join(unknown)} in {DIVERGENCES.name}")
        suites = [every[name] for name in (args.services or sorted(every))]
        version = importlib.metadata.version("moto")
        sdist = fetch_sdist(version, args.cache_dir)
        with tempfile.TemporaryDirectory(prefix="moto-suite-") as tmp:
            root = extract(sdist, version, suites, Path(tmp))
            collector = run_suites(root, suites, args.show_pytest)
    except SetupError as exc:
        print(f"moto suite check could not run: {exc}", file=sys.stderr, flush=True)
        print("fidelity: 0 passed, 1 failed", flush=True)
        return 2
    seconds = time.monotonic() - started
    tallies = [classify(s, collector.outcomes, collector.texts) for s in suites]
    stray = [n for n in collector.outcomes if not any(s.owns(n) for s in suites)]
    for tally in tallies:
        print("\n".join(report(tally, version, seconds)))
    for nodeid in stray:
        print(f"UNEXPECTED FAILURE: {nodeid}\n    {collector.texts.get(nodeid, '')}")
    good = sum(t.as_expected for t in tallies)
    bad = sum(t.problems for t in tallies) + len(stray)
    skipped = sum(t.skipped for t in tallies)
    print(f"fidelity: {good} passed, {bad} failed" + (f", {skipped} skipped" if skipped else ""))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
