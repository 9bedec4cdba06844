"""A mergeable uniform sample of captured rows: what the explainability evaluation explains.

Bottom-k sampling: every row gets a priority, uniform in [0, 1), and a sample keeps the ``k`` rows
of smallest priority. The rows of one capture object draw their priorities in the order they are
offered from a pseudo-random generator (Python's Mersenne Twister, whose ``random()`` sequence for a
given seed Python keeps from version to version) seeded by a hash of the object's URI (``source``):
one hash per object instead of one per row (a hash took about 1 us a row, a fifth of what the
capture filter may spend profiling a row: ``make bench``), and priorities that are independent and
uniform whatever the ids, so the ``k`` rows kept are a uniform sample without
replacement of the rows seen. A row's priority is fixed once its object is read (the object's rows
and their order never change), so the ``k`` smallest of two samples' rows are exactly the ``k``
smallest of all their rows: merging is exact, associative and commutative, and a replayed capture
object gives the same sample (merged twice, its rows are kept once). A sample of capacity ``k``
merged with one of capacity ``j < k`` keeps ``j`` rows (the ``j`` smallest are known exactly from
both; the ``k``-th are not).

Each row keeps the model's output (``probability``) and the feature values as decoded: numbers as
floats; ``None`` (missing) and text as they are, NaN and infinities as the text ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` (JSON has no such numbers), so the explainer decides what to do
with them. Rows are complete predictions: a capture line with only an input or only an output has
nothing to explain and is never sampled (the data-quality sketch counts it).

Serialised form (``dumps``), format ``drift-sample`` version 1, compact JSON::

    {"format": "drift-sample", "version": 1, "capacity": k, "columns": ["probability", <features>],
     "seen": rows offered, "rejected": {"<reason>": n},
     "rows": [[priority, "<event id>", row index, probability, feature, ...], ...]}   # ascending priority
"""

from __future__ import annotations

import heapq
import math
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from itertools import compress, count, repeat, starmap
from typing import Any

import orjson

FORMAT = "drift-sample"
VERSION = 1
OUTPUT_COLUMN = "probability"
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


class SampleError(ValueError):
    """A sample that cannot be read or merged; the message says what is wrong."""


def priorities(source: str) -> Callable[[], float]:
    """The priorities of the rows of the capture object ``source`` (its URI), one per call in the order
    the rows are offered: uniform in [0, 1) (53 random bits), the same in every process and replay."""
    return random.Random(int.from_bytes(blake2b(source.encode(), digest_size=16).digest(), "big")).random


def value(cell: Any) -> Any:
    """A feature value as kept: a float when it is a number (or numeric text), else as it is."""
    if type(cell) is float and cell - cell == 0.0:  # a finite float: most values
        return cell
    if cell is None or isinstance(cell, bool):
        return cell
    if isinstance(cell, (int, float)):
        try:
            number = float(cell)
        except OverflowError:  # an integer beyond the double range: the largest double, out of range as the sketch counts it
            return sys.float_info.max if cell > 0 else -sys.float_info.max
    elif isinstance(cell, str):
        try:
            number = float(cell)
        except ValueError:
            return cell if cell.strip() else None  # a blank CSV field is a missing value
    else:
        return cell  # a list or object: kept for the explainer to reject
    if math.isnan(number):
        return "NaN"
    return _NON_FINITE.get(number, number)


@dataclass(order=True, frozen=True, slots=True)
class SampledRow:
    priority: float
    event_id: str
    row_index: int
    output: float = field(compare=False)
    features: tuple[Any, ...] = field(compare=False)


