"""The other commands: probe, iam-policy, completion, man, emulator, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ksdelete import exitcodes
from ksdelete.cli.confirm import _require_confirmation_channel
from ksdelete.cli.errors import Invocation, _emit
from ksdelete.cli.group import cli
from ksdelete.cli.meta import SHELLS, completion_script
from ksdelete.cli.options import _settings, _setup_logging, aws_options, parse_duration
from ksdelete.errors import RefusedError, UsageError
from ksdelete.output import document
from ksdelete.reporting import printable


@cli.command()
@aws_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--max-wait", callback=parse_duration, default="20m", show_default=True,
              help="How long to wait for CloudTrail and GetKeyLastUsage to show the calls.")
@click.option("--poll-interval", callback=parse_duration, default="30s", show_default=True,
              help="Pause between two readings while waiting.")
@exitcodes.documented("probe")
def probe(region: str | None, profile: str | None, endpoint_url: str | None,
          account_ids: frozenset[str], output: str, quiet: bool, debug: bool,
          journal: Path | None, yes: bool, max_wait: float, poll_interval: float) -> None:
    """Check, on this account and Region, what the watch and the gates rely on.

    Creates one throwaway KMS key (a standard AWS_KMS key, tagged ksdelete:probe), uses it
    once, schedules its deletion (7-day window), makes one Encrypt call that fails because
    the key is pending deletion, then reads back what ksdelete reads: CloudTrail by event
    name (as the watch does) and by ResourceName, the key's own ScheduleKeyDeletion, and
    GetKeyLastUsage, measuring how late each event arrives. It never touches another key and
    leaves its key pending deletion (it costs one key for at most 7 days). The report says,
    per assumption, confirmed, refuted or could not tell, and what that means here.
    `ksdelete iam-policy --probe` prints the permissions it needs.

    \b
    Example:
      ksdelete probe --region eu-west-1 --account-id 111122223333
    """
    _setup_logging(debug)
    inv = Invocation("probe", output=output, quiet=quiet, debug=debug)

    def body(inv: Invocation) -> None:
        from ksdelete import probe as probing
        from ksdelete import service
        from ksdelete.app import make_reporter
        from ksdelete.executor import RunOptions

        _require_confirmation_channel(yes, "create the probe key")
        inv.reporter = reporter = make_reporter(quiet, debug=debug)
        app = service.open_app(_settings(region, profile, endpoint_url, journal),
                               RunOptions(allowed_accounts=account_ids), reporter,
                               lambda snap, plan: False, read_only=False)
        inv.identity, inv.run_id = app.identity, app.journal.run_id
        if not yes:
            sys.stderr.write(
                f"The probe creates one KMS key in account {app.identity.account}, "
                f"{app.identity.region}, uses it once and schedules its deletion (7 days). "
                "Type 'probe' to go on: ")
            sys.stderr.flush()
            if sys.stdin.readline().strip() != "probe":
                raise RefusedError("not confirmed; nothing was changed", where="probe")
        obs = service.probe(app, reporter, max_wait=max_wait, poll=poll_interval,
                            left_behind=inv.after.append)
        found = probing.findings(obs)
        code = probing.exit_status(found)
        if output == "json":
            doc = document("probe", [], int(code), identity=app.identity,
                           run_id=app.journal.run_id)
            doc["probe"] = probing.as_json(obs, found)
            _emit(json.dumps(doc, default=str), code)
        else:
            from ksdelete.reporting import where

            for line in [where(app.identity), *probing.lines(obs, found)]:
                _emit(printable(line), code)
        sys.exit(int(code))

    inv.run(body)


@cli.command(name="iam-policy")
@click.option("--read-only", is_flag=True, help="Only what --dry-run, show-plan and status "
              "need.")
@click.option("--apply-only", is_flag=True,
              help="Only what `apply` needs (an unattended runner: no undo).")
@click.option("--unused-for", type=click.IntRange(1, 3650), metavar="DAYS",
              help="Add a Deny of ScheduleKeyDeletion and DisableKey on keys with a "
                   "cryptographic use in the last DAYS days (NumericLessThan "
                   "kms:TrailingDaysWithoutKeyUsage DAYS): AWS itself refuses them, whatever "
                   "else allows it. AWS's value for a key never used is not documented: a "
                   "never-used key created less than DAYS days ago may be denied too.")
@click.option("--probe", "for_probe", is_flag=True,
              help="Only what `ksdelete probe` needs (CreateKey, Encrypt on its own key, ...).")
@click.option("--fleet", "for_fleet", is_flag=True,
              help="A fleet (docs/fleet.md): the hub policy (sts:AssumeRole on the target "
                   "roles), the target role policy, and a trust policy template with the "
                   "sts:ExternalId condition.")
@click.option("--fleet-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --fleet: the hub may assume exactly the roles of this fleet file "
                   "(default: KsdeleteExecution in any account).")
@click.option("--output", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="With --fleet: json prints the three policies as one object (text: three "
                   "JSON blocks under a comment each). The policy alone is always JSON.")
def iam_policy(read_only: bool, apply_only: bool, unused_for: int | None,
               for_probe: bool, for_fleet: bool, fleet_file: Path | None, output: str) -> None:
    """Print the least-privilege IAM policy ksdelete needs, as JSON.

    Derived from the permissions each pipeline step declares, so it cannot drift.

    \b
    Examples:
      ksdelete iam-policy > ksdelete-policy.json
      ksdelete iam-policy --apply-only --unused-for 30 > ksdelete-cron-policy.json
      ksdelete iam-policy --probe > ksdelete-probe-policy.json
      ksdelete iam-policy --fleet --fleet-file fleet.yml
    """
    from ksdelete.permissions import policy, probe_policy

    if read_only and apply_only:
        raise click.UsageError("--read-only and --apply-only exclude each other")
    if fleet_file is not None and not for_fleet:
        raise click.UsageError("--fleet-file goes with --fleet")
    if for_probe:
        if read_only or apply_only or unused_for or for_fleet:
            raise click.UsageError("--probe takes no other option")
        click.echo(json.dumps(probe_policy(), indent=2))
        return
    if for_fleet:
        _fleet_policies(fleet_file, output, read_only=read_only, apply_only=apply_only,
                        unused_for=unused_for)
        return
    click.echo(json.dumps(policy(read_only=read_only, apply_only=apply_only,
                                 unused_for=unused_for), indent=2))


FLEET_HEADS = {
    "hub_policy": "# Hub policy: for the identity that runs `ksdelete fleet` (it assumes each "
                  "account's role)",
    "target_role_policy": "# Target role policy: for the role in each target account",
    "trust_policy": "# Trust policy of the target role (a template: put in the hub's role and "
                    "the external ID)",
}


def _fleet_policies(fleet_file: Path | None, output: str, **shape: Any) -> None:
    """`iam-policy --fleet`: a bad fleet file is one line and exit 2, as in `fleet validate`."""
    from ksdelete.permissions import fleet_policies

    roles: list[str] | None = None
    external: str | None = None
    aggregator: tuple[str, str] | None = None
    if fleet_file is not None:
        from ksdelete.fleet import spec

        try:
            fleet = spec.load(fleet_file)
            roles = [a.role[0] for a in fleet.accounts if a.role]
            aggregator = fleet.config_aggregator
            if not roles and aggregator is None:
                raise UsageError("no account of the fleet file is reached by a role, so the "
                                 "hub needs no policy", where=str(fleet_file),
                                 hint="The profiles' own policies need the target role "
                                      "policy (ksdelete iam-policy)")
        except UsageError as exc:
            click.echo(f"ksdelete: error: {exc}", err=True)
            sys.exit(int(exc.exit_status))
        names = sorted({a.external_id_env for a in fleet.accounts if a.external_id_env})
        external = names[0] if len(names) == 1 else None
    docs = fleet_policies(roles, external, aggregator=aggregator, **shape)
    if output == "json":
        click.echo(json.dumps(docs, indent=2))
        return
    click.echo("\n\n".join(f"{FLEET_HEADS[name]}\n{json.dumps(doc, indent=2)}"
                            for name, doc in docs.items()))


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    Examples:
      eval "$(ksdelete completion bash)"     # in ~/.bashrc
      eval "$(ksdelete completion zsh)"      # in ~/.zshrc
      ksdelete completion fish > ~/.config/fish/completions/ksdelete.fish
    """
    click.echo(completion_script(ctx.find_root().command, shell), nl=False)


