"""Turns one line of a SageMaker data-capture file into prediction rows, never raising.

A capture line holds one invocation: ``captureData.endpointInput`` / ``endpointOutput`` (each with
``observedContentType``, ``data`` and ``encoding`` CSV | JSON | BASE64) and ``eventMetadata``
(``eventId`` always, ``inferenceId`` only if the caller passed one). A request may carry several
rows separated by newlines; the output carries one prediction per row, paired by position.
A line that cannot be read becomes a ``Rejected`` with its reason, so it can be parked, not lost.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

CSV_TYPES = frozenset({"text/csv"})
JSON_LINES_TYPES = frozenset({"application/jsonlines", "application/jsonl", "application/x-jsonlines"})
JSON_TYPES = frozenset({"application/json"})


@dataclass(frozen=True)
class PredictionRow:
    """One input row with the model's output for it."""

    event_id: str
    inference_id: str | None
    inference_time: str | None
    row_index: int
    features: list[Any]
    probability: float
    prediction: int

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
        }


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

    @staticmethod
    def search(path: str | None, value: Any) -> Any:
        # jmespath caches parsed expressions itself.
        return value if path is None else jmespath.search(path, value)


@dataclass
class LineResult:
    rows: list[PredictionRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    blank: bool = False


class _Reject(Exception):
    """Internal: stop reading a line with this reason."""


def parse_line(raw: bytes | str, line_number: int, options: ParseOptions) -> LineResult:
    """Parse one capture line. Never raises: problems come back in ``LineResult.rejected``."""
    result = LineResult()
    event_id: str | None = None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as error:
        result.rejected.append(Rejected(line_number, f"not UTF-8: {error.reason} at byte {error.start}"))
        return result
    if not text.strip():
        result.blank = True
        return result
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise _Reject(f"not a capture record: a JSON {type(record).__name__}")
        metadata = record.get("eventMetadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("eventId"), str):
            raise _Reject("no eventMetadata.eventId")
        event_id = metadata["eventId"]
        capture = record.get("captureData")
        if not isinstance(capture, dict) or "endpointInput" not in capture:
            raise _Reject("no captureData.endpointInput")
        if "endpointOutput" not in capture:
            raise _Reject("no captureData.endpointOutput (input-only capture)")
        inputs = _input_rows(_payload(capture["endpointInput"], "endpointInput"), options)
        if not inputs:
            raise _Reject("request has no rows")
        outputs = _output_values(_payload(capture["endpointOutput"], "endpointOutput"), len(inputs), options)
        if len(inputs) != len(outputs):
            raise _Reject(f"{len(inputs)} input rows but {len(outputs)} output rows")
    except json.JSONDecodeError as error:
        result.rejected.append(Rejected(line_number, f"not JSON (truncated or malformed): {error.msg} at column {error.colno}"))
        return result
    except _Reject as reject:
        result.rejected.append(Rejected(line_number, str(reject), event_id))
        return result
    except (RecursionError, ValueError, TypeError) as error:  # pathological nesting, odd payloads
        result.rejected.append(Rejected(line_number, f"unreadable record: {type(error).__name__}", event_id))
        return result

    inference_id = metadata.get("inferenceId") if isinstance(metadata.get("inferenceId"), str) else None
    inference_time = metadata.get("inferenceTime") if isinstance(metadata.get("inferenceTime"), str) else None
    for index, (features, output) in enumerate(zip(inputs, outputs)):
        probability, reason = _probability(output, options)
        if reason is not None:
            result.rejected.append(Rejected(line_number, reason, event_id, index))
            continue
        result.rows.append(
            PredictionRow(
                event_id=event_id,
                inference_id=inference_id,
                inference_time=inference_time,
                row_index=index,
                features=features,
                probability=probability,
                prediction=int(probability >= options.threshold),
            )
        )
    return result


def _media_type(content_type: Any) -> str:
    return str(content_type or "").split(";", 1)[0].strip().lower()


def _payload(part: Any, name: str) -> tuple[str, str]:
    """(media type, decoded text) of endpointInput / endpointOutput."""
    if not isinstance(part, dict) or not isinstance(part.get("data"), str):
        raise _Reject(f"{name} has no data")
    encoding = str(part.get("encoding", "")).upper()
    data = part["data"]
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as error:
            raise _Reject(f"{name} is not valid base64 text: {error}") from None
    elif encoding not in ("CSV", "JSON"):
        raise _Reject(f"{name} has unknown encoding {part.get('encoding')!r}")
    return _media_type(part.get("observedContentType")), data


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _input_rows(payload: tuple[str, str], options: ParseOptions) -> list[list[Any]]:
    media_type, text = payload
    if media_type in CSV_TYPES:
        return [[value.strip() for value in line.split(",")] for line in _lines(text)]
    if media_type in JSON_LINES_TYPES:
        return [_features(json.loads(line), options) for line in _lines(text)]
    if media_type in JSON_TYPES:
        document = json.loads(text)
        instances = document.get("instances") if isinstance(document, dict) else document
        if isinstance(instances, list) and instances and all(isinstance(i, (list, dict)) for i in instances):
            return [_features(instance, options) for instance in instances]
        return [_features(document, options)]
    raise _Reject(f"endpointInput content type {media_type or 'missing'!r} is not CSV or JSON")


def _features(value: Any, options: ParseOptions) -> list[Any]:
    features = options.search(options.features_path, value) if isinstance(value, dict) else value
    if not isinstance(features, list):
        raise _Reject(f"input row has no feature list at {options.features_path!r}")
    return features


def _output_values(payload: tuple[str, str], expected_rows: int, options: ParseOptions) -> list[Any]:
    media_type, text = payload
    if media_type in CSV_TYPES:
        lines = _lines(text)
        if len(lines) == 1 and expected_rows > 1:  # some containers answer "p1,p2,p3" on one line
            return [value.strip() for value in lines[0].split(",")]
        return [line.strip() for line in lines]
    if media_type in JSON_LINES_TYPES:
        return [_score(json.loads(line), options) for line in _lines(text)]
    if media_type in JSON_TYPES:
        document = json.loads(text)
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
