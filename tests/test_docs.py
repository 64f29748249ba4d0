"""The README's CLI reference and the man page are generated from the CLI; they must never go
stale."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ksdelete.cli import cli
from ksdelete.manpage import render as render_man_page

README = Path(__file__).resolve().parent.parent / "README.md"
MAN_PAGE = README.parent / "docs" / "ksdelete.1"
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


def test_readme_cli_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    fresh = f"{START}\n{render_reference()}{END}"
    if os.environ.get("KSDELETE_UPDATE_DOCS"):
        text = pattern.sub(lambda _: fresh, text)
        README.write_text(text, encoding="utf-8")
    assert pattern.search(text), "README lacks the CLI reference markers"
    assert fresh in text, "README CLI reference is stale: KSDELETE_UPDATE_DOCS=1 pytest " \
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
