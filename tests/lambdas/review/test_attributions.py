"""What reviewers see of a record's attributions (lambdas/review/starter/attributions.py)."""

from __future__ import annotations

import csv

import pytest

from lambdas.review.starter.attributions import OFF, PROBABILITY_TOLERANCE, explain_rows, presented
from lambdas.shared.explain.results import RecordAttributions, Unexplainable
from lambdas.shared.explain.tree import TreeExplainer
from stacks.shared import default_model

ADDITIVITY = 1e-4


def csv_rows() -> list[list[str]]:
    with default_model.TEST_CSV.open() as stream:
        return [record[1:] for record in csv.reader(stream)]


@pytest.fixture(scope="module")
def explainer() -> TreeExplainer:
    with default_model.MODEL_ARTIFACT.open("rb") as stream:
        return TreeExplainer.from_artifact(stream, "bundled")


def test_shown_attributions_are_ranked_by_magnitude_and_still_add_up(explainer) -> None:
    rows = csv_rows()[:20]
    for row, result in zip(rows, explainer.explain(rows)):
        view = presented(result, row, default_model.FEATURE_NAMES, result.probability, 10, "bundled")
        magnitudes = [abs(item["contribution"]) for item in view["top"]]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert magnitudes == sorted((round(abs(c), 6) for c in result.contributions), reverse=True)[:10]
        widths = [item["widthPercent"] for item in view["top"]]
        assert widths[0] == 100 and widths == sorted(widths, reverse=True)
        for item in view["top"]:
            index = default_model.FEATURE_NAMES.index(item["feature"])
            assert item["value"] == row[index]
            assert item["direction"] == ("positive" if result.contributions[index] > 0 else "negative")
        total = view["baseValue"] + sum(item["contribution"] for item in view["top"]) + view["othersContribution"]
        assert abs(total - view["margin"]) < ADDITIVITY and view["othersCount"] == 20
        assert view["note"] is None


def test_a_prediction_made_by_another_model_is_flagged_in_the_task() -> None:
    result = RecordAttributions(base_value=0.5, contributions=(1.0, -0.25), margin=1.25)
    same = presented(result, ["1", "2"], ("a", "b"), result.probability + PROBABILITY_TOLERANCE / 2, 5, "m-2")
    other = presented(result, ["1", "2"], ("a", "b"), 0.2, 5, "m-2")
    assert same["note"] is None
    assert other["note"] == (
        "Model m-2, which these attributions explain, gives this record a probability of 0.777; "
        "the prediction under review said 0.200, so an earlier model made it."
    )
    assert [i["signed"] for i in other["top"]] == ["+1.000", "-0.250"] and other["othersCount"] == 0


def test_explanations_per_row_when_off_unexplainable_or_explained(explainer) -> None:
    rows = [{"features": r, "probability": 0.5} for r in csv_rows()[:2]]
    names = lambda count: default_model.FEATURE_NAMES  # noqa: E731
    assert explain_rows(None, rows, names, 5) == [OFF, OFF]

    def broken():
        raise Unexplainable("model m is an inference pipeline of 2 containers")

    assert explain_rows(broken, rows, names, 5) == [{"status": "unavailable", "reason": "model m is an inference pipeline of 2 containers"}] * 2
    explained = explain_rows(lambda: explainer, rows, names, 5)
    assert [e["status"] for e in explained] == ["explained", "explained"] and len(explained[0]["top"]) == 5
    # The probability under review (0.5) is not this model's: each says so.
    assert all(e["note"] and "an earlier model made it" in e["note"] for e in explained)
