"""The model-quality monitor (stacks/monitoring/open.py's OpenModelQualityMonitor): the app's own with
either monitoring back end. Its evaluator's environment is the contract the handler reads; it may
list and read only this endpoint's capture files, the ground-truth labels and its own folder; its
schedule, baseline, alarms, watchdog, run events and dashboard row."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import subprocess
import sys

import pytest
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from lambdas.monitoring.open import common, model_quality
from lambdas.monitoring.runs import runs
from lambdas.review.results.results import GROUND_TRUTH_PREFIX
from lambdas.shared.consumer import Environment
from stacks.monitoring.open import ESTIMATED_METRIC, LABELLED_ROWS_METRIC, VIOLATION_METRIC
from stacks.shared import aws_facts, default_model
from stacks.shared.functions import METRICS_NAMESPACE
from stacks.shared.compliance import flatten_reference, wildcard_findings
from tests.conftest import CDK_CONTEXT, ROOT, build_app
from tests.stacks.monitoring.test_open import _evaluate, _function, _grants, _resources, _schedule, _statements
from tests.stacks.test_cfn_lint import lint, templates

HANDLER = "lambdas.monitoring.open.model_quality.handler"
SCHEDULE = "mlloop-dev-model-quality"
FIGURES = aws_facts.MODEL_QUALITY_BINARY_METRICS
DIMENSIONS = {"Endpoint": "mlloop-dev", "MonitoringSchedule": SCHEDULE, "service": "mlloop-dev-monitoring-runs"}  # Powertools adds service


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("monitoring")


def _tail(resource: str) -> str:
    """An object ARN's key part (after the bucket's reference)."""
    return resource.split("}}")[-1]


def _bucket(reference: str) -> str:
    """Which storage bucket a flattened name or ARN references (the storage stack output's construct ID)."""
    return re.search(r"PublishOutput(?:Ref|FnGetAtt)([A-Z][a-z]+)", reference).group(1)


def _deployed(variables: dict) -> Environment:
    """The environment as Lambda sees it: the review band's thresholds are the review stack's
    parameters (at their defaults here), buckets are names."""
    parameters = {"ReviewLowerThreshold": "0.1", "ReviewUpperThreshold": "0.9"}

    def value(v):
        if isinstance(v, str):
            return v
        output = v["Fn::GetStackOutput"]["OutputName"]
        return next((p for name, p in parameters.items() if f"Ref{name}" in output), "bucket-name")

    return Environment({k: value(v) for k, v in variables.items()})


def test_the_evaluator_environment_is_the_handlers_contract(dev_app, template: Template) -> None:
    _, function = _function(template, HANDLER)
    variables = function["Environment"]["Variables"]
    # The stack's name for the monitor (its folder, its events' "monitor") is the evaluator's.
    assert dev_app.monitoring.model_quality.kind == model_quality.MONITOR
    # Read by the handler's own settings reader (lambdas/monitoring/open/model_quality.py).
    read = model_quality.read_settings(_deployed(variables))
    settings = read.evaluator
    assert (settings.endpoint, settings.schedule, settings.event_source, settings.event_bus) == ("mlloop-dev", SCHEDULE, "mlloop.monitoring", "default")
    assert settings.cadences == aws_facts.MONITORING_CADENCES
    assert (read.capture_prefix, read.ground_truth_prefix, read.label_window_hours, read.threshold) == ("capture/mlloop-dev/", f"{GROUND_TRUTH_PREFIX}/", 48, 0.5)
    assert (read.score_path, read.features_path, read.tolerance, read.estimate) == (None, "features", 0.05, True)
    # The review rule as capture_filter applies it, the band from the review stack's parameters.
    assert read.review is not None and (read.review.rule.rule, read.review.audit.percentage) == ("band", 2.0)
    outputs = dev_app.template_json("review")["Outputs"]
    for bound in ("Lower", "Upper"):
        reference = variables[f"{bound.upper()}_THRESHOLD"]["Fn::GetStackOutput"]
        assert reference["StackName"] == "mlloop-dev-review" and outputs[reference["OutputName"]]["Value"] == {"Ref": f"Review{bound}Threshold"}
    assert {k: v for k, v in variables.items() if isinstance(v, str)}.items() >= {
        "CAPTURE_PREFIX": "capture/mlloop-dev/",
        "GROUND_TRUTH_PREFIX": f"{GROUND_TRUTH_PREFIX}/",
        "LABEL_WINDOW_HOURS": "48",
        "DECISION_THRESHOLD": "0.5",
        "SCORE_PATH": "",
        "FEATURES_PATH": "features",
        "TOLERANCE": "0.05",
        "ESTIMATE": "true",
        "POWERTOOLS_SERVICE_NAME": "mlloop-dev-monitoring-runs",
    }.items()
    for variable, bucket in (("CAPTURE_BUCKET", "Capture"), ("LABELS_BUCKET", "Labels"), ("MONITORING_BUCKET", "Monitoring")):
        assert _bucket(json.dumps(variables[variable])) == bucket, variable
    # The capture prefix is where the serving stack tells SageMaker to write this endpoint's capture
    # (<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/), as the capture pipeline's rule reads it.
    [config] = dev_app.template("serving").find_resources("AWS::SageMaker::EndpointConfig").values()
    destination = flatten_reference(config["Properties"]["DataCaptureConfig"]["DestinationS3Uri"])
    assert destination.endswith("/capture") and variables["CAPTURE_PREFIX"] == f"{destination.rsplit('/', 1)[1]}/mlloop-dev/"
    # numpy from the explain layer; the function's limits as the data-quality evaluator's.
    assert len(function["Layers"]) == 2 and (function["Timeout"], function["MemorySize"]) == (900, 2048)


def test_configured_values_reach_the_environment_and_without_review_no_rule(tmp_path) -> None:
    environment = copy.deepcopy(CDK_CONTEXT["environments"]["dev"])
    environment["monitoring"] = {"model_quality": {"label_window_hours": 72, "tolerance": 0.02, "estimate": False}}
    environment["review"] = {"enabled": False}
    built = build_app(tmp_path, environment=environment)
    _, function = _function(built.template("monitoring"), HANDLER)
    read = model_quality.read_settings(_deployed(function["Environment"]["Variables"]))
    assert (read.label_window_hours, read.tolerance, read.estimate, read.review) == (72, 0.02, False, None)
    assert not {"REVIEW_SELECTION", "LOWER_THRESHOLD", "AUDIT_PERCENTAGE"} & set(function["Environment"]["Variables"])


def test_the_evaluator_reads_captures_labels_and_its_folder_and_writes_only_its_reports(template: Template) -> None:
    _, function = _function(template, HANDLER)
    statements = _statements(template, function["Role"])
    grants = _grants(statements)
    reads = {(_bucket(r), _tail(r)) for r in grants["s3:GetObject"]}
    assert reads == {
        ("Capture", "/capture/mlloop-dev/*"),
        ("Labels", f"/{GROUND_TRUTH_PREFIX}/*"),
        ("Monitoring", "/model-quality/reports/*"),  # earlier periods' figures, for the report's recent periods
        ("Monitoring", "/model-quality/current/*"),
    }
    assert {(_bucket(r), _tail(r)) for r in grants["s3:PutObject"]} == {("Monitoring", "/model-quality/reports/*")}
    prefixes: dict[str, set[str]] = {}
    for r in grants["s3:ListBucket"]:
        resource, condition = r.split(" if ")
        prefixes.setdefault(_bucket(resource), set()).update(json.loads(condition)["StringLike"]["s3:prefix"])
    assert prefixes == {"Capture": {"capture/mlloop-dev/*"}, "Labels": {f"{GROUND_TRUTH_PREFIX}/*"}, "Monitoring": {"model-quality/reports/*", "model-quality/current/*"}}
    assert grants["events:PutEvents"] == {"arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:event-bus/default"}
    assert not any(a.startswith(("s3:Delete", "sagemaker:", "cloudwatch:")) for a in grants)
    assert all("DataKey" in r for action, resources in grants.items() if action.startswith("kms:") for r in resources)  # the app's key only
    # The wildcards are exactly these prefixes (and the dead-letter queue's key actions).
    findings = wildcard_findings(statements)
    assert sorted(f if f.startswith("Action::") else f"{_bucket(f)}:{_tail(f)}" for f in findings) == [
        "Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*",
        "Capture:/capture/mlloop-dev/*", f"Labels:/{GROUND_TRUTH_PREFIX}/*", "Monitoring:/model-quality/current/*", "Monitoring:/model-quality/reports/*",
    ]  # fmt: skip


def test_the_schedule_runs_daily_by_default_at_minute_20_of_the_cadence_parameter(template: Template) -> None:
    parameter = template.to_json()["Parameters"]["ModelQualitySchedule"]
    assert parameter["Default"] == "cron(0 0 ? * * *)" and parameter["AllowedValues"] == list(aws_facts.MONITORING_CADENCES)
    schedule = _schedule(template, SCHEDULE)
    function_id, _ = _function(template, HANDLER)
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]} and schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    for cadence, seconds in aws_facts.MONITORING_CADENCES.items():
        expression = _evaluate(schedule["ScheduleExpression"], {"ModelQualitySchedule": cadence})
        assert expression == runs.evaluation_expression(cadence)
        sent = json.loads(_evaluate(schedule["Target"]["Input"], {"ModelQualitySchedule": cadence}).replace(aws_facts.SCHEDULER_SCHEDULED_TIME, "2026-11-22T00:20:00Z"))
        period = common.period(sent, aws_facts.MONITORING_CADENCES)
        assert period.end == dt.datetime(2026, 11, 22, tzinfo=dt.UTC) and (period.end - period.start).total_seconds() == seconds


