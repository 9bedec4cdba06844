"""`make rehearse`: the simulated clock, the output folder, the command line, and a short rehearsal
of the whole loop (the app synthesised for dev, wired from its templates, in simulated time)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from local.rehearse import report
from local.rehearse.__main__ import main
from local.rehearse.clock import ClockError, SimulatedClock
from local.rehearse.report import Decision, Hour, Outcome
from local.rehearse.run import Observer, drifted, execution_outcome, quality_figures, quality_record, request_body
from stacks.shared.config import load_environment

UTC = dt.UTC
START = dt.datetime(2026, 11, 23, tzinfo=UTC)


# -- the clock --------------------------------------------------------------------------------------


def test_clock_pins_every_clock_the_handlers_and_moto_read() -> None:
    with SimulatedClock(START) as clock:
        assert dt.datetime.now(UTC) == START and time.time() == START.timestamp()
        clock.advance_to(START + dt.timedelta(hours=5, minutes=3))
        assert dt.datetime.now(UTC) == START + dt.timedelta(hours=5, minutes=3)
        assert time.gmtime().tm_hour == 5
        time.sleep(0.01)  # it does not tick by itself: a handler's run takes no simulated time
        assert dt.datetime.now(UTC) == START + dt.timedelta(hours=5, minutes=3)
        with mock_aws():
            s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
            s3.create_bucket(Bucket="clock-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
            s3.put_object(Bucket="clock-test", Key="k", Body=b"x")
            assert s3.head_object(Bucket="clock-test", Key="k")["LastModified"] == START + dt.timedelta(hours=5, minutes=3)
    before = time.time()
    time.sleep(0.01)
    assert time.time() > before and dt.datetime.now(UTC) != START + dt.timedelta(hours=5, minutes=3)  # the real clock again


def test_clock_only_goes_forwards_and_refuses_naive_times() -> None:
    clock = SimulatedClock(START)
    clock.advance_to(START + dt.timedelta(hours=1))
    with pytest.raises(ClockError, match="cannot go back"):
        clock.advance_to(START)
    with pytest.raises(ClockError, match="timezone-aware"):
        clock.advance_to(dt.datetime(2026, 11, 24))
    with pytest.raises(ClockError, match="timezone-aware"):
        SimulatedClock(dt.datetime(2026, 11, 24))


# -- reading what the loop wrote ---------------------------------------------------------------------


def test_drift_counts_input_features_with_a_drift_check_only() -> None:
    document = json.dumps({"violations": [
        {"feature_name": "mean_radius", "constraint_check_type": "baseline_drift_check"},
        {"feature_name": "_score", "constraint_check_type": "baseline_drift_check"},
        {"feature_name": "mean_texture", "constraint_check_type": "data_type_check"},
    ]}).encode()  # fmt: skip
    assert drifted(document, {"mean_radius", "mean_texture"}) == {"mean_radius": ["baseline_drift_check"]}
    assert drifted(b"not json", {"mean_radius"}) == {}


def test_quality_figures_read_model_monitors_shape() -> None:
    document = json.dumps({"binary_classification_metrics": {"accuracy": {"value": 0.9, "standard_deviation": 0.01}, "f1": {"value": 0.8}, "recall": {"value": 0.7}}}).encode()
    assert quality_figures(document) == {"accuracy": 0.9, "f1": 0.8}


def test_execution_outcome_says_why_it_promoted_or_kept() -> None:
    evaluation = {
        "metric": "validation:logloss", "tolerance": 0.01, "promote": False,
        "candidate": {"value": 0.31}, "serving": {"value": 0.12}, "difference": {"value": 0.19, "interval": [0.1, 0.28]},
    }  # fmt: skip
    run = execution_outcome("mlloop-dev-retraining", {"executionArn": "arn:x:run-1", "name": "run-1", "status": "SUCCEEDED", "output": json.dumps({"promoted": False, "evaluation": evaluation})})
    assert run["promoted"] is False and "candidate 0.3100, serving 0.1200" in run["why"] and "kept the serving model" in run["why"]
    failed = execution_outcome("m", {"executionArn": "arn:x:run-2", "status": "FAILED", "error": "States.TaskFailed", "cause": "no rows"})
    assert failed["why"] == "States.TaskFailed: no rows" and failed["promoted"] is False


def test_request_body_is_what_a_client_sends() -> None:
    assert request_body(load_environment("dev"), [1.5, 2, "3"]) == ("1.5,2,3", "text/csv")


def test_observer_counts_what_changed_since_it_last_looked() -> None:
    config = load_environment("dev")
    feature = config.model.feature_names[0]
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
        for bucket in ("capture-bucket", "monitoring-bucket", "labels-bucket"):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        observer = Observer(cloud=None, config=config)
        s3.put_object(Bucket="capture-bucket", Key="capture/mlloop-dev/AllTraffic/2026/11/23/00/00-00-000-a.jsonl", Body=b"{}\n{}\n")
        first = Hour(0, "2026-11-23T00:00:00Z", "2026-11-23T01:00:00Z")
        observer._objects(first)
        assert first.captured == 2
        s3.put_object(Bucket="labels-bucket", Key="ground-truth/2026/11/23/01/loop-1.jsonl", Body=b"{}\n{}\n{}\n")
        folder = "data-quality/reports/mlloop-dev/mlloop-dev-data-quality/2026/11/23/01"
        s3.put_object(Bucket="monitoring-bucket", Key=f"{folder}/constraint_violations.json", Body=json.dumps({"violations": [{"feature_name": feature, "constraint_check_type": "baseline_drift_check"}]}).encode())
        s3.put_object(Bucket="monitoring-bucket", Key=f"{folder}/report.html", Body=b"<html>")
        second = Hour(1, "2026-11-23T01:00:00Z", "2026-11-23T02:00:00Z")
        observer._objects(second)
        assert (second.captured, second.labels, second.drift) == (0, 3, {feature: ["baseline_drift_check"]})
        assert second.reports == [f"monitoring-bucket/{folder}/report.html"] and second.monitor_runs == ["data-quality 2026/11/23/01h: 1 violation"]
        assert report.report_label(second.reports[0]) == "data-quality 2026/11/23/01h"
        assert observer.drift_periods() == {"mlloop-dev/mlloop-dev-data-quality/2026/11/23/01": [feature]}


def capture_line(record_id: str, score: float) -> bytes:
    """One request as the endpoint stand-in captures it (SageMaker's data capture line)."""
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1.0,2.0", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": str(score), "encoding": "CSV"},
        },
        "eventMetadata": {"eventId": f"event-{record_id}", "inferenceId": record_id, "inferenceTime": "2026-11-23T10:00:00Z"},
        "eventVersion": "0",
    }).encode()  # fmt: skip


