"""The nightly batch run's three steps: plan (which input files, cleaned and listed in a manifest),
finish (the transform's output to review and profiling, through the capture filter's own code) and
fail (the run's files given back for the next night). The state machine calls them through
``handler.step``; this module holds what they do.

Idempotent per input file: the manifest table holds one item per input key. Plan claims a file
with a conditional put (``attribute_not_exists(file) OR status = failed OR run = <this run> OR
(status = claimed AND claimedAt < <this run's time - STALE_CLAIM>)``), so a file already claimed by
another run or done is never planned again, a failed one is retried the next night, a retried plan
of the same run takes its own files again, and a file whose run died without saying so (its
execution stopped or timed out between its steps) is taken by a run a day later. Finish marks them
done and fail marks them failed, each only while the item still names its run.

A re-run that reaches review again (finish retried after a partial hand-off, or a failed night's
files retried) sends the same rows under the same loop names: a batch row's event ID is
``<input key>:<line>``, whatever inference ID the transform generates, and the loop name hashes
event IDs (``lambdas.shared.review_group``), so the starter recognises a loop it already started.

Run layout, all in the data bucket under ``<runs prefix><run>/``: ``manifest.json`` (ManifestFile
format: ``records.manifest_document``), ``input/<key>`` (a cleaned copy of a file that had
malformed lines: only its good lines), ``plan.json`` (for finish: each file's manifest key and
which of its lines were left out), ``rejected.jsonl``, ``output/`` (the transform's), ``capture/``
(its data capture) and ``report.json`` + ``report.html``.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
import html
import json
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import ClientError

from lambdas.capture.events import CaptureObject
from lambdas.capture.filtering import FilterReport, FilterSettings, RejectSpool, read_lines, reading, route_rows
from lambdas.capture.records import LineResult, batch_capture_part, manifest_document, manifest_uris, parse_joined_line
from lambdas.shared import aws

CLAIMED, DONE, FAILED = "claimed", "done", "failed"
COMPLETED, FAILED_RUN, NO_INPUT = "Completed", "Failed", "NoInput"  # the "Batch Run Ended" detail's status
CONTENT_TYPES = ("text/csv",)
# A batch transform's whole output is captured: every row was predicted, so a reviewed row's
# inclusion probability is the selection's alone (``selection.inclusion_probability`` with s = 1).
CAPTURE_FRACTION = 1.0
# "For every S3 object used as input for the transform job, batch transform stores the transformed
# data with an .out suffix in a corresponding subfolder in the location in the output prefix", and
# "creates an .out file only if the transform job succeeds on the entire file" (botocore's sagemaker
# model, TransformOutput.S3OutputPath).
OUTPUT_SUFFIX = ".out"
# A run that still holds a claim this long after it began has died without reaching finish or fail:
# longer than any run lasts (the transform's own limit is hours), shorter than a second night.
STALE_CLAIM = dt.timedelta(hours=20)
# The review queue's SendMessageBatch calls in flight at once. A night of a million rows under seed
# 002's rule is about 17,000 calls (make bench): one at a time, each would have to answer within
# about 50 ms to fit the 15-minute timeout; eight at a time, within about 400 ms. boto3 clients
# are thread-safe (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html#multithreading-or-multiprocessing-with-clients).
SENDERS = 8
_SPOOL_IN_MEMORY = 1024 * 1024
_MB = 1024 * 1024


@dataclass(frozen=True)
class BatchSettings:
    data_bucket: str
    input_prefix: str
    runs_prefix: str
    manifest_table: str
    feature_count: int
    max_payload_bytes: int  # a line longer than the transform's MaxPayloadInMB cannot be sent to the model
    filter: FilterSettings

    def run_prefix(self, run: str) -> str:
        return f"{self.runs_prefix}{run}/"


def check_run(event: dict[str, Any]) -> str:
    run = event.get("run")
    if not isinstance(run, str) or not run or "/" in run:
        raise ValueError(f"event key 'run' is {run!r}: a run ID (non-empty text without '/') is required")
    return run


# --- plan -----------------------------------------------------------------------------------------


@dataclass
class PlannedFile:
    key: str  # the input object
    etag: str
    source: str  # the key the manifest lists: the input itself, or its cleaned copy
    rows: int = 0
    rejected_lines: list[int] = field(default_factory=list)  # original line numbers left out, ascending

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "etag": self.etag, "source": self.source, "rows": self.rows, "rejectedLines": self.rejected_lines}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> PlannedFile:
        return cls(item["key"], item["etag"], item["source"], item["rows"], list(item["rejectedLines"]))

    def origin_line(self) -> Callable[[int], int]:
        """Line n of the manifest's copy -> its line number in the input file (the k-th good line)."""
        left_out = self.rejected_lines
        if not left_out:
            return lambda n: n

        def original(n: int) -> int:
            # the smallest m with m - (left-out lines <= m) == n
            low, high = n, n + len(left_out)
            while low < high:
                middle = (low + high) // 2
                if middle - bisect.bisect_right(left_out, middle) < n:
                    low = middle + 1
                else:
                    high = middle
            return low

        return original