def test_the_baseline_is_computed_at_deploy_from_the_bundled_test_set_scores(dev_app, template: Template) -> None:
    [resource] = _resources(template, "Custom::OpenModelQualityBaseline").values()
    properties = resource["Properties"]
    assert (properties["Monitor"], properties["DecisionThreshold"], properties["Tolerance"]) == ("model-quality", "0.5", "0.05")
    # Beside the bundled model's test.csv in the datasets bucket (stacks/serving/bundled_model.py).
    folder = dev_app.serving.bundled_model.test_key.rsplit("/", 1)[0]
    dataset = flatten_reference(properties["DatasetS3Uri"])
    assert _bucket(dataset) == "Datasets" and dataset.endswith(f"/{folder}/{default_model.TEST_SCORES_CSV.name}")
    assert default_model.TEST_SCORES_CSV in default_model.DATASETS  # deployed with the bundled datasets
    _, handler = _function(template, "lambdas.monitoring.open.baseline.handler")
    grants = _grants(_statements(template, handler["Role"]))
    assert any(_tail(r) == f"/{folder}/{default_model.TEST_SCORES_CSV.name}" for r in grants["s3:GetObject"])
    assert {"/model-quality/baselines/*", "/model-quality/current/*"} <= {_tail(r) for r in grants["s3:PutObject"]}
    # No evaluation before current/ holds the constraints.
    function_id, _ = _function(template, HANDLER)
    [custom] = _resources(template, "Custom::OpenModelQualityBaseline")
    assert custom in template.to_json()["Resources"][function_id]["DependsOn"]


