"""The open back end's feature-attribution run on moto (S3, EventBridge to SQS): nDCG against
scikit-learn, the baseline's analysis.json, the run's files, metrics and event, and bad input.

The baseline is ``baseline_analysis`` of the bundled model on its 455 training rows. The periods are
the 114 held-out rows (``test.csv``), sampled as the capture Lambda samples them (``drift.sample``)
into three capture objects over two hours of one day, and a copy in which the model's four most
important features went silent: each is stuck at the one value (of 41 training quantiles) that
gives it the least attribution, as when an upstream system stops sending a measurement and a
default fills it in. The EMF documents are read from what Powertools prints; the event from an SQS
queue behind an EventBridge rule on its source.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tarfile
from html.parser import HTMLParser

import boto3
import numpy as np
import pytest
import xgboost as xgb
from sklearn.metrics import ndcg_score

from lambdas.monitoring.drift import report, sample
from lambdas.monitoring.open import attribution, common
from lambdas.monitoring.runs import runs
from lambdas.shared.explain.results import Unexplainable
from lambdas.shared.explain.tree import TreeExplainer
from stacks.shared.aws_facts import MONITORING_CADENCES
from stacks.shared.default_model import FEATURE_NAMES, LABEL_NAMES, MODEL_ARTIFACT, TEST_CSV, TRAIN_CSV
from tests.conftest import ROOT
from tests.lambdas.aws_env import REGION, LambdaContext, drain, event_sink

BUCKET = "monitoring-bucket"
SOURCE = "mlloop.monitoring"
SCHEDULE = "mlloop-dev-explainability"
ENDPOINT = "mlloop-dev"
DAILY = "cron(0 0 ? * * *)"
RUN = {"scheduledTime": "2026-11-23T00:20:00Z", "schedule": DAILY}  # the period: 2026-11-22, 00:00 to 24:00
REPORT = f"explainability/reports/{ENDPOINT}/{SCHEDULE}/2026/11/23/00"
LABEL = LABEL_NAMES[-1]
SETTINGS = attribution.AttributionSettings(
    evaluator=common.EvaluatorSettings(
        bucket=BUCKET, endpoint=ENDPOINT, schedule=SCHEDULE, event_source=SOURCE, event_bus="default", cadences=dict(MONITORING_CADENCES)
    ),
    ndcg_threshold=0.9,
    sample_rows=500,
    feature_names=FEATURE_NAMES,
    label=LABEL,
)
SILENCED = 4  # the model's top features stuck at a constant in the drifted copy
ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# --- data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    with tarfile.open(MODEL_ARTIFACT) as tar:
        raw = tar.extractfile("xgboost-model").read()
    model = xgb.Booster()
    model.load_model(bytearray(raw))
    return model


@pytest.fixture(scope="module")
def explainer(booster) -> TreeExplainer:
    return TreeExplainer(booster, "mlloop-dev-model-1")


@pytest.fixture(scope="module")
def training() -> np.ndarray:
    return np.loadtxt(TRAIN_CSV, delimiter=",")[:, 1:]


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    return np.loadtxt(TEST_CSV, delimiter=",")[:, 1:]


@pytest.fixture(scope="module")
def baseline(booster, training) -> dict:
    return attribution.baseline_analysis(booster, training.tolist(), FEATURE_NAMES, LABEL)


def mean_abs_shap(booster: xgb.Booster, table: np.ndarray) -> np.ndarray:
    """The reference: XGBoost's TreeSHAP straight from numpy, averaged by numpy (in float64)."""
    contributions = booster.predict(xgb.DMatrix(table.astype(np.float32)), pred_contribs=True)
    return np.abs(contributions[:, :-1].astype(np.float64)).mean(axis=0)


@pytest.fixture(scope="module")
def silenced(booster, training, held_out) -> np.ndarray:
    order = np.argsort(-mean_abs_shap(booster, training))
    table = held_out.copy()
    for index in order[:SILENCED]:
        candidates = np.quantile(training[:, index], np.linspace(0, 1, 41))

        def attribution_at(value: float, index: int = index) -> float:
            trial = table.copy()
            trial[:, index] = value
            return float(mean_abs_shap(booster, trial)[index])

        table[:, index] = min(candidates, key=attribution_at)
    return table


