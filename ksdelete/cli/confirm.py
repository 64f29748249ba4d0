"""The operator's confirmation: the prompt, and the refusal to change anything without one."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ksdelete.errors import UsageError
from ksdelete.models import Identity, Plan, Snapshot
from ksdelete.reporting import printable


def _confirmer(yes: bool, action: str, identity: Callable[[], Identity | None], *,
               quiet: bool = False) -> Callable[[Snapshot, Plan], bool]:
    def confirm(snap: Snapshot, plan: Plan) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to {action} without confirmation: there is no terminal",
                where=snap.store.id, hint="Pass --yes for unattended runs (after a --dry-run)",
            )
        store = snap.store
        who = identity()
        if quiet:  # --quiet showed no plan: nobody confirms what they have not seen
            from ksdelete.reporting import plan_lines

            for line in plan_lines(snap, plan):
                sys.stderr.write(printable(line) + "\n")
        place = f" in account {who.account}, {who.region}" if who else ""
        cancelled = list(plan.reconfirm)
        if cancelled:
            sys.stderr.write(printable(
                f"{len(cancelled)} key(s) were pending deletion and then cancelled by "
                f"someone: {', '.join(cancelled)}. Confirming schedules them again.") + "\n")
        sys.stderr.write(printable(f"Type the store ID ({store.id}) or name to {action}{place}: "))
        sys.stderr.flush()
        answer = sys.stdin.readline()  # Ctrl-C raises KeyboardInterrupt: exit 130
        if not answer:  # end of input (Ctrl-D): not confirmed
            sys.stderr.write("\n")
            return False
        typed = answer.strip()
        return typed != "" and typed in (store.id, store.name)

    return confirm


def _require_confirmation_channel(yes: bool, command: str) -> None:
    """Fail before touching AWS if a change would need a confirmation nobody can type."""
    if not yes and not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {command} without confirmation: there is no terminal",
            where="stdin", hint="Pass --yes for unattended runs (after a --dry-run)",
        )
