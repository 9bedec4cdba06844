"""Lambda: the open back end's model-quality run, an EventBridge Scheduler target (issue 21).

First version: the settings (the environment contract the stack codes to) and the handler's
signature. The evaluation itself lands in ``lambdas.monitoring.quality``.

Environment: the common evaluator variables (``common.read_settings``: MONITORING_BUCKET,
ENDPOINT_NAME, SCHEDULE_NAME = ``<prefix>-model-quality``, EVENT_SOURCE, EVENT_BUS_NAME, CADENCES) and

- CAPTURE_BUCKET, CAPTURE_PREFIX: where SageMaker writes this endpoint's capture files, the prefix
  ending in ``/`` (``<capture destination prefix>/<endpoint>/``; ``<variant>/yyyy/mm/dd/hh/`` follow);
- LABELS_BUCKET, GROUND_TRUTH_PREFIX (``ground-truth/``; ``yyyy/mm/dd/hh/<name>.jsonl`` follow);
- LABEL_WINDOW_HOURS: labels that arrive up to this long after a period ends are joined with it;
- DECISION_THRESHOLD (default 0.5), SCORE_PATH (empty: the output is the probability),
  FEATURES_PATH (default ``features``): as the capture filter reads captures;
- TOLERANCE (default 0.05): a constraint's threshold is the test-set figure less this;
- ESTIMATE ("true" | "false", default true): the label-free estimate (CBPE);
- optional, the review rule as the capture filter has it (REVIEW_SELECTION, SELECTION_RULE,
  LOWER_THRESHOLD, UPPER_THRESHOLD, SELECTED_OUTCOME, AUDIT_PERCENTAGE): with them the monitor knows
  which captured rows went to review, so it reports the response rate of each selection stratum and
  adjusts the weights for non-response within it; without them (REVIEW_SELECTION absent) the
  response rate is reported as unknown and no adjustment is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lambdas.capture.selection import Audit, SelectionRule
from lambdas.monitoring.open import common
from lambdas.shared.consumer import Environment, SettingsError, from_environment, logger

MONITOR = "model-quality"  # the event's "monitor", and the monitor's folder in the monitoring bucket
CURRENT_PREFIX = f"{MONITOR}/current"


@dataclass(frozen=True)
class Review:
    """Which captured rows went to review: the capture filter's rule and audit sample."""

    rule: SelectionRule
    audit: Audit | None


@dataclass(frozen=True)
class QualitySettings:
    evaluator: common.EvaluatorSettings
    capture_bucket: str
    capture_prefix: str
    labels_bucket: str
    ground_truth_prefix: str
    label_window_hours: int
    threshold: float
    score_path: str | None
    features_path: str
    tolerance: float
    estimate: bool
    review: Review | None  # None: not known (no response rates)


def _flag(env: Environment, name: str, default: bool) -> bool:
    text = (env.get(name) or str(default)).strip().lower()
    if text not in ("true", "false"):
        raise SettingsError(f"environment variable {name} is {text!r}, not true or false")
    return text == "true"


def _prefix(env: Environment, name: str) -> str:
    value = env[name]
    if value and not value.endswith("/"):
        raise SettingsError(f"environment variable {name} is {value!r}: a key prefix ending in /")
    return value


def _review(env: Environment) -> Review | None:
    if env.get("REVIEW_SELECTION") is None or not _flag(env, "REVIEW_SELECTION", True):
        return None
    try:
        rule = SelectionRule(
            rule=env["SELECTION_RULE"],
            lower=env.number("LOWER_THRESHOLD"),
            upper=env.number("UPPER_THRESHOLD"),
            outcome=env.integer("SELECTED_OUTCOME"),
        )
        percentage = env.number("AUDIT_PERCENTAGE", 0.0)
        return Review(rule, Audit(percentage) if percentage else None)
    except ValueError as error:
        raise SettingsError(f"the review rule's variables: {error}") from None


def read_settings(env: Environment) -> QualitySettings:
    window = env.integer("LABEL_WINDOW_HOURS")
    if window < 0:
        raise SettingsError(f"environment variable LABEL_WINDOW_HOURS is {window}, not a whole number of hours >= 0")
    threshold = env.number("DECISION_THRESHOLD", 0.5)
    if not 0.0 <= threshold <= 1.0:
        raise SettingsError(f"environment variable DECISION_THRESHOLD is {threshold}, not in [0, 1]")
    return QualitySettings(
        evaluator=common.read_settings(env),
        capture_bucket=env["CAPTURE_BUCKET"],
        capture_prefix=_prefix(env, "CAPTURE_PREFIX"),
        labels_bucket=env["LABELS_BUCKET"],
        ground_truth_prefix=_prefix(env, "GROUND_TRUTH_PREFIX"),
        label_window_hours=window,
        threshold=threshold,
        score_path=env.get("SCORE_PATH") or None,
        features_path=env.get("FEATURES_PATH") or "features",
        tolerance=env.number("TOLERANCE", 0.05),
        estimate=_flag(env, "ESTIMATE", True),
        review=_review(env),
    )


settings = from_environment(read_settings)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError("the model-quality evaluation lands with lambdas.monitoring.quality")
