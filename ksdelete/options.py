"""The plan options, declared once.

Every option the planner's gates read (PlanOptions) has one row in SPECS: its command line
flag, help, domain (range or choices) and default, and which encodings carry it. From this
table come the click options (ksdelete/cli/options.py), the option words `show-plan` prints,
the plan file's `options` member and the journal's ConfirmPlan `gates` record, each with the
reader of what it wrote. Pure: no click, no I/O.

The encodings differ on purpose, and the table says where:
- `--include-new-keys` is never part of a saved plan (`apply` acts on the plan's keys only;
  the option would widen it), so neither the plan file nor, until now, the option words
  carried it; the words now show it when it is on (a saved plan never has it on).
- The journal's `gates` record keeps the options the preflight gates ran with (from
  --unused-for on); the window, --connect and the waivers are journalled otherwise (each
  ScheduleKeyDeletion line holds its window; waivers are listed by name).
- Plan files written before the gate options existed hold only the first three members;
  a missing member reads as its default.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ksdelete.models import MAX_SOAK_DAYS, PlanOptions

Tag = tuple[str, str | None]
Kind = Literal["int", "flag", "choice", "tags"]
MAX_TAG_KEY = 128  # a KMS tag key is 1-128 characters
# --account-id is a guard of the run (RunOptions.allowed_accounts), not a plan option: a plan
# file holds the account it was made in, and `apply` allows that one only. One check for both.
ACCOUNT_ID = re.compile(r"\d{12}")


def is_account_id(text: str) -> bool:
    return ACCOUNT_ID.fullmatch(text) is not None


@dataclass(frozen=True)
class OptionSpec:
    """One plan option in every encoding."""

    field: str  # the PlanOptions attribute, and the name in the plan file and the journal
    flag: str  # the command line option
    kind: Kind
    help: str
    low: int | None = None  # "int": the inclusive range (None: unbounded)
    high: int | None = None
    choices: tuple[str, ...] = ()  # "choice"
    metavar: str | None = None
    show_default: bool = False
    plan_file: bool = True  # kept in a saved plan
    plan_required: bool = False  # in every plan file ever written (older ones lack the rest)
    journal: bool = False  # in the ConfirmPlan record's `gates`
    always_shown: bool = False  # in the option words even at its default

    @property
    def default(self) -> Any:
        return PlanOptions.__dataclass_fields__[self.field].default


# In the order of the plan file's members (the journal's record and the option words follow
# it); the command line's order (--help, docs/cli.md) is PARSER_ORDER.
SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("pending_window_days", "--pending-window-days", "int", low=7, high=30,
               show_default=True, plan_required=True, always_shown=True,
               help="Waiting period for ScheduleKeyDeletion."),
    OptionSpec("connect", "--connect", "flag", plan_required=True,
               help="Connect a disconnected CloudHSM store first, and again if it drops "
                    "during --wait (it must stay CONNECTED)."),
    OptionSpec("allow_orphaned_key_material", "--allow-orphaned-key-material", "flag",
               plan_required=True,
               help="Go on with a disconnected CloudHSM store (material orphaned)."),
    OptionSpec("include_new_keys", "--include-new-keys", "flag", plan_file=False,
               help="Also delete keys created in the store after an earlier run's "
                    "confirmation."),
    OptionSpec("unused_for_days", "--unused-for", "int", low=0, high=3650, metavar="DAYS",
               show_default=True, journal=True, always_shown=True,
               help="Refuse keys with a cryptographic use recorded in the last DAYS "
                    "days (GetKeyLastUsage); 0 turns the check off."),
    OptionSpec("allow_service_grants", "--allow-service-grants", "flag", journal=True,
               help="Go on although keys have grants to AWS services (live "
                    "integrations)."),
    OptionSpec("protect_tags", "--protect-tag", "tags", metavar="KEY[=VALUE]", journal=True,
               help="Refuse keys that carry this tag (repeatable)."),
    OptionSpec("expect_keys", "--expect-keys", "int", low=0, metavar="N", journal=True,
               help="Refuse unless the store holds exactly N keys when the deletion "
                    "is confirmed or the plan saved (a guard against the wrong store)."),
    OptionSpec("max_keys", "--max-keys", "int", low=0, metavar="N", journal=True,
               help="Refuse a store that holds more than N keys (a cap on what one "
                    "confirmation can delete)."),
    OptionSpec("on_use", "--on-use", "choice", choices=("cancel", "refuse", "ignore"),
               show_default=True, journal=True, always_shown=True,
               help="When CloudTrail shows an attempt to use a key pending deletion: "
                    "cancel that key's deletion and stop, only stop, or do not watch."),
    OptionSpec("disable_first_days", "--disable-first", "int", low=0, high=MAX_SOAK_DAYS,
               metavar="DAYS", journal=True,
               help="Disable the keys first and schedule their deletion only after DAYS "
                    f"days with no attempt to use them (CloudTrail); 0: schedule at once. "
                    f"At most {MAX_SOAK_DAYS}: CloudTrail keeps 90 days."),
)
BY_FIELD = {spec.field: spec for spec in SPECS}
BY_FLAG = {spec.flag: spec for spec in SPECS}
PARSER_ORDER = ("pending_window_days", "connect", "allow_orphaned_key_material",
                "include_new_keys", "unused_for_days", "protect_tags", "expect_keys", "max_keys",
                "allow_service_grants", "disable_first_days", "on_use")


# ---- values: the one check every encoding's reader makes --------------------------------

def parse_tag(text: str) -> Tag:
    """`--protect-tag KEY[=VALUE]` -> (KEY, VALUE or None)."""
    name, sep, value = text.partition("=")
    if not name or len(name) > MAX_TAG_KEY:
        raise ValueError(f"{text!r} is not KEY or KEY=VALUE (a tag key of 1-{MAX_TAG_KEY} "
                         "characters)")
    return name, value if sep else None


def _tag_word(tag: Tag) -> str:
    name, value = tag
    return name + (f"={value}" if value is not None else "")


def checked(spec: OptionSpec, value: Any) -> Any:
    """`value` if it is in the option's domain (types checked exactly: bool is an int in
    Python, and "false" is a truthy string); else TypeError or ValueError."""
    if spec.kind == "flag":
        if type(value) is not bool:
            raise TypeError(f"{spec.field!r} is {value!r}")
        return value
    if spec.kind == "choice":
        if value not in spec.choices:
            raise ValueError(f"{spec.field} {value!r}")
        return str(value)
    if spec.kind == "tags":
        return _checked_tags(spec, value)
    if value is None and spec.default is None:
        return None
    if type(value) is not int:
        raise TypeError(f"{spec.field!r} is {value!r}")
    if (spec.low is not None and value < spec.low) or (spec.high is not None
                                                         and value > spec.high):
        domain = f"{spec.low}-{spec.high}" if spec.high is not None else f"at least {spec.low}"
        raise ValueError(f"{spec.field} {value} is not {domain}")
    return value


def _checked_tags(spec: OptionSpec, value: Any) -> tuple[Tag, ...]:
    """A list of [KEY, VALUE or None] pairs, each one --protect-tag could give."""
    if isinstance(value, list | tuple) and all(
            isinstance(t, list | tuple) and len(t) == 2 and type(t[0]) is str
            and (t[1] is None or type(t[1]) is str) for t in value):
        tags = tuple((str(t[0]), t[1]) for t in value)
        if all(0 < len(name) <= MAX_TAG_KEY and "=" not in name for name, _ in tags):
            return tags
    raise ValueError(f"{spec.field} {value!r}")


def _encode(spec: OptionSpec, value: Any) -> Any:
    """The JSON form (plan file, journal): tags as [name, value] pairs."""
    if spec.kind == "tags":
        return [[name, tag_value] for name, tag_value in value]
    return value


def _decode(record: Mapping[str, Any], specs: Sequence[OptionSpec]) -> PlanOptions:
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.field in record:
            values[spec.field] = checked(spec, record[spec.field])
        elif spec.plan_required:
            raise KeyError(spec.field)
    return dataclasses.replace(PlanOptions(), **values)


# ---- the command line ---------------------------------------------------------------------

def from_params(params: Mapping[str, Any]) -> PlanOptions:
    """The command's parsed parameters (named by field) as PlanOptions."""
    return PlanOptions(**{spec.field: params[spec.field] for spec in SPECS})


