"""``make rehearse`` (``python -m local.rehearse``): the whole loop, offline, in simulated time.

    python -m local.rehearse [--env dev] [--out rehearsal] [--hours 24] [--traffic file.csv]
                             [--reviewers simulated|browser] [--error-rate 0.0]

Exit codes: 0 the rehearsal ran (its summary says what the loop did), 1 a stage did not hand over
(the error names it), 2 a bad argument.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from local.cli import UsageError, environment_config, main as cli_main
from local.rehearse.clock import DEFAULT_START
from local.rehearse.run import REVIEWERS, Rehearsal, RehearsalError, Settings, default_start


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="make rehearse", description="Rehearse the deployed loop on this machine: serve, capture, monitor, review, label, retrain.")
    parse.add_argument("--env", default="dev", help="an environment of cdk.json (default dev)")
    parse.add_argument("--out", type=Path, default=Path("rehearsal"), help="output folder: index.html, summary.json, s3/ (default rehearsal)")
    parse.add_argument("--hours", type=int, default=24, help="simulated hours (default 24)")
    parse.add_argument("--traffic", type=Path, help="CSV without header: label first, then the model's features, one request a line, spread evenly over the hours")
    parse.add_argument("--reviewers", default="simulated", help=f"{' or '.join(REVIEWERS)} (default simulated)")
    parse.add_argument("--error-rate", type=float, default=0.0, help="share of the simulated reviewers' answers that are wrong (default 0)")
    parse.add_argument("--review-delay-hours", type=int, default=1, help="hours before a task is answered (default 1: labels arrive late)")
    parse.add_argument("--start", help=f"simulated start, ISO 8601 UTC (default {DEFAULT_START.isoformat()}; batch only, 20 hours before the next nightly run)")
    parse.add_argument("--per-hour", type=int, help="requests an hour of the default traffic (default: the traffic module's)")
    parse.add_argument("--seed", type=int, default=0, help="seed of the reviewers' mistakes (default 0)")
    return parse


def _start(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--start {text!r} is not an ISO 8601 time, e.g. {DEFAULT_START.isoformat()}") from None
    if moment.tzinfo is None:
        raise UsageError(f"--start {text!r} has no time zone: add Z or +00:00")
    return moment


def run(args: argparse.Namespace) -> int:
    config = environment_config(args.env)  # a bad ENV is a usage error naming the environments
    start = _start(args.start) if args.start else default_start(config)
    settings = Settings(
        environment=args.env, out=args.out, hours=args.hours, traffic=args.traffic, reviewers=args.reviewers,
        error_rate=args.error_rate, review_delay_hours=args.review_delay_hours, start=start, seed=args.seed, per_hour=args.per_hour,
    )  # fmt: skip
    try:
        settings.check()
    except RehearsalError as error:
        raise UsageError(str(error)) from None
    try:
        Rehearsal(settings).run()
    except RehearsalError as error:
        print(f"rehearsal stopped: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
