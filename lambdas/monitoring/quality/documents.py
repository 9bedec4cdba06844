"""The model-quality monitor's documents, in Model Monitor's model-quality shapes
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html):

- ``statistics.json``: ``{"version": 0.0, "dataset": {"item_count"}, "binary_classification_metrics":
  {"confusion_matrix", <metric>: {"value", "standard_deviation"}, curves...}}`` with Model Monitor's
  metric names, plus ``log_loss`` and ``brier_score`` (ours, same shape); everything else is ours,
  under ``open_monitor``: each basis's figures with their 95 % intervals, the estimate, the counts.
  ``standard_deviation`` is the figure's standard error (``metrics``), "NaN" when undefined.
- ``constraints.json`` (baseline): ``{"version": 0.0, "binary_classification_constraints": {<metric>:
  {"threshold", "comparison_operator": "LessThanThreshold"}}}``, the threshold the test-set figure
  less the tolerance.
- ``constraint_violations.json``: ``{"violations": [{"constraint_check_type": <the comparison
  operator>, "description", "metric_name"}]}``.
- beside them, the label intake's parked lines (``intake``): ``rejected_labels.jsonl``, each line set
  aside with its reason, and ``unknown_labels.jsonl``, each label that names no captured prediction.

The baseline comes from the model's scores on its labelled test set: a CSV with the header
``label,probability`` (label 0 or 1, probability in [0, 1]); ``calibration.json`` holds the label-free
estimate's reference (``estimate``).
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from lambdas.monitoring.quality import labels as ground_truth, metrics
from lambdas.monitoring.quality.estimate import CALIBRATION_FILE, Calibration, CalibrationError, Reference
from lambdas.monitoring.quality.evaluation import Evaluation

STATISTICS_FILE, CONSTRAINTS_FILE, VIOLATIONS_FILE = "statistics.json", "constraints.json", "constraint_violations.json"
REJECTED_LABELS_FILE, UNKNOWN_LABELS_FILE = "rejected_labels.jsonl", "unknown_labels.jsonl"
UNKNOWN_LABEL = "no captured prediction has this eventId and rowIndex in the periods the label could label"
SHOWN_KEYS = 20  # what lies outside the hour folders, named in statistics.json and on the page (all counted)
BASELINE_FILES = (STATISTICS_FILE, CONSTRAINTS_FILE, CALIBRATION_FILE)
HEADER = ["label", "probability"]
CONSTRAINED = ("accuracy", "precision", "recall", "f1", "auc")
OPERATOR = "LessThanThreshold"
CUSTOM = "open_monitor"
# Our metrics beside Model Monitor's (the stack's alarms and dashboard read these names).
ESTIMATED_METRIC, VIOLATION_METRIC, LABELLED_ROWS_METRIC = "estimated_{metric}", "{metric}_violation", "labelled_rows"
# The figures the page and the metrics put first.
HEADLINE = ("accuracy", "precision", "recall", "f1", "auc", "log_loss", "brier_score")


class ScoresError(ValueError):
    """A test-set scores file that cannot be used: the message names the line and what is wrong."""


def read_scores(text: str, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of a ``label,probability`` CSV (the module docstring)."""
    lines = text.splitlines()
    header = [name.strip() for name in (lines[0] if lines else "").split(",")]
    if header != HEADER:
        raise ScoresError(f"test-set scores {source}: the header is {','.join(header)[:100]!r}, expected label,probability")
    labels, scores = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 2:
            raise ScoresError(f"test-set scores {source} line {number}: {len(fields)} fields, expected label,probability")
        try:
            label, score = float(fields[0]), float(fields[1])
        except ValueError as error:
            raise ScoresError(f"test-set scores {source} line {number}: {error}") from None
        if label not in (0.0, 1.0):
            raise ScoresError(f"test-set scores {source} line {number}: label {fields[0].strip()!r} is not 0 or 1")
        if not 0.0 <= score <= 1.0:
            raise ScoresError(f"test-set scores {source} line {number}: probability {fields[1].strip()!r} is not in [0, 1]")
        labels.append(label)
        scores.append(score)
    if not labels:
        raise ScoresError(f"test-set scores {source} has no rows")
    if len(set(labels)) < 2:
        raise ScoresError(f"test-set scores {source}: every label is {int(labels[0])}; the figures need both classes")
    return np.array(labels), np.array(scores)


