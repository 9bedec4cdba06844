"""The open back end's model-quality run on moto (S3, EventBridge to SQS): what it reads, writes,
emits and publishes, how late labels reach their period, and how it treats bad input.

The baseline is the bundled model's test-set scores (``test-scores.csv``), computed by the open
baselines custom resource (``baseline.on_event``, monitor ``model-quality``) as at deploy time. The
period's predictions are the 114 held-out rows (``captures.held_out``: the bundled model's scores),
written as two capture files of one hour in SageMaker's layout; the labels are the rows' true labels
(``test.csv``) in Model Monitor's ground-truth format, each with how it came to be reviewed. The EMF
documents are read from what Powertools prints; the event from an SQS queue behind an EventBridge
rule on its source.
"""

from __future__ import annotations

import json
import uuid

import boto3
import numpy as np
import pytest
from sklearn import metrics as sk

from lambdas.monitoring.open import baseline, common, model_quality
from lambdas.monitoring.runs import runs
from stacks.shared.aws_facts import MONITORING_CADENCES
from stacks.shared.default_model import TEST_CSV, TEST_SCORES_CSV, captures
from tests.lambdas.aws_env import REGION, LambdaContext, event_sink
from tests.lambdas.monitoring.test_open_data_quality import emf, metric_values, published
from tests.lambdas.monitoring.test_quality_metrics import scikit_learn

MONITORING, CAPTURE, LABELS = "monitoring-bucket", "capture-bucket", "labels-bucket"
SOURCE = "mlloop.monitoring"
ENDPOINT, SCHEDULE = "mlloop-dev", "mlloop-dev-model-quality"
DAILY = "cron(0 0 ? * * *)"
RUN = {"scheduledTime": "2026-11-23T00:20:00Z", "schedule": DAILY}
NEXT_RUN = {"scheduledTime": "2026-11-24T00:20:00Z", "schedule": DAILY}
REPORTS = f"model-quality/reports/{ENDPOINT}/{SCHEDULE}"
REPORT = f"{REPORTS}/2026/11/23/00"  # the period 2026-11-22 00:00 to 2026-11-23 00:00
CAPTURE_PREFIX = f"datacapture/{ENDPOINT}/"
NAMESPACE = uuid.UUID("0b7c1f4e-2b1a-4f5e-8c3d-6a9e2f1d0c21")
AUDIT_PROBABILITY = 0.02


def settings(**changes) -> model_quality.QualitySettings:
    evaluator = common.EvaluatorSettings(
        bucket=MONITORING, endpoint=ENDPOINT, schedule=SCHEDULE, event_source=SOURCE, event_bus="default", cadences=dict(MONITORING_CADENCES)
    )
    values = dict(
        evaluator=evaluator, capture_bucket=CAPTURE, capture_prefix=CAPTURE_PREFIX, labels_bucket=LABELS, ground_truth_prefix="ground-truth/",
        label_window_hours=48, threshold=0.5, score_path=None, features_path="features", tolerance=0.05, estimate=True, review=None,
    )  # fmt: skip
    values.update(changes)
    return model_quality.QualitySettings(**values)


# --- data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """The model's score, then the features, of each held-out row."""
    return captures.held_out()


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return np.loadtxt(TEST_CSV, delimiter=",")[:, 0].astype(int)


def event_id(index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"row-{index}"))


def put_captures(s3, table: np.ndarray, hour: str = "2026/11/22/10", parts: int = 2) -> None:
    for part, chunk in enumerate(np.array_split(np.arange(len(table)), parts)):
        lines = [
            captures.capture_line(table[i, 1:], float(table[i, 0]), event_id=event_id(i), inference_time="2026-11-22T10:00:00Z")
            for i in chunk
        ]
        key = f"{CAPTURE_PREFIX}AllTraffic/{hour}/capture-{part}.jsonl"
        s3.put_object(Bucket=CAPTURE, Key=key, Body=("\n".join(lines) + "\n").encode())


def label_line(index: int, value: int, sampling: dict | None = None) -> str:
    record = {"groundTruthData": {"data": str(value), "encoding": "CSV"}, "eventMetadata": {"eventId": event_id(index)}, "eventVersion": "0"}
    if sampling is not None:
        record["sampling"] = sampling
    return json.dumps(record)


