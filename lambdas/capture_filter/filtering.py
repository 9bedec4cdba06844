"""Read one capture object line by line and send the rows a human should see to the review queue.

Memory stays flat whatever the object's size: lines are streamed, selected rows leave in groups of
at most ``rows_per_loop`` as soon as a group is full, and rejected lines are spooled to a temporary
file that becomes a report next to the review data.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from lambdas.capture_filter.events import CaptureObject
from lambdas.capture_filter.records import ParseOptions, parse_line
from lambdas.capture_filter.selection import SelectionRule
from lambdas.shared.review_group import ReviewGroup

READ_CHUNK = 256 * 1024
SQS_BATCH = 10  # SendMessageBatch takes at most 10 entries
SQS_MESSAGE_MAX = 256 * 1024  # bytes, SQS's message size limit
REJECTED_PREFIX = "rejected-captures"
_SPOOL_IN_MEMORY = 1024 * 1024


class ObjectGone(Exception):
    """The capture object no longer exists (deleted or expired before it was read)."""


@dataclass(frozen=True)
class FilterSettings:
    options: ParseOptions
    rule: SelectionRule
    rows_per_loop: int
    review_queue_url: str
    report_bucket: str


@dataclass
class FilterReport:
    records: int = 0
    rows: int = 0
    selected: int = 0
    groups: int = 0
    rejected: int = 0
    blank_lines: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    report_key: str | None = None


def open_capture_object(s3: Any, obj: CaptureObject) -> Any:
    """The object's streaming body; ``ObjectGone`` if neither its key nor the decoded key exists."""
    for key in (obj.key, obj.alternative_key):
        if key is None:
            continue
        try:
            return s3.get_object(Bucket=obj.bucket, Key=key)["Body"]
        except s3.exceptions.NoSuchKey:
            continue
    raise ObjectGone(f"{obj.uri} no longer exists")


def filter_capture_object(s3: Any, sqs: Any, obj: CaptureObject, settings: FilterSettings) -> FilterReport:
    report = FilterReport()
    body = open_capture_object(s3, obj)
    # Rows the rule does not select are counted, never decoded.
    options = replace(settings.options, keep=settings.rule.selects_prediction)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as rejected:

        def reject(line: int, reason: str, event_id: str | None, row: int | None) -> None:
            _reject(report, rejected, obj, line, reason, event_id, row)

        outbox = _Outbox(sqs, settings.review_queue_url, obj.uri, reject)
        group: list[dict[str, Any]] = []
        for number, line in enumerate(body.iter_lines(chunk_size=READ_CHUNK), start=1):
            result = parse_line(line, number, options)
            if result.blank:
                report.blank_lines += 1
                continue
            report.records += 1
            report.rows += len(result.rows) + result.skipped
            for item in result.rejected:
                reject(item.line_number, item.reason, item.event_id, item.row_index)
            for row in result.rows:
                group.append({**row.to_json(), "captureLine": number})
                if len(group) == settings.rows_per_loop:
                    outbox.add(group)
                    group = []
        if group:
            outbox.add(group)
        outbox.flush()
        report.selected, report.groups = outbox.rows, outbox.groups
        if report.rejected:
            report.report_key = f"{REJECTED_PREFIX}/{obj.bucket}/{obj.key}.jsonl"
            rejected.seek(0)
            s3.upload_fileobj(rejected, settings.report_bucket, report.report_key)
    return report


def _reject(report: FilterReport, spool: BinaryIO, obj: CaptureObject, line: int, reason: str, event_id: str | None, row: int | None) -> None:
    report.rejected += 1
    report.reasons[reason.split(":")[0]] += 1
    entry = {"captureObject": obj.uri, "line": line, "reason": reason, "eventId": event_id, "rowIndex": row}
    spool.write(json.dumps(entry).encode() + b"\n")


class _Outbox:
    """Sends review groups ten at a time; a group SQS refuses raises, so the object is retried.

    A group whose message would exceed SQS's size limit is split; a single row that alone exceeds
    it cannot be reviewed and is reported as rejected.
    """

    def __init__(self, sqs: Any, queue_url: str, capture_uri: str, reject: Callable[[int, str, str | None, int | None], None]) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._capture_uri = capture_uri
        self._reject = reject
        self._pending: list[str] = []
        self.groups = 0
        self.rows = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        body = ReviewGroup(self._capture_uri, tuple(rows)).to_body()
        if len(body.encode()) > SQS_MESSAGE_MAX:
            if len(rows) == 1:
                row = rows[0]
                self._reject(row["captureLine"], "row too large for a review message", row["eventId"], row["rowIndex"])
                return
            half = len(rows) // 2
            self.add(rows[:half])
            self.add(rows[half:])
            return
        self._pending.append(body)
        self.groups += 1
        self.rows += len(rows)
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
