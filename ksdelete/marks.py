"""ksdelete's marks on keys: the tags every machine sees, and the one codec that writes and
reads their values.

A mark's value is its time (AWS's clock, as `stamp` writes it), then `name=value` fields:

    ksdelete:scheduled  "<time> prior=<state> run=<run id>"        before ScheduleKeyDeletion
    ksdelete:disabled   "<time> prior=<state> days=<N> run=<id>"   --disable-first: the soak
    ksdelete:cancelled  "<time> by=<caller ARN>[ watch=<op>]"      `cancel`, or the watch
                        "... restored=<time>"                      once --enable restored it

Pure: no I/O, no other ksdelete module.
"""

from __future__ import annotations

from datetime import UTC, datetime

SCHEDULED_TAG = "ksdelete:scheduled"
CANCELLED_TAG = "ksdelete:cancelled"
DISABLED_TAG = "ksdelete:disabled"
RESTORED = "restored="  # added to the cancelled mark once --enable restored the key


def stamp(now: datetime) -> str:
    """A time as ksdelete writes it into its marks."""
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_value(text: str) -> str:
    """A tag value AWS accepts: at most 256 characters of letters, digits, spaces and
    _ . : / = + - @."""
    allowed = set("_.:/=+-@ ")
    return "".join(ch if ch.isalnum() or ch in allowed else "_" for ch in text)[:256]


def scheduled(when: str, *, prior: str, run_id: str) -> str:
    """The mark left on a key just before ScheduleKeyDeletion."""
    return f"{when} prior={prior} run={run_id}"


def disabled(when: str, *, prior: str, days: int, run_id: str) -> str:
    """The mark left on a key just before the soak's DisableKey."""
    return f"{when} prior={prior} days={days} run={run_id}"


def cancelled(when: str, *, by: str, watch: str | None = None) -> str:
    """The mark of a cancel: `ksdelete cancel`'s, or the watch's (`watch`: the use it saw)."""
    return tag_value(f"{when} by={by}" + (f" watch={watch}" if watch is not None else ""))


def restored(value: str, when: str) -> str:
    """A cancelled mark once --enable brought the key back to its state before deletion."""
    return tag_value(f"{value} {RESTORED}{when}")


def is_restored(value: str) -> bool:
    return RESTORED in value


def time_text(value: str | None) -> str:
    """A mark's time as written (its first word); "" when there is no mark."""
    return (value or "").split(" ", 1)[0]


def parse_time(text: str) -> datetime | None:
    """A time ksdelete wrote (a mark's first word, a journal entry's time); None if not one."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def field(value: str | None, name: str) -> str | None:
    """A `name=value` field of a mark."""
    for part in (value or "").split():
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
    return None
