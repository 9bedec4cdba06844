"""The synthesised retraining state machine, executed by moto's Step Functions interpreter.

What runs for real: the definition exactly as synthesised (tokens resolved to this test's
resources), moto's interpretation of every state (Pass, Choice, Parallel, Wait, catches), the Lambda
steps (our handler, called in-process with moto S3 and SageMaker: the evaluation rows assembled
from the bundled model's real test set and reviewed labels with their ground-truth lines, the
serving model read from the endpoint, the paired comparison), SNS notifications (moto, read back
through an SQS subscription), the task-token approval, SageMaker CreateModel / CreateTrainingJob /
DescribeTrainingJob / CreateTransformJob / CreateProcessingJob / CreateEndpointConfig /
DescribeEndpoint / DescribeModel on moto, and the served model's SSM parameter on moto.

What the SageMaker stand-ins supply because moto 5.2 lacks it (local/rehearse/sagemaker.py, which the
rehearsal uses too: one way of doing it; and why the real service is not needed to trust the rest):
- ``.sync`` for SageMaker: moto runs only waitForTaskToken for SageMaker, so the stand-ins return
  DescribeTrainingJob / DescribeTransformJob / DescribeProcessingJob once the job ended, as
  Step Functions does;
- the training job: here the test's trainer replaces the stand-in's XGBoost training, writing the
  artefact the test chose as the candidate (the bundled model, or a weak one: two depth-1 trees
  trained here on the bundled training data) and reporting a validation metric (the XGBoost
  container would), or none at all (then DescribeTrainingJob has no FinalMetricDataList, as for an
  image without metric definitions);
- the batch transform: what the XGBoost container computes, done here with XGBoost itself: the
  model named in the request is described (moto), its artefact read from S3 and loaded, each input
  line is filtered by the request's ``InputFilter`` (``$[k:]``) and scored, and the output is what a
  CSV join writes (the whole input line, then the model's score, in ``<input file>.out``). An
  artefact that does not load fails the job, as the container would, and the task fails as Step
  Functions fails a ``.sync`` task whose job failed: ``States.TaskFailed``, the job's description
  (status Failed, FailureReason) as the cause (moto's own ``.sync`` of Step Functions does the same);
- a baseline job writes the files its analyzer writes (statistics.json, constraints.json / analysis.json);
- ``UpdateEndpoint``: not implemented by moto; the shim sets the endpoint's config (or keeps the old
  one, for the rollback test) as SageMaker does when the update finishes;
- Lambda: moto's Docker-less backend echoes the payload, so ``invoke`` is routed to our handler
  (``route_lambda``);
- a Parallel branch's ``States.*`` error: moto re-raises a failed branch's error as a custom error
  name, which refuses the ``States.`` prefix (a ValueError no catch handles); Step Functions fails
  the Parallel state with the branch's error, which the stand-ins keep;
- a caught error without a cause: moto passes ``send-task-failure`` on without its cause and writes
  ``"Cause": null``; Step Functions writes ``""`` (moto's interpreter, from LocalStack, says so) and
  the review feared no field at all; ``without_cause`` makes moto leave the field out.
Not covered here: the real timing of Wait states (moto waits the real minute once per poll), X-Ray,
and IAM (checked in test_retraining_stack.py against the exact actions).
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import boto3
import numpy as np
import pytest
import xgboost as xgb
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from lambdas.retraining import handler
from lambdas.shared import aws
from lambdas.shared.baseline import header
from lambdas.shared.explain.tree import TreeExplainer
from local.rehearse.sagemaker import archive, install_sagemaker, route_lambda
from stacks.shared import default_model
from tests.conftest import build_app
from tests.lambdas.aws_env import ACCOUNT, REGION

FEATURES = 30
ORIGINAL = "\n".join(f"{i % 2}," + ",".join(str(i + f) for f in range(FEATURES)) for i in range(60)) + "\n"
PLACEHOLDER_BUCKET = "app-monitoring"  # every other token of the definition (buckets, roles, images)
PARAMETER = "/mlloop/dev/serving/model-data-url"  # the serving stack's (AppConfig.served_model_parameter)
SERVING_ARTEFACT = "s3://models/bundled/model.tar.gz"  # the endpoint's model's (Model-old)
RUN = "20261122-100000-abc123"
NAME = f"mlloop-dev-{RUN}"
BUNDLED = default_model.MODEL_ARTIFACT.read_bytes()
# Reviewed labels: 40 captured requests (the test set's first rows, each feature 1 % larger: records
# neither model trained on) labelled with the truth, half audit rows (capture sampling 100 %, audit
# 2 %: inclusion probability 0.02) and half chosen by the review rule (probability 1), with
# review_results' ground-truth lines; and one loop from before sampling was recorded (no lines).
_TEST_ROWS = default_model.TEST_CSV.read_text().splitlines()
REVIEWED = "".join(row.split(",")[0] + "," + ",".join(f"{float(v) * 1.01:.6g}" for v in row.split(",")[1:]) + "\n" for row in _TEST_ROWS[:40])
GROUND_TRUTH = "".join(
    json.dumps({
        "groundTruthData": {"data": row.split(",")[0], "encoding": "CSV"}, "eventMetadata": {"eventId": f"request-{i}"}, "eventVersion": "0",
        "sampling": {"inclusionProbability": 0.02, "selectedBy": "audit"} if i % 2 else {"inclusionProbability": 1.0, "selectedBy": "rule"},
    }) + "\n"
    for i, row in enumerate(REVIEWED.splitlines())
)  # fmt: skip
UNSAMPLED = "1," + ",".join("7" for _ in range(FEATURES)) + "\n"


@pytest.fixture(scope="module")
def weak() -> bytes:
    """A worse model than the bundled one: two depth-1 trees on the bundled training data."""
    train = np.loadtxt(default_model.TRAIN_CSV, delimiter=",")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 1, "eta": 0.3, "seed": 0}, xgb.DMatrix(train[:, 1:], label=train[:, 0]), num_boost_round=2)
    return archive(booster)


def execution_ended(sfn, arn: str, timeout: float, poll: float) -> dict:
    """DescribeExecution once the execution (moto runs it in a thread) is no longer RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(poll)
    raise AssertionError(f"{arn} still running after {timeout} s")


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
    """moto with the stand-ins above; ``run`` executes one retraining and returns the execution."""

    def __init__(
        self, app, monkeypatch: pytest.MonkeyPatch, *, candidate: bytes, serving: bytes, candidate_metric: float | None = 0.2, rollback: bool = False
    ) -> None:
        # candidate, serving: the artefacts of the new model and of the endpoint's; candidate_metric
        # None: the training job reports no metrics.
        self.candidate, self.candidate_metric, self.rollback = candidate, candidate_metric, rollback
        self.s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("datasets", "models", "labels", PLACEHOLDER_BUCKET):
            self.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.s3.put_object(Bucket="datasets", Key="bundled/train.csv", Body=ORIGINAL.encode())
        self.s3.put_object(Bucket="datasets", Key="bundled/test.csv", Body=default_model.TEST_CSV.read_bytes())
        self.s3.put_object(Bucket="labels", Key="training-rows/loop-1.csv", Body=REVIEWED.encode())
        self.s3.put_object(Bucket="labels", Key="ground-truth/2026/11/22/09/loop-1.jsonl", Body=GROUND_TRUTH.encode())
        self.s3.put_object(Bucket="labels", Key="training-rows/loop-0.csv", Body=UNSAMPLED.encode())
        self.s3.put_object(Bucket="models", Key=aws.split_s3_uri(SERVING_ARTEFACT)[1], Body=serving)
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        role = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
        self.sagemaker.create_model(ModelName="Model-old", ExecutionRoleArn=role, PrimaryContainer={"Image": "img", "ModelDataUrl": SERVING_ARTEFACT})
        self.sagemaker.create_endpoint_config(
            EndpointConfigName="Config-old",
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "Model-old", "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge", "InitialVariantWeight": 1.0}],
            DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 34, "DestinationS3Uri": "s3://capture/capture", "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]},
        )
        self.sagemaker.create_endpoint(EndpointName="mlloop-dev", EndpointConfigName="Config-old")
        self.ssm = boto3.client("ssm", region_name=REGION)
        self.ssm.put_parameter(Name=PARAMETER, Value=SERVING_ARTEFACT, Type="String")  # the storage stack's
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
        fixed = {
            "DATASETS_BUCKET": "datasets", "MODELS_BUCKET": "models", "LABELS_BUCKET": "labels",
            "TRAINING_DATA_S3_URI": "s3://datasets/bundled/train.csv", "TEST_DATA_S3_URI": "s3://datasets/bundled/test.csv",
        }  # fmt: skip
        for name, value in {**environment, **fixed}.items():
            assert isinstance(value, str), name  # every other setting is a plain value at synth
            monkeypatch.setenv(name, value)
        handler.step_settings.cache_clear()

    def _shims(self, monkeypatch) -> None:
        def train(s3, request):  # the candidate the test chose, and the metric its job reports
            metrics = None if self.candidate_metric is None else [{"MetricName": "validation:logloss", "Value": self.candidate_metric}]
            return self.candidate, metrics

        self.stand_ins = install_sagemaker(patch=monkeypatch, trainer=train, rollback=self.rollback, region=REGION, account=ACCOUNT)
        self.requests = self.stand_ins.requests  # the .sync requests, by API action, as Step Functions sent them
        route_lambda(monkeypatch, lambda function, payload: handler.step(payload, FakeContext()))

    def without_cause(self, monkeypatch) -> None:
        construct = ExecutionState._construct_error_output_value

        def output(state, failure_event):
            value = construct(failure_event)
            return {name: item for name, item in value.items() if not (name == "Cause" and item is None)}

        monkeypatch.setattr(ExecutionState, "_construct_error_output_value", output)

    def serving_metric(self, value: float) -> None:
        """A lineage record of an earlier promotion, with its training job's own metric (the gate reads none of it)."""
        self.s3.put_object(Bucket="models", Key="retraining/current.json", Body=json.dumps({"metrics": {"validation:logloss": value}}).encode())

    def start(self, name: str = RUN) -> str:
        return self.sfn.start_execution(stateMachineArn=self.machine, name=name, input=json.dumps({"triggers": [{"kind": "manual", "id": "t"}]}))["executionArn"]

    def wait(self, arn: str, timeout: float = 240) -> dict:
        return execution_ended(self.sfn, arn, timeout, poll=0.5)

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