def test_the_metric_names_are_the_evaluators() -> None:
    """The stack keeps its own copies (the evaluator's modules import numpy, which synthesis lacks)."""
    from lambdas.monitoring.quality import documents, metrics

    assert (ESTIMATED_METRIC, VIOLATION_METRIC, LABELLED_ROWS_METRIC) == (documents.ESTIMATED_METRIC, documents.VIOLATION_METRIC, documents.LABELLED_ROWS_METRIC)
    # One violation alarm per constrained figure, each a metric Model Monitor names.
    assert set(FIGURES) == set(documents.CONSTRAINED) and set(FIGURES) <= set(metrics.DOCUMENTED)


def test_one_alarm_per_figure_on_its_violation_and_the_runs_failures_and_overdue(template: Template) -> None:
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values() if a["Properties"].get("AlarmName", "").startswith("mlloop-dev-model-quality-")}
    assert set(alarms) == {f"mlloop-dev-model-quality-{m}" for m in FIGURES}
    for figure in FIGURES:
        alarm = alarms[f"mlloop-dev-model-quality-{figure}"]
        assert (alarm["Namespace"], alarm["MetricName"]) == (METRICS_NAMESPACE, VIOLATION_METRIC.format(metric=figure))
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == DIMENSIONS
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"], alarm["Period"]) == ("Maximum", 1, "GreaterThanOrEqualToThreshold", 86_400)
        assert alarm["TreatMissingData"] == "notBreaching" and len(alarm["AlarmActions"]) == 1
    overdue = [a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values() if a["Properties"].get("MetricName") == runs.OVERDUE_METRIC]
    assert sum({"Name": "Schedule", "Value": SCHEDULE} in a["Dimensions"] for a in overdue) == 1


