"""The rehearsal's hour loop: traffic through the endpoint stand-in, the loop's own functions wired
from the synthesised templates, reviewers, schedules at their simulated times, and the record of
what happened.

Each simulated hour ``[start, start + 1 h)``, in steps of five simulated minutes (``SLICE``):
1. every request of the step goes through the endpoint stand-in at its own time (the clock is moved
   to it first), which writes data capture as SageMaker does (the step's file is written at its end);
2. once an hour, ten minutes before its end, the reviewers answer the tasks opened at least
   ``review_delay_hours`` before (default 1: a label arrives an hour or more after its prediction,
   as a person's answer does), through the reviewers' app API handler;
3. the clock moves to the step's end, every schedule due by then fires (hourly data quality, daily
   attribution and model quality, the review budget's redrive, the watchdogs, the sweep), and the
   cloud settles: S3 events reach the capture filter through the templates' rule and queue,
   completion events reach review_results, monitoring events reach the retraining triggers, and a
   retraining execution runs to its end (moto's Step Functions interpreter, the SageMaker stand-ins);
4. at the hour's end what the loop wrote is read back (S3 objects, the tasks and trigger tables,
   the state machine executions) into the timeline, and one progress line is printed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lambdas.capture.records import ParseOptions, parse_line
from local.rehearse import report
from local.rehearse.clock import DEFAULT_START, SimulatedClock, instant_waits
from local.rehearse.report import Decision, Hour, Outcome, Quality
from stacks.shared.config import BATCH_RUNS_PREFIX, AppConfig, load_environment

REVIEWERS = ("simulated", "browser")
REGION = "eu-west-1"  # the rehearsal's (local.rehearse.templates.REGION)
CAPTURE, CAPTURE_SUFFIX = "capture/", ".jsonl"  # the endpoint's capture prefix (stacks/serving/inference.py) and files
GROUND_TRUTH = "ground-truth/"
LOOP_REPORTS = "loop-reports/"
REPORT_FILES = ("report.html", "statistics.json", "constraint_violations.json", "analysis.json")
# The loop's step: requests, then schedules, then settling, every 5 simulated minutes (the finest
# schedule of the templates is the reviewers' app sweep, rate(5 minutes)).
SLICE = dt.timedelta(minutes=5)
REVIEW_BEFORE_HOUR_END = dt.timedelta(minutes=10)  # when in each hour the simulated reviewers answer


class RehearsalError(RuntimeError):
    """The rehearsal cannot go on (a bad argument, a stage that did not hand over)."""


@dataclass
class Settings:
    environment: str = "dev"
    out: Path = Path("rehearsal")
    hours: int = 24
    traffic: Path | None = None  # a CSV: label first, then the model's features; None: the bundled data
    reviewers: str = "simulated"
    error_rate: float = 0.0  # of the simulated reviewers' answers
    review_delay_hours: int = 1
    start: dt.datetime = DEFAULT_START
    seed: int = 0
    per_hour: int | None = None  # requests an hour of the default traffic; None: traffic.DEFAULT_PER_HOUR
    workdir: Path | None = None  # where the app is synthesised; None: a temporary folder

    def check(self) -> None:
        if self.hours < 1:
            raise RehearsalError(f"HOURS must be at least 1, got {self.hours}")
        if self.reviewers not in REVIEWERS:
            raise RehearsalError(f"REVIEWERS must be one of {', '.join(REVIEWERS)}, got {self.reviewers!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise RehearsalError(f"the reviewers' error rate must be between 0 and 1, got {self.error_rate}")
        if self.review_delay_hours < 0:
            raise RehearsalError(f"the review delay must be 0 hours or more, got {self.review_delay_hours}")
        if self.per_hour is not None and self.per_hour < 1:
            raise RehearsalError(f"the requests an hour must be at least 1, got {self.per_hour}")
        if self.traffic is not None and not self.traffic.is_file():
            raise RehearsalError(f"TRAFFIC: no such file {self.traffic}")


@dataclass
class Request:
    at: dt.datetime
    label: Any
    features: list[Any]
    record_id: str


def request_body(config: AppConfig, features: Sequence[Any]) -> tuple[str, str]:
    """The request as a client sends it for the model's content type: a CSV line, or the features
    under ``model.features_path`` for JSON and JSON Lines."""
    content_type = config.model.content_type
    if content_type == "text/csv":
        return ",".join(str(value) for value in features), content_type
    path = config.model.features_path
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", path):
        raise RehearsalError(f"model.features_path {path!r}: the rehearsal builds JSON requests for a plain key only")
    return json.dumps({path: list(features)}), content_type


BATCH_HANDLER = "lambdas.batch.handler.step"  # the nightly run's steps function (stacks/batch/stack.py)
BATCH_RUNS = BATCH_RUNS_PREFIX  # where each run writes report.json (the steps' RUNS_PREFIX)
BATCH_RUN_HOUR = 20  # a batch-only rehearsal starts so that the night's run comes 20 hours in


def default_start(config: AppConfig) -> dt.datetime:
    """Where a rehearsal starts by default: ``DEFAULT_START``, or batch only, ``BATCH_RUN_HOUR`` hours
    before the nightly run's time of day (``batch.schedule``'s cron hour and minute, read in UTC), so
    that a 24-hour rehearsal drops a day of input files, runs one night over them, and leaves the
    reviewers four hours for its tasks."""
    if config.serving.endpoint:
        return DEFAULT_START
    matched = re.fullmatch(r"cron\((\d{1,2}) (\d{1,2}) .*\)", config.batch.schedule.strip())
    if matched is None:
        return DEFAULT_START
    run_at = DEFAULT_START.replace(hour=int(matched[2]), minute=int(matched[1])) + dt.timedelta(days=1)
    return run_at - dt.timedelta(hours=BATCH_RUN_HOUR)


def as_time(at: Any, start: dt.datetime) -> dt.datetime:
    """A traffic row's time: a datetime as given, or an offset from the rehearsal's start."""
    if isinstance(at, dt.datetime):
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    if isinstance(at, dt.timedelta):
        return start + at
    raise RehearsalError(f"a traffic row's time must be a datetime or an offset, got {at!r}")


def slices(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The starts of the loop's steps in ``[start, end)``."""
    count = int((end - start) / SLICE)
    return [start + SLICE * i for i in range(count)]