def test_observer_puts_the_true_accuracy_of_the_period_beside_model_qualitys_figures() -> None:
    config = load_environment("dev")
    captures = f"capture/{config.endpoint.name}"
    figure = {"value": 0.75, "interval_95": [0.6, 0.9]}
    statistics = {
        "binary_classification_metrics": {"accuracy": {"value": 0.75}, "f1": {"value": 0.7}, "auc": {"value": 0.8}},
        "open_monitor": {
            "basis": "weighted", "decision_threshold": 0.5, "labels": {"joined": 3},
            "period": {"start": "2026-11-23T00:00:00Z", "end": "2026-11-24T00:00:00Z"},
            "bases": {"weighted": {"figures": {"accuracy": figure}}, "reviewed": {"figures": {"accuracy": {"value": 0.6, "interval_95": [0.2, 0.9]}}}},
            "estimate": {"figures": {"accuracy": {"value": 0.85, "interval_95": [0.7, 0.95]}}},
        },
    }  # fmt: skip
    # The period's predictions (score >= 0.5 is 1): right, wrong, right, wrong, and one whose truth is unknown.
    truth = {"r1": 1, "r2": 0, "r3": 0, "r4": 1, "late": 0, "other": 0}
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
        for bucket in ("capture-bucket", "monitoring-bucket"):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        lines = {
            f"{captures}/AllTraffic/2026/11/23/00/00-05-000-a.jsonl": [capture_line("r1", 0.9), capture_line("r2", 0.5)],
            f"{captures}/Shadow/2026/11/23/23/23-55-000-b.jsonl": [capture_line("r3", 0.2), capture_line("r4", 0.4), capture_line("unknown", 0.9)],
            # Outside the period (the next day's hour folder) and outside the endpoint's prefix: not its rows.
            f"{captures}/AllTraffic/2026/11/24/00/00-05-000-c.jsonl": [capture_line("late", 0.9)],
            "capture/another-endpoint/AllTraffic/2026/11/23/00/00-05-000-d.jsonl": [capture_line("other", 0.9)],
        }
        for key, body in lines.items():
            s3.put_object(Bucket="capture-bucket", Key=key, Body=b"\n".join(body) + b"\n")
        folder = "model-quality/reports/mlloop-dev/mlloop-dev-model-quality/2026/11/24/00"
        s3.put_object(Bucket="monitoring-bucket", Key=f"{folder}/statistics.json", Body=json.dumps(statistics).encode())
        hour = Hour(24, "2026-11-24T00:00:00Z", "2026-11-24T01:00:00Z")
        Observer(cloud=None, config=config, truth=truth)._objects(hour)
    [quality] = hour.quality
    assert (quality.true, quality.true_rows) == (0.5, 4)
    assert (quality.basis, quality.interval, quality.labelled, quality.reviewed) == ("weighted", [0.6, 0.9], 3, 0.6)
    assert (quality.estimated, quality.estimated_interval, quality.figures) == (0.85, [0.7, 0.95], {"accuracy": 0.75, "f1": 0.7, "auc": 0.8})
    shown = report.quality_text(quality)
    assert shown == (
        "period 2026-11-23T00:00:00Z to 2026-11-24T00:00:00Z: accuracy 0.750 [0.600, 0.900] weighted, 3 labels; auc 0.800, f1 0.700; "
        "reviewed rows 0.600; estimated 0.850 [0.700, 0.950]; true 0.500 of 4 predictions"
    )
    assert shown in report.progress_line(hour, 24)
    # Model Monitor's document (the SageMaker back end) has the headline figures only: no period, so no truth.
    headline, period = quality_record(json.dumps({"binary_classification_metrics": statistics["binary_classification_metrics"]}).encode())
    assert period is None and report.quality_text(headline) == "accuracy 0.750; auc 0.800, f1 0.700"


