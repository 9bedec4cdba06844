"""The SageMaker stand-ins: the endpoint's scores and data capture (SageMaker's layout and format,
sampling, KMS, the served model following UpdateEndpoint), XGBoost training with the job's
hyperparameters and channels through a Step Functions ``.sync`` task, the transform's filters and
joins. (tests/stacks/retraining/test_execution.py runs the retraining state machine on them.)"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import time

import boto3
import numpy as np
import pytest
import xgboost as xgb
from moto import mock_aws

from lambdas.capture.records import ParseOptions, parse_line
from lambdas.shared.explain.tree import TreeExplainer
from local.rehearse import sagemaker
from local.rehearse.sagemaker import Endpoint, JobFailed, create_sagemaker_resource, install_sagemaker, json_path_filter, train_xgboost
from stacks.shared import default_model
from stacks.shared.default_model.captures import capture_line

REGION, ACCOUNT = sagemaker.REGION, sagemaker.ACCOUNT
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
AT = dt.datetime(2026, 11, 23, 10, 4, 5, 678000, tzinfo=dt.UTC)
TEST = np.loadtxt(default_model.TEST_CSV, delimiter=",")
BUNDLED = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "bundled").booster
KEY_FILE = re.compile(r"^capture/mlloop-dev/AllTraffic/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})-(\d{2})-(\d{3})-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.jsonl$")


def body(row: np.ndarray) -> str:
    return ",".join(repr(float(v)) for v in row)


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("models", "capture", "datasets"):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket="models", Key="bundled/model.tar.gz", Body=default_model.MODEL_ARTIFACT.read_bytes())
        yield s3


def serve(percentage: float = 100, *, capture: bool = True, artefact: str = "s3://models/bundled/model.tar.gz", key_id: str | None = None, name: str = "Config") -> str:
    """The Serving template's three resources, as the rehearsal creates them: the endpoint config's name."""
    _, model = create_sagemaker_resource("AWS::SageMaker::Model", f"Model{name}", {"ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": "xgboost", "ModelDataUrl": artefact}}, stack="serving")
    capture_config = {
        "EnableCapture": capture, "InitialSamplingPercentage": percentage, "DestinationS3Uri": "s3://capture/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json", "application/jsonlines"]},
        **({"KmsKeyId": key_id} if key_id else {}),
    }  # fmt: skip
    variant = {"VariantName": "AllTraffic", "ModelName": model["ModelName"], "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium", "InitialVariantWeight": 1.0}
    _, config = create_sagemaker_resource("AWS::SageMaker::EndpointConfig", name, {"ProductionVariants": [variant], "DataCaptureConfig": capture_config}, stack="serving")
    return config["EndpointConfigName"]


def captured(s3) -> list[tuple[str, list[str]]]:
    return [(o["Key"], s3.get_object(Bucket="capture", Key=o["Key"])["Body"].read().decode().splitlines()) for o in s3.list_objects_v2(Bucket="capture").get("Contents", [])]


def test_the_endpoint_scores_with_the_served_artefact_and_captures_in_sagemakers_layout_and_format(aws) -> None:
    arn, attributes = create_sagemaker_resource("AWS::SageMaker::Endpoint", "Endpoint", {"EndpointName": "mlloop-dev", "EndpointConfigName": serve()})
    assert attributes == {"EndpointName": "mlloop-dev"} and arn.endswith(":endpoint/mlloop-dev")
    endpoint = Endpoint(None, "mlloop-dev")
    scores = endpoint.invoke(body(TEST[0, 1:]), "text/csv", at=AT)
    assert scores == pytest.approx([float(BUNDLED.predict(xgb.DMatrix(TEST[:1, 1:]))[0])], abs=1e-7)
    assert endpoint.invoke(body(TEST[1, 1:]), at=AT + dt.timedelta(seconds=30), inference_id="request-1")  # buffered: SageMaker writes every few minutes
    assert captured(aws) == []
    [uri] = endpoint.flush()
    [(key, lines)] = captured(aws)
    assert uri == f"s3://capture/{key}"
    match = KEY_FILE.match(key)
    assert match and match.groups()[:7] == ("2026", "11", "23", "10", "04", "05", "678")  # the hour folder and the first request's mm-ss-SSS
    first, second = (json.loads(line) for line in lines)
    # Byte for byte what the repository's capture builder (samples/captures) writes for SageMaker's format.
    assert lines[0] == capture_line(TEST[0, 1:], scores[0], event_id=first["eventMetadata"]["eventId"], inference_time="2026-11-23T10:04:05Z")
    assert second["eventMetadata"]["inferenceId"] == "request-1" and list(second["eventMetadata"]) == ["eventId", "inferenceId", "inferenceTime"]
    # The deployed capture filter's parser reads both: the inference ID is the record ID that joins labels.
    parsed = [parse_line(line, number, ParseOptions()) for number, line in enumerate(lines, start=1)]
    assert [r.rejected for r in parsed] == [[], []]
    assert parsed[1].rows[0].record_id == "request-1" and parsed[0].rows[0].record_id == first["eventMetadata"]["eventId"]
    assert parsed[0].rows[0].probability == pytest.approx(scores[0])
    assert endpoint.requests == endpoint.captured == 2


def test_capture_files_follow_the_hour_and_close_after_a_few_minutes_with_sse_kms(aws) -> None:
    key_id = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    create_sagemaker_resource("AWS::SageMaker::Endpoint", "Endpoint", {"EndpointName": "mlloop-dev", "EndpointConfigName": serve(key_id=key_id)})
    endpoint = Endpoint(None, "mlloop-dev", file_seconds=300)
    start = dt.datetime(2026, 11, 23, 9, 50, tzinfo=dt.UTC)
    for minute in range(0, 20, 2):  # 09:50 .. 10:08, every two minutes
        endpoint.invoke(body(TEST[minute, 1:]), at=start + dt.timedelta(minutes=minute))
    endpoint.flush()
    files = sorted(captured(aws))
    assert [(KEY_FILE.match(k)[4], KEY_FILE.match(k)[5], len(lines)) for k, lines in files] == [("09", "50", 3), ("09", "56", 2), ("10", "00", 3), ("10", "06", 2)]
    head = aws.head_object(Bucket="capture", Key=files[0][0])
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_id


def test_sampling_captures_the_configured_share_and_no_capture_writes_nothing(aws) -> None:
    create_sagemaker_resource("AWS::SageMaker::Endpoint", "Endpoint", {"EndpointName": "mlloop-dev", "EndpointConfigName": serve(34)})
    endpoint = Endpoint(None, "mlloop-dev", seed=1)
    for i in range(len(TEST)):
        endpoint.invoke(body(TEST[i, 1:]), at=AT)
    endpoint.flush()
    lines = [line for _, file in captured(aws) for line in file]
    assert endpoint.requests == len(TEST) and len(lines) == endpoint.captured
    assert 0.2 < len(lines) / len(TEST) < 0.5  # 34 % of 114 requests, each drawn
    again = Endpoint(None, "mlloop-dev", seed=1)
    for i in range(len(TEST)):
        again.invoke(body(TEST[i, 1:]), at=AT)
    assert again.captured == endpoint.captured  # seeded: a rehearsal repeats
    create_sagemaker_resource("AWS::SageMaker::Endpoint", "Quiet", {"EndpointName": "quiet", "EndpointConfigName": serve(capture=False, name="Quiet")})
    quiet = Endpoint(None, "quiet")
    quiet.invoke(body(TEST[0, 1:]), at=AT)
    assert quiet.captured == 0 and quiet.flush() == []


def test_the_endpoint_serves_the_new_model_after_update_endpoint_and_refuses_bad_requests(aws, monkeypatch) -> None:
    weak = xgb.train({"objective": "binary:logistic", "max_depth": 1, "seed": 0}, xgb.DMatrix(TEST[:, 1:], label=TEST[:, 0]), num_boost_round=1)
    aws.put_object(Bucket="models", Key="retraining/new/model.tar.gz", Body=sagemaker.archive(weak))
    create_sagemaker_resource("AWS::SageMaker::Endpoint", "Endpoint", {"EndpointName": "mlloop-dev", "EndpointConfigName": serve()})
    endpoint = Endpoint(None, "mlloop-dev")
    before = endpoint.invoke(body(TEST[0, 1:]), at=AT)
    stand_ins = install_sagemaker(patch=monkeypatch)
    new = serve(artefact="s3://models/retraining/new/model.tar.gz", name="New")
    boto3.client("sagemaker", region_name=REGION).update_endpoint(EndpointName="mlloop-dev", EndpointConfigName=new)
    after = endpoint.invoke(body(TEST[0, 1:]), at=AT)
    assert after == pytest.approx([float(weak.predict(xgb.DMatrix(TEST[:1, 1:]))[0])]) and after != before
    assert stand_ins.log[-1] == {"kind": "update-endpoint", "endpoint": "mlloop-dev", "config": new, "rolledBack": False}
    with pytest.raises(ValueError, match="content_type 'application/x-recordio-protobuf' is not served by the endpoint stand-in; allowed: text/csv, application/jsonlines, application/json"):
        endpoint.invoke("{}", "application/x-recordio-protobuf", at=AT)
    with pytest.raises(ValueError, match=r"body is not a application/jsonlines request of the model's features \(KeyError"):
        endpoint.invoke('{"x": [1]}', "application/jsonlines", at=AT)
    with pytest.raises(ValueError, match="body has 2 features a row; the model takes 30"):
        endpoint.invoke("1,2", at=AT)
    with pytest.raises(LookupError, match="no endpoint 'missing'"):
        Endpoint(None, "missing")


def put_channels(s3) -> dict:
    train, test = default_model.TRAIN_CSV.read_bytes(), default_model.TEST_CSV.read_bytes()
    s3.put_object(Bucket="datasets", Key="run/train/part-1.csv", Body=train)
    s3.put_object(Bucket="datasets", Key="run/validation/part-1.csv", Body=test)
    return {
        "TrainingJobName": "job-1",
        "AlgorithmSpecification": {"TrainingImage": "xgboost", "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": dict(default_model.HYPERPARAMETERS, eval_metric="logloss,error"),
        "InputDataConfig": [
            {"ChannelName": name, "ContentType": "text/csv", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://datasets/run/{name}/"}}}
            for name in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://models/retraining/"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def test_training_is_xgboost_with_the_jobs_hyperparameters_on_its_channels(aws) -> None:
    request = put_channels(aws)
    artefact, metrics = train_xgboost(aws, request)
    booster = TreeExplainer.from_artifact(io.BytesIO(artefact), "trained").booster
    train = np.loadtxt(default_model.TRAIN_CSV, delimiter=",")
    params = {k: float(v) if "." in v else (int(v) if v.isdigit() else v) for k, v in default_model.HYPERPARAMETERS.items() if k != "num_round"}
    history: dict = {}
    expected = xgb.train({**params, "eval_metric": ["logloss", "error"], "nthread": 1}, xgb.DMatrix(train[:, 1:], label=train[:, 0]), 100,
                         evals=[(xgb.DMatrix(TEST[:, 1:], label=TEST[:, 0]), "validation")], evals_result=history, verbose_eval=False)  # fmt: skip
    assert np.allclose(booster.predict(xgb.DMatrix(TEST[:, 1:])), expected.predict(xgb.DMatrix(TEST[:, 1:])))
    by_name = {m["MetricName"]: m["Value"] for m in metrics}
    assert set(by_name) == {"train:logloss", "train:error", "validation:logloss", "validation:error"}
    assert by_name["validation:logloss"] == pytest.approx(history["validation"]["logloss"][-1])
    with pytest.raises(JobFailed, match="hyperparameter num_round is required"):
        train_xgboost(aws, {**request, "HyperParameters": {"objective": "binary:logistic"}})
    aws.put_object(Bucket="datasets", Key="run/validation/part-2.csv", Body=b"1,a,b\n")
    with pytest.raises(JobFailed, match=r"s3://datasets/run/validation/part-2.csv line 1 of channel validation is not numeric CSV"):
        train_xgboost(aws, request)


def test_a_sync_training_task_runs_the_job_and_answers_as_describe_training_job(aws, monkeypatch) -> None:
    request = put_channels(aws)
    stand_ins = install_sagemaker(patch=monkeypatch)
    definition = {"StartAt": "Train", "States": {"Train": {"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync", "Parameters": request, "End": True}}}
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(name="train", definition=json.dumps(definition), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    deadline = time.monotonic() + 60
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["ModelArtifacts"]["S3ModelArtifacts"] == "s3://models/retraining/job-1/output/model.tar.gz"
    assert {m["MetricName"] for m in output["FinalMetricDataList"]} == {"train:logloss", "train:error", "validation:logloss", "validation:error"}
    artefact = aws.get_object(Bucket="models", Key="retraining/job-1/output/model.tar.gz")["Body"]
    assert TreeExplainer.from_artifact(artefact, "job-1").booster.num_features() == 30
    assert stand_ins.requests["createTrainingJob"][0]["TrainingJobName"] == "job-1"


def test_transform_filters_joins_and_names_its_output_as_batch_transform_does(aws) -> None:
    sagemaker_client = boto3.client("sagemaker", region_name=REGION)
    sagemaker_client.create_model(ModelName="bundled", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "xgboost", "ModelDataUrl": "s3://models/bundled/model.tar.gz"})
    rows = "".join(f"{int(r[0])}," + body(r[1:]) + "\n" for r in TEST[:5])
    aws.put_object(Bucket="datasets", Key="eval/part/a.csv", Body=rows.encode())
    request = {
        "TransformJobName": "t", "ModelName": "bundled",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://datasets/eval/"}}, "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": "s3://datasets/scores"},
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    }  # fmt: skip
    assert sagemaker.transform(aws, sagemaker_client, request) == ["s3://datasets/scores/part/a.csv.out"]
    out = aws.get_object(Bucket="datasets", Key="scores/part/a.csv.out")["Body"].read().decode().splitlines()
    expected = BUNDLED.predict(xgb.DMatrix(TEST[:5, 1:]))
    assert [line.split(",")[0] for line in out] == [str(int(r[0])) for r in TEST[:5]]  # the label, then the score
    assert np.allclose([float(line.split(",")[1]) for line in out], expected)
    # A manifest lists objects relative to its prefix; no JoinSource writes the score alone.
    aws.put_object(Bucket="datasets", Key="batch/manifest.json", Body=json.dumps([{"prefix": "s3://datasets/eval/part/"}, "a.csv"]).encode())
    manifest = {**request, "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://datasets/batch/manifest.json"}}},
                "TransformOutput": {"S3OutputPath": "s3://datasets/batch/out/"}, "DataProcessing": {"InputFilter": "$[1:]"}}  # fmt: skip
    assert sagemaker.transform(aws, sagemaker_client, manifest) == ["s3://datasets/batch/out/a.csv.out"]
    alone = aws.get_object(Bucket="datasets", Key="batch/out/a.csv.out")["Body"].read().decode().splitlines()
    assert np.allclose([float(v) for v in alone], expected)
    aws.put_object(Bucket="models", Key="broken.tar.gz", Body=b"not a model")
    sagemaker_client.create_model(ModelName="broken", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "xgboost", "ModelDataUrl": "s3://models/broken.tar.gz"})
    with pytest.raises(JobFailed, match="not a readable .tar.gz"):
        sagemaker.transform(aws, sagemaker_client, {**request, "ModelName": "broken"})


def test_json_path_filters_of_csv_rows() -> None:
    row = ["a", "b", "c", "d"]
    assert json_path_filter(None, row) == json_path_filter("$", row) == row
    assert json_path_filter("$[1:]", row) == ["b", "c", "d"] and json_path_filter("$[0,-1]", row) == ["a", "d"]
    assert json_path_filter("$[1:3]", row) == ["b", "c"] and json_path_filter("$[2]", row) == ["c"]
    with pytest.raises(JobFailed, match=r"filter '\$.features' is not one the stand-in reads"):
        json_path_filter("$.features", row)


def test_a_transform_with_data_capture_writes_manifests_and_inference_ids_the_batch_parser_reads(aws) -> None:
    from lambdas.capture.records import batch_capture_part, manifest_uris, parse_joined_line

    sagemaker_client = boto3.client("sagemaker", region_name=REGION)
    sagemaker_client.create_model(ModelName="bundled", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "xgboost", "ModelDataUrl": "s3://models/bundled/model.tar.gz"})
    aws.put_object(Bucket="datasets", Key="batch/input/night.csv", Body="".join(body(r[1:]) + "\n" for r in TEST[:4]).encode())
    request = {
        "TransformJobName": "night", "ModelName": "bundled",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://datasets/batch/input/"}}, "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": "s3://datasets/batch/runs/1/output/"},
        "DataProcessing": {"JoinSource": "Input"},
        "DataCaptureConfig": {"DestinationS3Uri": "s3://capture/batch/runs/1/capture", "GenerateInferenceId": True},
    }  # fmt: skip
    now = dt.datetime(2026, 11, 24, 2, 3, tzinfo=dt.UTC)
    [output] = sagemaker.transform(aws, sagemaker_client, request, now=now)
    keys = sorted(o["Key"] for o in aws.list_objects_v2(Bucket="capture", Prefix="batch/runs/1/capture/")["Contents"])
    assert [batch_capture_part(k) for k in keys] == ["input", "output"] and all("/2026/11/24/02/" in k for k in keys)
    named = {batch_capture_part(k): manifest_uris(aws.get_object(Bucket="capture", Key=k)["Body"].read()) for k in keys}
    assert named == {"input": ["s3://datasets/batch/input/night.csv"], "output": [output]}
    lines = aws.get_object(Bucket="datasets", Key="batch/runs/1/output/night.csv.out")["Body"].read().decode().splitlines()
    parsed = [parse_joined_line(line, i, ParseOptions(), 30, "batch/input/night.csv", i) for i, line in enumerate(lines, start=1)]
    assert all(not p.rejected for p in parsed)
    rows = [p.rows[0] for p in parsed]
    assert len({r.record_id for r in rows}) == 4 and all(r.inference_time == "2026-11-24T02:03:00Z" for r in rows)
    assert np.allclose([r.probability for r in rows], BUNDLED.predict(xgb.DMatrix(TEST[:4, 1:])))


def test_a_json_lines_model_is_answered_and_captured_as_the_capture_parser_reads_it(aws) -> None:
    """The configuration's model.features_path / score_path (the jsonl environment's "features" and "score")."""
    create_sagemaker_resource("AWS::SageMaker::Endpoint", "Endpoint", {"EndpointName": "mlloop-dev", "EndpointConfigName": serve()})
    endpoint = Endpoint(None, "mlloop-dev", features_path="features", score_path="score")
    request = "\n".join(json.dumps({"features": [float(v) for v in row]}) for row in TEST[:2, 1:])
    scores = endpoint.invoke(request, "application/jsonlines", at=AT, inference_id="r-1")
    assert scores == pytest.approx([float(v) for v in BUNDLED.predict(xgb.DMatrix(TEST[:2, 1:]))], abs=1e-7)
    document = endpoint.invoke(json.dumps({"instances": [{"features": [float(v) for v in TEST[2, 1:]]}]}), "application/json", at=AT)
    assert document == pytest.approx([float(BUNDLED.predict(xgb.DMatrix(TEST[2:3, 1:]))[0])], abs=1e-7)
    endpoint.flush()
    [(_, lines)] = captured(aws)
    first = json.loads(lines[0])["captureData"]
    assert first["endpointInput"] == {"observedContentType": "application/jsonlines", "mode": "INPUT", "data": request, "encoding": "JSON"}
    assert first["endpointOutput"]["observedContentType"] == "application/jsonlines" and first["endpointOutput"]["encoding"] == "JSON"
    options = ParseOptions(score_path="score", features_path="features")
    parsed = [parse_line(line, number, options) for number, line in enumerate(lines, start=1)]
    assert [r.rejected for r in parsed] == [[], []]
    assert [row.probability for result in parsed for row in result.rows] == pytest.approx(scores + document)
    assert [row.record_id for row in parsed[0].rows] == ["r-1", "r-1"] and parsed[0].rows[1].row_index == 1