def figures(evaluation: dict) -> tuple[float, float, float, list[float]]:
    """Both figures, the difference and its interval, as the evaluation result gives them."""
    return evaluation["candidate"]["value"], evaluation["serving"]["value"], evaluation["difference"]["value"], evaluation["difference"]["interval"]


def assert_judged_on_the_same_rows(evaluation: dict) -> None:
    """The bundled test set (114 rows, weight 1) and the held-out reviewed labels, both models on each."""
    assert evaluation["metric"] == "validation:logloss" and evaluation["rowsNotCompared"] == 0
    assert evaluation["rowsBySource"]["test"] == 114 and evaluation["rows"] == evaluation["evaluationRows"] == sum(evaluation["rowsBySource"].values())
    assert set(evaluation["rowsBySource"]) <= {"test", "reviewed-audit", "reviewed-rule", "reviewed-unweighted"} and len(evaluation["rowsBySource"]) > 1
    assert evaluation["serving"]["model"] == "Model-old" and evaluation["serving"]["artifactS3Uri"] == SERVING_ARTEFACT
    low, high = evaluation["difference"]["interval"]
    assert low <= evaluation["difference"]["value"] <= high


def assert_notified_with_both_figures(message: str, evaluation: dict) -> None:
    candidate, serving, difference, (low, high) = figures(evaluation)
    assert f"candidate {candidate:.4f} [" in message and f"serving model {serving:.4f} [" in message
    assert f"difference (candidate - serving) {difference:+.4f}, 95 % interval [{low:+.4f}, {high:+.4f}]" in message


