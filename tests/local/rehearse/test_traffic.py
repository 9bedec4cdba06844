"""The rehearsal's traffic: spread over the hours, the bundled data, the documented shift that the
hourly data-quality monitor's own evaluation flags, placeholder environments, TRAFFIC files."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
import xgboost as xgb

from lambdas.monitoring.drift.baseline import CONSTRAINTS_FILE, STATISTICS_FILE, baseline_documents, load
from lambdas.monitoring.drift.evaluate import evaluate
from lambdas.monitoring.drift.sketch import dumps, profile
from lambdas.shared.explain.tree import TreeExplainer
from local.rehearse import traffic
from stacks.shared import default_model
from stacks.shared.config import parse_environment
from stacks.shared.default_model import captures
from tests.conftest import CDK_CONTEXT

HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def day() -> traffic.Traffic:
    return traffic.default("dev", 24)


@pytest.fixture(scope="module")
def monitor():
    """The hourly data-quality monitor's baseline (the bundled one) and the bundled model's scores."""
    documents = baseline_documents(default_model.BASELINE_CSV.read_text())
    booster = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "bundled").booster
    return load(documents[STATISTICS_FILE], documents[CONSTRAINTS_FILE]), booster


def drifted_in(hour: list[traffic.Request], monitor) -> set[str]:
    """The columns the monitor's own evaluation flags in one hour of requests (all captured: dev samples 100 %)."""
    baseline, booster = monitor
    features = np.array([r.features for r in hour])
    scores = booster.predict(xgb.DMatrix(features))
    sketch = profile(baseline.layout, [(float(s), [float(v) for v in row]) for s, row in zip(scores, features, strict=True)])
    evaluation = evaluate(baseline, [("hour", dumps(sketch))])
    assert evaluation.no_data is None and evaluation.too_few is None
    return {d.name for d in evaluation.drift if d.drifted}


def test_default_traffic_is_the_bundled_rows_spread_evenly_over_the_hours(day) -> None:
    assert len(day) == 24 * traffic.DEFAULT_PER_HOUR
    assert day[0].at == traffic.START and day[-1].at < traffic.START + 24 * HOUR
    gaps = {(b.at - a.at).total_seconds() for a, b in zip(day, day[1:])}
    assert gaps == {30.0}  # 120 an hour, in order
    bundled = {tuple(row) for row in np.vstack([np.loadtxt(default_model.TRAIN_CSV, delimiter=","), np.loadtxt(default_model.TEST_CSV, delimiter=",")])}
    first_half = [r for r in day if r.at < day.shift_from]
    assert len(first_half) == 12 * traffic.DEFAULT_PER_HOUR
    assert all((float(r.label), *r.features) in bundled for r in first_half)  # the bundled rows as they are, with their labels
    assert len({r.features for r in first_half}) == 569  # every bundled row is used
    assert day[0].body() == ",".join(repr(v) for v in day[0].features) and len(day[0].body().split(",")) == 30


def test_the_second_half_shifts_the_three_documented_features_by_their_documented_amounts(day) -> None:
    assert day.shift_from == traffic.START + 12 * HOUR
    assert set(day.shifted) == set(captures.SHIFTS) == {"mean_texture", "worst_area", "smoothness_error"}
    assert day.shifted["mean_texture"] == pytest.approx(4.26, abs=0.01) and day.shifted["worst_area"] == pytest.approx(851, abs=1)
    assert day.shifted["smoothness_error"] == pytest.approx(-0.00611, abs=1e-5)
    originals = {r.features: r.label for r in day if r.at < day.shift_from}
    names = default_model.FEATURE_NAMES
    for request in [r for r in day if r.at >= day.shift_from][:200]:
        unshifted = list(request.features)
        for name, amount in day.shifted.items():
            unshifted[names.index(name)] -= amount
        match = [f for f in originals if np.allclose(f, unshifted, rtol=0, atol=1e-9)]
        assert match and originals[match[0]] == request.label  # a bundled row moved on those three features only, its label kept
    assert any(note.startswith("traffic: the bundled data") and "mean_texture +1 sd" in note for note in day.notes)


def test_the_hourly_monitor_flags_the_shifted_features_only_in_the_second_half(day, monitor) -> None:
    hours = [[r for r in day if traffic.START + h * HOUR <= r.at < traffic.START + (h + 1) * HOUR] for h in range(24)]
    flagged = [drifted_in(hour, monitor) for hour in hours]
    assert all(not f for f in flagged[:12]), flagged[:12]  # no false alarm before the shift
    features = set(default_model.FEATURE_NAMES)
    for hour in flagged[12:]:
        assert hour & features <= set(captures.SHIFTS), hour  # nothing else among the features
    # Each shifted feature is flagged in (nearly) every hour after the shift.
    counts = {name: sum(name in hour for hour in flagged[12:]) for name in captures.SHIFTS}
    assert all(count >= 10 for count in counts.values()), counts