# -- the output folder --------------------------------------------------------------------------------


def outcome() -> Outcome:
    hours = [
        Hour(0, "2026-11-23T00:00:00Z", "2026-11-23T01:00:00Z", requests=10, captured=10, selected=2, tasks_created=1),
        Hour(1, "2026-11-23T01:00:00Z", "2026-11-23T02:00:00Z", requests=10, captured=10, reviewed=1, labels=2,
             drift={"mean_radius": ["baseline_drift_check"]}, monitor_runs=["data-quality CompletedWithViolations"],
             decisions=[Decision("2026-11-23T02:00:00Z", "retraining trigger violations: unconfirmed", "one period <script>")],
             reports=["monitoring/data-quality/reports/x/report.html"]),
    ]  # fmt: skip
    return Outcome(
        environment="dev", hours=hours, start="2026-11-23T00:00:00Z", requests=20, traffic="t", reviewers="simulated",
        retraining_runs=[{"execution": "r1", "status": "SUCCEEDED", "promoted": True, "why": "not worse"}],
        served_model={"parameter": "/mlloop/dev/serving/model-data-url", "before": "s3://a", "after": "s3://b", "updated": True, "why": "not worse"},
        unrehearsed=["AWS::CloudFront::Distribution: served by make review-local instead"], notes=["n"],
        drift_periods={"p/01": ["mean_radius"], "p/02": ["mean_radius", "mean_texture"]},
    )  # fmt: skip