def option_words(opts: PlanOptions) -> list[str]:
    """The options as the command line would give them, one option (and its value) a word
    (show-plan): the always-shown ones, then the flags that are on, then the other values
    that are set."""
    def valued(spec: OptionSpec) -> list[str]:
        value = getattr(opts, spec.field)
        if spec.kind == "tags":
            return [f"{spec.flag} {_tag_word(tag)}" for tag in value]
        if spec.always_shown or (value is not None and value != spec.default):
            return [f"{spec.flag} {value}"]
        return []

    words = [w for spec in SPECS if spec.always_shown for w in valued(spec)]
    words += [spec.flag for spec in SPECS if spec.kind == "flag" and getattr(opts, spec.field)]
    words += [w for spec in SPECS if spec.kind != "flag" and not spec.always_shown
              for w in valued(spec)]
    return words


def parse_words(words: Sequence[str]) -> PlanOptions:
    """The inverse of option_words."""
    values: dict[str, Any] = {}
    for word in words:
        flag, _, text = word.partition(" ")
        spec = BY_FLAG[flag]
        if spec.kind == "flag":
            values[spec.field] = True
        elif spec.kind == "tags":
            values[spec.field] = (*values.get(spec.field, ()), parse_tag(text))
        elif spec.kind == "choice":
            values[spec.field] = checked(spec, text)
        else:
            values[spec.field] = checked(spec, int(text))
    return dataclasses.replace(PlanOptions(), **values)


# ---- the plan file ------------------------------------------------------------------------

def plan_file_options(opts: PlanOptions) -> dict[str, Any]:
    """The plan file's `options` member."""
    return {spec.field: _encode(spec, getattr(opts, spec.field))
            for spec in SPECS if spec.plan_file}


def from_plan_file(record: Mapping[str, Any]) -> PlanOptions:
    """A plan file's `options`: KeyError for a member every plan file has, TypeError or
    ValueError for a value the command line could not have given."""
    return _decode(record, [spec for spec in SPECS if spec.plan_file])


# ---- the journal --------------------------------------------------------------------------

def journal_record(opts: PlanOptions) -> dict[str, object]:
    """The options the gates ran with, as a ConfirmPlan line keeps them (`gates`)."""
    return {spec.field: _encode(spec, getattr(opts, spec.field))
            for spec in SPECS if spec.journal}


def from_journal_record(record: Mapping[str, Any] | None) -> PlanOptions:
    """A ConfirmPlan's `gates` read back (the other options at their defaults; an older
    line may lack some)."""
    return _decode(record or {}, [spec for spec in SPECS if spec.journal])
