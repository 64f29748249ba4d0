"""`ksdelete fleet inventory`: which custom key stores exist in each account and Region, with
their type, state and key count, written as a fleet file whose every store is commented out
for a person to choose. Read-only: DescribeCustomKeyStores per (account, Region), then one
membership scan per store through the scope's key reader (ksdelete.workspace.ScopeKeys: one
ListKeys chain per account and Region, however many stores it has), as discovery scans.

No boto3 here (ksdelete.sessions makes the sessions), no click.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from ksdelete import discover
from ksdelete.errors import AccountRefused, ExitStatus, KsdeleteError, UsageError
from ksdelete.fleet import spec as fleetspec
from ksdelete.fleet import write as fleetwrite
from ksdelete.fleet.model import AccountSpec, FleetSpec, Guards, Rollout, StoreTarget
from ksdelete.gateway import Gateway
from ksdelete.models import Identity, KeyStore, PlanOptions
from ksdelete.output import most_severe
from ksdelete.permissions import DEFAULT_ROLE
from ksdelete.scope import REGION, ScopeRequest
from ksdelete.sessions import SessionFactory
from ksdelete.workspace import ScopeKeys


@dataclass(frozen=True)
class Reach:
    """How an account is reached: the file's account (None: whatever the credentials are
    for), its name, and its role chain or profile."""

    account_id: str | None = None
    name: str | None = None
    role: tuple[str, ...] = ()
    profile: str | None = None
    external_id_env: str | None = None

    @classmethod
    def of(cls, account: AccountSpec) -> Reach:
        return cls(account.account_id, account.name, account.role, account.profile,
                   account.external_id_env)


@dataclass(frozen=True)
class FoundStore:
    """A store as the inventory saw it: its key count (None: not counted, `error` says why)
    and the keys that could not be described (they may be the store's)."""

    store: KeyStore
    region: str
    keys: int | None
    undescribable: int = 0
    error: str | None = None


@dataclass
class RegionRead:
    region: str
    stores: list[FoundStore] = field(default_factory=list)
    error: KsdeleteError | None = None


@dataclass
class AccountRead:
    """One account: who the credentials are (None: they never answered) and each Region."""

    reach: Reach
    identity: Identity | None = None
    regions: list[RegionRead] = field(default_factory=list)
    error: KsdeleteError | None = None  # the account could not be read at all

    @property
    def account_id(self) -> str | None:
        return self.identity.account if self.identity else self.reach.account_id

    @property
    def name(self) -> str:
        return self.reach.name or f"account-{self.account_id}"

    @property
    def errors(self) -> list[KsdeleteError]:
        return [e for e in [self.error, *(r.error for r in self.regions)] if e is not None]


def parse_regions(text: str) -> tuple[str, ...]:
    """`--regions us-east-1,eu-west-1`: Region names, each once, in the order given."""
    regions = tuple(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    if not regions:
        raise UsageError("no Region given", where="--regions",
                         hint="Give Region codes, e.g. --regions us-east-1,eu-west-1")
    for region in regions:
        if not REGION.fullmatch(region):
            raise UsageError(f"{region!r} is not an AWS Region name", where="--regions",
                             hint="Use Region codes such as eu-west-1, separated by commas")
    return regions


# ---- reading ------------------------------------------------------------------------------

Note = Callable[[str], None]


def read_account(reach: Reach, regions: Sequence[str], *, hub_profile: str | None,
                 endpoint_url: str | None, sessions: SessionFactory,
                 note: Note = lambda text: None, external_id: str | None = None,
                 session_name: str | None = None) -> AccountRead:
    """Every store of the account in each Region. The credentials must be for the file's
    account (refused otherwise: nothing read there); a Region that fails is an error of its
    own, the others are read."""
    read = AccountRead(reach)
    for region in regions:
        # A role chain is assumed from the hub (its profile, or boto3's default chain); the
        # session factory assumes it once for all the account's Regions.
        request = ScopeRequest(region=region,
                               profile=reach.profile or (hub_profile if reach.role else None),
                               endpoint_url=endpoint_url, role=reach.role,
                               external_id=external_id if reach.role else None,
                               session_name=session_name)
        try:
            gateway = sessions.gateway(request)
            if read.identity is None:
                identity = gateway.identity()
                if reach.account_id is not None and identity.account != reach.account_id:
                    raise AccountRefused(
                        f"the credentials are for account {identity.account}, not "
                        f"{reach.account_id}", identity=identity,
                        where=f"account {reach.account_id} ({reach.name})",
                        hint="Check the account's profile or role in the fleet file")
                read.identity = identity
            read.regions.append(_read_region(gateway, region))
        except KsdeleteError as exc:
            if read.identity is None:  # the account did not answer: every Region would fail
                read.error = exc
                note(f"{exc.label}: account {reach.account_id} not read: {exc}")
                return read
            read.regions.append(RegionRead(region, error=exc))
            note(f"{exc.label}: {read.account_id}/{region} not read: {exc}")
    return read


def read_accounts(fleet: FleetSpec, regions: Sequence[str], *, endpoint_url: str | None,
                  note: Note = lambda text: None) -> list[AccountRead]:
    """Every account of the file, up to rollout.max_accounts at once (their quotas are their
    own), each with sessions of its own; in the file's order."""
    from ksdelete.fleet.runner import external_ids, session_name

    ids = external_ids(fleet)  # a variable the file names and that is not set: usage error
    name = session_name(f"inventory-{uuid.uuid4().hex[:12]}")

    def one(account: AccountSpec) -> AccountRead:
        return read_account(Reach.of(account), regions, hub_profile=fleet.hub.profile,
                            endpoint_url=endpoint_url, sessions=SessionFactory(), note=note,
                            external_id=ids.get(account.account_id), session_name=name)

    pool = ThreadPoolExecutor(max_workers=fleet.rollout.max_accounts,
                              thread_name_prefix="inventory")
    try:
        return list(pool.map(one, fleet.accounts))
    finally:  # Ctrl-C: the accounts not started are not read (nothing is changed anyway)
        pool.shutdown(wait=False, cancel_futures=True)


def _read_region(gateway: Gateway, region: str) -> RegionRead:
    keys = ScopeKeys(gateway)
    keys.always_shared = True  # read-only: every scan of the scope shares one listing
    found = []
    for store in sorted(gateway.list_stores(), key=lambda s: s.id):
        try:
            snap = discover.snapshot(keys.for_store(store.id), store)
        except KsdeleteError as exc:
            found.append(FoundStore(store, region, None, error=str(exc)))
            continue
        found.append(FoundStore(store, region, len(snap.keys), len(snap.undescribable)))
    return RegionRead(region, found)


def exit_status(reads: Sequence[AccountRead]) -> ExitStatus:
    """The most severe of the errors (0 when every account and Region was read)."""
    return most_severe([e.exit_status for r in reads for e in r.errors])


# ---- writing ------------------------------------------------------------------------------

HEADER = """\
# Written by `ksdelete fleet inventory` at {now} (read-only: nothing was changed).
# Regions read: {regions}.
# Every account and store is commented out. To delete a store, uncomment its account's lines
# (from `- account_id:` to `stores:`) and the store's lines (from its `- id:`), then check
# the file with `ksdelete fleet validate FILE`. docs/fleet.md describes every key."""


def _store_comment(found: FoundStore) -> str:
    store = found.store
    state = store.connection_state.value + (
        f" ({store.connection_error_code})" if store.connection_error_code else "")
    text = f"{found.region}: {store.type.value} {json.dumps(store.name)}, {state}, "
    if found.keys is None:
        return text + f"keys not counted: {found.error}"
    text += f"{found.keys} key{'s' if found.keys != 1 else ''}"
    if found.undescribable:
        text += f", {found.undescribable} more that cannot be described (expect_keys left out)"
    return text


def _account_lines(read: AccountRead, default_role: str) -> list[str]:
    account_id = read.account_id or "unknown"
    if read.error is not None or read.identity is None:
        return [f"  # {account_id} ({read.name}): not read: {read.error}"]
    reach = read.reach
    role = reach.role if reach.role or reach.profile else (
        f"arn:aws:iam::{account_id}:role/{default_role}",)
    spec = AccountSpec(account_id, read.name, (), role=role, profile=reach.profile,
                       external_id_env=reach.external_id_env)
    lines = [f"  # {read.name} {account_id} (read as {read.identity.caller_arn})"]
    if not reach.role and not reach.profile:
        lines.append(f"  # reached by the role {default_role} (docs/fleet.md, the roles); "
                     "or give `profile: NAME` instead")
    lines += ["  # " + line[2:] for line in fleetwrite.account_lines(spec)]
    lines.append("  #   stores:")
    for region in read.regions:
        if region.error is not None:
            lines.append(f"  #     # {region.region}: not read: {region.error}")
        elif not region.stores:
            lines.append(f"  #     # {region.region}: no custom key store")
        for found in region.stores:
            lines.append(f"  #     # {_store_comment(found)}")
            target = StoreTarget(account_id, found.region, found.store.id, found.store.name,
                                 found.store.type.value,
                                 found.keys if not found.undescribable else None)
            lines += ["  #     " + line for line in fleetwrite.store_lines(target)]
    return lines


def render(reads: Sequence[AccountRead], regions: Sequence[str], *, now: datetime,
           fleet: FleetSpec | None = None, default_role: str = DEFAULT_ROLE) -> str:
    """The fleet file: every account and store commented out; guards.allowed_accounts holds
    the accounts seen; the name, hub, plan options, other guards and rollout are the given
    fleet file's (else the defaults)."""
    seen = sorted({r.account_id for r in reads if r.identity is not None and r.account_id})
    name = fleet.name if fleet else f"inventory-{now:%Y%m%d}"
    lines = [HEADER.format(now=f"{now:%Y-%m-%dT%H:%M:%SZ}", regions=", ".join(regions)),
             "version: 1", f"name: {json.dumps(name)}"]
    if fleet and fleet.hub.profile:
        lines += ["hub:", f"  profile: {json.dumps(fleet.hub.profile)}"]
    options = fleet.options if fleet else PlanOptions()
    lines += ["defaults:", *(f"  {line}" for line in fleetwrite.option_lines(options))]
    guards = fleet.guards if fleet else Guards()
    lines += ["guards:",
              "  # the accounts seen: anything that changes AWS needs each account here",
              f"  allowed_accounts: [{', '.join(json.dumps(a) for a in seen)}]"]
    if guards.forbidden_accounts:
        lines.append(f"  forbidden_accounts: "
                     f"[{', '.join(json.dumps(a) for a in sorted(guards.forbidden_accounts))}]")
    lines += [f"  {cap}: {getattr(guards, cap)}" for cap in fleetspec.CAPS
              if getattr(guards, cap) is not None]
    rollout = fleet.rollout if fleet else Rollout()
    lines += ["rollout:", *(f"  {key}: {getattr(rollout, key)}"
                            for key in ("max_accounts", "canary", "failure_tolerance"))]
    lines.append("accounts:")
    for read in reads:
        lines += _account_lines(read, default_role)
    return "\n".join(lines) + "\n"


def summary(reads: Sequence[AccountRead], regions: Sequence[str]) -> str:
    stores = sum(len(r.stores) for a in reads for r in a.regions)
    accounts = sum(1 for a in reads if a.identity is not None)
    failed = sum(1 for a in reads for _ in a.errors)
    text = (f"inventory: {stores} store{'s' if stores != 1 else ''} in {accounts} account"
            f"{'s' if accounts != 1 else ''} and {len(regions)} Region"
            f"{'s' if len(regions) != 1 else ''}")
    if failed:
        text += f"; {failed} not read (the file says which)"
    return text + "; every store is commented out: uncomment those to delete"
