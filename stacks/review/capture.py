"""The capture pipeline: new capture objects -> capture_filter, which reads each once and feeds
review selection, profiling for the open monitors, or both.

    capture bucket --(EventBridge "Object Created")--> capture queue --> capture_filter
        --> review queue (``review``)
        --> monitoring bucket: data-quality sketches, explainability samples (``profiling``)

Built by the review pipeline when review is enabled (``ReviewPipeline``: it then also profiles), and
by the monitoring stack when review is disabled and ``profiling_target`` is not None, so there is one
capture filter per endpoint whatever is enabled. The monitoring stack's call:

    if not config.review.enabled and (profiling := profiling_target(config, storage)) is not None:
        CapturePipeline(self, "Capture", config=config, storage=storage,
                        capture_prefix=f"{CAPTURE_PREFIX}/{endpoint.endpoint_name}/{endpoint.variant_name}",
                        layer=layer, alarm_topic=serving.alerts.topic,
                        report_bucket=storage.buckets["monitoring"], profiling=profiling)

``profiling_target`` says from the configuration what is profiled (None: nothing); ``review`` is the
review queue and the band's thresholds (None: no review selection). At least one of them is given.
The function's service name (``<prefix>-capture-filter``, its metrics' dimension) is the same in both stacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from lambdas.capture.filtering import REJECTED_PREFIX
from lambdas.capture.profiling import BASELINE_PREFIX, DATA_QUALITY, EXPLAINABILITY, SAMPLES_PREFIX, SKETCHES_PREFIX
from stacks.shared.config import AppConfig
from stacks.shared.functions import AppFunction, Invocation, explain_layer
from stacks.shared.work_queue import WorkQueue
from stacks.storage.stack import StorageStack

TIMEOUT = Duration.minutes(5)


@dataclass(frozen=True)
class ReviewSelection:
    """Where selected rows go, the band's thresholds (CloudFormation parameters' values), and the
    endpoint whose capture sampling percentage is part of each row's inclusion probability (None:
    the nightly batch's rows, every one of which is predicted and read)."""

    queue: WorkQueue
    lower: str
    upper: str
    endpoint_name: str | None
    endpoint_arn: str | None


@dataclass(frozen=True)
class Profiling:
    """What capture_filter profiles, into which bucket."""

    bucket: s3.IBucket  # the monitoring bucket
    monitors: tuple[str, ...]  # DATA_QUALITY and/or EXPLAINABILITY
    sample_rows: int  # the explainability sample's rows per capture object (and per period)

    def __post_init__(self) -> None:
        if not self.monitors or not set(self.monitors) <= {DATA_QUALITY, EXPLAINABILITY}:
            raise ValueError(f"monitors must be a non-empty subset of {DATA_QUALITY}, {EXPLAINABILITY}; got {self.monitors}")


def profiling_target(config: AppConfig, storage: StorageStack) -> Profiling | None:
    """The open monitoring back end profiles captures for each monitor it runs; SageMaker's reads
    the capture files itself."""
    monitoring = config.monitoring
    if monitoring.backend != "open":
        return None
    monitors = tuple(
        name for name, enabled in ((DATA_QUALITY, monitoring.data_quality.enabled), (EXPLAINABILITY, monitoring.explainability.enabled)) if enabled
    )
    if not monitors:
        return None
    return Profiling(storage.buckets["monitoring"], monitors, monitoring.explainability.sample_rows)