def test_summary_has_the_figures_the_issue_asks_for(tmp_path: Path) -> None:
    summary = report.write(outcome(), tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert {k: summary[k] for k in ("captured", "review_tasks_completed", "labels_written", "drifted_features", "retraining_runs", "promoted")} == {
        "captured": 20, "review_tasks_completed": 1, "labels_written": 2, "drifted_features": {"mean_radius": 2, "mean_texture": 1}, "retraining_runs": 1, "promoted": 1,
    }  # fmt: skip
    assert summary["unrehearsed"] and summary["notes"] == ["n"] and len(summary["timeline"]) == 2
    page = (tmp_path / "index.html").read_text()
    assert 'href="s3/monitoring/data-quality/reports/x/report.html"' in page and "one period &lt;script&gt;" in page and "<script>" not in page


def test_objects_are_copied_under_s3_and_a_key_cannot_leave_the_folder(tmp_path: Path) -> None:
    assert report.copy_objects([("b", "a/b.json", b"1"), ("b", "a", b"2")], tmp_path) == 2
    assert (tmp_path / "s3/b/a/b.json").read_bytes() == b"1" and (tmp_path / "s3/b/a/_object").read_bytes() == b"2"
    with pytest.raises(ValueError, match="leaves the output folder"):
        report.copy_objects([("b", "../../etc/x", b"")], tmp_path)


def test_a_second_rehearsal_into_the_same_folder_leaves_only_its_own_objects(tmp_path: Path) -> None:
    report.copy_objects([("b", "batch/runs/first/report.json", b"1")], tmp_path)
    (tmp_path / "index.html").write_text("kept")  # the folder's other files are the run's to overwrite
    assert report.copy_objects([("b", "batch/runs/second/report.json", b"2")], tmp_path) == 1
    assert [p.relative_to(tmp_path / "s3").as_posix() for p in (tmp_path / "s3").rglob("*.json")] == ["b/batch/runs/second/report.json"]
    assert (tmp_path / "index.html").read_text() == "kept"


def test_progress_line_names_the_hour_and_what_happened() -> None:
    line = report.progress_line(outcome().hours[1], 24)
    assert line.startswith("[  2/24] 2026-11-23 01:00 UTC") and "labels   2" in line and "drift mean_radius" in line


# -- the command line ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "nope"], "env: 'nope' is not an environment in cdk.json; allowed values: churn, dev, income, jsonl, prod"),
        (["--hours", "0"], "HOURS must be at least 1, got 0"),
        (["--reviewers", "robots"], "REVIEWERS must be one of simulated, browser, got 'robots'"),
        (["--traffic", "/nonexistent.csv"], "TRAFFIC: no such file /nonexistent.csv"),
        (["--start", "2026-11-23T00:00:00"], "has no time zone"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_key(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# -- a short rehearsal of the whole loop ----------------------------------------------------------------

HOURS = 6
# From 20:00 the six hours cross midnight: the daily model-quality run (00:20) judges the first day's four hours.
REHEARSAL_START = "2026-11-23T20:00:00+00:00"
SHIFTED = ("mean_texture", "smoothness_error", "worst_area")  # local/rehearse/traffic.py's documented shift


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """``make rehearse HOURS=6`` as the Makefile runs it (dev, the default traffic, simulated
    reviewers), from 20:00, in a process of its own: (output folder, summary.json, what it printed)."""
    out = tmp_path_factory.mktemp("rehearsal") / "out"
    root = Path(__file__).resolve().parents[3]
    environment = {**os.environ, "PATH": f"{root / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}", "AWS_EC2_METADATA_DISABLED": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "local.rehearse", "--env", "dev", "--hours", str(HOURS), "--start", REHEARSAL_START, "--out", str(out)],
        cwd=root, env=environment, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return out, json.loads((out / "summary.json").read_text()), done.stdout


def test_a_short_rehearsal_closes_the_loop(rehearsal: tuple[Path, dict, str]) -> None:
    out, summary, printed = rehearsal
    # Served, captured (dev captures 100 %), reviewed and labelled.
    assert summary["requests"] == summary["captured"] > 0
    assert summary["review_tasks_completed"] > 0 and summary["labels_written"] > 0
    # Drift flagged on the shifted features, and on them only (the shift starts at hour 3: the
    # hourly runs of hours 3 and 4 judge it).
    assert set(summary["drifted_features"]) == set(SHIFTED) and all(periods >= 2 for periods in summary["drifted_features"].values())
    # A retraining run judged by the promotion gate, and the served model parameter updated or kept
    # with the gate's reason.
    judged = [run for run in summary["retraining"] if run["status"] == "SUCCEEDED" and "promote" in run["evaluation"]]
    assert judged, summary["retraining"]
    served = summary["served_model"]
    assert served["updated"] == (served["before"] != served["after"]) and served["after"]
    assert served["updated"] == any(run["promoted"] for run in judged)
    last = judged[-1]
    assert served["why"] == last["why"] and last["evaluation"]["reason"] in last["why"]
    # The output folder: a progress line per simulated hour, the page, every object the loop wrote.
    assert [line for line in printed.splitlines() if line.startswith("[")][-1].startswith(f"[  {HOURS}/{HOURS}]")
    page = (out / "index.html").read_text()
    assert all(feature in page for feature in SHIFTED) and "Retraining" in page
    reports = [path for hour in summary["timeline"] for path in hour["reports"]]
    assert any("data-quality/reports/" in path for path in reports) and all((out / "s3" / path).is_file() for path in reports)
    assert any((out / "s3").glob("*/ground-truth/**/*.jsonl")) and any((out / "s3").glob("*/capture/**/*.jsonl"))
    # What the rehearsal could not take from the templates is named.
    assert any(item.startswith("CloudWatch alarms are not evaluated") for item in summary["unrehearsed"])
    # Model quality's run at 00:20 judged the first day (its four hours of traffic), and beside its
    # figures stands the true accuracy of every prediction of that day (each request's label is known).
    [midnight] = [hour for hour in summary["timeline"] if hour["start"] == "2026-11-24T00:00:00Z"]
    [quality] = midnight["quality"]
    assert quality["period"] == "2026-11-23T00:00:00Z to 2026-11-24T00:00:00Z" and quality["basis"] == "weighted"
    assert quality["true_rows"] == sum(hour["requests"] for hour in summary["timeline"] if hour["start"] < "2026-11-24")
    assert 0.5 < quality["true"] <= 1 and quality["labelled"] > 0 and quality["reviewed"] is not None
    assert quality["figures"]["accuracy"] and quality["interval"] and quality["estimated"] and quality["estimated_interval"]
    shown = report.quality_text(report.Quality(**quality))
    assert f"true {quality['true']:.3f} of {quality['true_rows']} predictions" in shown and shown in page and shown in printed
    print(f"model quality of the first day: {shown}")


# -- a rehearsed night of the nightly batch (ENV=income: batch only, seed 002) -------------------------


def test_a_batch_only_rehearsal_runs_one_night_over_the_days_input_files(tmp_path: Path) -> None:
    """``make rehearse ENV=income``: each hour's requests dropped as an input file, the nightly
    schedule's run 20 hours in predicts them through the synthesised batch state machine (plan,
    per-run model, transform stand-in with batch capture, finish through the capture filter's code)."""
    out = tmp_path / "out"
    root = Path(__file__).resolve().parents[3]
    environment = {**os.environ, "PATH": f"{root / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}", "AWS_EC2_METADATA_DISABLED": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "local.rehearse", "--env", "income", "--hours", "24", "--out", str(out)],
        cwd=root, env=environment, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["start"] == "2026-11-23T06:00:00Z"  # 20 hours before the 02:00 UTC run
    [night] = [d for hour in summary["timeline"] for d in hour["decisions"] if d["what"].startswith("nightly batch run")]
    assert night["what"].endswith(": Completed"), night
    [report_path] = list((out / "s3").glob("*/batch/runs/*/report.json"))
    report = json.loads(report_path.read_text())
    # The files dropped from 06:00 to 01:00 (20 hours of 120 requests), each predicted once.
    assert (report["files"], report["rows"], report["rejected"]) == (20, 2400, 0) and summary["captured"] == 2400
    # Negative outcomes (and the audit) selected, three rows a review group, as the capture filter groups them.
    assert 0 < report["selected"] < report["rows"] and report["tasks"] == sum(-(-o["selected"] // 3) for o in report["outputs"])
    assert f"{report['rows']} rows predicted" in night["why"] and f"{report['tasks']} review groups" in night["why"]
    # What is not rehearsed is named: A2I (income's review back end) and the placeholder model's stand-in.
    assert any("A2I" in item for item in summary["unrehearsed"]) and any("review.backend is a2i" in note for note in summary["notes"])
    assert any("batch only" in note for note in summary["notes"])
