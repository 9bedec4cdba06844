"""Read one capture object line by line: send the rows a human should see to the review queue, and
profile every row for the open monitors (``profiling``), each part switchable, in one read and one parse.

A row goes to review when the rule selects it or, among the rows it does not select, when it is in
the audit sample (``selection``); each carries ``selectedBy`` and ``inclusionProbability``, and audit
rows join the same groups as rule rows, in file order, so a task does not show which is which.

Memory stays flat whatever the object's size: lines are streamed, selected rows leave in groups of
at most ``rows_per_loop`` as soon as a group is full, and rejected lines are spooled to a temporary
file that becomes a report next to the review data. Time is linear in the object's size: lines are
cut from fixed-size chunks (botocore's ``iter_lines`` re-joins its whole pending buffer for every
chunk, quadratic in a line's length), and a line longer than any real capture record is skipped as
it streams, never held in memory, and reported as ``row too large``.

The path from parsed lines to review groups and profiles (``reading``, ``route_rows``) is also the
nightly batch run's (``lambdas/batch``): its transform's output lines, parsed by the capture parser's
batch reader, are selected, grouped, handed to the same review queue and profiled the same way.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from lambdas.capture.events import CaptureObject
from lambdas.capture.profiling import BaselineUnavailable, Profiler, ProfileReport, ProfilingSettings, baselines, hour_of
from lambdas.capture.records import LineResult, ParseOptions, parse_line
from lambdas.capture.selection import AUDIT, Audit, SelectionRule, inclusion_probability, selected_by
from lambdas.shared import aws
from lambdas.shared.review_group import ReviewGroup

READ_CHUNK = 256 * 1024
# InvokeEndpoint's request and response bodies are at most 6,291,456 bytes each (botocore
# sagemaker-runtime model). A capture line holds both, as base64 (4/3 of the size) or as a JSON
# string (escaped quotes and line breaks: about twice at worst), plus its metadata. No real capture
# line is longer; a longer one is reported unread, which bounds the memory any one line can take.
INVOKE_BODY_MAX = 6_291_456
MAX_LINE = 2 * 2 * INVOKE_BODY_MAX + 64 * 1024
SQS_BATCH = 10  # SendMessageBatch takes at most 10 entries
SQS_MESSAGE_MAX = 256 * 1024  # bytes, SQS's message size limit
REJECTED_PREFIX = "rejected-captures"
TOO_LARGE_FOR_MESSAGE = "row too large for a review message"
_SPOOL_IN_MEMORY = 1024 * 1024


# Kept back from the function's timeout to send the groups so far, write the report and park.
TIME_RESERVE_SECONDS = 20
_CLOCK_EVERY = 256  # lines between looks at the clock


class ObjectGone(Exception):
    """The capture object no longer exists (deleted or expired before it was read)."""


class OutOfTime(Exception):
    """The object could not be read to its end within the function's timeout."""


@dataclass(frozen=True)
class FilterSettings:
    options: ParseOptions
    rule: SelectionRule
    rows_per_loop: int
    review_queue_url: str  # "" when review selection is off
    report_bucket: str
    max_line: int = MAX_LINE  # bytes; a longer line is reported as "row too large", unread
    review: bool = True  # select rows for human review
    profiling: ProfilingSettings | None = None  # profile rows for the open monitors
    audit: Audit | None = None  # the audit sample of the rows the rule does not select (None: none)


def _never(probability: float, prediction: int) -> bool:
    return False


@dataclass
class FilterReport:
    records: int = 0
    rows: int = 0
    selected: int = 0  # rows sent to review, audit rows included
    audited: int = 0  # of which audit rows
    groups: int = 0
    rejected: int = 0
    blank_lines: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    report_key: str | None = None
    profile: ProfileReport | None = None
    # Why the object was not profiled for data quality (no usable baseline); review was not affected.
    profiling_error: str | None = None