def sampling_of(score: float) -> dict:
    """Rows in the review band are the rule's (reviewed for sure); the others reach review as audit rows."""
    if 0.1 < score < 0.9:
        return {"inclusionProbability": 1.0, "selectedBy": "rule"}
    return {"inclusionProbability": AUDIT_PROBABILITY, "selectedBy": "audit"}


def put_labels(s3, lines: list[str], hour: str = "2026/11/22/15", name: str = "labels.jsonl") -> str:
    key = f"ground-truth/{hour}/{name}"
    s3.put_object(Bucket=LABELS, Key=key, Body=("\n".join(lines) + "\n").encode())
    return key


# --- AWS -------------------------------------------------------------------------------------


@pytest.fixture
def aws(mocked_aws):
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (MONITORING, CAPTURE, LABELS):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=MONITORING, Key="datasets/test-scores.csv", Body=TEST_SCORES_CSV.read_bytes())
    baseline.on_event(
        {"RequestType": "Create", "ResourceProperties": {
            "Monitor": "model-quality", "MonitoringBucket": MONITORING, "DatasetS3Uri": f"s3://{MONITORING}/datasets/test-scores.csv",
            "DecisionThreshold": "0.5", "Tolerance": "0.05",
        }},
        s3=s3,
    )  # fmt: skip
    events, queue = event_sink({"source": [SOURCE], "detail-type": [runs.RUN_ENDED]})
    return s3, events, queue


def get_json(s3, key: str):
    return json.loads(s3.get_object(Bucket=MONITORING, Key=key)["Body"].read())


# --- runs ------------------------------------------------------------------------------------


def test_a_period_with_reviewed_labels_reports_weighted_figures_equal_to_scikit_learns(aws, held_out, truth, capsys):
    s3, events, queue = aws
    put_captures(s3, held_out)
    scores = held_out[:, 0]
    put_labels(s3, [label_line(i, int(truth[i]), sampling_of(scores[i])) for i in range(len(truth))])
    capsys.readouterr()
    ended = model_quality.run(RUN, settings(), s3, events)

    statistics = get_json(s3, f"{REPORT}/statistics.json")
    weights = np.array([1 / sampling_of(s)["inclusionProbability"] for s in scores])
    predicted = (scores >= 0.5).astype(int)
    documented = statistics["binary_classification_metrics"]
    expected = scikit_learn(truth, scores, predicted, weights)
    for name, value in expected.items():
        assert documented[name]["value"] == pytest.approx(value, abs=1e-9), name
        assert documented[name]["standard_deviation"] >= 0, name  # 0 where no row could move it: recall is 1 on every row
    matrix = sk.confusion_matrix(truth, predicted, sample_weight=weights)
    assert [documented["confusion_matrix"][t][p] for t in "01" for p in "01"] == pytest.approx(matrix.ravel().tolist())
    ours = statistics["open_monitor"]
    assert ours["basis"] == "weighted" and statistics["dataset"]["item_count"] == 114
    assert ours["bases"]["reviewed"]["figures"]["accuracy"]["value"] == pytest.approx(sk.accuracy_score(truth, predicted), abs=1e-9)
    low, high = ours["bases"]["weighted"]["figures"]["accuracy"]["interval_95"]
    assert low <= documented["accuracy"]["value"] <= high
    assert ours["labels"]["joined"] == 114 and ours["labels"]["response"].startswith("unknown")
    # Not told the review rule, the monitor cannot count the strata: each row counts 1 / its probability.
    assert ours["basis_description"] == "each labelled row counts 1 / its inclusion probability (Horvitz-Thompson): all predictions"
    assert ours["estimate"]["figures"]["accuracy"]["value"] == pytest.approx(0.95, abs=0.03)
    assert ours["intake"] == {
        "files": 1, "labels": 114, "unknown_ids": 0, "unknown_file": None, "rejected_lines": 0, "rejected": {}, "rejected_file": None,
        "outside_hour_folders": {"count": 0, "keys": []},
    }  # fmt: skip

    assert ended.outcome == "Completed" and ended.detail["monitor"] == "model-quality"
    assert ended.detail["processingJobName"] == f"{SCHEDULE}-2026112300"
    [event] = published(queue)
    assert event["detail-type"] == "Monitoring Run Ended" and event["detail"] == ended.detail
    assert event["detail"]["reportHtmlS3Uri"] == f"s3://{MONITORING}/{REPORT}/report.html"
    assert get_json(s3, f"{REPORT}/constraint_violations.json") == {"violations": []}
    page = s3.get_object(Bucket=MONITORING, Key=f"{REPORT}/report.html")
    assert page["ContentType"].startswith("text/html")
    html = page["Body"].read().decode()
    assert "<svg" in html and "Confusion matrix" in html and "ROC curve" in html and "Calibration" in html
    latest = get_json(s3, f"{REPORTS}/latest.json")
    assert latest["outcome"] == "Completed" and latest["scheduledTime"] == RUN["scheduledTime"]

    values = metric_values(emf(capsys))
    assert values["accuracy"][0] == pytest.approx(expected["accuracy"])
    assert values["labelled_rows"][0] == 114.0
    assert values["estimated_accuracy"][0] == pytest.approx(0.95, abs=0.03)
    assert values["accuracy"][1] == {"Endpoint": ENDPOINT, "MonitoringSchedule": SCHEDULE, "service": "tests"}
    assert {name: value for name, (value, _) in values.items() if name.endswith("_violation")} == {
        f"{name}_violation": 0.0 for name in ("accuracy", "precision", "recall", "f1", "auc")
    }
    assert values["MonitoringRuns"] == (1.0, {"Monitor": "model-quality", "Outcome": "Completed", "service": "tests"})


