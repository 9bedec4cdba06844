"""Profiling of captured rows for the open monitors, in the capture filter's one pass over an object.

Every parsed row is folded into a data-quality sketch (``lambdas.monitoring.drift.sketch``) over the
current baseline's bins, and, when explainability is monitored, offered to a uniform sample
(``lambdas.monitoring.drift.sample``). One sketch and one sample per capture object, named after it
(``data-quality/sketches/<hour>/<capture key>.json``, ``explainability/samples/<hour>/<capture key>.json``),
so a replayed object overwrites its own files and an evaluation merges a period's files.

The baseline's layout (columns and bin edges) is read from ``data-quality/current/`` and kept for
the life of the container; every object asks S3 whether either file changed (a conditional GET on
its ETag) and reads them again only then, so a new baseline (retraining's) is used from the next
object on.

Rows are read PACK_ROWS at a time (CSV rows decoded to numbers at once: ``csv_values``), their
numbers packed into a ``sketches.Batch`` folded BATCH_ROWS at a time, a column at a time with numpy;
the sample draws each row's priority from one generator per object (``Sample.empty``'s ``source``).
That is what makes profiling cheap next to the parse (``make bench``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import ClientError

from lambdas.capture.events import CaptureObject
from lambdas.capture.records import PredictionRow
from lambdas.monitoring.drift import sample as samples
from lambdas.monitoring.drift import sketch as sketches
from lambdas.monitoring.drift.baseline import CONSTRAINTS_FILE, STATISTICS_FILE, BaselineError, load
from lambdas.shared import aws

DATA_QUALITY, EXPLAINABILITY = "data-quality", "explainability"
MONITORS = (DATA_QUALITY, EXPLAINABILITY)
BASELINE_PREFIX = f"{DATA_QUALITY}/current"
SKETCHES_PREFIX = f"{DATA_QUALITY}/sketches"
SAMPLES_PREFIX = f"{EXPLAINABILITY}/samples"
BATCH_ROWS = sketches.BATCH_ROWS
# Rows held as Python objects before their numbers are packed (``sketches.Batch``) and the sample
# sees them: few enough to stay in the processor's cache, enough to spread each call's fixed cost.
PACK_ROWS = 128

_HOUR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")
# A CSV row of plain numbers (digits, signs, points, exponents, blanks) reads as a JSON array;
# anything else (text, quotes, brackets, empty fields) is split on commas, as PredictionRow does.
_NOT_NUMBERS = re.compile(r"[^0-9eE+\-., \t]")


class BaselineUnavailable(Exception):
    """There is no usable data-quality baseline yet: the object cannot be profiled for data quality."""


@dataclass(frozen=True)
class ProfilingSettings:
    bucket: str  # the monitoring bucket
    monitors: frozenset[str]  # a subset of MONITORS
    sample_rows: int  # the sample's capacity
    feature_names: tuple[str, ...]  # the sample's columns (the sketch's come from the baseline)

    def __post_init__(self) -> None:
        unknown = self.monitors - set(MONITORS)
        if unknown:
            raise ValueError(f"PROFILING: {', '.join(sorted(unknown))} is not allowed; allowed values: {', '.join(MONITORS)}")

    @property
    def data_quality(self) -> bool:
        return DATA_QUALITY in self.monitors

    @property
    def explainability(self) -> bool:
        return EXPLAINABILITY in self.monitors


def hour_of(obj: CaptureObject, now: dt.datetime | None = None) -> str:
    """``yyyy/mm/dd/hh`` of a capture object: from its key (Model Monitor's layout), else the event's time."""
    match = _HOUR.search(obj.key)
    if match:
        return "/".join(match.groups())
    when = obj.time or now or dt.datetime.now(dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y/%m/%d/%H")


def sketch_key(obj: CaptureObject, hour: str) -> str:
    return f"{SKETCHES_PREFIX}/{hour}/{obj.key}.json"


def sample_key(obj: CaptureObject, hour: str) -> str:
    return f"{SAMPLES_PREFIX}/{hour}/{obj.key}.json"


def csv_values(texts: Sequence[str]) -> list[list[Any]]:
    """The values of CSV rows: numbers where the row is plain numbers (one JSON parse for all the
    rows), else the row split on commas (the text of each field, as ``PredictionRow.features``).

    The sketch reads a number and its text alike (what ``float()`` reads), so both give the same profile.
    """
    rows = _numbers(texts)
    return rows if rows is not None else [_csv_row(text) for text in texts]


def _numbers(texts: Sequence[str]) -> list[list[int | float]] | None:
    """The rows as ints and floats when every row is plain numbers (one JSON parse), else None."""
    if texts and not _NOT_NUMBERS.search(",".join(texts)):
        try:
            rows = orjson.loads(f"[[{'],['.join(texts)}]]")
        except orjson.JSONDecodeError:
            return None  # an empty field or a malformed number somewhere: row by row
        if len(rows) == len(texts):
            return rows
    return None


def _csv_row(text: str) -> list[Any]:
    if not _NOT_NUMBERS.search(text):
        try:
            return orjson.loads(f"[{text}]")
        except orjson.JSONDecodeError:
            pass
    return text.split(",")


class _BaselineCache:
    """The current baseline's layout, kept while the files' ETags stay the same."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._files: dict[tuple[str, str], tuple[str, Any]] = {}  # (bucket, key) -> (ETag, document)
        self._layouts: dict[tuple[str, str, str], sketches.Layout] = {}

    def layout(self, s3: Any, bucket: str) -> sketches.Layout:
        statistics = self._read(s3, bucket, f"{BASELINE_PREFIX}/{STATISTICS_FILE}")
        constraints = self._read(s3, bucket, f"{BASELINE_PREFIX}/{CONSTRAINTS_FILE}")
        cache_key = (bucket, statistics[0], constraints[0])
        if cache_key not in self._layouts:
            try:
                layout = load(statistics[1], constraints[1]).layout
            except BaselineError as error:
                raise BaselineUnavailable(f"the baseline in s3://{bucket}/{BASELINE_PREFIX}/ cannot be used: {error}") from None
            self._layouts = {cache_key: layout}  # one baseline at a time: the old one is never used again
        return self._layouts[cache_key]

    def _read(self, s3: Any, bucket: str, key: str) -> tuple[str, Any]:
        cached = self._files.get((bucket, key))
        # S3 answers a GetObject whose If-None-Match is the object's ETag with 304 Not Modified and no body:
        # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html (If-None-Match).
        request = {"Bucket": bucket, "Key": key}
        if cached is not None:
            request["IfNoneMatch"] = cached[0]
        try:
            response = s3.get_object(**request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if cached is not None and (code in ("304", "NotModified") or status == 304):
                return cached
            # A missing key is a 404 only to a caller that may list it (see filtering.open_capture_object).
            if code in ("NoSuchKey", "404") or (code == "AccessDenied" and not aws.key_listed(s3, bucket, key)):
                self._files.pop((bucket, key), None)
                raise BaselineUnavailable(f"no data-quality baseline yet: s3://{bucket}/{key} does not exist") from None
            raise
        body = response["Body"].read()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise BaselineUnavailable(f"s3://{bucket}/{key} is not JSON: {error}") from None
        self._files[(bucket, key)] = (response["ETag"], document)
        return self._files[(bucket, key)]


baselines = _BaselineCache()


@dataclass
class ProfileReport:
    rows: int = 0  # rows folded into the sketch (or the sample, without data quality)
    partial_rows: int = 0  # of which rows with only an output, only an input, or an output that is not a probability
    sampled: int = 0  # rows kept in the sample
    # Rows the sketch could not take, by reason (another feature count than the baseline's); also in the sketch.
    not_profiled: dict[str, int] = field(default_factory=dict)
    sketch_key: str | None = None
    sample_key: str | None = None
    sketch_bytes: int = 0


class Profiler:
    """Folds the rows of one capture object into its sketch and sample, then writes them."""

    def __init__(self, layout: sketches.Layout | None, settings: ProfilingSettings, source: str) -> None:
        """``source``: the capture object's URI (the sample's seed)."""
        self.layout = layout
        self.sketch = sketches.Sketch.empty(layout) if layout is not None else None
        self.sample = samples.Sample.empty(settings.sample_rows, settings.feature_names, source=source) if settings.explainability else None
        self.partial_rows = 0
        self._rows: list[PredictionRow] = []
        self._partial: list[tuple[Any, list[Any] | None]] = []
        self._batch = sketches.Batch(layout) if layout is not None else None

    def add(self, rows: list[PredictionRow]) -> None:
        """The rows of one line; read once PACK_ROWS (or a few more) are waiting."""
        self._rows += rows
        if len(self._rows) >= PACK_ROWS:
            self.flush()

    def add_partial(self, output: Any, features: str | list[Any] | None) -> None:
        """A row that is reported as rejected but still profiled (``LineResult.profile_only``)."""
        self.partial_rows += 1
        if self.sketch is not None:
            self._partial.append((output, _csv_row(features) if isinstance(features, str) else features))
            if len(self._partial) >= PACK_ROWS:
                self.flush()

    def flush(self) -> None:
        """Offer the waiting rows to the sample and add them to the sketch's batch; fold the batch
        once it holds BATCH_ROWS rows."""
        rows, partial = self._rows, self._partial
        self._rows, self._partial = [], []
        if rows:
            features = [row.raw_features for row in rows]
            kinds = set(map(type, features))
            if kinds == {str}:  # CSV rows
                features = csv_values(features)
            elif str in kinds:
                text = [i for i, f in enumerate(features) if type(f) is str]
                for i, values in zip(text, csv_values([features[i] for i in text]), strict=True):
                    features[i] = values
            outputs = [row.probability for row in rows]
            if self._batch is not None:
                self._batch.add(outputs, features)
            if self.sample is not None:
                self.sample.offer_many(lambda i: (rows[i].event_id, rows[i].row_index), outputs, features)
        if partial and self._batch is not None:
            self._batch.add([output for output, _ in partial], [features for _, features in partial])
        if self._batch is not None and len(self._batch) >= BATCH_ROWS:
            self._fold()

    def _fold(self) -> None:
        self.sketch.add_batch(self._batch)
        self._batch = sketches.Batch(self.layout)

    def write(self, s3: Any, bucket: str, obj: CaptureObject, hour: str) -> ProfileReport:
        self.flush()
        if self.sketch is not None:
            self._fold()
        report = ProfileReport(partial_rows=self.partial_rows)
        if self.sketch is not None:
            body = sketches.dumps(self.sketch)
            report.sketch_key, report.sketch_bytes, report.rows = sketch_key(obj, hour), len(body), self.sketch.rows
            report.not_profiled = dict(self.sketch.rejected)
            s3.put_object(Bucket=bucket, Key=report.sketch_key, Body=body, ContentType="application/json")
        if self.sample is not None:
            report.sample_key, report.sampled = sample_key(obj, hour), len(self.sample)
            if self.sketch is None:
                report.rows = self.sample.seen
            s3.put_object(Bucket=bucket, Key=report.sample_key, Body=samples.dumps(self.sample), ContentType="application/json")
        return report
