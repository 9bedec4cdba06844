"""Lambda: the nightly batch run's steps, called by its state machine with ``{"step": ...}``.

    {"step": "plan", "run": <run id>, "time": <ISO time>}
        -> {"run", "files", "rows", "rejected", "manifest_uri", "has_input"}
    {"step": "finish", <the plan's output>, "transform": <DescribeTransformJob output>}
        -> the run's summary ("Batch Run Ended" detail, status Completed)
    {"step": "fail", <the plan's output>, "error": {"Error", "Cause"}}
        -> the run's summary (status Failed); nothing is reviewed

What each step does is in ``nightly``. A wrong event raises ValueError naming the key and what it
takes, so the execution fails with that message.

Environment: ``DATA_BUCKET`` (input files and runs), ``INPUT_PREFIX`` (default ``batch/input/``),
``RUNS_PREFIX`` (default ``batch/runs/``), ``MANIFEST_TABLE``, ``FEATURE_COUNT`` (the model's
features), ``CONTENT_TYPE`` (``text/csv``, the only one allowed for now), ``MAX_PAYLOAD_MB``
(default 6, the transform's MaxPayloadInMB), and the capture filter's review and profiling
variables (``lambdas.capture.handler.filter_settings``: the same selection, groups and profiling).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.batch import nightly
from lambdas.capture.handler import filter_settings
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SettingsError, from_environment, logger, metrics

STEPS = ("plan", "finish", "fail")


@from_environment
def settings(env: Environment) -> nightly.BatchSettings:
    content_type = env.get("CONTENT_TYPE") or "text/csv"
    if content_type not in nightly.CONTENT_TYPES:
        raise SettingsError(f"environment variable CONTENT_TYPE is {content_type!r}; allowed values: {', '.join(nightly.CONTENT_TYPES)}")
    feature_count = env.integer("FEATURE_COUNT")
    if feature_count < 1:
        raise SettingsError(f"environment variable FEATURE_COUNT is {feature_count}, not a positive number of features")
    payload = env.number("MAX_PAYLOAD_MB", 6.0)
    # "The value of MaxPayloadInMB cannot be greater than 100 MB"; 0 is for HTTP chunked encoding, which
    # SageMaker's built-in algorithms do not support (botocore's sagemaker model, CreateTransformJob).
    if not 0 < payload <= 100:
        raise SettingsError(f"environment variable MAX_PAYLOAD_MB is {payload}, not in (0, 100]")
    prefixes = {name: env.get(name) or default for name, default in (("INPUT_PREFIX", "batch/input/"), ("RUNS_PREFIX", "batch/runs/"))}
    for name, value in prefixes.items():
        if not value.endswith("/"):
            raise SettingsError(f"environment variable {name} is {value!r}; it must end with '/'")
    return nightly.BatchSettings(
        data_bucket=env["DATA_BUCKET"],
        input_prefix=prefixes["INPUT_PREFIX"],
        runs_prefix=prefixes["RUNS_PREFIX"],
        manifest_table=env["MANIFEST_TABLE"],
        feature_count=feature_count,
        max_payload_bytes=int(payload * 1024 * 1024),
        filter=filter_settings(env, "batch finish step"),
    )


@logger.inject_lambda_context
@metrics.log_metrics
def step(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not isinstance(event, dict) or event.get("step") not in STEPS:
        given = event.get("step") if isinstance(event, dict) else event
        raise ValueError(f"event key 'step' is {given!r}; allowed values: {', '.join(STEPS)}")
    config = settings()
    name = event["step"]
    run = nightly.check_run(event)
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    if name == "plan":
        time = event.get("time")
        if not isinstance(time, str) or nightly.parse_time(time) is None:
            raise ValueError(f"event key 'time' is {time!r}: the run's ISO 8601 time is required")
        result = nightly.plan(s3, dynamodb, config, run, time)
        logger.info("batch run planned", extra={k: v for k, v in result.items() if k != "files"} | {"fileCount": len(result["files"])})
        metrics.add_metric("BatchRowsRejected", MetricUnit.Count, result["rejected"])
        if not result["has_input"]:
            metrics.add_metric("BatchRunsWithoutInput", MetricUnit.Count, 1)
        return result
    if name == "finish":
        time_left = (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
        summary = nightly.finish(s3, aws.client("sqs"), dynamodb, config, event, time_left)
        logger.info("batch run finished", extra=summary)
        metrics.add_metric("BatchRunsCompleted", MetricUnit.Count, 1)  # the overdue alarm's metric
        metrics.add_metric("BatchRowsPredicted", MetricUnit.Count, summary["rows"])
        # The plan counted the input lines it rejected; these are the output lines the parser rejected.
        metrics.add_metric("BatchRowsRejected", MetricUnit.Count, summary["rejectedOutputRows"])
        metrics.add_metric("RowsSelectedForReview", MetricUnit.Count, summary["selected"])
        metrics.add_metric("RowsSelectedForAudit", MetricUnit.Count, summary["audited"])
        metrics.add_metric("RowsProfiled", MetricUnit.Count, summary["profiled"])
        return summary
    summary = nightly.fail(s3, dynamodb, config, event)
    logger.warning("batch run failed", extra=summary)
    metrics.add_metric("BatchRunsFailed", MetricUnit.Count, 1)
    return summary
