"""Lambda: the open back end's data-quality run, an EventBridge Scheduler target.

Each run merges the sketches the capture Lambda wrote for the period's hours
(``data-quality/sketches/<hour>/<capture key>.json``), compares them with the baseline in
``data-quality/current/`` (``lambdas.monitoring.drift.evaluate``: drift, completeness, types) and writes

- ``statistics.json``, ``constraint_violations.json`` and ``report.html`` into the run's report folder;
- ``latest.json`` (the watchdog's run marker);
- per column ``feature_baseline_drift_<column>`` (the distance) and
  ``feature_baseline_drift_significant_<column>`` (the distance when above the KS critical value, else
  0; the drift alarms watch it), by Endpoint and MonitoringSchedule, and ``MonitoringRuns``;
- the "Monitoring Run Ended" event.

Sketches are read a window at a time and merged as they arrive, so memory does not grow with the
number of capture objects. A sketch that cannot be used (not a sketch, another baseline, another
feature count) is set aside with its reason, listed in the report and the event, and the rest of
the period is evaluated. A period without data is a Completed run that says why, with no drift
metric. A missing or unusable baseline is a Failed run (the event says why); an S3 or EventBridge
error fails the invocation, and the scheduler retries it (the run's files are overwritten).

Late sketches. A capture object whose profiling is retried (the capture queue redelivers it after
its visibility timeout) can write its sketch after its period's run has read that period. So each
run, after its own period, looks again at the ``LOOKBACK_PERIODS`` periods before it: each report
records what its run listed (``statistics.json`` ``open_monitor.inputs``: the number of sketch files
and a fingerprint of their keys and ETags); when the period's sketch folders now list something
else (a sketch added or rewritten), the period is evaluated again and its report rewritten, noting
it (``open_monitor.re_evaluated``, the page's header, the event's ``exitMessage``), with its event
(the period's run name) and metrics (at the period's own run time). That costs a GET of each
earlier report and a LIST of each of its hours a run. A period without a report (its run failed:
the dead-letter queue and the watchdog say so), or whose report predates the fingerprint, or that
was evaluated against another baseline than the current one (its sketches were profiled for that
one) is left as it is. A re-evaluation that fails is logged and tried again by the next run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from botocore.exceptions import ClientError

from lambdas.monitoring.drift import report
from lambdas.monitoring.drift.baseline import CONSTRAINTS_FILE, STATISTICS_FILE, Baseline, BaselineError, load
from lambdas.monitoring.drift.evaluate import DRIFT_METRIC, SIGNIFICANT_DRIFT_METRIC, VIOLATIONS_FILE, Evaluation, evaluate
from lambdas.monitoring.open import common
from lambdas.monitoring.runs import runs
from lambdas.shared import aws
from lambdas.shared.consumer import logger

MONITOR = "data-quality"  # the event's "monitor", and the monitor's folder in the monitoring bucket
SKETCHES_PREFIX = f"{MONITOR}/sketches"
CURRENT_PREFIX = f"{MONITOR}/current"
# How many earlier periods each run evaluates again when their sketches changed after their report.
# The capture queue redelivers an object whose profiling failed after its 1,800 s visibility timeout,
# up to 5 receives: its sketch can be written about 2 h after the object, and an object of hour H
# comes up to the end of H, so up to about H+3, two periods after the run at H+1:20 that read hour H.
# Six hourly periods cover that twice over (at longer cadences, days).
LOOKBACK_PERIODS = 6


def load_baseline(s3: Any, bucket: str) -> tuple[Baseline, dict[str, Any]]:
    """The current baseline and its ``statistics.json`` (the report plots it); ``BaselineError`` says
    what is missing or wrong."""
    documents = common.read_baseline(s3, bucket, CURRENT_PREFIX, (STATISTICS_FILE, CONSTRAINTS_FILE), BaselineError)
    return load(documents[STATISTICS_FILE], documents[CONSTRAINTS_FILE]), documents[STATISTICS_FILE]


def sketch_prefixes(period: common.Period) -> list[str]:
    return [f"{SKETCHES_PREFIX}/{hour}/" for hour in period.hours]


def evaluate_period(s3: Any, bucket: str, baseline: Baseline, period: common.Period) -> tuple[Evaluation, common.Listing]:
    """The period's evaluation and what was listed (the number of sketch files and their fingerprint)."""
    listing = common.Listing()
    deleted: list[tuple[str, str]] = []

    def sketches():
        keys = common.list_keys(s3, bucket, sketch_prefixes(period), listing)
        for key, body in common.read_objects(s3, bucket, keys):
            name = key.removeprefix(f"{SKETCHES_PREFIX}/")
            if body is None:
                deleted.append((name, "deleted between listing and reading"))
                continue
            yield name, body

    evaluation = evaluate(baseline, sketches())
    if deleted:
        no_data = evaluation.no_data
        if no_data and listing.files == len(deleted):  # evaluate() saw no file at all
            no_data = f"{listing.files} sketch file(s) listed, all deleted before they could be read"
        evaluation = dataclasses.replace(evaluation, skipped=(*evaluation.skipped, *deleted), no_data=no_data)
    return evaluation, listing