def sample_key(hour: str, name: str) -> str:
    """Where the capture Lambda writes a capture object's sample (design note's key layout)."""
    return f"explainability/samples/{hour}/capture/{ENDPOINT}/AllTraffic/{hour}/{name}.jsonl.json"


def put_samples(s3, booster: xgb.Booster, table: np.ndarray, parts: int = 3) -> list[str]:
    """The table as the capture Lambda samples it: one sample per capture object, over two hours."""
    probabilities = booster.predict(xgb.DMatrix(table.astype(np.float32)))
    keys = []
    for part, indices in enumerate(np.array_split(np.arange(len(table)), parts)):
        rows = [(f"event-{i}", 0, float(probabilities[i]), table[i].tolist()) for i in indices]
        key = sample_key("2026/11/22/09" if part < 2 else "2026/11/22/23", f"capture-{part}")
        s3.put_object(Bucket=BUCKET, Key=key, Body=sample.dumps(sample.sample(500, FEATURE_NAMES, rows, source=key)))
        keys.append(key)
    return keys


# --- AWS -------------------------------------------------------------------------------------


@pytest.fixture
def aws(mocked_aws, baseline):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="explainability/current/analysis.json", Body=json.dumps(baseline).encode())
    events, queue = event_sink({"source": [SOURCE], "detail-type": [runs.RUN_ENDED]})
    return s3, events, queue


def published(queue: str) -> list[dict]:
    return [json.loads(m["Body"]) for m in drain(queue)]


def metric_values(capsys) -> dict[str, tuple[float, dict]]:
    """metric name -> (value, dimensions) over every EMF document Powertools printed."""
    found = {}
    for line in capsys.readouterr().out.splitlines():
        if not (line.startswith("{") and '"_aws"' in line):
            continue
        document = json.loads(line)
        [directive] = document["_aws"]["CloudWatchMetrics"]
        [dimension_set] = directive["Dimensions"]
        dimensions = {name: document[name] for name in dimension_set}
        for metric in directive["Metrics"]:
            assert metric["Name"] not in found, f"{metric['Name']} emitted twice"
            [value] = document[metric["Name"]]
            found[metric["Name"]] = (value, dimensions)
    return found


def get_json(s3, key: str):
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def run(s3, events, explainer, settings=SETTINGS, event=RUN):
    return attribution.run(event, settings, s3, events, lambda: explainer)


# --- nDCG ------------------------------------------------------------------------------------


def test_ndcg_equals_scikit_learns_ndcg_score_on_random_rankings_and_ties() -> None:
    rng = np.random.default_rng(11)
    cases = 0
    for size in (2, 3, 5, 10, 30, 64):
        for _ in range(25):
            baseline = rng.exponential(size=size)
            current = rng.exponential(size=size)
            variants = [
                (baseline, current),
                (baseline, np.round(current, 1)),  # ties in the period's ranking
                (np.round(baseline, 1), current),  # ties among the gains
                (np.where(rng.random(size) < 0.5, 0.0, baseline), np.where(rng.random(size) < 0.5, 0.0, current)),  # zeros
                (baseline, np.full(size, 0.3)),  # the period ties everything
            ]
            for gains, scores in variants:
                names = [f"f{i}" for i in range(size)]
                ours = attribution.ndcg(dict(zip(names, gains.tolist())), dict(zip(names, scores.tolist())))
                assert ours == pytest.approx(ndcg_score([gains], [scores]), abs=1e-12), (gains, scores)
                cases += 1
    assert cases == 6 * 25 * 5
    # The order the features are given in does not matter, ties included.
    gains, scores = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.5}, {"a": 1.0, "b": 1.0, "c": 0.2, "d": 1.0}
    shuffled = {k: scores[k] for k in ("d", "c", "b", "a")}
    assert attribution.ndcg(gains, scores) == attribution.ndcg(gains, shuffled) == pytest.approx(ndcg_score([[3, 1, 2, 0.5]], [[1, 1, 0.2, 1]]))