def open_capture_object(s3: Any, obj: CaptureObject) -> Any:
    """The object's streaming body; ``ObjectGone`` if neither its key nor the decoded key exists.

    S3 answers a missing key with 404 NoSuchKey only to a caller that may list the bucket, and
    with 403 AccessDenied otherwise (GetObject's documentation). So a 403 is settled by listing
    the key: not listed means gone; listed (or the listing denied too) is a real denial, raised
    so the record is retried and, if it persists, reaches the alarmed dead-letter queue.
    """
    for key in (obj.key, obj.alternative_key):
        if key is None:
            continue
        try:
            return s3.get_object(Bucket=obj.bucket, Key=key)["Body"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404") or (code == "AccessDenied" and not aws.key_listed(s3, obj.bucket, key)):
                continue
            raise
    raise ObjectGone(f"{obj.uri} no longer exists")


def read_lines(body: Any, *, chunk_size: int = READ_CHUNK, max_line: int = MAX_LINE) -> Iterator[bytes | None]:
    """Each line of ``body`` without its line feed (split at line feeds only, as Python's file
    iteration and so the CLI split); ``None`` for a line longer than ``max_line`` bytes, which is
    skipped as it streams.

    Every byte is copied a bounded number of times, so the time is linear in the object's size and
    the memory at most ``max_line`` plus one chunk.
    """
    pending = bytearray()
    too_long = False
    while chunk := body.read(chunk_size):
        view = memoryview(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if too_long or len(pending) + end - start > max_line:
                yield None
            elif pending:
                pending += view[start:end]
                yield bytes(pending)
            else:
                yield chunk[start:end]
            pending.clear()
            too_long = False
            start = end + 1
        if too_long or len(pending) + len(chunk) - start > max_line:
            pending.clear()  # a line this long is dropped unread
            too_long = True
        else:
            pending += view[start:]
    if too_long:
        yield None
    elif pending:
        yield bytes(pending)


def filter_capture_object(
    s3: Any,
    sqs: Any,
    obj: CaptureObject,
    settings: FilterSettings,
    time_left: Callable[[], float] | None = None,
    capture_fraction: float | None = None,
) -> FilterReport:
    """``time_left`` (seconds): when it runs low, the complete groups so far are sent, the report is
    written and ``OutOfTime`` says where reading stopped, rather than a timeout that says nothing.

    ``capture_fraction``: the endpoint's capture sampling fraction for this object's rows (``s`` of
    each row's ``inclusionProbability``); None when it is not known, and then rows carry none."""
    report = FilterReport()
    body = open_capture_object(s3, obj)
    profiler, options = reading(s3, settings, report, obj.uri)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as rejected:
        try:
            _filter_lines(body, sqs, obj, settings, options, report, rejected, time_left, profiler, capture_fraction)
            if profiler is not None:  # only for an object read to its end: a partial profile would look whole
                report.profile = profiler.write(s3, settings.profiling.bucket, obj, hour_of(obj))
        finally:
            # Written even when a later line fails the object: what was rejected so far is known
            # now; the retry reads the object again and writes the whole report.
            if report.rejected:
                report.report_key = f"{REJECTED_PREFIX}/{obj.bucket}/{obj.key}.jsonl"
                rejected.seek(0)
                s3.upload_fileobj(rejected, settings.report_bucket, report.report_key)
    return report


def reading(s3: Any, settings: FilterSettings, report: FilterReport, source_uri: str) -> tuple[Profiler | None, ParseOptions]:
    """How to read one object (a capture object, or a batch transform's output): its profiler, if
    it is profiled, and the parse options that go with it.

    Without profiling, rows neither the rule nor the audit selects are counted, never decoded;
    profiling needs every row's features, so then every row is decoded and the selection asked for each."""
    profiler = _profiler(s3, settings.profiling, report, source_uri)
    keep = None if profiler is not None else settings.rule.selects_prediction if settings.review else _never
    audit = settings.audit.selects if settings.audit is not None and keep is not None and settings.review else None
    return profiler, replace(settings.options, keep=keep, audit=audit, profile=profiler is not None)


def _profiler(s3: Any, profiling: ProfilingSettings | None, report: FilterReport, source_uri: str) -> Profiler | None:
    """The object's profiler; without a usable baseline, no data-quality sketch (``report.profiling_error``
    says why) but still the explainability sample, which needs no baseline."""
    if profiling is None or not profiling.monitors:
        return None
    layout = None
    if profiling.data_quality:
        try:
            layout = baselines.layout(s3, profiling.bucket)
        except BaselineUnavailable as error:
            report.profiling_error = str(error)
    if layout is None and not profiling.explainability:
        return None
    return Profiler(layout, profiling, source_uri)


def _filter_lines(
    body: Any,
    sqs: Any,
    obj: CaptureObject,
    settings: FilterSettings,
    options: ParseOptions,
    report: FilterReport,
    rejected: BinaryIO,
    time_left: Callable[[], float] | None,
    profiler: Profiler | None = None,
    capture_fraction: float | None = None,
) -> None:
    def parsed() -> Iterator[tuple[int, LineResult | None]]:
        for number, line in enumerate(read_lines(body, max_line=settings.max_line), start=1):
            yield number, None if line is None else parse_line(line, number, options)

    route_rows(parsed(), sqs, obj.uri, settings, report, RejectSpool(rejected, obj.uri), time_left, profiler, capture_fraction)


class RejectSpool:
    """Where an object's rejected lines go: one JSON line each, ``source`` naming the object."""

    def __init__(self, spool: BinaryIO, source: str, source_field: str = "captureObject") -> None:
        self.spool, self.source, self.source_field = spool, source, source_field

    def __call__(self, report: FilterReport, line: int, reason: str, event_id: str | None, row: int | None, origin: dict[str, Any] | None = None) -> None:
        report.rejected += 1
        report.reasons[reason.split(":")[0]] += 1
        entry = {self.source_field: self.source, "line": line, "reason": reason, "eventId": event_id, "rowIndex": row}
        if origin is not None:
            entry["origin"] = origin
        self.spool.write(json.dumps(entry).encode() + b"\n")


def route_rows(
    parsed: Iterable[tuple[int, LineResult | None]],
    sqs: Any,
    source_uri: str,
    settings: FilterSettings,
    report: FilterReport,
    spool: RejectSpool,
    time_left: Callable[[], float] | None = None,
    profiler: Profiler | None = None,
    capture_fraction: float | None = None,
) -> None:
    """The one path from parsed lines to review and profiling, for real-time capture objects and
    batch transform output alike: each line's rejected rows reported, its rows profiled, the rows
    the rule or the audit selects sent to review in groups of ``rows_per_loop`` (named after
    ``source_uri``). A ``None`` line is one too long to read (``read_lines``)."""

    def reject(line: int, reason: str, event_id: str | None, row: int | None, origin: dict[str, Any] | None = None) -> None:
        spool(report, line, reason, event_id, row, origin)

    outbox = _Outbox(sqs, settings.review_queue_url, source_uri, reject)
    group: list[dict[str, Any]] = []
    # The parser kept only the selected rows (ParseOptions.keep and .audit) unless every row is
    # decoded for profiling; either way each kept row is asked again which selected it (few rows).
    review, rule, audit = settings.review, settings.rule, settings.audit
    profile = profiler.add if profiler is not None else None  # a line's rows at once
    for number, result in parsed:
        if time_left is not None and number % _CLOCK_EVERY == 0 and time_left() < TIME_RESERVE_SECONDS:
            outbox.flush()  # whole groups only: a cut group would get another loop name on a redrive
            raise OutOfTime(
                f"{source_uri} was not read to its end within the function's timeout: stopped before line {number}; the "
                f"{outbox.groups} complete review groups before it were sent (a redrive sends them again under the same "
                "loop names). Raise the function's timeout or memory, or split the object."
            )
        if result is None:
            report.records += 1
            reject(number, f"row too large: the line is longer than {settings.max_line:,} bytes, more than any capture record holds; skipped unread", None, None)
            continue
        if result.blank:
            report.blank_lines += 1
            continue
        report.records += 1
        report.rows += len(result.rows) + result.skipped
        for item in result.rejected:
            reject(item.line_number, item.reason, item.event_id, item.row_index)
        if profiler is not None and result.profile_only:
            for output, features in result.profile_only:
                profiler.add_partial(output, features)
        if profile is not None and result.rows:
            profile(result.rows)
        for row in result.rows if review else ():
            by = selected_by(rule, audit, row.probability, row.prediction, row.record_id, row.row_index)
            if by is None:
                continue
            if isinstance(row.raw_features, str) and len(row.raw_features) > SQS_MESSAGE_MAX:
                # Known before the row is split into features (millions of strings, for nothing).
                reject(number, TOO_LARGE_FOR_MESSAGE, row.event_id, row.row_index, row.origin)
                continue
            group.append({
                **row.to_json(), "captureLine": number,
                "selectedBy": by, "inclusionProbability": inclusion_probability(by, capture_fraction, audit),
            })
            if len(group) == settings.rows_per_loop:
                outbox.add(group)
                group = []
    if group:
        outbox.add(group)
    outbox.flush()
    report.selected, report.audited, report.groups = outbox.rows, outbox.audited, outbox.groups


class _Outbox:
    """Sends review groups ten at a time; a group SQS refuses raises, so the object is retried.

    A group whose message would exceed SQS's size limit is split; a single row that alone exceeds
    it cannot be reviewed and is reported as rejected.
    """

    def __init__(self, sqs: Any, queue_url: str, capture_uri: str, reject: Callable[..., None]) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._capture_uri = capture_uri
        self._reject = reject
        self._pending: list[str] = []
        self.groups = 0
        self.rows = 0
        self.audited = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        body = ReviewGroup(self._capture_uri, tuple(rows)).to_body()
        if len(body.encode()) > SQS_MESSAGE_MAX:
            if len(rows) == 1:
                row = rows[0]
                self._reject(row["captureLine"], TOO_LARGE_FOR_MESSAGE, row["eventId"], row["rowIndex"], row.get("origin"))
                return
            half = len(rows) // 2
            self.add(rows[:half])
            self.add(rows[half:])
            return
        self._pending.append(body)
        self.groups += 1
        self.rows += len(rows)
        self.audited += sum(row["selectedBy"] == AUDIT for row in rows)
        if len(self._pending) == SQS_BATCH:
            self.flush()

    def flush(self) -> None:
        for batch in _batches(self._pending):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)]
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            failed = response.get("Failed") or []
            if failed:
                reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
                raise RuntimeError(f"review queue refused {len(failed)} of {len(entries)} groups: {reasons}")
        self._pending = []


def _batches(bodies: list[str]) -> Iterator[list[str]]:
    """At most 10 entries and 256 KiB per SendMessageBatch."""
    batch: list[str] = []
    size = 0
    for group in bodies:
        length = len(group.encode())
        if batch and (len(batch) == SQS_BATCH or size + length > SQS_MESSAGE_MAX):
            yield batch
            batch, size = [], 0
        batch.append(group)
        size += length
    if batch:
        yield batch
