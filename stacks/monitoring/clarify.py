"""SageMaker Clarify analysis configurations for the explainability monitor, built from configuration.

Two documents, in the shapes the SageMaker SDK builds (tests derive them from the SDK):

- the *baselining* config (``SageMakerClarifyProcessor.run_explainability``): how to read the
  training dataset (label and features), which model to explain and how to call it, and SHAP's
  settings; the job writes ``analysis.json``, the baseline the monitor compares against;
- the *monitoring* config (``ExplainabilityAnalysisConfig``): the same predictor and SHAP
  settings with feature headers only; each scheduled run reads it from ``ConfigUri``.

Schema: https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-processing-job-configure-analysis.html
and https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-config-json-monitor-model-explainability-parameters.html
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from stacks.shared.config import AppConfig, ExplainabilityConfig, ModelConfig

CSV = "text/csv"
JSON_LINES = "application/jsonlines"
EXPLAINABLE_CONTENT_TYPES = (CSV, JSON_LINES)
# Clarify's ModelConfig puts the literal ``$features`` where a record's feature list goes.
FEATURES_PLACEHOLDER = "$features"
# The header Clarify gives the label column of a CSV dataset (it is dropped before the model is called).
LABEL_HEADER = "label"
_DOTTED_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def content_template(features_path: str) -> str:
    """The request body for one JSON Lines record: ``features`` -> ``{"features":$features}``."""
    if not _DOTTED_PATH.fullmatch(features_path):
        raise ValueError(f"model.features_path {features_path!r}: Clarify needs a dotted path of names (a.b.c) to build the request")
    template = FEATURES_PLACEHOLDER
    for name in reversed(features_path.split(".")):
        template = f'{{"{name}":{template}}}'
    return template


def mean_features(train_csv: Path, feature_count: int) -> list[float]:
    """Column means of a label-first CSV without a header: seed 003's SHAP baseline record."""
    totals, rows = [0.0] * feature_count, 0
    with train_csv.open(newline="") as handle:
        for row in csv.reader(handle):
            values = [float(v) for v in row[1 : feature_count + 1]]
            totals = [t + v for t, v in zip(totals, values, strict=True)]
            rows += 1
    return [float(f"{total / rows:.6g}") for total in totals]


def _baseline_record(model: ModelConfig, values: list[float]) -> Any:
    if model.content_type == CSV:
        return values
    record: Any = values
    for name in reversed(model.features_path.split(".")):
        record = {name: record}
    return record


def _predictor(model: ModelConfig, explainability: ExplainabilityConfig, model_name: str, *, with_score: bool) -> dict[str, Any]:
    predictor: dict[str, Any] = {
        "model_name": model_name,
        "instance_type": explainability.shadow_instance_type,
        "initial_instance_count": explainability.shadow_instance_count,
        "accept_type": model.content_type,
        "content_type": model.content_type,
        # The score is the probability of the last label (binary:logistic); naming it makes the
        # metrics' Label dimension and the reports read e.g. "benign" instead of "label0".
        "label_headers": [model.label_names[-1]],
    }
    if model.content_type == JSON_LINES:
        predictor["content_template"] = content_template(model.features_path)
        if with_score:  # monitoring runs find the score with the endpoint input's InferenceAttribute instead
            predictor["label"] = model.score_path
    return predictor


def _shap(explainability: ExplainabilityConfig, baseline: list[float], model: ModelConfig) -> dict[str, Any]:
    return {
        "use_logit": explainability.use_logit,
        "save_local_shap_values": False,
        "baseline": [_baseline_record(model, baseline)],
        "num_samples": explainability.num_samples,
        "agg_method": explainability.agg_method,
    }


def shap_baseline(config: AppConfig, bundled_train_csv: Path) -> list[float]:
    configured = config.monitoring.explainability.shap_baseline
    if configured is not None:
        return list(configured)
    return mean_features(bundled_train_csv, len(config.model.feature_names))


def baselining_config(config: AppConfig, *, model_name: str, baseline: list[float]) -> dict[str, Any]:
    """What the Clarify baselining job reads (dataset: label first for CSV, label_path for JSON Lines)."""
    model, explainability = config.model, config.monitoring.explainability
    features = list(model.feature_names)
    dataset: dict[str, Any]
    if model.content_type == CSV:
        dataset = {"dataset_type": CSV, "headers": [LABEL_HEADER, *features], "label": LABEL_HEADER}
    else:
        dataset = {"dataset_type": JSON_LINES, "headers": [*features, LABEL_HEADER], "label": explainability.label_path, "features": model.features_path}
    return {
        **dataset,
        "predictor": _predictor(model, explainability, model_name, with_score=True),
        "methods": {"report": {"name": "report", "title": "Analysis Report"}, "shap": _shap(explainability, baseline, model)},
    }


def monitoring_config(config: AppConfig, *, model_name: str, baseline: list[float]) -> dict[str, Any]:
    """What each scheduled run reads from ``ConfigUri``: features only, no dataset section."""
    model, explainability = config.model, config.monitoring.explainability
    return {
        "methods": {"shap": _shap(explainability, baseline, model)},
        "predictor": _predictor(model, explainability, model_name, with_score=False),
        "headers": list(model.feature_names),
    }