def drift_metrics(evaluation: Evaluation) -> dict[str, float]:
    """Both drift metrics of every column the period could compare (none for a period without data)."""
    values = {}
    for drift in evaluation.drift:
        if drift.distance is None:
            continue
        values[DRIFT_METRIC.format(feature=drift.name)] = drift.distance
        values[SIGNIFICANT_DRIFT_METRIC.format(feature=drift.name)] = drift.significant_distance
    return values


def out_of_range(evaluation: Evaluation) -> dict[str, int]:
    """Column -> values beyond the float32 range (counted apart, as infinities are), where there are any."""
    found = {}
    for feature in evaluation.statistics.get("features", []):
        count = feature.get("open_monitor", {}).get("num_out_of_range", 0)
        if count:
            found[feature["name"]] = count
    return found


def exit_message(evaluation: Evaluation, outcome: str, sketch_files: int) -> str:
    rows = evaluation.statistics["dataset"]["item_count"]
    violations = evaluation.violations["violations"]
    if evaluation.no_data:
        parts = [f"no data: {evaluation.no_data}"]
    elif violations:
        features = {v["feature_name"] for v in violations}
        parts = [f"{outcome}: {len(violations)} violation(s) in {len(features)} column(s); {rows} rows from {sketch_files} sketch file(s)"]
    else:
        parts = [f"{outcome}: no violations; {rows} rows from {sketch_files} sketch file(s)"]
    if evaluation.too_few:
        parts.append(f"drift: {evaluation.too_few}")
    rejected = evaluation.statistics.get("open_monitor", {}).get("rows_rejected") or {}
    if rejected and not evaluation.no_data:
        parts.append("rows not profiled: " + "; ".join(f"{reason}: {n}" for reason, n in rejected.items()))
    outside = out_of_range(evaluation)
    if outside:
        parts.append("values beyond the float32 range, counted apart: " + "; ".join(f"{name}: {n}" for name, n in outside.items()))
    if evaluation.skipped:
        parts.append(common.set_aside_message(evaluation.skipped))
    return common.clip("; ".join(parts))


def run(event: Any, settings: common.EvaluatorSettings, s3: Any, events: Any) -> runs.RunEnded:
    """One scheduled run, start to end (see the module docstring)."""
    period = common.period(event, settings.cadences)
    identity = common.identity(MONITOR, settings, period)
    try:
        baseline, baseline_statistics = load_baseline(s3, settings.bucket)
    except BaselineError as error:
        return common.failed(s3, events, settings, period, identity, str(error))

    evaluation, listing = evaluate_period(s3, settings.bucket, baseline, period)
    ended = report_period(s3, settings, period, evaluation, listing, baseline_statistics)
    common.finish(s3, events, settings, period, ended, drift_metrics(evaluation))
    look_back(s3, events, settings, period, baseline, baseline_statistics, by=identity["job_name"])
    return ended


