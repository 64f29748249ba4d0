"""ksdelete(1): a roff manual page generated from the click command tree.

Name, synopsis and description come from the group's help; each command contributes its
usage, help and options (click's own help records, so defaults and choices read as in
`--help`); the help texts' "Example:" blocks become EXAMPLES; EXIT STATUS comes from
`ExitStatus`. `ksdelete man` prints it; docs/ksdelete.1 is this output, kept current by a test.
"""

from __future__ import annotations

import inspect
import re

import click

from ksdelete import __version__, exitcodes
from ksdelete.errors import ExitStatus
from ksdelete.output import SEVERITY

# One table for the man page, every command's --help and the README: ksdelete.exitcodes.
EXIT_STATUS = exitcodes.GENERAL

ENVIRONMENT = [
    ("AWS_PROFILE, AWS_REGION",
     "the AWS profile and Region when --profile and --region are not given; boto3 reads the "
     "rest of its usual variables and files (credentials, config) as always."),
    ("AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_KMS",
     "a KMS endpoint other than AWS's, such as the emulator (like --endpoint-url)."),
    ("XDG_STATE_HOME", "where the journal lives (default ~/.local/state); an absolute path "
     "(a relative one is a usage error)."),
    ("NO_COLOR", "no colours in the terminal view."),
    ("_KSDELETE_COMPLETE", "set by the completion scripts (see the completion command)."),
]

FILES = [
    ("$XDG_STATE_HOME/ksdelete/journal.jsonl",
     "the append-only audit journal: one JSON line before and after every mutating AWS call, "
     "and each operator decision (mode 0600; --journal overrides)."),
]


def escape(text: str) -> str:
    """Roff-safe text: backslashes, minus signs (so options copy and paste), and a leading
    period or apostrophe, which roff would read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.M)


def _option_term(names: str) -> str:
    """`-q, --quiet` -> bold names; `--output [text|json]` -> the metavar in italics."""
    words = []
    for word in names.split(" "):
        if word.startswith("-"):
            comma = "," if word.endswith(",") else ""
            words.append(f"\\fB{escape(word.rstrip(','))}\\fR{comma}")
        elif word == "/":
            words.append(word)
        else:
            words.append(f"\\fI{escape(word)}\\fR")
    return " ".join(words)


def _paragraphs(command: click.Command) -> list[tuple[bool, list[str]]]:
    """The help text as (verbatim, lines) paragraphs; click's `\\b` marks a verbatim one."""
    text = inspect.cleandoc(command.help or "").split("\f", 1)[0]
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        verbatim = bool(lines) and lines[0].strip() == "\b"
        paragraphs.append((verbatim, lines[1:] if verbatim else lines))
    return paragraphs


def _is_example(verbatim: bool, lines: list[str]) -> bool:
    return verbatim and bool(lines) and lines[0].strip().rstrip(":") in ("Example", "Examples")


def _render_paragraph(verbatim: bool, lines: list[str]) -> list[str]:
    if verbatim:
        return [".PP", ".nf", *[escape(line) for line in lines], ".fi"]
    return [".PP", escape(" ".join(line.strip() for line in lines))]


def _options(ctx: click.Context, *, skip_help: bool) -> list[str]:
    out = []
    help_option = ctx.command.get_help_option(ctx)
    for param in ctx.command.get_params(ctx):
        if not isinstance(param, click.Option) or (skip_help and param is help_option):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        out += [".TP", _option_term(names), escape(help_text or "")]
    return out


def _usage(ctx: click.Context) -> str:
    pieces = " ".join(ctx.command.collect_usage_pieces(ctx))
    words = [f"\\fI{escape(w)}\\fR" if w.isupper() or w.endswith("...") else escape(w)
             for w in pieces.split(" ")]
    return f"\\fB{escape(ctx.command_path)}\\fR " + " ".join(words)


def render(cli: click.Group, *, prog_name: str = "ksdelete", version: str = __version__) -> str:
    root = click.Context(cli, info_name=prog_name, **cli.context_settings)
    commands = [(name, cli.commands[name]) for name in cli.list_commands(root)]
    contexts = {name: click.Context(cmd, info_name=name, parent=root) for name, cmd in commands}
    root_paragraphs = _paragraphs(cli)
    title = " ".join(line.strip() for line in root_paragraphs[0][1]).rstrip(".")

    out = [
        f'.\\" {prog_name}(1): generated from the CLI by ksdelete/cli/manpage.py; do not edit.',
        '.\\" Regenerate: KSDELETE_UPDATE_DOCS=1 pytest tests/test_docs.py',
        f'.TH {prog_name.upper()} 1 "" "{prog_name} {version}" "User Commands"',
        ".nh",  # no hyphenation: options and defaults stay whole
        ".ad l",  # left-aligned, as --help prints them
        ".SH NAME",
        f"{prog_name} \\- {escape(title[:1].lower() + title[1:])}",
        ".SH SYNOPSIS",
    ]
    default = getattr(cli, "default_command", None)
    if default in contexts:
        delete_pieces = " ".join(contexts[default].command.collect_usage_pieces(
            contexts[default]))
        out += [f"\\fB{prog_name}\\fR {escape(delete_pieces)}", ".br"]
    for name, _ in commands:
        out += [_usage(contexts[name]), ".br"]
    out.pop()  # no break after the last line

    out.append(".SH DESCRIPTION")
    for verbatim, lines in root_paragraphs[1:]:
        out += _render_paragraph(verbatim, lines)

    out += [".SH OPTIONS", *_options(root, skip_help=False)]

    out.append(".SH COMMANDS")
    examples: list[str] = []
    for name, command in commands:
        ctx = contexts[name]
        out += [f".SS {prog_name} {name}", ".PP", _usage(ctx)]
        for verbatim, lines in _paragraphs(command):
            if _is_example(verbatim, lines):
                examples += [".PP", ".nf", *[escape(line.strip()) for line in lines[1:]], ".fi"]
            else:
                out += _render_paragraph(verbatim, lines)
        options = _options(ctx, skip_help=True)
        if options:
            out += [".PP", "Options:", *options]

    out.append(".SH EXIT STATUS")
    for status in ExitStatus:
        out += [".TP", f"\\fB{int(status)}\\fR", escape(EXIT_STATUS[status])]
    order = ", ".join(str(int(status)) for status in SEVERITY)
    out += [".PP", f"With several stores the exit status is the most severe ({order} in that "
            "order)."]

    out += [".SH ENVIRONMENT"]
    for name, text in ENVIRONMENT:
        out += [".TP", f"\\fB{escape(name)}\\fR", escape(text)]
    out += [".SH FILES"]
    for name, text in FILES:
        out += [".TP", f"\\fI{escape(name)}\\fR", escape(text)]
    out += [".SH EXAMPLES", *examples]
    out += [".SH SEE ALSO",
            escape("ksdelete's docs/ folder: operations.md (runbooks, cron), safety.md (gates, "
                   "IAM permissions), json.md (JSON output), cli.md (CLI reference); "
                   "AWS KMS Developer Guide, \"Deleting a custom key store\".")]
    return "\n".join(out) + "\n"