def test_ndcg_reproduces_clarifys_worked_example_and_refuses_other_features() -> None:
    training = {"SAT score": 0.70, "GPA": 0.50, "Class rank": 0.05}
    live = {"SAT score": 0.10, "GPA": 0.20, "Class rank": 0.70}
    assert round(attribution.ndcg(training, live), 2) == 0.69  # the value Clarify's page gives
    assert attribution.ndcg(training, training) == 1.0
    with pytest.raises(ValueError, match="different features"):
        attribution.ndcg(training, {"SAT score": 1.0})


# --- baseline --------------------------------------------------------------------------------


def test_the_baseline_is_clarifys_analysis_json_with_the_mean_absolute_treeshap_per_feature(booster, training, baseline) -> None:
    assert baseline["version"] == "1.0" and list(baseline["explanations"]) == ["tree_shap"]
    entry = baseline["explanations"]["tree_shap"][LABEL]
    values = entry["global_shap_values"]
    assert list(values) == list(FEATURE_NAMES)
    np.testing.assert_allclose([values[n] for n in FEATURE_NAMES], mean_abs_shap(booster, training), rtol=1e-6, atol=1e-9)
    bias = booster.predict(xgb.DMatrix(training[:1].astype(np.float32)), pred_contribs=True)[0, -1]
    assert entry["expected_value"] == pytest.approx(float(bias))
    assert baseline["open_monitor"]["rows_explained"] == 455 and baseline["open_monitor"]["rows_not_explained"] == {}
    # It reads as the constraints file the run compares with.
    assert attribution.baseline_values(baseline, LABEL, FEATURE_NAMES) == values
    with pytest.raises(ValueError, match=r"no baseline row could be explained \(text in mean_radius: 1\)"):
        attribution.baseline_analysis(booster, [["x", *training[0, 1:].tolist()]], FEATURE_NAMES, LABEL)
    with pytest.raises(attribution.BaselineMismatch, match="takes 30 features but 29 feature names"):
        attribution.baseline_analysis(booster, training.tolist(), FEATURE_NAMES[:29], LABEL)


# --- runs ------------------------------------------------------------------------------------


def test_held_out_rows_keep_the_baselines_ranking_and_complete_without_violation(aws, booster, explainer, held_out, baseline, capsys) -> None:
    s3, events, queue = aws
    put_samples(s3, booster, held_out)
    capsys.readouterr()
    ended = run(s3, events, explainer)

    analysis = get_json(s3, f"{REPORT}/analysis.json")
    current = analysis["explanations"]["tree_shap"][LABEL]["global_shap_values"]
    np.testing.assert_allclose([current[n] for n in FEATURE_NAMES], mean_abs_shap(booster, held_out), rtol=1e-6, atol=1e-9)
    base = baseline["explanations"]["tree_shap"][LABEL]["global_shap_values"]
    expected = ndcg_score([[base[n] for n in FEATURE_NAMES]], [[current[n] for n in FEATURE_NAMES]])
    score = analysis["open_monitor"]["ndcg"]
    assert score == pytest.approx(expected) and score > 0.9
    print(f"held-out rows: nDCG {score:.4f}")
    assert analysis["open_monitor"]["rows_explained"] == 114 and analysis["open_monitor"]["sample_files"] == 3
    assert get_json(s3, f"{REPORT}/constraint_violations.json") == {"version": "1.0", "violations": []}

    assert ended.outcome == "Completed" and ended.detail["violationCount"] == 0
    assert ended.detail["exitMessage"] == f"Completed: nDCG {score:.4f} against the baseline (threshold 0.9); 114 row(s) explained from 3 sample file(s)"
    [event] = published(queue)
    assert event["source"] == SOURCE and event["detail-type"] == "Monitoring Run Ended" and event["detail"] == ended.detail
    assert event["detail"]["monitor"] == "explainability" and event["detail"]["processingJobName"] == f"{SCHEDULE}-2026112300"
    assert event["detail"]["reportHtmlS3Uri"] == f"s3://{BUCKET}/{REPORT}/report.html"
    latest = get_json(s3, f"explainability/reports/{ENDPOINT}/{SCHEDULE}/latest.json")
    assert latest["outcome"] == "Completed" and latest["reportS3Uri"] == f"s3://{BUCKET}/{REPORT}"

    values = metric_values(capsys)
    assert values["feature_attribution_ndcg"][0] == pytest.approx(score)
    for name in FEATURE_NAMES:
        value, dimensions = values[f"feature_{name}"]
        assert value == pytest.approx(current[name])
        assert dimensions == {"Endpoint": ENDPOINT, "MonitoringSchedule": SCHEDULE, "service": "tests"}
    assert values["feature_attribution_ndcg"][1] == {"Endpoint": ENDPOINT, "MonitoringSchedule": SCHEDULE, "service": "tests"}
    assert values["MonitoringRuns"] == (1.0, {"Monitor": "explainability", "Outcome": "Completed", "service": "tests"})
    assert len(values) == len(FEATURE_NAMES) + 2


