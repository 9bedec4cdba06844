"""The message that carries predictions to human review, and the human loop name it gets.

``capture_filter`` groups the selected rows of one capture object, in file order, into groups of
at most N rows; ``human_loop_starter`` starts one human loop per group. The loop name is a hash of
the rows' identities (``eventId`` + row index), so a repeated S3 event, a redelivered message or a
retry after a timeout asks A2I for the same name again, and A2I's ``ConflictException`` for that
name means the loop already exists: nothing is reviewed twice.

A row also says why it is reviewed and how likely that was: ``selectedBy`` (``"rule"`` or
``"audit"``) and ``inclusionProbability`` (the probability with which the row came to be reviewed,
capture sampling included, or null when the capture sampling percentage was not known;
``lambdas/capture/selection.py``). Both are optional: groups sent before they existed still work,
and their labels carry no ``sampling``. They are not part of the loop name.

A batch row also says where it came from: ``origin`` ``{"file": <input object key>, "line": <line
number>}`` (``lambdas/batch``), carried like the sampling fields into the task and into the row's
label and ground-truth line. Real-time rows have none.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import orjson

from lambdas.capture.selection import AUDIT, RULE

VERSION = 1
# HumanLoopName: ^[a-z0-9](-*[a-z0-9])*$, at most 63 characters (botocore sagemaker-a2i-runtime).
LOOP_NAME_MAX = 63
_ROW_FIELDS = ("recordId", "eventId", "rowIndex", "features", "probability", "prediction")
SELECTED_BY = (RULE, AUDIT)
# How a row came to be reviewed: carried from the group to the task's input and into its label line.
SAMPLING_FIELDS = ("selectedBy", "inclusionProbability")
ORIGIN = "origin"
# What a row carries from its group through the task's input to its label (never shown to reviewers).
CARRIED_FIELDS = (*SAMPLING_FIELDS, ORIGIN)


class InvalidGroup(ValueError):
    """A review message that can never be processed (parked with this reason)."""


@dataclass(frozen=True)
class ReviewGroup:
    capture_object: str
    rows: tuple[dict[str, Any], ...]

    def identity(self) -> str:
        return "\n".join(f"{row['eventId']}/{row['rowIndex']}" for row in self.rows)

    def loop_name(self, prefix: str) -> str:
        """``<prefix>-<hash of the rows>``: the same rows always give the same name."""
        digest = hashlib.sha256(self.identity().encode()).hexdigest()
        room = LOOP_NAME_MAX - len(prefix) - 1
        if room < 20:
            raise ValueError(f"loop name prefix {prefix!r} leaves fewer than 20 characters for the hash")
        return f"{prefix}-{digest[:room]}"

    def to_body(self) -> str:
        return orjson.dumps({"version": VERSION, "captureObject": self.capture_object, "rows": list(self.rows)}).decode()

    @classmethod
    def from_body(cls, body: str) -> ReviewGroup:
        try:
            message = json.loads(body)
        except (TypeError, ValueError) as error:
            raise InvalidGroup(f"review message is not JSON: {error}") from None
        if not isinstance(message, dict) or message.get("version") != VERSION:
            raise InvalidGroup(f"review message is not version {VERSION} of the review group format")
        rows = message.get("rows")
        if not isinstance(rows, list) or not rows:
            raise InvalidGroup("review message has no rows")
        for index, row in enumerate(rows):
            missing = [name for name in _ROW_FIELDS if not isinstance(row, dict) or name not in row]
            if missing:
                raise InvalidGroup(f"row {index} lacks {', '.join(missing)}")
            _check_row(index, row)
        if not isinstance(message.get("captureObject"), str):
            raise InvalidGroup("review message has no captureObject")
        return cls(capture_object=message["captureObject"], rows=tuple(rows))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_probability(value: Any, *, positive: bool = False) -> bool:
    """A number in [0, 1] (``positive``: in (0, 1]), not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return 0 < value <= 1 if positive else 0 <= value <= 1


def _check_row(index: int, row: dict[str, Any]) -> None:
    """The types the starter relies on, checked here so a wrong one is parked with its reason."""
    probability = row["probability"]
    if not is_probability(probability):
        raise InvalidGroup(f"row {index} has probability {probability!r}, not a number in [0, 1]")
    if not _is_int(row["prediction"]) or row["prediction"] < 0:
        raise InvalidGroup(f"row {index} has prediction {row['prediction']!r}, not a label number")
    if not _is_int(row["rowIndex"]) or row["rowIndex"] < 0:
        raise InvalidGroup(f"row {index} has rowIndex {row['rowIndex']!r}, not a whole number")
    for name in ("recordId", "eventId"):
        if not isinstance(row[name], str) or not row[name]:
            raise InvalidGroup(f"row {index} has {name} {row[name]!r}, not a string")
    if row.get("inferenceId") is not None and not isinstance(row["inferenceId"], str):
        raise InvalidGroup(f"row {index} has inferenceId {row['inferenceId']!r}, not a string")
    if row.get("selectedBy") is not None and row["selectedBy"] not in SELECTED_BY:
        raise InvalidGroup(f"row {index} has selectedBy {row['selectedBy']!r}, not one of {', '.join(SELECTED_BY)}")
    if row.get("inclusionProbability") is not None and not is_probability(row["inclusionProbability"], positive=True):
        raise InvalidGroup(f"row {index} has inclusionProbability {row['inclusionProbability']!r}, not a number in (0, 1]")
    if row.get(ORIGIN) is not None:
        problem = origin_problem(row[ORIGIN])
        if problem is not None:
            raise InvalidGroup(f"row {index} has {problem}")
    features = row["features"]
    if not isinstance(features, list) or not all(v is None or isinstance(v, (str, int, float)) for v in features):
        raise InvalidGroup(f"row {index} has features of type {type(features).__name__}, not a list of values (strings or numbers)")


def origin_problem(origin: Any) -> str | None:
    """What is wrong with a row's ``origin`` (None: it is ``{"file": text, "line": number >= 1}``)."""
    if not isinstance(origin, dict) or set(origin) != {"file", "line"}:
        return f"origin {origin!r}, not {{file, line}}"
    if not isinstance(origin["file"], str) or not origin["file"]:
        return f"origin file {origin['file']!r}, not an object key"
    if not _is_int(origin["line"]) or origin["line"] < 1:
        return f"origin line {origin['line']!r}, not a line number"
    return None
