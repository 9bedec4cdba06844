"""Evaluate a period: merge its sketches and compare them with the baseline, as Model Monitor does.

Per column, three checks, reported in ``constraint_violations.json`` (Model Monitor's schema,
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-interpreting-violations.html):

- ``completeness_check``: the share of non-missing values is below the baseline's ``completeness``.
- ``data_type_check``: the share of present values of the baseline's type (finite numbers; whole
  numbers for an ``Integral`` column) is below ``datatype_check_threshold`` (1.0: every value).
  Text, NaN, infinity and finite values beyond the float32 range (out of range, ``sketch.RANGE_LIMIT``:
  the model reads them as infinity) count against it, each named in the description.
- ``baseline_drift_check``: the L-infinity distance between the baseline's and the period's
  cumulative distributions (the distance Model Monitor reports; for numbers, the two-sample
  Kolmogorov-Smirnov statistic) is significant: it exceeds both ``comparison_threshold`` (0.1) and
  the KS critical value ``c(alpha) * sqrt((n + m) / (n * m))`` for the two sample sizes, with
  ``c(alpha) = sqrt(-ln(alpha / 2) / 2)`` and ``alpha = 0.003`` by default, where ``c`` is 1.80, the
  constant of Model Monitor's ``linf_robust`` (deequ's ``Distance.scala``). So a handful of requests
  cannot alarm: with 455 baseline rows, 3 rows never can (the critical value exceeds 1), 20 rows
  must be 0.41 apart, 100 rows 0.20, 1,000 rows 0.10. (``linf_robust`` itself flags when
  ``distance - 1.8 * sqrt(...)`` exceeds the threshold; the rule here keeps the reported distance
  the plain, comparable L-infinity distance.)

Error bound of the distance. Both cumulative distributions are exact at every bin edge (a sketch
counts ``x <= edge``), so the sketch's distance ``D`` is the exact maximum over the edges and never
above the true statistic ``D*``. Between two edges both distributions rise by at most their mass in
that bin, so ``D <= D* <= D + max over bins of min(p_baseline(bin), p_current(bin))``. With the
baseline's quantile bins that is about 1/bins (0.01 for 100 bins, more where ties stack a bin).
``FeatureDrift.error_bound`` reports it per column; the drift rule uses ``D``, so sketch error can
only delay an alarm, never raise a false one.

A period without usable rows is reported (``Evaluation.no_data`` says why) with no violation; a
sketch that cannot be read or belongs to another baseline is set aside with its reason
(``Evaluation.skipped``), and the rest of the period is still evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lambdas.monitoring.drift.baseline import INTEGRAL, Baseline, statistics_document
from lambdas.monitoring.drift.sketch import ColumnSketch, Sketch, SketchError, loads, merge

VIOLATIONS_FILE = "constraint_violations.json"
# The per-column metrics the open back end's evaluator emits (dimensions Endpoint, MonitoringSchedule):
# the plain distance, Model Monitor's metric name (the dashboard); and the distance when it exceeds the
# KS critical value, else 0 (the drift alarms: above the threshold exactly when ``drifted``).
DRIFT_METRIC = "feature_baseline_drift_{feature}"
SIGNIFICANT_DRIFT_METRIC = "feature_baseline_drift_significant_{feature}"
DEFAULT_ALPHA = 0.003
BASELINE_DRIFT, COMPLETENESS, DATA_TYPE = "baseline_drift_check", "completeness_check", "data_type_check"


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    distance: float | None  # None when the period has no finite value of this column
    error_bound: float | None
    critical_value: float | None
    baseline_count: int
    current_count: int
    drifted: bool
    # The fewest current values with which this column could drift at all (``rows_needed``); None
    # when the baseline is too small for any (a critical value of 1 or more whatever the period).
    needed: int | None = None

    @property
    def judged(self) -> bool:
        """Whether the period has enough values of this column for a drift to be possible."""
        return self.needed is not None and self.current_count >= self.needed

    @property
    def significant_distance(self) -> float | None:
        """The distance when it exceeds the KS critical value, else 0 (None: nothing to compare)."""
        if self.distance is None or self.critical_value is None:
            return None
        return self.distance if self.distance > self.critical_value else 0.0


@dataclass(frozen=True)
class Evaluation:
    statistics: dict[str, Any]  # statistics.json of the period
    violations: dict[str, Any]  # constraint_violations.json
    drift: tuple[FeatureDrift, ...]
    skipped: tuple[tuple[str, str], ...]  # (sketch name, reason) of sketches set aside
    no_data: str | None  # why the period could not be compared, when it could not

    @property
    def too_few(self) -> str | None:
        """``"too few rows to judge: N rows, at least M needed"`` when no column of the period has
        enough values for a drift to be possible (``rows_needed``), else None. Such a period reports
        no drift violation by construction, which says nothing about drift."""
        compared = [d for d in self.drift if d.distance is not None]
        if self.no_data or not compared or any(d.judged for d in compared):
            return None
        needed = [d.needed for d in compared if d.needed is not None]
        rows = self.statistics["dataset"]["item_count"]
        if not needed:
            return f"too few rows to judge: the baseline is too small for any period to show drift ({rows} rows)"
        return f"too few rows to judge: {rows} rows, at least {min(needed)} needed"


def ks_critical_value(n: int, m: int, alpha: float = DEFAULT_ALPHA) -> float:
    """The asymptotic two-sample KS critical value at level ``alpha`` for sample sizes n and m."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def rows_needed(n: int, alpha: float = DEFAULT_ALPHA) -> int | None:
    """The fewest current values ``m`` with which a column of ``n`` baseline values can drift: the
    distance is at most 1, so it needs ``ks_critical_value(n, m) < 1``, that is ``m > c**2 n / (n - c**2)``
    (4 for the bundled 455-row baseline: 3 values can never alarm). None when no ``m`` will do."""
    c_squared = -math.log(alpha / 2) / 2
    if n <= c_squared:
        return None
    m = max(1, math.floor(c_squared * n / (n - c_squared)))
    while ks_critical_value(n, m, alpha) >= 1:  # the float formula decides, as the drift rule does
        m += 1
    while m > 1 and ks_critical_value(n, m - 1, alpha) < 1:
        m -= 1
    return m


