"""The endpoint's capture sampling fraction ``s``: the share of requests SageMaker writes to the
capture files, which is part of every reviewed row's inclusion probability (``selection``).

    DescribeEndpoint(EndpointName) -> DataCaptureConfig.CurrentSamplingPercentage / 100

``DataCaptureConfig`` of DescribeEndpoint is "the currently active data capture configuration used
by your Endpoint" and ``CurrentSamplingPercentage`` "the percentage of requests being captured"
(SageMaker API reference, DataCaptureConfigSummary; botocore's sagemaker model has it as a required
integer 0-100). One call, on the endpoint's own ARN, whatever the config is named.

Why ask the endpoint rather than read the deployed value from the environment: the percentage is a
CloudFormation parameter of the serving stack (``CaptureSamplingPercentage``) that operators change
without redeploying the review stage, and retraining's deploy copies the live endpoint config, so
only the endpoint knows the value in force. It is asked at most every ``refresh_seconds`` (five
minutes by default), as ``lambdas/shared/explain/deployed_model.py`` follows the model.

What this cannot see: an object read long after a change of the percentage (a redrive from the
dead-letter queue days later), or rows captured during the minutes an endpoint update takes, get
the percentage in force when the object is read. The error is confined to rows captured around a
change; docs/human-review.md ("Audit sample") says so.

Unknown (None, with ``unknown_reason``): the endpoint does not exist (ValidationException), has no
data capture, or reports 0 %. Rows are then still reviewed, with no inclusion probability, and
their labels count only in the unweighted figures. Other errors (throttling, a denial) raise, so
the capture record is retried rather than labelled without its probability.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

REFRESH_SECONDS = 300.0


class CaptureSampling:
    def __init__(self, sagemaker: Any, endpoint_name: str, *, refresh_seconds: float = REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._sagemaker = sagemaker
        self._endpoint = endpoint_name
        self._refresh = refresh_seconds
        self._clock = clock
        self._checked_at: float | None = None
        self._fraction: float | None = None
        self.unknown_reason: str | None = None

    def fraction(self) -> float | None:
        """``s`` in (0, 1], or None when it is not known (``unknown_reason`` says why)."""
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._refresh:
            self._fraction, self.unknown_reason = self._describe()
            self._checked_at = now
        return self._fraction

    def _describe(self) -> tuple[float | None, str | None]:
        try:
            endpoint = self._sagemaker.describe_endpoint(EndpointName=self._endpoint)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ValidationException":  # not found is a ValidationException
                raise
            return None, f"DescribeEndpoint {self._endpoint}: {error.response['Error'].get('Message', '')}"
        capture = endpoint.get("DataCaptureConfig") or {}
        percentage = capture.get("CurrentSamplingPercentage")
        if not capture.get("EnableCapture") or isinstance(percentage, bool) or not isinstance(percentage, (int, float)):
            return None, f"endpoint {self._endpoint} has no data capture now"
        if not 0 < percentage <= 100:
            return None, f"endpoint {self._endpoint} captures {percentage} % of requests now"
        return percentage / 100.0, None
