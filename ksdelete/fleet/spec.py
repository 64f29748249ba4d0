"""The fleet file: YAML `version: 1`, read strictly into a FleetSpec (ksdelete.fleet.model).

Strict means: every key is known (an unknown one is named, with its line and the closest known
key), no key is given twice, account IDs are quoted 12-digit strings, an external ID never
lives in the file (only the name of the environment variable that holds it), every account is
reached in exactly one way (a role chain or a profile), and the file selects at least one store,
none twice, in no forbidden account. The first problem found ends the reading: a usage error
(exit 2) of one line, `what (<file>:<line>, <key path>). <hint>`.

`check_for_change` is the further rule for anything that changes AWS: every account of the
file must be in `guards.allowed_accounts`.

Pure: no AWS call, no credentials read, no click (docs/fleet.md describes the file).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ksdelete.errors import UsageError
from ksdelete.fleet.model import AccountSpec, FleetSpec, Guards, Hub, Rollout, StoreTarget
from ksdelete.models import STORE_ID, PlanOptions, StoreType
from ksdelete.options import BY_FIELD, SPECS, OptionSpec, checked, is_account_id, parse_tag
from ksdelete.scope import REGION

VERSION = 1
PARTITION = "aws"
NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")  # it goes into STS session names and logs
LABEL = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,64}")  # an account's name: one line of a log
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
AGGREGATOR = re.compile(r"[\w-]{1,256}@" + REGION.pattern.strip("^$"))
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
STORE_TYPES = tuple(t.value for t in StoreType)

# `defaults:` takes the plan options by their names in ksdelete/options.py, except the key
# count, which belongs to one store (`accounts[].stores[].expect_keys`).
PER_STORE_OPTIONS = frozenset({"expect_keys"})
DEFAULT_OPTIONS = tuple(s.field for s in SPECS if s.field not in PER_STORE_OPTIONS)
CAPS = ("max_targets", "max_keys_per_target", "max_keys_scheduled_per_run",
        "max_irreversible_per_run")

KEYS: dict[str, tuple[str, ...]] = {
    "file": ("version", "name", "partition", "hub", "discovery", "defaults", "guards",
             "rollout", "accounts"),
    "hub": ("profile",),
    "discovery": ("config_aggregator",),
    "defaults": ("role", "external_id_env", *DEFAULT_OPTIONS),
    "guards": ("allowed_accounts", "forbidden_accounts", *CAPS),
    "rollout": ("max_accounts", "canary", "failure_tolerance"),
    "account": ("account_id", "name", "role", "profile", "external_id_env", "stores"),
    "store": ("id", "region", "expect_name", "expect_type", "expect_keys"),
}
NO_EXTERNAL_ID = ("external IDs never live in the file; name the environment variable that "
                  "holds it with external_id_env")


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # (no stubs for yaml here)
    """YAML's safe subset, composed into nodes (which keep their line numbers); the reader
    below walks them, refusing duplicate keys, and constructs only scalars."""


Entries = dict[str, tuple[yaml.Node, yaml.Node]]  # key -> (its node, its value's node)


class _Reader:
    """Walks the composed document; every error names the file, the line and the key path."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.loader = _Loader("")

    def error(self, what: str, node: yaml.Node | None, path: str, hint: str = "") -> UsageError:
        """`what` may start with the key path: where says it in full, what only its last
        part (`account_id is a number ... (fleet.yml:19, accounts[0].account_id)`)."""
        if path and what.startswith(path + " "):
            what = path.rsplit(".", 1)[-1] + what[len(path):]
        where = self.label + (f":{node.start_mark.line + 1}" if node is not None else "")
        return UsageError(what, where=f"{where}, {path}" if path else where, hint=hint)

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return node  # a mapping or a list where a value was expected: the caller says
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # a tag safe YAML does not construct (!foo, !!python/...)
            raise self.error(f"the value {node.value!r} has a YAML tag ({node.tag}) that a "
                             "fleet file does not take", node, "",
                             hint="Write plain values, without !tags") from exc

    def mapping(self, node: yaml.Node, path: str, kind: str) -> Entries:
        """The entries of a mapping whose keys are all known (KEYS[kind]), each once (`key:`
        with nothing under it, e.g. all commented out: none)."""
        if _null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"{path or 'the fleet file'} must be a mapping of keys to values",
                             node, path, hint=f"Known keys: {', '.join(KEYS[kind])}")
        entries: Entries = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            at = _join(path, str(key))
            if not isinstance(key, str):
                raise self.error(f"the key {key!r} is not a name", key_node, at)
            if key == "external_id":
                raise self.error(NO_EXTERNAL_ID, key_node, at,
                                 hint="Write e.g. external_id_env: KSDELETE_EXTERNAL_ID")
            if key not in KEYS[kind]:
                close = difflib.get_close_matches(key, KEYS[kind], n=1)
                hint = f"Did you mean {close[0]!r}?" if close else \
                    f"Known keys: {', '.join(KEYS[kind])}"
                raise self.error(f"unknown key {key!r}", key_node, at, hint=hint)
            if key in entries:
                raise self.error(f"duplicate key {key!r}", key_node, at,
                                 hint="Give each key once")
            entries[key] = (key_node, value_node)
        return entries

    def sequence(self, node: yaml.Node, path: str, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(f"{path} must be a list of {what}", node, path,
                             hint="Write it as [...] or as lines starting with '- '")
        return list(node.value)

    def text(self, node: yaml.Node, path: str, hint: str = "") -> str:
        value = self.scalar(node)
        if not isinstance(value, str) or not value:
            raise self.error(f"{path} must be a non-empty string", node, path, hint=hint)
        return value

    def count(self, node: yaml.Node, path: str, low: int) -> int:
        value = self.scalar(node)
        if type(value) is not int or value < low:
            domain = "a positive integer" if low == 1 else f"an integer, at least {low}"
            raise self.error(f"{path} must be {domain}, not {_shown(node)}", node, path)
        return value

    def account_id(self, node: yaml.Node, path: str) -> str:
        """A quoted 12-digit string; an unquoted number gets the quoted form as its hint."""
        value = self.scalar(node)
        if type(value) is int and isinstance(node, yaml.ScalarNode):
            digits = node.value if node.value.isdigit() else str(value)
            quoted = f'"{digits.zfill(12)}"'
            key = path.rsplit(".", 1)[-1]
            form = f"{key}: {quoted}" if not key.endswith("]") else quoted
            raise self.error(f"{path} is a number; quote it (account IDs are strings of 12 "
                             "digits, and YAML drops leading zeros)", node, path,
                             hint=f"Write {form}")
        if not isinstance(value, str) or not is_account_id(value):
            raise self.error(f"{path} must be a 12-digit account ID, not {_shown(node)}", node,
                             path, hint='Quote it: "111122223333"')
        return value

    def accounts(self, node: yaml.Node, path: str) -> frozenset[str]:
        return frozenset(self.account_id(item, f"{path}[{i}]")
                         for i, item in enumerate(self.sequence(node, path, "account IDs")))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _null(node: yaml.Node) -> bool:
    """`key:` with nothing after it (e.g. every entry under it commented out)."""
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _shown(node: yaml.Node) -> str:
    """A value for a message: a number or true/false as written, a string quoted."""
    if isinstance(node, yaml.ScalarNode):
        plain = node.style is None and node.tag != "tag:yaml.org,2002:str"
        return node.value if plain else repr(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


# ---- the file -----------------------------------------------------------------------------

def load(path: Path, *, selection: bool = True) -> FleetSpec:
    """Read and check the fleet file at `path` (its digest is of the bytes read).
    `selection` False: accounts without stores are fine (`fleet inventory` reads a file for
    its accounts only)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the fleet file: {exc.strerror or exc}", where=str(path),
                         hint="Check the path") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the fleet file is not UTF-8 (byte {exc.start})", where=str(path),
                         hint="Save it as UTF-8") from exc
    return dataclasses.replace(parse(text, path, selection=selection),
                               sha256=hashlib.sha256(data).hexdigest())


def parse(text: str, path: Path | None, *, selection: bool = True) -> FleetSpec:
    """The fleet file's text, checked (a UsageError at the first problem)."""
    reader = _Reader(str(path) if path is not None else "fleet file")
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = reader.label + (f":{mark.line + 1}" if mark is not None else "")
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise UsageError(f"the fleet file is not valid YAML: {problem}", where=where,
                         hint="Check the indentation and the quotes") from exc
    if root is None:
        raise UsageError("the fleet file is empty", where=reader.label,
                         hint="Start from `ksdelete fleet inventory` or docs/fleet.md")
    top = reader.mapping(root, "", "file")
    version, name = _header(reader, root, top)
    hub = _hub(reader, top)
    role, external_id_env, options = _defaults(reader, top)
    guards = _guards(reader, top)
    rollout = _rollout(reader, top)
    aggregator = _discovery(reader, top)
    accounts = _accounts(reader, root, top, role, external_id_env)
    fleet = FleetSpec(name=name, accounts=accounts, guards=guards, rollout=rollout, hub=hub,
                      options=options, version=version, path=path,
                      sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                      config_aggregator=aggregator)
    _check_selection(reader, root, top, fleet, selection=selection)
    return fleet


def check_for_change(spec: FleetSpec) -> None:
    """Anything that changes AWS needs `guards.allowed_accounts`, holding every account of
    the file (a usage error otherwise)."""
    where = f"{spec.path or 'fleet file'}, guards.allowed_accounts"
    allowed = spec.guards.allowed_accounts
    if not allowed:
        raise UsageError("allowed_accounts is required for anything that changes AWS",
                         where=where, hint="List every account of the file in "
                                           "guards.allowed_accounts")
    missing = [a.account_id for a in spec.accounts if a.account_id not in allowed]
    if missing:
        raise UsageError(f"allowed_accounts is required for anything that changes AWS, and "
                         f"does not hold {', '.join(missing)}", where=where,
                         hint="Add them to guards.allowed_accounts, or remove them from the "
                              "file")


# ---- the parts ----------------------------------------------------------------------------

def _header(reader: _Reader, root: yaml.Node, top: Entries) -> tuple[int, str]:
    if "version" not in top:
        raise reader.error("version is required", root, "version", hint="Add `version: 1`")
    node = top["version"][1]
    if reader.scalar(node) != VERSION or type(reader.scalar(node)) is not int:
        raise reader.error(f"version {_shown(node)} is not known", node, "version",
                           hint=f"Use version: {VERSION}, the only version")
    if "name" not in top:
        raise reader.error("name is required", root, "name",
                           hint="Add e.g. `name: retire-payments-hsm` (it goes into STS "
                                "session names and logs)")
    node = top["name"][1]
    name = reader.scalar(node)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise reader.error(f"name {_shown(node)} must be 1-64 characters of letters, digits "
                           "and +=,.@_-", node, "name",
                           hint="It goes into STS session names and logs")
    if "partition" in top:
        node = top["partition"][1]
        if reader.scalar(node) != PARTITION:
            raise reader.error(f"partition {_shown(node)} is not supported: only 'aws' is, "
                               "for now", node, "partition",
                               hint="Remove the key or write partition: aws")
    return VERSION, name


def _hub(reader: _Reader, top: Entries) -> Hub:
    if "hub" not in top:
        return Hub()
    entries = reader.mapping(top["hub"][1], "hub", "hub")
    if "profile" not in entries:
        return Hub()
    return Hub(profile=reader.text(entries["profile"][1], "hub.profile",
                                   hint="A profile name of ~/.aws/config"))


def _discovery(reader: _Reader, top: Entries) -> tuple[str, str] | None:
    """`discovery: {config_aggregator: NAME@REGION}`: an AWS Config aggregator of the hub
    account, the second witness of every scan (docs/fleet.md)."""
    entries = reader.mapping(top["discovery"][1], "discovery", "discovery") \
        if "discovery" in top else {}
    if "config_aggregator" not in entries:
        return None
    value = _matching(reader, entries["config_aggregator"][1], "discovery.config_aggregator",
                      AGGREGATOR.fullmatch, "NAME@REGION (an AWS Config aggregator)",
                      "e.g. org-keys@us-east-1: the aggregator's name and its Region")
    name, region = value.rsplit("@", 1)
    return name, region


def _defaults(reader: _Reader, top: Entries) -> tuple[tuple[str, ...] | None, str | None,
                                                       PlanOptions]:
    """The default role chain (as written: made ARNs per account), the default external ID
    variable, and the plan options."""
    if "defaults" not in top:
        return None, None, PlanOptions()
    path = "defaults"
    node = top["defaults"][1]
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if reader.scalar(key_node) in PER_STORE_OPTIONS:
                key = reader.scalar(key_node)
                raise reader.error(f"{key} is set per store, not in defaults", key_node,
                                   f"defaults.{key}",
                                   hint=f"Move it to accounts[].stores[].{key}")
    entries = reader.mapping(node, path, "defaults")
    role = _role_words(reader, entries["role"][1], "defaults.role") if "role" in entries \
        else None
    external = _env_name(reader, entries["external_id_env"][1], "defaults.external_id_env") \
        if "external_id_env" in entries else None
    values = {key: _option(reader, BY_FIELD[key], value_node, f"defaults.{key}")
              for key, (_, value_node) in entries.items() if key in BY_FIELD}
    return role, external, dataclasses.replace(PlanOptions(), **values)


def _option(reader: _Reader, spec: OptionSpec, node: yaml.Node, path: str) -> Any:
    """A plan option, in the domain the command line gives it (ksdelete/options.py)."""
    value = reader.scalar(node)
    if spec.kind == "flag":
        ok, domain = type(value) is bool, "true or false"
    elif spec.kind == "choice":
        ok, domain = value in spec.choices, f"one of {', '.join(spec.choices)}"
    elif spec.kind == "tags":
        domain = "a list of KEY or KEY=VALUE"
        items = reader.sequence(node, path, "KEY or KEY=VALUE")
        value = []
        for i, item in enumerate(items):
            word = reader.scalar(item)
            try:
                value.append(list(parse_tag(word if isinstance(word, str) else "")))
            except ValueError:
                raise reader.error(f"{path}[{i}] {_shown(item)} is not KEY or KEY=VALUE",
                                   item, f"{path}[{i}]",
                                   hint=f"As {spec.flag} takes it") from None
        ok = True
    else:
        low, high = spec.low, spec.high
        domain = f"{low}-{high}" if high is not None else f"an integer, at least {low}"
        ok = type(value) is int and (low is None or value >= low) and (
            high is None or value <= high)
    if ok:
        try:
            return checked(spec, value)
        except (TypeError, ValueError):
            pass
    raise reader.error(f"{path} must be {domain}, not {_shown(node)}", node, path,
                       hint=f"As {spec.flag} takes it")


def _env_name(reader: _Reader, node: yaml.Node, path: str) -> str:
    value = reader.scalar(node)
    if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
        raise reader.error(f"{path} must be an environment variable name (A-Z, 0-9, _), not "
                           f"{_shown(node)}", node, path,
                           hint="e.g. KSDELETE_EXTERNAL_ID; the external ID itself stays out "
                                "of the file")
    return value


def _role_words(reader: _Reader, node: yaml.Node, path: str) -> tuple[str, ...]:
    """A role (a name or an ARN) or a list of them (a chain), each checked."""
    items = [(node, path)] if not isinstance(node, yaml.SequenceNode) else \
        [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
    if not items:
        raise reader.error(f"{path} is an empty chain", node, path,
                           hint="Give a role name, an ARN, or a list of them")
    words = []
    for item, at in items:
        value = reader.scalar(item)
        if not isinstance(value, str) or not (ROLE_NAME.fullmatch(value)
                                              or ROLE_ARN.fullmatch(value)):
            raise reader.error(f"{at} {_shown(item)} is neither a role name nor a role ARN",
                               item, at, hint="e.g. KsdeleteExecution or "
                                              "arn:aws:iam::111122223333:role/KsdeleteExecution")
        words.append(value)
    return tuple(words)


def _role_chain(reader: _Reader, words: tuple[str, ...], account_id: str, node: yaml.Node,
                path: str) -> tuple[str, ...]:
    """Role ARNs: a bare name is a role of the target account; the last role of the chain
    must be in the target account."""
    arns = tuple(w if w.startswith("arn:") else f"arn:aws:iam::{account_id}:role/{w}"
                 for w in words)
    last = ROLE_ARN.fullmatch(arns[-1])
    if last is None or last.group(1) != account_id:
        raise reader.error(f"the last role of the chain must be in account {account_id}, not "
                           f"{arns[-1]}", node, path,
                           hint="Name the target account's role last (a bare name is in the "
                                "target account)")
    return arns


def _guards(reader: _Reader, top: Entries) -> Guards:
    if "guards" not in top:
        return Guards()
    entries = reader.mapping(top["guards"][1], "guards", "guards")
    values: dict[str, Any] = {}
    for key in ("allowed_accounts", "forbidden_accounts"):
        if key in entries:
            values[key] = reader.accounts(entries[key][1], f"guards.{key}")
    for key in CAPS:
        if key in entries:
            values[key] = reader.count(entries[key][1], f"guards.{key}", 1)
    return Guards(**values)


def _rollout(reader: _Reader, top: Entries) -> Rollout:
    if "rollout" not in top:
        return Rollout()
    entries = reader.mapping(top["rollout"][1], "rollout", "rollout")
    lows = {"max_accounts": 1, "canary": 0, "failure_tolerance": 0}
    return Rollout(**{key: reader.count(entries[key][1], f"rollout.{key}", low)
                      for key, low in lows.items() if key in entries})


def _accounts(reader: _Reader, root: yaml.Node, top: Entries,
              role: tuple[str, ...] | None, external_id_env: str | None
              ) -> tuple[AccountSpec, ...]:
    if "accounts" not in top or _null(top["accounts"][1]):
        return ()
    nodes = reader.sequence(top["accounts"][1], "accounts", "accounts")
    accounts: list[AccountSpec] = []
    seen_ids: dict[str, str] = {}
    seen_names: set[str] = set()
    for i, node in enumerate(nodes):
        path = f"accounts[{i}]"
        account = _account(reader, node, path, role, external_id_env)
        if account.account_id in seen_ids:
            raise reader.error(f"duplicate account_id {account.account_id} (also "
                               f"{seen_ids[account.account_id]})", node, path,
                               hint="List each account once, with all its stores")
        if account.name in seen_names:
            raise reader.error(f"duplicate account name {account.name!r}", node, path,
                               hint="Give each account its own name")
        seen_ids[account.account_id] = path
        seen_names.add(account.name)
        accounts.append(account)
    return tuple(accounts)


def _account(reader: _Reader, node: yaml.Node, path: str, role: tuple[str, ...] | None,
             external_id_env: str | None) -> AccountSpec:
    entries = reader.mapping(node, path, "account")
    for key in ("account_id", "name"):
        if key not in entries:
            raise reader.error(f"{path}.{key} is required", node, f"{path}.{key}")
    account_id = reader.account_id(entries["account_id"][1], f"{path}.account_id")
    name = reader.text(entries["name"][1], f"{path}.name",
                       hint="A label for the account, e.g. payments-dev")
    if not LABEL.fullmatch(name):
        raise reader.error(f"{path}.name must be 1-64 characters, none of them a control "
                           "character", entries["name"][1], f"{path}.name",
                           hint="It prefixes the account's lines in logs")
    if "role" in entries and "profile" in entries:
        raise reader.error(f"{path} has both role and profile", node, path,
                           hint="Reach the account one way: a role (from the hub) or a "
                                "profile")
    profile: str | None = None
    chain: tuple[str, ...] = ()
    own_external = _env_name(reader, entries["external_id_env"][1],
                             f"{path}.external_id_env") if "external_id_env" in entries \
        else None
    if "profile" in entries:
        profile = reader.text(entries["profile"][1], f"{path}.profile",
                              hint="A profile name of ~/.aws/config")
        if own_external is not None:
            raise reader.error(f"{path}.external_id_env is for a role; this account is "
                               "reached by profile", entries["external_id_env"][0],
                               f"{path}.external_id_env",
                               hint="Remove it, or reach the account by a role")
    else:
        words_node = entries["role"][1] if "role" in entries else None
        words = _role_words(reader, words_node, f"{path}.role") if words_node is not None \
            else role
        if words is None:
            raise reader.error(f"{path} needs a role or a profile", node, path,
                               hint="Set role or profile here, or defaults.role")
        chain = _role_chain(reader, words, account_id, words_node or node, f"{path}.role")
    stores = _stores(reader, entries, account_id, path)
    return AccountSpec(account_id, name, stores, role=chain, profile=profile,
                       external_id_env=(own_external or external_id_env) if chain else None)


def _stores(reader: _Reader, entries: Entries, account_id: str, path: str
            ) -> tuple[StoreTarget, ...]:
    if "stores" not in entries or _null(entries["stores"][1]):
        return ()
    stores: list[StoreTarget] = []
    for j, node in enumerate(reader.sequence(entries["stores"][1], f"{path}.stores",
                                             "stores")):
        at = f"{path}.stores[{j}]"
        store = _store(reader, node, at, account_id)
        if any(s.key == store.key for s in stores):
            raise reader.error(f"duplicate target {store.label}", node, at,
                               hint="Name each store once")
        stores.append(store)
    return tuple(stores)


def _store(reader: _Reader, node: yaml.Node, path: str, account_id: str) -> StoreTarget:
    entries = reader.mapping(node, path, "store")
    for key in ("id", "region"):
        if key not in entries:
            raise reader.error(f"{path}.{key} is required", node, f"{path}.{key}")
    store_id = _matching(reader, entries["id"][1], f"{path}.id", STORE_ID.fullmatch,
                         "a custom key store ID (cks-...)", "e.g. cks-1234567890abcdef0")
    region = _matching(reader, entries["region"][1], f"{path}.region", REGION.fullmatch,
                       "an AWS Region name", "Use a Region code such as eu-west-1")
    expect_name = reader.text(entries["expect_name"][1], f"{path}.expect_name",
                              hint="The store's name, as DescribeCustomKeyStores gives it") \
        if "expect_name" in entries else None
    expect_type = _matching(reader, entries["expect_type"][1], f"{path}.expect_type",
                            lambda v: v if v in STORE_TYPES else None,
                            " or ".join(STORE_TYPES), "As DescribeCustomKeyStores gives it") \
        if "expect_type" in entries else None
    expect_keys = reader.count(entries["expect_keys"][1], f"{path}.expect_keys", 0) \
        if "expect_keys" in entries else None
    return StoreTarget(account_id, region, store_id, expect_name, expect_type, expect_keys)


def _matching(reader: _Reader, node: yaml.Node, path: str, match: Callable[[str], Any],
              what: str, hint: str) -> str:
    value = reader.scalar(node)
    if not isinstance(value, str) or not match(value):
        raise reader.error(f"{path} must be {what}, not {_shown(node)}", node, path, hint=hint)
    return value


def _check_selection(reader: _Reader, root: yaml.Node, top: Entries, fleet: FleetSpec, *,
                     selection: bool) -> None:
    """At least one store (unless not `selection`), and no account of the file forbidden
    (forbidden wins over everything, allowed included)."""
    for i, account in enumerate(fleet.accounts):
        if account.account_id in fleet.guards.forbidden_accounts:
            node = top["accounts"][1].value[i]
            raise reader.error(f"account {account.account_id} ({account.name}) is in "
                               "guards.forbidden_accounts", node, f"accounts[{i}]",
                               hint="Remove the account from the file; forbidden_accounts "
                                    "wins over everything")
        for arn in account.role:  # a chain's roles too: assuming one acts in its account
            match = ROLE_ARN.fullmatch(arn)
            if match is not None and match.group(1) in fleet.guards.forbidden_accounts:
                node = top["accounts"][1].value[i]
                raise reader.error(f"the role chain of account {account.account_id} "
                                   f"({account.name}) goes through {arn}, in "
                                   "guards.forbidden_accounts", node, f"accounts[{i}].role",
                                   hint="Reach the account without a role in a forbidden "
                                        "account; forbidden_accounts wins over everything")
    if not selection:
        return
    for i, account in enumerate(fleet.accounts):
        if not account.stores:
            node = top["accounts"][1].value[i]
            raise reader.error(f"empty selection: account {account.name} has no stores", node,
                               f"accounts[{i}].stores",
                               hint="List its stores, or remove the account")
    if not fleet.targets:
        node = top["accounts"][1] if "accounts" in top else root
        raise reader.error("empty selection: the file names no store", node, "accounts",
                           hint="List accounts with their stores (ksdelete fleet inventory "
                                "writes a file to start from)")
