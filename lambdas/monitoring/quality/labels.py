"""Ground-truth lines: read and checked, one label a row, and joined with the captured predictions
they label.

A line is Model Monitor's ground-truth record plus our optional ``eventMetadata.rowIndex`` and
``sampling`` (docs/model-quality.md, "Labels"):

    {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "<record id>", "rowIndex": 0},
     "eventVersion": "0", "sampling": {"inclusionProbability": 0.02, "selectedBy": "audit"}}

- the join key is (record ID, row index): ``eventId`` is ``PredictionRow.record_id`` (the capture's
  ``inferenceId`` when the caller gave one, else its ``eventId``), ``rowIndex`` the row's index in its
  request (absent: 0);
- the label is 0 or 1 (``data``, CSV or JSON text, or BASE64 of it; ``"1.0"`` is 1);
- ``sampling.inclusionProbability`` in (0, 1] with ``selectedBy`` ``rule``, ``audit`` or ``all``;
  a line without ``sampling`` counts only in the unweighted figures.

A line that breaks any of these is set aside with its reason (``RejectedLine``), never silently
dropped; the other lines of its file are read.

Two labels for one row: the latest wins, by the S3 object's LastModified, then key, then line
(for local files: the later file on the command line, then the later line). Its ``sampling`` is
the largest inclusion probability among the row's labels (a user's upload without ``sampling`` of a
reviewed row keeps the probability with which the row was reviewed; an upload of every row,
``all`` at 1.0, makes a row labelled for certain whatever a reviewer's audit label says, and a
reviewer's answer uploaded again with its own sampling counts once). The largest is exact when one
of the ways is certain or the same way labelled twice, and otherwise slightly overstates the
probability, so the row counts a little less, never more. Such rows are counted (``duplicates``),
and those whose labels disagree too (``conflicts``).
"""

from __future__ import annotations

import base64
import json
import binascii
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from orjson import JSONDecodeError, loads

SELECTED_BY = ("rule", "audit", "all")
MAX_TEXT = 500  # characters of a rejected line kept beside the report
Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Label:
    record_id: str
    row_index: int
    value: int
    inclusion_probability: float | None
    selected_by: str | None
    order: tuple[Any, ...]  # the later label of a row wins: (arrived, source, line)
    source: str
    line: int

    @property
    def key(self) -> Key:
        return (self.record_id, self.row_index)


@dataclass(frozen=True, slots=True)
class RejectedLine:
    source: str
    line: int
    reason: str
    text: str

    def document(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "reason": self.reason, "text": self.text}


class _Bad(Exception):
    pass


def _shown(value: Any) -> str:
    """A value as JSON writes it (strings quoted, numbers bare), cut to 40 characters."""
    try:
        return json.dumps(value)[:40]
    except (TypeError, ValueError):
        return repr(value)[:40]


def _label_value(truth: Any) -> int:
    if not isinstance(truth, dict) or "data" not in truth:
        raise _Bad("no groundTruthData.data")
    data, encoding = truth["data"], truth.get("encoding", "CSV")
    if encoding == "BASE64":
        if not isinstance(data, str):
            raise _Bad("groundTruthData.data is not BASE64 text")
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _Bad("groundTruthData.data is not valid BASE64 of UTF-8 text") from None
    elif encoding not in ("CSV", "JSON"):
        raise _Bad(f"groundTruthData.encoding {_shown(encoding)} is not CSV, JSON or BASE64")
    if isinstance(data, bool) or not isinstance(data, (str, int, float)):
        raise _Bad(f"groundTruthData.data is a JSON {type(data).__name__}, not a label")
    try:
        number = float(data.strip().strip('"')) if isinstance(data, str) else float(data)
    except ValueError:
        raise _Bad(f"label {_shown(data)} is not 0 or 1 (a binary classifier's label index)") from None
    if number not in (0.0, 1.0):
        raise _Bad(f"label {_shown(data)} is not 0 or 1 (a binary classifier's label index)")
    return int(number)


