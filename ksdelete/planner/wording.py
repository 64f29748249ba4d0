"""Words the gates share: key lists that stay short whatever the number of keys, and the
option a fix names (the command's own)."""

from __future__ import annotations

from ksdelete.models import (
    Context,
)


def id_list(ids: list[str] | tuple[str, ...], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


# A refusal's first line (summary and fix) stays short and says the same for 3 keys or 3,000:
# the keys and the evidence go on the lines after it (`details`), and all of them in the JSON.

def key_lines(ids: list[str] | tuple[str, ...], per_line: int = 3, lines: int = 4
          ) -> tuple[str, ...]:
    """The detail lines that list a refusal's keys: a few per line, the first dozen (the
    JSON has them all, as `key_ids`)."""
    shown = list(ids[:per_line * lines])
    out = [("keys: " if not i else "      ") + ", ".join(shown[i:i + per_line])
           for i in range(0, len(shown), per_line)]
    if len(ids) > len(shown):
        out.append(f"and {len(ids) - len(shown)} more (every key in --output json)")
    return tuple(out)


def each_line(items: list[str], limit: int = 10) -> tuple[str, ...]:
    """One detail line per item (a key and what was seen of it), the first `limit` of them."""
    more = len(items) - limit
    return (*items[:limit], *([f"and {more} more (every key in --output json)"]
                              if more > 0 else []))



def option_of(ctx: Context, option: str) -> str:
    """An option as a refusal's fix names it. `apply` takes none of the plan's options (the
    reviewed plan carries them), so there the fix names a new plan (`new_plan_lines` says how)."""
    if ctx.approved is None:
        return option
    return f"{option} in a new plan"


def new_plan_lines(ctx: Context, option: str = "") -> tuple[str, ...]:
    """`apply`: the detail line that says how to save a new plan (none for other commands)."""
    if ctx.approved is None:
        return ()
    option = f" {option}" if option else ""
    return (f"to save a new plan: ksdelete {ctx.approved.id} --dry-run{option} "
            "--save-plan FILE",)


def leave_out(ctx: Context, option: str) -> str:
    """How to drop an option: for `apply`, a new plan saved without it."""
    if ctx.approved is None:
        return f"leave out {option}"
    return f"save a new plan without {option}"


def include_new(ctx: Context) -> str:
    """How to delete keys that appeared after the confirmation: --include-new-keys, or for
    `apply` a new plan (which lists them)."""
    if ctx.approved is None:
        return "--include-new-keys deletes them too"
    return "a new plan can include them"
