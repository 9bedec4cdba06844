"""A data-quality baseline from the baseline dataset, in Model Monitor's documented formats.

The dataset is a CSV with a header: the model's output ``probability``, then the features
(``lambdas/shared/baseline.py``). Each column's bin edges are its distinct quantiles at 0, 1/bins,
..., 1 (values that occur in the data, so ties such as many zeros fall on an edge and the
distribution is exact there); the baseline's own distribution is the sketch of its rows over those
edges (``sketch.py``), so baseline and captures are profiled by the same code.

Written files (Model Monitor's schemas, https://docs.aws.amazon.com/sagemaker/latest/dg/
model-monitor-interpreting-statistics.html and .../model-monitor-byoc-constraints.html):

- ``statistics.json``: ``version`` 0, ``dataset.item_count``, and per feature ``name``,
  ``inferred_type`` and ``numerical_statistics`` (``common.num_present`` / ``num_missing``,
  ``mean``, ``sum``, ``std_dev`` (population), ``min``, ``max``, ``distribution.kll.buckets``). The
  buckets are what the prebuilt container writes: ``KLL_BUCKETS`` (10) equal-width buckets from the
  minimum to the maximum (``equal_width_buckets``; around the value when all values are equal), so
  seed 001's ``show_distributions``, which draws every bucket with the first one's width, draws them.
  Their counts are read off the sketch's bins, values assumed spread evenly within a bin (as a KLL
  sketch's buckets are approximate too); the exact counts the evaluation uses are the bins themselves.
  Each feature also carries ``open_monitor`` (the schema's "provision for custom stats"): the
  sketch's ``bins`` (``{lower_bound, upper_bound, count}`` over the baseline's quantile edges, the
  open ends bounded by the observed minimum and maximum), the bin edges the profilers use (in the
  baseline's file only), the counts of text, NaN, infinite, out-of-range (beyond the float32 range)
  and non-integral values, and of values below and above the baseline's range (``num_below_baseline_min``,
  ``num_above_baseline_max``; 0 in the baseline's own file). Nothing custom goes inside
  ``numerical_statistics``: seed 001's visualisation utilities tabulate every scalar there.
- ``constraints.json``: per feature ``completeness`` (the baseline's non-missing share) and
  ``num_constraints.is_non_negative``, and ``monitoring_config`` with the drift comparison
  (threshold 0.1, method ``Robust``: ``evaluate.py`` says what it computes). The documentation's
  schema spells the key ``comparion_method`` in one version; the prebuilt container and the current
  page write ``comparison_method``, as here.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambdas.monitoring.drift.sketch import RANGE_LIMIT, ColumnSketch, Layout, Sketch, profile

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
DEFAULT_BINS = 100
DEFAULT_THRESHOLD = 0.1  # Model Monitor's default comparison_threshold
# The share of present values that must have the baseline's type: the prebuilt container's
# suggestion, shown in its violations as "Expected match: 100.0%".
DATATYPE_CHECK_THRESHOLD = 1.0
CUSTOM = "open_monitor"
KLL_BUCKETS = 10  # the prebuilt container's equal-width buckets in distribution.kll.buckets
INTEGRAL, FRACTIONAL = "Integral", "Fractional"


class BaselineError(ValueError):
    """A baseline dataset or baseline file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Baseline:
    """What an evaluation compares with: the layout, each column's type and bin counts."""

    layout: Layout
    inferred_types: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    completeness: tuple[float, ...]
    threshold: float = DEFAULT_THRESHOLD
    datatype_check_threshold: float = DATATYPE_CHECK_THRESHOLD


