"""Preview which captured predictions would go to human review, from local capture files.

    make review-preview [CAPTURE=capture.jsonl|folder] [ENV=dev] [ARGS="--lower 0.1 --upper 0.9 --score-path score
                                                                 --rule band|outcome --outcome 0"]

The rule, its thresholds and the model's score and features paths are the environment's (``--env``,
from cdk.json); a flag overrides one. Prints one JSON object per selected row on stdout and a
one-line summary on stderr. Bad lines are counted with their reasons, never fatal: use it to tune
thresholds on real capture files. A folder stands for every ``.jsonl`` file below it, as
``aws s3 cp --recursive`` leaves a capture prefix (the report commands read folders the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from lambdas.capture.records import ParseOptions, parse_line
from lambdas.capture.selection import RULES, SelectionRule
from local.cli import UsageError, input_files


def environment_defaults(environment: str) -> dict:
    """The review rule and parse paths of ``environment`` in cdk.json; imported here: only this
    command needs the stacks package (the deployed filter gets them as settings)."""
    from stacks.shared.config import load_environment

    config = load_environment(environment)
    review, model = config.review, config.model
    return {
        "rule": review.rule, "lower": review.lower, "upper": review.upper, "outcome": review.outcome,
        "score_path": model.score_path, "features_path": model.features_path, "feature_count": len(model.feature_names),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make review-preview CAPTURE=<file or folder> ENV=<env> ARGS=...", description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="+", type=Path, help="capture files, or folders of them (every .jsonl below, in name order)")
    parser.add_argument("--env", default=None, help="take the rule, thresholds and paths from this environment of cdk.json (make: ENV, default dev)")
    parser.add_argument("--rule", choices=RULES, default="band")
    parser.add_argument("--lower", type=float, default=0.1, help="band: select p > lower (default: the environment's, else 0.1)")
    parser.add_argument("--upper", type=float, default=0.9, help="band: select p < upper (default: the environment's, else 0.9)")
    parser.add_argument("--outcome", type=int, default=0, help="outcome: select this predicted label (default: the environment's, else 0)")
    parser.add_argument("--score-path", default=None, help="JMESPath to the probability in JSON output, e.g. score")
    parser.add_argument("--features-path", default="features", help="JMESPath to the features in JSON input")
    parser.set_defaults(feature_count=None)  # the environment's, to warn of a file from another model
    known, _ = parser.parse_known_args(argv)
    if known.env is not None:
        from stacks.shared.config import ConfigError

        try:
            parser.set_defaults(**environment_defaults(known.env))
        except ConfigError as error:
            parser.error(str(error))
    args = parser.parse_args(argv)
    rule_from = f"environment {args.env!r}" if args.env else "the flags"
    print(
        f"rule: {args.rule} ({f'{args.lower} < p < {args.upper}' if args.rule == 'band' else f'predicted label {args.outcome}'}), from {rule_from}",
        file=sys.stderr,
    )
    try:
        rule = SelectionRule(rule=args.rule, lower=args.lower, upper=args.upper, outcome=args.outcome)
    except ValueError as error:
        parser.error(str(error))
    try:
        files = input_files("CAPTURE", args.capture)
    except UsageError as error:
        parser.error(str(error))
    options = ParseOptions(score_path=args.score_path, features_path=args.features_path, keep=rule.selects_prediction)

    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for path in files:
        with path.open("rb") as stream:  # line by line: never the whole file in memory
            for number, line in enumerate(stream, start=1):
                result = parse_line(line, number, options)
                counts["blank" if result.blank else "records"] += 1
                counts["rows"] += len(result.rows) + result.skipped
                counts["rejected"] += len(result.rejected)
                for rejected in result.rejected:
                    reasons[rejected.reason.split(":")[0]] += 1
                    print(f"{path} line {number}: rejected: {rejected.reason}", file=sys.stderr)
                for row in result.rows:  # only the selected rows are materialised
                    counts["selected"] += 1
                    if args.feature_count is not None and len(row.features) != args.feature_count:
                        counts["other shape"] += 1
                    print(json.dumps({**row.to_json(), "captureFile": str(path), "line": number}))
    detail = "; ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
    print("the rows listed are the rule's; the deployed filter also sends an audit sample of the others (review.audit_percentage), not listed", file=sys.stderr)
    print(
        f"records read: {counts['records']}, rows: {counts['rows']}, selected: {counts['selected']}, "
        f"rejected: {counts['rejected']}" + (f" ({detail})" if detail else "") + (f", blank lines: {counts['blank']}" if counts["blank"] else ""),
        file=sys.stderr,
    )
    if counts["other shape"]:
        print(
            f"warning: {counts['other shape']} selected row(s) do not have the {args.feature_count} features of environment "
            f"{args.env!r} (model.feature_names): is this file from that environment's endpoint?",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    try:
        status = main()
        sys.stdout.flush()  # a reader gone since the last write shows here, inside the try
    except BrokenPipeError:
        # The reader stopped early (`make review-preview | head -3`): it has the rows it wanted, so stop
        # with no traceback and no error for make to report. Python flushes stdout again at exit: point
        # it at /dev/null so that flush cannot fail too (Python's documented way, signal: "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 0
    sys.exit(status)
