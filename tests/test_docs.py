"""The CLI reference (docs/cli.md) and the man page are generated from the CLI; they must never
go stale. The README stays short and its links stay inside the repository."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.cli.manpage import render as render_man_page

README = Path(__file__).resolve().parent.parent / "README.md"
DOCS = README.parent / "docs"
CLI_REFERENCE = DOCS / "cli.md"
MAN_PAGE = DOCS / "ksdelete.1"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def render_reference() -> str:
    parts = []
    for args in [[], *[[name] for name in sorted(cli.commands)]]:
        result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=100,
                                    prog_name="ksdelete")
        assert result.exit_code == 0, result.output
        title = " ".join(["ksdelete", *args])
        parts.append(f"### `{title}`\n\n```text\n{result.stdout.rstrip()}\n```\n")
    return "\n".join(parts)


def test_cli_reference_is_current() -> None:
    text = CLI_REFERENCE.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    fresh = f"{START}\n{render_reference()}{END}"
    if os.environ.get("KSDELETE_UPDATE_DOCS"):
        text = pattern.sub(lambda _: fresh, text)
        CLI_REFERENCE.write_text(text, encoding="utf-8")
    assert pattern.search(text), "docs/cli.md lacks the CLI reference markers"
    assert fresh in text, "docs/cli.md is stale: KSDELETE_UPDATE_DOCS=1 pytest " \
        "tests/test_docs.py"


def test_man_page_is_current() -> None:
    """docs/ksdelete.1 is what `ksdelete man` prints (the generator walks the command tree)."""
    fresh = render_man_page(cli)
    if os.environ.get("KSDELETE_UPDATE_DOCS"):
        MAN_PAGE.write_text(fresh, encoding="utf-8")
    assert MAN_PAGE.read_text(encoding="utf-8") == fresh, "docs/ksdelete.1 is stale: " \
        "KSDELETE_UPDATE_DOCS=1 pytest tests/test_docs.py"
    result = CliRunner().invoke(cli, ["man"])
    assert result.exit_code == 0 and result.stdout == fresh


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_with_an_example(name: str) -> None:
    command = cli.commands[name]
    assert command.help, f"{name} has no help"
    if name not in ("demo",):
        assert "Example" in command.help, f"{name} --help has no example"


def test_every_option_is_documented() -> None:
    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("host",):
                assert param.help, f"{name} {param.opts} has no help"


def test_quick_start_has_exactly_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert [b.strip().count("\n") for b in blocks] == [0, 0]
    assert "ksdelete demo" in blocks[0] and "pytest" in blocks[1]


def test_readme_is_short() -> None:
    """The README leads; the reference lives in docs/ (issue 19: at most 300 lines)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move reference text to docs/"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_links_stay_inside_the_repository_and_resolve(doc: Path) -> None:
    """Every relative link of the README and docs/ names a file of this repository that exists;
    no document cites a file outside it."""
    root = README.parent.resolve()
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{doc.name} cites a file outside the repository"
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(root), f"{doc.name}: {target} points outside the repository"
        assert path.exists(), f"{doc.name}: {target} does not exist"


def test_the_json_example_is_valid() -> None:
    """docs/json.md's example is a real document: the published schema accepts it."""
    from cli.helpers import validated

    text = (DOCS / "json.md").read_text(encoding="utf-8")
    example = re.search(r"```json\n(.*?)```", text, re.S)
    assert example, "docs/json.md has no JSON example"
    validated(example.group(1))


def test_exit_codes_come_from_one_table() -> None:
    """Every command's --help, the man page and the README say what ksdelete.exitcodes says
    (issue 19: they disagreed)."""
    from ksdelete import exitcodes
    from ksdelete.errors import ExitStatus

    assert set(exitcodes.GENERAL) == set(ExitStatus)
    for name, codes in exitcodes.COMMANDS.items():
        group, _, sub = name.partition(" ")  # "fleet plan": a command of the fleet group
        assert group in cli.commands, name
        text = CliRunner().invoke(cli, [*name.split(), "--help"], terminal_width=200).stdout
        assert sub in text or not sub, name
        assert text.count("Exit codes:") == 1, name
        for code, meaning in codes.items():
            assert f"{int(code):>3}  {meaning}" in text, (name, code)
    man = render_man_page(cli)
    for code, meaning in exitcodes.GENERAL.items():
        assert f"\\fB{int(code)}\\fR" in man and meaning.split(" ", 1)[0] in man
    readme = README.read_text(encoding="utf-8")
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| ([0-9][0-9 /]*) \|", table, re.M))
    listed = {int(c) for row in rows for c in row.split("/")}
    assert listed == {int(c) for c in ExitStatus}, listed