def peak_memory_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- reading back what the loop wrote -------------------------------------------------------------


@dataclass
class Observer:
    """What changed in the embedded AWS since the last look: S3 objects (new or rewritten), tasks,
    trigger decisions and retraining executions; with ``truth`` (record ID, or a batch row's origin,
    -> its true label), the true accuracy beside each model-quality run's figures."""

    cloud: Any
    config: AppConfig
    truth: dict[str, Any] | None = None
    seen_objects: dict[tuple[str, str], str] = field(default_factory=dict)  # (bucket, key) -> ETag
    seen_tasks: dict[str, str] = field(default_factory=dict)  # taskId -> status
    seen_triggers: dict[tuple[str, str], str] = field(default_factory=dict)  # (pk, sk) -> status
    seen_executions: dict[str, str] = field(default_factory=dict)  # arn -> status
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, Any] = field(default_factory=dict)
    unweighted_labels: int = 0  # ground-truth lines without their row's inclusion probability ("sampling")

    def _boto(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3_client(service)
        return self.clients[service]

    def objects(self) -> Iterator[tuple[str, str, str]]:
        s3 = self._boto("s3")
        for bucket in s3.list_buckets().get("Buckets", []):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
                for item in page.get("Contents", []):
                    yield bucket["Name"], item["Key"], item["ETag"]

    def read(self, bucket: str, key: str) -> bytes:
        return self._boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read()

    def observe(self, hour: Hour) -> None:
        self._objects(hour)
        self._tasks(hour)
        self._triggers(hour)
        self._executions(hour)

    def _objects(self, hour: Hour) -> None:
        features = set(self.config.model.feature_names)
        for bucket, key, etag in sorted(self.objects()):
            if self.seen_objects.get((bucket, key)) == etag:
                continue
            self.seen_objects[(bucket, key)] = etag
            name = key.rsplit("/", 1)[-1]
            if key.startswith(CAPTURE) and key.endswith(CAPTURE_SUFFIX):
                hour.captured += sum(1 for line in self.read(bucket, key).splitlines() if line.strip())
            elif GROUND_TRUTH in key and key.endswith(".jsonl"):
                lines = [line for line in self.read(bucket, key).splitlines() if line.strip()]
                hour.labels += len(lines)
                self.unweighted_labels += sum(1 for line in lines if b'"sampling"' not in line)
            elif "/reports/" in key and name in REPORT_FILES:
                monitor = key.split("/reports/", 1)[0].rsplit("/", 1)[-1]
                if name == "report.html":
                    hour.reports.append(f"{bucket}/{key}")
                    hour.monitor_runs.append(self._run_line(bucket, key, monitor))
                if name == "constraint_violations.json" and monitor == "data-quality":
                    flagged = drifted(self.read(bucket, key), features)
                    report.merge_counts(hour.drift, flagged)
                if name == "statistics.json" and monitor == "model-quality":
                    hour.quality.append(self._quality(self.read(bucket, key)))
            elif LOOP_REPORTS in key and key.endswith(".json"):
                hour.reports.append(f"{bucket}/{key}")
            elif key.startswith(BATCH_RUNS) and key.count("/") == BATCH_RUNS.count("/") + 1 and name == "report.json":
                self._batch_run(hour, bucket, key)

    def _quality(self, document: bytes) -> Quality:
        """A model-quality run's figures (``quality_record``), and the true accuracy of its period's predictions."""
        quality, period = quality_record(document)
        if period is not None and self.truth is not None:
            quality.true, quality.true_rows = self.true_accuracy(*period)
        return quality

    def true_accuracy(self, start: dt.datetime, end: dt.datetime, threshold: float) -> tuple[float | None, int]:
        """The accuracy of the predictions captured in ``[start, end)`` against their true labels, and how
        many had one. The rows are the monitor's: the capture files its own listing finds (every variant
        under the period's hour folders, ``model_quality.capture_keys``), read by the capture parser with
        the model's paths and the monitor's decision threshold."""
        from lambdas.monitoring.open import common, model_quality
        from local.rehearse.reviewers import truth_key

        truth, s3 = self.truth or {}, self._boto("s3")
        options = ParseOptions(score_path=self.config.model.score_path, features_path=self.config.model.features_path, threshold=threshold)
        prefix, period = f"{CAPTURE}{self.config.endpoint.name}/", common.Period(end, start, end)
        right = rows = 0
        for bucket in s3.list_buckets().get("Buckets", []):
            for key in model_quality.capture_keys(s3, bucket["Name"], prefix, period):
                for number, line in enumerate(self.read(bucket["Name"], key).splitlines(), start=1):
                    for row in parse_line(line, number, options).rows:
                        label = truth.get(truth_key({"recordId": row.record_id, "origin": row.origin}, truth))
                        if label is not None:
                            rows += 1
                            right += int(label) == row.prediction
        return (right / rows if rows else None), rows

    def _batch_run(self, hour: Hour, bucket: str, key: str) -> None:
        """A nightly run's report: its rows count as captured (batch data capture records every row)."""
        run = json.loads(self.read(bucket, key))
        hour.captured += int(run.get("rows") or 0)
        hour.reports.append(f"{bucket}/{key.removesuffix('report.json')}report.html")
        figures = (
            f"{run.get('files', 0)} input files, {run.get('rows', 0)} rows predicted, {run.get('rejected', 0)} lines rejected, "
            f"{run.get('selected', 0)} rows selected for review ({run.get('audited', 0)} by the audit), {run.get('tasks', 0)} review groups"
        )
        why = figures if run.get("status") != "Failed" else f"{run.get('error')}: {run.get('cause')}; {len(run.get('retriedNextNight') or [])} files retried next night"
        hour.decisions.append(Decision(at=hour.end, what=f"nightly batch run {run.get('run')}: {run.get('status')}", why=why))

    def _run_line(self, bucket: str, key: str, monitor: str) -> str:
        """"<monitor> <period>: <n> violations" of the report folder holding ``key``."""
        folder = key.rsplit("/", 1)[0]
        period = "/".join(folder.split("/")[-4:])
        try:
            violations = json.loads(self.read(bucket, f"{folder}/constraint_violations.json")).get("violations") or []
        except Exception:  # no violations document (a run without data writes none): nothing flagged
            violations = []
        return f"{monitor} {period}h: {len(violations)} violation{'s' if len(violations) != 1 else ''}"

    def drift_periods(self) -> dict[str, list[str]]:
        """Each data-quality period's flagged input features, from the reports as they stand now."""
        features, periods = set(self.config.model.feature_names), {}
        for bucket, key, _ in self.objects():
            if key.startswith("data-quality/reports/") and key.endswith("/constraint_violations.json"):
                period = key[len("data-quality/reports/") : -len("/constraint_violations.json")]
                periods[period] = sorted(drifted(self.read(bucket, key), features))
        return periods

    def _tables(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        from boto3.dynamodb.types import TypeDeserializer

        dynamodb, plain = self._boto("dynamodb"), TypeDeserializer()
        for table in dynamodb.list_tables().get("TableNames", []):
            items: list[dict[str, Any]] = []
            for page in dynamodb.get_paginator("scan").paginate(TableName=table):
                items.extend({k: plain.deserialize(v) for k, v in item.items()} for item in page.get("Items", []))
            yield table, items

    def _tasks(self, hour: Hour) -> None:
        for _, items in self._tables():
            for item in items:
                task, status = item.get("taskId"), item.get("status")
                if not isinstance(task, str) or task.startswith("#") or not isinstance(status, str):
                    continue
                before = self.seen_tasks.get(task)
                if before == status:
                    continue
                self.seen_tasks[task] = status
                if before is None:
                    hour.tasks_created += 1
                    try:
                        hour.selected += len(json.loads(item.get("inputContent") or "{}").get("rows") or [])
                    except ValueError:
                        pass
                if status in ("answered", "done") and before not in ("answered", "done"):
                    hour.reviewed += 1

    def _triggers(self, hour: Hour) -> None:
        for _, items in self._tables():
            for item in items:
                if item.get("pk") != "trigger" or "kind" not in item:
                    continue
                key, status = (str(item["pk"]), str(item.get("sk"))), str(item.get("status", ""))
                if self.seen_triggers.get(key) == status:
                    continue
                self.seen_triggers[key] = status
                hour.decisions.append(Decision(at=str(item.get("receivedAt") or hour.end), what=f"retraining trigger {item['kind']}: {status}", why=trigger_reason(item, status)))

    def _executions(self, hour: Hour) -> None:
        sfn = self._boto("stepfunctions")
        for machine in sfn.list_state_machines().get("stateMachines", []):
            for execution in sfn.list_executions(stateMachineArn=machine["stateMachineArn"]).get("executions", []):
                arn, status = execution["executionArn"], execution["status"]
                if self.seen_executions.get(arn) == status:
                    continue
                self.seen_executions[arn] = status
                described = sfn.describe_execution(executionArn=arn)
                run = execution_outcome(machine["name"], described)
                self.executions[arn] = run
                hour.decisions.append(Decision(at=report.iso(execution["startDate"]), what=f"{machine['name']} {execution.get('name') or arn.rsplit(':', 1)[-1]}: {status}", why=run["why"]))


TRIGGER_STATUS = {
    "pending": "waiting: not enough evidence yet (labels under the threshold, or a drift streak not complete)",
    "started": "started a retraining run",
    "cooled-down": "within the cooldown after the last run's start",
    "unconfirmed": "not flagged in the consecutive periods a drift needs",
}


def trigger_reason(item: dict[str, Any], status: str) -> str:
    """Why a trigger is where it is: its status's meaning, and what a monitoring run flagged."""
    reason = TRIGGER_STATUS.get(status, status)
    try:
        summary = json.loads(item.get("summary") or "{}")
    except (TypeError, ValueError):
        summary = {}
    flagged = summary.get("flagged") if isinstance(summary, dict) else None
    if isinstance(flagged, dict) and flagged:
        reason += "; flagged " + "; ".join(f"{check}: {', '.join(map(str, features))}" for check, features in sorted(flagged.items()))
    return reason


def drifted(document: bytes, features: set[str]) -> dict[str, list[str]]:
    """The input features a data-quality ``constraint_violations.json`` flags, with their check types."""
    try:
        violations = json.loads(document).get("violations") or []
    except (ValueError, AttributeError):
        return {}
    flagged: dict[str, list[str]] = {}
    for violation in violations:
        feature, check = violation.get("feature_name"), violation.get("constraint_check_type")
        if feature in features and check == "baseline_drift_check":
            flagged.setdefault(feature, []).append(check)
    return flagged


def quality_figures(document: bytes) -> dict[str, float]:
    """Model quality's headline figures from its ``statistics.json`` (Model Monitor's shape)."""
    try:
        metrics = json.loads(document).get("binary_classification_metrics") or {}
    except (ValueError, AttributeError):
        return {}
    return {name: float(metrics[name]["value"]) for name in ("accuracy", "f1", "auc") if isinstance(metrics.get(name), dict) and isinstance(metrics[name].get("value"), (int, float))}


def quality_record(document: bytes) -> tuple[Quality, tuple[dt.datetime, dt.datetime, float] | None]:
    """A model-quality ``statistics.json``: its figures (``Quality``, without the truth), and its period
    with the decision threshold its predictions were judged by (None for Model Monitor's document,
    which names neither)."""
    quality = Quality(quality_figures(document))
    try:
        ours = json.loads(document).get("open_monitor")
    except (ValueError, AttributeError):
        ours = None
    if not isinstance(ours, dict):
        return quality, None
    bases = ours.get("bases") or {}
    quality.basis = ours.get("basis")
    quality.interval = _accuracy(bases.get(quality.basis))[1]
    quality.reviewed = _accuracy(bases.get("reviewed"))[0]
    quality.estimated, quality.estimated_interval = _accuracy(ours.get("estimate"))
    quality.labelled = int((ours.get("labels") or {}).get("joined") or 0)
    period = ours.get("period") or {}
    try:
        start, end = (dt.datetime.fromisoformat(period[side].replace("Z", "+00:00")) for side in ("start", "end"))
    except (KeyError, AttributeError, ValueError):
        return quality, None
    quality.period = f"{period['start']} to {period['end']}"
    return quality, (start, end, float(ours.get("decision_threshold", ParseOptions().threshold)))


def _accuracy(holder: Any) -> tuple[float | None, list[float] | None]:
    """A basis's or the estimate's accuracy and its 95 % interval (``figures.accuracy``), None when absent."""
    figure = (holder.get("figures") or {}).get("accuracy") if isinstance(holder, dict) else None
    if not isinstance(figure, dict) or not isinstance(figure.get("value"), (int, float)):
        return None, None
    bounds = figure.get("interval_95")
    valid = isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)
    return float(figure["value"]), [float(b) for b in bounds] if valid else None


def execution_outcome(machine: str, described: dict[str, Any]) -> dict[str, Any]:
    """A retraining execution's end: promoted or not, and why (the gate's figures, or the error)."""
    status = described["status"]
    run: dict[str, Any] = {"machine": machine, "execution": described.get("name") or described["executionArn"].rsplit(":", 1)[-1], "status": status, "promoted": False}
    if status == "SUCCEEDED":
        try:
            output = json.loads(described.get("output") or "{}")
        except ValueError:
            output = {}
        evaluation = output.get("evaluation") or {}
        run["promoted"] = bool(output.get("promoted"))
        run["evaluation"] = evaluation
        difference = evaluation.get("difference") or {}
        if evaluation.get("reason"):  # the promotion gate's own words: both figures, the interval, the tolerance
            run["why"] = f"{'promoted' if run['promoted'] else 'kept the serving model'}: {evaluation['reason']}"
        elif difference:
            low, high = (difference.get("interval") or [None, None])[:2]
            run["why"] = (
                f"{evaluation.get('metric', 'metric')}: candidate {_figure(evaluation.get('candidate'))}, serving {_figure(evaluation.get('serving'))}, "
                f"difference {difference.get('value')!s} (95 % interval {low!s} to {high!s}), tolerance {evaluation.get('tolerance')!s}: "
                + ("promoted" if run["promoted"] else "kept the serving model")
            )
        else:
            run["why"] = str(evaluation.get("reason") or output.get("reason") or ("promoted" if run["promoted"] else "not promoted"))
    elif status == "RUNNING":
        run["why"] = "running"
    else:
        run["why"] = f"{described.get('error') or status}: {str(described.get('cause') or '')[:300]}"
    return run


def _figure(side: Any) -> str:
    return f"{side['value']:.4f}" if isinstance(side, dict) and isinstance(side.get("value"), (int, float)) else "?"


# -- the loop --------------------------------------------------------------------------------------


class Rehearsal:
    """One rehearsal: ``run()`` returns the outcome and writes the output folder."""

    def __init__(self, settings: Settings, *, stream: TextIO = sys.stdout) -> None:
        settings.check()
        self.settings, self.stream = settings, stream
        self.config = load_environment(settings.environment)
        self.clock = SimulatedClock(settings.start)

    def say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def traffic(self) -> tuple[list[Request], dict[str, bytes]]:
        """The requests in time order, and the objects a placeholder environment's configuration
        points at that the traffic supplies (its stand-in model, and the rows it was trained on)."""
        from local.rehearse import traffic

        settings = self.settings
        if settings.traffic is not None:
            rows = traffic.from_csv(settings.traffic, settings.hours, start=settings.start, feature_names=tuple(self.config.model.feature_names))
            for line, reason in rows.rejected:
                self.seams.append(f"TRAFFIC line {line} not sent: {reason}")
        else:
            extra = {"per_hour": settings.per_hour} if settings.per_hour else {}
            rows = traffic.default(settings.environment, settings.hours, start=settings.start, seed=settings.seed, **extra)
        self.notes.extend(rows.notes)
        objects: dict[str, bytes] = {}
        if rows.artefact is not None and self.config.model.artifact_s3_uri:
            objects[str(self.config.model.artifact_s3_uri)] = rows.artefact
            if rows.training is not None and self.config.retraining.training_data_s3_uri:
                objects[str(self.config.retraining.training_data_s3_uri)] = rows.training.encode()
            self.notes.append(f"the environment's model is a placeholder: the endpoint serves a stand-in model trained on synthetic data, put at {self.config.model.artifact_s3_uri}")
        requests = [Request(as_time(at, settings.start), label, list(features), f"rehearsal-{index:07d}") for index, (at, label, features) in enumerate(rows)]
        end = settings.start + dt.timedelta(hours=settings.hours)
        outside = [r for r in requests if not settings.start <= r.at < end]
        if outside:
            raise RehearsalError(f"{len(outside)} traffic rows fall outside the rehearsal's {settings.hours} hours (first at {outside[0].at.isoformat()})")
        if not requests:
            raise RehearsalError("the traffic has no request")
        return sorted(requests, key=lambda r: r.at), objects

    def run(self) -> Outcome:
        began = time.monotonic()
        # The reviewers' app hands out one of the oldest open tasks at random (lambdas/review/app/tasks.py):
        # seeded, so that a rehearsal's reviews, labels and the decisions they lead to repeat.
        random.seed(self.settings.seed)
        self.notes: list[str] = []
        self.seams: list[str] = []
        workdir = self.settings.workdir or Path(tempfile.mkdtemp(prefix="rehearsal-"))
        with self.clock, instant_waits():
            from local.rehearse import sagemaker
            from local.rehearse.cloud import Cloud

            self.say(f"rehearsal of {self.settings.environment}: synthesising the app and creating what its templates declare")
            cloud = Cloud.from_app(self.settings.environment, workdir)
            requests, objects = self.traffic()
            cloud.start(objects=objects)
            stand_ins = None
            try:
                stand_ins = sagemaker.install_sagemaker(cloud)
                return self._loop(cloud, requests, began)
            finally:
                if stand_ins is not None:
                    stand_ins.uninstall()
                cloud.stop()

    def _served_model(self) -> str | None:
        try:
            return boto3_client("ssm").get_parameter(Name=self.config.served_model_parameter)["Parameter"]["Value"]
        except Exception as error:  # the parameter's absence is itself a seam, reported
            self.seams.append(f"served-model parameter {self.config.served_model_parameter} unreadable: {error}")
            return None

    def _loop(self, cloud: Any, requests: list[Request], began: float) -> Outcome:
        from local.rehearse import sagemaker
        from local.rehearse.reviewers import SimulatedReviewers

        settings = self.settings
        self.say(f"{len(requests)} requests over {settings.hours} hours from {report.iso(settings.start)}")
        # Batch only there is no endpoint: each hour's requests are dropped as one input file under
        # batch.input_prefix, and the nightly schedule's run predicts them (the transform stand-in).
        batch_only = not self.config.serving.endpoint
        endpoint = None if batch_only else sagemaker.Endpoint(cloud, self.config.endpoint.name, seed=settings.seed)
        if batch_only:
            self.notes.append(
                f"batch only: each simulated hour's requests are one input file under {self.config.batch.input_prefix} of the datasets bucket; "
                f"the nightly run ({self.config.batch.schedule}, {self.config.batch.timezone}) predicts the files dropped since the last run"
            )
        dropped: list[tuple[str, Any]] = []  # batch only: the hour's (CSV line, true label), dropped as one file at its end
        truth: dict[str, Any] = {}
        if not (self.config.review.enabled and self.config.review.backend == "open"):
            reviewers = None  # A2I's workers are not rehearsed (nor is A2I): nobody answers
            self.notes.append(
                "review.backend is a2i: the starter's StartHumanLoop calls reach A2I, which the rehearsal does not stand in for, so no "
                "task is answered and no label written; set review.backend to open to rehearse the reviewers' app"
                if self.config.review.enabled else "review is off: no task, no label"
            )
        elif settings.reviewers == "browser":
            reviewers = BrowserReviewers(cloud, self.say)
        else:
            reviewers = SimulatedReviewers(cloud, truth, error_rate=settings.error_rate, seed=settings.seed)
        observer = Observer(cloud, self.config, truth)
        observer.observe(Hour(-1, "", ""))  # what deploying wrote (baselines, the bundled model) is not the loop's
        served_before = self._served_model()
        hours: list[Hour] = []
        position = 0
        for index in range(settings.hours):
            started = time.monotonic()
            start = settings.start + dt.timedelta(hours=index)
            end = start + dt.timedelta(hours=1)
            hour = Hour(index, report.iso(start), report.iso(end))
            answer_at = end - REVIEW_BEFORE_HOUR_END
            for slice_start in slices(start, end):
                slice_end = slice_start + SLICE
                while position < len(requests) and requests[position].at < slice_end:
                    request = requests[position]
                    self.clock.advance_to(max(request.at, self.clock.now))
                    body, content_type = request_body(self.config, request.features)
                    if endpoint is None:
                        dropped.append((body, request.label))
                    else:
                        endpoint.invoke(body, content_type, at=request.at, inference_id=request.record_id)
                        truth[request.record_id] = request.label
                    hour.requests += 1
                    position += 1
                if endpoint is not None:
                    endpoint.flush()  # the slice's capture file (SageMaker writes one every few minutes)
                elif slice_end >= end and dropped:
                    truth.update(self._drop_input_file(cloud, start, dropped))
                    dropped = []
                if reviewers is not None and slice_start <= answer_at < slice_end:
                    self.clock.advance_to(max(answer_at, self.clock.now))
                    cloud.settle()
                    self._answer(reviewers, answer_at)
                self.clock.advance_to(slice_end)
                for item in cloud.fire_schedules(slice_end) or []:
                    name = short_name(_name(item), self.config.prefix)
                    hour.schedules[name] = hour.schedules.get(name, 0) + 1
                cloud.settle()
            observer.observe(hour)
            hour.wall_seconds = time.monotonic() - started
            hours.append(hour)
            self.say(report.progress_line(hour, settings.hours))
        if observer.unweighted_labels:
            self.seams.append(
                f"{observer.unweighted_labels} labels were written without their row's inclusion probability (no \"sampling\" in the ground-truth "
                "line): the capture filter did not learn the endpoint's capture sampling percentage (DescribeEndpoint's "
                "DataCaptureConfig.CurrentSamplingPercentage), so these labels count only in the unweighted figures"
            )
        if isinstance(reviewers, BrowserReviewers):
            reviewers.stop()
        served_after = self._served_model()
        runs = [run for run in observer.executions.values() if "retraining" in run["machine"]]
        why = next((run["why"] for run in reversed(runs) if run["status"] != "RUNNING"), "no retraining run ended in the rehearsal")
        outcome = Outcome(
            environment=settings.environment,
            hours=hours,
            start=report.iso(settings.start),
            requests=len(requests),
            traffic=str(settings.traffic) if settings.traffic else "the environment's bundled data, three features shifted from the middle of the run",
            reviewers=f"{settings.reviewers}" + (f" (error rate {settings.error_rate})" if settings.reviewers == "simulated" else ""),
            retraining_runs=runs,
            served_model={"parameter": self.config.served_model_parameter, "before": served_before, "after": served_after, "updated": served_before != served_after, "why": why},
            unrehearsed=list(getattr(cloud, "unrehearsed", []) or []),
            notes=self.notes,
            seams=self.seams,
            drift_periods=observer.drift_periods(),
        )
        outcome.wall_seconds = time.monotonic() - began
        outcome.peak_memory_mb = peak_memory_mb()
        out = settings.out
        copied = report.copy_objects(((b, k, observer.read(b, k)) for b, k, _ in observer.objects()), out)
        summary = report.write(outcome, out)
        self.say(
            f"done in {outcome.wall_seconds:.0f} s (peak memory {outcome.peak_memory_mb:.0f} MB): captured {summary['captured']}, "
            f"tasks completed {summary['review_tasks_completed']}, labels {summary['labels_written']}, drifted {summary['drifted_features'] or 'none'}, "
            f"retraining runs {summary['retraining_runs']}, promoted {summary['promoted']}; {copied} objects under {out / report.OBJECTS}; open {out / report.INDEX}"
        )
        return outcome

    def _drop_input_file(self, cloud: Any, hour: dt.datetime, rows: list[tuple[str, Any]]) -> dict[str, Any]:
        """An hour's requests as one input file of the nightly batch (CSV, no header, the features in the
        model's order); returns each row's true label under its origin, ``<key>:<line>`` (1-based)."""
        if self.config.batch.content_type != "text/csv":
            raise RehearsalError(f"batch.content_type {self.config.batch.content_type!r}: the rehearsal drops CSV input files only")
        variables = cloud.function(BATCH_HANDLER).environment
        key = f"{variables['INPUT_PREFIX']}rehearsal-{hour:%Y%m%d-%H}.csv"
        cloud.client("s3").put_object(Bucket=variables["DATA_BUCKET"], Key=key, Body="".join(f"{line}\n" for line, _ in rows).encode())
        return {f"{key}:{number}": label for number, (_, label) in enumerate(rows, start=1)}

    def _answer(self, reviewers: Any, at: dt.datetime) -> None:
        """The reviewers answer the tasks that have waited the review delay."""
        reviewers.answer_open_tasks(at, older_than=dt.timedelta(hours=self.settings.review_delay_hours))


class BrowserReviewers:
    """``REVIEWERS=browser``: the reviewers' app served on 127.0.0.1 against the rehearsal, as
    ``make review-local`` serves it (the page, the local sign-in standing in for Cognito, the JWT
    checks the HTTP API makes: ``local.review_local``), its API routes answered by the rehearsal's
    own reviewers' app function with its template settings. Once an hour, when tasks are open, the
    run prints the address and waits until the person presses Enter (or the input ends)."""

    def __init__(self, cloud: Any, say: Callable[[str], None], port: int = 8765) -> None:
        import threading
        from http.server import ThreadingHTTPServer

        from local import review_local
        from local.rehearse.reviewers import API_HANDLER
        from stacks.review.app import content_security_policy

        self.cloud, self.say = cloud, say
        self.table = cloud.function(API_HANDLER).environment["TASKS_TABLE"]
        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", port), review_local._Handler)
        except OSError:  # the port is taken (make review-local?): any free one
            self.server = ThreadingHTTPServer(("127.0.0.1", 0), review_local._Handler)
        origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        issuer = review_local.LocalIssuer(f"{origin}/local-login")
        app = review_local.LocalApp(issuer, origin, lambda event, context: cloud.invoke(API_HANDLER, event), content_security_policy(origin))
        self.server.RequestHandlerClass = type("Handler", (review_local._Handler,), {"app": app})
        threading.Thread(target=self.server.serve_forever, name="rehearsal-reviewers-app", daemon=True).start()
        self.url = f"{origin}/"
        say(f"the reviewers' app is at {self.url} (signed in as the local reviewer)")

    def open_tasks(self) -> int:
        dynamodb = boto3_client("dynamodb")
        pages = dynamodb.get_paginator("scan").paginate(TableName=self.table, FilterExpression="#s = :open", ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":open": {"S": "open"}})
        return sum(page["Count"] for page in pages)

    def answer_open_tasks(self, at: dt.datetime, older_than: dt.timedelta | None = None) -> int:
        waiting = self.open_tasks()
        if waiting:
            self.say(f"{at:%Y-%m-%d %H:%M} UTC (simulated): {waiting} review tasks open at {self.url}; answer what you like, then press Enter to go on")
            try:
                input()
            except EOFError:
                pass
        return waiting - self.open_tasks()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def boto3_client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def short_name(name: str, prefix: str) -> str:
    """A schedule's name without the environment's prefix, the stack's and CDK's hash: "data-quality", "ReviewersAppSweep"."""
    name = re.sub(r"^(review|monitoring|retraining|storage|serving|operations)-", "", name.removeprefix(prefix + "-"))
    return re.sub(r"(Schedule)?[0-9A-F]{8}$", "", name)


def _name(fired: Any) -> str:
    if isinstance(fired, dict):
        return str(fired.get("name") or fired.get("schedule") or fired)
    return str(getattr(fired, "name", fired))
