"""The state machine's Lambda steps: the promotion gate (both transforms' outputs on moto S3,
DescribeTrainingJob on Stubber), the serving model, deploy and endpoint (Stubber: botocore's model
checks every parameter, DeploymentConfig included), the baseline dataset, baselines and promote
(moto S3 and SSM)."""

from __future__ import annotations

import csv
import io
import json

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters
from sklearn.metrics import log_loss, roc_auc_score

from lambdas.retraining import steps
from lambdas.shared.baseline import PROMOTED_MARKER, is_promoted
from stacks.shared import config as app_config
from stacks.retraining.workflow import deployment_config
from tests.lambdas.aws_env import REGION

CONFIG = app_config.parse_environment("dev", {"retraining": {"deployment": "canary", "canary_percentage": 25, "bake_minutes": 10}})
DEPLOYMENT = deployment_config(CONFIG, ["mlloop-dev-deployment-errors"])
BASE = "mlloop-dev-20261122-100000-abc123"
NAMES = {
    "execution": "20261122-100000-abc123", "trainingJob": BASE, "model": BASE, "transformJob": BASE, "endpointConfig": BASE,
    "candidateTransformJob": f"{BASE}-candidate", "servingTransformJob": f"{BASE}-serving",
}  # fmt: skip
PARAMETER = "/mlloop/dev/serving/model-data-url"


def settings(metric: str = "validation:logloss", goal: str = "minimize", tolerance: float = 0.01) -> steps.StepSettings:
    return steps.StepSettings(
        prefix="mlloop-dev", endpoint_name="mlloop-dev", datasets_bucket="datasets", models_bucket="models",
        training_data_s3_uri="s3://datasets/bundled/train.csv", labels_bucket="labels", feature_names=("a", "b", "c"), label_count=2,
        validation_percentage=20, holdout_percentage=20, test_data_s3_uri="s3://datasets/bundled/test.csv", variant_name="AllTraffic",
        objective_metric=metric, objective_goal=goal, tolerance=tolerance, deployment=DEPLOYMENT, served_model_parameter=PARAMETER,
    )  # fmt: skip


@pytest.fixture
def s3(mocked_aws):
    client = boto3.client("s3", region_name=REGION)
    for bucket in ("models", "app-monitoring", "datasets"):
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


ARTEFACT = "s3://models/retraining/x/output/model.tar.gz"
TRAINING = {"TrainingJobName": NAMES["trainingJob"], "ModelArtifacts": {"S3ModelArtifacts": ARTEFACT}}  # what the Train state keeps


def reporting(*metrics: tuple[str, float], none: bool = False):
    """A SageMaker client whose DescribeTrainingJob (checked against botocore's model) reports
    ``metrics``; ``none``: the job reported no metrics, so the response has no FinalMetricDataList."""
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    response = {
        "TrainingJobName": NAMES["trainingJob"], "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{NAMES['trainingJob']}",
        "ModelArtifacts": {"S3ModelArtifacts": ARTEFACT}, "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "CreationTime": "2026-11-22T10:00:00Z",
    }  # fmt: skip
    if not none:
        response["FinalMetricDataList"] = [{"MetricName": name, "Value": value} for name, value in metrics]
    stubber = Stubber(client)
    stubber.add_response("describe_training_job", response, {"TrainingJobName": NAMES["trainingJob"]})
    stubber.activate()
    return client


def metrics(value: float):
    return reporting(("train:logloss", 0.05), ("validation:logloss", value))


RUN = f"s3://datasets/retraining/{NAMES['execution']}/"
SERVING_MODEL = {"modelName": "Model-old", "endpointConfigName": "Config-old", "variantName": "AllTraffic", "artifactS3Uri": "s3://models/bundled/model.tar.gz"}


def evaluation_rows(seed: int = 4, n: int = 300) -> list[tuple[float, str, int]]:
    """(weight, source, label) of evaluation rows: the test set (weight 1) and audit rows (1/0.02)."""
    rng = np.random.default_rng(seed)
    return [(50.0, "reviewed-audit", int(y)) if i % 10 == 0 else (1.0, "test", int(y)) for i, y in enumerate(rng.integers(0, 2, n))]