def read_dataset(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a baseline CSV; every row must have the header's width."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise BaselineError("the baseline dataset is empty: it needs a header row") from None
    if not header or any(not name for name in header) or len(set(header)) != len(header):
        raise BaselineError(f"the baseline header must name every column once, got {header}")
    rows = []
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise BaselineError(f"baseline line {number} has {len(row)} fields, the header {len(header)}")
        rows.append(row)
    if not rows:
        raise BaselineError("the baseline dataset has a header but no rows")
    return header, rows


def bin_edges(values: Sequence[float], bins: int = DEFAULT_BINS) -> tuple[float, ...]:
    """The distinct values at quantiles 0, 1/bins, ..., 1 (the lower order statistic)."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return tuple(sorted({ordered[(i * last) // bins] for i in range(bins + 1)}))


def profile_dataset(text: str, bins: int = DEFAULT_BINS) -> tuple[Layout, Sketch]:
    """The layout (bin edges per column) and the sketch of the baseline dataset's rows.

    A baseline cell must be a finite number within the float32 range (``sketch.RANGE_LIMIT``) or
    empty (missing): text, NaN, infinity or a value out of range in the baseline would make every
    later comparison meaningless, so they fail here, naming the cell.
    """
    header, rows = read_dataset(text)
    columns: list[list[float]] = [[] for _ in header]
    for number, row in enumerate(rows, start=2):
        for index, cell in enumerate(row):
            if not cell.strip():
                continue
            try:
                value = float(cell)
            except ValueError:
                where = f"baseline line {number}, column {header[index]!r}"
                raise BaselineError(f"{where}: {cell[:40]!r} is not a number") from None
            if not math.isfinite(value):
                raise BaselineError(f"baseline line {number}, column {header[index]!r}: {cell!r} is not finite")
            if abs(value) > RANGE_LIMIT:
                where = f"baseline line {number}, column {header[index]!r}"
                raise BaselineError(f"{where}: {cell[:40]!r} is beyond the float32 range (|x| > {RANGE_LIMIT:.8g}): out of range")
            columns[index].append(value)
    for name, values in zip(header, columns, strict=True):
        if not values:
            raise BaselineError(f"baseline column {name!r} has no values")
    layout = Layout(tuple(header), tuple(bin_edges(values, bins) for values in columns))
    return layout, profile(layout, ((row[0], row[1:]) for row in rows))


def inferred_type(column: ColumnSketch) -> str:
    return INTEGRAL if column.finite and not column.fractional else FRACTIONAL


def numerical_statistics(column: ColumnSketch, edges: Sequence[float]) -> dict[str, Any]:
    """Model Monitor's ``numerical_statistics`` of one column (mean and spread of finite values)."""
    result: dict[str, Any] = {"common": {"num_present": column.present, "num_missing": column.missing}}
    n = column.finite
    if n:
        mean = column.total / n
        variance = column.total_squares / n - mean * mean  # exact: no cancellation error
        result.update(
            mean=float(mean),
            sum=float(column.total),
            std_dev=math.sqrt(float(variance)),
            min=column.minimum,
            max=column.maximum,
        )
    result["distribution"] = {"kll": {"buckets": equal_width_buckets(column, edges)}}
    return result


def buckets(column: ColumnSketch, edges: Sequence[float]) -> list[dict[str, Any]]:
    """Every bin of the sketch as ``{lower_bound, upper_bound, count}``; the open end bins are
    bounded by the observed minimum and maximum (or their edge when empty). ``open_monitor.bins``."""
    low = edges[0] if column.minimum is None else min(column.minimum, edges[0])
    high = edges[-1] if column.maximum is None else max(column.maximum, edges[-1])
    bounds = [low, *edges, high]
    spans = zip(bounds, bounds[1:], column.counts)
    return [{"lower_bound": low, "upper_bound": high, "count": count} for low, high, count in spans]


def equal_width_buckets(column: ColumnSketch, edges: Sequence[float], count: int = KLL_BUCKETS) -> list[dict[str, Any]]:
    """``count`` buckets of one width from the minimum to the maximum of the finite values (none
    without one), as Model Monitor materialises its KLL sketch: bucket ``j`` holds
    ``lower_bound <= x < upper_bound``, the last one its upper bound too. When all values are equal
    (or the range is too narrow for distinct bounds) the buckets span ``v +- max(|v|, 1) / 2`` around
    their midpoint ``v``, so no bucket has zero width.

    The counts are read off the sketch's bins: exact where a bucket bound meets a bin edge, values
    assumed spread evenly within a bin elsewhere, rounded so that they are whole and add up to the
    number of finite values."""
    if column.minimum is None:
        return []
    bounds = _equal_bounds(column.minimum, column.maximum, count)
    if bounds is None:
        middle = column.minimum / 2 + column.maximum / 2
        half = max(abs(middle), 1.0) / 2
        bounds = _equal_bounds(middle - half, middle + half, count)
    # The sketch's bins as value intervals: bin i's values lie within [max(e_{i-1}, min), min(e_i, max)].
    spans = []
    for (low, high), weight in zip(zip([column.minimum, *edges], [*edges, column.maximum]), column.counts):
        if weight:
            spans.append((max(low, column.minimum), min(high, column.maximum), weight))
    total = column.finite

    def below(x: float) -> float:  # how many values are below x, values spread evenly within a bin
        found = 0.0
        for low, high, weight in spans:
            if high < x or (high == x and low < x):
                found += weight
            elif low < x:
                found += weight * (x - low) / (high - low)
        return found

    cumulative = [0, *(min(total, math.floor(below(x) + 0.5)) for x in bounds[1:-1]), total]
    return [
        {"lower_bound": bounds[j], "upper_bound": bounds[j + 1], "count": cumulative[j + 1] - cumulative[j]}
        for j in range(count)
    ]


def _equal_bounds(low: float, high: float, count: int) -> list[float] | None:
    """``count + 1`` ascending bounds from ``low`` to ``high`` a width apart, or None if they are not distinct."""
    width = (high - low) / count
    bounds = [low + j * width for j in range(count)] + [high]
    return bounds if width > 0 and all(a < b for a, b in zip(bounds, bounds[1:])) else None


def quantile_bins(feature: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A ``statistics.json`` feature's sketch bins (``open_monitor.bins``); a file written before
    they moved there (the open monitor's first version) held them in ``distribution.kll.buckets``."""
    custom = feature.get(CUSTOM) or {}
    if "bins" in custom:
        return custom["bins"]
    return feature["numerical_statistics"]["distribution"]["kll"]["buckets"]


def statistics_document(
    sketch: Sketch, layout: Layout, types: Sequence[str] | None = None, *, with_edges: bool = True
) -> dict[str, Any]:
    """``statistics.json`` of a sketch; ``types`` are the baseline's inferred types (default: inferred
    here). A period's statistics leave out the bin edges: they are the baseline's (and the buckets' bounds)."""
    features = []
    for index, (name, column, edges) in enumerate(zip(layout.columns, sketch.features, layout.edges, strict=True)):
        kind = inferred_type(column) if types is None else types[index]
        if kind == INTEGRAL and column.fractional:
            kind = FRACTIONAL
        features.append(
            {
                "name": name,
                "inferred_type": kind,
                "numerical_statistics": numerical_statistics(column, edges),
                CUSTOM: {
                    **({"bin_edges": list(edges)} if with_edges else {}),
                    "bins": buckets(column, edges),
                    "num_below_baseline_min": column.below,
                    "num_above_baseline_max": column.counts[-1],
                    "num_text": column.text,
                    "num_nan": column.nan,
                    "num_infinite": column.inf,
                    "num_out_of_range": column.out_of_range,
                    "num_non_integral": column.fractional,
                },
            }
        )
    return {
        "version": 0,
        "dataset": {"item_count": sketch.rows},
        "features": features,
        CUSTOM: {"layout": layout.id, "rows_rejected": dict(sketch.rejected)},
    }


def constraints_document(sketch: Sketch, layout: Layout, *, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """``constraints.json`` suggested from the baseline's sketch."""
    features = []
    for name, column in zip(layout.columns, sketch.features, strict=True):
        features.append(
            {
                "name": name,
                "inferred_type": inferred_type(column),
                "completeness": column.present / (column.present + column.missing),
                "num_constraints": {"is_non_negative": column.minimum is not None and column.minimum >= 0},
            }
        )
    return {
        "version": 0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": DATATYPE_CHECK_THRESHOLD,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": threshold,
                "comparison_method": "Robust",
            },
        },
    }


def baseline_documents(
    text: str, *, bins: int = DEFAULT_BINS, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, dict[str, Any]]:
    """``{"statistics.json": ..., "constraints.json": ...}`` of a baseline dataset's text."""
    layout, sketch = profile_dataset(text, bins)
    return {
        STATISTICS_FILE: statistics_document(sketch, layout),
        CONSTRAINTS_FILE: constraints_document(sketch, layout, threshold=threshold),
    }


def load(statistics: Mapping[str, Any], constraints: Mapping[str, Any]) -> Baseline:
    """The baseline an evaluation needs, from the two documents ``baseline_documents`` wrote.

    Raises ``BaselineError`` when they were not written by this module (no bin edges) or disagree.
    """
    try:
        features = statistics["features"]
        names = tuple(f["name"] for f in features)
        edges = tuple(tuple(float(e) for e in f[CUSTOM]["bin_edges"]) for f in features)
        counts = tuple(tuple(int(b["count"]) for b in quantile_bins(f)) for f in features)
        types = tuple(f["inferred_type"] for f in features)
        constrained = {c["name"]: c for c in constraints["features"]}
        config = constraints.get("monitoring_config", {})
        threshold = float(config.get("distribution_constraints", {}).get("comparison_threshold", DEFAULT_THRESHOLD))
        datatype_threshold = float(config.get("datatype_check_threshold", DATATYPE_CHECK_THRESHOLD))
        completeness = tuple(float(constrained[name].get("completeness", 1.0)) for name in names)
        layout = Layout(names, edges)
    except KeyError as error:
        raise BaselineError(f"baseline files lack {error} (not written by the open monitor's baseline step?)") from None
    except (TypeError, ValueError) as error:
        raise BaselineError(f"baseline files are malformed: {error}") from None
    for name, column_edges, column_counts in zip(names, edges, counts, strict=True):
        if len(column_counts) != len(column_edges) + 1:
            raise BaselineError(
                f"baseline column {name!r}: {len(column_counts)} buckets for {len(column_edges)} bin edges"
            )
    return Baseline(layout, types, counts, completeness, threshold, datatype_threshold)
