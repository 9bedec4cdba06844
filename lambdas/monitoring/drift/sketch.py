"""A mergeable per-feature sketch of captured rows: one per capture object, merged per period.

For each column of the baseline (the model's output ``probability`` first, then the features:
``lambdas/shared/baseline.py``) a sketch keeps

- a histogram over the baseline's bin edges ``e_0 < ... < e_k`` (its quantiles, ``baseline.py``):
  bin 0 holds ``x <= e_0``, bin ``i`` holds ``e_{i-1} < x <= e_i``, bin ``k+1`` holds ``x > e_k``;
  so the cumulative count through bin ``i`` is exactly ``#{x <= e_i}``, which is what makes the
  distance of ``evaluate.py`` exact at every edge;
- the exact minimum, maximum, sum and sum of squares of the finite values (the sums as exact
  binary fractions, so merging is exact and associative, and the standard deviation has no
  rounding error from the order of the merge);
- counts of missing values (``None`` or an empty field), of text in a numeric column, of NaN and
  of infinities (each counted on its own, never in the histogram), and of finite values that are
  not whole numbers (a data-type mismatch for an ``Integral`` baseline column).

A row whose feature count differs from the baseline's is not profiled: it is counted under its
reason in ``rejected``, so nothing is lost without a trace.

Serialised form (``dumps``), format ``drift-sketch`` version 1, compact JSON::

    {"format": "drift-sketch", "version": 1, "baseline": "<layout id>", "columns": [names],
     "bins": [bins per column], "rows": n, "rejected": {"<reason>": n},
     "features": [{"h": [bin, count, bin, count, ...],   # non-empty bins only, ascending
                   "missing": n, "text": n, "nan": n, "inf": n, "fractional": n,   # only if not 0
                   "min": x, "max": x, "sum": "p:k", "sumsq": "p:k"}]}   # no min/max/sums if no finite value

A sum ``"p:k"`` is exactly ``p / 2**k`` (integers in text: they outgrow JSON's numbers). Floats
are written by orjson in their shortest round-tripping form, so ``loads(dumps(s)) == s``.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from numbers import Real
from typing import Any

import orjson

FORMAT = "drift-sketch"
VERSION = 1
# Every finite double is a whole multiple of 2**-1074, so a sum of doubles is an integer times a
# power of two; the sums are kept as (integer, exponent), the exponent the smallest seen so far.


class SketchError(ValueError):
    """A sketch that cannot be read or merged; the message says what is wrong."""


@dataclass(frozen=True)
class Layout:
    """The columns of a baseline and each column's bin edges (ascending, distinct, finite)."""

    columns: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.edges):
            raise ValueError(f"{len(self.columns)} columns but {len(self.edges)} edge lists")
        for name, edges in zip(self.columns, self.edges, strict=True):
            if not edges or any(not math.isfinite(e) for e in edges) or any(a >= b for a, b in zip(edges, edges[1:])):
                raise ValueError(f"column {name!r}: bin edges must be finite, distinct and ascending")

    @cached_property
    def id(self) -> str:
        """Short fingerprint of the columns and edges: a sketch is only merged or compared with
        sketches and baselines of the same layout."""
        return hashlib.sha256(orjson.dumps([self.columns, self.edges])).hexdigest()[:16]

    @property
    def features(self) -> int:
        """How many model features a row has (every column but the model's output)."""
        return len(self.columns) - 1


