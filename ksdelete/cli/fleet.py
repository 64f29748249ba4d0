"""`ksdelete fleet ...`: many stores across accounts and Regions from one fleet file."""

from __future__ import annotations

from ksdelete.cli.group import cli


@cli.group()
def fleet() -> None:
    """Many custom key stores across accounts and Regions, from one reviewed fleet file.

    See docs/fleet.md for the file, the roles to create and a cron example.

    \b
    Example:
      ksdelete fleet validate fleet.yml
    """