@cli.command(name="man")
@click.pass_context
def man_page(ctx: click.Context) -> None:
    """Print the ksdelete(1) manual page (roff), generated from this CLI.

    \b
    Examples:
      ksdelete man | man -l -
      ksdelete man > ~/.local/share/man/man1/ksdelete.1
    """
    from ksdelete.cli.manpage import render

    root = ctx.find_root().command
    assert isinstance(root, click.Group)
    click.echo(render(root), nl=False)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=4566, show_default=True, type=click.IntRange(0, 65535),
              help="0 picks a free port.")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(0), show_default=True,
              help="Added to every request.")
@click.option("--quotas", type=click.Choice(["aws", "off"]), default="off", show_default=True,
              help="aws: answer ThrottlingException above AWS's default request quotas.")
@click.option("--consistency-lag", default=0.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="Reads may be this stale after a write.")
@click.option("--fault-rate", default=0.0, type=click.FloatRange(0, 1), show_default=True,
              metavar="FRACTION", help="Answer this fraction of requests KMSInternalException.")
@click.option("--time-scale", default=1.0, type=click.FloatRange(min=0, min_open=True),
              show_default=True, metavar="FACTOR", help="Emulated seconds per real second.")
@click.option("--deletion-lateness", default=0.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="Keys vanish up to this long after DeletionDate (AWS: 1d).")
@click.option("--connect-seconds", default=300.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="Emulated duration of CONNECTING.")
@click.option("--disconnect-seconds", default=60.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="Emulated duration of DISCONNECTING.")
@click.option("--seed", type=int, default=None, help="Deterministic IDs and randomness.")
@click.option("--key-usage-tracking-start", default="2026-04-23T00:00:00Z", show_default=True,
              metavar="ISO8601",
              help="GetKeyLastUsage tracks use from here (or from a later key creation).")