class CapturePipeline(Construct):
    """The capture queue, its EventBridge rule and capture_filter with exactly the grants its parts need.

    ``events`` is the capture queue (a WorkQueue with its alarmed dead-letter queue), ``filter`` the
    function. ``report_bucket`` receives the reports of rejected capture lines (``rejected-captures/``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        storage: StorageStack,
        capture_prefix: str,
        layer: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        report_bucket: s3.IBucket,
        review: ReviewSelection | None = None,
        profiling: Profiling | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if review is None and profiling is None:
            raise ValueError("CapturePipeline needs review selection, profiling or both")
        key, prefix = storage.key, config.prefix
        self.events = WorkQueue(self, "CaptureEvents", key=key, consumer_timeout=TIMEOUT, alarm_topic=alarm_topic, purpose="New capture objects waiting for capture_filter")
        environment = {
            **selection_environment(config, review, profiling),
            "DEAD_LETTER_QUEUE_URL": self.events.dead_letter_queue.queue_url,
            "REPORT_BUCKET": report_bucket.bucket_name,
        }
        parts = [part for part, on in (("queues the predictions the review rule selects, and an audit sample, for human review", review), ("profiles every row for the monitors", profiling)) if on]
        self.filter = AppFunction(
            self,
            "CaptureFilter",
            handler="lambdas.capture.handler.handler",
            description=f"Reads new capture objects once and {' and '.join(parts)}",
            service=f"{prefix}-capture-filter",
            invocation=Invocation.queue(),
            timeout=TIMEOUT,
            # The longest capture line it reads (filtering.MAX_LINE, 24 MiB) holding 1.5 million
            # tiny rows, all selected, peaks at about 550 MB of Python objects; longer lines are
            # skipped unread. Profiling holds one batch of rows (profiling.BATCH_ROWS) at a time.
            memory_size=1024,
            environment=environment,
            key=key,
            layer=layer,
            retain_logs=config.retain_data,
            # numpy (the explain layer's) folds the data-quality sketch a batch of rows at a time.
            extra_layers=(explain_layer(self),) if profiling is not None and DATA_QUALITY in profiling.monitors else (),
        )
        function = self.filter
        function.allow(["s3:GetObject"], [storage.capture.arn_for_objects(f"{capture_prefix}/*")])
        # Without s3:ListBucket a missing object is a 403 AccessDenied, not a 404; listing the
        # capture prefix lets capture_filter tell a deleted object (parked) from a denied read (retried).
        _allow_listing(function, storage.capture, f"{capture_prefix}/*")
        function.allow(["s3:PutObject"], [report_bucket.arn_for_objects(f"{REJECTED_PREFIX}/*")])
        function.allow(["kms:Decrypt", "kms:GenerateDataKey"], [key.key_arn])
        allow_selection(function, review, profiling)
        self.events.dead_letter_queue.grant_send_messages(function.role)
        # One capture object per invocation: a huge or bad object times out or fails alone, and never
        # re-runs or parks the objects that would have shared its batch.
        self.events.consume(function, batch_size=1)
        self.events.add_rule(
            self,
            "CaptureObjectCreated",
            description="New data-capture objects of this endpoint",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [storage.capture.bucket_name]}, "object": {"key": [{"prefix": f"{capture_prefix}/"}]}},
            ),
        )
        function.acknowledge_wildcards(
            "Object-level S3 access is limited to this function's own key prefixes (the capture prefix it reads, its "
            "rejected-line reports, and, when it profiles, the current baseline it reads and the sketches and samples it "
            "writes); KMS data-key actions (GenerateDataKey*, ReEncrypt*) are on the app's key only."
        )


def selection_environment(config: AppConfig, review: ReviewSelection | None, profiling: Profiling | None) -> dict[str, str]:
    """What capture_filter's review selection and profiling read from the environment: the nightly
    batch's finish step (stacks/batch) selects, groups and profiles its rows with the same code and
    so the same settings."""
    environment = {
        "REVIEW_SELECTION": "true" if review else "false",
        "SCORE_PATH": config.model.score_path or "",
        "FEATURES_PATH": config.model.features_path,
        "PROFILING": ",".join(profiling.monitors) if profiling else "",
    }
    if review is not None:
        environment.update(
            SELECTION_RULE=config.review.rule,
            LOWER_THRESHOLD=review.lower,
            UPPER_THRESHOLD=review.upper,
            SELECTED_OUTCOME=str(config.review.outcome),
            ROWS_PER_LOOP=str(config.review.rows_per_loop),
            REVIEW_QUEUE_URL=review.queue.queue.queue_url,
            AUDIT_PERCENTAGE=str(config.review.audit_percentage),
        )
        if review.endpoint_name is not None:
            environment["ENDPOINT_NAME"] = review.endpoint_name
    if profiling is not None:
        environment.update(MONITORING_BUCKET=profiling.bucket.bucket_name, SAMPLE_ROWS=str(profiling.sample_rows))
        if EXPLAINABILITY in profiling.monitors:  # the sample's columns
            environment["FEATURE_NAMES"] = json.dumps(list(config.model.feature_names))
    return environment


def allow_selection(function: AppFunction, review: ReviewSelection | None, profiling: Profiling | None) -> None:
    """The grants of :func:`selection_environment`'s parts: the review queue, the endpoint's capture
    sampling, the profiles' baseline and folders."""
    if review is not None:
        review.queue.queue.grant_send_messages(function.role)
        if review.endpoint_arn is not None:
            # The capture sampling percentage in force (lambdas/capture/capture_sampling.py): DescribeEndpoint
            # answers it for the endpoint itself, so no grant on its configs (whose names change) is needed.
            function.allow(["sagemaker:DescribeEndpoint"], [review.endpoint_arn])
    if profiling is not None:
        writes = []
        if DATA_QUALITY in profiling.monitors:
            # The current baseline's layout; listing it tells "no baseline yet" from a denied read.
            function.allow(["s3:GetObject"], [profiling.bucket.arn_for_objects(f"{BASELINE_PREFIX}/*")])
            _allow_listing(function, profiling.bucket, f"{BASELINE_PREFIX}/*")
            writes.append(profiling.bucket.arn_for_objects(f"{SKETCHES_PREFIX}/*"))
        if EXPLAINABILITY in profiling.monitors:
            writes.append(profiling.bucket.arn_for_objects(f"{SAMPLES_PREFIX}/*"))
        function.allow(["s3:PutObject"], writes)


def _allow_listing(function: AppFunction, bucket: s3.IBucket, prefix: str) -> None:
    function.role.add_to_policy(
        iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn], conditions={"StringLike": {"s3:prefix": [prefix]}})
    )