def plan(s3: Any, dynamodb: Any, settings: BatchSettings, run: str, time: str) -> dict[str, Any]:
    prefix = settings.run_prefix(run)
    claimed, skipped, ignored = [], 0, []
    for item in _list(s3, settings.data_bucket, settings.input_prefix):
        key = item["Key"]
        if key.endswith("/"):
            continue
        if not key.endswith(".csv"):
            ignored.append(key)
            continue
        if _claim(dynamodb, settings.manifest_table, key, item["ETag"], run, time):
            claimed.append(PlannedFile(key, item["ETag"], key))
        else:
            skipped += 1
    rejected_count = 0
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as rejected:
        for planned in claimed:
            rejected_count += _clean(s3, settings, prefix, planned, rejected)
        if rejected_count:
            rejected.seek(0)
            s3.upload_fileobj(rejected, settings.data_bucket, f"{prefix}rejected.jsonl")
    with_rows = [f for f in claimed if f.rows]
    rows = sum(f.rows for f in with_rows)
    manifest_key = f"{prefix}manifest.json"
    s3.put_object(Bucket=settings.data_bucket, Key=manifest_key, Body=manifest_document(settings.data_bucket, [f.source for f in with_rows]),
                  ContentType="application/json")
    document = {"run": run, "time": time, "files": [f.to_json() for f in claimed], "alreadyClaimed": skipped, "ignored": ignored}
    s3.put_object(Bucket=settings.data_bucket, Key=f"{prefix}plan.json", Body=orjson.dumps(document), ContentType="application/json")
    for planned in claimed:
        if not planned.rows:  # nothing of it can be predicted: done now, its lines are in rejected.jsonl
            _mark(dynamodb, settings.manifest_table, planned.key, run, DONE)
    result = {
        "run": run, "files": [f.key for f in claimed], "rows": rows, "rejected": rejected_count,
        "manifest_uri": f"s3://{settings.data_bucket}/{manifest_key}", "has_input": rows > 0,
    }
    if not rows:
        summary = {"run": run, "status": NO_INPUT, "files": len(claimed), "rows": 0, "rejected": rejected_count, "alreadyClaimed": skipped,
                   "ignored": len(ignored)}
        result["report_uri"] = _write_report(s3, settings, run, {**summary, "rejectedReasons": _rejected_reasons(s3, settings, run) if rejected_count else {}})
    return result


