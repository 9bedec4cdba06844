"""Which model explains a record: the one the endpoint serves now, found through SageMaker
(Stubber, checked against botocore's model) and read from S3 (moto); a retraining swaps it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import pickle
import tarfile

import boto3
import numpy as np
import pytest
import xgboost as xgb
from botocore.stub import Stubber

from lambdas.shared.explain.deployed_model import DeployedModel
from lambdas.shared.explain.results import Unexplainable
from lambdas.shared.explain.tree import TreeExplainer
from stacks.shared import default_model
from stacks.shared.default_model import train
from tests.lambdas.aws_env import ACCOUNT, REGION

BUCKET = "app-models"
BUNDLED_KEY = "bundled/abc/model.tar.gz"
RETRAINED_KEY = "retraining/run-1/mlloop-dev-run-1/output/model.tar.gz"
NOW = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)


def rows() -> list[list[str]]:
    with default_model.TEST_CSV.open() as stream:
        return [record[1:] for record in csv.reader(stream)][:5]


def retrained_artifact(tmp_path) -> tuple[bytes, xgb.Booster]:
    """What a retraining run leaves: another booster (fewer, deeper trees) in a model.tar.gz."""
    data = np.loadtxt(default_model.TRAIN_CSV, delimiter=",")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.5, "seed": 1, "nthread": 1}, xgb.DMatrix(data[:, 1:], label=data[:, 0]), num_boost_round=12)
    path = tmp_path / "model.tar.gz"
    train.write_model_tarball(booster, path)
    return path.read_bytes(), booster


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(mocked_aws, sagemaker):
    client, stubber = sagemaker
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key=BUNDLED_KEY, Body=default_model.MODEL_ARTIFACT.read_bytes())
    clock = Clock()
    model = DeployedModel(client, s3, endpoint_name="mlloop-dev", variant_name="AllTraffic", refresh_seconds=60, load=TreeExplainer.from_artifact, clock=clock)
    return model, stubber, s3, clock


def expect_served(stubber: Stubber, config: str, model: str, container: dict | None = None, *, variants: tuple[str, ...] = ("AllTraffic",), containers: list | None = None) -> None:
    stubber.add_response(
        "describe_endpoint",
        {"EndpointName": "mlloop-dev", "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/mlloop-dev", "EndpointConfigName": config,
         "EndpointStatus": "InService", "CreationTime": NOW, "LastModifiedTime": NOW},
        {"EndpointName": "mlloop-dev"},
    )
    stubber.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": config, "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{config.lower()}",
         "ProductionVariants": [{"VariantName": v, "ModelName": model} for v in variants], "CreationTime": NOW},
        {"EndpointConfigName": config},
    )
    if variants == ("AllTraffic",) or len(variants) == 1:
        described = {"ModelName": model, "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{model.lower()}", "CreationTime": NOW}
        described.update({"Containers": containers} if containers else {"PrimaryContainer": container})
        stubber.add_response("describe_model", described, {"ModelName": model})


def image(uri: str) -> dict:
    return {"Image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.2-0", "ModelDataUrl": uri}


def margins(booster: xgb.Booster) -> np.ndarray:
    return booster.predict(xgb.DMatrix(np.asarray(rows(), dtype=np.float32)), output_margin=True)


def test_records_are_explained_by_the_served_model_and_after_a_retraining_by_the_new_one(world, tmp_path) -> None:
    model, stubber, s3, clock = world
    expect_served(stubber, "ConfigA1B2-xYz", "ModelC3D4-aBc", image(f"s3://{BUCKET}/{BUNDLED_KEY}"))
    first = model.explainer()
    assert first.model_name == "ModelC3D4-aBc"
    bundled = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "reference").booster
    for result, margin in zip(first.explain(rows()), margins(bundled)):
        assert abs(result.base_value + sum(result.contributions) - float(margin)) < 1e-4

    clock.now = 30  # within the refresh period: SageMaker is not asked (Stubber has nothing queued)
    assert model.explainer() is first

    retrained, booster = retrained_artifact(tmp_path)
    s3.put_object(Bucket=BUCKET, Key=RETRAINED_KEY, Body=retrained)
    clock.now = 61  # the retraining's UpdateEndpoint has finished: the endpoint serves its model
    expect_served(stubber, "mlloop-dev-run-1", "mlloop-dev-run-1", image(f"s3://{BUCKET}/{RETRAINED_KEY}"))
    second = model.explainer()
    assert second.model_name == "mlloop-dev-run-1"
    explained = second.explain(rows())
    for result, margin in zip(explained, margins(booster)):
        assert abs(result.base_value + sum(result.contributions) - float(margin)) < 1e-4
    assert [r.contributions for r in explained] != [r.contributions for r in first.explain(rows())]

    clock.now = 122  # same model: described again, not downloaded again
    s3.delete_object(Bucket=BUCKET, Key=RETRAINED_KEY)
    expect_served(stubber, "mlloop-dev-run-1", "mlloop-dev-run-1", image(f"s3://{BUCKET}/{RETRAINED_KEY}"))
    assert model.explainer() is second


def test_passing_failures_are_retried_and_lasting_ones_remembered(world) -> None:
    model, stubber, s3, clock = world
    stubber.add_client_error("describe_endpoint", service_error_code="ThrottlingException", http_status_code=400, expected_params={"EndpointName": "mlloop-dev"})
    with pytest.raises(Unexplainable, match=r"could not find the endpoint's model \(ThrottlingException") as raised:
        model.explainer()
    assert raised.value.transient
    expect_served(stubber, "c", "m-missing", image(f"s3://{BUCKET}/not-yet/model.tar.gz"))  # asked again at once
    with pytest.raises(Unexplainable, match=r"could not read the artefact s3://app-models/not-yet/model.tar.gz of model m-missing \(NoSuchKey"):
        model.explainer()
    s3.put_object(Bucket=BUCKET, Key="not-yet/model.tar.gz", Body=default_model.MODEL_ARTIFACT.read_bytes())
    clock.now = 60
    expect_served(stubber, "c", "m-missing", image(f"s3://{BUCKET}/not-yet/model.tar.gz"))
    assert model.explainer().model_name == "m-missing"  # the S3 failure was not remembered

    clock.now = 120
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = pickle.dumps(["booster"])
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key="pickled/model.tar.gz", Body=buffer.getvalue())
    expect_served(stubber, "c2", "m-pickled", image(f"s3://{BUCKET}/pickled/model.tar.gz"))
    with pytest.raises(Unexplainable, match="is a Python pickle"):
        model.explainer()
    s3.delete_object(Bucket=BUCKET, Key="pickled/model.tar.gz")
    clock.now = 180
    expect_served(stubber, "c2", "m-pickled", image(f"s3://{BUCKET}/pickled/model.tar.gz"))
    with pytest.raises(Unexplainable, match="is a Python pickle"):  # remembered: not read again
        model.explainer()


def test_endpoint_shapes_the_app_cannot_explain_say_so_and_uncompressed_models_load(world) -> None:
    model, stubber, s3, clock = world
    expect_served(stubber, "c", "m", variants=("Blue", "Green"))
    with pytest.raises(Unexplainable, match="endpoint mlloop-dev has no variant AllTraffic \\(it has Blue, Green\\)"):
        model.explainer()
    expect_served(stubber, "c", "pipeline", containers=[image("s3://b/one.tar.gz"), image("s3://b/two.tar.gz")])
    with pytest.raises(Unexplainable, match="model pipeline is an inference pipeline of 2 containers"):
        model.explainer()

    clock.now = 60
    raw = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "x").booster.save_raw("ubj")
    s3.put_object(Bucket=BUCKET, Key="uncompressed/xgboost-model", Body=bytes(raw))
    source = {"S3DataSource": {"S3Uri": f"s3://{BUCKET}/uncompressed/", "S3DataType": "S3Prefix", "CompressionType": "None"}}
    expect_served(stubber, "c3", "m-raw", {"Image": "img", "ModelDataSource": source})
    assert model.explainer().model_name == "m-raw"


def test_batch_only_the_served_model_parameter_names_the_model_and_a_promotion_swaps_it(mocked_aws, tmp_path) -> None:
    """No endpoint (serving.endpoint false): the model the nightly run made from the parameter explains its rows."""
    s3 = boto3.client("s3", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key=BUNDLED_KEY, Body=default_model.MODEL_ARTIFACT.read_bytes())
    ssm.put_parameter(Name="/mlloop/income/serving/model-data-url", Value=f"s3://{BUCKET}/{BUNDLED_KEY}", Type="String")
    clock = Clock()
    # No SageMaker client call may happen: a client with nothing stubbed fails any call.
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker):
        model = DeployedModel(sagemaker, s3, served_model_parameter=(ssm, "/mlloop/income/serving/model-data-url"), refresh_seconds=60,
                              load=TreeExplainer.from_artifact, clock=clock)
        first = model.explainer()
        assert first.model_name == f"s3://{BUCKET}/{BUNDLED_KEY}"
        bundled = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "reference").booster
        for result, margin in zip(first.explain(rows()), margins(bundled)):
            assert abs(result.base_value + sum(result.contributions) - float(margin)) < 1e-4

        retrained, booster = retrained_artifact(tmp_path)
        s3.put_object(Bucket=BUCKET, Key=RETRAINED_KEY, Body=retrained)
        ssm.put_parameter(Name="/mlloop/income/serving/model-data-url", Value=f"s3://{BUCKET}/{RETRAINED_KEY}", Type="String", Overwrite=True)
        clock.now = 30
        assert model.explainer() is first  # within the refresh period
        clock.now = 61  # retraining's Promote wrote the parameter: the next nights use its model
        second = model.explainer()
        assert second.model_name == f"s3://{BUCKET}/{RETRAINED_KEY}"
        for result, margin in zip(second.explain(rows()), margins(booster)):
            assert abs(result.base_value + sum(result.contributions) - float(margin)) < 1e-4

    ssm.delete_parameter(Name="/mlloop/income/serving/model-data-url")
    clock.now = 122
    with pytest.raises(Unexplainable, match=r"could not read the served model's parameter /mlloop/income/serving/model-data-url \(ParameterNotFound") as raised:
        model.explainer()
    assert raised.value.transient


def test_a_deployed_model_has_exactly_one_source() -> None:
    for sources in ({}, {"endpoint_name": "e", "variant_name": "v", "served_model_parameter": (None, "/p")}):
        with pytest.raises(ValueError, match="give exactly one"):
            DeployedModel(None, None, refresh_seconds=0, load=TreeExplainer.from_artifact, **sources)