def test_a_period_whose_top_features_went_silent_violates_with_clarifys_violation(aws, booster, explainer, silenced, capsys) -> None:
    s3, events, queue = aws
    put_samples(s3, booster, silenced)
    capsys.readouterr()
    ended = run(s3, events, explainer)

    score = get_json(s3, f"{REPORT}/analysis.json")["open_monitor"]["ndcg"]
    print(f"top {SILENCED} features silenced: nDCG {score:.4f}")
    assert score < 0.9
    [violation] = get_json(s3, f"{REPORT}/constraint_violations.json")["violations"]
    assert set(violation) == {"label", "metric_name", "constraint_check_type", "description"}
    assert (violation["label"], violation["metric_name"], violation["constraint_check_type"]) == (LABEL, "shap", "feature_attribution_drift_check")
    assert violation["description"].startswith(f"Feature attribution drift {score} exceeds threshold 0.9")

    assert ended.outcome == "CompletedWithViolations"
    [event] = published(queue)
    detail = event["detail"]
    assert detail["checkTypes"] == ["feature_attribution_drift_check"] and detail["features"] == [] and detail["violations"][0]["label"] == LABEL
    assert detail["exitMessage"].startswith(f"CompletedWithViolations: nDCG {score:.4f}")
    values = metric_values(capsys)
    assert values["feature_attribution_ndcg"][0] == pytest.approx(score)
    assert values["MonitoringRuns"][1]["Outcome"] == "CompletedWithViolations"

    html = s3.get_object(Bucket=BUCKET, Key=f"{REPORT}/report.html")["Body"].read().decode()
    assert "below the threshold 0.9: the ranking drifted" in html and html.count('class="bar-feature moved"') >= SILENCED


def test_shifting_or_permuting_the_top_features_keeps_their_ranking(booster, training, held_out) -> None:
    """What Clarify's measure does not see: a feature whose values move keeps its attribution (the
    measured figures are printed; the silenced copy above is what changes the ranking)."""
    base = mean_abs_shap(booster, training)
    order = np.argsort(-base)
    rng = np.random.default_rng(0)
    permuted, shifted = held_out.copy(), held_out.copy()
    for index in order[:3]:
        permuted[:, index] = rng.permutation(permuted[:, index])
        shifted[:, index] += 2 * training[:, index].std()
    names = list(FEATURE_NAMES)
    for label, table in (("held-out", held_out), ("top 3 permuted", permuted), ("top 3 shifted by 2 sd", shifted)):
        score = attribution.ndcg(dict(zip(names, base.tolist())), dict(zip(names, mean_abs_shap(booster, table).tolist())))
        print(f"{label}: nDCG {score:.4f}")
        assert score > 0.99, label


