"""Lambda: capture-object events from the capture queue -> review groups on the review queue, and
the objects' data-quality sketches and explainability samples in the monitoring bucket.

Thin: its settings, read from the environment once, and a record function that hands each capture
object to ``filtering``. A record that can never succeed (not an S3 event, object gone, an object
too big to read within the function's timeout) is parked on the dead-letter queue with its reason;
a transient failure (S3 or SQS errors) fails just that record, so SQS retries it
(``lambdas.shared.consumer``).

Environment: ``REVIEW_SELECTION`` ("true" | "false", default true) with the rule's variables,
``AUDIT_PERCENTAGE`` (0: no audit sample), ``ENDPOINT_NAME`` (whose capture sampling percentage each
row's inclusion probability includes: ``capture_sampling``) and ``REVIEW_QUEUE_URL``; ``PROFILING`` (comma-separated subset of data-quality,explainability; empty:
none) with ``MONITORING_BUCKET``, ``SAMPLE_ROWS`` and, for explainability, ``FEATURE_NAMES`` (JSON).

No usable data-quality baseline (none computed yet, or one half-replaced): the object is still
reviewed and sampled, the miss is logged and counted (``CaptureObjectsNotProfiled``), and the record
fails so SQS delivers it again (the race at a first deploy or a baseline update passes by itself);
at its PROFILE_ATTEMPTS-th delivery it is parked with the reason, for a redrive once the baseline
exists. A retry or redrive sends the same review groups again under the same loop names, which the
starter recognises as already started, and overwrites the same sketch and sample.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.capture.capture_sampling import CaptureSampling
from lambdas.capture.events import capture_objects
from lambdas.capture.filtering import FilterSettings, ObjectGone, OutOfTime, filter_capture_object
from lambdas.capture.profiling import MONITORS, ProfilingSettings
from lambdas.capture.records import ParseOptions
from lambdas.capture.selection import Audit, SelectionRule
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SettingsError, SqsConsumer, Unfixable, from_environment, logger, metrics

# Deliveries of a record whose object could not be profiled for lack of a baseline before it is
# parked (the capture queue's dead-letter queue takes a message at its fifth receive).
PROFILE_ATTEMPTS = 3


class BaselineNotReady(RuntimeError):
    """No usable data-quality baseline: SQS delivers the record again (not unfixable: it may appear)."""


@from_environment
def settings(env: Environment) -> FilterSettings:
    config = filter_settings(env, "capture_filter")
    if config.review:
        capture_sampling()  # its variable too is checked before the first record
    return config


def filter_settings(env: Environment, function: str) -> FilterSettings:
    """Review selection and profiling as the environment sets them: the same variables for the
    capture filter and the batch run's finish step (``lambdas.batch``), so both select alike."""
    review = env.flag("REVIEW_SELECTION", True)
    profiling = _profiling(env)
    if not review and profiling is None:
        raise SettingsError(f"REVIEW_SELECTION is false and PROFILING is empty: {function} has nothing to do")
    audit_percentage = env.number("AUDIT_PERCENTAGE", 0.0) if review else 0.0
    return FilterSettings(
        options=ParseOptions(
            score_path=env.get("SCORE_PATH") or None,
            features_path=env.get("FEATURES_PATH") or "features",
            threshold=env.number("DECISION_THRESHOLD", 0.5),
        ),
        rule=SelectionRule(
            rule=env["SELECTION_RULE"],
            lower=env.number("LOWER_THRESHOLD"),
            upper=env.number("UPPER_THRESHOLD"),
            outcome=env.integer("SELECTED_OUTCOME"),
        )
        if review
        else SelectionRule(),
        rows_per_loop=env.integer("ROWS_PER_LOOP") if review else 1,
        review_queue_url=env["REVIEW_QUEUE_URL"] if review else "",
        report_bucket=env["REPORT_BUCKET"],
        review=review,
        profiling=profiling,
        audit=Audit(audit_percentage) if audit_percentage else None,
    )


@from_environment
def capture_sampling(env: Environment) -> CaptureSampling:
    """The endpoint's capture sampling fraction, asked of the endpoint every few minutes."""
    return CaptureSampling(aws.client("sagemaker"), env["ENDPOINT_NAME"])


