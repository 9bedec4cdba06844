"""Data-quality drift of local capture files against a baseline, with the deployed monitor's code.

    make drift-report CAPTURE="<capture .jsonl files>" OUT=<dir> [BASELINE=<csv>] [ENV=<env>]

Reads each capture file with the capture parser (score path and features path from the
environment's model configuration), profiles it into one sketch, merges the sketches and evaluates
them against the baseline computed from BASELINE (default: the environment's baseline dataset when
it is the bundled one) as the deployed evaluator does. Writes statistics.json,
constraint_violations.json and report.html into OUT, prints one line per violation and a summary.
Exit code 0 with or without violations; 2 on a usage error (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import orjson

from lambdas.capture.records import ParseOptions, PredictionRow, parse_line
from lambdas.monitoring.drift import report
from lambdas.monitoring.drift.baseline import STATISTICS_FILE, BaselineError, baseline_documents, load
from lambdas.monitoring.drift.evaluate import BASELINE_DRIFT, VIOLATIONS_FILE, Evaluation, evaluate
from lambdas.monitoring.drift.sketch import BATCH_ROWS, Layout, Sketch, dumps
from local import cli
from local.cli import UsageError, environment_config, input_files

USAGE = 'make drift-report CAPTURE="<capture .jsonl files or folders>" OUT=<dir> [BASELINE=<csv>] [ENV=<env>]'


def baseline_text(path: Path | None, config) -> tuple[str, str]:
    """(dataset text, where it came from): BASELINE, else the environment's bundled dataset."""
    if path is None:
        dataset = config.monitoring.data_quality.dataset_s3_uri
        if dataset is not None:
            raise UsageError(
                f"environment {config.environment!r} names its baseline dataset {dataset} in S3 "
                f"(monitoring.data_quality.dataset_s3_uri): copy it down (aws s3 cp {dataset} baseline.csv) and give BASELINE=baseline.csv"
            )
        if not config.model.is_bundled:
            raise UsageError(
                f"environment {config.environment!r} serves its own model and names no baseline dataset: give BASELINE=<csv> "
                "(a header row: probability, then the model's features)"
            )
        from stacks.shared.default_model import BASELINE_CSV

        path = BASELINE_CSV
    try:
        return path.read_text(), str(path)
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"BASELINE {path}: cannot read it ({error})") from None


def profile_capture(
    path: Path, layout: Layout, options: ParseOptions, reasons: Counter[str], times: list[str]
) -> tuple[Sketch, report.CaptureFile]:
    """One capture file as one sketch (as the deployed profiler makes one per capture object)."""
    sketch = Sketch.empty(layout)
    records = rejected = 0
    pending: list[PredictionRow] = []
    try:
        with path.open("rb") as stream:  # line by line: never the whole file in memory
            for number, line in enumerate(stream, start=1):
                result = parse_line(line, number, options)
                if result.blank:
                    continue
                records += 1
                rejected += len(result.rejected)
                for item in result.rejected:
                    reasons[item.reason.split(":")[0]] += 1
                pending += result.rows
                times += [row.inference_time for row in result.rows if row.inference_time]
                if len(pending) >= BATCH_ROWS:  # folded a batch at a time, as the deployed profiler does
                    sketch.add_rows(layout, [row.probability for row in pending], [row.features for row in pending])
                    pending = []
        sketch.add_rows(layout, [row.probability for row in pending], [row.features for row in pending])
    except OSError as error:
        raise UsageError(f"CAPTURE {path}: cannot read it ({error})") from None
    return sketch, report.CaptureFile(str(path), records, sketch.rows + sketch.rejected_rows, rejected)


def summary_lines(evaluation: Evaluation, threshold: float) -> list[str]:
    drift = {d.name: d for d in evaluation.drift}
    lines = []
    for violation in evaluation.violations["violations"]:
        name, check = violation["feature_name"], violation["constraint_check_type"]
        found = drift.get(name)
        if check == BASELINE_DRIFT and found is not None:
            detail = (
                f"distance {found.distance:.4f} > threshold {threshold:g} and KS critical value {found.critical_value:.4f} "
                f"at alpha {found.level:.3g} ({found.baseline_count} baseline, {found.current_count} current values)"
            )
        else:
            detail = violation["description"]
        lines.append(f"{name}: {check}: {detail}")
    return lines


def run(args: argparse.Namespace) -> int:
    args.capture = input_files("CAPTURE", args.capture)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"OUT {args.out} exists and is not a directory")
    config = environment_config(args.env)
    text, source = baseline_text(args.baseline, config)
    threshold = config.monitoring.data_quality.drift_threshold
    try:
        documents = baseline_documents(text, threshold=threshold)
        baseline = load(documents[STATISTICS_FILE], documents["constraints.json"])
    except BaselineError as error:
        raise UsageError(f"BASELINE {source}: {error}") from None

    model = config.model
    options = ParseOptions(score_path=model.score_path, features_path=model.features_path)
    reasons: Counter[str] = Counter()
    times: list[str] = []
    sketches, captures = [], []
    for path in args.capture:
        sketch, capture = profile_capture(path, baseline.layout, options, reasons, times)
        sketches.append((path.name, dumps(sketch)))  # serialised and read back, as sketch files are
        captures.append(capture)
    evaluation = evaluate(baseline, sketches)

    period = report.Period(
        environment=config.environment,
        captures=tuple(captures),
        first_inference=min(times, default=None),
        last_inference=max(times, default=None),
        rejected_reasons=dict(reasons.most_common()),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / STATISTICS_FILE).write_bytes(orjson.dumps(evaluation.statistics, option=orjson.OPT_INDENT_2))
    (args.out / VIOLATIONS_FILE).write_bytes(orjson.dumps(evaluation.violations, option=orjson.OPT_INDENT_2))
    (args.out / report.REPORT_FILE).write_text(report.render(evaluation, documents[STATISTICS_FILE], period), encoding="utf-8")

    for line in summary_lines(evaluation, baseline.threshold):
        print(line)
    features = sorted({v["feature_name"] for v in evaluation.violations["violations"]})
    rejected = f" ({'; '.join(f'{r}: {n}' for r, n in reasons.most_common())})" if reasons else ""
    outcome = evaluation.no_data or (
        f"{len(evaluation.violations['violations'])} violation(s) in {len(features)} feature(s)" if features else "no violations"
    )
    if evaluation.too_few:
        outcome += f" (drift: {evaluation.too_few})"
    if evaluation.drift:
        outcome += f"; drift test: {evaluation.drift_rule}"
    print(
        f"env {config.environment}: {len(captures)} capture file(s), {evaluation.statistics['dataset']['item_count']} rows profiled, "
        f"{period.rejected} rejected{rejected}; baseline {source}; {outcome}; written to {args.out}/"
        f"{{{STATISTICS_FILE},{VIOLATIONS_FILE},{report.REPORT_FILE}}}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.drift_report", usage=USAGE, description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path, nargs="+", help="capture .jsonl files (one sketch each), or folders of them (every .jsonl below, in name order)")
    parser.add_argument("--out", type=Path, required=True, help="directory for statistics.json, constraint_violations.json, report.html")
    parser.add_argument("--baseline", type=Path, default=None, help="baseline CSV (header: probability, then the features)")
    parser.add_argument("--env", default="dev", help="environment in cdk.json (default dev)")
    return cli.main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