def figure_documents(figures: metrics.Figures) -> dict[str, Any]:
    """Model Monitor's ``binary_classification_metrics`` of one basis."""
    documented: dict[str, Any] = {"confusion_matrix": figures.confusion}
    for name in metrics.DOCUMENTED:
        documented[name] = figures.figures[name].document()
    documented.update(figures.curves)
    for name in metrics.OURS:
        documented[name] = figures.figures[name].document()
    return documented


def basis_document(figures: metrics.Figures, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "rows": figures.rows,
        "weight": round(figures.weight, 6),
        "confusion_matrix": figures.confusion,
        "reliability": figures.reliability,
        "figures": {metric: {**figure.document(), "interval_95": figure.interval()} for metric, figure in figures.figures.items()},
    }


def baseline_documents(text: str, *, source: str, threshold: float, tolerance: float) -> dict[str, dict[str, Any]]:
    """``statistics.json``, ``constraints.json`` and ``calibration.json`` of the test-set scores."""
    labels, scores = read_scores(text, source=source)
    figures = metrics.compute(labels, scores, (scores >= threshold).astype(np.float64))
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": figures.rows},
        "binary_classification_metrics": figure_documents(figures),
        CUSTOM: {"source": source, "decision_threshold": threshold, "basis": "test set, unweighted"},
    }
    constraints = {
        "version": 0.0,
        "binary_classification_constraints": {
            name: {"threshold": round(figures.value(name) - tolerance, 6), "comparison_operator": OPERATOR}
            for name in CONSTRAINED
            if figures.figures[name].defined
        },
        CUSTOM: {"tolerance": tolerance, "rule": "a violation only when the figure's whole 95 % interval lies below its threshold"},
    }
    calibration = Calibration.of(Reference.of(labels, scores)).document()
    calibration["decision_threshold"] = threshold
    return {STATISTICS_FILE: statistics, CONSTRAINTS_FILE: constraints, CALIBRATION_FILE: calibration}


def empty_baseline(reason: str) -> dict[str, dict[str, Any]]:
    """The baseline of a model with no test-set scores: figures, but no constraints and no estimate."""
    return {
        STATISTICS_FILE: {"version": 0.0, "dataset": {"item_count": 0}, CUSTOM: {"no_reference": reason}},
        CONSTRAINTS_FILE: {"version": 0.0, "binary_classification_constraints": {}, CUSTOM: {"no_reference": reason}},
        CALIBRATION_FILE: {"version": 1, "method": "none", "reason": reason},
    }


def load_baseline(documents: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], Calibration | None, str | None]:
    """(constraints, calibration or None, why none) of the baseline's documents; ``CalibrationError``
    or ``ValueError`` for documents that are not this app's."""
    constraints = documents[CONSTRAINTS_FILE]
    if not isinstance(constraints, dict) or not isinstance(constraints.get("binary_classification_constraints"), dict):
        raise ValueError(f"{CONSTRAINTS_FILE} has no binary_classification_constraints object")
    found = constraints["binary_classification_constraints"]
    for name, constraint in found.items():
        if not isinstance(constraint, dict) or not isinstance(constraint.get("threshold"), (int, float)):
            raise ValueError(f"{CONSTRAINTS_FILE}: constraint {name!r} has no numeric threshold")
    calibration = documents[CALIBRATION_FILE]
    if isinstance(calibration, dict) and calibration.get("method") == "none":
        return found, None, f"no reference scores: {calibration.get('reason') or 'none given'}"
    return found, Calibration.from_document(calibration), None


def _jsonl(documents: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(document) + b"\n" for document in documents)


