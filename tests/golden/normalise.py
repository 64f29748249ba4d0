"""What legitimately varies between two runs of the same golden case, replaced by stable
placeholders; everything else (wording, order, line counts, JSON member names and structure) is
kept byte for byte.

Varies, and is replaced:
- key IDs (random UUIDs): ``<KEY:STORE-R>`` where R is the key's rank among its store's keys
  sorted by ID (ksdelete lists keys by ID, so the listing stays in order), ``<KEY:plain-R>`` for
  keys outside any store; a seeded alias ``alias/STORE-I`` follows its key: ``alias/STORE-<R>``;
- other UUIDs (request IDs): ``<UUID>``;
- store IDs: ``<STORE:name>``; CloudHSM cluster IDs: ``<CLUSTER>``;
- run IDs and plan IDs (12 hex digits): ``<RUN-N>`` (N in the order the runs happened: read from
  the JSON output and the journal) and ``<PLAN-N>``; other 64-hex values (digests, key handles):
  ``<HEX64>``;
- instants, relative to the emulator's clock when the case was seeded (T0), to the nearest hour:
  ``<T0+7d>`` for ``2026-12-10 12:56`` (the " UTC" after it is kept), ``<T0+7d|iso>`` for an
  ISO-8601 instant with ``+00:00``, ``<T0+7d|isoZ>`` with ``Z``; an instant more than 120 days
  from T0 (a constant, e.g. a tracking start) is ``<INSTANT|...>``; the wall-clock prefix of a
  progress line is ``<TS>``;
- retry back-offs (jittered): ``next try in <SECONDS>``;
- the emulator's endpoint URL: ``<ENDPOINT>``; the test's temporary directory: ``<TMP>``;
- ``ksdelete_version``: ``<VERSION>``.

JSON output is also checked to be the one compact line ksdelete prints, then shown indented
(member order kept). Two structural changes, since ksdelete acts on keys in parallel and lists
them as they finish: the per-key actions between two store-level actions are sorted by key
(stably), and so are a store's key_outcomes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
STORE_ID = re.compile(r"\bcks-[0-9a-f]{17}\b")
CLUSTER_ID = re.compile(r"\bcluster-[a-z0-9]{11}\b")
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
LINE_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", re.MULTILINE)
ISO = re.compile(r"\b(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?)(Z|[+-]\d\d:\d\d)")
HUMAN = re.compile(r"\b(\d{4}-\d\d-\d\d) (\d\d:\d\d)\b")
DATE = re.compile(r"\b\d{4}-\d\d-\d\d\b")
BACKOFF = re.compile(r"next try in \d+(?:\.\d+)?s\b")
VERSION = re.compile(r'("ksdelete_version": )"[^"]*"')
NEAR = 120 * 86400.0


class Normaliser:
    """Built once a case is seeded; `text` and `json` apply it to a command's output."""

    def __init__(self, seeded: list[dict[str, Any]], all_keys: list[dict[str, Any]], t0: datetime,
                 endpoint: str, tmp: Path) -> None:
        """`seeded`: the "stores" of every seed answer (id, name, key_ids in alias order);
        `all_keys`: the emulator's keys (KeyId, CustomKeyStoreId) right after seeding."""
        self.t0 = t0.timestamp()
        self.endpoint = endpoint
        self.tmp = str(tmp)
        self.stores = {s["id"]: s["name"] for s in seeded}
        self.keys: dict[str, str] = {}
        self.aliases: dict[str, str] = {}
        for store in seeded:
            ranked = sorted(store["key_ids"])
            for index, key_id in enumerate(store["key_ids"]):
                rank = ranked.index(key_id) + 1
                self.keys[key_id] = f"<KEY:{store['name']}-{rank}>"
                self.aliases[f"alias/{store['name']}-{index}"] = f"alias/{store['name']}-<{rank}>"
        plain = sorted(k["KeyId"] for k in all_keys
                       if not k.get("CustomKeyStoreId") and k["KeyId"] not in self.keys)
        for rank, key_id in enumerate(plain, 1):
            self.keys[key_id] = f"<KEY:plain-{rank}>"
        self.ids: dict[str, str] = {}  # run and plan IDs, in the order they happened
        alias_names = "|".join(re.escape(a) for a in sorted(self.aliases, key=len, reverse=True))
        self.alias_re = re.compile(rf"(?<![\w/-])({alias_names})(?![\w-])") if alias_names else None

    # Run and plan IDs are learnt as they appear, so they number in the order of the case.
    def learn(self, value: str | None, kind: str) -> None:
        if value and value not in self.ids:
            n = sum(1 for v in self.ids.values() if v.startswith(f"<{kind}-")) + 1
            self.ids[value] = f"<{kind}-{n}>"

    def learn_journal(self, path: Path) -> None:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("run_id"), str):
                    self.learn(entry["run_id"], "RUN")

    def _instant(self, match: re.Match[str], kind: str, text: str) -> str:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return match.group(0)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delta = when.timestamp() - self.t0
        suffix = f"|{kind}" if kind else ""
        if abs(delta) > NEAR:
            return f"<INSTANT{suffix}>"
        hours = round(delta / 3600)
        sign = "-" if hours < 0 else "+"
        days, hours = divmod(abs(hours), 24)
        parts = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
        return f"<T0{sign + parts if parts else ''}{suffix}>"

    def text(self, out: str) -> str:
        out = out.replace(self.endpoint, "<ENDPOINT>").replace(self.tmp, "<TMP>")
        out = UUID.sub(lambda m: self.keys.get(m.group(0), "<UUID>"), out)
        if self.alias_re is not None:
            out = self.alias_re.sub(lambda m: self.aliases[m.group(1)], out)
        out = STORE_ID.sub(lambda m: f"<STORE:{self.stores.get(m.group(0), '?')}>", out)
        out = CLUSTER_ID.sub("<CLUSTER>", out)
        out = HEX64.sub("<HEX64>", out)
        for value, label in self.ids.items():
            out = re.sub(rf"\b{re.escape(value)}\b", label, out)
        out = LINE_PREFIX.sub("<TS> ", out)
        out = ISO.sub(lambda m: self._instant(
            m, "isoZ" if m.group(2) == "Z" else "iso", m.group(1) + m.group(2)), out)
        out = HUMAN.sub(lambda m: self._instant(m, "", f"{m.group(1)}T{m.group(2)}+00:00"), out)
        out = DATE.sub("<DATE>", out)
        out = BACKOFF.sub("next try in <SECONDS>", out)
        return VERSION.sub(r'\1"<VERSION>"', out)

    def json(self, out: str) -> str:
        """One compact JSON line, normalised, shown indented."""
        doc = json.loads(out)
        assert out == json.dumps(doc) + "\n", "JSON output is not one compact line"
        self.learn(doc.get("run_id"), "RUN")
        self.learn(doc.get("plan_id"), "PLAN")
        normal = json.loads(self.text(out))
        for store in normal.get("stores") or []:
            if isinstance(store, dict) and isinstance(store.get("actions"), list):
                store["actions"] = by_key(store["actions"])
            if isinstance(store, dict) and isinstance(store.get("key_outcomes"), list):
                store["key_outcomes"].sort(key=lambda o: str(o.get("id")))
        return json.dumps(normal, indent=2) + "\n"


def by_key(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-key actions between two store-level ones sorted (stably) by key."""
    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for action in [*actions, None]:
        if action is not None and action.get("key_id"):
            run.append(action)
            continue
        out.extend(sorted(run, key=lambda a: str(a["key_id"])))
        run = []
        if action is not None:
            out.append(action)
    return out
