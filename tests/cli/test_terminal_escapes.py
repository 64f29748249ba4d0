"""Every string from AWS is escaped before it reaches a terminal or a log: C0 and C1 control
characters and the Unicode controls that reorder or break a line (bidi embeddings, overrides
and isolates, the directional marks, line and paragraph separators)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ksdelete.emulator import Emulator
from ksdelete.live import RichReporter
from ksdelete.models import (
    ConnectionState,
    Key,
    KeyStore,
    Plan,
    Snapshot,
    Status,
    StoreResult,
    StoreType,
)
from ksdelete.reporting import printable

from .helpers import ksdelete

# A store name as someone hostile (or careless) could create it: a right-to-left override
# that makes "gpj.exe" read "exe.jpg", a C1 CSI (ESC [ in one byte: colours, cursor moves),
# an OSC that retitles the terminal, an isolate, a mark and a line separator.
HOSTILE = "prod\u202egpj.exe\u2066x\u2069\u200f\x9b31mred\x1b]0;owned\x07\u2028end\x85"
RAW = ["\u202e", "\u2066", "\u2069", "\u200f", "\x9b", "\x1b", "\x07", "\u2028", "\x85"]


def test_printable_escapes_c1_and_unicode_line_controls_but_keeps_text() -> None:
    assert printable("a\u202eb\x9bc\u200ed\u061ce\u2028f\u2029g\x80h\x9fi") == (
        "a\\u202eb\\x9bc\\u200ed\\u061ce\\u2028f\\u2029g\\x80h\\x9fi")
    assert printable("\u202a\u202b\u202c\u202d\u2067\u2068") == (
        "\\u202a\\u202b\\u202c\\u202d\\u2067\\u2068")
    assert printable("\x1b[31m\x00\x7f") == "\\x1b[31m\\x00\\x7f"
    assert printable("Zürich 東京 🔑 ḱey") == "Zürich 東京 🔑 ḱey"  # text is text


def test_a_hostile_store_name_reaches_no_stream_raw(emulator: Emulator) -> None:
    seeded = emulator.seed({"region": "us-east-1", "stores": [
        {"name": HOSTILE, "type": "EXTERNAL_KEY_STORE", "connection_state": "CONNECTED",
         "keys": 1}]})
    store_id = seeded["stores"][0]["id"]
    for args in (["status", store_id], [store_id, "--dry-run"], [store_id, "--yes"],
                 ["report", store_id]):
        run = ksdelete(emulator, *args)
        assert run.exit_code in (0, 1, 3), run.stderr
        for text in (run.stdout, run.stderr):
            assert not [c for c in RAW if c in text], (args, text)
        assert "prod\\u202egpj.exe" in run.stdout + run.stderr


def test_the_live_view_escapes_what_aws_says() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    reporter = RichReporter(console, auto_refresh=False)
    store = KeyStore("cks-1234567890abcdef0", HOSTILE, StoreType.EXTERNAL,
                     ConnectionState.CONNECTED)
    key = Key("k-1", "arn:k-1", "Enabled", store.id, aliases=("alias/x",),
              external_key_id=f"ext{HOSTILE}", tags=(("owner", HOSTILE),))
    reporter.start(command="delete", dry_run=False)
    reporter.for_store(store.id).begin()
    reporter.plan(store.id, Snapshot(store, (key,)), Plan(store.id, (), warnings=(HOSTILE,)))
    reporter.note(f"AWS said {HOSTILE}", level="error")
    reporter.note(f"AWS said {HOSTILE}", level="warning")
    reporter.note(f"AWS said {HOSTILE}")
    reporter.finish([StoreResult(store.id, Status.ERROR, "id", store,
                                 error={"code": "x", "message": f"other {HOSTILE}"})])
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert not [c for c in RAW if c in text], text
    assert "prod\\u202egpj.exe" in text


def test_an_error_that_stops_the_invocation_is_escaped(
        capsys: pytest.CaptureFixture[str]) -> None:
    from ksdelete.cli import Invocation
    from ksdelete.errors import KsdeleteError

    with pytest.raises(SystemExit):
        Invocation("delete", output="text", quiet=False, debug=False).fail(
            KsdeleteError(f"AWS said {HOSTILE}"))
    out, err = capsys.readouterr()
    for text in (out, err):
        assert not [c for c in RAW if c in text], text
    assert "AWS said prod\\u202egpj.exe" in err and "AWS said" not in out  # once
