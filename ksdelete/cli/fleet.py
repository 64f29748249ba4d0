"""`ksdelete fleet ...`: many stores across accounts and Regions from one fleet file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ksdelete.cli.group import cli


@cli.group()
def fleet() -> None:
    """Many custom key stores across accounts and Regions, from one reviewed fleet file.

    See docs/fleet.md for the file, the roles to create and a cron example.

    \b
    Example:
      ksdelete fleet validate fleet.yml
    """


OUTPUT = click.option("--output", "output", type=click.Choice(["text", "json"]),
                      default="text", show_default=True,
                      help="json: exactly one JSON object on stdout; messages stay on stderr.")


@fleet.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@OUTPUT
def validate(file: Path, output: str) -> None:
    """Check a fleet file offline: no AWS call, no credentials read.

    Prints the accounts (how each is reached), the targets by Region, the guards, the
    rollout, and whether the file is fit for changes: `fleet apply` would refuse it
    otherwise (guards.allowed_accounts must hold every account; no more targets than
    guards.max_targets). Exit 0 when valid and fit, 2 otherwise (one line on stderr says
    why, naming the file, the line and the key).

    \b
    Example:
      ksdelete fleet validate fleet.yml && ksdelete fleet plan fleet.yml
    """
    from ksdelete.cli.errors import Invocation, _emit
    from ksdelete.errors import ExitStatus
    from ksdelete.fleet import describe, spec
    from ksdelete.output import document
    from ksdelete.reporting import printable

    inv = Invocation("fleet validate", output=output, quiet=False, debug=False)

    def body(inv: Invocation) -> None:
        fleet_spec = spec.load(file)
        problem = describe.unfit(fleet_spec)
        code = ExitStatus.OK if problem is None else ExitStatus.USAGE
        if output == "json":
            doc = document("fleet validate", [], int(code),
                           error=problem.as_json() if problem is not None else None)
            doc["fleet_file"] = describe.as_json(fleet_spec, problem)
            _emit(json.dumps(doc), code)
        else:
            for line in describe.lines(fleet_spec, problem):
                _emit(printable(line), code)
        if problem is not None:
            click.echo(f"ksdelete: error: {problem}", err=True)
        sys.exit(int(code))

    inv.run(body)
