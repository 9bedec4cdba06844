"""Lambda: the open back end's feature-attribution run, an EventBridge Scheduler target (daily by default).

Each run merges the uniform row samples the capture Lambda kept for the period's hours
(``explainability/samples/<hour>/<capture key>.json``, ``lambdas.monitoring.drift.sample``), computes
exact TreeSHAP values of the sampled rows with the model the endpoint serves now
(``lambdas.shared.explain``), takes each feature's mean |SHAP| (Clarify's ``mean_abs`` global SHAP
value, here in log-odds) and compares the ranking with the baseline's
(``explainability/current/analysis.json``) by nDCG as Clarify does:

    nDCG = DCG / iDCG,  DCG = sum_i a(f'_i) / log2(i + 1),  iDCG = sum_i a(f_i) / log2(i + 1)

with ``a`` the baseline's attribution of a feature, ``f`` the features by baseline attribution and
``f'`` by the period's (https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-model-monitor-feature-attribution-drift.html;
Clarify's violations page points to ``sklearn.metrics.ndcg_score``, whose handling of ties this
follows: tied features share the mean of their gains). Below ``NDCG_THRESHOLD`` (0.90, Clarify's)
the run reports a ``feature_attribution_drift_check`` violation. It writes

- ``analysis.json`` (Clarify's shape, method ``tree_shap``), ``constraint_violations.json`` (Clarify's
  format) and ``report.html`` into the run's report folder, and ``latest.json`` (the run marker);
- ``feature_<feature>`` (mean |SHAP|) and ``feature_attribution_ndcg`` by Endpoint and
  MonitoringSchedule, and ``MonitoringRuns``;
- the "Monitoring Run Ended" event.

A sample file that does not parse or has another number of columns is set aside with its reason;
a row with text, NaN, infinity, a value beyond the float32 range (``sketch.RANGE_LIMIT``: the model
reads float32, where it is infinity) or a missing value is counted by reason and not explained; a period
without explainable rows is a Completed run that says why, with no metric and no violation. A
model the app cannot explain, a missing baseline, or a baseline or model whose features are not
the configured ones (a model change of feature count) is a Failed run that says why. S3, SageMaker
and EventBridge errors fail the invocation and the scheduler retries it (the files are overwritten).

The baseline (``baseline_analysis``) is computed by the same code from the baseline dataset's rows.
It ignores ``monitoring.explainability.shap_baseline``: that is KernelSHAP's background record,
which decides what Clarify's SHAP values are relative to; TreeSHAP (``pred_contribs``) takes its
background from the trees themselves (the training rows' cover at each split), so a background
record has no place in it, and the baseline and the runs use the same reference.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from lambdas.monitoring.drift import report, sample
from lambdas.monitoring.drift.sketch import RANGE_LIMIT
from lambdas.monitoring.open import common
from lambdas.monitoring.runs import runs
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, from_environment, logger
from lambdas.shared.explain.deployed_model import DeployedModel
from lambdas.shared.explain.results import Unexplainable
from lambdas.shared.explain.tree import TreeExplainer

MONITOR = "explainability"  # the event's "monitor", and the monitor's folder in the monitoring bucket
SAMPLES_PREFIX = f"{MONITOR}/samples"
BASELINE_KEY = f"{MONITOR}/current/analysis.json"
ANALYSIS_FILE = "analysis.json"
VIOLATIONS_FILE = runs.VIOLATIONS_FILE
# Clarify's analysis.json (explanations -> kernel_shap -> label -> global_shap_values, expected_value):
# https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-processing-job-analysis-results.html; the
# app's method is exact TreeSHAP, so its key says so.
METHOD = "tree_shap"
AGG_METHOD = "mean_abs"
# Clarify's violations file (label, metric_name "shap", constraint_check_type, description) and its
# nDCG threshold: https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-model-monitor-model-attribution-drift-violations.html
CHECK_TYPE = "feature_attribution_drift_check"
METRIC_NAME = "shap"
DEFAULT_NDCG_THRESHOLD = 0.9
# Clarify's per-feature metric, "feature_" + the feature's name (its global SHAP value):
# https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-feature-attribute-drift-cw.html
FEATURE_METRIC = "feature_{feature}"
NDCG_METRIC = "feature_attribution_ndcg"  # the app's own: Clarify publishes no nDCG metric


class BaselineMismatch(ValueError):
    """The baseline or the model cannot be compared with the configured features: the run fails with this reason."""


# --- nDCG -----------------------------------------------------------------------------------------


def ndcg(baseline: Mapping[str, float], current: Mapping[str, float]) -> float:
    """Clarify's nDCG of the period's attribution ranking against the baseline's (module docstring).

    Both map the same features to attributions (>= 0). Features the period ties are given the mean
    of their baseline attributions over the positions they share, as ``sklearn.metrics.ndcg_score``
    does, so the score does not depend on the features' order. 0 when every baseline attribution is
    0 (scikit-learn's convention: nothing is relevant).
    """
    if set(baseline) != set(current):
        raise ValueError(f"the two rankings have different features: {sorted(set(baseline) ^ set(current))}")
    names = list(baseline)
    discounts = [1 / math.log2(i + 2) for i in range(len(names))]
    ideal = sum(gain * discount for gain, discount in zip(sorted(baseline.values(), reverse=True), discounts))
    if ideal == 0:
        return 0.0
    gained, position = 0.0, 0
    for _, tied in _groups(names, current):
        mean_gain = sum(baseline[name] for name in tied) / len(tied)
        gained += mean_gain * sum(discounts[position : position + len(tied)])
        position += len(tied)
    return gained / ideal


def _groups(names: Sequence[str], scores: Mapping[str, float]) -> list[tuple[float, list[str]]]:
    """Features grouped by equal score, highest first."""
    groups: dict[float, list[str]] = {}
    for name in names:
        groups.setdefault(scores[name], []).append(name)
    return sorted(groups.items(), key=lambda item: -item[0])


# --- attributions of rows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Attributions:
    """The global SHAP values of a set of rows, and what was not explained."""

    global_values: dict[str, float]  # feature -> mean |SHAP| (log-odds); empty when no row was explained
    expected_value: float | None  # the model's base value (log-odds)
    explained: int
    not_explained: dict[str, int] = field(default_factory=dict)  # reason -> rows


def _row_problem(row: Any, names: Sequence[str]) -> tuple[list[float] | None, str | None]:
    """The row as numbers, or why it cannot be explained (the first problem found)."""
    if not isinstance(row, (list, tuple)):
        return None, "not a list of feature values"
    if len(row) != len(names):
        return None, f"{len(row)} feature values, the model takes {len(names)}"
    numbers = []
    for name, value in zip(names, row):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None, f"missing value in {name}"
        if isinstance(value, bool):
            return None, f"text in {name}"
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None, f"text in {name}"
        if math.isnan(number):
            return None, f"NaN in {name}"
        if math.isinf(number):
            return None, f"infinity in {name}"
        if abs(number) > RANGE_LIMIT:  # the model reads float32, where it would be infinity
            return None, f"value beyond the float32 range in {name}"
        numbers.append(number)
    return numbers, None


def check_model(explainer: TreeExplainer, feature_names: Sequence[str]) -> None:
    if explainer.feature_count != len(feature_names):
        raise BaselineMismatch(
            f"model {explainer.model_name} takes {explainer.feature_count} features but {len(feature_names)} feature names are "
            "configured (model.feature_names): the model's feature count changed; deploy with its feature names"
        )


def attributions(explainer: TreeExplainer, rows: Iterable[Any], feature_names: Sequence[str]) -> Attributions:
    """Exact TreeSHAP of every row whose values are all finite numbers; the others counted by reason."""
    check_model(explainer, feature_names)
    readable: list[list[float]] = []
    problems: Counter[str] = Counter()
    for row in rows:
        numbers, problem = _row_problem(row, feature_names)
        if problem is not None:
            problems[problem] += 1
        else:
            readable.append(numbers)
    if not readable:
        return Attributions({}, None, 0, dict(sorted(problems.items())))
    contributions, _ = explainer.contributions(np.asarray(readable, dtype=np.float32))
    means = np.abs(contributions[:, :-1].astype(np.float64)).mean(axis=0)
    return Attributions(
        global_values={name: float(value) for name, value in zip(feature_names, means)},
        expected_value=float(contributions[0, -1]),
        explained=len(readable),
        not_explained=dict(sorted(problems.items())),
    )


def analysis_document(result: Attributions, label: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Clarify's analysis.json (explanations -> method -> label -> global SHAP values and expected
    value), method ``tree_shap``; what Clarify's has no field for goes under ``open_monitor``."""
    explanations = {}
    if result.global_values:
        explanations = {METHOD: {label: {"global_shap_values": result.global_values, "expected_value": result.expected_value}}}
    return {
        "version": "1.0",
        "explanations": explanations,
        "open_monitor": {
            "agg_method": AGG_METHOD,
            "units": "log-odds (the model's margin)",
            "rows_explained": result.explained,
            "rows_not_explained": result.not_explained,
            **extra,
        },
    }


def baseline_analysis(booster: Any, rows: Iterable[Any], feature_names: Sequence[str], label: str) -> dict[str, Any]:
    """The baseline's analysis.json: global mean |SHAP| per feature of the baseline dataset's rows
    (feature values only, no label) under ``booster``. ``ValueError`` when no row can be explained
    or the booster's feature count is not ``len(feature_names)``; ``Unexplainable`` for a model the
    app cannot explain."""
    explainer = TreeExplainer(booster, "baseline")
    result = attributions(explainer, rows, feature_names)
    if not result.explained:
        reasons = "; ".join(f"{reason}: {count}" for reason, count in result.not_explained.items()) or "no rows"
        raise ValueError(f"no baseline row could be explained ({reasons})")
    return analysis_document(result, label, {})


def baseline_values(analysis: Any, label: str, feature_names: Sequence[str]) -> dict[str, float]:
    """The baseline's global SHAP values of ``label`` (method ``tree_shap``); ``BaselineMismatch`` says what is wrong."""
    try:
        methods = analysis["explanations"]
    except (TypeError, KeyError):
        raise BaselineMismatch("the baseline analysis.json has no explanations section") from None
    if not isinstance(methods, dict) or METHOD not in methods:
        found = ", ".join(sorted(methods)) if isinstance(methods, dict) and methods else "none"
        raise BaselineMismatch(
            f"the baseline analysis.json has no {METHOD} explanations (it has: {found}); a SageMaker Clarify baseline "
            "(kernel_shap) is not comparable with TreeSHAP: the open back end's baseline custom resource or retraining writes one"
        )
    labels = methods[METHOD] if isinstance(methods[METHOD], dict) else {}
    entry = labels.get(label)
    values = entry.get("global_shap_values") if isinstance(entry, dict) else None
    if not isinstance(values, dict):
        raise BaselineMismatch(f"the baseline analysis.json has no global_shap_values for label {label!r} (labels: {', '.join(labels) or 'none'})")
    if set(values) != set(feature_names):
        missing, extra = sorted(set(feature_names) - set(values)), sorted(set(values) - set(feature_names))
        raise BaselineMismatch(
            f"the baseline explains {len(values)} features and {len(feature_names)} are configured "
            f"(missing from the baseline: {', '.join(missing[:10]) or 'none'}; not configured: {', '.join(extra[:10]) or 'none'}): "
            "the baseline belongs to another model"
        )
    try:
        numbers = {name: float(values[name]) for name in feature_names}
    except (TypeError, ValueError):
        raise BaselineMismatch("the baseline's global_shap_values are not all numbers") from None
    if not all(math.isfinite(v) and v >= 0 for v in numbers.values()):
        raise BaselineMismatch("the baseline's global_shap_values must be finite and >= 0 (mean |SHAP|)")
    return numbers


def violations_document(score: float | None, threshold: float, label: str) -> dict[str, Any]:
    """Clarify's constraint_violations.json: one violation for the label when nDCG < threshold."""
    violations = []
    if score is not None and score < threshold:
        violations.append(
            {
                "label": label,
                "metric_name": METRIC_NAME,
                "constraint_check_type": CHECK_TYPE,
                # Clarify's wording ("drift <nDCG> exceeds threshold"), then what it means.
                "description": f"Feature attribution drift {score} exceeds threshold {threshold}: the nDCG of the period's "
                "attribution ranking against the baseline's is below the threshold",
            }
        )
    return {"version": "1.0", "violations": violations}


# --- the scheduled run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributionSettings:
    evaluator: common.EvaluatorSettings
    ndcg_threshold: float
    sample_rows: int
    feature_names: tuple[str, ...]
    label: str  # the positive label's name, as Clarify's label_headers (the score explained)


@from_environment
def settings(env: Environment) -> AttributionSettings:
    labels = env.names("LABEL_NAMES")
    if not labels:
        raise ValueError("LABEL_NAMES is empty")
    threshold = env.number("NDCG_THRESHOLD", DEFAULT_NDCG_THRESHOLD)
    if not 0 <= threshold <= 1:
        raise ValueError(f"NDCG_THRESHOLD must be within 0..1, got {threshold}")
    return AttributionSettings(
        evaluator=common.read_settings(env),
        ndcg_threshold=threshold,
        sample_rows=env.integer("SAMPLE_ROWS"),
        feature_names=env.names("FEATURE_NAMES"),
        label=labels[-1],
    )


@from_environment
def deployed_model(env: Environment) -> DeployedModel:
    """The endpoint's model, asked for on every run (``refresh_seconds`` 0); a warm container keeps
    the model it loaded while the endpoint serves the same one."""
    return DeployedModel(
        aws.client("sagemaker"),
        aws.client("s3"),
        endpoint_name=env["ENDPOINT_NAME"],
        variant_name=env["VARIANT_NAME"],
        refresh_seconds=0,
        load=TreeExplainer.from_artifact,
    )


def load_baseline(s3: Any, bucket: str, label: str, feature_names: Sequence[str]) -> dict[str, float]:
    folder, name = BASELINE_KEY.rsplit("/", 1)
    analysis = common.read_baseline(s3, bucket, folder, (name,), BaselineMismatch)[name]
    return baseline_values(analysis, label, feature_names)


@dataclass(frozen=True)
class PeriodSample:
    rows: list[sample.SampledRow]  # ascending priority: a uniform sample of the period's rows
    files: int  # sample files listed
    seen: int  # rows the samples were drawn from
    set_aside: list[tuple[str, str]]  # (file, reason)


def read_samples(s3: Any, bucket: str, period: common.Period, feature_names: Sequence[str], capacity: int) -> PeriodSample:
    """The period's samples merged into one uniform sample of at most ``capacity`` rows (the ``k``
    smallest priorities of a merge are a uniform sample of all its rows); a file that does not parse,
    or holds other columns than the model's features, is set aside with its reason."""
    files = 0
    set_aside: list[tuple[str, str]] = []
    merged: sample.Sample | None = None
    keys = common.list_keys(s3, bucket, [f"{SAMPLES_PREFIX}/{hour}/" for hour in period.hours])
    for key, body in common.read_objects(s3, bucket, keys):
        files += 1
        name = key.removeprefix(f"{SAMPLES_PREFIX}/")
        if body is None:
            set_aside.append((name, "deleted between listing and reading"))
            continue
        try:
            part = sample.loads(body, feature_names)
        except sample.SampleError as error:
            set_aside.append((name, str(error)))
            continue
        merged = part if merged is None else sample.merge(merged, part)
    if merged is None:
        return PeriodSample([], files, 0, set_aside)
    return PeriodSample(merged.rows[:capacity], files, merged.seen, set_aside)


def _no_data(found: PeriodSample, result: Attributions) -> str | None:
    if result.explained:
        return None
    if not found.files:
        return "no sample files for the period's hours (no complete prediction was captured, or profiling is off)"
    if not found.rows:
        return f"{found.files} sample file(s), none usable" if found.set_aside else f"{found.files} sample file(s) with no rows"
    reasons = "; ".join(f"{reason}: {count}" for reason, count in result.not_explained.items())
    return f"none of the {len(found.rows)} sampled rows could be explained ({reasons})"


def exit_message(outcome: str, score: float | None, threshold: float, found: PeriodSample, result: Attributions, no_data: str | None) -> str:
    if no_data:
        parts = [f"no data: {no_data}"]
    else:
        parts = [f"{outcome}: nDCG {score:.4f} against the baseline (threshold {threshold:g}); {result.explained} row(s) explained from {found.files} sample file(s)"]
        if result.not_explained:
            parts.append("rows not explained: " + "; ".join(f"{reason}: {count}" for reason, count in result.not_explained.items()))
    if found.set_aside:
        parts.append(common.set_aside_message(found.set_aside))
    return common.clip("; ".join(parts))


def run(event: Any, config: AttributionSettings, s3: Any, events: Any, model: Callable[[], TreeExplainer]) -> runs.RunEnded:
    """One scheduled run, start to end (see the module docstring)."""
    settings = config.evaluator
    period = common.period(event, settings.cadences)
    prefix = common.report_prefix(MONITOR, settings, period)
    identity = common.identity(MONITOR, settings, period)
    try:
        baseline = load_baseline(s3, settings.bucket, config.label, config.feature_names)
        explainer = model()
        check_model(explainer, config.feature_names)
    except Unexplainable as error:
        if error.transient:  # SageMaker or S3 refused for now: fail the invocation, the scheduler retries
            raise RuntimeError(f"the endpoint's model could not be loaded: {error}") from error
        return common.failed(s3, events, settings, period, identity, f"the endpoint's model cannot be explained: {error}")
    except BaselineMismatch as error:
        return common.failed(s3, events, settings, period, identity, str(error))

    found = read_samples(s3, settings.bucket, period, config.feature_names, config.sample_rows)
    try:
        result = attributions(explainer, [row.features for row in found.rows], config.feature_names)
    except Unexplainable as error:  # e.g. a model with several outputs: known only once it explains a row
        return common.failed(s3, events, settings, period, identity, f"the endpoint's model cannot be explained: {error}")
    no_data = _no_data(found, result)
    score = None if no_data else ndcg(baseline, result.global_values)
    violations = violations_document(score, config.ndcg_threshold, config.label)
    outcome = "CompletedWithViolations" if violations["violations"] else "Completed"
    extra = {
        "model": explainer.model_name,
        "period": period.describe(),
        "sample_files": found.files,
        "rows_seen": found.seen,
        "rows_sampled": len(found.rows),
        "ndcg": score,
        "ndcg_threshold": config.ndcg_threshold,
        "no_data": no_data,
    }
    page = report.render_attribution(
        baseline,
        result.global_values,
        score,
        violations["violations"],
        report.AttributionRun(
            environment=f"{settings.endpoint}, {settings.schedule}",
            window=period.describe(),
            label=config.label,
            threshold=config.ndcg_threshold,
            model=explainer.model_name,
            sample_files=found.files,
            rows_sampled=len(found.rows),
            rows_explained=result.explained,
            rows_not_explained=result.not_explained,
            set_aside=found.set_aside,
            no_data=no_data,
        ),
    )
    uris = common.write_files(
        s3,
        settings.bucket,
        prefix,
        {
            ANALYSIS_FILE: orjson.dumps(analysis_document(result, config.label, extra), option=orjson.OPT_INDENT_2),
            VIOLATIONS_FILE: orjson.dumps(violations, option=orjson.OPT_INDENT_2),
            report.REPORT_FILE: page,
        },
    )
    ended = common.completed(
        identity, settings, prefix, uris[report.REPORT_FILE],
        outcome=outcome, message=exit_message(outcome, score, config.ndcg_threshold, found, result, no_data), late=None,
        violations=violations["violations"],
    )  # fmt: skip
    metrics = {}
    if score is not None:
        metrics = {FEATURE_METRIC.format(feature=name): value for name, value in result.global_values.items()}
        metrics[NDCG_METRIC] = score
    common.finish(s3, events, settings, period, ended, metrics)
    return ended


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ended = run(event, settings(), aws.client("s3"), aws.client("events"), deployed_model().explainer)
    summary = {k: ended.detail[k] for k in ("processingJobName", "outcome", "violationCount", "exitMessage", "reportS3Uri")}
    (logger.warning if ended.outcome == "Failed" else logger.info)("feature-attribution run ended", extra=summary)
    return summary
