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
- counts of missing values (``None`` or a blank field), of values that are not numbers (text that
  ``float()`` cannot read, booleans, lists, objects: a data-type mismatch), of NaN and of
  infinities (each counted on its own, never in the histogram), of finite values beyond the float32
  range (``|x| > RANGE_LIMIT``, "out of range": counted on their own like infinities, never in the
  histogram, the minimum, the maximum or the sums), and of finite values that are not whole numbers
  (a data-type mismatch for an ``Integral`` baseline column). A number is what ``float()`` reads, so
  numeric text (a CSV field) counts as its number; an integer beyond even the double range is out of range;
- how many of bin 0's values are below the baseline's minimum ``e_0`` (``below``; bin ``k+1`` holds
  exactly those above its maximum ``e_k``), so a report can say how many values left the baseline's range.

A row whose feature count differs from the baseline's is not profiled: it is counted under its
reason in ``rejected``, so nothing is lost without a trace.

Rows are folded a batch at a time (``Batch``, ``Sketch.add_batch``; ``add_rows`` makes the batches,
``add_row`` is a batch of one), a column at a time with numpy, imported only there (loading,
merging and writing sketches need no numpy): rows of numbers are packed into one float array as
they are added, the columns are sorted once for the histogram (a search per bin edge), the minimum
and the maximum, and the sums stay exact (``_exact_sums``: each value cut into four 21-bit whole
chunks whose sums and products floats hold exactly). Rows holding anything but numbers are read a
column at a time, value by value where needed. The fold's result does not depend on how the rows
are batched: a batch is the same as its rows one by one.

Serialised form (``dumps``), format ``drift-sketch`` version 1, compact JSON::

    {"format": "drift-sketch", "version": 1, "baseline": "<layout id>", "columns": [names],
     "bins": [bins per column], "rows": n, "rejected": {"<reason>": n},
     "features": [{"h": [bin, count, bin, count, ...],   # non-empty bins only, ascending
                   "missing": n, "text": n, "nan": n, "inf": n, "out_of_range": n,   # only if not 0
                   "fractional": n, "below": n,                                       # only if not 0
                   "min": x, "max": x, "sum": "p:k", "sumsq": "p:k"}]}   # no min/max/sums if no finite value

