"""The capture sampling fraction, asked of the endpoint (DescribeEndpoint checked by Stubber against
botocore's model) at most every few minutes, and following an operator's change."""

from __future__ import annotations

import pytest

from lambdas.capture.capture_sampling import REFRESH_SECONDS, CaptureSampling
from tests.lambdas.capture.test_handler import ENDPOINT, describe_endpoint

ASKED = {"EndpointName": ENDPOINT}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_fraction_is_the_endpoints_current_percentage_asked_again_after_the_refresh(sagemaker) -> None:
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint", describe_endpoint(34), ASKED)
    stubber.add_response("describe_endpoint", describe_endpoint(100), ASKED)  # an operator raised it
    clock = Clock()
    sampling = CaptureSampling(client, ENDPOINT, clock=clock)
    assert sampling.fraction() == 0.34
    clock.now += REFRESH_SECONDS - 1
    assert sampling.fraction() == 0.34  # kept: no second call yet
    clock.now += 1
    assert sampling.fraction() == 1.0 and sampling.unknown_reason is None


@pytest.mark.parametrize("answer, reason", [
    (describe_endpoint(None), "has no data capture now"),
    (describe_endpoint(20, enabled=False), "has no data capture now"),
    (describe_endpoint(0), "captures 0 % of requests now"),
])
def test_without_capture_in_force_the_fraction_is_unknown_with_the_reason(sagemaker, answer: dict, reason: str) -> None:
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint", answer, ASKED)
    sampling = CaptureSampling(client, ENDPOINT)
    assert sampling.fraction() is None
    assert reason in sampling.unknown_reason


def test_an_endpoint_that_does_not_exist_leaves_the_fraction_unknown(sagemaker) -> None:
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint", "ValidationException", f"Could not find endpoint \"{ENDPOINT}\".", 400, expected_params=ASKED)
    sampling = CaptureSampling(client, ENDPOINT)
    assert sampling.fraction() is None and "Could not find endpoint" in sampling.unknown_reason


def test_throttling_or_a_denial_raises_so_the_capture_record_is_retried(sagemaker) -> None:
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint", "ThrottlingException", "Rate exceeded", 400, expected_params=ASKED)
    stubber.add_client_error("describe_endpoint", "AccessDeniedException", "not authorized", 400, expected_params=ASKED)
    sampling = CaptureSampling(client, ENDPOINT)
    with pytest.raises(Exception, match="ThrottlingException"):
        sampling.fraction()
    with pytest.raises(Exception, match="AccessDeniedException"):
        sampling.fraction()  # a failure is not kept: the next object asks again