def _sampling(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise _Bad("sampling is not an object")
    probability, selected = value.get("inclusionProbability"), value.get("selectedBy")
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not math.isfinite(probability) or not 0 < probability <= 1:
        raise _Bad(f"sampling.inclusionProbability {_shown(probability)} is not a number in (0, 1]")
    if selected not in SELECTED_BY:
        raise _Bad(f"sampling.selectedBy {_shown(selected)} is not one of {', '.join(SELECTED_BY)}")
    return float(probability), selected


def parse_line(raw: bytes, source: str, line: int, arrived: Any) -> Label:
    """One ground-truth line as a ``Label``; ``_Bad`` with the reason otherwise."""
    try:
        record = loads(raw)
    except JSONDecodeError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise _Bad(f"not UTF-8: {bad.reason} at byte {bad.start}") from None
        raise _Bad(f"not JSON (a ground-truth line is one JSON object, Model Monitor's record): {error.msg} at character {error.pos + 1}") from None
    if not isinstance(record, dict):
        raise _Bad(f"not a ground-truth record: a JSON {type(record).__name__}")
    metadata = record.get("eventMetadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("eventId"), str) or not metadata["eventId"]:
        raise _Bad("no eventMetadata.eventId (the record ID: the capture's inferenceId, else its eventId)")
    row_index = metadata.get("rowIndex", 0)
    if isinstance(row_index, bool) or not isinstance(row_index, int) or row_index < 0:
        raise _Bad(f"eventMetadata.rowIndex {_shown(row_index)} is not a whole number >= 0")
    value = _label_value(record.get("groundTruthData"))
    probability, selected = _sampling(record.get("sampling"))
    return Label(metadata["eventId"], row_index, value, probability, selected, (arrived, source, line), source, line)


def read_file(body: bytes, source: str, arrived: Any) -> tuple[list[Label], list[RejectedLine]]:
    """Every label of a ground-truth file and every line set aside, with its reason."""
    labels, rejected = [], []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            labels.append(parse_line(raw, source, number, arrived))
        except _Bad as bad:
            text = raw[:MAX_TEXT * 4].decode("utf-8", "replace")[:MAX_TEXT]
            rejected.append(RejectedLine(source, number, str(bad), text))
    return labels, rejected


@dataclass(frozen=True)
class Latest:
    """One label a row (the rule in the module docstring) and what the rule settled."""

    labels: dict[Key, Label]
    duplicated: frozenset[Key]  # rows with more than one label
    conflicting: frozenset[Key]  # ... whose labels disagree


def latest(labels: Iterable[Label]) -> Latest:
    by_key: dict[Key, list[Label]] = {}
    for label in labels:
        by_key.setdefault(label.key, []).append(label)
    chosen, duplicated, conflicting = {}, set(), set()
    for key, found in by_key.items():
        if len(found) == 1:
            chosen[key] = found[0]
            continue
        duplicated.add(key)
        found.sort(key=lambda label: label.order)
        winner = found[-1]
        if len({label.value for label in found}) > 1:
            conflicting.add(key)
        known = [label for label in found if label.inclusion_probability is not None]
        if known:
            likeliest = max(known, key=lambda label: (label.inclusion_probability, label.order))
            winner = replace(winner, inclusion_probability=likeliest.inclusion_probability, selected_by=likeliest.selected_by)
        chosen[key] = winner
    return Latest(chosen, frozenset(duplicated), frozenset(conflicting))


def reasons(rejected: Iterable[RejectedLine]) -> dict[str, int]:
    """Rejected lines by reason (the reason's text up to its first colon), most first."""
    counts: dict[str, int] = {}
    for line in rejected:
        head = line.reason.split(":")[0]
        counts[head] = counts.get(head, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def by_selection(labels: Mapping[Key, Label]) -> dict[str, int]:
    counts = {name: 0 for name in (*SELECTED_BY, "unknown")}
    for label in labels.values():
        counts[label.selected_by or "unknown"] += 1
    return counts
