"""Turns one line of a SageMaker data-capture file into prediction rows, never raising; and reads a
batch transform's data capture (manifests of its output objects) and its joined output lines into
the same rows (``parse_joined_line``), so batch rows go through the same selection and review.

A capture line holds one invocation: ``captureData.endpointInput`` / ``endpointOutput`` (each with
``observedContentType``, ``data`` and ``encoding`` CSV | JSON | BASE64) and ``eventMetadata``
(``eventId`` always, ``inferenceId`` only if the caller passed one). A request may carry several
rows separated by newlines; the output carries one prediction per row, paired by position.
A line that cannot be read becomes a ``Rejected`` with its reason, so it can be parked, not lost.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jmespath
from orjson import JSONDecodeError, loads  # 3-4x the standard library's speed: see make bench
from jmespath.exceptions import JMESPathError

CSV_TYPES = frozenset({"text/csv"})
JSON_LINES_TYPES = frozenset({"application/jsonlines", "application/jsonl", "application/x-jsonlines"})
JSON_TYPES = frozenset({"application/json"})


@dataclass(slots=True)
class PredictionRow:
    """One input row with the model's output for it.

    A CSV row keeps its text until ``features`` is read: most rows are never selected for review,
    and splitting every one would cost more than the rest of the parse (see ``make bench``).
    """

    event_id: str
    inference_id: str | None
    inference_time: str | None
    row_index: int
    raw_features: str | list[Any]
    probability: float
    prediction: int
    # Where a batch row came from: {"file": input object key, "line": line number in it}; None for
    # real-time capture. Review rows, labels and training rows keep it (``parse_joined_line``).
    origin: dict[str, Any] | None = None

    @property
    def features(self) -> list[Any]:
        if isinstance(self.raw_features, str):
            return [value.strip() for value in self.raw_features.split(",")]
        return self.raw_features

    @property
    def record_id(self) -> str:
        """The caller's ``inferenceId`` when given (it joins ground truth), else ``eventId``."""
        return self.inference_id or self.event_id

    def to_json(self) -> dict[str, Any]:
        return {
            "recordId": self.record_id,
            "eventId": self.event_id,
            "inferenceId": self.inference_id,
            "inferenceTime": self.inference_time,
            "rowIndex": self.row_index,
            "features": self.features,
            "probability": self.probability,
            "prediction": self.prediction,
            **({"origin": self.origin} if self.origin is not None else {}),
        }


def record_id_of(metadata: dict[str, Any]) -> str:
    """``PredictionRow.record_id`` of a line's ``eventMetadata`` (whose ``eventId`` is a string)."""
    inference_id = metadata.get("inferenceId")
    return inference_id if isinstance(inference_id, str) and inference_id else metadata["eventId"]


@dataclass(frozen=True)
class Rejected:
    """A line, or one row of it, that could not be used, and why."""

    line_number: int
    reason: str
    event_id: str | None = None
    row_index: int | None = None


@dataclass(frozen=True)
class ParseOptions:
    """How to read payloads: JMESPath into JSON outputs / inputs, and the decision threshold."""

    score_path: str | None = None
    features_path: str | None = "features"
    threshold: float = 0.5
    # Which rows to materialise, by (probability, prediction); the others are only counted.
    # None keeps every row. Skipping the rows nobody will review is most of the filter's speed.
    keep: Callable[[float, int], bool] | None = None
    # With ``keep``: rows it refuses are still kept when this says so, by (record ID, row index):
    # the audit sample (``selection.Audit.selects``). Asked only for the rows ``keep`` refuses.
    audit: Callable[[str, int], bool] | None = None
    # Also return what can be profiled but not reviewed (``LineResult.profile_only``).
    profile: bool = False

    @staticmethod
    def search(path: str | None, value: Any) -> Any:
        return value if path is None else _expression(path)(value)


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@lru_cache(maxsize=64)
def _expression(path: str) -> Callable[[Any], Any]:
    """A JMESPath getter; a plain key such as ``score`` is a dict lookup (same result, 20x faster)."""
    if _PLAIN_KEY.fullmatch(path):
        return lambda value: value.get(path) if isinstance(value, dict) else None
    return jmespath.compile(path).search


