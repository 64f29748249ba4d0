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


@fleet.command()
@click.option("--regions", required=True, metavar="R1,R2",
              help="The Regions to look in, separated by commas.")
@click.option("--fleet", "fleet_file", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Look in every account of this fleet file, reached as it "
                                   "says (its stores may be left out); default: the current "
                                   "credentials' account.")
@click.option("--output-file", type=click.Path(dir_okay=False, path_type=Path), metavar="OUT",
              help="Write the fleet file here (default: stdout).")
@click.option("--profile", help="Without --fleet: AWS profile from ~/.aws/config (default: "
                                "AWS_PROFILE).")
@click.option("--endpoint-url", metavar="URL",
              help="KMS endpoint (e.g. the emulator). AWS_ENDPOINT_URL_KMS also works.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@click.option("--debug", is_flag=True, help="Log AWS calls and retries; show tracebacks.")
def inventory(regions: str, fleet_file: Path | None, output_file: Path | None,
              profile: str | None, endpoint_url: str | None, quiet: bool,
              debug: bool) -> None:
    """Write a fleet file of the custom key stores that exist, every store commented out.

    Read-only. In each account (the current credentials', or every account of --fleet
    FILE) and each Region of --regions: DescribeCustomKeyStores, then a key count per store
    (the same membership scan as a run: one ListKeys chain per account and Region). The file
    lists each store commented out, with its type, state and key count in a comment, and
    guards.allowed_accounts holds the accounts seen: uncomment what is to be deleted, then
    `ksdelete fleet validate`. Exit 0 when everything was read; an account or Region that
    could not be read is named in the file and on stderr (exit 1, or 4 when an account's
    credentials are for another account).

    \b
    Example:
      ksdelete fleet inventory --regions us-east-1,eu-west-1 --output-file fleet.yml
    """
    from datetime import UTC, datetime

    from ksdelete.cli.options import _setup_logging
    from ksdelete.errors import ExitStatus, KsdeleteError, UsageError
    from ksdelete.fleet import inventory as inv
    from ksdelete.fleet import spec
    from ksdelete.sessions import SessionFactory

    _setup_logging(debug)
    try:
        wanted = inv.parse_regions(regions)
        fleet_spec = spec.load(fleet_file, selection=False) if fleet_file else None
        if fleet_spec is not None and profile is not None:
            raise UsageError("--profile goes without --fleet", where="--profile",
                             hint="The fleet file says how each account is reached "
                                  "(hub.profile, and each account's role or profile)")
        note = (lambda text: None) if quiet else (
            lambda text: click.echo(f"ksdelete: {text}", err=True))
        if fleet_spec is None:
            reads = [inv.read_account(inv.Reach(profile=profile), wanted, hub_profile=None,
                                      endpoint_url=endpoint_url, sessions=SessionFactory())]
            if reads[0].error is not None:
                raise reads[0].error  # the credentials did not answer: nothing to write
        else:
            reads = inv.read_accounts(fleet_spec, wanted, endpoint_url=endpoint_url,
                                      note=note)
        text = inv.render(reads, wanted, now=datetime.now(UTC), fleet=fleet_spec)
        if output_file is not None:
            try:
                output_file.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write the fleet file: {exc.strerror or exc}",
                                 where=str(output_file), hint="Check the path") from exc
        else:
            click.echo(text, nl=False)
        if not quiet:
            click.echo(inv.summary(reads, wanted) + (f" ({output_file})" if output_file
                                                     else ""), err=True)
        sys.exit(int(inv.exit_status(reads)))
    except KsdeleteError as exc:
        if debug:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        click.echo(f"ksdelete: {exc.label}: {exc}", err=True)
        sys.exit(int(exc.exit_status))
    except KeyboardInterrupt:
        click.echo("ksdelete: stopped by Ctrl-C; nothing was changed", err=True)
        sys.exit(int(ExitStatus.INTERRUPTED))