def test_a_model_that_is_wrong_violates_its_constraints_with_model_monitors_check_type(aws, held_out, truth, capsys):
    s3, events, queue = aws
    put_captures(s3, held_out)
    predicted = (held_out[:, 0] >= 0.5).astype(int)
    # Reviewers say the opposite of the model on every row: accuracy 0 on 114 rows, far below 0.97 - 0.05.
    put_labels(s3, [label_line(i, 1 - int(predicted[i]), {"inclusionProbability": 1.0, "selectedBy": "all"}) for i in range(len(truth))])
    ended = model_quality.run(RUN, settings(), s3, events)
    violations = get_json(s3, f"{REPORT}/constraint_violations.json")["violations"]
    assert {v["metric_name"] for v in violations} == {"accuracy", "precision", "recall", "f1", "auc"}
    assert all(v["constraint_check_type"] == "LessThanThreshold" and set(v) == {"constraint_check_type", "description", "metric_name"} for v in violations)
    assert ended.outcome == "CompletedWithViolations" and ended.detail["checkTypes"] == ["LessThanThreshold"]
    assert ended.detail["exitMessage"].startswith("CompletedWithViolations: 5 violation(s)")
    values = metric_values(emf(capsys))
    assert all(values[f"{name}_violation"][0] == 1.0 for name in ("accuracy", "precision", "recall", "f1", "auc"))


def test_without_labels_the_estimate_is_checked_against_the_constraints(aws, held_out, capsys):
    """No labels: the estimated figures stand in; the held-out rows' estimate is within tolerance."""
    s3, events, _ = aws
    put_captures(s3, held_out)
    capsys.readouterr()
    ended = model_quality.run(RUN, settings(), s3, events)
    assert ended.outcome == "Completed"
    values = metric_values(emf(capsys))
    assert "accuracy" not in values and values["labelled_rows"][0] == 0.0
    assert values["estimated_accuracy"][0] == pytest.approx(0.9508, abs=1e-3)
    assert values["accuracy_violation"][0] == 0.0
    statistics = get_json(s3, f"{REPORT}/statistics.json")
    assert "binary_classification_metrics" not in statistics and statistics["open_monitor"]["basis"] is None