def test_a_run_with_violations_reaches_the_alert_rule_and_the_retraining_pattern(dev_app, template: Template) -> None:
    run = runs.ended(
        monitor="model-quality", schedule_name=SCHEDULE, endpoint_name="mlloop-dev", job_name=f"{SCHEDULE}-2026112200", outcome="CompletedWithViolations",
        exit_message=None, failure_reason=None, report_uri="s3://m/model-quality/reports/x", report_html_uri="s3://m/model-quality/reports/x/report.html",
        violations=[{"metric_name": "accuracy", "constraint_check_type": "LessThanThreshold", "description": "accuracy below its test-set value"}],
        ended_at="2026-11-22T00:25:00Z",
    )  # fmt: skip
    event = {"version": "0", "id": "1", "source": "mlloop.monitoring", "detail-type": runs.RUN_ENDED, "account": "123456789012",
             "time": "2026-11-22T00:25:00Z", "region": "eu-west-1", "resources": [], "detail": json.loads(json.dumps(run.detail, default=str))}  # fmt: skip
    [alert] = [r["Properties"] for r in _resources(template, "AWS::Events::Rule").values() if r["Properties"].get("EventPattern", {}).get("source") == ["mlloop.monitoring"]]
    assert EventPattern.load(json.dumps(alert["EventPattern"])).matches_event(event)
    # Retraining's trigger (retraining.quality_violations) matches it by the schedule's name.
    pattern = dev_app.retraining.patterns["QualityViolations"]
    assert EventPattern.load(json.dumps(pattern)).matches_event(event)
    other_monitor = {**event["detail"], "monitor": "data-quality", "scheduleName": "mlloop-dev-data-quality"}
    for other in (other_monitor, {**event["detail"], "outcome": "Completed"}):
        assert not EventPattern.load(json.dumps(pattern)).matches_event({**event, "detail": other})


def _widgets(built) -> list[dict]:
    [dashboard] = built.template("operations").find_resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "<ref>" for p in parts))["widgets"]


def test_the_dashboard_row_shows_each_figure_beside_its_estimate_and_the_labelled_rows(dev_app) -> None:
    widgets = [w for w in _widgets(dev_app) if w["properties"].get("title", "").startswith("Model quality")]
    assert sum(w["width"] for w in widgets) == 24 and len({w["y"] for w in widgets}) == 1  # one row
    graphs = {w["properties"]["title"]: w["properties"]["metrics"] for w in widgets}
    for figure in FIGURES:
        metrics = graphs[f"Model quality: {figure}, from labels and estimated from scores"]
        assert [(m[0], m[1], m[-1]["label"]) for m in metrics] == [
            (METRICS_NAMESPACE, figure, f"{figure} (labels)"),
            (METRICS_NAMESPACE, ESTIMATED_METRIC.format(metric=figure), f"{figure} (estimated)"),
        ]
        assert all(dict(zip(m[2:-1:2], m[3:-1:2], strict=True)) == DIMENSIONS for m in metrics)
    [rows] = graphs["Model quality: labelled rows per evaluation"]
    assert (rows[0], rows[1]) == (METRICS_NAMESPACE, LABELLED_ROWS_METRIC)
    # The violation alarms are in the monitoring alarms' status widget (cross-stack ARNs: counted): three
    # overdue and three failed-run alarms (one per schedule), 30 drift alarms, then the model-quality ones.
    [status] = [w for w in _widgets(dev_app) if w["type"] == "alarm" and w["properties"]["title"].startswith("Monitoring alarms")]
    assert len(status["properties"]["alarms"]) == 3 + 3 + 30 + len(FIGURES)


# --- with the SageMaker back end ---------------------------------------------------------------


