"""Lambda: the open back end's model-quality run, an EventBridge Scheduler target (issue 21).

Each run evaluates its own period (the hours ``[end - cadence, end)``, as every open evaluator) and
evaluates again each earlier period whose label window was still open at the previous run (its end
plus LABEL_WINDOW_HOURS after the previous period's end), so labels that come late reach their
period: a period's last evaluation is the first run after its window closes. For each period it

- reads the capture files of its hours (``<CAPTURE_PREFIX><variant>/yyyy/mm/dd/hh/``) with the
  capture parser (``lambdas.capture.records``), keeping every valid row's score (the estimate needs
  them all) and the rows the labels name;
- joins the labels that arrived under ``<GROUND_TRUTH_PREFIX>yyyy/mm/dd/hh/`` from the period's start
  to its end plus the window, and no later than this run's period end, with those rows
  (``lambdas.monitoring.quality.labels``: the join key, the rule for two labels of one row);
- computes the realized figures (weighted, and unweighted over reviewed and over all labelled rows),
  the label-free estimate, and the constraint check (``lambdas.monitoring.quality.evaluation``);
- writes ``statistics.json``, ``constraint_violations.json`` and ``report.html`` into the period's
  report folder, ``model-quality/reports/<endpoint>/<schedule>/yyyy/mm/dd/hh`` of its end.

Its own period also gets the intake of the labels that arrived in its hours: how many, the lines
set aside with their reasons (``rejected_labels.jsonl`` beside the report), the labels that
match no captured prediction in any period they could label (unknown IDs, ``unknown_labels.jsonl``),
and the files under the ground-truth prefix outside its hour folders (never read), all counted. The run
ends as every open evaluator's: ``latest.json``, the metrics (``documents.metric_values``) by
Endpoint and MonitoringSchedule, ``MonitoringRuns``, and the "Monitoring Run Ended" event. An
earlier period is rewritten, with its event and its metrics at its own run time
(``common.finish_again``), only when what it joined changed since its report (a fingerprint of its
captured rows and joined labels in ``open_monitor.inputs``); a period without a report (its run
failed, which the dead-letter queue and the watchdog report, or it predates the monitor) is left as
it is, though its captures are still read so that the labels it would join are not counted as
unknown.

A missing or unusable baseline (``model-quality/current/``: statistics.json, constraints.json,
calibration.json) is a Failed run; a baseline without reference scores (your own model and no
``dataset_s3_uri``) gives figures without constraints or estimate. An S3 or EventBridge error fails
the invocation, and the scheduler retries it (the run's files are overwritten).

Environment: the common evaluator variables (``common.read_settings``: MONITORING_BUCKET,
ENDPOINT_NAME, SCHEDULE_NAME = ``<prefix>-model-quality``, EVENT_SOURCE, EVENT_BUS_NAME, CADENCES) and

- CAPTURE_BUCKET, CAPTURE_PREFIX: where SageMaker writes this endpoint's capture files, the prefix
  ending in ``/`` (``<capture destination prefix>/<endpoint>/``; ``<variant>/yyyy/mm/dd/hh/`` follow);
- LABELS_BUCKET, GROUND_TRUTH_PREFIX (``ground-truth/``; ``yyyy/mm/dd/hh/<name>.jsonl`` follow);
- LABEL_WINDOW_HOURS: labels that arrive up to this long after a period ends are joined with it;
- DECISION_THRESHOLD (default 0.5), SCORE_PATH (empty: the output is the probability),
  FEATURES_PATH (default ``features``): as the capture filter reads captures;
- TOLERANCE (default 0.05): the tolerance the baseline's constraints were computed with (the
  thresholds themselves are constraints.json's), shown on the page;
- ESTIMATE ("true" | "false", default true): the label-free estimate (CBPE);
- optional, the review rule as the capture filter has it (REVIEW_SELECTION, SELECTION_RULE,
  LOWER_THRESHOLD, UPPER_THRESHOLD, SELECTED_OUTCOME, AUDIT_PERCENTAGE): with them the monitor knows
  which captured rows went to review, so it reports the response rate of each selection stratum and
  adjusts the weights for non-response within it; without them (REVIEW_SELECTION absent) the
  response rate is reported as unknown and no adjustment is made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.exceptions import ClientError

from lambdas.capture.records import ParseOptions
from lambdas.capture.selection import Audit, SelectionRule
from lambdas.monitoring.open import common
from lambdas.monitoring.quality import documents, labels as ground_truth, report
from lambdas.monitoring.quality.estimate import CALIBRATION_FILE, Calibration, CalibrationError
from lambdas.monitoring.quality.evaluation import Captured, Evaluation, evaluate
from lambdas.monitoring.runs import runs
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SettingsError, from_environment, logger

MONITOR = "model-quality"  # the event's "monitor", and the monitor's folder in the monitoring bucket
CURRENT_PREFIX = f"{MONITOR}/current"
HISTORY_PERIODS = 14  # earlier periods on the page's "recent periods" plot and table
YEAR_FOLDER = re.compile(r"\d{4}/")  # the first level of the ground-truth prefix's yyyy/mm/dd/hh/


@dataclass(frozen=True)
class Review:
    """Which captured rows went to review: the capture filter's rule and audit sample."""

    rule: SelectionRule
    audit: Audit | None