@dataclass
class ColumnSketch:
    counts: list[int]  # len(edges) + 1 bins, see the module docstring
    missing: int = 0
    text: int = 0
    nan: int = 0
    inf: int = 0
    fractional: int = 0
    minimum: float | None = None
    maximum: float | None = None
    # sum = sum_units * 2**-sum_bits and sum of squares = squares_units * 2**-(2 * sum_bits), exactly
    sum_units: int = field(default=0, compare=False)
    squares_units: int = field(default=0, compare=False)
    sum_bits: int = field(default=0, compare=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ColumnSketch):
            return NotImplemented
        return (
            _fields(self) == _fields(other)
            and self.total == other.total
            and self.total_squares == other.total_squares
        )

    @property
    def finite(self) -> int:
        return sum(self.counts)

    @property
    def present(self) -> int:
        """Values that are there, numbers or not (Model Monitor's ``num_present``)."""
        return self.finite + self.text + self.nan + self.inf

    @property
    def total(self) -> Fraction:
        return Fraction(self.sum_units, 1 << self.sum_bits)

    @property
    def total_squares(self) -> Fraction:
        return Fraction(self.squares_units, 1 << (2 * self.sum_bits))

    def add(self, value: Any, edges: Sequence[float]) -> None:
        """Fold one cell in: a number, numeric text (a CSV field), or anything else."""
        if value is None or value == "":
            self.missing += 1
            return
        kind = type(value)
        if kind is float or kind is int or (isinstance(value, Real) and kind is not bool):
            try:
                x = float(value)
            except OverflowError:  # an integer beyond the float range
                self.inf += 1
                return
        elif kind is str:
            try:
                x = float(value)
            except ValueError:
                if value.strip():
                    self.text += 1
                else:  # a blank CSV field
                    self.missing += 1
                return
        else:  # bool, list, dict: not a number
            self.text += 1
            return
        if x != x:
            self.nan += 1
            return
        if x == math.inf or x == -math.inf:
            self.inf += 1
            return
        x += 0.0  # -0.0 becomes 0.0: the same minimum whatever the order of the rows
        self.counts[bisect_left(edges, x)] += 1
        if self.minimum is None or x < self.minimum:
            self.minimum = x
        if self.maximum is None or x > self.maximum:
            self.maximum = x
        if not x.is_integer():
            self.fractional += 1
        numerator, denominator = x.as_integer_ratio()
        bits = denominator.bit_length() - 1
        if bits > self.sum_bits:  # a finer unit: rescale what is summed so far
            self._rescale(bits)
        shift = self.sum_bits - bits
        self.sum_units += numerator << shift
        self.squares_units += (numerator * numerator) << (2 * shift)

    def _rescale(self, bits: int) -> None:
        shift = bits - self.sum_bits
        self.sum_units <<= shift
        self.squares_units <<= 2 * shift
        self.sum_bits = bits

    def merged(self, other: ColumnSketch) -> ColumnSketch:
        bits = max(self.sum_bits, other.sum_bits)
        mine, theirs = self._units(bits), other._units(bits)
        return ColumnSketch(
            counts=[x + y for x, y in zip(self.counts, other.counts, strict=True)],
            missing=self.missing + other.missing,
            text=self.text + other.text,
            nan=self.nan + other.nan,
            inf=self.inf + other.inf,
            fractional=self.fractional + other.fractional,
            minimum=_pick(min, self.minimum, other.minimum),
            maximum=_pick(max, self.maximum, other.maximum),
            sum_units=mine[0] + theirs[0],
            squares_units=mine[1] + theirs[1],
            sum_bits=bits,
        )

    def _units(self, bits: int) -> tuple[int, int]:
        shift = bits - self.sum_bits
        return self.sum_units << shift, self.squares_units << (2 * shift)


def _fields(column: ColumnSketch) -> tuple[Any, ...]:
    return (column.counts, *(getattr(column, name) for name in _COUNTERS), column.minimum, column.maximum)


def _pick(choose: Any, a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else choose(a, b)


@dataclass
class Sketch:
    """The profile of some rows against one baseline layout."""

    layout_id: str
    columns: tuple[str, ...]
    features: list[ColumnSketch]
    rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, layout: Layout) -> Sketch:
        return cls(layout.id, layout.columns, [ColumnSketch([0] * (len(edges) + 1)) for edges in layout.edges])

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())

    def add_row(self, layout: Layout, output: Any, features: Sequence[Any] | None) -> None:
        """Fold in one prediction: the model's output and the row's features, either ``None`` when
        the capture held only the other half (every value of that half is then missing)."""
        if layout.id != self.layout_id:
            raise SketchError(f"this sketch is for baseline layout {self.layout_id}, not {layout.id}")
        if features is not None and len(features) != layout.features:
            reason = f"row has {len(features)} features, the baseline {layout.features}"
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            return
        self.rows += 1
        columns, edges = self.features, layout.edges
        columns[0].add(output, edges[0])
        if features is None:
            for column in columns[1:]:
                column.missing += 1
            return
        for column, value, column_edges in zip(columns[1:], features, edges[1:]):
            column.add(value, column_edges)


def profile(layout: Layout, rows: Iterable[tuple[Any, Sequence[Any] | None]]) -> Sketch:
    """The sketch of ``(output, features)`` rows."""
    sketch = Sketch.empty(layout)
    for output, features in rows:
        sketch.add_row(layout, output, features)
    return sketch


def merge(a: Sketch, b: Sketch) -> Sketch:
    """The sketch of the rows of ``a`` and ``b`` together: exact, associative and commutative."""
    if a.columns != b.columns:
        raise SketchError(
            f"cannot merge sketches of different columns: {len(a.columns)} columns {_names(a.columns)} "
            f"and {len(b.columns)} columns {_names(b.columns)}"
        )
    if a.layout_id != b.layout_id:
        raise SketchError(f"cannot merge sketches of different baselines: layout {a.layout_id} and {b.layout_id}")
    rejected = dict(a.rejected)
    for reason, count in b.rejected.items():
        rejected[reason] = rejected.get(reason, 0) + count
    return Sketch(
        a.layout_id,
        a.columns,
        [x.merged(y) for x, y in zip(a.features, b.features, strict=True)],
        a.rows + b.rows,
        dict(sorted(rejected.items())),
    )


def _names(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:3])
    return f"({shown}{', ...' if len(columns) > 3 else ''})"


