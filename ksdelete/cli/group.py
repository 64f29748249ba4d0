"""The `ksdelete` group: `delete` is its default command, and global options may come first."""

from __future__ import annotations

import difflib

import click

from ksdelete.cli.meta import show_version
from ksdelete.models import STORE_ID

# Options every AWS-facing command takes; accepted before the subcommand too, as the AWS
# CLI's habit has it (`ksdelete --region eu-west-1 status STORE`). True: takes a value.
GLOBAL_OPTIONS: dict[str, bool] = {
    "--region": True, "--profile": True, "--endpoint-url": True, "--output": True,
    "--journal": True, "--account-id": True, "--debug": False, "--quiet": False, "-q": False,
    "--no-cache": False, "--watch-budget": True, "--watch-log-group": True,
}


class DefaultGroup(click.Group):
    """A group whose default command is `delete`: `ksdelete cks-123 --dry-run` works.

    A first word that looks like a mistyped command (or `help`) is a usage error, never a
    STORE: `ksdelete cancle STORE --yes` must not delete STORE.
    """

    default_command = "delete"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:
            return super().parse_args(ctx, args)  # plain `ksdelete`: the help
        leading, rest = _split_leading_options(args)
        if rest and rest[0] in ("--help", "-h", "--version") and not leading:
            return super().parse_args(ctx, args)
        word = rest[0] if rest else None
        if word is not None and word in self.commands:
            return super().parse_args(ctx, [word, *leading, *rest[1:]])
        # The implicit `delete`: no STORE may be, or look like, a command name, wherever it
        # stands (`ksdelete --yes cancel STORE` must not delete STORE).
        for store in self._stores(rest):
            self._refuse_near_miss(ctx, store)
        return super().parse_args(ctx, [self.default_command, *leading, *rest])

    def _stores(self, args: list[str]) -> list[str]:
        """The positional words of a `delete` command line (not options, not their values)."""
        takes_value = {name for param in self.commands[self.default_command].params
                       if isinstance(param, click.Option) and not param.is_flag
                       for name in param.opts}
        words: list[str] = []
        skip = False
        for index, arg in enumerate(args):
            if skip:
                skip = False
            elif arg == "--":
                words.extend(args[index + 1:])
                break
            elif arg.startswith("-") and arg != "-":
                skip = arg in takes_value
            else:
                words.append(arg)
        return words

    def _refuse_near_miss(self, ctx: click.Context, word: str) -> None:
        if word == "help":
            raise click.UsageError("'help' is not a command; did you mean 'ksdelete --help'? "
                                   "To act on a store named 'help', use 'ksdelete delete help'",
                                   ctx)
        if STORE_ID.match(word):
            return
        if word in self.commands:
            raise click.UsageError(
                f"{word!r} is a command, but it comes after options: put the command first "
                f"('ksdelete {word} ...'). To act on a store named {word!r}, use "
                f"'ksdelete delete {word}'", ctx)
        close = difflib.get_close_matches(word.lower(), list(self.commands), n=1, cutoff=0.6)
        if close:
            raise click.UsageError(
                f"{word!r} is not a command; did you mean {close[0]!r}? To act on a store "
                f"named {word!r}, use 'ksdelete delete {word}'", ctx)


def _split_leading_options(args: list[str]) -> tuple[list[str], list[str]]:
    """Global options given before the subcommand, and everything from the subcommand on."""
    leading: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name = arg.split("=", 1)[0]
        if name not in GLOBAL_OPTIONS:
            break
        takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
        leading.extend(args[index:index + (2 if takes_value else 1)])
        index += 2 if takes_value else 1
    return leading, args[index:]


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=show_version, help="Show the versions of ksdelete, Python, boto3 and "
              "botocore, and exit.")
def cli() -> None:
    """Safely delete an AWS KMS custom key store.

    Runs the workflow AWS documents for DeleteCustomKeyStore: find every KMS key in the
    store, schedule their deletion, wait out the 7-30 day window, disconnect the store,
    delete it and verify it is gone. Each run re-reads AWS and moves as far as it can, so
    it can be called again (by hand or from cron) until the store is gone.

    `delete` is the default command:

    \b
      ksdelete cks-1234567890abcdef0 --dry-run
      ksdelete my-store-name --yes --output json
    """
