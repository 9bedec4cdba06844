"""Model quality of local capture files and ground-truth files, with the deployed monitor's code.

    make quality-report CAPTURE="<capture .jsonl files>" [LABELS="<ground-truth .jsonl files>"] OUT=<dir> [SCORES=<csv>] [ENV=<env>]

Reads the capture files with the capture parser (score path and features path from the
environment's model configuration), the ground-truth files (Model Monitor's format, with
``sampling`` where known), joins them by (record ID, row index) and evaluates them as the deployed
monitor evaluates a period (``lambdas.monitoring.quality.evaluation``): the realized figures on
each basis with their 95 % intervals, the label-free estimate (CBPE) against the test-set scores,
and the constraint check. Without LABELS only the estimate is computed. The test-set scores are
SCORES (a CSV with the header ``label,probability``), else the environment's bundled model's
(``test-scores.csv``); with your own model and none, no constraints and no estimate.

Two labels for one row: the later file on the command line wins (then the later line). Labels for
no captured row are counted (unknown IDs); malformed lines are set aside with their reasons in
``rejected_labels.jsonl``. Writes statistics.json, constraint_violations.json and report.html into
OUT, prints the headline figures and one line per violation. Exit code 0 with or without
violations; 2 on a usage error (nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from lambdas.capture.records import ParseOptions
from lambdas.capture.selection import Audit, SelectionRule
from lambdas.monitoring.quality import documents, labels as ground_truth, report
from lambdas.monitoring.quality.evaluation import Captured, Evaluation, evaluate
from local import cli
from local.cli import UsageError, environment_config, input_files

USAGE = 'make quality-report CAPTURE="<capture .jsonl files or folders>" [LABELS="<ground-truth .jsonl files or folders>"] OUT=<dir> [SCORES=<csv>] [ENV=<env>]'
DECISION_THRESHOLD = 0.5  # the capture filter's and the deployed monitor's default (DECISION_THRESHOLD)


def reference(path: Path | None, config, tolerance: float) -> tuple[dict[str, Any], str]:
    """The baseline documents (statistics, constraints, calibration) and where they came from."""
    if path is None:
        dataset = config.monitoring.model_quality.dataset_s3_uri
        if dataset is not None:
            raise UsageError(
                f"environment {config.environment!r} names its test-set scores {dataset} in S3 "
                f"(monitoring.model_quality.dataset_s3_uri): copy them down (aws s3 cp {dataset} scores.csv) and give SCORES=scores.csv"
            )
        if not config.model.is_bundled:
            return documents.empty_baseline(f"environment {config.environment!r} serves its own model and names no test-set scores"), "none"
        from stacks.shared.default_model import TEST_SCORES_CSV

        path = TEST_SCORES_CSV
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"SCORES {path}: cannot read it ({error})") from None
    try:
        return documents.baseline_documents(text, source=str(path), threshold=DECISION_THRESHOLD, tolerance=tolerance), str(path)
    except documents.ScoresError as error:
        raise UsageError(f"SCORES {error}") from None


def read_labels(paths: list[Path]) -> tuple[list[ground_truth.Label], list[ground_truth.RejectedLine]]:
    """Every label of the files; a later file's label of a row wins (its position is its arrival)."""
    found, rejected = [], []
    for position, path in enumerate(paths):
        try:
            body = path.read_bytes()
        except OSError as error:
            raise UsageError(f"LABELS {path}: cannot read it ({error})") from None
        labels, parked = ground_truth.read_file(body, str(path), position)
        found += labels
        rejected += parked
    return found, rejected


def shown_names(paths: list[Path]) -> list[str]:
    """Each file's name, or its path below the files' common folder when names repeat (a prefix
    copied down holds a part.jsonl in every hour's folder)."""
    names = [path.name for path in paths]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath([path.resolve().parent for path in paths]))
    return [path.resolve().relative_to(common).as_posix() for path in paths]


def summary_lines(evaluation: Evaluation) -> list[str]:
    lines = []
    for name, figures in evaluation.bases.items():
        shown = []
        for metric in documents.HEADLINE:
            figure = figures.figures[metric]
            if figure.defined:
                interval = f" [{figure.low:.4f}, {figure.high:.4f}]" if figure.low == figure.low else ""
                shown.append(f"{metric} {figure.value:.4f}{interval}")
        lines.append(f"{name}: {evaluation.description(name)}; {figures.rows} rows: {', '.join(shown)}")
    if evaluation.estimate is not None:
        shown = [f"{name} {f.value:.4f} [{f.low:.4f}, {f.high:.4f}]" for name, f in evaluation.estimate.figures.items() if f.defined]
        lines.append(f"estimated (from the scores, no labels; {evaluation.estimate.rows} rows): {', '.join(shown)}")
    else:
        lines.append(f"no estimate: {evaluation.estimate_note}")
    if evaluation.unrepresented:
        lines.append(f"warning: {report.unrepresented_note(evaluation.unrepresented)}")
    lines += [f"{v.metric}: {v.operator}: {v.document()['description']}" for v in evaluation.violations]
    return lines