def _list(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents") or []


def _claim(dynamodb: Any, table: str, key: str, etag: str, run: str, time: str) -> bool:
    began = _when(time)
    if began is None:
        raise ValueError(f"event key 'time' is {time!r}, not an ISO 8601 time")
    claimed_at, stale = (moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in (began, began - STALE_CLAIM))
    try:
        dynamodb.put_item(
            TableName=table,
            Item={"file": {"S": key}, "run": {"S": run}, "status": {"S": CLAIMED}, "etag": {"S": etag}, "claimedAt": {"S": claimed_at}},
            ConditionExpression="attribute_not_exists(#file) OR #status = :failed OR #run = :run OR (#status = :claimed AND #at < :stale)",
            ExpressionAttributeNames={"#file": "file", "#status": "status", "#run": "run", "#at": "claimedAt"},
            ExpressionAttributeValues={":failed": {"S": FAILED}, ":run": {"S": run}, ":claimed": {"S": CLAIMED}, ":stale": {"S": stale}},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _mark(dynamodb: Any, table: str, key: str, run: str, status: str) -> bool:
    """Set a file's status while it still belongs to ``run``; False when another run has taken it since."""
    try:
        dynamodb.update_item(
            TableName=table, Key={"file": {"S": key}},
            UpdateExpression="SET #status = :status",
            ConditionExpression="#run = :run",
            ExpressionAttributeNames={"#status": "status", "#run": "run"},
            ExpressionAttributeValues={":status": {"S": status}, ":run": {"S": run}},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def line_problem(line: bytes | None, feature_count: int, max_bytes: int) -> str | None:
    """Why an input line cannot be sent to the model (None: it can): the model takes
    ``feature_count`` numbers, comma-separated, no header (the training data's layout). An empty
    field is a missing value, which XGBoost takes (the real-time path sends it as it is too)."""
    if line is None or len(line) > max_bytes:
        return f"row too large: longer than the transform's MaxPayloadInMB ({max_bytes // _MB} MB)"
    text = line.rstrip(b"\r")
    if not text.strip():
        return "blank line"
    fields = text.count(b",") + 1
    if fields != feature_count:
        return f"{fields} fields; the model takes {feature_count} features"
    try:
        values = orjson.loads(b"[" + text + b"]")
    except orjson.JSONDecodeError:
        values = None
    if values is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        bad = next((i for i, v in enumerate(text.split(b","), start=1) if v.strip() and not _number(v)), None)
        return f"feature {bad} is not a number" if bad is not None else None
    return None


def _number(value: bytes) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _clean(s3: Any, settings: BatchSettings, prefix: str, planned: PlannedFile, rejected: Any) -> int:
    """Count the file's good rows; when some lines are malformed, report them and write the cleaned
    copy (only the good lines, in order) that the manifest lists instead. Two passes over the file
    only when it has malformed lines; memory stays one line plus the left-out line numbers."""
    bad = 0
    for number, line in enumerate(_lines(s3, settings, planned.key, planned.etag, settings.max_payload_bytes), start=1):
        problem = line_problem(line, settings.feature_count, settings.max_payload_bytes)
        if problem is None:
            planned.rows += 1
            continue
        bad += 1
        planned.rejected_lines.append(number)
        rejected.write(orjson.dumps({"file": planned.key, "line": number, "reason": problem, "step": "plan"}) + b"\n")
    if bad and planned.rows:
        planned.source = f"{prefix}input/{planned.key}"
        left_out = set(planned.rejected_lines)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as copy:
            for number, line in enumerate(_lines(s3, settings, planned.key, planned.etag, settings.max_payload_bytes), start=1):
                if number not in left_out:
                    copy.write(line + b"\n")
            copy.seek(0)
            s3.upload_fileobj(copy, settings.data_bucket, planned.source)
    return bad


def _lines(s3: Any, settings: BatchSettings, key: str, etag: str, max_line: int) -> Iterator[bytes | None]:
    # IfMatch: the object read is the one claimed (a file replaced since the listing fails the run, not silently mixes).
    body = s3.get_object(Bucket=settings.data_bucket, Key=key, IfMatch=etag)["Body"]
    return read_lines(body, max_line=max_line)


# --- finish ---------------------------------------------------------------------------------------


def load_plan(s3: Any, settings: BatchSettings, run: str) -> dict[str, Any]:
    key = f"{settings.run_prefix(run)}plan.json"
    return orjson.loads(s3.get_object(Bucket=settings.data_bucket, Key=key)["Body"].read())


def captured_outputs(s3: Any, capture_uri: str) -> tuple[list[str], list[str]]:
    """(the output object URIs the run's batch capture names, problems with capture files)."""
    bucket, prefix = aws.split_s3_uri(capture_uri)
    outputs, problems = [], []
    for item in _list(s3, bucket, prefix):
        if batch_capture_part(item["Key"][len(prefix):]) != "output":
            continue
        try:
            outputs.extend(manifest_uris(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()))
        except ValueError as error:
            problems.append(f"s3://{bucket}/{item['Key']}: {error}")
    return sorted(set(outputs)), problems


def instance_seconds(transform: dict[str, Any]) -> float | None:
    """(TransformEndTime - TransformStartTime) x instance count, from DescribeTransformJob's output
    (Step Functions passes its timestamps as ISO text or epoch numbers); None when they are missing."""
    start, end = _when(transform.get("TransformStartTime")), _when(transform.get("TransformEndTime"))
    count = (transform.get("TransformResources") or {}).get("InstanceCount")
    if start is None or end is None or not isinstance(count, int):
        return None
    return round((end - start).total_seconds() * count, 3)


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 text, epoch number or datetime as an aware UTC datetime; None when it is none of them."""
    return _when(value)


def _when(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000 if value > 1e11 else value, dt.UTC)  # Step Functions: epoch milliseconds
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return None


@dataclass
class FinishTotals:
    predicted: int = 0
    rejected: int = 0
    selected: int = 0
    audited: int = 0
    groups: int = 0
    profiled: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    not_profiled: list[str] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, uri: str, report: FilterReport) -> None:
        self.predicted += report.rows
        self.rejected += report.rejected
        self.selected += report.selected
        self.audited += report.audited
        self.groups += report.groups
        self.reasons.update(report.reasons)
        if report.profile is not None:
            self.profiled += report.profile.rows
        if report.profiling_error:
            self.not_profiled.append(f"{uri}: {report.profiling_error}")
        self.outputs.append({"output": uri, "rows": report.rows, "selected": report.selected, "groups": report.groups, "rejected": report.rejected,
                             "sketch": report.profile.sketch_key if report.profile else None})


def finish(s3: Any, sqs: Any, dynamodb: Any, settings: BatchSettings, event: dict[str, Any], time_left: Callable[[], float] | None = None) -> dict[str, Any]:
    run = check_run(event)
    transform = event.get("transform")
    if not isinstance(transform, dict):
        raise ValueError("event key 'transform' is missing: the finish step takes DescribeTransformJob's output")
    status = transform.get("TransformJobStatus", "Completed")
    if status != "Completed":
        raise ValueError(f"transform {transform.get('TransformJobName')!r} is {status}, not Completed: the run goes to the fail step, not finish")
    document = load_plan(s3, settings, run)
    files = [PlannedFile.from_json(item) for item in document["files"]]
    by_source = {f.source: f for f in files if f.rows}
    output_path = ((transform.get("TransformOutput") or {}).get("S3OutputPath") or f"s3://{settings.data_bucket}/{settings.run_prefix(run)}output").rstrip("/") + "/"
    capture_uri = ((transform.get("DataCaptureConfig") or {}).get("DestinationS3Uri") or f"s3://{settings.data_bucket}/{settings.run_prefix(run)}capture").rstrip("/") + "/"
    outputs, problems = captured_outputs(s3, capture_uri)
    if not outputs:
        raise ValueError(f"the run's batch capture under {capture_uri} names no output objects"
                         + (f" ({'; '.join(problems)})" if problems else "") + ": nothing can be reviewed from it")
    ended = _when(transform.get("TransformEndTime")) or _when(document.get("time")) or dt.datetime.now(dt.UTC)
    totals = FinishTotals()
    unknown = []
    prefix = settings.run_prefix(run)
    sends = ParallelSends(sqs)
    try:
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as rejected:
            for uri in outputs:
                planned = by_source.get(_source_of(uri, output_path, by_source))
                if planned is None:
                    unknown.append(uri)
                    continue
                report = route_output(s3, sends, settings, uri, planned, ended, rejected, time_left)
                totals.add(uri, report)
            sends.wait()  # every group on the review queue before the files are marked done
            _write_rejected(s3, settings, prefix, rejected)
    finally:
        sends.close()
    missing = sorted(set(by_source) - {_source_of(u, output_path, by_source) for u in outputs})
    done = [f.key for f in files if f.rows and f.source not in missing]
    for key in done:
        _mark(dynamodb, settings.manifest_table, key, run, DONE)
    for key in (by_source[source].key for source in missing):  # no output for it: retried the next night
        _mark(dynamodb, settings.manifest_table, key, run, FAILED)
    rejected_plan = sum(len(f.rejected_lines) for f in files)
    summary = {
        "run": run, "status": COMPLETED, "files": len(done), "rows": totals.predicted, "rejected": rejected_plan + totals.rejected,
        "rejectedOutputRows": totals.rejected,
        "selected": totals.selected, "audited": totals.audited, "tasks": totals.groups, "profiled": totals.profiled,
        "instanceSeconds": instance_seconds(transform), "transformJob": transform.get("TransformJobName"),
    }
    detail = {
        **summary, "rejectedReasons": _rejected_reasons(s3, settings, run), "outputs": totals.outputs, "notProfiled": totals.not_profiled,
        "filesWithoutOutput": [by_source[s].key for s in missing], "outputsNotPlanned": unknown, "captureProblems": problems,
    }
    summary["report_uri"] = _write_report(s3, settings, run, detail)
    return summary


class ParallelSends:
    """The review queue's client for ``filtering``'s outbox, with up to SENDERS SendMessageBatch
    calls in flight. A call answers at once as if every entry was taken; what SQS really answered
    is checked in order as calls complete and by ``wait``, which raises for any refused entry, as
    the outbox itself does, so the finish step fails and no file is marked done. A failed night's
    groups are sent again under the same loop names, which the starter recognises."""

    def __init__(self, sqs: Any, senders: int = SENDERS) -> None:
        self._sqs = sqs
        self._senders = senders
        self._pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="review-queue")
        self._pending: deque[Future[dict[str, Any]]] = deque()
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        while len(self._pending) >= 2 * self._senders:  # bounded: memory stays a few batches
            self._check(self._pending.popleft())
        self._pending.append(self._pool.submit(self._sqs.send_message_batch, QueueUrl=QueueUrl, Entries=Entries))
        self.calls += 1
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}

    def wait(self) -> None:
        while self._pending:
            self._check(self._pending.popleft())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _check(future: Future[dict[str, Any]]) -> None:
        response = future.result()  # raises what the call raised
        failed = response.get("Failed") or []
        if failed:
            reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
            raise RuntimeError(f"review queue refused {len(failed)} groups: {reasons}")


def _source_of(output_uri: str, output_path: str, sources: dict[str, Any]) -> str | None:
    """The manifest key an output object was written for: ``<S3OutputPath><key>.out``, the key
    relative to the manifest's prefix (the bucket's root); should SageMaker write it relative to a
    deeper folder, the one planned key ending with that relative path, else the one with its name
    (an object matching none or several is reported in ``outputsNotPlanned``)."""
    if not output_uri.startswith(output_path) or not output_uri.endswith(OUTPUT_SUFFIX):
        return None
    relative = output_uri[len(output_path):-len(OUTPUT_SUFFIX)]
    if relative in sources:
        return relative
    candidates = [source for source in sources if source.endswith("/" + relative)]
    if not candidates:  # the API reference's own example keeps neither: its object's name, if only one has it
        name = relative.rsplit("/", 1)[-1]
        candidates = [source for source in sources if source.rsplit("/", 1)[-1] == name]
    return candidates[0] if len(candidates) == 1 else None


def route_output(s3: Any, sqs: Any, settings: BatchSettings, uri: str, planned: PlannedFile, ended: dt.datetime, rejected: Any,
                  time_left: Callable[[], float] | None) -> FilterReport:
    """One output object through the capture filter's path (``filtering.route_rows``): the same
    selection, groups, hand-off to the review queue and data-quality profiling as a capture object."""
    config = settings.filter
    bucket, key = aws.split_s3_uri(uri)
    obj = CaptureObject(bucket, key, time=ended)
    report = FilterReport()
    profiler, options = reading(s3, config, report, uri)
    origin = planned.origin_line()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]

    def parsed() -> Iterator[tuple[int, LineResult | None]]:
        for number, line in enumerate(read_lines(body, max_line=config.max_line), start=1):
            yield number, None if line is None else parse_joined_line(line, number, options, settings.feature_count, planned.key, origin(number))

    route_rows(parsed(), sqs, uri, config, report, RejectSpool(rejected, uri, "output"), time_left, profiler, CAPTURE_FRACTION)
    if profiler is not None:
        report.profile = profiler.write(s3, config.profiling.bucket, obj, ended.astimezone(dt.UTC).strftime("%Y/%m/%d/%H"))
    return report


def _write_rejected(s3: Any, settings: BatchSettings, prefix: str, spool: Any) -> None:
    """The finish step's rejected rows appended to the plan's ``rejected.jsonl`` (one file per run)."""
    if spool.tell() == 0:
        return
    key = f"{prefix}rejected.jsonl"
    try:
        earlier = s3.get_object(Bucket=settings.data_bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("NoSuchKey", "404"):
            raise
        earlier = b""
    # A retried finish must not append its rows twice: keep only the plan's lines from before.
    earlier = b"".join(line + b"\n" for line in earlier.splitlines() if b'"step":"plan"' in line)
    spool.seek(0)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as combined:
        combined.write(earlier)
        while chunk := spool.read(_MB):
            combined.write(chunk)
        combined.seek(0)
        s3.upload_fileobj(combined, settings.data_bucket, key)


def _rejected_reasons(s3: Any, settings: BatchSettings, run: str) -> dict[str, int]:
    try:
        body = s3.get_object(Bucket=settings.data_bucket, Key=f"{settings.run_prefix(run)}rejected.jsonl")["Body"]
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return {}
        raise
    reasons: Counter[str] = Counter()
    for line in read_lines(body):
        if line:
            reasons[orjson.loads(line)["reason"].split(";")[0]] += 1
    return dict(reasons.most_common())


# --- fail -----------------------------------------------------------------------------------------


def fail(s3: Any, dynamodb: Any, settings: BatchSettings, event: dict[str, Any]) -> dict[str, Any]:
    run = check_run(event)
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    try:  # the files the transform was to predict (a file with no good line was done at plan)
        files = [item["key"] for item in load_plan(s3, settings, run)["files"] if item["rows"]]
    except ClientError as problem:
        if problem.response["Error"]["Code"] not in ("NoSuchKey", "404"):
            raise
        files = event.get("files") if isinstance(event.get("files"), list) else []
    marked = [key for key in files if isinstance(key, str) and _mark(dynamodb, settings.manifest_table, key, run, FAILED)]
    summary = {"run": run, "status": FAILED_RUN, "files": len(marked), "rows": 0, "selected": 0, "tasks": 0,
               "error": str(error.get("Error") or "unknown"), "cause": str(error.get("Cause") or "")[:2000]}
    summary["report_uri"] = _write_report(s3, settings, run, {**summary, "retriedNextNight": marked})
    return summary


# --- report ---------------------------------------------------------------------------------------


def _write_report(s3: Any, settings: BatchSettings, run: str, report: dict[str, Any]) -> str:
    prefix = settings.run_prefix(run)
    s3.put_object(Bucket=settings.data_bucket, Key=f"{prefix}report.json", Body=json.dumps(report, indent=2).encode(), ContentType="application/json")
    s3.put_object(Bucket=settings.data_bucket, Key=f"{prefix}report.html", Body=report_html(report).encode(), ContentType="text/html; charset=utf-8")
    return f"s3://{settings.data_bucket}/{prefix}report.json"


_LABELS = {
    "status": "Status", "files": "Input files", "rows": "Rows predicted", "rejected": "Rows rejected", "selected": "Rows sent to review",
    "audited": "of which audit rows", "tasks": "Review tasks created", "profiled": "Rows profiled for data quality",
    "instanceSeconds": "Transform instance-seconds", "transformJob": "Transform job", "error": "Error", "cause": "Cause",
}


def report_html(report: dict[str, Any]) -> str:
    """The run report as one self-contained page (no scripts, no external resources)."""
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(report[name]))}</td></tr>" for name, label in _LABELS.items() if name in report)
    reasons = report.get("rejectedReasons") or {}
    reason_rows = "".join(f"<tr><td>{html.escape(reason)}</td><td>{count}</td></tr>" for reason, count in reasons.items())
    reasons_table = f"<h2>Rejected rows by reason</h2><table><tr><th>Reason</th><th>Rows</th></tr>{reason_rows}</table>" if reasons else ""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Batch run " + html.escape(str(report.get("run"))) + "</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>"
        f"<h1>Batch run {html.escape(str(report.get('run')))}</h1><table>{rows}</table>{reasons_table}"
        "<p>Rejected lines, one JSON object each, are in rejected.jsonl beside this report.</p></html>"
    )
