"""The synthesised nightly batch state machine (income: batch only), executed by moto's Step Functions
interpreter, with the transform stubbed by its documented output layout.

What runs for real: the definition as synthesised (tokens resolved to this test's resources), moto's
interpretation of every state (Choice, Pass with intrinsic functions, catches), the steps Lambda
(``lambdas.batch.handler.step``, in-process, with the template's environment), the served-model
parameter read (SSM, aws-sdk integration), CreateModel and DeleteModel (moto SageMaker), the SNS
notification (read back through an SQS subscription), the "Batch Run Ended" events (EventBridge
PutEvents, matched by a rule into a queue), the manifest table (DynamoDB) and the review queue (SQS).

What stands in: the transform job's ``.sync`` (moto runs no job) writes what SageMaker documents a
transform with data capture writes (tests/lambdas/batch/transform_stub.py, the finish step's own
tests' stub: joined output ``<S3OutputPath>/<key>.out`` and the capture manifests), or fails as
Step Functions fails a ``.sync`` task whose job failed (local/rehearse/sagemaker.py ``failed_job``);
moto's Lambda backend is routed to our handler (``route_lambda``), as the retraining test does.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest
from moto.stepfunctions.parser.backend.execution import Execution

from lambdas.batch import handler
from lambdas.shared import aws
from local.rehearse.sagemaker import failed_job, install_sagemaker, route_lambda
from stacks.batch.stack import RUN_ENDED
from tests.conftest import build_app
from tests.lambdas.aws_env import ACCOUNT, REGION, LambdaContext, drain
from tests.lambdas.batch import transform_stub
from tests.stacks.retraining.test_execution import execution_ended, moto_sfn  # noqa: F401  (moto_sfn: the fixture, moto with Step Functions executing)

DATASETS = "datasets"
SERVED = "s3://models/income/model.tar.gz"  # the served-model parameter's value
ROLE = f"arn:aws:iam::{ACCOUNT}:role/model"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
FEATURES = 14  # income's model.feature_names


def row(first: float, fill: int = 1) -> str:
    """An income row: the stub model's score is the first feature / 10 (income reviews predictions 0: < 5)."""
    return ",".join([str(first), *(str(fill) for _ in range(FEATURES - 1))])


FILE_A = "".join(row(v) + "\n" for v in (4, 7, 1, 9))  # lines 1 and 3 predicted 0
FILE_B = "".join(row(v) + "\n" for v in (2, 3, 8))  # lines 1 and 2 predicted 0


@pytest.fixture(scope="module")
def income_app(tmp_path_factory):
    return build_app(tmp_path_factory.mktemp("income-batch"), env="income")