def test_with_the_sagemaker_back_end_model_quality_is_still_the_apps_own(sagemaker_app) -> None:
    assert sagemaker_app.nag_failure is None
    monitoring = sagemaker_app.monitoring
    template = sagemaker_app.template("monitoring")
    types = {r["Type"] for r in template.to_json()["Resources"].values()}
    assert "AWS::SageMaker::ModelQualityJobDefinition" not in types
    assert {"Custom::OpenModelQualityBaseline", "AWS::Scheduler::Schedule"} <= types
    assert type(monitoring.model_quality).__name__ == "OpenModelQualityMonitor" and monitoring.monitors[-1] is monitoring.model_quality
    _function(template, HANDLER)
    assert [s["Name"] for s in _resources(template, "AWS::Scheduler::Schedule").values() for s in [s["Properties"]]] == [SCHEDULE]
    # Model Monitor's runs go through monitoring_runs; the model-quality evaluator publishes its own event.
    _, consumer = _function(template, "lambdas.monitoring.runs.handler.handler")
    assert set(json.loads(consumer["Environment"]["Variables"]["SCHEDULES"])) == {"mlloop-dev-data-quality", "mlloop-dev-explainability"}
    # Two watchdogs: SageMaker's schedules by DescribeMonitoringSchedule, model quality's by Scheduler and its run marker.
    watchdogs = {
        f["Properties"]["Environment"]["Variables"]["BACKEND"]: f["Properties"]
        for f in _resources(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "lambdas.monitoring.runs.handler.watchdog"
    }
    assert set(json.loads(watchdogs["sagemaker"]["Environment"]["Variables"]["SCHEDULES"])) == {"mlloop-dev-data-quality", "mlloop-dev-explainability"}
    assert json.loads(watchdogs["open"]["Environment"]["Variables"]["SCHEDULES"]) == {SCHEDULE: {"monitor": "model-quality", "endpoint": "mlloop-dev"}}
    grants = _grants(_statements(template, watchdogs["open"]["Role"]))
    assert grants["scheduler:GetSchedule"] == {f"arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/default/{SCHEDULE}"}
    assert {_tail(r) for r in grants["s3:GetObject"]} == {f"/{runs.latest_marker_key('model-quality', 'mlloop-dev', SCHEDULE)}"}
    assert not any(a.startswith("sagemaker:") for a in grants)
    # The evaluation's failures alarm sits beside the run-event queue's in the dashboard's alarms.
    assert monitoring.model_quality.evaluation.alarm in monitoring.events.alarms


@pytest.mark.parametrize("stack", ["Monitoring", "Operations"])
def test_with_the_sagemaker_back_end_the_stacks_lint_clean(sagemaker_app, stack: str) -> None:
    [template] = [t for t in templates(sagemaker_app) if t.name == f"{stack}.template.json"]
    assert lint(template) == []


# --- model quality alone, and a model without test-set scores ------------------------------------


@pytest.fixture(scope="module")
def income_app(tmp_path_factory):
    """cdk.json's income environment served by an endpoint (as it was before the nightly batch):
    data quality and explainability off, model quality on with its placeholder test-set scores."""
    environment = json.loads(json.dumps(CDK_CONTEXT["environments"]["income"]))
    environment["serving"], environment["batch"] = {"endpoint": True}, {"enabled": False}
    environment["monitoring"]["model_quality"] = {"dataset_s3_uri": "s3://amzn-s3-demo-bucket/REPLACE-ME/income/test-scores-with-header.csv"}
    built = build_app(tmp_path_factory.mktemp("income"), env="income", environment=environment)
    built.app.synth()  # the cdk-nag packs pass
    return built


def test_model_quality_alone_deploys_the_monitoring_stack_with_the_configured_scores(income_app) -> None:
    monitoring = income_app.monitoring
    assert monitoring is not None and (monitoring.data_quality, monitoring.explainability) == (None, None)
    assert [m.kind for m in monitoring.monitors] == ["model-quality"]
    template = income_app.template("monitoring")
    [resource] = _resources(template, "Custom::OpenModelQualityBaseline").values()
    uri = "s3://amzn-s3-demo-bucket/REPLACE-ME/income/test-scores-with-header.csv"
    assert resource["Properties"]["DatasetS3Uri"] == uri
    _, handler = _function(template, "lambdas.monitoring.open.baseline.handler")
    grants = _grants(_statements(template, handler["Role"]))
    assert "arn:<AWS::Partition>:s3:::amzn-s3-demo-bucket/REPLACE-ME/income/test-scores-with-header.csv*" in grants["s3:GetObject"]
    # Its review rule (outcome 0) and the A2I back end's band parameters reach the evaluator.
    _, function = _function(template, HANDLER)
    read = model_quality.read_settings(_deployed(function["Environment"]["Variables"]))
    assert (read.review.rule.rule, read.review.rule.outcome) == ("outcome", 0)
    for name in ("Monitoring", "Operations"):
        [path] = [t for t in templates(income_app) if t.name == f"{name}.template.json"]
        assert lint(path) == [], name


def test_without_test_set_scores_the_baseline_says_so_and_the_alarms_stay_quiet(tmp_path) -> None:
    environment = copy.deepcopy(CDK_CONTEXT["environments"]["income"])
    environment["serving"], environment["batch"] = {"endpoint": True}, {"enabled": False}  # model quality reads the endpoint's capture
    del environment["monitoring"]["model_quality"]
    built = build_app(tmp_path, env="income", environment=environment)
    built.app.synth()
    template = built.template("monitoring")
    # current/ still gets a baseline (no constraints, no estimate), so runs do not fail for want of one.
    [resource] = _resources(template, "Custom::OpenModelQualityBaseline").values()
    assert "DatasetS3Uri" not in resource["Properties"] and resource["Properties"]["Monitor"] == "model-quality"
    _, handler = _function(template, "lambdas.monitoring.open.baseline.handler")
    grants = _grants(_statements(template, handler["Role"]))
    assert {_tail(r) for r in grants["s3:GetObject"]} == {"/model-quality/baselines/*"}  # no dataset to read
    assert len(built.monitoring.model_quality.violation_alarms) == len(FIGURES)


def test_the_baseline_handler_publishes_what_the_evaluator_loads_from_the_synthesised_properties(template: Template, monkeypatch) -> None:
    """On moto: the properties the stack sends, the bundled test-set scores where the stack says they
    are, give current/ files the evaluator's loader accepts, with a constraint per alarmed figure."""
    import boto3
    from moto import mock_aws

    from lambdas.monitoring.open import baseline as handler

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    [resource] = _resources(template, "Custom::OpenModelQualityBaseline").values()
    names = {"Datasets": "app-datasets", "Monitoring": "app-monitoring"}
    dataset_key = _tail(flatten_reference(resource["Properties"]["DatasetS3Uri"])).lstrip("/")
    # As CloudFormation passes them: the storage stack's bucket names resolved.
    properties = {k: v for k, v in resource["Properties"].items() if isinstance(v, str)}
    properties.update(MonitoringBucket=names["Monitoring"], DatasetS3Uri=f"s3://{names['Datasets']}/{dataset_key}")
    assert set(properties) == set(resource["Properties"]) - {"ServiceToken"}
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        for bucket in names.values():
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_object(Bucket=names["Datasets"], Key=dataset_key, Body=default_model.TEST_SCORES_CSV.read_bytes())
        assert handler.on_event({"RequestType": "Create", "ResourceProperties": properties}, s3=s3)["Data"]["NewBaseline"] == "true"
        baseline = model_quality.load_baseline(s3, names["Monitoring"])
    assert set(baseline.constraints) == set(FIGURES) and baseline.calibration is not None
    assert all(c["comparison_operator"] == "LessThanThreshold" for c in baseline.constraints.values())


def test_the_stacks_build_with_the_synthesis_requirements_alone(tmp_path) -> None:
    """make synth installs requirements.txt only: the stacks may read the evaluator's constants only
    from modules that import neither Powertools nor numpy (this monitor's evaluator imports both)."""
    script = f"""
import importlib.abc, json, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("aws_lambda_powertools", "numpy", "scipy", "xgboost", "sklearn"):
            raise ImportError("not a synthesis requirement: " + name)
sys.meta_path.insert(0, Absent())
from aws_cdk import App
import app
context = {{**json.load(open("cdk.json"))["context"], "env": "dev"}}
app.build(App(context=context, outdir={str(tmp_path)!r}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