def report_period(
    s3: Any,
    settings: common.EvaluatorSettings,
    period: common.Period,
    evaluation: Evaluation,
    listing: common.Listing,
    baseline_statistics: dict[str, Any],
    late: dict[str, Any] | None = None,
) -> runs.RunEnded:
    """Write the period's files (``late``: the note of a re-evaluation) and return its event."""
    prefix = common.report_prefix(MONITOR, settings, period)
    note = late_note(late) if late is not None else None
    violations = evaluation.violations["violations"]
    outcome = "CompletedWithViolations" if violations else "Completed"
    custom = {**evaluation.statistics.get("open_monitor", {}), "inputs": {"sketch_files": listing.files, "fingerprint": listing.fingerprint}}
    if late is not None:
        custom["re_evaluated"] = late
    statistics = {**evaluation.statistics, "open_monitor": custom}
    page = report.render(
        evaluation,
        baseline_statistics,
        report.Period(
            environment=f"{settings.endpoint}, {settings.schedule}", window=period.describe(), sketch_files=listing.files,
            re_evaluated=note,
        ),
    )  # fmt: skip
    uris = common.write_files(
        s3,
        settings.bucket,
        prefix,
        {
            STATISTICS_FILE: orjson.dumps(statistics, option=orjson.OPT_INDENT_2),
            VIOLATIONS_FILE: orjson.dumps(evaluation.violations, option=orjson.OPT_INDENT_2),
            report.REPORT_FILE: page,
        },
    )
    return common.completed(
        common.identity(MONITOR, settings, period), settings, prefix, uris[report.REPORT_FILE],
        outcome=outcome, message=exit_message(evaluation, outcome, listing.files), late=note, violations=violations,
    )  # fmt: skip


def late_note(late: dict[str, Any]) -> str:
    return (
        f"re-evaluated with late data at {late['at']} by {late['by']}: {late['sketch_files']} sketch file(s), "
        f"{late['sketch_files_before']} when last evaluated"
    )


def look_back(
    s3: Any, events: Any, settings: common.EvaluatorSettings, period: common.Period, baseline: Baseline, baseline_statistics: dict[str, Any], *, by: str
) -> list[str]:
    """Evaluate again each of the ``LOOKBACK_PERIODS`` periods before ``period`` whose sketches
    changed after its report (the module docstring); returns the run names of those re-evaluated."""
    done = []
    for earlier in common.earlier_periods(period, LOOKBACK_PERIODS):
        try:
            if revisit(s3, events, settings, earlier, baseline, baseline_statistics, by=by):
                done.append(common.job_name(settings.schedule, earlier))
        except Exception:  # noqa: BLE001 - this run's own period is reported; the next run tries again
            logger.exception("re-evaluating an earlier period failed", extra={"period": earlier.describe()})
    return done


def revisit(
    s3: Any, events: Any, settings: common.EvaluatorSettings, period: common.Period, baseline: Baseline, baseline_statistics: dict[str, Any], *, by: str
) -> bool:
    """Evaluate ``period`` again if its sketch folders changed since its report was written."""
    prefix = common.report_prefix(MONITOR, settings, period)
    try:
        written = common.read_json(s3, settings.bucket, f"{prefix}/{STATISTICS_FILE}")
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "AccessDenied"):  # AccessDenied: absent, read without ListBucket
            return False  # no report: that run did not complete (its failure is alarmed), nothing to compare with
        raise
    custom = written.get("open_monitor") or {}
    inputs = custom.get("inputs")
    if not isinstance(inputs, dict) or custom.get("layout") != baseline.layout.id:
        return False  # written before reports recorded their inputs, or against another baseline
    if common.listing_of(s3, settings.bucket, sketch_prefixes(period)).fingerprint == inputs.get("fingerprint"):
        return False
    evaluation, listing = evaluate_period(s3, settings.bucket, baseline, period)
    late = {"at": common.now_text(), "by": by, "sketch_files": listing.files, "sketch_files_before": inputs.get("sketch_files")}
    ended = report_period(s3, settings, period, evaluation, listing, baseline_statistics, late)
    common.finish_again(events, settings, period, ended, drift_metrics(evaluation))
    logger.info("re-evaluated an earlier period with late data", extra={"period": period.describe(), "exitMessage": ended.detail["exitMessage"]})
    return True


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ended = run(event, common.settings(), aws.client("s3"), aws.client("events"))
    summary = {k: ended.detail[k] for k in ("processingJobName", "outcome", "violationCount", "features", "exitMessage", "reportS3Uri")}
    (logger.warning if ended.outcome == "Failed" else logger.info)("data-quality run ended", extra=summary)
    return summary
