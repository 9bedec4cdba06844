"""The figures the promotion gate computes itself on the evaluation rows, by the name a training
job reports them under (``retraining.objective_metric``, XGBoost's eval metrics on the validation
channel). The model is a binary classifier whose output is the probability of label 1.

No numpy here: the retraining stack reads this table at synth time to refuse a metric the gate
cannot compute (``lambdas.retraining.comparison`` computes them).
"""

from __future__ import annotations

from dataclasses import dataclass

METRIC_KEY = "retraining.objective_metric"
GOAL_KEY = "retraining.objective_goal"
# XGBoost's error: "instances with a prediction value larger than 0.5 are regarded as positive".
ERROR_THRESHOLD = 0.5


@dataclass(frozen=True)
class Objective:
    name: str  # as the training job reports it: validation:logloss
    measure: str  # logloss | auc | error (comparison.py's figures)
    description: str
    goal: str  # minimize | maximize
    probabilities: bool  # the figure needs scores in [0, 1]


OBJECTIVES = {
    o.name: o
    for o in (
        Objective("validation:logloss", "logloss", "log loss", "minimize", True),
        Objective("validation:auc", "auc", "AUC", "maximize", False),
        Objective("validation:error", "error", "error rate (a score above 0.5 predicts label 1, as XGBoost's error)", "minimize", True),
    )
}


class UnsupportedObjective(ValueError):
    """A configuration the gate cannot judge; the message names the key."""


def objective(name: str, *, goal: str | None = None, label_count: int = 2) -> Objective:
    """The gate's figure for ``retraining.objective_metric``; raises UnsupportedObjective naming the key."""
    found = OBJECTIVES.get(name)
    if found is None:
        raise UnsupportedObjective(
            f"{METRIC_KEY}: {name!r} is not a figure the promotion gate computes on the evaluation rows; "
            f"use one of: {', '.join(OBJECTIVES)}"
        )
    if label_count != 2:
        raise UnsupportedObjective(
            f"{METRIC_KEY}: the promotion gate compares binary classifiers' scores, and model.label_names has {label_count} labels; "
            "set retraining.enabled to false"
        )
    if goal is not None and goal != found.goal:
        raise UnsupportedObjective(f"{GOAL_KEY}: {found.name} ({found.description}) is a figure to {found.goal}, not to {goal}")
    return found