A sum ``"p:k"`` is exactly ``p / 2**k`` (integers in text: they outgrow JSON's numbers). Floats
are written by orjson in their shortest round-tripping form, so ``loads(dumps(s)) == s``.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property, lru_cache
from itertools import islice, starmap
from operator import add
from typing import Any

import orjson

FORMAT = "drift-sketch"
VERSION = 1
# Rows folded at once (``Sketch.add_rows``, the capture filter's ``Batch``): the numpy calls' fixed
# cost spread thin; a batch of 30 features is about 500 KB of floats.
BATCH_ROWS = 2048
_SUM_ROWS = 2048  # values per exact sum: products of 21-bit chunks, 2**11 of them below 2**53 (``_exact_sums``)
_CHUNK_BITS, _CHUNKS = 21, 4
_CHUNK = float(1 << _CHUNK_BITS)
# Every finite double is a whole multiple of 2**-1074, so a sum of doubles is an integer times a
# power of two; the sums are kept as (integer, exponent), the exponent the smallest seen so far.
# The largest float32. A finite value beyond it is "out of range": counted apart, as infinities are.
# XGBoost (the bundled model, and the attribution evaluator's TreeSHAP) and most model servers read
# features as float32, where such a value is infinity; and it keeps the sums of squares (at most
# rows * 1.2e77) and so the mean and standard deviation far inside the double range, whatever the
# period holds (a value of 1.4e154 or more used to overflow them and crash the run).
RANGE_LIMIT = 3.4028234663852886e38
_NUMBER, _MISSING, _TEXT = 0, 1, 2
_NUMBER_TYPES = frozenset({float, int, str})
_ZERO, _ONE = struct.pack("d", 0.0), struct.pack("d", 1.0)


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

    @cached_property
    def _edge_arrays(self) -> list[Any]:
        """Each column's edges as a numpy array (made on the first batch, kept with the layout)."""
        import numpy as np

        return [np.array(edges, dtype=np.float64) for edges in self.edges]

    @cached_property
    def _first_edges(self) -> Any:
        """Each column's first edge (the baseline's minimum), as one numpy array."""
        import numpy as np

        return np.array([edges[0] for edges in self.edges], dtype=np.float64)

    @cached_property
    def _histogram_starts(self) -> list[int]:
        """Where each column's ``len(edges) + 2`` cumulative counts start in one array (``_fold``)."""
        starts = [0]
        for edges in self.edges[:-1]:
            starts.append(starts[-1] + len(edges) + 2)
        return starts

    @property
    def _histogram_size(self) -> int:
        return self._histogram_starts[-1] + len(self.edges[-1]) + 2


@dataclass
class ColumnSketch:
    counts: list[int]  # len(edges) + 1 bins, see the module docstring
    missing: int = 0
    text: int = 0
    nan: int = 0
    inf: int = 0
    out_of_range: int = 0  # finite values with |x| > RANGE_LIMIT
    fractional: int = 0
    below: int = 0  # finite values below the first edge (the baseline's minimum): part of counts[0]
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
        return self.finite + self.text + self.nan + self.inf + self.out_of_range

    @property
    def total(self) -> Fraction:
        return Fraction(self.sum_units, 1 << self.sum_bits)

    @property
    def total_squares(self) -> Fraction:
        return Fraction(self.squares_units, 1 << (2 * self.sum_bits))

    def _add_sums(self, total: int, squares: int, bits: int) -> None:
        """Add ``total / 2**bits`` to the sum and ``squares / 2**(2 * bits)`` to the sum of squares."""
        if bits < 0:
            total, squares, bits = total << -bits, squares << (-2 * bits), 0
        if bits > self.sum_bits:  # a finer unit: rescale what is summed so far
            self._rescale(bits)
        shift = self.sum_bits - bits
        self.sum_units += total << shift
        self.squares_units += squares << (2 * shift)

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
            out_of_range=self.out_of_range + other.out_of_range,
            below=self.below + other.below,
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
        self.add_rows(layout, [output], [features])

    def add_rows(self, layout: Layout, outputs: Sequence[Any], rows: Sequence[Sequence[Any] | None]) -> None:
        """Fold in ``(outputs[i], rows[i])`` for each ``i`` as ``add_row`` describes, BATCH_ROWS at a time."""
        if len(outputs) != len(rows):
            raise ValueError(f"{len(outputs)} outputs for {len(rows)} rows")
        for start in range(0, len(rows), BATCH_ROWS):
            batch = Batch(layout)
            batch.add(outputs[start : start + BATCH_ROWS], rows[start : start + BATCH_ROWS])
            self.add_batch(batch)

    def add_batch(self, batch: Batch) -> None:
        """Fold in the rows of ``batch``."""
        if batch.layout.id != self.layout_id:
            raise SketchError(f"this sketch is for baseline layout {self.layout_id}, not {batch.layout.id}")
        for reason, count in batch.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + count
        self.rows += len(batch)
        _fold(self.features, batch)


class Batch:
    """Rows waiting to be folded into a sketch (``Sketch.add_batch``). Rows of numbers are packed as
    they are added, 8 bytes a value: a batch that held every row's Python objects until its fold
    slowed the capture filter's parse by a tenth (its allocations no longer reused warm memory).
    Rows holding anything else (None, booleans, text, lists), or no features, are kept as they are."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.rejected: dict[str, int] = {}  # rows of another feature count, by reason (never folded)
        self.packed = bytearray()  # the features of the rows of numbers, float64, row after row
        self.packed_outputs: list[Any] = []
        self.odd_outputs: list[Any] = []
        self.odd_rows: list[Sequence[Any] | None] = []

    def __len__(self) -> int:
        return len(self.packed_outputs) + len(self.odd_outputs)

    def add(self, outputs: Sequence[Any], rows: Sequence[Sequence[Any] | None]) -> None:
        """Add ``(outputs[i], rows[i])`` for each ``i``: a prediction's output and features, either
        ``None`` when the capture held only the other half (every value of that half is then missing)."""
        if len(outputs) != len(rows):
            raise ValueError(f"{len(outputs)} outputs for {len(rows)} rows")
        width = self.layout.features
        if None in rows or set(map(len, rows)) != {width}:  # rare: rows of another width, or no features
            whole_outputs, whole_rows = [], []
            for output, row in zip(outputs, rows):
                if row is None:
                    self.odd_outputs.append(output)
                    self.odd_rows.append(None)
                elif len(row) != width:
                    reason = f"row has {len(row)} features, the baseline {width}"
                    self.rejected[reason] = self.rejected.get(reason, 0) + 1
                else:
                    whole_outputs.append(output)
                    whole_rows.append(row)
            outputs, rows = whole_outputs, whole_rows
        if not rows:
            return
        packed, odd, read = _packed_bytes(rows, width), set(), range(len(rows))
        if packed is None:  # some row holds what struct cannot read: find them
            odd = {i for i, row in enumerate(rows) if _packed_bytes([row], width) is None}
            read = [i for i in read if i not in odd]
            packed = _packed_bytes([rows[i] for i in read], width)
        # Booleans, which struct reads as 1.0 and 0.0, are looked for among the zeros and ones, if
        # their bytes occur at all (a search of the bytes, without numpy, settles most batches).
        if read and (_ZERO in packed or _ONE in packed):
            import numpy as np  # here only: loading, merging and writing sketches need no numpy

            values = np.frombuffer(packed, np.float64).reshape(len(read), width)
            odd.update(read[i] for i, _ in _not_number_cells(np, values, lambda i, j: rows[read[i]][j]))
        if odd:
            self.odd_outputs += [outputs[i] for i in sorted(odd)]
            self.odd_rows += [rows[i] for i in sorted(odd)]
            outputs = [output for i, output in enumerate(outputs) if i not in odd]
            rows = [row for i, row in enumerate(rows) if i not in odd]
            packed = _packed_bytes(rows, width) if rows else b""
        self.packed += packed
        self.packed_outputs += outputs


def _fold(columns: list[ColumnSketch], batch: Batch) -> None:
    """Fold the rows of ``batch`` into ``columns``.

    Few large arrays, each made once: fresh memory costs a page fault per 4 KB, as much as the
    arithmetic (``make bench``). The table is sorted in place; the sums do not depend on the order.
    """
    if not len(batch):
        return
    import numpy as np  # here only: loading, merging and writing sketches need no numpy

    layout = batch.layout
    table, missing, text = _table(np, batch, len(columns))  # (columns, rows), NaN where no number
    size = table.shape[1]
    finite = np.isfinite(table)
    whole = bool(finite.all())
    if whole:
        counts = np.full(len(columns), size)
        nans = infs = [0] * len(columns)
    else:
        infs = np.count_nonzero(np.isinf(table), axis=1).tolist()
        nans = [n - m - t for n, m, t in zip(np.count_nonzero(np.isnan(table), axis=1).tolist(), missing, text, strict=True)]
        counts = np.count_nonzero(finite, axis=1)
        table[~finite] = np.nan  # sorted last: each row's finite values come first
    table.sort(axis=1)
    lasts = np.maximum(counts - 1, 0)
    lows, highs = table[:, 0] + 0.0, table[np.arange(len(columns)), lasts] + 0.0  # + 0.0: -0.0 is 0.0, whatever the order
    outside = [0] * len(columns)
    beyond = np.nonzero((lows < -RANGE_LIMIT) | (highs > RANGE_LIMIT))[0].tolist()  # rare: a check of two numbers a column
    if beyond:  # values beyond the float32 range: counted apart and taken out, as infinities are
        counts = np.array(counts)
        for index in beyond:
            row, count = table[index], int(counts[index])
            low = int(np.searchsorted(row[:count], -RANGE_LIMIT, side="left"))
            high = int(np.searchsorted(row[:count], RANGE_LIMIT, side="right"))
            outside[index] = low + count - high
            row[:low] = np.nan
            row[high:count] = np.nan
            row.sort()  # the values within range first again
            counts[index] = high - low
        whole = False
        lasts = np.maximum(counts - 1, 0)
        lows, highs = table[:, 0] + 0.0, table[np.arange(len(columns)), lasts] + 0.0
    belows = [0] * len(columns)  # values below the baseline's minimum (rare: a check of one number a column)
    for index in np.nonzero(lows < layout._first_edges)[0].tolist():
        belows[index] = int(np.searchsorted(table[index, : int(counts[index])], layout.edges[index][0], side="left"))
    bounds = np.zeros(layout._histogram_size, dtype=np.int64)  # per column: 0, #{x <= e_0}, ..., #{x <= e_k}, finite
    for start, edges, row, count in zip(layout._histogram_starts, layout._edge_arrays, table, counts.tolist(), strict=True):
        bounds[start + 1 : start + 1 + len(edges)] = np.searchsorted(row[:count], edges, side="right")
        bounds[start + 1 + len(edges)] = count
    bins = np.diff(bounds).tolist()  # bins of column j: bins[start_j : start_j + len(edges_j) + 1]
    if not whole:
        table[np.isnan(table)] = 0.0  # nothing, in the sums and the fractional count
    scratch = np.floor(table)
    fractional = np.count_nonzero(table != scratch, axis=1).tolist()
    peaks = np.maximum(-lows, highs)
    peaks[counts == 0] = 0.0
    sums = [_exact_sums(np, table[:, start : start + _SUM_ROWS], peaks, scratch[:, start : start + _SUM_ROWS]) for start in range(0, size, _SUM_ROWS)]
    counts, lows, highs = counts.tolist(), lows.tolist(), highs.tolist()
    for index, (column, start) in enumerate(zip(columns, layout._histogram_starts, strict=True)):
        column.missing += missing[index]
        column.text += text[index]
        column.nan += nans[index]
        column.inf += infs[index]
        column.out_of_range += outside[index]
        if not counts[index]:
            continue
        column.counts = list(map(add, column.counts, bins[start : start + len(column.counts)]))
        column.fractional += fractional[index]
        column.below += belows[index]
        low, high = lows[index], highs[index]
        if column.minimum is None or low < column.minimum:
            column.minimum = low
        if column.maximum is None or high > column.maximum:
            column.maximum = high
        for block in sums:
            column._add_sums(*block[index])


def _table(np: Any, batch: Batch, width: int) -> tuple[Any, list[int], list[int]]:
    """The batch as a float array (columns, rows: the packed rows, then the others): each value's
    number (NaN and infinities as they are), NaN where there is no number; and per column the
    missing values and the values that are not numbers. The outputs and each column of the other
    rows are converted at once when they can be; a column holding anything else (booleans, None,
    text, lists) is read value by value (``_cell``)."""
    outputs, rows = batch.packed_outputs + batch.odd_outputs, batch.odd_rows
    size, packed = len(outputs), len(batch.packed_outputs)
    table = np.empty((width, size))
    missing, text = [0] * width, [0] * width
    odd = set()  # columns to read value by value (the outputs: 0; the other rows' features: 1...)
    converted = _packed(np, [outputs], size)
    numbers = converted is not None and _NUMBER_TYPES.issuperset(map(type, outputs))  # the capture filter's: floats
    if converted is None or (not numbers and _not_number_cells(np, converted[:, None], lambda i, _: outputs[i])):
        odd.add(0)
    else:
        table[0] = converted
    if packed:
        table[1:, :packed] = np.frombuffer(batch.packed, np.float64).reshape(packed, width - 1).T
    for index in range(1, width) if rows else ():
        values = _column(rows, index)
        converted = _converted(np, values, (len(rows),))
        if converted is None or _not_number_cells(np, converted[:, None], lambda i, _: values[i]):
            odd.add(index)
        else:
            table[index, packed:] = converted
    for index in sorted(odd):
        cells = list(map(_cell, outputs if index == 0 else _column(rows, index)))
        kinds = [kind for _, kind in cells]
        missing[index], text[index] = kinds.count(_MISSING), kinds.count(_TEXT)
        table[index, 0 if index == 0 else packed :] = [number for number, _ in cells]
    return table, missing, text


def _column(rows: Sequence[Sequence[Any] | None], index: int) -> list[Any]:
    """Column ``index`` of the table (the features' ``index - 1``): None where the row has no features."""
    return [None if row is None else row[index - 1] for row in rows]


def _packed(np: Any, rows: Iterable[Sequence[Any]], width: int) -> Any:
    """``_packed_bytes`` as a float array, or None."""
    packed = _packed_bytes(rows, width)
    return None if packed is None else np.frombuffer(packed, np.float64)


def _packed_bytes(rows: Iterable[Sequence[Any]], width: int) -> bytes | None:
    """The values of ``rows`` of ``width`` values each as float64 bytes, or None unless each is a
    number (or a boolean: ``_not_number_cells``). ``struct`` reads each value's float directly: a
    sixth of the instructions of numpy's conversion of nested lists."""
    try:
        return b"".join(starmap(_row_struct(width).pack, rows))
    except (struct.error, TypeError, ValueError, OverflowError):  # text, None, a list, an integer beyond the float range
        return None


@lru_cache(maxsize=8)
def _row_struct(width: int) -> struct.Struct:
    return struct.Struct(f"{width}d")


def _converted(np: Any, values: Any, shape: tuple[int, ...]) -> Any:
    """``values`` as a float array of ``shape``, or None if numpy cannot convert them all."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # text, a list, an integer beyond the float range
        return None
    return array if array.shape == shape else None


def _not_number_cells(np: Any, array: Any, value: Callable[[int, int], Any]) -> list[tuple[int, int]]:
    """The cells (row, column) of ``array`` where numpy or struct read as a number a value that is
    not one: a boolean (1.0 or 0.0) or None (NaN). Only the values read as 0, 1 or NaN are looked at."""
    rows, columns = (axis.tolist() for axis in np.nonzero((array == 0.0) | (array == 1.0) | np.isnan(array)))
    candidates = list(map(value, rows, columns))
    if _NUMBER_TYPES.issuperset(map(type, candidates)):  # the common case: zeros and ones that are numbers
        return []
    return [(i, j) for i, j, cell in zip(rows, columns, candidates, strict=True) if _is_not_number(cell)]


def _is_not_number(value: Any) -> bool:
    return value is None or isinstance(value, bool) or type(value).__name__ == "bool"  # numpy's bool too


def _cell(value: Any) -> tuple[float, int]:
    """(number, kind) of one value: a number is what ``float()`` reads, booleans aside; a blank is missing."""
    if value is None:
        return math.nan, _MISSING
    if _is_not_number(value):
        return math.nan, _TEXT
    try:
        return float(value), _NUMBER
    except OverflowError:  # an integer beyond the double range: out of range (``RANGE_LIMIT``)
        return (sys.float_info.max if value > 0 else -sys.float_info.max), _NUMBER
    except (TypeError, ValueError):
        if isinstance(value, (str, bytes)) and not value.strip():  # a blank CSV field
            return math.nan, _MISSING
        return math.nan, _TEXT


def _exact_sums(np: Any, values: Any, peaks: Any, scratch: Any) -> list[tuple[int, int, int]]:
    """Per row of ``values`` (columns, at most _SUM_ROWS finite values each) whose largest magnitude
    is ``peaks``, the exact ``(total, squares, bits)``: sum = total / 2**bits, sum of squares =
    squares / 2**(2 * bits). ``scratch``: an array of the shape of ``values``, overwritten.

    With |x| < 2**E for every x of a row, x = +-(c1 * 2**63 + c2 * 2**42 + c3 * 2**21 + c4) * 2**(E - 84):
    four whole chunks below 2**21, cut exactly from the scaled value (the fraction of a float is a float).
    Their sums, and the sums of their pairwise products (each below 2**42, and all of a row's
    _SUM_ROWS = 2**11 of them below 2**53), are whole numbers that floats hold exactly, whatever
    the order of the additions. A value with bits below 2**(E - 84) (a row spanning more than 31
    binades) is added on its own, as a fraction.
    """
    exponents = np.frexp(peaks)[1]  # |x| < 2**E (E = 0 for a row without finite values)
    top = _CHUNK_BITS * _CHUNKS
    # |scaled| < 2**21, multiplied by powers of two (exact: numpy's ldexp calls libc's per value), in
    # two steps when the scale itself is beyond the float range (a row of values below 2**-1000)
    shifts = _CHUNK_BITS - exponents
    first_shift = np.minimum(shifts, 1000)
    scaled = np.multiply(values, np.ldexp(1.0, first_shift)[:, None], out=scratch)
    if (shifts > first_shift).any():
        scaled *= np.ldexp(1.0, shifts - first_shift)[:, None]
    gone = (scaled == 0.0) & (values != 0.0) if (exponents > _CHUNK_BITS).any() else None  # scaled below the float range
    chunks = np.empty((_CHUNKS, *values.shape))
    for index, chunk in enumerate(chunks):
        if index:
            scaled *= _CHUNK
        np.trunc(scaled, out=chunk)  # the same sign as the value; the rest is exact
        scaled -= chunk
    lost = scaled != 0.0
    if gone is not None:
        lost |= gone
    extra: list[list[float]] = [[] for _ in range(len(values))]
    if lost.any():
        for row, cell in zip(*(axis.tolist() for axis in np.nonzero(lost))):
            extra[row].append(float(values[row, cell]))
        chunks[:, lost] = 0.0
    totals = chunks.sum(axis=2).tolist()
    pairs = [(i, j) for i in range(_CHUNKS) for j in range(i, _CHUNKS)]
    products = [np.einsum("ij,ij->i", chunks[i], chunks[j]).tolist() for i, j in pairs]
    result = []
    for row, exponent in enumerate(exponents.tolist()):
        total = sum(int(totals[i][row]) << (_CHUNK_BITS * (_CHUNKS - 1 - i)) for i in range(_CHUNKS))
        squares = sum(
            (int(product[row]) << (_CHUNK_BITS * (2 * _CHUNKS - 2 - i - j))) * (1 if i == j else 2)
            for (i, j), product in zip(pairs, products, strict=True)
        )
        bits = top - exponent
        for x in extra[row]:  # exactly, as a fraction p / 2**k
            numerator, denominator = x.as_integer_ratio()
            k = denominator.bit_length() - 1
            if k > bits:
                total, squares, bits = total << (k - bits), squares << (2 * (k - bits)), k
            shift = bits - k
            total += numerator << shift
            squares += (numerator * numerator) << (2 * shift)
        result.append((total, squares, bits))
    return result


def profile(layout: Layout, rows: Iterable[tuple[Any, Sequence[Any] | None]]) -> Sketch:
    """The sketch of ``(output, features)`` rows."""
    sketch = Sketch.empty(layout)
    rows = iter(rows)
    while batch := list(islice(rows, BATCH_ROWS)):
        sketch.add_rows(layout, [output for output, _ in batch], [features for _, features in batch])
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


_COUNTERS = ("missing", "text", "nan", "inf", "out_of_range", "fractional", "below")


def _binary_text(value: Fraction) -> str:
    """``"p:k"`` for ``p / 2**k`` in lowest terms (a sum of doubles has a power-of-two denominator)."""
    return f"{value.numerator}:{value.denominator.bit_length() - 1}"


def loads(data: bytes | str, layout: Layout | None = None) -> Sketch:
    """Read a sketch; with ``layout``, also check it was profiled against that baseline.

    Raises ``SketchError`` naming what is wrong: not JSON, another format or version, a column
    count, baseline or bin count that differs from ``layout``'s (checked before anything is
    allocated), or a malformed or inconsistent field (``_parse``), so that a corrupt file, or one
    another writer put among the sketches, is set aside with its reason and never ends a run.
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
        if layout is not None:
            _check_document_layout(document, layout)
        return _parse(document, layout)
    except SketchError:
        raise
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError) as error:
        raise SketchError(f"malformed sketch: {type(error).__name__}: {error}") from None