def test_a_short_dense_run_shifts_from_its_own_middle() -> None:
    short = traffic.default("dev", 6, per_hour=200, start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert len(short) == 1200 and short.shift_from == dt.datetime(2026, 1, 1, 3, tzinfo=dt.UTC)
    assert sum(r.at >= short.shift_from for r in short) == 600


def test_a_placeholder_environment_gets_synthetic_rows_and_a_stand_in_model_with_a_note() -> None:
    income = traffic.default("income", 2, per_hour=50)
    from stacks.shared.config import load_environment

    names = tuple(load_environment("income").model.feature_names)
    assert income.feature_names == names and len(income) == 100 and all(len(r.features) == len(names) for r in income)
    assert set(income.shifted) == set(names[:3]) and any("placeholder model" in n and "REPLACE-ME" in n for n in income.notes)
    booster = TreeExplainer.from_artifact(io.BytesIO(income.artefact), "stand-in").booster
    assert booster.num_features() == len(names)
    rows = np.loadtxt(io.StringIO(income.training), delimiter=",")
    assert rows.shape[1] == len(names) + 1 and set(np.unique(rows[:, 0])) == {0.0, 1.0}
    before = np.array([r.features for r in income if r.at < income.shift_from])
    after = np.array([r.features for r in income if r.at >= income.shift_from])
    assert after[:, 0].mean() - before[:, 0].mean() > 1.0 and abs(after[:, 5].mean() - before[:, 5].mean()) < 0.6
    # What its placeholder URIs should hold, for the rehearsal's Cloud to put before deploying.
    config = load_environment("income")
    assert set(income.objects) == {str(config.model.artifact_s3_uri), str(config.retraining.training_data_s3_uri)}
    assert income.objects[str(config.model.artifact_s3_uri)] == income.artefact
    assert any("placeholder objects supplied" in n and "retraining.training_data_s3_uri" in n for n in income.notes)
    # Served by an endpoint with model quality on, its test-set scores are supplied too (label,probability).
    environment = json.loads(json.dumps(CDK_CONTEXT["environments"]["income"]))
    environment["serving"], environment["batch"] = {"endpoint": True}, {"enabled": False}
    environment["monitoring"]["model_quality"] = {"dataset_s3_uri": "s3://amzn-s3-demo-bucket/REPLACE-ME/income/test-scores-with-header.csv"}
    served = parse_environment("income", environment)
    objects = traffic._placeholder_objects(served, income, np.random.default_rng(0))
    scores = objects["s3://amzn-s3-demo-bucket/REPLACE-ME/income/test-scores-with-header.csv"].decode().splitlines()
    assert scores[0] == "label,probability" and all(line.split(",")[0] in ("0", "1") and 0 < float(line.split(",")[1]) < 1 for line in scores[1:])


def test_a_traffic_file_is_spread_in_order_and_its_bad_lines_are_kept_with_their_reason(tmp_path) -> None:
    path = tmp_path / "traffic.csv"
    path.write_text("1,0.5,2\n0,1.5,3\nx,1,2\n1,a,2\n1,1\n\n0,2.5,4\n")
    result = traffic.from_csv(path, 2, feature_names=("f1", "f2"))
    assert [(r.label, r.features) for r in result] == [(1, (0.5, 2.0)), (0, (1.5, 3.0)), (0, (2.5, 4.0))]
    assert [r.at for r in result] == [traffic.START, traffic.START + dt.timedelta(minutes=40), traffic.START + dt.timedelta(minutes=80)]
    assert [line for line, _ in result.rejected] == [3, 4, 5]
    assert "label 'x' is not a whole number" in result.rejected[0][1] and "not a number" in result.rejected[1][1]
    assert result.rejected[2][1] == "1 features; the environment's model takes 2"
    assert result.shifted == {} and any("3 lines" in n and "first line 3" in n for n in result.notes)


def test_a_traffic_file_without_a_usable_line_is_refused_naming_why(tmp_path) -> None:
    path = tmp_path / "traffic.csv"
    path.write_text("label,a,b\n")
    with pytest.raises(ValueError, match=r"no usable line .*line 1: the label 'label' is not a whole number"):
        traffic.from_csv(path, 1)
    with pytest.raises(ValueError, match="hours must be positive"):
        traffic.times(3, 0)
