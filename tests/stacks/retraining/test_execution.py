"""The synthesised retraining state machine, executed by moto's Step Functions interpreter.

What runs for real: the definition exactly as synthesised (tokens resolved to this test's
resources), moto's interpretation of every state (Pass, Choice, Wait, Map, catches), the Lambda
steps (our handler, called in-process with moto S3 and SageMaker), SNS notifications (moto, read
back through an SQS subscription), the task-token approval, SageMaker CreateModel /
CreateTrainingJob / DescribeTrainingJob / CreateTransformJob / CreateProcessingJob /
CreateEndpointConfig / DescribeEndpoint on moto, and the served model's SSM parameter on moto.

What this harness supplies because moto 5.2 lacks it (and why the real service is not needed to
trust the rest):
- ``.sync`` for SageMaker: moto runs only waitForTaskToken for SageMaker, so ``_build_sync_resolver``
  returns DescribeTrainingJob / DescribeProcessingJob once the job ended, as Step Functions does;
  the training job reports the validation metric the test chose (the XGBoost container would), or
  none at all (then DescribeTrainingJob has no FinalMetricDataList, as for an image without metric
  definitions); the batch transform writes what a CSV join writes (each input row followed by the
  model's output, in ``<input file>.out``); a baseline job writes the files its analyzer writes
  (statistics.json, constraints.json / analysis.json);
- ``UpdateEndpoint``: not implemented by moto; the shim sets the endpoint's config (or keeps the old
  one, for the rollback test) as SageMaker does when the update finishes;
- Lambda: moto's Docker-less backend echoes the payload, so ``invoke`` is routed to our handler;
- a caught error without a cause: moto passes ``send-task-failure`` on without its cause and writes
  ``"Cause": null``; Step Functions writes ``""`` (moto's interpreter, from LocalStack, says so) and
  the review feared no field at all; ``without_cause`` makes moto leave the field out.
Not covered here: the real timing of Wait states (moto waits the real minute once per poll), X-Ray,
and IAM (checked in test_retraining_stack.py against the exact actions).
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.sagemaker import models as sagemaker_models
from moto.sagemaker.responses import SageMakerResponse
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_unsupported as unsupported
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from lambdas.retraining import handler
from lambdas.shared import aws
from lambdas.shared.baseline import header
from stacks.shared import default_model
from tests.conftest import build_app
from tests.lambdas.aws_env import ACCOUNT, REGION

FEATURES = 30
ORIGINAL = "\n".join(f"{i % 2}," + ",".join(str(i + f) for f in range(FEATURES)) for i in range(60)) + "\n"
PLACEHOLDER_BUCKET = "app-monitoring"  # every other token of the definition (buckets, roles, images)
PARAMETER = "/mlloop/dev/serving/model-data-url"  # the serving stack's (AppConfig.served_model_parameter)
SCORE = "0.625"  # what the new model answers for every training row in the batch transform


class FakeContext:
    function_name = "steps"
    memory_limit_in_mb = 2048
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:steps"
    aws_request_id = "req"


def resolved_definition(app, topic_arn: str, function_arn: str) -> str:
    stack = app.retraining
    template = app.template_json("retraining")
    [machine] = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    steps_id = stack.get_logical_id(stack.steps.function.node.default_child)
    topic_id = stack.get_logical_id(stack.notifications.topic.node.default_child)
    fixed = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com", topic_id: topic_arn}

    def resolve(part: Any) -> str:
        if isinstance(part, str):
            return part
        if "Ref" in part and part["Ref"] in fixed:
            return fixed[part["Ref"]]
        if part.get("Fn::GetAtt", [None])[0] == steps_id:
            return function_arn
        return PLACEHOLDER_BUCKET

    return "".join(resolve(part) for part in machine["Properties"]["DefinitionString"]["Fn::Join"][1])


class Harness:
    """moto with the shims above; ``run`` executes one retraining and returns the execution."""

    def __init__(self, app, monkeypatch: pytest.MonkeyPatch, candidate_metric: float | None, rollback: bool = False) -> None:
        self.candidate_metric, self.rollback = candidate_metric, rollback  # candidate_metric None: the job reports no metrics
        self.requests: dict[str, list[dict]] = {}  # the .sync requests, by API action
        self.s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("datasets", "models", "labels", PLACEHOLDER_BUCKET):
            self.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.s3.put_object(Bucket="datasets", Key="bundled/train.csv", Body=ORIGINAL.encode())
        self.s3.put_object(Bucket="labels", Key="training-rows/loop-1.csv", Body=("1," + ",".join("7" for _ in range(FEATURES)) + "\n").encode())
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        role = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
        self.sagemaker.create_model(ModelName="Model-old", ExecutionRoleArn=role, PrimaryContainer={"Image": "img", "ModelDataUrl": "s3://models/bundled/model.tar.gz"})
        self.sagemaker.create_endpoint_config(
            EndpointConfigName="Config-old",
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "Model-old", "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge", "InitialVariantWeight": 1.0}],
            DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 34, "DestinationS3Uri": "s3://capture/capture", "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]},
        )
        self.sagemaker.create_endpoint(EndpointName="mlloop-dev", EndpointConfigName="Config-old")
        self.ssm = boto3.client("ssm", region_name=REGION)
        self.ssm.put_parameter(Name=PARAMETER, Value="s3://models/bundled/model.tar.gz", Type="String")  # the storage stack's
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        self.topic = sns.create_topic(Name="retraining")["TopicArn"]
        self.inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=self.inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        lambda_role = boto3.client("iam", region_name=REGION).create_role(RoleName="steps", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        function = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="steps", Runtime="python3.12", Role=lambda_role, Handler="x.handler", Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18}
        )["FunctionArn"]
        self._environment(app, monkeypatch)
        self._shims(monkeypatch)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.machine = self.sfn.create_state_machine(
            name="mlloop-dev-retraining", definition=resolved_definition(app, self.topic, function), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
        )["stateMachineArn"]

    def _environment(self, app, monkeypatch) -> None:
        stack = app.retraining
        function_id = stack.get_logical_id(stack.steps.function.node.default_child)
        environment = app.template_json("retraining")["Resources"][function_id]["Properties"]["Environment"]["Variables"]
        fixed = {"DATASETS_BUCKET": "datasets", "MODELS_BUCKET": "models", "LABELS_BUCKET": "labels", "TRAINING_DATA_S3_URI": "s3://datasets/bundled/train.csv"}
        for name, value in {**environment, **fixed}.items():
            if name in ("DATASETS_BUCKET", "MODELS_BUCKET", "LABELS_BUCKET", "TRAINING_DATA_S3_URI") and name not in fixed:
                continue
            assert isinstance(value, str), name  # every other setting is a plain value at synth
            monkeypatch.setenv(name, value)
        handler.step_settings.cache_clear()

    def _shims(self, monkeypatch) -> None:
        harness = self

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            return json.dumps(handler.step(json.loads(body), FakeContext())).encode()

        def build_sync_resolver(task, env, resource_runtime_part, normalised_parameters, state_credentials):
            action = task.resource.api_action
            harness.requests.setdefault(action, []).append(normalised_parameters)  # as Step Functions sent it
            backend = sagemaker_models.sagemaker_backends[ACCOUNT][REGION]
            if action == "createTrainingJob":
                job = backend.training_jobs[normalised_parameters["TrainingJobName"]]
                job.final_metric_data_list = None
                if harness.candidate_metric is not None:
                    job.final_metric_data_list = [{"MetricName": "validation:logloss", "Value": harness.candidate_metric, "Timestamp": job.training_end_time}]
                # The artefact the container would write: the bundled model (30 features), which the
                # open back end's attribution baseline explains.
                artefact = harness.sagemaker.describe_training_job(TrainingJobName=job.training_job_name)["ModelArtifacts"]["S3ModelArtifacts"]
                harness.s3.put_object(Bucket=aws.split_s3_uri(artefact)[0], Key=aws.split_s3_uri(artefact)[1], Body=default_model.MODEL_ARTIFACT.read_bytes())
                return lambda: harness.sagemaker.describe_training_job(TrainingJobName=job.training_job_name)
            if action == "createTransformJob":
                name = normalised_parameters["TransformJobName"]
                source = normalised_parameters["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
                bucket, prefix = aws.split_s3_uri(source)
                output_bucket, output_prefix = aws.split_s3_uri(normalised_parameters["TransformOutput"]["S3OutputPath"])
                for item in harness.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
                    rows = harness.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode().splitlines()
                    joined = "".join(f"{row},{SCORE}\n" for row in rows if row)
                    harness.s3.put_object(Bucket=output_bucket, Key=f"{output_prefix}{item['Key'].rsplit('/', 1)[1]}.out", Body=joined.encode())
                return lambda: harness.sagemaker.describe_transform_job(TransformJobName=name)
            if action == "createProcessingJob":
                name = normalised_parameters["ProcessingJobName"]
                output = normalised_parameters["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
                bucket, prefix = aws.split_s3_uri(output + "/")
                files = ("analysis.json",) if "shap" in name else ("statistics.json", "constraints.json")
                for file in files:
                    harness.s3.put_object(Bucket=bucket, Key=f"{prefix}{file}", Body=json.dumps({"job": name, "file": file}).encode())
                return lambda: harness.sagemaker.describe_processing_job(ProcessingJobName=name)
            raise AssertionError(f"no .sync shim for {action}")

        def update_endpoint(response):
            params = json.loads(response.body)
            endpoint = response.sagemaker_backend.endpoints[params["EndpointName"]]
            harness.deployment_config = params.get("DeploymentConfig")
            if not harness.rollback:
                endpoint.endpoint_config_name = params["EndpointConfigName"]
            return json.dumps({"EndpointArn": endpoint.arn})

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        monkeypatch.setattr(unsupported.StateTaskServiceUnsupported, "_build_sync_resolver", build_sync_resolver)
        monkeypatch.setattr(unsupported, "_SUPPORTED_INTEGRATION_PATTERNS", {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync})
        monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)

    def without_cause(self, monkeypatch) -> None:
        construct = ExecutionState._construct_error_output_value

        def output(state, failure_event):
            value = construct(failure_event)
            return {name: item for name, item in value.items() if not (name == "Cause" and item is None)}

        monkeypatch.setattr(ExecutionState, "_construct_error_output_value", output)

    def serving_metric(self, value: float) -> None:
        self.s3.put_object(Bucket="models", Key="retraining/current.json", Body=json.dumps({"metrics": {"validation:logloss": value}}).encode())

    def start(self, name: str = "20261122-100000-abc123") -> str:
        return self.sfn.start_execution(stateMachineArn=self.machine, name=name, input=json.dumps({"triggers": [{"kind": "manual", "id": "t"}]}))["executionArn"]

    def wait(self, arn: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution = self.sfn.describe_execution(executionArn=arn)
            if execution["status"] != "RUNNING":
                return execution
            time.sleep(0.5)
        raise AssertionError(f"{arn} still running after {timeout} s")

    def messages(self, wait: float = 0) -> list[str]:
        sqs = boto3.client("sqs", region_name=REGION)
        return [m["Body"] for m in sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait)).get("Messages", [])]

    def approval_request(self) -> tuple[str, str]:
        """The approval notification and the task token it carries."""
        deadline = time.monotonic() + 60
        messages: list[str] = []
        while not messages and time.monotonic() < deadline:
            messages = self.messages(wait=1)
        [request] = messages
        assert "--task-token " in request, request
        return request, request.split("--task-token ")[1].split(" ")[0]

    def endpoint_config(self) -> str:
        return self.sagemaker.describe_endpoint(EndpointName="mlloop-dev")["EndpointConfigName"]


@pytest.fixture(scope="module")
def approval_app(tmp_path_factory):
    environment = json.loads(json.dumps(build_app.__globals__["CDK_CONTEXT"]["environments"]["dev"]))
    environment["retraining"] = {"manual_approval": True, "approval_timeout_hours": 2}
    return build_app(tmp_path_factory.mktemp("approval"), environment=environment)


@pytest.fixture
def moto_sfn(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    # Wait states take no wall-clock time here (the endpoint poll is one minute in the definition).
    monkeypatch.setattr(WaitFunction, "_wait_interval", lambda self, env, wait_seconds: None)
    aws.client.cache_clear()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        yield
    aws.client.cache_clear()


def test_promote_path_trains_baselines_deploys_and_records_the_new_model(sagemaker_app, moto_sfn, monkeypatch) -> None:
    harness = Harness(sagemaker_app, monkeypatch, candidate_metric=0.20)
    harness.serving_metric(0.25)
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    assert output["promoted"] is True and output["evaluation"]["candidate"] == 0.2 and output["evaluation"]["current"] == 0.25
    assert output["labelsManifest"] == "s3://datasets/retraining/20261122-100000-abc123/manifest.json"  # the labels it used, for the trigger Lambda
    name = "mlloop-dev-20261122-100000-abc123"
    assert harness.endpoint_config() == name
    config = harness.sagemaker.describe_endpoint_config(EndpointConfigName=name)
    assert config["ProductionVariants"][0]["ModelName"] == name and config["DataCaptureConfig"]["InitialSamplingPercentage"] == 34
    model = harness.sagemaker.describe_model(ModelName=name)
    assert model["PrimaryContainer"]["ModelDataUrl"].startswith("s3://models/retraining/20261122-100000-abc123/")
    job = harness.sagemaker.describe_training_job(TrainingJobName=name)
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://datasets/retraining/20261122-100000-abc123/train/"
    lineage = json.loads(harness.s3.get_object(Bucket="models", Key="retraining/current.json")["Body"].read())
    assert lineage["model"]["name"] == name and lineage["metrics"]["validation:logloss"] == 0.2 and lineage["data"]["counts"]["labelRows"] == 1
    current = harness.s3.list_objects_v2(Bucket=PLACEHOLDER_BUCKET, Prefix="data-quality/current/")["Contents"]
    assert sorted(o["Key"] for o in current) == ["data-quality/current/constraints.json", "data-quality/current/promoted.json", "data-quality/current/statistics.json"]
    # The serving stack now deploys the new artefact, and a monitoring-stack update keeps these baselines.
    assert harness.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == model["PrimaryContainer"]["ModelDataUrl"]
    # The data-quality baseline read the new model's scores (with the features) under a header, not the training labels.
    transform = harness.sagemaker.describe_transform_job(TransformJobName=name)
    assert transform["ModelName"] == name and transform["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input"}
    [quality] = [r for r in harness.requests["createProcessingJob"] if "dq-baseline" in r["ProcessingJobName"]]
    assert quality["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://datasets/retraining/20261122-100000-abc123/baseline/"
    assert json.loads(quality["Environment"]["dataset_format"])["csv"]["header"] is True
    baseline = harness.s3.get_object(Bucket="datasets", Key="retraining/20261122-100000-abc123/baseline/baseline.csv")["Body"].read().decode().splitlines()
    assert baseline[0].split(",") == header(default_model.FEATURE_NAMES)
    assert len(baseline) > 1 and all(line.startswith(f"{SCORE},") and len(line.split(",")) == FEATURES + 1 for line in baseline[1:])
    analysis = json.loads(harness.s3.get_object(Bucket=PLACEHOLDER_BUCKET, Key="explainability/current/analysis_config.json")["Body"].read())
    assert analysis["predictor"]["model_name"] == name  # Clarify now explains the new model
    [message] = harness.messages(wait=1)
    assert "deployed a new model" in message and "0.2" in message and "0.25" in message


def test_reject_path_keeps_the_serving_model_and_notifies_both_figures(dev_app, moto_sfn, monkeypatch) -> None:
    harness = Harness(dev_app, monkeypatch, candidate_metric=0.40)
    harness.serving_metric(0.25)
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert output["promoted"] is False and output["evaluation"]["promote"] is False
    assert harness.endpoint_config() == "Config-old"
    assert [m["ModelName"] for m in harness.sagemaker.list_models()["Models"]] == ["Model-old"]  # no model created
    [message] = harness.messages(wait=1)
    assert "did not promote" in message and "0.4" in message and "0.25" in message and "worse than" in message


def test_a_training_job_that_reports_no_metrics_ends_with_a_notification(dev_app, moto_sfn, monkeypatch) -> None:
    harness = Harness(dev_app, monkeypatch, candidate_metric=None)
    execution = harness.wait(harness.start())
    assert execution["status"] == "FAILED" and execution["error"] == "RetrainingFailed"  # not an uncatchable States.Runtime
    [message] = harness.messages(wait=1)
    assert "failed; the endpoint keeps its model" in message and "reported no validation:logloss; it reported: nothing" in message
    assert harness.endpoint_config() == "Config-old"


def test_a_rolled_back_deployment_fails_visibly_and_leaves_the_old_model(dev_app, moto_sfn, monkeypatch) -> None:
    harness = Harness(dev_app, monkeypatch, candidate_metric=0.20, rollback=True)
    execution = harness.wait(harness.start())
    assert execution["status"] == "FAILED" and execution["error"] == "DeploymentRolledBack"
    assert harness.endpoint_config() == "Config-old"
    assert harness.s3.list_objects_v2(Bucket="models", Prefix="retraining/current.json").get("KeyCount") == 0
    [message] = harness.messages(wait=1)
    assert "could not deploy" in message and "Config-old" in message


def test_manual_approval_waits_for_the_token_and_a_rejection_keeps_the_model(approval_app, moto_sfn, monkeypatch) -> None:
    harness = Harness(approval_app, monkeypatch, candidate_metric=0.20)
    arn = harness.start()
    request, token = harness.approval_request()
    assert "send-task-success" in request and "no answer within 2 h rejects" in request
    harness.sfn.send_task_failure(taskToken=token, error="Rejected", cause="not this one")
    execution = harness.wait(arn)
    assert execution["status"] == "SUCCEEDED" and json.loads(execution["output"])["promoted"] is False
    assert harness.endpoint_config() == "Config-old"
    [message] = harness.messages(wait=1)
    assert "did not promote its model: not approved (Rejected)." in message  # moto drops the cause of send_task_failure: null


def test_a_rejection_without_a_cause_still_keeps_the_model_and_notifies(approval_app, moto_sfn, monkeypatch) -> None:
    harness = Harness(approval_app, monkeypatch, candidate_metric=0.20)
    harness.without_cause(monkeypatch)
    arn = harness.start()
    _, token = harness.approval_request()
    harness.sfn.send_task_failure(taskToken=token, error="Rejected")  # the documented command: no --cause
    execution = harness.wait(arn)
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    assert output["promoted"] is False and output["evaluation"]["reason"] == "not approved (Rejected)"
    assert harness.endpoint_config() == "Config-old"
    [message] = harness.messages(wait=1)
    assert "did not promote its model: not approved (Rejected)" in message


def test_manual_approval_then_deploys_when_approved(approval_app, moto_sfn, monkeypatch) -> None:
    harness = Harness(approval_app, monkeypatch, candidate_metric=0.20)
    arn = harness.start()
    _, token = harness.approval_request()
    harness.sfn.send_task_success(taskToken=token, output="true")  # what the documented command sends
    execution = harness.wait(arn)
    assert execution["status"] == "SUCCEEDED" and json.loads(execution["output"])["promoted"] is True
    assert harness.endpoint_config() == "mlloop-dev-20261122-100000-abc123"


def test_open_back_end_computes_the_baselines_in_the_steps_lambda_and_promotes_them(dev_app, moto_sfn, monkeypatch) -> None:
    """The default (open) monitoring back end: no processing job; the Baselines step computes the
    data-quality baseline from the new model's scored dataset and the attribution baseline with the
    new model's artefact, under <monitor>/baselines/<execution>/, and Promote publishes both."""
    from lambdas.monitoring.drift.baseline import load

    assert dev_app.monitoring.backend == "open"
    harness = Harness(dev_app, monkeypatch, candidate_metric=0.20)
    harness.serving_metric(0.25)
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    assert json.loads(execution["output"])["promoted"] is True
    assert "createProcessingJob" not in harness.requests and "createTransformJob" in harness.requests
    run = "20261122-100000-abc123"
    keys = sorted(o["Key"] for o in harness.s3.list_objects_v2(Bucket=PLACEHOLDER_BUCKET)["Contents"])
    assert keys == [
        f"data-quality/baselines/{run}/constraints.json", f"data-quality/baselines/{run}/statistics.json",
        "data-quality/current/constraints.json", "data-quality/current/promoted.json", "data-quality/current/statistics.json",
        f"explainability/baselines/{run}/analysis.json",
        "explainability/current/analysis.json", "explainability/current/promoted.json",
    ]  # fmt: skip
    read = lambda key: json.loads(harness.s3.get_object(Bucket=PLACEHOLDER_BUCKET, Key=key)["Body"].read())  # noqa: E731
    baseline = load(read("data-quality/current/statistics.json"), read("data-quality/current/constraints.json"))
    # The new model's scores (the transform's 0.625) then the features, as captures hold them.
    assert baseline.layout.columns == tuple(header(default_model.FEATURE_NAMES)) and baseline.layout.edges[0] == (float(SCORE),)
    assert read("data-quality/current/statistics.json")["dataset"]["item_count"] == read(f"data-quality/baselines/{run}/statistics.json")["dataset"]["item_count"] > 0
    analysis = read("explainability/current/analysis.json")
    assert set(analysis["explanations"]["tree_shap"]["benign"]["global_shap_values"]) == set(default_model.FEATURE_NAMES)
    assert read("explainability/current/promoted.json")["execution"] == run
    lineage = json.loads(harness.s3.get_object(Bucket="models", Key="retraining/current.json")["Body"].read())
    assert lineage["baselines"]["explainability"] == {"analysis.json": f"s3://{PLACEHOLDER_BUCKET}/explainability/current/analysis.json"}


def test_open_back_end_notifies_a_baseline_that_cannot_be_computed(dev_app, moto_sfn, monkeypatch, tmp_path) -> None:
    """The new model's artefact cannot be explained: the Baselines step fails, the execution
    notifies why, and the endpoint keeps its model (the baselines come before the deployment)."""
    broken = tmp_path / "model.tar.gz"
    broken.write_bytes(b"not a model")
    monkeypatch.setattr(default_model, "MODEL_ARTIFACT", broken)  # what the training shim writes as the artefact
    harness = Harness(dev_app, monkeypatch, candidate_metric=0.20)
    execution = harness.wait(harness.start())
    assert execution["status"] == "FAILED" and execution["error"] == "RetrainingFailed"
    [message] = harness.messages(wait=1)
    assert "explainability baseline of s3://models/retraining/20261122-100000-abc123/" in message and "not a readable .tar.gz" in message
    assert harness.endpoint_config() == "Config-old"
    assert harness.s3.list_objects_v2(Bucket=PLACEHOLDER_BUCKET, Prefix="explainability/current/").get("KeyCount") == 0