@dataclass
class Sample:
    """The ``capacity`` rows of smallest priority among the ``seen`` rows offered."""

    capacity: int
    columns: tuple[str, ...]  # the output column, then the feature names
    seen: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    # A max-heap by priority (negated) while rows are offered; ``rows`` gives them in ascending order.
    _heap: list[tuple[float, _Reversed, int, SampledRow]] = field(default_factory=list, repr=False)
    # The next row's priority: only a sample made for one capture object (``empty``) is offered rows.
    _draw: Callable[[], float] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise SampleError(f"capacity must be at least 1, got {self.capacity}")
        if not self.columns or self.columns[0] != OUTPUT_COLUMN:
            raise SampleError(f"columns must start with {OUTPUT_COLUMN!r}, got {list(self.columns)[:3]}")

    @classmethod
    def empty(cls, capacity: int, feature_names: Sequence[str], *, source: str) -> Sample:
        """The sample of the rows of the capture object ``source`` (its URI: the priorities' seed)."""
        return cls(capacity, (OUTPUT_COLUMN, *feature_names), _draw=priorities(source))

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def rows(self) -> list[SampledRow]:
        """The rows kept, by ascending priority, with their values as written (``value``)."""
        return [
            SampledRow(row.priority, row.event_id, row.row_index, row.output, tuple(map(value, row.features)))
            for row in self._sorted()
        ]

    def _sorted(self) -> list[SampledRow]:
        return sorted(entry[3] for entry in self._heap)

    @property
    def threshold(self) -> float:
        """A row above this priority cannot enter the sample (1.0 while it is not full); one of this
        priority enters only if its identity sorts first (``_keep``)."""
        return -self._heap[0][0] if len(self._heap) == self.capacity else 1.0

    def offer(self, event_id: str, row_index: int, output: float, features: Sequence[Any]) -> None:
        """One complete row; a row whose feature count is not the columns' is counted in ``rejected``."""
        self.offer_many(lambda _: (event_id, row_index), [output], [features])

    def offer_many(self, identity: Callable[[int], tuple[str, int]], outputs: Sequence[float], features: Sequence[Sequence[Any]]) -> None:
        """Rows in the order of the capture object: row ``i`` is ``identity(i)`` (event id, row index),
        ``outputs[i]`` and ``features[i]``. Each row draws its priority; only the few that can enter
        the sample are looked at further (values are converted when written: most rows kept now are
        replaced later)."""
        if self._draw is None:
            raise SampleError("only the sample of one capture object (Sample.empty) is offered rows; a read or merged sample is not")
        draw, width = self._draw, len(self.columns) - 1
        ranks = list(starmap(draw, repeat((), len(features))))
        if set(map(len, features)) - {width}:  # rare: count the rows of another width apart
            for size in map(len, features):
                if size != width:
                    reason = f"row has {size} features, the sample {width}"
                    self.rejected[reason] = self.rejected.get(reason, 0) + 1
            self.seen += sum(len(row) == width for row in features)
        else:
            self.seen += len(features)
        threshold = self.threshold
        for i in list(compress(count(), map(threshold.__ge__, ranks))):  # rank <= threshold
            if ranks[i] <= threshold and len(features[i]) == width:
                event_id, row_index = identity(i)
                self._keep(SampledRow(ranks[i], event_id, row_index, float(outputs[i]), tuple(features[i])))
                threshold = self.threshold

    def _keep(self, row: SampledRow) -> None:
        # Ties in priority (a 2**-53 chance) are broken by the row's identity, so the order is total.
        entry = (-row.priority, _Reversed(row.event_id), -row.row_index, row)
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            heapq.heapreplace(self._heap, entry)


@dataclass(frozen=True, slots=True)
class _Reversed:
    """A string that sorts backwards: the heap keeps the largest (priority, id, index) on top."""

    text: str

    def __lt__(self, other: _Reversed) -> bool:
        return self.text > other.text


def sample(capacity: int, feature_names: Sequence[str], rows: Iterable[tuple[str, int, float, Sequence[Any]]], *, source: str) -> Sample:
    """The sample of the ``(event id, row index, output, features)`` rows of the capture object ``source``."""
    result = Sample.empty(capacity, feature_names, source=source)
    for event_id, row_index, output, features in rows:
        result.offer(event_id, row_index, output, features)
    return result


