"""Batch only (``serving.endpoint: false``): the synthesised retraining state machine, executed in moto
with the retraining test's harness (tests/stacks/retraining/test_execution.py: the same stand-ins,
data and candidate), judges the candidate against the served-model parameter's artefact and
promotes it by that parameter alone: no endpoint is asked or updated."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CDK_CONTEXT, build_app
from tests.stacks.retraining.test_execution import BUNDLED, NAME, PARAMETER, RUN, SERVING_ARTEFACT, Harness, moto_sfn, weak  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def batch_only_app(tmp_path_factory):
    environment = json.loads(json.dumps(CDK_CONTEXT["environments"]["dev"]))
    environment["serving"], environment["batch"] = {"endpoint": False}, {"enabled": True}
    # The attribution and model-quality monitors read the endpoint's capture: refused batch only.
    environment["monitoring"] = {**environment.get("monitoring", {}), "explainability": {"enabled": False}, "model_quality": {"enabled": False}}
    return build_app(tmp_path_factory.mktemp("batch-only"), environment=environment)


def test_batch_only_retraining_judges_the_served_artefact_and_promotes_by_the_parameter(batch_only_app, moto_sfn, monkeypatch, weak) -> None:  # noqa: F811
    harness = Harness(batch_only_app, monkeypatch, candidate=BUNDLED, serving=weak)
    execution = harness.wait(harness.start())
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    assert output["promoted"] is True
    # The serving side of the gate is a model made from the parameter's artefact, named like its transform.
    serving = output["evaluation"]["serving"]
    assert (serving["model"], serving["artifactS3Uri"]) == (f"{NAME}-serving", SERVING_ARTEFACT)
    assert harness.sagemaker.describe_model(ModelName=f"{NAME}-serving")["PrimaryContainer"]["ModelDataUrl"] == SERVING_ARTEFACT
    assert output["evaluation"]["candidate"]["value"] < serving["value"]  # the bundled model beats the weak one on the same rows
    # Promoted by the parameter alone: the harness's own endpoint was never described into a deployment or updated.
    assert [entry for entry in harness.stand_ins.log if entry["kind"] == "update-endpoint"] == []
    assert harness.endpoint_config() == "Config-old"
    promoted = harness.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"]
    assert promoted.startswith(f"s3://models/retraining/{RUN}/") and promoted == output["promotion"]["artifactS3Uri"]
    lineage = json.loads(harness.s3.get_object(Bucket="models", Key="retraining/current.json")["Body"].read())
    assert lineage["model"]["endpointConfig"] == "" and lineage["previousEndpointConfig"] == ""
    [message] = harness.messages(wait=1)
    assert "deployed a new model" in message
