"""What a reviewer is shown of why the model predicted what it did: each record's top attributions.

Each record of a task gets an ``explanation``, one of:

- ``{"status": "explained", ...}``: the base value, the top-k features by the size of their SHAP
  value (feature, its value, contribution in log-odds, direction, bar width), what the other
  features add together, and a note if the model explaining it is not the one that predicted it;
- ``{"status": "unavailable", "reason": ...}``: the app cannot explain this model or record, in
  words a reviewer understands; review goes on without attributions;
- ``{"status": "off"}``: attributions are turned off in configuration.

Pure Python: the SHAP values come from ``lambdas/shared/explain`` (XGBoost imported only when
attributions are on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lambdas.shared.explain.results import Explainer, RecordAttributions, Unexplainable

# The captured probability and the explaining model's differ by more than float32 rounding: the
# prediction was made by another model (the endpoint changed models since).
PROBABILITY_TOLERANCE = 1e-3
OFF: dict[str, Any] = {"status": "off"}


def unavailable(reason: str) -> dict[str, Any]:
    return {"status": "unavailable", "reason": reason}


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def presented(result: RecordAttributions, features: Sequence[Any], names: Sequence[str], captured: float, top_k: int, model_name: str) -> dict[str, Any]:
    """The task's view of one record: top-k by |contribution| (ties keep feature order), bars
    scaled to the largest shown, and the rest summed so base + bars + rest = margin."""
    order = sorted(range(len(result.contributions)), key=lambda i: -abs(result.contributions[i]))
    shown, rest = order[:top_k], order[top_k:]
    largest = max((abs(result.contributions[i]) for i in shown), default=0.0)
    top = []
    for i in shown:
        contribution = result.contributions[i]
        width = round(100 * abs(contribution) / largest) if largest else 0
        top.append(
            {
                "feature": names[i],
                "value": features[i],
                "contribution": round(contribution, 6),
                "signed": _signed(contribution),
                "direction": "positive" if contribution > 0 else "negative" if contribution < 0 else "none",
                "widthPercent": max(width, 1) if contribution else 0,
            }
        )
    others = sum(result.contributions[i] for i in rest)
    probability = result.probability
    note = None
    if abs(probability - captured) > PROBABILITY_TOLERANCE:
        note = (
            f"Model {model_name}, which these attributions explain, gives this record a probability of {probability:.3f}; "
            f"the prediction under review said {captured:.3f}, so an earlier model made it."
        )
    return {
        "status": "explained",
        "model": model_name,
        "baseValue": round(result.base_value, 6),
        "baseSigned": _signed(result.base_value),
        "margin": round(result.margin, 6),
        "marginSigned": _signed(result.margin),
        "modelProbability": round(probability, 6),
        "top": top,
        "othersCount": len(rest),
        "othersContribution": round(others, 6),
        "othersSigned": _signed(others),
        "note": note,
    }


def explain_rows(model: Callable[[], Explainer] | None, rows: Sequence[dict[str, Any]], names: Callable[[int], Sequence[str]], top_k: int) -> list[dict[str, Any]]:
    """One explanation per review row; never raises ``Unexplainable`` (its reason is shown instead)."""
    if model is None:
        return [OFF for _ in rows]
    try:
        explainer = model()
        results = explainer.explain([row["features"] for row in rows])
    except Unexplainable as reason:
        return [unavailable(str(reason)) for _ in rows]
    return [
        unavailable(str(result)) if isinstance(result, Unexplainable)
        else presented(result, row["features"], names(len(row["features"])), float(row["probability"]), top_k, explainer.model_name)
        for result, row in zip(results, rows)
    ]