def intake(
    files: int,
    labels: Sequence[ground_truth.Label],
    joined: Container[ground_truth.Key],
    rejected: Sequence[ground_truth.RejectedLine],
    misplaced: Sequence[str] | None = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """What a run says of the labels that arrived, and the files that list what it could not use.

    ``joined``: the keys of rows the labels could join, in any period they could label; a label
    whose key is not there is counted and listed (``unknown_labels.jsonl``) with its file and line,
    as each malformed line is (``rejected_labels.jsonl``). ``misplaced`` (the deployed run; None
    locally): what lies under the ground-truth prefix outside its ``yyyy/mm/dd/hh/`` folders, which no
    run reads: files directly under it and folders that are not a year, by key."""
    unknown = [label for label in labels if label.key not in joined]
    parked: dict[str, bytes] = {}
    if rejected:
        parked[REJECTED_LABELS_FILE] = _jsonl(line.document() for line in rejected)
    if unknown:
        parked[UNKNOWN_LABELS_FILE] = _jsonl(
            {"source": label.source, "line": label.line, "eventId": label.record_id, "rowIndex": label.row_index, "label": label.value, "reason": UNKNOWN_LABEL}
            for label in unknown
        )  # fmt: skip
    summary: dict[str, Any] = {
        "files": files,
        "labels": len(labels),
        "unknown_ids": len(unknown),
        "unknown_file": UNKNOWN_LABELS_FILE if unknown else None,
        "rejected_lines": len(rejected),
        "rejected": ground_truth.reasons(rejected),
        "rejected_file": REJECTED_LABELS_FILE if rejected else None,
    }
    if misplaced is not None:
        summary["outside_hour_folders"] = {"count": len(misplaced), "keys": list(misplaced[:SHOWN_KEYS])}
    return summary, parked


def statistics(evaluation: Evaluation, custom: Mapping[str, Any]) -> dict[str, Any]:
    """The period's ``statistics.json``; ``custom``: what the caller adds under ``open_monitor``
    (the period, the captures, the inputs, the label intake)."""
    primary = evaluation.primary_figures
    document: dict[str, Any] = {"version": 0.0, "dataset": {"item_count": primary.rows if primary else 0}}
    if primary is not None:
        document["binary_classification_metrics"] = figure_documents(primary)
    ours: dict[str, Any] = {
        "basis": evaluation.primary,
        "basis_description": evaluation.description(evaluation.primary) if evaluation.primary else "no labels joined",
        "bases": {name: basis_document(figures, evaluation.description(name)) for name, figures in evaluation.bases.items()},
        "labels": {
            "joined": evaluation.joined,
            "without_inclusion_probability": evaluation.without_probability,
            "by_selection": evaluation.by_selection,
            "duplicates": evaluation.duplicates,
            "conflicting": evaluation.conflicts,
            "predictions_sharing_an_id": evaluation.shared_ids,
            "response": (
                {stratum: found.document() for stratum, found in evaluation.response.items()}
                if evaluation.response is not None
                else "unknown: the monitor is not told the review rule"
            ),
            "unrepresented": list(evaluation.unrepresented),
        },
        "estimate": evaluation.estimate.document() if evaluation.estimate is not None else {"none": evaluation.estimate_note},
        **custom,
    }
    document[CUSTOM] = ours
    return document


def violations(evaluation: Evaluation) -> dict[str, Any]:
    return {"violations": [violation.document() for violation in evaluation.violations]}


def metric_values(evaluation: Evaluation) -> dict[str, float]:
    """The run's CloudWatch metrics: Model Monitor's names for the period's figures (its basis), ours
    beside them (``log_loss``, ``brier_score``, ``estimated_<metric>``, ``labelled_rows``, and
    ``<metric>_violation``, 1 or 0, for each constrained figure that could be checked)."""
    values: dict[str, float] = {LABELLED_ROWS_METRIC: float(evaluation.joined)}
    primary = evaluation.primary_figures
    if primary is not None:
        for name in (*metrics.DOCUMENTED, *metrics.OURS):
            value = primary.value(name)
            if not math.isnan(value):
                values[name] = value
    if evaluation.estimate is not None:
        for name, figure in evaluation.estimate.figures.items():
            if figure.defined:
                values[ESTIMATED_METRIC.format(metric=name)] = figure.value
    for name, violated in evaluation.checked.items():
        values[VIOLATION_METRIC.format(metric=name)] = 1.0 if violated else 0.0
    return values


def summary(statistics_document: Mapping[str, Any], label: str) -> dict[str, Any]:
    """A period's point on the page's "recent periods" plot and table, read from its statistics.json:
    ``{"label", "end", "labelled", "basis", "realized": {metric: [value, low, high]}, "estimated": {...}}``."""
    ours = statistics_document.get(CUSTOM) or {}
    basis = ours.get("basis")
    realized = ((ours.get("bases") or {}).get(basis) or {}).get("figures") or {} if basis else {}
    estimated = (ours.get("estimate") or {}).get("figures") or {}

    def triples(figures: Mapping[str, Any]) -> dict[str, list[Any]]:
        found = {}
        for name in HEADLINE:
            figure = figures.get(name)
            if isinstance(figure, dict) and isinstance(figure.get("value"), (int, float)):
                low, high = (figure.get("interval_95") or [None, None])[:2]
                found[name] = [figure["value"], low if isinstance(low, (int, float)) else None, high if isinstance(high, (int, float)) else None]
        return found

    return {
        "label": label,
        "end": (ours.get("period") or {}).get("end", label),
        "labelled": (ours.get("labels") or {}).get("joined", 0),
        "basis": basis,
        "realized": triples(realized),
        "estimated": triples(estimated),
    }