def run(args: argparse.Namespace) -> int:
    args.capture, args.labels = input_files("CAPTURE", args.capture), input_files("LABELS", args.labels)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"OUT {args.out} exists and is not a directory")
    config = environment_config(args.env)
    quality = config.monitoring.model_quality
    baseline, source = reference(args.scores, config, quality.tolerance)
    constraints, calibration, note = documents.load_baseline(baseline)

    labels, rejected = read_labels(args.labels)
    latest = ground_truth.latest(labels)
    review = config.review
    captured = Captured(
        latest.labels,
        ParseOptions(score_path=config.model.score_path, features_path=config.model.features_path, threshold=DECISION_THRESHOLD),
        SelectionRule(review.rule, review.lower, review.upper, review.outcome) if review.enabled else None,
        Audit(review.audit_percentage) if review.enabled and review.audit_percentage else None,
    )
    for path in args.capture:
        try:
            captured.add(path.read_bytes())
        except OSError as error:
            raise UsageError(f"CAPTURE {path}: cannot read it ({error})") from None
    evaluation = evaluate(
        captured, latest, threshold=DECISION_THRESHOLD, calibration=calibration, calibration_note=note,
        constraints=constraints, estimate_on=quality.estimate,
    )  # fmt: skip
    intake, parked = documents.intake(len(args.labels), labels, captured.joined, rejected)
    window = f"the {len(args.capture)} capture file(s) given: {', '.join(shown_names(args.capture)[:5])}{', ...' if len(args.capture) > 5 else ''}"
    labels_window = f"the {len(args.labels)} ground-truth file(s) given" if args.labels else "no ground-truth files given: the estimate only"
    custom = {"period": {"capture_files": [str(p) for p in args.capture]}, "label_window": labels_window, "captures": captured.document(),
              "intake": intake, "decision_threshold": DECISION_THRESHOLD, "test_set_scores": source}  # fmt: skip
    statistics = documents.statistics(evaluation, custom)
    page = report.render(
        evaluation, baseline[documents.STATISTICS_FILE], constraints, calibration,
        report.Page(environment=config.environment, window=window, labels_window=labels_window, captured=captured.document(),
                    intake=intake, tolerance=quality.tolerance),
        documents.summary(statistics, "these files"),
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / documents.STATISTICS_FILE).write_bytes(orjson.dumps(statistics, option=orjson.OPT_INDENT_2))
    (args.out / documents.VIOLATIONS_FILE).write_bytes(orjson.dumps(documents.violations(evaluation), option=orjson.OPT_INDENT_2))
    (args.out / report.REPORT_FILE).write_text(page, encoding="utf-8")
    for name in (documents.REJECTED_LABELS_FILE, documents.UNKNOWN_LABELS_FILE):
        if name in parked:
            (args.out / name).write_bytes(parked[name])
        else:
            (args.out / name).unlink(missing_ok=True)  # from an earlier run into the same folder: it would describe other files

    for line in summary_lines(evaluation):
        print(line)
    not_read = sum(captured.rejected.values())
    reasons = f" ({'; '.join(f'{r}: {n}' for r, n in captured.rejected.most_common())})" if not_read else ""
    if not captured.rows:
        print(f"warning: no prediction could be read from the {captured.files} capture file(s){reasons}: are they SageMaker data-capture files "
              f"of a model whose score is at score_path {config.model.score_path or '(the whole output)'}?", file=sys.stderr)  # fmt: skip
    if labels and not evaluation.joined:
        print(f"warning: none of the {len(labels)} label(s) matches a captured row: are these labels for these capture files? "
              "(a label joins by its eventMetadata.eventId: the capture's inferenceId, else its eventId)", file=sys.stderr)  # fmt: skip
    written = [documents.STATISTICS_FILE, documents.VIOLATIONS_FILE, report.REPORT_FILE, *parked]
    duplicates = f", {evaluation.duplicates} labelled more than once ({evaluation.conflicts} disagreeing: the later label counts)" if evaluation.duplicates else ""
    print(
        f"env {config.environment}: {captured.files} capture file(s), {captured.rows} rows, {not_read} not read{reasons}; "
        f"{len(labels)} label(s), {evaluation.joined} joined{duplicates}, {intake['unknown_ids']} for no captured row, {len(rejected)} line(s) set aside; "
        f"test-set scores {source}; {len(evaluation.violations)} violation(s); written to {args.out}/{{{','.join(written)}}}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.quality_report", usage=USAGE, description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path, nargs="+", help="capture .jsonl files, or folders of them (every .jsonl below, in name order)")
    parser.add_argument("--labels", type=Path, nargs="*", default=[], help="ground-truth .jsonl files (Model Monitor's format), or folders of them; a later file's label of a row wins")
    parser.add_argument("--out", type=Path, required=True, help="directory for statistics.json, constraint_violations.json, report.html")
    parser.add_argument("--scores", type=Path, default=None, help="the model's test-set scores (CSV: label,probability)")
    parser.add_argument("--env", default="dev", help="environment in cdk.json (default dev)")
    return cli.main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