def test_bad_labels_are_parked_counted_and_reported_and_the_good_ones_still_count(aws, held_out, truth):
    s3, events, _ = aws
    put_captures(s3, held_out)
    good = [label_line(i, int(truth[i]), {"inclusionProbability": 1.0, "selectedBy": "all"}) for i in range(100)]
    bad = [
        "not json",
        json.dumps({"groundTruthData": {"data": "2", "encoding": "CSV"}, "eventMetadata": {"eventId": event_id(100)}, "eventVersion": "0"}),
        json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventVersion": "0"}),
        label_line(101, 1, {"inclusionProbability": 0, "selectedBy": "audit"}),
    ]
    unknown = [label_line(10_000, 1), label_line(10_001, 0)]
    put_labels(s3, good + bad + unknown)
    # A second file, later, for row 0 with the opposite label: the latest wins, counted as a conflict.
    put_labels(s3, [label_line(0, 1 - int(truth[0]))], hour="2026/11/22/16", name="later.jsonl")
    model_quality.run(RUN, settings(), s3, events)

    ours = get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]
    assert ours["intake"]["labels"] == 100 + 2 + 1 and ours["intake"]["unknown_ids"] == 2
    assert ours["intake"]["rejected_lines"] == 4
    assert ours["labels"]["joined"] == 100 and ours["labels"]["duplicates"] == 1 and ours["labels"]["conflicting"] == 1
    parked = [json.loads(line) for line in s3.get_object(Bucket=MONITORING, Key=f"{REPORT}/rejected_labels.jsonl")["Body"].read().splitlines()]
    assert [(p["line"], p["reason"].split(":")[0].split(" ")[0]) for p in parked] == [(101, "not"), (102, "label"), (103, "no"), (104, "sampling.inclusionProbability")]
    assert parked[0]["text"] == "not json" and parked[0]["source"] == "ground-truth/2026/11/22/15/labels.jsonl"
    expected_labels = truth[:100].copy()
    expected_labels[0] = 1 - expected_labels[0]
    predicted = (held_out[:100, 0] >= 0.5).astype(int)
    accuracy = ours["bases"]["labelled"]["figures"]["accuracy"]["value"]
    assert accuracy == pytest.approx(sk.accuracy_score(expected_labels, predicted), abs=1e-9)


@pytest.mark.filterwarnings("ignore:This metric doesn.t meet the requirements:UserWarning")  # a re-evaluation dates its metrics at the period (in 2026-11)
def test_late_labels_reach_their_period_at_the_next_run_and_rewrite_its_report(aws, held_out, truth):
    s3, events, queue = aws
    put_captures(s3, held_out)
    put_labels(s3, [label_line(i, int(truth[i]), {"inclusionProbability": 1.0, "selectedBy": "all"}) for i in range(50)])
    model_quality.run(RUN, settings(), s3, events)
    assert get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]["labels"]["joined"] == 50
    published(queue)

    # 64 more labels arrive the next day, within the 48 h window: the next run evaluates its own
    # (empty) period and the 22nd again, whose report now counts 114 labelled rows.
    put_labels(s3, [label_line(i, int(truth[i]), {"inclusionProbability": 1.0, "selectedBy": "all"}) for i in range(50, 114)], hour="2026/11/23/09")
    ended = model_quality.run(NEXT_RUN, settings(), s3, events)
    statistics = get_json(s3, f"{REPORT}/statistics.json")
    assert statistics["open_monitor"]["labels"]["joined"] == 114
    assert statistics["open_monitor"]["re_evaluated"]["labelled_before"] == 50
    names = sorted(e["detail"]["processingJobName"] for e in published(queue))
    assert names == [f"{SCHEDULE}-2026112300", f"{SCHEDULE}-2026112400"]
    assert ended.detail["processingJobName"] == f"{SCHEDULE}-2026112400"
    assert get_json(s3, f"{REPORTS}/2026/11/24/00/statistics.json")["open_monitor"]["intake"]["unknown_ids"] == 0

    # The pages: the rewritten 22nd's figures table has the estimate beside the realized figure, and the
    # next period's "Recent periods" has the 22nd's point as rewritten (earlier periods are evaluated
    # first), its realized accuracy and the estimate side by side.
    realized = statistics["open_monitor"]["bases"]["weighted"]["figures"]["accuracy"]["value"]
    estimated = statistics["open_monitor"]["estimate"]["figures"]["accuracy"]["value"]
    rewritten = s3.get_object(Bucket=MONITORING, Key=f"{REPORT}/report.html")["Body"].read().decode()
    row = rewritten[rewritten.index("<tr><td>Accuracy</td>") :].split("</tr>")[0]
    assert row.startswith(f"<tr><td>Accuracy</td><td>{realized:.4g}<br>") and f"<td>{estimated:.4g}<br>" in row
    following = s3.get_object(Bucket=MONITORING, Key=f"{REPORTS}/2026/11/24/00/report.html")["Body"].read().decode()
    recent = following[following.index("<h2>Recent periods</h2>") :]
    point = recent[recent.index("<tr><td>2026-11-23T00:00:00Z</td>") :].split("</tr>")[0]
    assert "<td>114 (weighted)</td>" in point
    assert f"<td>{realized:.4g} " in point and f" / {estimated:.4g} " in point

    # Nothing new: the 22nd is evaluated again but not rewritten, and no event is published for it.
    model_quality.run(NEXT_RUN, settings(), s3, events)
    assert [e["detail"]["processingJobName"] for e in published(queue)] == [f"{SCHEDULE}-2026112400"]