def transformed(s3, model: str, rows: list[tuple[float, str, int]], scores, *, extra: str = "") -> None:
    """What the evaluation transform of ``model`` writes: each evaluation line, then the score."""
    lines = "".join(f"{i},{weight!r},{source},{label},{i},{i % 7},{i % 3},{score!r}\n" for i, ((weight, source, label), score) in enumerate(zip(rows, scores, strict=True)))
    s3.put_object(Bucket="datasets", Key=f"retraining/{NAMES['execution']}/evaluation-scores/{model}/evaluation.csv.out", Body=(lines + extra).encode())


def scores(rows, spread: float, seed: int) -> list[float]:
    """Probabilities that separate the labels by ``spread`` (larger: a better model)."""
    rng = np.random.default_rng(seed)
    return [float(np.clip(0.5 + (label - 0.5) * spread + rng.normal(0, 0.1), 0.01, 0.99)) for _, _, label in rows]


def evaluation_event(rows: int) -> dict:
    """Evaluate's input: the run's names, both transforms' output folders, the serving model."""
    scores = {f"{model}ScoresS3Uri": f"{RUN}evaluation-scores/{model}/" for model in ("candidate", "serving")}
    return {"names": NAMES, "serving": SERVING_MODEL, "training": TRAINING, "dataset": {**scores, "counts": {"evaluationRows": rows}}}


def gate(s3, rows, candidate, serving, **kwargs) -> dict:
    transformed(s3, "candidate", rows, candidate)
    transformed(s3, "serving", rows, serving)
    event = evaluation_event(len(rows))
    return steps.evaluate(event, settings(**kwargs), s3, metrics(0.2))


def test_a_worse_candidate_is_refused_with_both_figures_on_the_same_rows(s3) -> None:
    rows = evaluation_rows()
    candidate, serving = scores(rows, 0.3, 1), scores(rows, 0.8, 2)
    result = gate(s3, rows, candidate, serving)  # no lineage: the first retraining is judged like every other
    labels, weights = [r[2] for r in rows], [r[0] for r in rows]
    expected = [log_loss(labels, p, sample_weight=weights) for p in (candidate, serving)]
    assert result["candidate"]["value"] == pytest.approx(expected[0], abs=1e-9) and result["serving"]["value"] == pytest.approx(expected[1], abs=1e-9)
    low, high = result["difference"]["interval"]
    assert result["difference"]["value"] == pytest.approx(expected[0] - expected[1], abs=1e-9)
    assert 0.01 < low < result["difference"]["value"] < high
    assert result["promote"] is False and result["rows"] == 300 and result["rowsBySource"] == {"reviewed-audit": 30, "test": 270}
    assert result["serving"]["model"] == "Model-old" and result["candidate"]["model"] == NAMES["model"]
    reason = result["reason"]
    assert reason.startswith("log loss on the same 300 evaluation rows (30 reviewed-audit, 270 test; weighted): ")
    assert f"candidate {expected[0]:.4f} [" in reason and f"serving model {expected[1]:.4f} [" in reason
    assert f"difference (candidate - serving) {expected[0] - expected[1]:+.4f}, 95 % interval [{low:+.4f}, {high:+.4f}]" in reason
    assert reason.endswith(f"the candidate is worse by at most {high:+.4f} with 97.5 % confidence (one-sided), beyond the tolerance 0.01")
    assert result["trainingJobMetrics"] == {"train:logloss": 0.05, "validation:logloss": 0.2}  # recorded, not judged on
    written = json.loads(s3.get_object(Bucket="datasets", Key=f"retraining/{NAMES['execution']}/evaluation.json")["Body"].read())
    assert written == result


def test_a_better_candidate_is_promoted_and_auc_is_maximised(s3) -> None:
    rows = evaluation_rows()
    candidate, serving = scores(rows, 0.8, 1), scores(rows, 0.3, 2)
    result = gate(s3, rows, candidate, serving, metric="validation:auc", goal="maximize", tolerance=0.0)
    weights, labels = [r[0] for r in rows], [r[2] for r in rows]
    assert result["candidate"]["value"] == pytest.approx(roc_auc_score(labels, candidate, sample_weight=weights), abs=1e-9)
    assert result["difference"]["value"] > 0 and result["worseBy"]["interval"][1] < 0 and result["promote"] is True
    assert result["figure"] == "AUC" and "within the tolerance 0" in result["reason"]


def test_identical_models_differ_by_zero_and_are_promoted_at_zero_tolerance(s3) -> None:
    rows = evaluation_rows()
    same = scores(rows, 0.5, 3)
    result = gate(s3, rows, same, same, tolerance=0.0)
    assert result["difference"] == {"value": 0.0, "interval": [0.0, 0.0]} and result["promote"] is True