def test_bad_samples_and_rows_are_set_aside_with_reasons_and_the_rest_explained(aws, booster, explainer, held_out, capsys) -> None:
    s3, events, queue = aws
    put_samples(s3, booster, held_out[:60], parts=2)
    s3.put_object(Bucket=BUCKET, Key=sample_key("2026/11/22/10", "broken"), Body=b"{not json")
    other = sample.sample(500, FEATURE_NAMES[:29], [("e-x", 0, 0.5, held_out[0, :29].tolist())], source="older-model")
    s3.put_object(Bucket=BUCKET, Key=sample_key("2026/11/22/10", "older-model"), Body=sample.dumps(other))
    bad_rows = []
    for i, (index, value) in enumerate([(0, "abc"), (3, math.nan), (5, math.inf), (7, None), (9, "")]):
        features = held_out[60 + i].tolist()
        features[index] = value
        bad_rows.append((f"bad-{i}", 0, 0.5, features))
    s3.put_object(Bucket=BUCKET, Key=sample_key("2026/11/22/11", "bad-rows"), Body=sample.dumps(sample.sample(500, FEATURE_NAMES, bad_rows, source="bad-rows")))
    capsys.readouterr()
    ended = run(s3, events, explainer)

    analysis = get_json(s3, f"{REPORT}/analysis.json")["open_monitor"]
    assert analysis["rows_explained"] == 60 and analysis["rows_sampled"] == 65 and analysis["sample_files"] == 5
    assert analysis["rows_not_explained"] == {
        "text in mean_radius": 1, "NaN in mean_area": 1, "infinity in mean_compactness": 1,
        "missing value in mean_concave_points": 1, "missing value in mean_fractal_dimension": 1,
    }  # fmt: skip
    assert ended.outcome == "Completed"
    message = ended.detail["exitMessage"]
    assert "60 row(s) explained from 5 sample file(s)" in message and "rows not explained: NaN in mean_area: 1; infinity in" in message
    assert "2 file(s) set aside" in message and "not a sample: not JSON" in message
    assert "sample has 29 features (mean_radius, mean_texture, mean_perimeter, ...), the model 30" in message
    html = s3.get_object(Bucket=BUCKET, Key=f"{REPORT}/report.html")["Body"].read().decode()
    assert "Sample files set aside" in html and "Rows not explained" in html and "NaN in mean_area" in html
    assert "feature_attribution_ndcg" in metric_values(capsys)


@pytest.mark.parametrize("value", [1e39, "1e39", 1e155, 1e200, -1.7e308, 10**200, "-3.5e38"])
def test_a_value_beyond_the_float32_range_is_not_explained_and_counted(explainer, held_out, value) -> None:
    # XGBoost reads float32: such a value became infinity and failed the whole run (XGBoostError)
    rows = held_out[:20].tolist()
    rows[3][0] = value
    result = attribution.attributions(explainer, rows, FEATURE_NAMES)
    assert result.explained == 19 and result.not_explained == {"value beyond the float32 range in mean_radius": 1}
    largest = float(np.finfo(np.float32).max)  # the largest float32 itself is explained
    rows[3][0] = largest
    assert attribution.attributions(explainer, rows, FEATURE_NAMES).explained == 20


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e39", 1e200, 10**400])
def test_the_review_explainer_sets_aside_a_row_it_would_read_as_infinity(explainer, held_out, value) -> None:
    # The same float32 cast in the review starter's path (TreeExplainer.explain): the row is set
    # aside with its reason instead of an XGBoostError for the whole group.
    rows = held_out[:3].tolist()
    rows[1][4] = value
    results = explainer.explain(rows)
    assert isinstance(results[1], Unexplainable) and "feature 5 is" in str(results[1]) and "beyond the float32 range" in str(results[1])
    assert not isinstance(results[0], Unexplainable) and not isinstance(results[2], Unexplainable)
    rows[1][4] = math.nan  # NaN is a missing value, as the XGBoost container reads it
    assert not isinstance(explainer.explain(rows)[1], Unexplainable)


def test_an_empty_period_is_reported_with_no_metric_and_no_violation(aws, explainer, capsys) -> None:
    s3, events, queue = aws
    # A sample outside the period (the day before) is not read.
    s3.put_object(Bucket=BUCKET, Key=sample_key("2026/11/21/23", "late"), Body=sample.dumps(sample.sample(10, FEATURE_NAMES, [], source="late")))
    capsys.readouterr()
    ended = run(s3, events, explainer)
    assert ended.outcome == "Completed" and ended.detail["violationCount"] == 0
    assert ended.detail["exitMessage"] == "no data: no sample files for the period's hours (no complete prediction was captured, or profiling is off)"
    analysis = get_json(s3, f"{REPORT}/analysis.json")
    assert analysis["explanations"] == {} and analysis["open_monitor"]["ndcg"] is None
    assert get_json(s3, f"{REPORT}/constraint_violations.json")["violations"] == []
    values = metric_values(capsys)
    assert list(values) == ["MonitoringRuns"] and values["MonitoringRuns"][1]["Outcome"] == "Completed"
    [event] = published(queue)
    assert event["detail"]["exitMessage"].startswith("no data: ")