def test_promote_path_trains_baselines_deploys_and_records_the_new_model(sagemaker_app, moto_sfn, monkeypatch, weak) -> None:
    harness = Harness(sagemaker_app, monkeypatch, candidate=BUNDLED, serving=weak)
    harness.serving_metric(0.25)
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    assert output["promoted"] is True and output["evaluation"]["promote"] is True
    assert output["labelsManifest"] == f"s3://datasets/retraining/{RUN}/manifest.json"  # the labels it used, for the trigger Lambda
    assert harness.endpoint_config() == NAME
    config = harness.sagemaker.describe_endpoint_config(EndpointConfigName=NAME)
    assert config["ProductionVariants"][0]["ModelName"] == NAME and config["DataCaptureConfig"]["InitialSamplingPercentage"] == 34
    model = harness.sagemaker.describe_model(ModelName=NAME)
    assert model["PrimaryContainer"]["ModelDataUrl"].startswith(f"s3://models/retraining/{RUN}/")
    job = harness.sagemaker.describe_training_job(TrainingJobName=NAME)
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://datasets/retraining/{RUN}/train/"
    lineage = json.loads(harness.s3.get_object(Bucket="models", Key="retraining/current.json")["Body"].read())
    assert lineage["model"]["name"] == NAME and lineage["metrics"]["validation:logloss"] == 0.2 and lineage["data"]["counts"]["labelRows"] == 41
    assert lineage["evaluation"] == output["evaluation"]  # both figures, the difference and its interval
    current = harness.s3.list_objects_v2(Bucket=PLACEHOLDER_BUCKET, Prefix="data-quality/current/")["Contents"]
    assert sorted(o["Key"] for o in current) == ["data-quality/current/constraints.json", "data-quality/current/promoted.json", "data-quality/current/statistics.json"]
    # The serving stack now deploys the new artefact, and a monitoring-stack update keeps these baselines.
    assert harness.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == model["PrimaryContainer"]["ModelDataUrl"]
    # The data-quality baseline read the new model's scores (with the features) under a header, not the training labels.
    transform = harness.sagemaker.describe_transform_job(TransformJobName=NAME)
    assert transform["ModelName"] == NAME and transform["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input"}
    [quality] = [r for r in harness.requests["createProcessingJob"] if "dq-baseline" in r["ProcessingJobName"]]
    assert quality["ProcessingInputs"][0]["S3Input"]["S3Uri"] == f"s3://datasets/retraining/{RUN}/baseline/"
    assert json.loads(quality["Environment"]["dataset_format"])["csv"]["header"] is True
    baseline = harness.s3.get_object(Bucket="datasets", Key=f"retraining/{RUN}/baseline/baseline.csv")["Body"].read().decode().splitlines()
    assert baseline[0].split(",") == header(default_model.FEATURE_NAMES)
    rows = np.array([[float(v) for v in line.split(",")] for line in baseline[1:]])
    bundled = TreeExplainer.from_artifact(io.BytesIO(BUNDLED), "bundled").booster
    assert rows.shape == (lineage["data"]["counts"]["trainRows"], FEATURES + 1)  # one per training row
    assert np.allclose(rows[:, 0], bundled.predict(xgb.DMatrix(rows[:, 1:])), atol=1e-6)  # score first: the new model's, then the features
    analysis = json.loads(harness.s3.get_object(Bucket=PLACEHOLDER_BUCKET, Key="explainability/current/analysis_config.json")["Body"].read())
    assert analysis["predictor"]["model_name"] == NAME  # Clarify now explains the new model
    [message] = harness.messages(wait=1)
    assert "deployed a new model" in message
    assert_notified_with_both_figures(message, output["evaluation"])