def test_unusable_transform_lines_are_parked_and_a_candidate_that_fails_rows_is_refused(s3) -> None:
    rows = evaluation_rows(n=100)
    candidate, serving = scores(rows, 0.8, 1), scores(rows, 0.3, 2)
    candidate[5], serving[7] = 1.5, float("nan")  # not probabilities
    transformed(s3, "candidate", rows, candidate, extra="oops\n")
    transformed(s3, "serving", rows, serving)
    event = evaluation_event(100)
    result = steps.evaluate(event, settings(), s3, metrics(0.2))
    assert result["rows"] == 98 and result["rowsNotCompared"] == 2 and result["rowsUnscoredByCandidate"] == 1
    assert result["promote"] is False and "the candidate gave no usable score for 1 rows the serving model scored" in result["reason"]
    parked = [json.loads(line) for line in s3.get_object(Bucket="datasets", Key=f"retraining/{NAMES['execution']}/evaluation-rejected.jsonl")["Body"].read().splitlines()]
    assert [(p["model"], p["line"], p["reason"]) for p in parked] == [
        ("candidate", 6, "score 1.5 is not a probability, which the figure needs"),
        ("candidate", 101, "1 fields, expected 8 (row, weight, source, label, 3 features, then one score)"),
        ("serving", 8, "'nan' is not a decimal number"),
    ]
    assert result["rejectedS3Uri"] == f"{RUN}evaluation-rejected.jsonl"


def test_transforms_of_different_rows_or_no_usable_rows_fail_the_step(s3) -> None:
    rows = evaluation_rows(n=20)
    flipped = [(w, s, 1 - y) for w, s, y in rows]
    transformed(s3, "serving", flipped, scores(rows, 0.5, 1))
    transformed(s3, "candidate", rows, scores(rows, 0.5, 1))
    event = evaluation_event(20)
    with pytest.raises(steps.StepError, match="differ on evaluation row 0's weight, source or label"):
        steps.evaluate(event, settings(), s3, reporting(none=True))
    s3.put_object(Bucket="datasets", Key=f"retraining/{NAMES['execution']}/evaluation-scores/serving/evaluation.csv.out", Body=b"x\n")
    with pytest.raises(steps.StepError, match=r"cannot judge the candidate \(there are no evaluation rows scored by both models\); 1 transform lines rejected"):
        steps.evaluate(event, settings(), s3, reporting(none=True))


def test_a_training_job_that_reports_no_metrics_is_still_judged(s3) -> None:
    rows = evaluation_rows(n=50)
    transformed(s3, "candidate", rows, scores(rows, 0.5, 1))
    transformed(s3, "serving", rows, scores(rows, 0.5, 2))
    event = evaluation_event(50)
    result = steps.evaluate(event, settings(), s3, reporting(none=True))
    assert result["trainingJobMetrics"] == {} and result["rows"] == 50


