"""``python -m ksdelete.emulator``: run the KMS emulator (same flags as ``ksdelete emulator``)."""

from __future__ import annotations

import argparse
import sys

from .config import DEFAULT_TRACKING_START, EmulatorConfig
from .server import serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ksdelete.emulator",
        description="Run the KMS emulator (moto + custom key stores).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, metavar="MS")
    parser.add_argument("--quotas", choices=("aws", "off"), default="off")
    parser.add_argument("--consistency-lag", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--fault-rate", type=float, default=0.0, metavar="FRACTION")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="FACTOR")
    parser.add_argument("--deletion-lateness", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--connect-seconds", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument("--disconnect-seconds", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--key-usage-tracking-start",
        default=DEFAULT_TRACKING_START,
        metavar="ISO8601",
        help="GetKeyLastUsage's tracking start for keys created before it",
    )
    parser.add_argument("--last-usage-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="skip request/response shape validation",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = EmulatorConfig(
        latency_ms=args.latency_ms,
        quotas=args.quotas,
        consistency_lag=args.consistency_lag,
        fault_rate=args.fault_rate,
        time_scale=args.time_scale,
        deletion_lateness=args.deletion_lateness,
        connect_seconds=args.connect_seconds,
        disconnect_seconds=args.disconnect_seconds,
        validate=args.validate,
        seed=args.seed,
        key_usage_tracking_start=args.key_usage_tracking_start,
        last_usage_delay=args.last_usage_delay,
    )
    try:
        config.check()
    except ValueError as exc:
        print(f"python -m ksdelete.emulator: error: {exc}", file=sys.stderr)
        return 2
    serve(args.host, args.port, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