class Night:
    """The income environment's batch resources in moto, its state machine created from the template."""

    def __init__(self, app, monkeypatch: pytest.MonkeyPatch) -> None:
        self.app, self.fail_transform = app, False
        self.s3 = boto3.client("s3", region_name=REGION)
        for bucket in (DATASETS, "models"):
            self.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.table = self.dynamodb.create_table(
            TableName="manifest", KeySchema=[{"AttributeName": "file", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "file", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )["TableDescription"]["TableName"]  # fmt: skip
        sqs, sns = boto3.client("sqs", region_name=REGION), boto3.client("sns", region_name=REGION)
        self.review = sqs.create_queue(QueueName="review-groups")["QueueUrl"]
        self.inbox, self.events = (sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("inbox", "events"))
        arn = lambda url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # noqa: E731
        self.topic = sns.create_topic(Name="alerts")["TopicArn"]
        sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn(self.inbox), Attributes={"RawMessageDelivery": "true"})
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name="batch-ended", EventPattern=json.dumps({"source": [app.batch.event_source], "detail-type": [RUN_ENDED]}))
        events.put_targets(Rule="batch-ended", Targets=[{"Id": "queue", "Arn": arn(self.events)}])
        boto3.client("ssm", region_name=REGION).put_parameter(Name="/mlloop/income/serving/model-data-url", Value=SERVED, Type="String")  # AppConfig.served_model_parameter
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        lambda_role = boto3.client("iam", region_name=REGION).create_role(RoleName="steps", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        function = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="steps", Runtime="python3.12", Role=lambda_role, Handler="x.handler", Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18}
        )["FunctionArn"]
        self.outputs = {
            "Datasets": DATASETS, "ExecutionRole": ROLE, "DataKey": KEY, "AlertsTopic": self.topic, "ReviewGroupsQueue": self.review,
            "LowerThreshold": "0.1", "UpperThreshold": "0.9",  # the review stack's band parameters (the outcome rule reads neither)
        }  # fmt: skip
        self._environment(monkeypatch)
        route_lambda(monkeypatch, lambda name, payload: handler.step(payload, LambdaContext()))
        self.stand_ins = install_sagemaker(patch=monkeypatch)
        self.stand_ins.resolver = self.transform  # the batch transform's .sync: the documented layout
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.machine = self.sfn.create_state_machine(name="mlloop-income-batch", definition=self.definition(function), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]

    # --- the template, resolved ---
    def _resource(self, kind: str) -> tuple[str, dict[str, Any]]:
        [(logical_id, resource)] = [(k, r) for k, r in self.app.template_json("batch")["Resources"].items() if r["Type"] == kind]
        return logical_id, resource

    def resolve(self, part: Any, function_arn: str = "") -> Any:
        if isinstance(part, str):
            return part
        if part.get("Ref") in ("AWS::Partition", "AWS::Region", "AWS::AccountId"):
            return {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}[part["Ref"]]
        if "Ref" in part and part["Ref"] == self._resource("AWS::DynamoDB::Table")[0]:
            return self.table
        if "Fn::GetAtt" in part and part["Fn::GetAtt"][0] == self._resource("AWS::Lambda::Function")[0]:
            return function_arn
        if "Fn::FindInMap" in part:
            return "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.2-0"
        if "Fn::GetStackOutput" in part:
            output = part["Fn::GetStackOutput"]["OutputName"]
            [value] = [value for name, value in self.outputs.items() if name in output]
            return value
        raise AssertionError(f"unresolved {part}")

    def definition(self, function_arn: str) -> str:
        _, machine = self._resource("AWS::StepFunctions::StateMachine")
        return "".join(self.resolve(part, function_arn) for part in machine["Properties"]["DefinitionString"]["Fn::Join"][1])

    def _environment(self, monkeypatch) -> None:
        _, function = self._resource("AWS::Lambda::Function")
        for name, value in function["Properties"]["Environment"]["Variables"].items():
            monkeypatch.setenv(name, self.resolve(value))
        handler.settings.cache_clear()

    # --- the transform stand-in ---
    def transform(self, env, action: str, request: dict[str, Any]):
        self.stand_ins.requests.setdefault(action, []).append(request)
        assert action == "createTransformJob", action
        name = request["TransformJobName"]
        if self.fail_transform:
            return failed_job(env, action, {"TransformJobName": name, "TransformJobStatus": "Failed", "FailureReason": "AlgorithmError: the model could not be loaded"})
        described = transform_stub.run_transform(
            self.s3,
            request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"],
            request["TransformOutput"]["S3OutputPath"],
            request["DataCaptureConfig"]["DestinationS3Uri"],
            job=name,
            instance_count=request["TransformResources"]["InstanceCount"],
            generate_inference_id=request["DataCaptureConfig"]["GenerateInferenceId"],
        )
        return lambda: described

    # --- running and reading back ---
    def put_input(self, name: str, body: str) -> str:
        key = f"batch/input/{name}"
        self.s3.put_object(Bucket=DATASETS, Key=key, Body=body.encode())
        return key

    def run(self, name: str, *, scheduled: str | None = "2026-12-07T02:00:00Z", timeout: float = 120) -> dict:
        arn = self.sfn.start_execution(stateMachineArn=self.machine, name=name, input=json.dumps({"time": scheduled} if scheduled else {}))["executionArn"]
        return execution_ended(self.sfn, arn, timeout, poll=0.2)

    def ended(self) -> list[dict]:
        return [json.loads(m["Body"]) for m in drain(self.events)]

    def review_rows(self) -> list[dict]:
        rows = []
        for message in drain(self.review):
            rows.extend(json.loads(message["Body"])["rows"])
        return rows

    def status(self, key: str) -> str:
        return self.dynamodb.get_item(TableName=self.table, Key={"file": {"S": key}})["Item"]["status"]["S"]

    def report(self, run: str) -> dict:
        return json.loads(self.s3.get_object(Bucket=DATASETS, Key=f"batch/runs/{run}/report.json")["Body"].read())

    def models(self) -> list[str]:
        return [m["ModelName"] for m in self.sagemaker.list_models()["Models"]]