@dataclass(frozen=True)
class QualitySettings:
    evaluator: common.EvaluatorSettings
    capture_bucket: str
    capture_prefix: str
    labels_bucket: str
    ground_truth_prefix: str
    label_window_hours: int
    threshold: float
    score_path: str | None
    features_path: str
    tolerance: float
    estimate: bool
    review: Review | None  # None: not known (no response rates)

    @property
    def options(self) -> ParseOptions:
        return ParseOptions(score_path=self.score_path, features_path=self.features_path, threshold=self.threshold)


def _prefix(env: Environment, name: str) -> str:
    value = env[name]
    if value and not value.endswith("/"):
        raise SettingsError(f"environment variable {name} is {value!r}: a key prefix ending in /")
    return value


def _review(env: Environment) -> Review | None:
    if env.get("REVIEW_SELECTION") is None or not env.flag("REVIEW_SELECTION", True):
        return None
    try:
        rule = SelectionRule(
            rule=env["SELECTION_RULE"],
            lower=env.number("LOWER_THRESHOLD"),
            upper=env.number("UPPER_THRESHOLD"),
            outcome=env.integer("SELECTED_OUTCOME"),
        )
        percentage = env.number("AUDIT_PERCENTAGE", 0.0)
        return Review(rule, Audit(percentage) if percentage else None)
    except ValueError as error:
        raise SettingsError(f"the review rule's variables: {error}") from None


def read_settings(env: Environment) -> QualitySettings:
    window = env.integer("LABEL_WINDOW_HOURS")
    if window < 0:
        raise SettingsError(f"environment variable LABEL_WINDOW_HOURS is {window}, not a whole number of hours >= 0")
    threshold = env.number("DECISION_THRESHOLD", 0.5)
    if not 0.0 <= threshold <= 1.0:
        raise SettingsError(f"environment variable DECISION_THRESHOLD is {threshold}, not in [0, 1]")
    return QualitySettings(
        evaluator=common.read_settings(env),
        capture_bucket=env["CAPTURE_BUCKET"],
        capture_prefix=_prefix(env, "CAPTURE_PREFIX"),
        labels_bucket=env["LABELS_BUCKET"],
        ground_truth_prefix=_prefix(env, "GROUND_TRUTH_PREFIX"),
        label_window_hours=window,
        threshold=threshold,
        score_path=env.get("SCORE_PATH") or None,
        features_path=env.get("FEATURES_PATH") or "features",
        tolerance=env.number("TOLERANCE", 0.05),
        estimate=env.flag("ESTIMATE", True),
        review=_review(env),
    )


settings = from_environment(read_settings)


# --- the baseline --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    statistics: dict[str, Any]
    constraints: dict[str, Any]
    calibration: Calibration | None
    calibration_note: str | None


class BaselineError(ValueError):
    """No usable baseline in current/: the run fails with this reason."""


def load_baseline(s3: Any, bucket: str) -> Baseline:
    found = common.read_baseline(s3, bucket, CURRENT_PREFIX, documents.BASELINE_FILES, BaselineError)
    try:
        constraints, calibration, note = documents.load_baseline(found)
    except (CalibrationError, ValueError) as error:
        raise BaselineError(f"baseline in s3://{bucket}/{CURRENT_PREFIX}/ is not this app's model-quality baseline: {error}") from None
    return Baseline(found[documents.STATISTICS_FILE], constraints, calibration, note)


# --- which periods, which hours -----------------------------------------------------------------


def periods_to_evaluate(period: common.Period, window_hours: int) -> list[common.Period]:
    """The run's own period, then each earlier one whose label window was open at the previous run
    (latest first): ``end + window > this period's start``, so ``k * cadence < window + cadence``."""
    cadence = period.end - period.start
    window = dt.timedelta(hours=window_hours)
    count = 0
    while (count + 1) * cadence < window + cadence:
        count += 1
    return [period, *common.earlier_periods(period, count)]