def linf_distance(baseline: Sequence[int], current: Sequence[int]) -> tuple[float, float]:
    """(distance, error bound) between two histograms over the same bins (see the module docstring)."""
    if len(baseline) != len(current):
        raise ValueError(f"{len(baseline)} baseline bins but {len(current)} current bins")
    n, m = sum(baseline), sum(current)
    if not n or not m:
        raise ValueError("both histograms need at least one value")
    below_b = below_c = 0
    widest = bound = 0
    for b, c in zip(baseline, current, strict=True):
        below_b += b
        below_c += c
        widest = max(widest, abs(below_b * m - below_c * n))  # integers: exact
        bound = max(bound, min(b * m, c * n))
    return widest / (n * m), bound / (n * m)


def merge_period(
    baseline: Baseline, sketches: Iterable[tuple[str, bytes | str]]
) -> tuple[Sketch, list[tuple[str, str]], int]:
    """(merged sketch, skipped (name, reason), number of sketches read)."""
    merged = Sketch.empty(baseline.layout)
    skipped: list[tuple[str, str]] = []
    read = 0
    for name, data in sketches:
        try:
            sketch = loads(data, baseline.layout)
        except SketchError as error:
            skipped.append((name, str(error)))
            continue
        merged = merge(merged, sketch)
        read += 1
    return merged, skipped, read


