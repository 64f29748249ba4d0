"""The live view's renderings of the view model (ksdelete.view) with rich: the plan panel and
the summary table. Text from AWS is escaped (`printable`) and wrapped in `Text`, never parsed as
markup."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ksdelete.models import Status
from ksdelete.reporting import printable
from ksdelete.view import PlanView, RunSummary, fmt_time

EVIDENCE_SHOWN = 20  # keys whose checks the plan panel details (the JSON has every key)
MAX_WIDTH = 120  # panels stay readable (and do not jump) on wide terminals

STATUS_STYLE: dict[Status, str] = {
    Status.DELETED: "bold green",
    Status.PENDING: "bold yellow",
    Status.PLANNED: "bold cyan",
    Status.REFUSED: "bold magenta",  # a safety check said no: not a failure
    Status.ERROR: "bold red",
    Status.MISSING: "yellow",
    Status.INTERRUPTED: "bold red",
    Status.CANCELLED: "bold green",
}


def plan_panel(view: PlanView, *, dry_run: bool, width: int) -> Panel:
    """The plan a person reviews, as a panel."""
    store = view.store
    parts: list[RenderableType] = []
    head = Text.assemble(
        ("store ", "dim"), (printable(store.id), "bold"), f" ({printable(store.name)})",
        ("  matched by ", "dim"), view.matched_by,
        ("\ntype ", "dim"), store.type, ("  connection ", "dim"),
        (store.connection_state,
         "red" if store.connection_error_code or store.connection_state == "FAILED" else ""),
    )
    if store.connection_error_code:
        head.append(printable(f" ({store.connection_error_code})"), style="red")
    if view.where:
        head.append(f"\n{view.where}", style="dim")
    head.append(f"\n{len(view.keys)} key(s) in the store ", style="bold")
    head.append(f"({view.scanned} key(s) in the account and Region scanned)", style="dim")
    parts.append(head)
    if view.keys:
        parts.append(keys_table(view, width))
    parts.extend(Text(printable(line), style="red") for line in view.undescribable)
    detailed = sum(1 for k in view.keys[EVIDENCE_SHOWN:] if k.evidence)
    if detailed:
        parts.append(Text(f"what the checks saw is shown for the first {EVIDENCE_SHOWN} "
                          f"key(s); {detailed} more in --output json", style="dim"))
    if view.checks:
        text = Text("Checks", style="bold")
        for v in view.checks:
            style = {"pass": "green", "waived": "yellow", "refused": "red"}.get(v.verdict, "")
            text.append(f"\n {v.gate} ", style="dim")
            text.append(v.verdict, style=style)
            if v.detail:
                text.append(f": {printable(v.detail)}")
        parts.append(text)
    if view.refusal is not None:
        first, *details = view.refusal.split("\n")  # what and the fix; then the details
        refused = Text.assemble(("refused: ", "bold yellow"), (printable(first), "yellow"))
        for detail in details:
            refused.append("\n")
            refused.append(printable(f"  {detail}"))
        parts.append(refused)
    else:
        steps = Text("Steps", style="bold")
        for index, step in enumerate(view.steps, 1):
            steps.append(f"\n {index:>2}. ", style="dim")
            steps.append(printable(step))
        parts.append(steps)
        if view.earliest_gone:
            parts.append(Text.assemble(
                ("Earliest the store can be gone: ", "bold"), fmt_time(view.earliest_gone),
                (" (AWS may delete keys up to 24 h after their DeletionDate)", "dim"),
            ))
    parts.extend(Text.assemble(("warning: ", "bold yellow"), (printable(w), "yellow"))
                 for w in view.warnings)
    title = Text("Plan" + (" (dry run)" if dry_run else ""), style="bold")
    return Panel(Group(*_spaced(parts)), title=title, title_align="left",
                 border_style="yellow" if dry_run else "cyan", padding=(0, 1),
                 width=width)

def keys_table(view: PlanView, width: int) -> Table:
    """One row per key; on narrow terminals aliases and dates go under the ID and state."""
    wide = width >= MAX_WIDTH
    keys = Table(box=None, padding=(0, 1), header_style="bold dim", show_edge=False)
    # Key IDs are never cut or wrapped; the checks' lines under them may wrap.
    keys.add_column("Key ID" if wide else "Key ID / aliases",
                    min_width=max((len(k.id) for k in view.keys), default=6))
    if wide:
        keys.add_column("Aliases", overflow="fold")
    keys.add_column("State" if wide else "State / deletion date", no_wrap=True)
    if wide:
        keys.add_column("Deletion date", no_wrap=True)
    keys.add_column("External key ID", overflow="fold")
    for index, key in enumerate(view.keys):
        # What the gates saw (last use, grants, tags) goes under the key: each key once.
        seen = key.evidence if index < EVIDENCE_SHOWN else ()
        aliases = Text(printable(", ".join(key.aliases)) or "-",
                       style="" if wide else "dim")
        state = Text(printable(key.state), style="yellow" if key.pending else "")
        date = Text(fmt_time(key.deletion_date) if key.deletion_date else "-",
                    style="" if wide else "dim")
        external = Text(printable(key.external_key_id or "-"))
        key_id = Text(printable(key.id))
        checks = [Text(printable(f"  {line}"), style="dim") for line in seen]
        if wide:
            keys.add_row(Text("\n").join([key_id, *checks]), aliases, state, date,
                         external)
        else:
            aliases.overflow = "fold"
            keys.add_row(Text("\n").join([key_id, aliases, *checks]),
                         Text("\n").join([state, date]) if key.deletion_date else state,
                         external)
    return keys


def summary_table(view: RunSummary, width: int) -> RenderableType:
    """The summary table; on narrow terminals "what remains" goes under it."""
    wide = width >= MAX_WIDTH
    table = Table(title="Summary", title_style="bold", title_justify="left",
                  header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  width=width if wide else None)
    table.add_column("Store", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Keys left", justify="right", no_wrap=True)
    table.add_column("Changes", justify="right", no_wrap=True)
    table.add_column("Run again after", no_wrap=True)
    if wide:
        table.add_column("Remaining", ratio=1, min_width=20)
    below: list[RenderableType] = []
    for s in view.stores:
        store = printable(s.label)
        cells: list[RenderableType] = [
            Text(store), Text(str(s.status), style=STATUS_STYLE.get(s.status, "")),
            str(s.keys_total), str(s.changed),
            fmt_time(s.resume_after) if s.resume_after and s.status != Status.PLANNED
            else "-",
        ]
        if wide:
            cells.append(Text(s.remaining))
        elif s.status not in (Status.DELETED, Status.CANCELLED):
            below.append(Text.assemble(
                ("Remaining: ", "bold"), (f"{store}: " if len(view.stores) > 1 else "",
                                          "bold"),
                s.remaining))
        table.add_row(*cells)
    return Group(table, *below) if below else table


def _spaced(parts: list[RenderableType]) -> list[RenderableType]:
    """Blank lines between the plan's blocks."""
    out: list[RenderableType] = []
    for index, part in enumerate(parts):
        if index:
            out.append(Text(""))
        out.append(part)
    return out