def test_a_worse_candidate_is_refused_with_both_figures_on_the_same_rows(dev_app, moto_sfn, monkeypatch, weak) -> None:
    """The lineage says the serving model's own training job reported 0.9, which the old gate would
    have compared the candidate's 0.2 with: the gate reads neither, and scores both models."""
    harness = Harness(dev_app, monkeypatch, candidate=weak, serving=BUNDLED)
    harness.serving_metric(0.9)
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    evaluation = output["evaluation"]
    assert output["promoted"] is False and evaluation["promote"] is False
    assert_judged_on_the_same_rows(evaluation)
    candidate, serving, difference, (low, _) = figures(evaluation)
    assert candidate > serving and low > evaluation["tolerance"]  # worse beyond the tolerance, with 97.5 % confidence (one-sided)
    assert harness.endpoint_config() == "Config-old"
    assert sorted(m["ModelName"] for m in harness.sagemaker.list_models()["Models"]) == ["Model-old", NAME]  # the candidate, scored, not deployed
    # Both models scored the same evaluation file; no training-set transform ran for a refused model.
    transforms = {r["TransformJobName"]: r for r in harness.requests["createTransformJob"]}
    assert set(transforms) == {f"{NAME}-candidate", f"{NAME}-serving"}
    assert {r["ModelName"] for r in transforms.values()} == {NAME, "Model-old"}
    assert len({r["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] for r in transforms.values()}) == 1
    [message] = harness.messages(wait=1)
    assert "did not promote" in message and "beyond the tolerance 0.01" in message
    assert_notified_with_both_figures(message, evaluation)
    saved = json.loads(harness.s3.get_object(Bucket="datasets", Key=f"retraining/{RUN}/evaluation.json")["Body"].read())
    assert saved == evaluation


def test_a_better_candidate_is_promoted_with_both_figures(dev_app, moto_sfn, monkeypatch, weak) -> None:
    harness = Harness(dev_app, monkeypatch, candidate=BUNDLED, serving=weak)
    harness.serving_metric(0.01)  # the old gate would have refused: the candidate's job reports 0.2
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    evaluation = output["evaluation"]
    assert output["promoted"] is True and evaluation["promote"] is True
    assert_judged_on_the_same_rows(evaluation)
    candidate, serving, _, (_, high) = figures(evaluation)
    assert candidate < serving and high <= evaluation["tolerance"]
    assert harness.endpoint_config() == NAME
    [message] = harness.messages(wait=1)
    assert "deployed a new model" in message and "within the tolerance 0.01" in message
    assert_notified_with_both_figures(message, evaluation)


def test_the_first_run_is_judged_against_the_serving_model(dev_app, moto_sfn, monkeypatch, weak) -> None:
    """No lineage (the model deployed with the app serves): the candidate is scored against it on
    the same rows and, being worse, is not promoted (the old gate promoted every first run)."""
    harness = Harness(dev_app, monkeypatch, candidate=weak, serving=BUNDLED)
    assert harness.s3.list_objects_v2(Bucket="models", Prefix="retraining/").get("KeyCount") == 0
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    assert output["promoted"] is False
    assert_judged_on_the_same_rows(output["evaluation"])
    assert harness.endpoint_config() == "Config-old"
    [message] = harness.messages(wait=1)
    assert "did not promote" in message
    assert_notified_with_both_figures(message, output["evaluation"])


def test_a_training_job_that_reports_no_metrics_is_judged_all_the_same(dev_app, moto_sfn, monkeypatch, weak) -> None:
    harness = Harness(dev_app, monkeypatch, candidate=BUNDLED, serving=weak, candidate_metric=None)
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    assert output["promoted"] is True and output["evaluation"]["trainingJobMetrics"] == {}


def test_a_rolled_back_deployment_fails_visibly_and_leaves_the_old_model(dev_app, moto_sfn, monkeypatch, weak) -> None:
    harness = Harness(dev_app, monkeypatch, candidate=BUNDLED, serving=weak, rollback=True)
    execution = harness.wait(harness.start())
    assert execution["status"] == "FAILED" and execution["error"] == "DeploymentRolledBack"
    assert harness.endpoint_config() == "Config-old"
    assert harness.s3.list_objects_v2(Bucket="models", Prefix="retraining/current.json").get("KeyCount") == 0
    [message] = harness.messages(wait=1)
    assert "could not deploy" in message and "Config-old" in message


def test_manual_approval_waits_for_the_token_and_a_rejection_keeps_the_model(approval_app, moto_sfn, monkeypatch, weak) -> None:
    harness = Harness(approval_app, monkeypatch, candidate=BUNDLED, serving=weak)
    arn = harness.start()
    request, token = harness.approval_request()
    assert "send-task-success" in request and "no answer within 2 h rejects" in request
    evaluation = json.loads(harness.s3.get_object(Bucket="datasets", Key=f"retraining/{RUN}/evaluation.json")["Body"].read())
    assert_notified_with_both_figures(request, evaluation)  # the approver sees both figures, the difference and its interval
    harness.sfn.send_task_failure(taskToken=token, error="Rejected", cause="not this one")
    execution = harness.wait(arn)
    assert execution["status"] == "SUCCEEDED" and json.loads(execution["output"])["promoted"] is False
    assert harness.endpoint_config() == "Config-old"
    output = json.loads(execution["output"])
    assert output["evaluation"]["gate"] == evaluation  # the run's output keeps the gate's figures
    [message] = harness.messages(wait=1)
    assert "did not promote its model: not approved (Rejected); the gate: " in message  # moto drops the cause of send_task_failure: null
    assert_notified_with_both_figures(message, evaluation)  # a withheld model's notice still has both figures


def test_a_rejection_without_a_cause_still_keeps_the_model_and_notifies(approval_app, moto_sfn, monkeypatch, weak) -> None:
    harness = Harness(approval_app, monkeypatch, candidate=BUNDLED, serving=weak)
    harness.without_cause(monkeypatch)
    arn = harness.start()
    _, token = harness.approval_request()
    harness.sfn.send_task_failure(taskToken=token, error="Rejected")  # the documented command: no --cause
    execution = harness.wait(arn)
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    gate = output["evaluation"]["gate"]
    assert output["promoted"] is False and output["evaluation"]["reason"] == f"not approved (Rejected); the gate: {gate['reason']}"
    assert harness.endpoint_config() == "Config-old"
    [message] = harness.messages(wait=1)
    assert "did not promote its model: not approved (Rejected); the gate: " in message
    assert_notified_with_both_figures(message, gate)


def test_manual_approval_then_deploys_when_approved(approval_app, moto_sfn, monkeypatch, weak) -> None:
    harness = Harness(approval_app, monkeypatch, candidate=BUNDLED, serving=weak)
    arn = harness.start()
    _, token = harness.approval_request()
    harness.sfn.send_task_success(taskToken=token, output="true")  # what the documented command sends
    execution = harness.wait(arn)
    assert execution["status"] == "SUCCEEDED" and json.loads(execution["output"])["promoted"] is True
    assert harness.endpoint_config() == NAME


def test_open_back_end_computes_the_baselines_in_the_steps_lambda_and_promotes_them(dev_app, moto_sfn, monkeypatch, weak) -> None:
    """The default (open) monitoring back end: no processing job; the Baselines step computes the
    data-quality baseline from the new model's scored dataset and the attribution baseline with the
    new model's artefact, under <monitor>/baselines/<execution>/, and Promote publishes both."""
    from lambdas.monitoring.drift.baseline import load

    assert dev_app.monitoring.backend == "open"
    harness = Harness(dev_app, monkeypatch, candidate=BUNDLED, serving=weak)
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    assert json.loads(execution["output"])["promoted"] is True
    assert "createProcessingJob" not in harness.requests and NAME in {r["TransformJobName"] for r in harness.requests["createTransformJob"]}
    keys = sorted(o["Key"] for o in harness.s3.list_objects_v2(Bucket=PLACEHOLDER_BUCKET)["Contents"])
    assert keys == [
        f"data-quality/baselines/{RUN}/constraints.json", f"data-quality/baselines/{RUN}/statistics.json",
        "data-quality/current/constraints.json", "data-quality/current/promoted.json", "data-quality/current/statistics.json",
        f"explainability/baselines/{RUN}/analysis.json",
        "explainability/current/analysis.json", "explainability/current/promoted.json",
    ]  # fmt: skip
    read = lambda key: json.loads(harness.s3.get_object(Bucket=PLACEHOLDER_BUCKET, Key=key)["Body"].read())  # noqa: E731
    baseline = load(read("data-quality/current/statistics.json"), read("data-quality/current/constraints.json"))
    # The new model's scores then the features, as captures hold them.
    assert baseline.layout.columns == tuple(header(default_model.FEATURE_NAMES)) and all(0 < edge < 1 for edge in baseline.layout.edges[0])
    assert read("data-quality/current/statistics.json")["dataset"]["item_count"] == read(f"data-quality/baselines/{RUN}/statistics.json")["dataset"]["item_count"] > 0
    analysis = read("explainability/current/analysis.json")
    assert set(analysis["explanations"]["tree_shap"]["benign"]["global_shap_values"]) == set(default_model.FEATURE_NAMES)
    assert read("explainability/current/promoted.json")["execution"] == RUN
    lineage = json.loads(harness.s3.get_object(Bucket="models", Key="retraining/current.json")["Body"].read())
    assert lineage["baselines"]["explainability"] == {"analysis.json": f"s3://{PLACEHOLDER_BUCKET}/explainability/current/analysis.json"}


def test_a_candidate_artefact_that_does_not_load_fails_the_evaluation_and_notifies(dev_app, moto_sfn, monkeypatch) -> None:
    """The new model's artefact cannot be loaded: its evaluation transform fails (as the container
    would), the execution notifies why, and the endpoint keeps its model."""
    harness = Harness(dev_app, monkeypatch, candidate=b"not a model", serving=BUNDLED)
    execution = harness.wait(harness.start())
    assert execution["status"] == "FAILED" and execution["error"] == "RetrainingFailed"
    [message] = harness.messages(wait=1)
    assert "failed; the endpoint keeps its model. Error: States.TaskFailed." in message and '"TransformJobStatus": "Failed"' in message
    assert "not a readable .tar.gz" in message and f"{NAME}-candidate" in message
    assert harness.endpoint_config() == "Config-old"
    assert harness.s3.list_objects_v2(Bucket=PLACEHOLDER_BUCKET, Prefix="explainability/current/").get("KeyCount") == 0