def evaluate(
    baseline: Baseline, sketches: Iterable[tuple[str, bytes | str]], *, alpha: float = DEFAULT_ALPHA
) -> Evaluation:
    """Compare the period's sketches (``(name, serialised sketch)`` pairs) with ``baseline``."""
    merged, skipped, read = merge_period(baseline, sketches)
    statistics = statistics_document(merged, baseline.layout, baseline.inferred_types, with_edges=False)
    no_data = _no_data(merged, read, skipped)
    if no_data:
        return Evaluation(statistics, {"violations": []}, (), tuple(skipped), no_data)
    violations: list[dict[str, str]] = []
    drift = []
    for index, (name, column) in enumerate(zip(baseline.layout.columns, merged.features, strict=True)):
        violations += _quality_violations(baseline, index, name, column)
        result = _drift(baseline, index, name, column.counts, alpha)
        drift.append(result)
        if result.drifted:
            violations.append(
                {
                    "feature_name": name,
                    "constraint_check_type": BASELINE_DRIFT,
                    # "distance: <number> exceeds" is what seed 001's utilities parse: keep one "exceeds".
                    "description": (
                        f"Baseline drift distance: {result.distance:.6g} exceeds threshold: {baseline.threshold:g}; "
                        f"two-sample KS critical value {result.critical_value:.4g} at alpha {alpha:g} for "
                        f"{result.baseline_count} baseline and {result.current_count} current values "
                        f"(sketch error at most {result.error_bound:.4g})"
                    ),
                }
            )
    return Evaluation(statistics, {"violations": violations}, tuple(drift), tuple(skipped), None)


def _no_data(merged: Sketch, read: int, skipped: list[tuple[str, str]]) -> str | None:
    if merged.rows:
        return None
    if not read and not skipped:
        return "no sketch files in the period: no captured requests"
    parts = [f"{read} sketch file(s) read, no usable rows"]
    if merged.rejected:
        parts.append("rows rejected: " + "; ".join(f"{reason}: {n}" for reason, n in merged.rejected.items()))
    if skipped:
        parts.append(f"{len(skipped)} sketch file(s) set aside (see skipped)")
    return ", ".join(parts)


def _quality_violations(baseline: Baseline, index: int, name: str, column: ColumnSketch) -> list[dict[str, str]]:
    found = []
    total = column.present + column.missing
    expected = baseline.completeness[index]
    if total and column.present / total < expected:
        found.append(
            {
                "feature_name": name,
                "constraint_check_type": COMPLETENESS,
                "description": (
                    f"Data completeness requirement is not met. Expected: {expected:.1%}, observed: "
                    f"{column.present / total:.1%} ({column.missing} of {total} values missing)."
                ),
            }
        )
    kind = baseline.inferred_types[index]
    fractional = column.fractional if kind == INTEGRAL else 0
    mismatched = column.text + column.nan + column.inf + column.out_of_range + fractional
    if column.present and (column.present - mismatched) / column.present < baseline.datatype_check_threshold:
        detail = [f"{column.text} text", f"{column.nan} NaN", f"{column.inf} infinite"]
        if column.out_of_range:
            detail.append(f"{column.out_of_range} out of range (beyond the float32 range)")
        if kind == INTEGRAL:
            detail.append(f"{fractional} not whole")
        found.append(
            {
                "feature_name": name,
                "constraint_check_type": DATA_TYPE,
                "description": (
                    f"Data type match requirement is not met. Expected data type: {kind}, Expected match: "
                    f"{baseline.datatype_check_threshold:.1%}. Observed: Only "
                    f"{(column.present - mismatched) / column.present:.1%} of data is {kind} "
                    f"({', '.join(detail)} of {column.present} present values)."
                ),
            }
        )
    return found


def _drift(baseline: Baseline, index: int, name: str, counts: Sequence[int], alpha: float) -> FeatureDrift:
    reference = baseline.counts[index]
    n, m = sum(reference), sum(counts)
    needed = rows_needed(n, alpha) if n else None
    if not m:
        return FeatureDrift(name, None, None, None, n, 0, False, needed)
    distance, bound = linf_distance(reference, counts)
    critical = ks_critical_value(n, m, alpha)
    drifted = distance > baseline.threshold and distance > critical
    return FeatureDrift(name, distance, bound, critical, n, m, drifted, needed)
