"""The command line: parse, confirm, wire objects, map errors to exit codes. Never imports boto3.

ksdelete/cli/: group.py (the `ksdelete` group), options.py (shared options), confirm.py (the
prompt), commands.py (the store commands), tools.py (the other commands), errors.py (exit
codes and the entry point `main`), fleet.py (the `fleet` group).
"""

from __future__ import annotations

from ksdelete.cli import commands, fleet, fleet_run, tools
from ksdelete.cli.errors import Invocation, main
from ksdelete.cli.group import cli

__all__ = ["Invocation", "cli", "commands", "fleet", "fleet_run", "main", "tools"]