def check_layout(sketch: Sketch, layout: Layout) -> None:
    """``SketchError`` unless ``sketch`` was profiled against ``layout``."""
    _check_columns(sketch.columns, sketch.layout_id, layout)
    for name, column, edges in zip(layout.columns, sketch.features, layout.edges, strict=True):
        if len(column.counts) != len(edges) + 1:
            raise SketchError(f"sketch column {name!r} has {len(column.counts)} bins, the baseline's layout {len(edges) + 1}")


def _check_columns(columns: Sequence[str], layout_id: str, layout: Layout) -> None:
    if len(columns) != len(layout.columns):
        raise SketchError(
            f"sketch has {len(columns)} columns {_names(columns)}, the baseline "
            f"{len(layout.columns)} {_names(layout.columns)}: it was profiled for another model's features"
        )
    if tuple(columns) != layout.columns:
        differ = [f"{a!r} != {b!r}" for a, b in zip(columns, layout.columns) if a != b]
        raise SketchError(f"sketch columns differ from the baseline's: {', '.join(differ[:3])}")
    if layout_id != layout.id:
        raise SketchError(f"sketch was profiled against baseline layout {layout_id}, the baseline is {layout.id}")


def _check_document_layout(document: dict[str, Any], layout: Layout) -> None:
    """``check_layout`` on the parsed JSON, before ``_parse`` allocates a bin: a bin count that is
    not the layout's (10**8, say) is refused here, not after building lists of that size."""
    columns, layout_id, bins = document["columns"], document["baseline"], document["bins"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError("columns must be a list of names")
    if not isinstance(layout_id, str):
        raise ValueError("baseline must be a layout id")
    _check_columns(columns, layout_id, layout)
    if not isinstance(bins, list) or len(bins) != len(columns):
        raise ValueError(f"{len(columns)} columns but bins is not a list of {len(columns)} bin counts")
    for name, size, edges in zip(layout.columns, bins, layout.edges, strict=True):
        if size != len(edges) + 1 or type(size) is not int:
            raise SketchError(f"sketch column {name!r} has {size!r} bins, the baseline's layout {len(edges) + 1}")


# Bounds of what a sketch this code writes can hold, checked before the work they would cost:
# - bins in all, for a sketch read without a layout (with one, each column's count must be the layout's);
# - the exponent k of a sum "p:k": the finest unit of a sum of doubles is 2**-1074, and the exact sums
#   use k <= 84 + 1073 (``_exact_sums``); the sum of squares twice that (so 1,200 and 2,400 leave room);
# - the digits of p: |sum| <= rows * RANGE_LIMIT (2**128) in units of 2**-k, below 2**1,400 for any row
#   count below 2**100, its square's numerator below 2**2,700: 1,000 digits is ample, and parsing it cheap.
MAX_BINS = 1_000_000
MAX_SUM_BITS = 1_200
MAX_SUM_DIGITS = 1_000


def _parse(document: dict[str, Any], layout: Layout | None = None) -> Sketch:
    """The sketch of a parsed document; ``ValueError`` (or ``KeyError``, ``TypeError``) for a field
    that is malformed or contradicts another: each column must account for every row exactly once
    (binned, missing, text, NaN, infinite or out of range), its minimum be at most its maximum and
    within range, its sums consistent with them (``n * min <= sum <= n * max``,
    ``sum**2 <= n * sum of squares <= n**2 * max(min**2, max**2)``: a non-negative variance), and, with
    ``layout``, the minimum and maximum fall in the first and last bins that hold a value."""
    columns = document["columns"]
    bins = document["bins"]
    items = document["features"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError("columns must be a list of names")
    if not isinstance(bins, list) or not isinstance(items, list) or len(bins) != len(columns) or len(items) != len(columns):
        raise ValueError(f"{len(columns)} columns but {len(bins)} bin counts and {len(items)} features")
    sizes = [_count(size, f"{name}.bins") for name, size in zip(columns, bins, strict=True)]
    if sum(sizes) > MAX_BINS:
        raise ValueError(f"{sum(sizes)} bins in all, more than {MAX_BINS:,}: not a sketch this code writes")
    layout_id = document["baseline"]
    if not isinstance(layout_id, str):
        raise ValueError("baseline must be a layout id")
    rows = _count(document["rows"], "rows")
    features = []
    for position, (name, size, item) in enumerate(zip(columns, sizes, items, strict=True)):
        counts, filled = _histogram(item["h"], size, name)
        column = ColumnSketch(counts, **{k: _count(item.get(k, 0), f"{name}.{k}") for k in _COUNTERS})
        counted = column.present + column.missing
        if counted != rows:
            raise ValueError(f"{name}: {counted} values counted for {rows} rows (each row has one value in each column)")
        if column.fractional > column.finite:
            raise ValueError(f"{name}: {column.fractional} non-integral values of {column.finite} finite ones")
        if column.below > (counts[0] if counts else 0):
            raise ValueError(f"{name}: {column.below} values below the first edge, more than bin 0 holds")
        if column.finite:
            if "min" not in item:
                raise ValueError(f"{name}: finite values counted but no min/max")
            column.minimum, column.maximum = _finite(item["min"], name), _finite(item["max"], name)
            if column.minimum > column.maximum:
                raise ValueError(f"{name}: min {column.minimum!r} > max {column.maximum!r}")
            column.sum_units, column.squares_units, column.sum_bits = _sums(item["sum"], item["sumsq"], name)
            _check_sums(column, name)
            if layout is not None:
                _check_extremes(column, filled, layout.edges[position], name)
        features.append(column)
    rejected = document["rejected"]
    if not isinstance(rejected, dict):
        raise ValueError("rejected must be an object")
    return Sketch(layout_id, tuple(columns), features, rows, {str(k): _count(v, k) for k, v in rejected.items()})


def _check_sums(column: ColumnSketch, what: str) -> None:
    """The sums agree with the count, minimum and maximum (exactly: integers scaled by powers of two)."""
    n, total, squares, bits = column.finite, column.sum_units, column.squares_units, column.sum_bits
    (low, low_scale), (high, high_scale) = column.minimum.as_integer_ratio(), column.maximum.as_integer_ratio()
    if n * low << bits > total * low_scale or total * high_scale > n * high << bits:
        raise ValueError(f"{what}: the sum is outside {n} times the min and max")
    if squares < 0 or total * total > n * squares:
        raise ValueError(f"{what}: the sums give a negative variance")
    peak, scale = max((abs(low), low_scale), (abs(high), high_scale), key=lambda ratio: ratio[0] / ratio[1])
    if squares * scale * scale > (n * peak * peak) << (2 * bits):
        raise ValueError(f"{what}: the sum of squares exceeds {n} times the largest square")


def _histogram(pairs: Any, size: int, what: str) -> tuple[list[int], list[int]]:
    """(counts of the ``size`` bins, the bins that hold a value, ascending) of the written pairs
    ``[bin, count, bin, count, ...]``: each bin at most once, in ascending order, as ``dumps`` writes
    them. Checked a list at a time (a sketch file has thousands of pairs; the evaluator reads thousands of files)."""
    if not isinstance(pairs, list) or len(pairs) % 2:
        raise ValueError(f"{what}: histogram is not a list of bin, count pairs (not a list, or an odd number of entries)")
    indexes, values = pairs[::2], pairs[1::2]
    counts = [0] * size
    if not pairs:
        return counts, []
    if not _INTEGER.issuperset(map(type, pairs)) or min(pairs) < 0:
        for index, count in zip(indexes, values):  # name the first bad one
            _count(index, f"{what} bin")
            _count(count, f"{what} bin {index}")
    if max(indexes) >= size:
        raise ValueError(f"{what}: bin {max(indexes)} outside 0..{size - 1}")
    if indexes != sorted(set(indexes)):
        previous, index = next((a, b) for a, b in zip(indexes, indexes[1:]) if b <= a)
        raise ValueError(f"{what}: bin {index} after bin {previous}: the bins must ascend")
    for index, count in zip(indexes, values):
        counts[index] = count
    return counts, [i for i, c in zip(indexes, values) if c] if 0 in values else indexes


_INTEGER = frozenset({int})


def _check_extremes(column: ColumnSketch, filled: list[int], edges: Sequence[float], what: str) -> None:
    """The minimum lies in the first bin that holds a value, the maximum in the last (``x <= e_0``,
    ``e_{i-1} < x <= e_i``, ``x > e_k``)."""
    if bisect.bisect_left(edges, column.minimum) != filled[0] or bisect.bisect_left(edges, column.maximum) != filled[-1]:
        raise ValueError(f"{what}: min {column.minimum!r} and max {column.maximum!r} are not in the first and last bins that hold a value")


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _finite(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or abs(value) > RANGE_LIMIT:
        raise ValueError(f"{what}: min/max must be finite numbers within the float32 range, got {value!r}")
    return float(value)


def _sums(sum_text: Any, squares_text: Any, what: str) -> tuple[int, int, int]:
    """(sum units, squares units, bits) of the written sums ``"p:k"``."""
    (total, total_bits), (squares, squares_bits) = _binary(sum_text, what, MAX_SUM_BITS), _binary(squares_text, what, 2 * MAX_SUM_BITS)
    bits = max(total_bits, (squares_bits + 1) // 2)
    return total << (bits - total_bits), squares << (2 * bits - squares_bits), bits


def _binary(text: Any, what: str, limit: int) -> tuple[int, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise ValueError(f"{what}: a sum must be written \"p:k\" (p / 2**k), got {text!r}")
    numerator, bits = text.split(":")
    if not bits.isdigit():
        raise ValueError(f"{what}: a sum must be written \"p:k\" (p / 2**k), got {text[:40]!r}")
    if len(numerator.lstrip("+-")) > MAX_SUM_DIGITS or len(bits) > 5 or int(bits) > limit:
        raise ValueError(f"{what}: a sum \"p:k\" with {len(numerator)} digits and k = {bits[:12]}: beyond what a sketch holds (at most {MAX_SUM_DIGITS} digits, k <= {limit})")
    return int(numerator), int(bits)
