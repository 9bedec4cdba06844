"""Fixtures for the Lambda tests (Powertools' variables are set in tests/conftest.py)."""

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.shared import aws
from tests.lambdas.aws_env import REGION

_real_client = aws.client  # tests may monkeypatch aws.client; the cache belongs to this one


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch):
    """Fake credentials, one region, moto for every AWS call, fresh clients."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    _real_client.cache_clear()
    with mock_aws():
        yield
    _real_client.cache_clear()


@pytest.fixture
def sagemaker():
    """A SageMaker client whose calls Stubber checks against botocore's model; all must be used."""
    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
