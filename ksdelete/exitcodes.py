"""What each exit code means for each command: the one table that every command's --help
section, the man page's EXIT STATUS and docs/cli.md are generated from (a test checks the
README's table against it)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from ksdelete.errors import ExitStatus

OK, ERROR, USAGE, PENDING, REFUSED = (ExitStatus.OK, ExitStatus.ERROR, ExitStatus.USAGE,
                                      ExitStatus.PENDING, ExitStatus.REFUSED)
STOPPED: dict[ExitStatus, str] = {
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C); the summary says what was done",
    ExitStatus.TERMINATED: "terminated (SIGTERM); stopped as cleanly as Ctrl-C",
}
LOCK = "another run holds the store's lock past --max-wait"

# The meaning of every code, for any command (the man page's EXIT STATUS, the README).
GENERAL: dict[ExitStatus, str] = {
    OK: "done: the store is deleted (with --dry-run: the plan was computed)",
    ERROR: "error: AWS or an unexpected failure after retries; a store that does not exist",
    USAGE: "usage: bad arguments, a change without --yes and no terminal, a plan file "
           "missing or edited",
    PENDING: f"pending: progress made or nothing to do yet; run again after resume_after "
             f"(also: {LOCK})",
    REFUSED: "refused by a safety check, or not confirmed; nothing was changed after the "
             "check",
    **STOPPED,
}

COMMANDS: dict[str, dict[ExitStatus, str]] = {
    "delete": {
        OK: "deleted (with --dry-run: planned; with --missing-ok: no such store)",
        ERROR: "error (AWS, after retries; a store that does not exist)",
        USAGE: "usage (bad arguments; a change without --yes and no terminal)",
        PENDING: f"pending: run again after resume_after (also: {LOCK})",
        REFUSED: "refused by a safety check, or not confirmed",
        **STOPPED,
    },
    "apply": {
        OK: "deleted (a store of the plan that no longer exists is done)",
        ERROR: "error (AWS, after retries)",
        USAGE: "usage (bad arguments; FILE missing, unreadable, not a plan, or edited)",
        PENDING: f"pending: run again after resume_after (also: {LOCK})",
        REFUSED: "refused: another account, Region or endpoint than the plan's, keys outside "
                 "it, or a safety check",
        **STOPPED,
    },
    "status": {
        OK: "deleted (with --missing-ok: no such store)",
        ERROR: "error, or no such store",
        USAGE: "usage",
        PENDING: "pending (keys in their waiting period, or a step still to run)",
        REFUSED: "refused: a run would be refused (the phase names the check)",
        **STOPPED,
    },
    "cancel": {
        OK: "every key that could be recovered was, and nothing went unchecked",
        ERROR: "a key is still pending deletion, cannot be described (possibly a pending key "
               "of the store) or could not be checked, or nothing could be recovered",
        USAGE: "usage (bad arguments; no STORE and no --plan; no --yes and no terminal)",
        REFUSED: "not confirmed, or a safety check (the account guard, a retargeted name, a "
                 "plan of another account or Region)",
        **STOPPED,
    },
    "report": {
        OK: "the store is gone (the report is complete as far as CloudTrail goes)",
        ERROR: "error, or nothing is known of the store",
        USAGE: "usage",
        PENDING: "the store still exists",
        REFUSED: "refused: the credentials are not for --account-id (nothing was read)",
        **STOPPED,
    },
    "probe": {
        OK: "the watch can be trusted here: it found the probe's failed call",
        ERROR: "error (AWS, after retries); the message says what the probe left behind",
        USAGE: "usage (bad arguments; no --yes and no terminal)",
        PENDING: "could not tell yet (CloudTrail was late): run it again with a longer "
                 "--max-wait",
        REFUSED: "the watch cannot be trusted here (the failed call stayed invisible), not "
                 "confirmed, or the credentials are not for --account-id (nothing created)",
        **STOPPED,
    },
    "fleet plan": {
        OK: "every target was planned (with --save-plan: the fleet plan was written)",
        ERROR: "a target's account or Region could not be reached (a role, a profile, AWS)",
        USAGE: "usage (the fleet file is invalid, --target matches nothing, a plan could "
               "not be saved)",
        REFUSED: "a target would be refused (its identity, a guard, a safety check)",
        **STOPPED,
    },
    "fleet apply": {
        OK: "every target is deleted",
        ERROR: "a target failed (its role could not be assumed, AWS after retries)",
        USAGE: "usage (the fleet file is invalid or not fit for changes; no --yes)",
        PENDING: "pending: the targets went as far as AWS allows now; run again",
        REFUSED: "a target was refused (identity, guard, safety check), skipped after a halt, "
                 "or the fleet's max_targets was exceeded (nothing changed)",
        **STOPPED,
    },
    "fleet status": {
        OK: "every target is deleted",
        ERROR: "a target could not be read, or its store does not exist",
        USAGE: "usage",
        PENDING: "a target is still pending",
        REFUSED: "a target's run would be refused",
        **STOPPED,
    },
    "fleet cancel": {
        OK: "every key that could be recovered was",
        ERROR: "a key is still pending deletion or could not be checked, or an account "
               "could not be reached",
        USAGE: "usage (the fleet file is invalid, --target matches nothing)",
        REFUSED: "a target's identity or a guard refused (nothing changed there)",
        **STOPPED,
    },
    "show-plan": {
        OK: "the plan is shown",
        USAGE: "usage (FILE missing, unreadable, not a plan, or edited)",
    },
}

F = TypeVar("F", bound=Callable[..., object])


def help_section(command: str) -> str:
    """The "Exit codes" paragraph of a command's --help (click's \\b keeps its lines)."""
    lines = [f"  {int(code):>3}  {text}" for code, text in COMMANDS[command].items()]
    return "\b\nExit codes:\n" + "\n".join(lines)


def documented(command: str) -> Callable[[F], F]:
    """Put the command's exit codes into its help, before its example."""
    def decorate(fn: F) -> F:
        # cleandoc first: Python 3.13 strips docstring indentation itself, older ones do not,
        # and the help must read the same on every Python.
        doc = inspect.cleandoc(fn.__doc__ or "")
        marker = "\n\b\nExample"
        section = help_section(command)
        at = doc.find(marker)
        fn.__doc__ = (doc[:at] + "\n\n" + section + "\n" + doc[at:]) if at >= 0 else \
            doc + "\n\n" + section + "\n"
        return fn
    return decorate