def dumps(sketch: Sketch) -> bytes:
    features = []
    for column in sketch.features:
        item: dict[str, Any] = {"h": [v for i, c in enumerate(column.counts) if c for v in (i, c)]}
        for name in _COUNTERS:
            if getattr(column, name):
                item[name] = getattr(column, name)
        if column.minimum is not None:
            item["min"], item["max"] = column.minimum, column.maximum
            item["sum"], item["sumsq"] = _binary_text(column.total), _binary_text(column.total_squares)
        features.append(item)
    return orjson.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "baseline": sketch.layout_id,
            "columns": list(sketch.columns),
            "bins": [len(column.counts) for column in sketch.features],
            "rows": sketch.rows,
            "rejected": dict(sorted(sketch.rejected.items())),
            "features": features,
        }
    )


_COUNTERS = ("missing", "text", "nan", "inf", "fractional")


def _binary_text(value: Fraction) -> str:
    """``"p:k"`` for ``p / 2**k`` in lowest terms (a sum of doubles has a power-of-two denominator)."""
    return f"{value.numerator}:{value.denominator.bit_length() - 1}"


def loads(data: bytes | str, layout: Layout | None = None) -> Sketch:
    """Read a sketch; with ``layout``, also check it was profiled against that baseline.

    Raises ``SketchError`` naming what is wrong: not JSON, another format or version, a column
    count or baseline that differs from ``layout``'s, or a malformed field.
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise SketchError(f"not a sketch: not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SketchError(f"not a sketch: no \"format\": \"{FORMAT}\"")
    if document.get("version") != VERSION:
        raise SketchError(f"sketch format version {document.get('version')!r}; this code reads version {VERSION}")
    try:
        sketch = _parse(document)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        raise SketchError(f"malformed sketch: {type(error).__name__}: {error}") from None
    if layout is not None:
        check_layout(sketch, layout)
    return sketch


def check_layout(sketch: Sketch, layout: Layout) -> None:
    if len(sketch.columns) != len(layout.columns):
        raise SketchError(
            f"sketch has {len(sketch.columns)} columns {_names(sketch.columns)}, the baseline "
            f"{len(layout.columns)} {_names(layout.columns)}: it was profiled for another model's features"
        )
    if sketch.columns != layout.columns:
        differ = [f"{a!r} != {b!r}" for a, b in zip(sketch.columns, layout.columns) if a != b]
        raise SketchError(f"sketch columns differ from the baseline's: {', '.join(differ[:3])}")
    if sketch.layout_id != layout.id:
        raise SketchError(
            f"sketch was profiled against baseline layout {sketch.layout_id}, the baseline is {layout.id}"
        )


def _parse(document: dict[str, Any]) -> Sketch:
    columns = document["columns"]
    bins = document["bins"]
    items = document["features"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError("columns must be a list of names")
    if len(bins) != len(columns) or len(items) != len(columns):
        raise ValueError(f"{len(columns)} columns but {len(bins)} bin counts and {len(items)} features")
    features = []
    for name, size, item in zip(columns, bins, items, strict=True):
        counts = [0] * _count(size, f"{name}.bins")
        pairs = item["h"]
        if len(pairs) % 2:
            raise ValueError(f"{name}: histogram has an odd number of entries")
        for index, count in zip(pairs[::2], pairs[1::2], strict=True):
            if not 0 <= _count(index, f"{name} bin") < len(counts):
                raise ValueError(f"{name}: bin {index} outside 0..{len(counts) - 1}")
            counts[index] += _count(count, f"{name} bin {index}")
        column = ColumnSketch(counts, **{k: _count(item.get(k, 0), f"{name}.{k}") for k in _COUNTERS})
        if column.finite:
            if "min" not in item:
                raise ValueError(f"{name}: finite values counted but no min/max")
            column.minimum, column.maximum = _finite(item["min"], name), _finite(item["max"], name)
            column.sum_units, column.squares_units, column.sum_bits = _sums(item["sum"], item["sumsq"], name)
        features.append(column)
    rejected = document["rejected"]
    if not isinstance(rejected, dict):
        raise ValueError("rejected must be an object")
    layout_id = document["baseline"]
    if not isinstance(layout_id, str):
        raise ValueError("baseline must be a layout id")
    rows = _count(document["rows"], "rows")
    return Sketch(layout_id, tuple(columns), features, rows, {str(k): _count(v, k) for k, v in rejected.items()})


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _finite(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"{what}: min/max must be finite numbers, got {value!r}")
    return float(value)


def _sums(sum_text: Any, squares_text: Any, what: str) -> tuple[int, int, int]:
    """(sum units, squares units, bits) of the written sums ``"p:k"``."""
    (total, total_bits), (squares, squares_bits) = _binary(sum_text, what), _binary(squares_text, what)
    bits = max(total_bits, (squares_bits + 1) // 2)
    return total << (bits - total_bits), squares << (2 * bits - squares_bits), bits


def _binary(text: Any, what: str) -> tuple[int, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise ValueError(f"{what}: a sum must be written \"p:k\" (p / 2**k), got {text!r}")
    numerator, bits = text.split(":")
    if not bits.isdigit():
        raise ValueError(f"{what}: a sum must be written \"p:k\" (p / 2**k), got {text!r}")
    return int(numerator), int(bits)