def test_labels_after_the_window_do_not_reach_the_period(aws, held_out, truth):
    s3, events, _ = aws
    put_captures(s3, held_out)
    put_labels(s3, [label_line(i, int(truth[i])) for i in range(114)], hour="2026/11/25/01")  # 49 h after the 22nd ended
    model_quality.run({"scheduledTime": "2026-11-26T00:20:00Z", "schedule": DAILY}, settings(), s3, events)
    assert model_quality.periods_to_evaluate(common.period(RUN, MONITORING_CADENCES), 48)[-1].start.day == 20
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=MONITORING, Key=f"{REPORT}/statistics.json")  # the 22nd's window closed at the 25th 00:00
    intake = get_json(s3, f"{REPORTS}/2026/11/26/00/statistics.json")["open_monitor"]["intake"]
    assert intake["labels"] == 114 and intake["unknown_ids"] == 114


def test_response_rates_adjust_the_weights_when_the_review_rule_is_known(aws, held_out, truth):
    """The rule selects the band; half of the band's rows were answered: the weighted figure counts
    each answered band row twice (1 / response rate), and the page and statistics give the rates."""
    from lambdas.capture.selection import Audit, SelectionRule

    s3, events, _ = aws
    put_captures(s3, held_out)
    scores = held_out[:, 0]
    band = [i for i in range(len(scores)) if 0.1 < scores[i] < 0.9]
    answered = band[::2]
    put_labels(s3, [label_line(i, int(truth[i]), {"inclusionProbability": 1.0, "selectedBy": "rule"}) for i in answered])
    review = model_quality.Review(SelectionRule("band", 0.1, 0.9), Audit(2.0))
    model_quality.run(RUN, settings(review=review), s3, events)
    ours = get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]
    assert ours["labels"]["response"]["rule"] == {
        "selected": len(band), "labelled": len(answered), "rate": round(len(answered) / len(band), 6), "stands_for": len(band)
    }  # fmt: skip
    assert ours["labels"]["response"]["audit"]["labelled"] == 0
    weight = ours["bases"]["weighted"]["weight"]
    assert weight == pytest.approx(len(band))  # each answered row stands for 1 / rate rows


def test_a_missing_baseline_fails_the_run_and_says_why(mocked_aws):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=MONITORING, CreateBucketConfiguration={"LocationConstraint": REGION})
    events = boto3.client("events", region_name=REGION)
    ended = model_quality.run(RUN, settings(), s3, events)
    assert ended.outcome == "Failed"
    assert ended.detail["failureReason"].startswith("no baseline statistics.json at s3://monitoring-bucket/model-quality/current/statistics.json")
    assert get_json(s3, f"{REPORTS}/latest.json")["outcome"] == "Failed"


def test_a_baseline_without_test_set_scores_gives_figures_without_constraints_or_estimate(aws, held_out, truth):
    s3, events, _ = aws
    baseline.on_event({"RequestType": "Create", "ResourceProperties": {"Monitor": "model-quality", "MonitoringBucket": MONITORING}}, s3=s3)
    put_captures(s3, held_out)
    put_labels(s3, [label_line(i, 1 - int(truth[i])) for i in range(114)])  # all wrong: but no constraints
    ended = model_quality.run(RUN, settings(), s3, events)
    assert ended.outcome == "Completed"
    ours = get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]
    assert ours["basis"] == "labelled" and ours["estimate"]["none"].startswith("no reference scores")
    assert "no estimate: no reference scores" in ended.detail["exitMessage"]