def describe_model(name: str, url: str) -> dict:
    return {"ModelName": name, "ModelArn": f"arn:aws:sagemaker:eu-west-1:123456789012:model/{name.lower()}", "CreationTime": "2026-11-01T00:00:00Z",
            "PrimaryContainer": {"Image": "img", "ModelDataUrl": url}, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r"}  # fmt: skip


def test_the_serving_model_is_the_configured_variants_model(sagemaker) -> None:
    client, stubber = sagemaker
    two = {**LIVE_CONFIG, "ProductionVariants": [{**LIVE_CONFIG["ProductionVariants"][0], "VariantName": "Shadow", "ModelName": "Other"}, LIVE_CONFIG["ProductionVariants"][0]]}
    stubber.add_response("describe_endpoint", describe_endpoint("InService", "Config-abc"), {"EndpointName": "mlloop-dev"})
    stubber.add_response("describe_endpoint_config", two, {"EndpointConfigName": "Config-abc"})
    stubber.add_response("describe_model", describe_model("Model-old", "s3://models/bundled/model.tar.gz"), {"ModelName": "Model-old"})
    assert steps.serving_model(settings(), client) == {
        "modelName": "Model-old", "endpointConfigName": "Config-abc", "variantName": "AllTraffic", "artifactS3Uri": "s3://models/bundled/model.tar.gz",
    }  # fmt: skip
    stubber.add_response("describe_endpoint", describe_endpoint("InService", "Config-abc"), {"EndpointName": "mlloop-dev"})
    stubber.add_response("describe_endpoint_config", {**two, "ProductionVariants": two["ProductionVariants"][:1]}, {"EndpointConfigName": "Config-abc"})
    stubber.add_response("describe_model", describe_model("Other", "s3://m/other.tar.gz"), {"ModelName": "Other"})
    assert steps.serving_model(settings(), client)["modelName"] == "Other"  # the only variant, whatever its name
    stubber.add_response("describe_endpoint", describe_endpoint("InService", "Config-abc"), {"EndpointName": "mlloop-dev"})
    stubber.add_response("describe_endpoint_config", {**two, "ProductionVariants": [two["ProductionVariants"][0]] * 2}, {"EndpointConfigName": "Config-abc"})
    with pytest.raises(steps.StepError, match="endpoint mlloop-dev has no variant AllTraffic \\(it has Shadow, Shadow\\)"):
        steps.serving_model(settings(), client)


LIVE_CONFIG = {
    "EndpointConfigName": "Config-abc",
    "EndpointConfigArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/config-abc",
    "CreationTime": "2026-11-01T00:00:00Z",
    "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "Model-old", "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge", "InitialVariantWeight": 1.0}],
    "DataCaptureConfig": {
        "EnableCapture": True, "InitialSamplingPercentage": 34, "DestinationS3Uri": "s3://capture/capture", "KmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/k",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
    },
    "KmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/k",
}  # fmt: skip


def describe_endpoint(status: str, config: str) -> dict:
    return {"EndpointName": "mlloop-dev", "EndpointArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/mlloop-dev", "EndpointConfigName": config,
            "EndpointStatus": status, "CreationTime": "2026-11-01T00:00:00Z", "LastModifiedTime": "2026-11-01T00:00:00Z"}  # fmt: skip


def test_deploy_copies_the_live_config_with_its_capture_settings_and_updates_blue_green(sagemaker) -> None:
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint", describe_endpoint("InService", "Config-abc"), {"EndpointName": "mlloop-dev"})
    stubber.add_response("describe_endpoint_config", LIVE_CONFIG, {"EndpointConfigName": "Config-abc"})
    expected = {
        "EndpointConfigName": NAMES["endpointConfig"],
        "ProductionVariants": [{**LIVE_CONFIG["ProductionVariants"][0], "ModelName": NAMES["model"]}],
        "DataCaptureConfig": LIVE_CONFIG["DataCaptureConfig"],  # the operators' 34 % stays
        "KmsKeyId": LIVE_CONFIG["KmsKeyId"],
        "Tags": [{"Key": "retraining-execution", "Value": NAMES["execution"]}],
    }
    stubber.add_response("create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/x"}, expected)
    stubber.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/mlloop-dev"},
                         {"EndpointName": "mlloop-dev", "EndpointConfigName": NAMES["endpointConfig"], "DeploymentConfig": DEPLOYMENT})  # fmt: skip
    result = steps.deploy({"names": NAMES}, settings(), client)
    assert result == {"endpointConfigName": NAMES["endpointConfig"], "previousEndpointConfigName": "Config-abc"}
    routing = DEPLOYMENT["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}, "WaitIntervalInSeconds": 600}
    assert DEPLOYMENT["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "mlloop-dev-deployment-errors"}]}


def test_deploy_touches_nothing_while_the_endpoint_is_not_in_service(sagemaker) -> None:
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint", describe_endpoint("Updating", "Config-abc"), {"EndpointName": "mlloop-dev"})
    with pytest.raises(steps.StepError, match="is Updating, not InService; nothing was changed"):
        steps.deploy({"names": NAMES}, settings(), client)


@pytest.mark.parametrize(
    ("status", "config", "state"),
    [("Updating", "Config-abc", "updating"), ("InService", NAMES["endpointConfig"], "deployed"), ("InService", "Config-abc", "rolled-back"), ("Failed", "Config-abc", "failed")],
)
def test_endpoint_state_tells_deployed_from_rolled_back(sagemaker, status, config, state) -> None:
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint", describe_endpoint(status, config), {"EndpointName": "mlloop-dev"})
    result = steps.endpoint({"deployment": {"endpointConfigName": NAMES["endpointConfig"]}}, settings(), client)
    assert result["state"] == state and result["endpointConfigName"] == config


TEMPLATES = {
    "dataQuality": {
        "request": {
            "NamePrefix": "mlloop-dev-dq-baseline", "RoleArn": "arn:aws:iam::123456789012:role/dq", "AppSpecification": {"ImageUri": "img"},
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 20}},
            "ProcessingInputs": [{"InputName": "baseline_dataset_input", "S3Input": {"S3Uri": "s3://datasets/bundled/train.csv", "LocalPath": "/opt/ml/processing/input/baseline_dataset_input", "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output", "S3Output": {"S3Uri": "s3://app-monitoring/data-quality/baselines", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
            "Environment": {"dataset_format": json.dumps({"csv": {"header": False, "output_columns_position": "START"}})},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
        },
        "datasetInput": "baseline_dataset_input",
        "dataset": steps.SCORED_DATASET,
        "publish": {"statistics.json": "s3://app-monitoring/data-quality/current/statistics.json", "constraints.json": "s3://app-monitoring/data-quality/current/constraints.json"},
    },
    "explainability": {
        "request": {
            "NamePrefix": "mlloop-dev-shap-baseline", "RoleArn": "arn:aws:iam::123456789012:role/ex", "AppSpecification": {"ImageUri": "clarify"},
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 20}},
            "ProcessingInputs": [
                {"InputName": "dataset", "S3Input": {"S3Uri": "s3://datasets/bundled/train.csv", "LocalPath": "/opt/ml/processing/input/data", "S3DataType": "S3Prefix", "S3InputMode": "File"}},
                {"InputName": "analysis_config", "S3Input": {"LocalPath": "/opt/ml/processing/input/config", "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            ],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "analysis_result", "S3Output": {"S3Uri": "s3://app-monitoring/explainability/baselines", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
            "Documents": {
                "AnalysisConfig": {"File": "analysis_config.json", "Input": "analysis_config", "Body": {"predictor": {"model_name": "Model-old"}, "methods": {}}},
                "MonitoringConfig": {"File": "monitoring_analysis_config.json", "Body": {"predictor": {"model_name": "Model-old"}}},
            },
        },
        "datasetInput": "dataset",
        "dataset": steps.TRAINING_DATASET,
        "publish": {"analysis.json": "s3://app-monitoring/explainability/current/analysis.json", "monitoring_analysis_config.json": "s3://app-monitoring/explainability/current/analysis_config.json"},
    },
}  # fmt: skip


def test_baselines_point_the_monitors_jobs_at_the_new_data_and_model(s3) -> None:
    dataset = {"trainS3Uri": "s3://datasets/retraining/r/train/"}
    scored = {"s3Uri": "s3://datasets/retraining/r/baseline/", "rows": 10}
    result = steps.baselines({"templates": TEMPLATES, "dataset": dataset, "baselineDataset": scored, "names": NAMES}, s3)
    jobs = result["jobs"]
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    for request in jobs.values():
        # Each is a valid CreateProcessingJob request (botocore's validator) with every field the Map reads.
        validate_parameters(request, sagemaker.meta.service_model.operation_model("CreateProcessingJob").input_shape)
        assert {"ProcessingJobName", "Environment", "NetworkConfig", "StoppingCondition"} <= set(request)
        assert len(request["ProcessingJobName"]) <= 63
    # Data quality describes the new model's scores and the features, from a dataset with a header;
    # Clarify reads the training rows (label first, no header), as its analysis config says.
    quality = jobs["dataQuality"]
    assert quality["ProcessingInputs"][0]["S3Input"]["S3Uri"] == scored["s3Uri"]
    assert json.loads(quality["Environment"]["dataset_format"]) == {"csv": {"header": True, "output_columns_position": "START"}}
    assert jobs["explainability"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] == dataset["trainS3Uri"]
    config_uri = jobs["explainability"]["ProcessingInputs"][1]["S3Input"]["S3Uri"]
    written = json.loads(s3.get_object(Bucket="app-monitoring", Key=config_uri.split("/", 3)[3])["Body"].read())
    assert written["predictor"]["model_name"] == NAMES["model"]
    monitoring_config = f"{result['monitors']['explainability']['outputS3Uri']}/monitoring_analysis_config.json"
    assert json.loads(s3.get_object(Bucket="app-monitoring", Key=monitoring_config.split("/", 3)[3])["Body"].read())["predictor"]["model_name"] == NAMES["model"]
    assert result["monitors"]["dataQuality"]["publish"] == TEMPLATES["dataQuality"]["publish"]


def test_a_data_quality_baseline_without_the_scored_dataset_fails_clearly(s3) -> None:
    with pytest.raises(steps.StepError, match="dataQuality baseline reads the new model's scored dataset, and this run built none"):
        steps.baselines({"templates": {"dataQuality": TEMPLATES["dataQuality"]}, "dataset": {"trainS3Uri": "s3://datasets/t/"}, "names": NAMES}, s3)


def test_the_baseline_dataset_is_the_header_then_the_new_models_score_and_the_features(s3) -> None:
    # The batch transform's CSV join: each input row (label first), then the model's output.
    joined = "1,10,11,12,0.93\n0,20,21.5,22,0.04\n1,30,31,0.5\n0,40,41,42,abc\n"
    s3.put_object(Bucket="datasets", Key="retraining/r/scores/train.csv.out", Body=joined.encode())
    dataset = {"scoresS3Uri": "s3://datasets/retraining/r/scores/", "baselineS3Uri": "s3://datasets/retraining/r/baseline/"}
    result = steps.baseline_dataset({"dataset": dataset, "names": {**NAMES, "execution": "r"}}, settings(), s3)
    written = list(csv.reader(io.StringIO(s3.get_object(Bucket="datasets", Key="retraining/r/baseline/baseline.csv")["Body"].read().decode())))
    assert written == [["probability", "a", "b", "c"], ["0.93", "10", "11", "12"], ["0.04", "20", "21.5", "22"]]
    assert result == {"s3Uri": dataset["baselineS3Uri"], "rows": 2, "rejectedRows": 2, "rejectedS3Uri": "s3://datasets/retraining/r/baseline-rejected.jsonl"}
    rejected = [json.loads(line) for line in s3.get_object(Bucket="datasets", Key="retraining/r/baseline-rejected.jsonl")["Body"].read().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejected] == [
        (3, "4 fields, expected 5 (label, 3 features, then one score)"),
        (4, "score is not a finite number: 'abc' is not a decimal number"),
    ]
    # The baseline job reads every object under baseline/: only the dataset is there.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="datasets", Prefix="retraining/r/baseline/")["Contents"]] == ["retraining/r/baseline/baseline.csv"]


def test_a_transform_that_wrote_nothing_usable_fails_the_step(s3) -> None:
    s3.put_object(Bucket="datasets", Key="retraining/r/scores/train.csv.out", Body=b"1,10,11,12,0.1,0.9\n")  # two outputs per row
    dataset = {"scoresS3Uri": "s3://datasets/retraining/r/scores/", "baselineS3Uri": "s3://datasets/retraining/r/baseline/"}
    with pytest.raises(steps.StepError, match="wrote no usable rows .* \\(1 rejected\\)"):
        steps.baseline_dataset({"dataset": dataset, "names": {**NAMES, "execution": "r"}}, settings(), s3)


def test_promote_publishes_the_baselines_and_records_the_lineage(s3) -> None:
    output = "s3://app-monitoring/data-quality/baselines/job-1"
    for file in ("statistics.json", "constraints.json"):
        s3.put_object(Bucket="app-monitoring", Key=f"data-quality/baselines/job-1/{file}", Body=f'{{"new": "{file}"}}'.encode())
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=PARAMETER, Value="s3://models/bundled/model.tar.gz", Type="String")  # what the storage stack creates
    event = {
        "names": NAMES,
        "training": TRAINING,
        "evaluation": {
            "promote": True, "reason": "r", "candidate": {"value": 0.1, "interval": [0.08, 0.12]}, "serving": {"value": 0.3, "interval": [0.25, 0.35]},
            "difference": {"value": -0.2, "interval": [-0.26, -0.15]}, "trainingJobMetrics": {"train:logloss": 0.05, "validation:logloss": 0.2},
        },  # fmt: skip
        "dataset": {"trainS3Uri": "t", "validationS3Uri": "v", "manifestS3Uri": "m", "rejectedS3Uri": "x", "counts": {"trainRows": 1}, "labelsThrough": "2026-11-22T09:00:00+00:00"},
        "deployment": {"endpointConfigName": NAMES["endpointConfig"], "previousEndpointConfigName": "Config-abc"},
        "baselines": {"dataQuality": {"outputS3Uri": output, "publish": TEMPLATES["dataQuality"]["publish"], "job": "job-1"}},
        "triggers": [{"kind": "manual"}],
    }
    result = steps.promote(event, settings(), s3, ssm)
    assert json.loads(s3.get_object(Bucket="app-monitoring", Key="data-quality/current/constraints.json")["Body"].read()) == {"new": "constraints.json"}
    # What keeps stack updates from bringing the old model back: the served model's parameter, which
    # the serving stack deploys, and the marker that keeps the baseline custom resource off current/.
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == ARTEFACT
    assert is_promoted(s3, TEMPLATES["dataQuality"]["publish"])
    marker = json.loads(s3.get_object(Bucket="app-monitoring", Key=f"data-quality/current/{PROMOTED_MARKER}")["Body"].read())
    assert marker["execution"] == NAMES["execution"]
    current = json.loads(s3.get_object(Bucket="models", Key="retraining/current.json")["Body"].read())
    per_run = json.loads(s3.get_object(Bucket="models", Key=f"retraining/{NAMES['execution']}/lineage.json")["Body"].read())
    assert current == per_run and result["lineageS3Uri"].endswith(f"/{NAMES['execution']}/lineage.json")
    assert current["metrics"]["validation:logloss"] == 0.2 and current["model"]["name"] == NAMES["model"]
    assert current["data"]["labelsThrough"] == "2026-11-22T09:00:00+00:00" and current["previousEndpointConfig"] == "Config-abc"
    # The gate's figures: both models on the same rows, the difference and its interval.
    assert current["evaluation"] == event["evaluation"]


def test_names_that_would_pass_sagemakers_limit_fail_clearly() -> None:
    with pytest.raises(steps.StepError, match="longer than SageMaker's 63"):
        steps.names(settings(), "x" * 43)  # mlloop-dev-<43>-candidate: 64
    assert len(steps.names(settings(), "x" * 42)["candidateTransformJob"]) == 63
    assert steps.names(settings(), NAMES["execution"]) == NAMES


# --- the open monitoring back end: baselines computed in the step ----------------------------


OPEN_MONITORS = {"dataQuality": {"monitor": "data-quality", "bucket": "app-monitoring", "threshold": 0.2}}


def test_open_baselines_writes_the_new_models_data_quality_baseline_by_execution(s3):
    from lambdas.monitoring.drift.baseline import load

    rows = "".join(f"0.{i % 9 + 1},{i},{i % 7},{i % 3}\n" for i in range(40))
    s3.put_object(Bucket="datasets", Key=f"retraining/{NAMES['execution']}/baseline/baseline.csv", Body=("probability,a,b,c\n" + rows).encode())
    event = {"monitors": OPEN_MONITORS, "names": NAMES, "baselineDataset": {"s3Uri": f"s3://datasets/retraining/{NAMES['execution']}/baseline/"}}
    result = steps.open_baselines(event, settings(), s3)
    folder = f"data-quality/baselines/{NAMES['execution']}"
    assert result == {"monitors": {"dataQuality": {
        "outputS3Uri": f"s3://app-monitoring/{folder}",
        "publish": {"statistics.json": "s3://app-monitoring/data-quality/current/statistics.json", "constraints.json": "s3://app-monitoring/data-quality/current/constraints.json"},
    }}}  # fmt: skip
    read = lambda name: json.loads(s3.get_object(Bucket="app-monitoring", Key=f"{folder}/{name}")["Body"].read())  # noqa: E731
    loaded = load(read("statistics.json"), read("constraints.json"))
    assert loaded.layout.columns == ("probability", "a", "b", "c") and loaded.threshold == 0.2
    assert read("statistics.json")["dataset"] == {"item_count": 40}


def test_open_baselines_refuses_a_scored_dataset_of_another_width_and_a_run_without_one(s3):
    s3.put_object(Bucket="datasets", Key="retraining/x/baseline/baseline.csv", Body=b"probability,a,b\n0.5,1,2\n")
    event = {"monitors": OPEN_MONITORS, "names": NAMES, "baselineDataset": {"s3Uri": "s3://datasets/retraining/x/baseline/"}}
    from lambdas.monitoring.open.baseline import DatasetError

    with pytest.raises(DatasetError, match=r"its header has 3 columns .* the model 4: probability, then model.feature_names"):
        steps.open_baselines(event, settings(), s3)
    with pytest.raises(steps.StepError, match="the dataQuality baseline reads the new model's scored dataset, and this run built none"):
        steps.open_baselines({**event, "baselineDataset": None}, settings(), s3)
    assert s3.list_objects_v2(Bucket="app-monitoring").get("KeyCount") == 0