@dataclass(slots=True)
class LineResult:
    rows: list[PredictionRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    blank: bool = False
    skipped: int = 0  # rows read and valid, but not kept (ParseOptions.keep)
    # With ParseOptions.profile: rows that are rejected (so reported, never reviewed) but still tell
    # the data-quality profile something, as (output value or None, features or None): each row of a
    # capture with only an input or only an output, and rows whose output is not a probability.
    # Features are a CSV row's text or a list, as ``PredictionRow.raw_features``.
    profile_only: list[tuple[Any, str | list[Any] | None]] = field(default_factory=list)


class _Reject(Exception):
    """Internal: stop reading a line with this reason."""


def parse_line(raw: bytes | str, line_number: int, options: ParseOptions) -> LineResult:
    """Parse one capture line. Never raises: problems come back in ``LineResult.rejected``."""
    result = LineResult()
    event_id: str | None = None
    if not raw or raw.isspace():
        result.blank = True
        return result
    try:
        record = loads(raw)  # bytes are decoded (and checked as UTF-8) by orjson itself
        if options.keep is not None:
            skipped = _unselected_single_row(record, options)
            if skipped:
                result.skipped = 1
                return result
        if not isinstance(record, dict):
            raise _Reject(f"not a capture record: a JSON {type(record).__name__}")
        metadata = record.get("eventMetadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("eventId"), str):
            raise _Reject("no eventMetadata.eventId")
        event_id = metadata["eventId"]
        capture = record.get("captureData")
        if not isinstance(capture, dict) or ("endpointInput" not in capture and "endpointOutput" not in capture):
            raise _Reject("no captureData.endpointInput")
        if "endpointInput" not in capture:
            if options.profile:
                halves = [(output, None) for output in _output_values(_payload(capture["endpointOutput"], "endpointOutput"), options)]
                result.profile_only.extend(halves)
            raise _Reject("no captureData.endpointInput (output-only capture)")
        if "endpointOutput" not in capture:
            if options.profile:
                kind, inputs = _input_rows(_payload(capture["endpointInput"], "endpointInput"), options)
                halves = [(None, _row_features(kind, source, options)) for source in inputs]
                result.profile_only.extend(halves)
            raise _Reject("no captureData.endpointOutput (input-only capture)")
        outputs = _output_values(_payload(capture["endpointOutput"], "endpointOutput"), options)
        if not outputs:
            raise _Reject("response has no predictions")
        scored = [_probability(output, options) for output in outputs]
        keep, audit, threshold = options.keep, options.audit, options.threshold
        wanted = [
            reason is None and (keep is None or keep(probability, int(probability >= threshold)))
            for probability, reason in scored
        ]
        if audit is not None and keep is not None:
            record_id = record_id_of(metadata)
            for index, (_, reason) in enumerate(scored):
                wanted[index] = wanted[index] or (reason is None and audit(record_id, index))
        # Rows are split here to pair them with the outputs; a row's features are decoded only
        # if it is wanted (_row_features).
        input_kind, inputs = _input_rows(_payload(capture["endpointInput"], "endpointInput"), options)
        if len(inputs) != len(outputs):
            raise _Reject(f"{len(inputs)} input rows but {len(outputs)} output rows")
    except JSONDecodeError as error:
        result.rejected.append(Rejected(line_number, _not_json_reason(raw, error)))
        return result
    except _Reject as reject:
        result.rejected.append(Rejected(line_number, str(reject), event_id))
        return result
    except (RecursionError, ValueError, TypeError) as error:  # pathological nesting, odd payloads
        result.rejected.append(Rejected(line_number, f"unreadable record: {type(error).__name__}", event_id))
        return result

    inference_id = metadata.get("inferenceId") if isinstance(metadata.get("inferenceId"), str) else None
    inference_time = metadata.get("inferenceTime") if isinstance(metadata.get("inferenceTime"), str) else None
    for index, (probability, reason) in enumerate(scored):
        if reason is not None:
            result.rejected.append(Rejected(line_number, reason, event_id, index))
            if options.profile:  # the output is profiled as it is (text, NaN, ...) with the row's features
                try:
                    result.profile_only.append((outputs[index], _row_features(input_kind, inputs[index], options)))
                except (_Reject, RecursionError, ValueError, TypeError):
                    pass  # its features cannot be read either; the row is reported above
            continue
        if not wanted[index]:
            result.skipped += 1
            continue
        try:
            features = _row_features(input_kind, inputs[index], options)
        except _Reject as reject:
            result.rejected.append(Rejected(line_number, str(reject), event_id, index))
            continue
        except (RecursionError, ValueError, TypeError) as error:
            result.rejected.append(Rejected(line_number, f"unreadable input row: {type(error).__name__}", event_id, index))
            continue
        result.rows.append(
            PredictionRow(
                event_id=event_id,
                inference_id=inference_id,
                inference_time=inference_time,
                row_index=index,
                raw_features=features,
                probability=probability,
                prediction=int(probability >= threshold),
            )
        )
    return result


def _not_json_reason(raw: bytes | str, error: JSONDecodeError) -> str:
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"not UTF-8: {bad.reason} at byte {bad.start}"
    return f"not JSON (truncated or malformed): {error.msg} at column {error.colno}"


def _single_line(part: Any) -> str | None:
    """The payload's text if it is one line in a known encoding, else None (raises on bad base64)."""
    data, encoding = part["data"], part["encoding"]
    if encoding == "BASE64":
        data = binascii.a2b_base64(data, strict_mode=True).decode("utf-8")
    elif encoding != "CSV" and encoding != "JSON":
        return None
    if not isinstance(data, str) or not data or "\n" in data or "\r" in data or data.isspace():
        return None
    return data


def _unselected_single_row(record: Any, options: ParseOptions) -> bool:
    """True when ``record`` is the common shape (one row, a valid probability) and its row is not
    selected (neither ``keep`` nor ``audit`` wants it): by far most lines, so they are settled here with a handful of lookups. Anything
    else, and every selected row, goes through the general path, which gives the same answer
    (tests/lambdas/capture/test_records.py checks both paths agree).
    """
    try:
        capture = record["captureData"]
        metadata = record["eventMetadata"]
        if not isinstance(metadata["eventId"], str):
            return False
        # One input row: CSV or JSON Lines (a JSON document may hold many); its text is checked
        # last, once the output says the row is not selected (selected rows take the general path).
        if _media_type_of(capture["endpointInput"]["observedContentType"]) not in _ROW_PER_LINE_TYPES:
            return False
        output = capture["endpointOutput"]
        data = _single_line(output)
        if data is None:
            return False
        media_type = _media_type_of(output["observedContentType"])
        if media_type in CSV_TYPES:
            if "," in data:
                return False
            probability = float(data)
        elif media_type in JSON_LINES_TYPES and options.score_path is not None:
            value = options.search(options.score_path, loads(data))
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                return False
            probability = float(value)
        else:
            return False
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error, JMESPathError):
        return False
    if not 0.0 <= probability <= 1.0:  # also False for NaN
        return False
    if options.keep(probability, int(probability >= options.threshold)):
        return False
    audit = options.audit
    if audit is not None:
        inference_id = metadata.get("inferenceId")  # record_id_of, inlined: this runs for most lines
        if audit(inference_id if inference_id and isinstance(inference_id, str) else metadata["eventId"], 0):
            return False
    try:
        return _single_line(capture["endpointInput"]) is not None  # one row, readable text
    except (KeyError, TypeError, ValueError, binascii.Error):
        return False


def _media_type(content_type: Any) -> str:
    if isinstance(content_type, str):
        return _media_type_of(content_type)
    return str(content_type or "").split(";", 1)[0].strip().lower()


@lru_cache(maxsize=256)
def _media_type_of(content_type: str) -> str:
    # An endpoint sees a handful of distinct content types: parse each once.
    return content_type.split(";", 1)[0].strip().lower()


_ENCODINGS = frozenset({"CSV", "JSON", "BASE64"})
_ROW_PER_LINE_TYPES = CSV_TYPES | JSON_LINES_TYPES


def _payload(part: Any, name: str) -> tuple[str, str]:
    """(media type, decoded text) of endpointInput / endpointOutput."""
    if not isinstance(part, dict) or not isinstance(part.get("data"), str):
        raise _Reject(f"{name} has no data")
    encoding = part.get("encoding")
    encoding = encoding if encoding in _ENCODINGS else str(encoding or "").upper()
    data = part["data"]
    if encoding == "BASE64":
        try:
            data = binascii.a2b_base64(data, strict_mode=True).decode("utf-8")
        except (binascii.Error, ValueError) as error:
            raise _Reject(f"{name} is not valid base64 text: {error}") from None
    elif encoding not in ("CSV", "JSON"):
        raise _Reject(f"{name} has unknown encoding {part.get('encoding')!r}")
    return _media_type(part.get("observedContentType")), data


def _lines(text: str) -> list[str]:
    if "\n" not in text and "\r" not in text:  # one row: the common request
        return [text] if text and not text.isspace() else []
    return [line for line in text.splitlines() if line and not line.isspace()]


def _input_rows(payload: tuple[str, str], options: ParseOptions) -> tuple[str, list[Any]]:
    """(kind, one source per row). Rows are decoded into features only if kept: ``_row_features``."""
    media_type, text = payload
    if media_type in CSV_TYPES:
        return "csv", _lines(text)
    if media_type in JSON_LINES_TYPES:
        return "jsonl", _lines(text)
    if media_type in JSON_TYPES:
        document = loads(text)
        instances = document.get("instances") if isinstance(document, dict) else document
        if isinstance(instances, list) and instances and all(isinstance(i, (list, dict)) for i in instances):
            return "json", instances
        return "json", [document]
    raise _Reject(f"endpointInput content type {media_type or 'missing'!r} is not CSV or JSON")


def _row_features(kind: str, source: Any, options: ParseOptions) -> str | list[Any]:
    if kind == "csv":
        return source  # split when read: PredictionRow.features
    return _features(loads(source) if kind == "jsonl" else source, options)


def _features(value: Any, options: ParseOptions) -> list[Any]:
    features = options.search(options.features_path, value) if isinstance(value, dict) else value
    if not isinstance(features, list):
        raise _Reject(f"input row has no feature list at {options.features_path!r}")
    return features


def _output_values(payload: tuple[str, str], options: ParseOptions) -> list[Any]:
    media_type, text = payload
    if media_type in CSV_TYPES:
        lines = _lines(text)
        if len(lines) == 1 and "," in lines[0]:  # some containers answer "p1,p2,p3" on one line
            return [value.strip() for value in lines[0].split(",")]
        return [line.strip() for line in lines]
    if media_type in JSON_LINES_TYPES:
        return [_score(loads(line), options) for line in _lines(text)]
    if media_type in JSON_TYPES:
        document = loads(text)
        predictions = document.get("predictions") if isinstance(document, dict) else document
        if isinstance(predictions, list):
            return [_score(item, options) for item in predictions]
        return [_score(document, options)]
    raise _Reject(f"endpointOutput content type {media_type or 'missing'!r} is not CSV or JSON")


def _score(value: Any, options: ParseOptions) -> Any:
    if not isinstance(value, (dict, list)):
        return value
    try:
        return options.search(options.score_path, value)
    except JMESPathError as error:
        raise _Reject(f"score path {options.score_path!r} failed: {error}") from None


def _probability(value: Any, options: ParseOptions) -> tuple[float, str | None]:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return math.nan, f"no probability in output (got {json.dumps(value)[:80]})"
    try:
        probability = float(value)
    except (TypeError, ValueError):
        return math.nan, f"probability is not a number: {str(value)[:80]!r}"
    if not math.isfinite(probability):
        return math.nan, f"probability is not finite: {value!r}"
    if not 0.0 <= probability <= 1.0:
        return math.nan, f"probability {probability} is outside [0, 1]"
    return probability, None


# --- Batch transform data capture -----------------------------------------------------------------
#
# A batch transform with DataCaptureConfig {DestinationS3Uri, GenerateInferenceId} (SageMaker API
# reference, CreateTransformJob / BatchDataCaptureConfig) logs what it captured under two
# subdirectories of DestinationS3Uri, ``input`` and ``output`` ("Capture data from batch transform
# job", How to view data captured: https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-batch.html),
# in files ``<part>/yyyy/mm/dd/hh/<name>.json`` (the hour folders as real-time capture's; the brief's
# layout, not shown on that page). To avoid duplicating the data, those files are manifests, not the
# rows (the same page): each names the S3 objects in the ManifestFile format (API reference,
# TransformS3DataSource.S3Uri: ``[{"prefix": "s3://bucket/prefix/"}, "relative/key-1", ...]``), the
# page calls them JSON Lines, so a file may hold one manifest or one a line (``manifest_uris`` reads both).
# The output manifests name the output objects, ``<S3OutputPath>/<input key relative to the manifest's
# prefix>.out`` (API reference, TransformOutput.S3OutputPath). With SplitType Line, AssembleWith Line
# and DataProcessing JoinSource Input, output line i is input line i with the model's output appended
# (CSV: ``features...,score``), and GenerateInferenceId "append[s] the inference ID and time to your
# output" (the page above): ``features...,score,inferenceId,inferenceTime``.
BATCH_CAPTURE_PARTS = ("input", "output")
_CAPTURE_PART = re.compile(r"(?:^|/)(input|output)/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+$")


def batch_capture_part(key: str) -> str | None:
    """``input`` or ``output`` for a key in the batch capture layout, else None."""
    match = _CAPTURE_PART.search(key)
    return match.group(1) if match else None


def manifest_uris(raw: bytes | str) -> list[str]:
    """The S3 URIs a ManifestFile document names (prefix + each key), or those of every manifest of a
    JSON Lines file of them; ValueError saying what is wrong."""
    try:
        document = loads(raw)
    except JSONDecodeError as error:
        lines = [line for line in (raw.splitlines() if raw else []) if line.strip()]
        if len(lines) > 1:
            return [uri for line in lines for uri in manifest_uris(line)]
        raise ValueError(f"not a manifest: not JSON ({error.msg})") from None
    if not isinstance(document, list) or not document or not isinstance(document[0], dict):
        raise ValueError('not a manifest: not a JSON list starting with {"prefix": "s3://..."}')
    prefix = document[0].get("prefix")
    if not isinstance(prefix, str) or not prefix.startswith("s3://"):
        raise ValueError(f"not a manifest: prefix is {prefix!r}, not an s3:// URI")
    keys = document[1:]
    bad = [key for key in keys if not isinstance(key, str) or not key]
    if bad:
        raise ValueError(f"not a manifest: {len(bad)} entries are not object keys (first: {bad[0]!r})")
    return [prefix + key for key in keys]


def manifest_document(bucket: str, keys: list[str]) -> bytes:
    """The ManifestFile document naming ``keys`` of ``bucket`` (the inverse of ``manifest_uris``)."""
    return json.dumps([{"prefix": f"s3://{bucket}/"}, *keys]).encode()


def parse_joined_line(raw: bytes | str, line_number: int, options: ParseOptions, feature_count: int, origin_file: str, origin_line: int) -> LineResult:
    """One line of a batch transform's joined CSV output (``features...,score`` or, with generated
    inference IDs, ``features...,score,inferenceId,inferenceTime``) as the capture parser's
    ``LineResult``, never raising. The row's event ID is ``<origin_file>:<origin_line>`` (stable
    across re-runs of the same file, so its review loop keeps its name) and its record ID the
    generated inference ID when there is one; ``origin`` says which input file and line it was."""
    result = LineResult()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            result.rejected.append(Rejected(line_number, f"not UTF-8: {bad.reason} at byte {bad.start}"))
            return result
    text = raw.rstrip("\r")
    if not text or text.isspace():
        result.blank = True
        return result
    event_id = f"{origin_file}:{origin_line}"
    fields = text.count(",") + 1
    if fields == feature_count + 1:
        features, score = text.rsplit(",", 1)
        inference_id = inference_time = None
    elif fields == feature_count + 3:
        features, score, inference_id, inference_time = text.rsplit(",", 3)
        inference_id, inference_time = inference_id.strip() or None, inference_time.strip() or None
    else:
        reason = (f"{fields} fields; a joined output line has {feature_count + 1} (the {feature_count} features and the score) "
                  f"or {feature_count + 3} (with the generated inference ID and time)")
        result.rejected.append(Rejected(line_number, reason, event_id, 0))
        return result
    probability, reason = _probability(score.strip(), options)
    if reason is not None:
        result.rejected.append(Rejected(line_number, reason, event_id, 0))
        if options.profile:
            result.profile_only.append((score.strip(), features))
        return result
    prediction = int(probability >= options.threshold)
    keep, audit = options.keep, options.audit
    if keep is not None and not keep(probability, prediction) and not (audit is not None and audit(inference_id or event_id, 0)):
        result.skipped = 1
        return result
    result.rows.append(PredictionRow(event_id, inference_id, inference_time, 0, features, probability, prediction,
                                     {"file": origin_file, "line": origin_line}))
    return result