def iso_start_time(monkeypatch) -> None:
    """``$$.Execution.StartTime`` as Step Functions gives it, ISO 8601 text ("Format: ISO 8601", moto's
    own asl/eval/states.py): moto 5.2 puts the datetime itself there, which no task can serialise."""
    details = Execution.get_start_execution_details

    def start_execution_details(execution):
        found = details(execution)
        found.start_time = execution.start_date.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return found

    monkeypatch.setattr(Execution, "get_start_execution_details", start_execution_details)


@pytest.fixture
def night(income_app, moto_sfn, monkeypatch) -> Night:  # noqa: F811
    iso_start_time(monkeypatch)
    aws.client.cache_clear()
    yield Night(income_app, monkeypatch)
    handler.settings.cache_clear()


def test_a_night_with_two_input_files_is_predicted_once_and_its_negative_outcomes_reviewed(night: Night) -> None:
    a, b = night.put_input("2026-12-06/a.csv", FILE_A), night.put_input("b.csv", FILE_B)
    execution = night.run("night-1")
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")

    [request] = night.stand_ins.requests["createTransformJob"]
    assert request["TransformInput"]["DataSource"]["S3DataSource"] == {"S3DataType": "ManifestFile", "S3Uri": "s3://datasets/batch/runs/night-1/manifest.json"}
    assert (request["TransformInput"]["SplitType"], request["BatchStrategy"], request["TransformInput"]["ContentType"]) == ("Line", "MultiRecord", "text/csv")
    assert request["DataProcessing"] == {"JoinSource": "Input"} and request["MaxPayloadInMB"] == 6
    assert request["DataCaptureConfig"] == {"DestinationS3Uri": "s3://datasets/batch/runs/night-1/capture/", "KmsKeyId": KEY, "GenerateInferenceId": True}
    assert request["TransformOutput"]["S3OutputPath"] == "s3://datasets/batch/runs/night-1/output/" and request["TransformOutput"]["KmsKeyId"] == KEY
    # The run's model served the served-model parameter's artefact, and was deleted when the run ended.
    assert request["ModelName"] == request["TransformJobName"] and request["ModelName"].startswith("mlloop-income-batch-") and len(request["ModelName"]) <= 63
    assert night.models() == []

    rows = night.review_rows()  # three rows per task: the outcome rule's four rows predicted 0, and audit rows perhaps
    origins = {(r["origin"]["file"], r["origin"]["line"]) for r in rows}
    assert {(a, 1), (a, 3), (b, 1), (b, 2)} <= origins
    assert night.status(a) == night.status(b) == "done"
    [event] = night.ended()
    assert event["detail-type"] == RUN_ENDED and event["source"] == "mlloop.batch"
    assert event["detail"]["status"] == "Completed" and event["detail"]["rows"] == 7 and event["detail"]["rejected"] == 0
    report = night.report("night-1")
    assert report["rows"] == 7 and report["instanceSeconds"] == 400
    assert night.sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "SUCCEEDED"