def test_the_handler_reads_its_settings_from_the_environment(aws, held_out, truth, monkeypatch):
    s3, _, queue = aws
    put_captures(s3, held_out)
    environment = {
        "MONITORING_BUCKET": MONITORING, "ENDPOINT_NAME": ENDPOINT, "SCHEDULE_NAME": SCHEDULE, "EVENT_SOURCE": SOURCE,
        "CADENCES": json.dumps(dict(MONITORING_CADENCES)), "CAPTURE_BUCKET": CAPTURE, "CAPTURE_PREFIX": CAPTURE_PREFIX,
        "LABELS_BUCKET": LABELS, "GROUND_TRUTH_PREFIX": "ground-truth/", "LABEL_WINDOW_HOURS": "48", "DECISION_THRESHOLD": "0.5",
        "SCORE_PATH": "", "FEATURES_PATH": "features", "TOLERANCE": "0.05", "ESTIMATE": "false",
    }  # fmt: skip
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    model_quality.settings.cache_clear()
    try:
        summary = model_quality.handler(RUN, LambdaContext())
    finally:
        model_quality.settings.cache_clear()
    assert summary["outcome"] == "Completed" and summary["reportS3Uri"] == f"s3://{MONITORING}/{REPORT}"
    assert get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]["estimate"] == {"none": "the estimate is off (monitoring.model_quality.estimate)"}
    assert [e["detail"]["outcome"] for e in published(queue)] == ["Completed"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CAPTURE_PREFIX", "datacapture/mlloop-dev", "a key prefix ending in /"),
        ("LABEL_WINDOW_HOURS", "-1", "not a whole number of hours"),
        ("ESTIMATE", "yes", "not true or false"),
        ("SELECTION_RULE", "sideways", "the review rule's variables"),
    ],
)
def test_settings_name_the_variable_that_is_wrong(name, value, message):
    from lambdas.shared.consumer import Environment, SettingsError

    environment = {
        "MONITORING_BUCKET": "b", "ENDPOINT_NAME": "e", "SCHEDULE_NAME": "s", "EVENT_SOURCE": "x", "CADENCES": json.dumps({DAILY: 86400}),
        "CAPTURE_BUCKET": "c", "CAPTURE_PREFIX": "p/", "LABELS_BUCKET": "l", "GROUND_TRUTH_PREFIX": "ground-truth/", "LABEL_WINDOW_HOURS": "48",
        "REVIEW_SELECTION": "true", "SELECTION_RULE": "band", "LOWER_THRESHOLD": "0.1", "UPPER_THRESHOLD": "0.9", "SELECTED_OUTCOME": "0",
        "AUDIT_PERCENTAGE": "2",
    }  # fmt: skip
    assert model_quality.read_settings(Environment(environment)).review.audit.fraction == 0.02
    with pytest.raises(SettingsError, match=message):
        model_quality.read_settings(Environment({**environment, name: value}))


def test_the_audit_rows_stand_for_the_rows_the_rule_left_however_many_the_draw_took(aws, held_out, truth):
    """Every band row and every audit row answered: the audit's weights add up to the captured rows
    the rule left (post-stratification), not to drawn / fraction; the figure is the weighted one
    scikit-learn gives with those weights."""
    from lambdas.capture.selection import Audit, SelectionRule

    s3, events, _ = aws
    put_captures(s3, held_out)
    scores = held_out[:, 0]
    audit = Audit(AUDIT_PROBABILITY * 100)
    band = [i for i in range(len(scores)) if 0.1 < scores[i] < 0.9]
    drawn = [i for i in range(len(scores)) if i not in band and audit.selects(event_id(i), 0)]
    assert drawn  # the bundled sample has audit rows (samples/captures/held-out-labels.jsonl answers them)
    lines = [label_line(i, int(truth[i]), sampling_of(scores[i])) for i in band + drawn]
    put_labels(s3, lines)
    model_quality.run(RUN, settings(review=model_quality.Review(SelectionRule("band", 0.1, 0.9), audit)), s3, events)

    ours = get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]
    left = len(scores) - len(band)
    assert ours["labels"]["response"]["audit"] == {"selected": len(drawn), "labelled": len(drawn), "rate": 1.0, "stands_for": left}
    assert ours["bases"]["weighted"]["weight"] == pytest.approx(len(scores))  # 16 band rows + the 98 rows the rule left
    weights = [1.0] * len(band) + [left / len(drawn)] * len(drawn)
    rows = band + drawn
    expected = sk.accuracy_score(truth[rows], (scores[rows] >= 0.5).astype(int), sample_weight=weights)
    assert ours["bases"]["weighted"]["figures"]["accuracy"]["value"] == pytest.approx(expected, abs=1e-9)