def hours(start: dt.datetime, end: dt.datetime) -> list[str]:
    count = int((end - start) / dt.timedelta(hours=1))
    return [(start + dt.timedelta(hours=i)).strftime(common.HOUR_FORMAT) for i in range(max(count, 0))]


def label_hours(period: common.Period, window_hours: int, now: dt.datetime) -> list[str]:
    """The hours whose labels can label ``period``'s predictions: from its start to its end plus the
    window, and no later than ``now`` (the run's period end)."""
    return hours(period.start, min(period.end + dt.timedelta(hours=window_hours), now))


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelFile:
    key: str
    hour: str
    labels: list[ground_truth.Label]
    rejected: list[ground_truth.RejectedLine]


def read_label_files(s3: Any, bucket: str, prefix: str, label_hours_: Iterable[str]) -> list[LabelFile]:
    """Every ground-truth file of the hours, read and checked (``labels.read_file``); a file deleted
    between listing and reading is skipped (it labels nothing any more)."""
    listed: list[tuple[str, str, str]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for hour in label_hours_:
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}{hour}/"):
            for item in page.get("Contents") or []:
                modified = item.get("LastModified")
                arrived = modified.astimezone(dt.UTC).isoformat() if isinstance(modified, dt.datetime) else str(modified or "")
                listed.append((item["Key"], hour, arrived))
    arrived_by_key = {key: (hour, arrived) for key, hour, arrived in listed}
    files = []
    for key, body in common.read_objects(s3, bucket, [key for key, _, _ in listed]):
        if body is None:
            continue
        hour, arrived = arrived_by_key[key]
        found, rejected = ground_truth.read_file(body, key, arrived)
        files.append(LabelFile(key, hour, found, rejected))
    return files


