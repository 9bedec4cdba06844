"""Powertools reads these when a handler module is imported, as it does in Lambda."""

import os

import boto3
import pytest
from botocore.stub import Stubber

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MlLoopTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tests")


@pytest.fixture
def sagemaker():
    """A SageMaker client whose calls Stubber checks against botocore's model; all must be used."""
    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
