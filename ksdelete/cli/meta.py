"""What the CLI says about itself: its version line and its shell completion scripts.

Versions come from the installed distributions' metadata, so `ksdelete --version` does not
import boto3 (or anything else heavy) just to say which one is installed.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

import click
from click.shell_completion import get_completion_class

from ksdelete import __version__

PROG_NAME = "ksdelete"
COMPLETE_VAR = "_KSDELETE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def version_text() -> str:
    """`ksdelete 0.1.0 (Python 3.11.7, boto3 1.40.0, botocore 1.40.0)`."""
    return (f"{PROG_NAME} {__version__} (Python {platform.python_version()}, "
            f"boto3 {_installed('boto3')}, botocore {_installed('botocore')})")


def show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Callback of the eager `--version` flag."""
    if not value or ctx.resilient_parsing:
        return
    click.echo(version_text())
    ctx.exit()


def completion_script(cli: click.Command, shell: str) -> str:
    """The script click's completion machinery sources for `shell` (what
    `_KSDELETE_COMPLETE={shell}_source ksdelete` prints)."""
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - the command's Choice allows only SHELLS
        raise click.BadParameter(f"no completion for {shell!r}; use one of {', '.join(SHELLS)}")
    return cls(cli, {}, PROG_NAME, COMPLETE_VAR).source()