@click.option("--last-usage-delay", default=0.0, type=click.FloatRange(0), show_default=True,
              metavar="SECONDS", help="GetKeyLastUsage shows a use this long after it.")
def emulator(host: str, port: int, latency_ms: float, quotas: str, consistency_lag: float,
             fault_rate: float, time_scale: float, deletion_lateness: float,
             connect_seconds: float, disconnect_seconds: float, seed: int | None,
             key_usage_tracking_start: str, last_usage_delay: float) -> None:
    """Serve the KMS emulator (moto + custom key stores) over HTTP until Ctrl-C.

    Any Region and any credentials are accepted; CloudTrail LookupEvents and STS
    GetCallerIdentity answer on the same port. Control API: POST /_emulator/clock
    {"advance": SECONDS}, /_emulator/reset, /_emulator/seed, /_emulator/config.

    \b
    Example:
      ksdelete emulator --port 4566 --time-scale 3600 &
      AWS_ENDPOINT_URL=http://127.0.0.1:4566 ksdelete my-store --dry-run
    """
    try:
        from ksdelete.emulator import EmulatorConfig, serve
    except ImportError as exc:  # moto is an optional extra
        Invocation("emulator", output="text", quiet=False, debug=False).fail(
            UsageError(f"the emulator needs moto: {exc}", where="ksdelete emulator",
                       hint="pip install 'ksdelete[emulator]'"))
        return
    config = EmulatorConfig(
        latency_ms=latency_ms, quotas=quotas, consistency_lag=consistency_lag,
        fault_rate=fault_rate, time_scale=time_scale, deletion_lateness=deletion_lateness,
        connect_seconds=connect_seconds, disconnect_seconds=disconnect_seconds, seed=seed,
        key_usage_tracking_start=key_usage_tracking_start, last_usage_delay=last_usage_delay)
    try:
        config.check()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--key-usage-tracking-start") from exc
    serve(host, port, config)


@cli.command()
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the result.")
def demo(quiet: bool) -> None:
    """Run the whole pipeline against an embedded emulator with a fast clock.

    No AWS account or credentials needed: it seeds a realistic account (a CloudHSM store
    with a dozen keys, an external key store, a few thousand unrelated keys), then shows a
    dry run, the confirmation, scheduling, the waiting period, disconnect, delete, verify.
    """
    from ksdelete.demo import run_demo

    sys.exit(run_demo(quiet=quiet))