def merge(a: Sample, b: Sample) -> Sample:
    """The sample of the rows of ``a`` and ``b`` together (of the smaller capacity): exact."""
    if a.columns != b.columns:
        raise SampleError(
            f"cannot merge samples of different columns: {len(a.columns) - 1} features {_names(a.columns)} "
            f"and {len(b.columns) - 1} features {_names(b.columns)}"
        )
    result = Sample(min(a.capacity, b.capacity), a.columns, a.seen + b.seen, _added(a.rejected, b.rejected))
    seen: set[tuple[str, int]] = set()
    for row in heapq.merge(a.rows, b.rows):
        if len(result._heap) == result.capacity:
            break
        if (row.event_id, row.row_index) not in seen:  # the same row in both: a capture object merged twice
            seen.add((row.event_id, row.row_index))
            result._keep(row)
    return result


def _added(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    total = dict(a)
    for reason, count in b.items():
        total[reason] = total.get(reason, 0) + count
    return dict(sorted(total.items()))


def _names(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[1:4])
    return f"({shown}{', ...' if len(columns) > 4 else ''})"


def dumps(sample: Sample) -> bytes:
    return orjson.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "capacity": sample.capacity,
            "columns": list(sample.columns),
            "seen": sample.seen,
            "rejected": dict(sorted(sample.rejected.items())),
            "rows": [[row.priority, row.event_id, row.row_index, row.output, *map(value, row.features)] for row in sample._sorted()],
        }
    )


def loads(data: bytes | str, feature_names: Sequence[str] | None = None) -> Sample:
    """Read a sample; with ``feature_names``, also check it holds those columns.

    Raises ``SampleError`` naming what is wrong: not JSON, another format or version, other columns,
    or a malformed field.
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise SampleError(f"not a sample: not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SampleError(f"not a sample: no \"format\": \"{FORMAT}\"")
    if document.get("version") != VERSION:
        raise SampleError(f"sample format version {document.get('version')!r}; this code reads version {VERSION}")
    try:
        result = _parse(document)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, SampleError):
            raise
        raise SampleError(f"malformed sample: {type(error).__name__}: {error}") from None
    if feature_names is not None and result.columns[1:] != tuple(feature_names):
        expected = (OUTPUT_COLUMN, *feature_names)
        if len(result.columns) != len(expected):
            raise SampleError(
                f"sample has {len(result.columns) - 1} features {_names(result.columns)}, the model "
                f"{len(expected) - 1} {_names(expected)}: it was sampled for another model's features"
            )
        differ = [f"{a!r} != {b!r}" for a, b in zip(result.columns, expected) if a != b]
        raise SampleError(f"sample columns differ from the model's features: {', '.join(differ[:3])}")
    return result


def _parse(document: dict[str, Any]) -> Sample:
    columns = document["columns"]
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise ValueError("columns must be a non-empty list of names")
    capacity, seen = _count(document["capacity"], "capacity"), _count(document["seen"], "seen")
    rejected = document["rejected"]
    if not isinstance(rejected, dict):
        raise ValueError("rejected must be an object")
    result = Sample(capacity, tuple(columns), seen, {str(k): _count(v, k) for k, v in rejected.items()})
    rows = document["rows"]
    if not isinstance(rows, list) or len(rows) > min(capacity, seen):
        raise ValueError(f"rows must be a list of at most capacity ({capacity}) and seen ({seen}) rows")
    width = 3 + len(columns)
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise ValueError(f"row {number} must have {width} entries (priority, event id, row index, {len(columns)} columns)")
        rank, event_id, row_index, output = row[:4]
        if type(rank) is not float or not 0.0 <= rank < 1.0 or not isinstance(event_id, str):
            raise ValueError(f"row {number}: priority must be a number in [0, 1) and the event id a string")
        _count(row_index, f"row {number} index")
        if type(output) not in (int, float):
            raise ValueError(f"row {number}: the output must be a number, got {output!r}")
        result._keep(SampledRow(rank, event_id, row_index, float(output), tuple(row[4:])))  # value() keeps them as they are
    return result


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value
