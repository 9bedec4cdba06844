"""The state machine's Lambda steps: evaluate (figures; DescribeTrainingJob on Stubber), deploy and
endpoint (Stubber: botocore's model checks every parameter, DeploymentConfig included), the baseline
dataset, baselines and promote (moto S3 and SSM)."""

from __future__ import annotations

import csv
import io
import json

import boto3
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from lambdas.retraining import steps
from lambdas.shared.baseline import PROMOTED_MARKER, is_promoted
from stacks.shared import config as app_config
from stacks.retraining.workflow import deployment_config
from tests.lambdas.aws_env import REGION

CONFIG = app_config.parse_environment("dev", {"retraining": {"deployment": "canary", "canary_percentage": 25, "bake_minutes": 10}})
DEPLOYMENT = deployment_config(CONFIG, ["mlloop-dev-deployment-errors"])
BASE = "mlloop-dev-20261122-100000-abc123"
NAMES = {"execution": "20261122-100000-abc123", "trainingJob": BASE, "model": BASE, "transformJob": BASE, "endpointConfig": BASE}
PARAMETER = "/mlloop/dev/serving/model-data-url"


def settings(goal: str = "minimize", tolerance: float = 0.01) -> steps.StepSettings:
    return steps.StepSettings(
        prefix="mlloop-dev", endpoint_name="mlloop-dev", datasets_bucket="datasets", models_bucket="models",
        training_data_s3_uri="s3://datasets/bundled/train.csv", labels_bucket="labels", feature_names=("a", "b", "c"), label_count=2,
        validation_percentage=20, objective_metric="validation:logloss", objective_goal=goal, tolerance=tolerance, deployment=DEPLOYMENT,
        served_model_parameter=PARAMETER,
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


def serving_metric(s3, value: float) -> None:
    s3.put_object(Bucket="models", Key="retraining/current.json", Body=json.dumps({"metrics": {"validation:logloss": value}}).encode())


def test_the_first_retraining_becomes_the_reference(s3) -> None:
    result = steps.evaluate({"training": TRAINING}, settings(), s3, metrics(0.2))
    assert result["promote"] is True and result["current"] is None and "becomes the reference" in result["reason"]
    assert result["metrics"] == {"train:logloss": 0.05, "validation:logloss": 0.2}


@pytest.mark.parametrize(
    ("candidate", "current", "goal", "promote", "verdict"),
    [
        (0.20, 0.25, "minimize", True, "not worse than"),
        (0.255, 0.25, "minimize", True, "within tolerance of"),
        (0.27, 0.25, "minimize", False, "worse than"),
        (0.90, 0.95, "maximize", False, "worse than"),
        (0.945, 0.95, "maximize", True, "within tolerance of"),
    ],
)
def test_promotion_compares_both_figures_with_the_tolerance(s3, candidate, current, goal, promote, verdict) -> None:
    serving_metric(s3, current)
    result = steps.evaluate({"training": TRAINING}, settings(goal), s3, metrics(candidate))
    assert result["promote"] is promote and result["candidate"] == candidate and result["current"] == current
    assert f"is {verdict} the serving model's" in result["reason"] and f"{candidate:.6g}" in result["reason"] and f"{current:.6g}" in result["reason"]


def test_a_training_job_without_the_metric_fails_the_step_naming_what_it_reported(s3) -> None:
    with pytest.raises(steps.StepError, match="reported no validation:logloss; it reported: train:logloss"):
        steps.evaluate({"training": TRAINING}, settings(), s3, reporting(("train:logloss", 0.05)))


def test_a_training_job_that_reports_no_metrics_fails_the_step_not_the_machine(s3) -> None:
    # DescribeTrainingJob then has no FinalMetricDataList at all (a custom image without metric definitions).
    with pytest.raises(steps.StepError, match="reported no validation:logloss; it reported: nothing"):
        steps.evaluate({"training": TRAINING}, settings(), s3, reporting(none=True))


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
        "evaluation": {"promote": True, "reason": "r", "candidate": 0.2, "current": None, "metrics": {"train:logloss": 0.05, "validation:logloss": 0.2}},
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
    # The next evaluation compares against this model's figure.
    assert steps.evaluate({"training": TRAINING}, settings(), s3, metrics(0.3))["current"] == 0.2


def test_names_that_would_pass_sagemakers_limit_fail_clearly() -> None:
    with pytest.raises(steps.StepError, match="longer than SageMaker's 63"):
        steps.names(settings(), "x" * 53)
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