def test_a_model_with_another_feature_count_fails_the_run_and_says_why(aws, training, capsys) -> None:
    s3, events, queue = aws
    labels = (training[:, 0] > np.median(training[:, 0])).astype(float)
    smaller = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, xgb.DMatrix(training[:, :29], label=labels), num_boost_round=3)
    capsys.readouterr()
    ended = run(s3, events, TreeExplainer(smaller, "mlloop-dev-run-9"))
    assert ended.outcome == "Failed" and ended.detail["reportS3Uri"] is None
    assert ended.detail["failureReason"].startswith("model mlloop-dev-run-9 takes 29 features but 30 feature names are configured")
    assert published(queue)[0]["detail"]["outcome"] == "Failed"
    assert list(metric_values(capsys)) == ["MonitoringRuns"]
    assert get_json(s3, f"explainability/reports/{ENDPOINT}/{SCHEDULE}/latest.json")["outcome"] == "Failed"


@pytest.mark.parametrize(
    ("analysis", "reason"),
    [
        (None, "no baseline analysis.json at s3://monitoring-bucket/explainability/current/analysis.json (NoSuchKey)"),
        (b"not json", "baseline s3://monitoring-bucket/explainability/current/analysis.json is not JSON"),
        (
            {"version": "1.0", "explanations": {"kernel_shap": {"label0": {"global_shap_values": {"a": 1.0}}}}},
            "the baseline analysis.json has no tree_shap explanations (it has: kernel_shap)",
        ),
        ({"version": "1.0", "explanations": {"tree_shap": {"label0": {}}}}, "no global_shap_values for label 'benign' (labels: label0)"),
        (
            {"version": "1.0", "explanations": {"tree_shap": {"benign": {"global_shap_values": {n: 1.0 for n in FEATURE_NAMES[:29]}}}}},
            "the baseline explains 29 features and 30 are configured (missing from the baseline: worst_fractal_dimension",
        ),
    ],
)
def test_a_missing_or_foreign_baseline_fails_the_run_and_says_why(aws, explainer, analysis, reason) -> None:
    s3, events, queue = aws
    if analysis is None:
        s3.delete_object(Bucket=BUCKET, Key=attribution.BASELINE_KEY)
    else:
        s3.put_object(Bucket=BUCKET, Key=attribution.BASELINE_KEY, Body=analysis if isinstance(analysis, bytes) else json.dumps(analysis).encode())
    ended = run(s3, events, explainer)
    assert ended.outcome == "Failed" and reason in ended.detail["failureReason"]


def test_a_model_the_app_cannot_explain_fails_the_run_and_a_passing_fault_is_retried(aws, booster, held_out) -> None:
    s3, events, queue = aws

    def pickled():
        raise Unexplainable("xgboost-model is a Python pickle, which the app does not load")

    ended = attribution.run(RUN, SETTINGS, s3, events, pickled)
    assert ended.outcome == "Failed" and ended.detail["failureReason"] == "the endpoint's model cannot be explained: xgboost-model is a Python pickle, which the app does not load"

    def throttled():
        raise Unexplainable("could not find the endpoint's model (ThrottlingException: slow down)", transient=True)

    with pytest.raises(RuntimeError, match="ThrottlingException"):
        attribution.run(RUN, SETTINGS, s3, events, throttled)
    assert len(published(queue)) == 1  # the retried run publishes when it ends

    # A model with two outputs is found out when it explains the first row.
    put_samples(s3, booster, held_out)
    data = held_out[:100]
    two = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "nthread": 1},
                    xgb.DMatrix(data, label=np.column_stack([data[:, 0] > 14, data[:, 1] > 19]).astype(float)), num_boost_round=2)
    ended = run(s3, events, TreeExplainer(two, "two-outputs"))
    assert ended.outcome == "Failed" and ended.detail["failureReason"] == (
        "the endpoint's model cannot be explained: model two-outputs has several outputs; the app explains one probability per record"
    )