def test_a_rerun_of_the_same_night_reviews_nothing_twice(night: Night) -> None:
    night.put_input("a.csv", FILE_A)
    assert night.run("night-1")["status"] == "SUCCEEDED"
    first = night.review_rows()
    night.ended()
    again = night.run("night-1-again")
    assert again["status"] == "SUCCEEDED"
    assert night.review_rows() == [] and len(night.stand_ins.requests["createTransformJob"]) == 1  # no second transform
    [event] = night.ended()
    assert event["detail"]["status"] == "NoInput" and event["detail"]["has_input"] is False
    assert first  # the first run did review
    # A manual run (no scheduled time) takes its start time, and finds nothing new either.
    assert night.run("manual", scheduled=None)["status"] == "SUCCEEDED"
    assert night.review_rows() == [] and night.ended()[0]["detail"]["status"] == "NoInput"


def test_a_file_with_malformed_lines_gets_a_rejected_lines_report_and_the_rest_goes_on(night: Night) -> None:
    bad = night.put_input("bad.csv", row(1) + "\n" + "1,2,3\n" + row(2) + "\n" + ",".join(["x"] * FEATURES) + "\n")
    good = night.put_input("good.csv", FILE_B)
    execution = night.run("night-2")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    rejected = [json.loads(line) for line in night.s3.get_object(Bucket=DATASETS, Key="batch/runs/night-2/rejected.jsonl")["Body"].read().splitlines()]
    assert sorted(r["line"] for r in rejected) == [2, 4] and all(r["file"] == bad and r["reason"] for r in rejected)
    origins = {(r["origin"]["file"], r["origin"]["line"]) for r in night.review_rows()}
    assert {(bad, 1), (bad, 3), (good, 1), (good, 2)} <= origins  # the good lines of the bad file keep their own line numbers
    [event] = night.ended()
    assert event["detail"]["status"] == "Completed" and event["detail"]["rejected"] == 2 and event["detail"]["rows"] == 5
    assert night.status(bad) == night.status(good) == "done"


def test_a_failed_transform_ends_in_a_notification_and_nothing_reviewed_and_the_files_are_retried(night: Night) -> None:
    a = night.put_input("a.csv", FILE_A)
    night.fail_transform = True
    execution = night.run("night-3")
    assert execution["status"] == "FAILED"
    assert night.review_rows() == []
    [message] = [m["Body"] for m in drain(night.inbox)]
    assert "Nightly batch run night-3 failed; no row of it was sent to review" in message and "the model could not be loaded" in message
    [event] = night.ended()
    assert event["detail"]["status"] == "Failed"
    assert night.status(a) == "failed" and night.report("night-3")["status"] == "Failed"
    assert night.models() == []  # the run's model was deleted
    # The next night retries the file and reviews it once.
    night.fail_transform = False
    assert night.run("night-4")["status"] == "SUCCEEDED"
    assert {(r["origin"]["file"], r["origin"]["line"]) for r in night.review_rows()} >= {(a, 1), (a, 3)}
    assert night.status(a) == "done"


def test_a_finish_step_that_fails_notifies_and_leaves_the_files_claimed_for_a_person_to_look_at(night: Night, monkeypatch) -> None:
    a = night.put_input("a.csv", FILE_A)

    def broken(*args, **kwargs):
        raise RuntimeError("the review queue refused the groups")

    monkeypatch.setattr(handler.nightly, "finish", broken)
    execution = night.run("night-5")
    assert execution["status"] == "FAILED"
    [message] = [m["Body"] for m in drain(night.inbox)]
    assert "Nightly batch run night-5 failed" in message and "the review queue refused the groups" in message
    [event] = night.ended()
    assert event["detail"]["status"] == "Failed" and event["detail"]["run"] == "night-5"
    assert "the review queue refused the groups" in event["detail"]["error"]["Cause"]  # (moto names every Lambda error "Exception")
    assert night.status(a) == "claimed"  # not given back: some of its rows may be in review (docs/batch.md)