def misplaced_label_files(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Files no run reads because they are not in an hour folder: directly under the ground-truth
    prefix, or in a folder of it that is not a year (``yyyy/``). One listing of the prefix's top
    level (within the evaluator's ``s3:prefix`` grant); a file deeper in a misnamed folder, or in an
    hour folder older than every open label window, is not seen (docs/model-quality.md, "Labels")."""
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        found += [item["Key"] for item in page.get("Contents") or [] if item["Key"] != prefix]
        found += [folder["Prefix"] for folder in page.get("CommonPrefixes") or [] if not YEAR_FOLDER.fullmatch(folder["Prefix"][len(prefix) :])]
    return found


def capture_keys(s3: Any, bucket: str, prefix: str, period: common.Period) -> list[str]:
    """The capture files of the period's hours, every variant (``<prefix><variant>/yyyy/mm/dd/hh/``)."""
    variants = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        variants += [item["Prefix"] for item in page.get("CommonPrefixes") or []]
    prefixes = [f"{variant}{hour}/" for variant in variants for hour in period.hours]
    return list(common.list_keys(s3, bucket, prefixes))


def read_captures(s3: Any, settings: QualitySettings, period: common.Period, wanted: dict) -> Captured:
    review = settings.review
    captured = Captured(wanted, settings.options, review.rule if review else None, review.audit if review else None)
    keys = capture_keys(s3, settings.capture_bucket, settings.capture_prefix, period)
    for _, body in common.read_objects(s3, settings.capture_bucket, keys):
        if body is not None:
            captured.add(body)
    return captured


# --- one period ----------------------------------------------------------------------------------


def fingerprint(captured: Captured, evaluation_labels: ground_truth.Latest) -> str:
    """What a period's figures rest on: its captured rows and the labels joined with them."""
    digest = hashlib.sha256(f"{captured.files}/{captured.rows}\n".encode())
    for key in sorted(k for k in evaluation_labels.labels if k in captured.joined):
        label = evaluation_labels.labels[key]
        digest.update(f"{key[0]}/{key[1]}={label.value}@{label.inclusion_probability}:{label.selected_by}\n".encode())
    return "sha256:" + digest.hexdigest()


def label_window_text(period: common.Period, window_hours: int, now: dt.datetime) -> str:
    end = min(period.end + dt.timedelta(hours=window_hours), now)
    closed = period.end + dt.timedelta(hours=window_hours) <= now
    state = "the window has closed: these figures are final" if closed else "the window is open: later runs add labels that arrive"
    return f"labels that arrived {period.start:%Y-%m-%dT%H:%MZ} to {end:%Y-%m-%dT%H:%MZ} ({window_hours} h after the period; {state})"


def history(s3: Any, settings: QualitySettings, period: common.Period) -> list[dict[str, Any]]:
    """The earlier periods' points for the page (oldest first), from their statistics.json."""
    points = []
    for earlier in reversed(common.earlier_periods(period, HISTORY_PERIODS)):
        key = f"{common.report_prefix(MONITOR, settings.evaluator, earlier)}/{documents.STATISTICS_FILE}"
        try:
            found = common.read_json(s3, settings.evaluator.bucket, key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "AccessDenied"):
                continue
            raise
        except ValueError:
            continue
        points.append(documents.summary(found, f"{earlier.end:%m-%d %H}h"))
    return points


def exit_message(evaluation: Evaluation, captured: Captured, outcome: str) -> str:
    parts = []
    if not captured.rows and not evaluation.joined:
        parts.append(f"no data: no captured predictions in {captured.files} capture file(s) and no labels joined")
    else:
        violations = evaluation.violations
        head = f"{len(violations)} violation(s) ({', '.join(v.metric for v in violations)})" if violations else "no violations"
        parts.append(f"{outcome}: {head}; {captured.rows} captured rows, {evaluation.joined} labelled")
        primary = evaluation.primary_figures
        if primary is not None:
            accuracy = primary.figures["accuracy"]
            parts.append(f"accuracy {accuracy.value:.4f} [{accuracy.low:.4f}, {accuracy.high:.4f}] ({evaluation.primary})")
        if evaluation.estimate is not None:
            accuracy = evaluation.estimate.figures["accuracy"]
            if accuracy.defined:
                parts.append(f"estimated accuracy {accuracy.value:.4f} [{accuracy.low:.4f}, {accuracy.high:.4f}]")
        elif evaluation.estimate_note:
            parts.append(f"no estimate: {evaluation.estimate_note}")
    if captured.rejected:
        parts.append("capture lines not read: " + "; ".join(f"{reason}: {n}" for reason, n in captured.rejected.most_common(5)))
    return common.clip("; ".join(parts))


def report_period(
    s3: Any,
    settings: QualitySettings,
    period: common.Period,
    baseline: Baseline,
    captured: Captured,
    latest: ground_truth.Latest,
    now: dt.datetime,
    *,
    intake: dict[str, Any] | None = None,
    parked: dict[str, bytes] | None = None,
    late: dict[str, Any] | None = None,
) -> tuple[runs.RunEnded, Evaluation]:
    """Evaluate the period and write its files; its event (not yet published) and evaluation."""
    evaluation = evaluate(
        captured, latest, threshold=settings.threshold, calibration=baseline.calibration, calibration_note=baseline.calibration_note,
        constraints=baseline.constraints, estimate_on=settings.estimate,
    )  # fmt: skip
    prefix = common.report_prefix(MONITOR, settings.evaluator, period)
    note = late_note(late) if late is not None else None
    custom: dict[str, Any] = {
        "period": {"start": period.start.isoformat().replace("+00:00", "Z"), "end": period.end.isoformat().replace("+00:00", "Z")},
        "label_window": label_window_text(period, settings.label_window_hours, now),
        "captures": captured.document(),
        "inputs": {"fingerprint": fingerprint(captured, latest)},
        "decision_threshold": settings.threshold,
    }
    if intake is not None:
        custom["intake"] = intake
    if late is not None:
        custom["re_evaluated"] = late
    statistics = documents.statistics(evaluation, custom)
    current = documents.summary(statistics, f"{period.end:%m-%d %H}h")
    page = report.render(
        evaluation, baseline.statistics, baseline.constraints, baseline.calibration,
        report.Page(
            environment=f"{settings.evaluator.endpoint}, {settings.evaluator.schedule}", window=period.describe(),
            labels_window=custom["label_window"], captured=captured.document(), intake=intake,
            re_evaluated=note, tolerance=settings.tolerance,
            history=history(s3, settings, period),
        ),
        current,
    )  # fmt: skip
    violations = documents.violations(evaluation)
    files: dict[str, bytes | str] = {
        documents.STATISTICS_FILE: orjson.dumps(statistics, option=orjson.OPT_INDENT_2),
        documents.VIOLATIONS_FILE: orjson.dumps(violations, option=orjson.OPT_INDENT_2),
        report.REPORT_FILE: page,
        **(parked or {}),
    }
    uris = common.write_files(s3, settings.evaluator.bucket, prefix, files)
    outcome = "CompletedWithViolations" if violations["violations"] else "Completed"
    ended = common.completed(
        common.identity(MONITOR, settings.evaluator, period), settings.evaluator, prefix, uris[report.REPORT_FILE],
        outcome=outcome, message=exit_message(evaluation, captured, outcome), late=note, violations=violations["violations"],
    )  # fmt: skip
    return ended, evaluation


def late_note(late: dict[str, Any]) -> str:
    return f"re-evaluated with late labels at {late['at']} by {late['by']}: {late['labelled']} labelled row(s), {late['labelled_before']} before"


def metrics_of(evaluation: Evaluation, captured: Captured) -> dict[str, float]:
    """The period's metrics; none for a period without data (as the data-quality monitor)."""
    if not captured.rows and not evaluation.joined:
        return {}
    return documents.metric_values(evaluation)


def window_labels(files: list[LabelFile], hours_: Iterable[str]) -> ground_truth.Latest:
    allowed = set(hours_)
    return ground_truth.latest(label for file in files if file.hour in allowed for label in file.labels)


def run(event: Any, settings: QualitySettings, s3: Any, events: Any) -> runs.RunEnded:
    """One scheduled run, start to end (the module docstring)."""
    evaluator = settings.evaluator
    period = common.period(event, evaluator.cadences)
    identity = common.identity(MONITOR, evaluator, period)
    try:
        baseline = load_baseline(s3, evaluator.bucket)
    except BaselineError as error:
        return common.failed(s3, events, evaluator, period, identity, str(error))

    now = period.end
    evaluated = periods_to_evaluate(period, settings.label_window_hours)
    files = read_label_files(s3, settings.labels_bucket, settings.ground_truth_prefix, hours(evaluated[-1].start, now))
    joined_anywhere: set = set()
    # Earlier periods first (their joins also settle which new labels name no prediction), oldest first.
    for earlier in reversed(evaluated[1:]):
        try:
            joined_anywhere |= revisit(s3, events, settings, earlier, baseline, files, now, by=identity["job_name"])
        except Exception:  # noqa: BLE001 - this run's own period is reported; the next run tries again
            logger.exception("re-evaluating an earlier period failed", extra={"period": earlier.describe()})

    own_hours = set(period.hours)
    latest = window_labels(files, label_hours(period, settings.label_window_hours, now))
    captured = read_captures(s3, settings, period, latest.labels)
    joined_anywhere |= set(captured.joined)
    new_files = [file for file in files if file.hour in own_hours]
    new_labels = [label for file in new_files for label in file.labels]
    rejected = [line for file in new_files for line in file.rejected]
    misplaced = misplaced_label_files(s3, settings.labels_bucket, settings.ground_truth_prefix)
    intake, parked = documents.intake(len(new_files), new_labels, joined_anywhere, rejected, misplaced)
    ended, evaluation = report_period(s3, settings, period, baseline, captured, latest, now, intake=intake, parked=parked)
    common.finish(s3, events, evaluator, period, ended, metrics_of(evaluation, captured))
    return ended


def revisit(
    s3: Any, events: Any, settings: QualitySettings, period: common.Period, baseline: Baseline, files: list[LabelFile], now: dt.datetime, *, by: str
) -> set:
    """Evaluate an earlier period again; rewrite it (and publish its event and metrics) only when
    what it joined changed since its report. Returns the label keys it joined."""
    latest = window_labels(files, label_hours(period, settings.label_window_hours, now))
    captured = read_captures(s3, settings, period, latest.labels)
    prefix = common.report_prefix(MONITOR, settings.evaluator, period)
    try:
        before = common.read_json(s3, settings.evaluator.bucket, f"{prefix}/{documents.STATISTICS_FILE}")
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "AccessDenied"):  # AccessDenied: absent, read without ListBucket
            return set(captured.joined)  # no report: its run failed (alarmed) or predates the monitor; left as it is
        raise
    except ValueError:
        before = {}
    ours = before.get(documents.CUSTOM) or {} if isinstance(before, dict) else {}
    if ours.get("inputs", {}).get("fingerprint") == fingerprint(captured, latest):
        return set(captured.joined)
    late = {"at": common.now_text(), "by": by, "labelled": sum(1 for k in latest.labels if k in captured.joined),
            "labelled_before": (ours.get("labels") or {}).get("joined", 0)}  # fmt: skip
    ended, evaluation = report_period(s3, settings, period, baseline, captured, latest, now, late=late)
    common.finish_again(events, settings.evaluator, period, ended, metrics_of(evaluation, captured))
    logger.info("re-evaluated an earlier period with late labels", extra={"period": period.describe(), "exitMessage": ended.detail["exitMessage"]})
    return set(captured.joined)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ended = run(event, settings(), aws.client("s3"), aws.client("events"))
    summary = {k: ended.detail[k] for k in ("processingJobName", "outcome", "violationCount", "checkTypes", "exitMessage", "reportS3Uri")}
    (logger.warning if ended.outcome == "Failed" else logger.info)("model-quality run ended", extra=summary)
    return summary