def test_the_handler_reads_its_environment_and_asks_the_endpoint_for_its_model(aws, booster, explainer, held_out, monkeypatch) -> None:
    s3, events, queue = aws
    put_samples(s3, booster, held_out)
    env = {
        "MONITORING_BUCKET": BUCKET, "ENDPOINT_NAME": ENDPOINT, "VARIANT_NAME": "AllTraffic", "SCHEDULE_NAME": SCHEDULE,
        "EVENT_SOURCE": SOURCE, "EVENT_BUS_NAME": "default", "CADENCES": json.dumps(MONITORING_CADENCES),
        "NDCG_THRESHOLD": "0.95", "SAMPLE_ROWS": "50", "FEATURE_NAMES": json.dumps(FEATURE_NAMES), "LABEL_NAMES": json.dumps(LABEL_NAMES),
    }  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    attribution.settings.cache_clear()
    attribution.deployed_model.cache_clear()
    asked = []
    monkeypatch.setattr(attribution, "deployed_model", lambda: type("Served", (), {"explainer": staticmethod(lambda: asked.append(1) or explainer)})())
    try:
        summary = attribution.handler(RUN, LambdaContext())
        config = attribution.settings()
    finally:
        attribution.settings.cache_clear()
    assert config.label == "benign" and config.ndcg_threshold == 0.95 and config.sample_rows == 50
    assert asked == [1] and summary["processingJobName"] == f"{SCHEDULE}-2026112300"
    assert get_json(s3, f"{REPORT}/analysis.json")["open_monitor"]["rows_sampled"] == 50  # SAMPLE_ROWS of the 114


# --- report ----------------------------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)


def test_the_report_is_self_contained_escaped_and_readable_on_a_phone(booster, training, silenced, tmp_path) -> None:
    hostile = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'
    base = dict(zip(FEATURE_NAMES, mean_abs_shap(booster, training).tolist()))
    current = dict(zip(FEATURE_NAMES, mean_abs_shap(booster, silenced).tolist()))
    score = attribution.ndcg(base, current)
    violations = attribution.violations_document(score, 0.9, hostile)["violations"]
    header = report.AttributionRun(
        environment=f"{ENDPOINT}, {SCHEDULE}", window="2026-11-22T00:00Z to 2026-11-23T00:00Z (capture hours, end excluded)",
        label=hostile, threshold=0.9, model=hostile, sample_files=3, rows_sampled=114, rows_explained=113,
        rows_not_explained={f"text in {hostile}": 1}, set_aside=[(hostile, hostile)],
    )  # fmt: skip
    html = report.render_attribution({**base, hostile: 0.5}, {**current, hostile: 0.1}, score, violations, header)
    page = Page(html)
    assert "script" not in page.tags and not any(name.startswith("on") for name, _ in page.attributes)
    assert hostile not in html and "&lt;script&gt;" in html
    assert not any(tag == "img" for tag in page.tags) and "url(" not in html and "@import" not in html
    # Every feature with an attribution has its two bars, in the baseline's order; the others are named once.
    shown = [name for name in FEATURE_NAMES if base[name] or current[name]]
    assert html.count('class="bar base"') == html.count('class="bar cur"') == len(shown) + 1
    assert html.index(">worst_perimeter</h3>") < html.index(">worst_concave_points</h3>") < html.index(">mean_concave_points</h3>")
    assert "No attribution in either" in html and "mean_radius" in html
    assert f"{score:.4f}, below the threshold 0.9: the ranking drifted" in html
    if CHROMIUM:  # a picture for the README and for a human to look at; the checks above do not need it
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = tmp_path / "report.html"
        path.write_text(report.render_attribution(base, current, score, attribution.violations_document(score, 0.9, LABEL)["violations"],
                                                  report.AttributionRun(environment=f"{ENDPOINT}, {SCHEDULE}", window="2026-11-22", label=LABEL, threshold=0.9,
                                                                        model="mlloop-dev-model-1", sample_files=3, rows_sampled=114, rows_explained=114)))
        shot = ARTIFACTS / "attribution_report.png"
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
        subprocess.run([*flags, "--window-size=390,2400", f"--screenshot={shot}", path.as_uri()], capture_output=True, timeout=120, check=True)
        assert shot.stat().st_size > 10_000