def _profiling(env: Environment) -> ProfilingSettings | None:
    monitors = frozenset(name.strip() for name in (env.get("PROFILING") or "").split(",") if name.strip())
    if not monitors:
        return None
    if not monitors <= set(MONITORS):
        raise SettingsError(f"environment variable PROFILING is {env['PROFILING']!r}; allowed values: a comma-separated subset of {', '.join(MONITORS)}")
    sample_rows = env.integer("SAMPLE_ROWS", 500)
    if sample_rows < 1:
        raise SettingsError(f"environment variable SAMPLE_ROWS is {sample_rows}, not a positive number of rows")
    return ProfilingSettings(
        bucket=env["MONITORING_BUCKET"],
        monitors=monitors,
        sample_rows=sample_rows,
        feature_names=env.names("FEATURE_NAMES") if "explainability" in monitors else (),
    )


def filter_event(record: SQSRecord, config: FilterSettings, context: Any) -> None:
    time_left = (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
    try:
        objects = capture_objects(json.loads(record.body))
    except ValueError as error:  # includes JSONDecodeError
        raise Unfixable(f"not a capture-object event: {error}") from error
    unreadable, unprofiled = [], []
    for obj in objects:
        fraction = _capture_fraction(obj.uri) if config.review else None
        try:
            report = filter_capture_object(aws.client("s3"), aws.client("sqs"), obj, config, time_left, fraction)
        except (ObjectGone, OutOfTime) as error:  # reading it again cannot help; the event's other objects still can be read
            unreadable.append(str(error))
            continue
        profile = report.profile
        logger.info(
            "capture object filtered",
            extra={"captureObject": obj.uri, "records": report.records, "rows": report.rows, "selected": report.selected,
                   "audited": report.audited, "groups": report.groups, "rejected": report.rejected, "reasons": dict(report.reasons), "report": report.report_key,
                   "profiled": profile.rows if profile else 0, "partialRowsProfiled": profile.partial_rows if profile else 0,
                   "sketch": profile.sketch_key if profile else None, "sample": profile.sample_key if profile else None,
                   "sketchBytes": profile.sketch_bytes if profile else 0, "notProfiled": profile.not_profiled if profile else {}},
        )
        metrics.add_metric("CaptureRecords", MetricUnit.Count, report.records)
        metrics.add_metric("CaptureLinesRejected", MetricUnit.Count, report.rejected)
        if config.review:
            metrics.add_metric("RowsSelectedForReview", MetricUnit.Count, report.selected)
            if config.audit is not None:
                metrics.add_metric("RowsSelectedForAudit", MetricUnit.Count, report.audited)
        if profile is not None:
            metrics.add_metric("RowsProfiled", MetricUnit.Count, profile.rows)
            metrics.add_metric("PartialRowsProfiled", MetricUnit.Count, profile.partial_rows)
            metrics.add_metric("RowsNotProfiled", MetricUnit.Count, sum(profile.not_profiled.values()))
            if profile.sample_key:
                metrics.add_metric("RowsSampled", MetricUnit.Count, profile.sampled)
        if report.profiling_error:
            logger.warning("capture object not profiled for data quality", extra={"captureObject": obj.uri, "reason": report.profiling_error})
            metrics.add_metric("CaptureObjectsNotProfiled", MetricUnit.Count, 1)
            unprofiled.append(f"{obj.uri}: {report.profiling_error}")
    if unreadable or unprofiled:
        attempt = int(record.attributes.approximate_receive_count or 1)
        if unprofiled and not unreadable and attempt < PROFILE_ATTEMPTS:
            raise BaselineNotReady(f"not profiled (attempt {attempt} of {PROFILE_ATTEMPTS}): " + "; ".join(unprofiled))
        reasons = unreadable + [
            f"not profiled for data quality after {attempt} attempts (review selection was done; redrive once the baseline exists): {u}"
            for u in unprofiled
        ]
        raise Unfixable("; ".join(reasons))


def _capture_fraction(uri: str) -> float | None:
    """``s`` for this object's rows; when it is not known, rows go to review without an inclusion
    probability (their labels count in the unweighted figures only), and that is logged and counted."""
    sampling = capture_sampling()
    fraction = sampling.fraction()
    if fraction is None:
        logger.warning("capture sampling percentage not known: reviewed rows carry no inclusion probability",
                       extra={"captureObject": uri, "reason": sampling.unknown_reason})
        metrics.add_metric("CaptureSamplingUnknown", MetricUnit.Count, 1)
    return fraction


handler = SqsConsumer(source="capture_filter", settings=settings, record=filter_event, parked_metric="CaptureEventsParked").handler
