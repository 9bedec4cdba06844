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
  Kolmogorov-Smirnov statistic) is significant for the period as a whole and exceeds
  ``comparison_threshold`` (0.1).

When a drift counts: a family-wise false-alarm rate. Each column compared in the period (K of them,
31 for the bundled model: its output and 30 features) is a two-sample KS test of "same
distribution as the baseline". Tested each at level alpha, some column of a clean period would
flag far more often than alpha (1.5-5.5 % of clean periods at alpha = 0.003 per column, measured).
So the period's K tests are corrected with Holm's step-down procedure (Holm 1979), which keeps the
probability that a period drawn from the baseline's distribution flags any column at most ``alpha``
(``DEFAULT_ALPHA`` = 0.003, the family-wise rate), whatever the dependence between columns:

- each column's asymptotic p-value is ``p = min(1, 2 exp(-2 lambda**2))`` with
  ``lambda = D sqrt(n m / (n + m))`` (``ks_p_value``: the first term of Kolmogorov's series, the
  same approximation as the critical value ``c(a) sqrt((n + m) / (n m))`` with
  ``c(a) = sqrt(-ln(a / 2) / 2)``, ``ks_critical_value``: ``p < a`` exactly when ``D`` exceeds it);
- the columns are taken in order of increasing p (ties in column order); the i-th (from 1) is
  significant when its p is below ``alpha / (K - i + 1)``, i.e. its distance exceeds the critical
  value at that level, and every column before it was significant; the first that is not stops the
  procedure, and it and every column after it are not significant;
- a column drifts when it is significant **and** its distance exceeds ``comparison_threshold``.
  The threshold only removes flags, so the family-wise rate stays at most alpha.

Holm's first step is Bonferroni's: the strongest column must pass the critical value at alpha / K
(c = 2.23 for K = 31 and alpha = 0.003, against 1.80 per column); each later column is held to a
little less. ``FeatureDrift.critical_value`` is the critical value at the level Holm used for the
column (``FeatureDrift.level``: its own step's for a significant column; the step where the
procedure stopped for the others), so a column is significant exactly when its distance exceeds
its critical value, and ``significant_distance`` (the metric the drift alarms watch) is above the
threshold exactly when the column drifted. The asymptotic critical value is conservative for
small periods and tied values; ``tests/lambdas/monitoring/test_drift_false_alarms.py`` measures the
family-wise rate on periods drawn from the bundled baseline at 20 to 1,000 rows and the shift each
period size detects (docs/monitoring.md, "When a drift counts"). Because the first step needs
``D`` above the critical value at alpha / K and ``D`` is at most 1, a handful of requests cannot
alarm: with 455 baseline rows and 31 columns, 5 rows never can (``rows_needed``: 6), 20 rows must
be 0.51 apart, 100 rows 0.25, 1,000 rows 0.13. (Model Monitor's ``linf_robust``, deequ's
``Distance.scala``, flags when ``distance - 1.8 * sqrt(...)`` exceeds the threshold, per column and
with no correction; the rule here keeps the reported distance the plain, comparable L-infinity
distance.)

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
from functools import lru_cache
from itertools import accumulate, repeat
from operator import mul, sub
from typing import Any

from lambdas.monitoring.drift.baseline import CUSTOM, INTEGRAL, Baseline, statistics_document
from lambdas.monitoring.drift.sketch import ColumnSketch, Sketch, SketchError, loads, merge

VIOLATIONS_FILE = "constraint_violations.json"
# The per-column metrics the open back end's evaluator emits (dimensions Endpoint, MonitoringSchedule):
# the plain distance, Model Monitor's metric name (the dashboard); and the distance when it exceeds the
# column's KS critical value (Holm's), else 0 (the drift alarms: above the threshold exactly when ``drifted``).
DRIFT_METRIC = "feature_baseline_drift_{feature}"
SIGNIFICANT_DRIFT_METRIC = "feature_baseline_drift_significant_{feature}"
DEFAULT_ALPHA = 0.003  # family-wise: the most often a period from the baseline's distribution flags any column
DRIFT_TEST = "two-sample Kolmogorov-Smirnov (asymptotic), Holm's step-down over the columns compared"
BASELINE_DRIFT, COMPLETENESS, DATA_TYPE = "baseline_drift_check", "completeness_check", "data_type_check"


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    distance: float | None  # None when the period has no finite value of this column
    error_bound: float | None
    critical_value: float | None  # at ``level``: the distance is above it exactly when ``significant``
    baseline_count: int
    current_count: int
    drifted: bool  # significant and above the comparison threshold
    # The fewest current values with which this column could pass the first (strictest) step of the
    # period's test, alpha / K (``rows_needed``); None when the baseline is too small for any (a
    # critical value of 1 or more whatever the period).
    needed: int | None = None
    level: float | None = None  # the per-column level Holm used for it (module docstring)
    significant: bool = False  # Holm's procedure rejected "same distribution" for this column

    @property
    def judged(self) -> bool:
        """Whether the period has enough values of this column for a drift to be possible."""
        return self.needed is not None and self.current_count >= self.needed

    @property
    def significant_distance(self) -> float | None:
        """The distance when it exceeds the column's critical value, else 0 (None: nothing to compare)."""
        if self.distance is None or self.critical_value is None:
            return None
        return self.distance if self.significant else 0.0

    @property
    def p_value(self) -> float | None:
        """The asymptotic p-value of the column's distance (``ks_p_value``)."""
        if self.distance is None:
            return None
        return ks_p_value(self.distance, self.baseline_count, self.current_count)


@dataclass(frozen=True)
class Evaluation:
    statistics: dict[str, Any]  # statistics.json of the period
    violations: dict[str, Any]  # constraint_violations.json
    drift: tuple[FeatureDrift, ...]
    skipped: tuple[tuple[str, str], ...]  # (sketch name, reason) of sketches set aside
    no_data: str | None  # why the period could not be compared, when it could not
    alpha: float = DEFAULT_ALPHA  # the family-wise level of the period's drift checks

    @property
    def compared(self) -> int:
        """K: the columns whose distance was tested (those with a finite value in the period)."""
        return sum(1 for d in self.drift if d.distance is not None)

    @property
    def drift_rule(self) -> str:
        """The period's test in words, as the report, the CLI and the violations say it."""
        return family_wise(self.alpha, self.compared)

    @property
    def too_few(self) -> str | None:
        """``"too few rows to judge: N rows, at least M needed"`` when no column of the period has
        enough values for a drift to be possible (``rows_needed`` at Holm's first level, alpha / K),
        else None. Such a period reports no drift violation by construction, which says nothing
        about drift."""
        compared = [d for d in self.drift if d.distance is not None]
        if self.no_data or not compared or any(d.judged for d in compared):
            return None
        needed = [d.needed for d in compared if d.needed is not None]
        rows = self.statistics["dataset"]["item_count"]
        if not needed:
            return f"too few rows to judge: the baseline is too small for any period to show drift ({rows} rows)"
        return f"too few rows to judge: {rows} rows, at least {min(needed)} needed"


def family_wise(alpha: float, columns: int) -> str:
    """``"family-wise 0.3 % over 31 columns, Holm"``: the period's false-alarm rate in words."""
    return f"family-wise {alpha * 100:g} % over {columns} column{'s' if columns != 1 else ''}, Holm"


def _c(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return math.sqrt(-math.log(alpha / 2) / 2)


def ks_critical_value(n: int, m: int, alpha: float = DEFAULT_ALPHA) -> float:
    """The asymptotic two-sample KS critical value at level ``alpha`` (one test) for sample sizes n and m."""
    return _c(alpha) * math.sqrt((n + m) / (n * m))


def ks_p_value(distance: float, n: int, m: int) -> float:
    """The asymptotic p-value of a KS distance, ``min(1, 2 exp(-2 lambda**2))`` with ``lambda =
    distance * sqrt(n m / (n + m))``: below ``alpha`` exactly when the distance exceeds
    ``ks_critical_value(n, m, alpha)``."""
    return min(1.0, 2 * math.exp(-2 * distance * distance * n * m / (n + m)))


@lru_cache(maxsize=256)  # every period asks it of every column, with the same few (n, level)
def rows_needed(n: int, alpha: float = DEFAULT_ALPHA) -> int | None:
    """The fewest current values ``m`` with which a column of ``n`` baseline values can pass a test
    at level ``alpha``: the distance is at most 1, so it needs ``ks_critical_value(n, m, alpha) < 1``,
    that is ``m > c**2 n / (n - c**2)`` (4 for the bundled 455-row baseline at 0.003; 6 at 0.003 / 31,
    Holm's first level for its 31 columns). None when no ``m`` will do."""
    c_squared = _c(alpha) ** 2
    if n <= c_squared:
        return None
    m = max(1, math.floor(c_squared * n / (n - c_squared)))
    while ks_critical_value(n, m, alpha) >= 1:  # the float formula decides, as the drift rule does
        m += 1
    while m > 1 and ks_critical_value(n, m - 1, alpha) < 1:
        m -= 1
    return m


def holm(statistics: Sequence[float], alpha: float) -> list[tuple[bool, float]]:
    """Holm's step-down procedure on standardised KS statistics ``lambda_i = D_i sqrt(n m / (n + m))``
    (larger: smaller p-value): per column (significant, the level it was judged at). The i-th
    largest is significant when it exceeds ``c(alpha / (K - i + 1))`` and all larger ones were; from
    the first that is not, every column is judged at that step's level and is not significant."""
    family = len(statistics)
    order = sorted(range(family), key=lambda i: -statistics[i])  # stable: ties in column order
    judged: list[tuple[bool, float]] = [(False, alpha)] * family
    for step, index in enumerate(order):
        level = alpha / (family - step)
        if statistics[index] > _c(level):
            judged[index] = (True, level)
            continue
        for rest in order[step:]:
            judged[rest] = (False, level)
        break
    return judged


def linf_distance(baseline: Sequence[int], current: Sequence[int]) -> tuple[float, float]:
    """(distance, error bound) between two histograms over the same bins (see the module docstring)."""
    if len(baseline) != len(current):
        raise ValueError(f"{len(baseline)} baseline bins but {len(current)} current bins")
    n, m = sum(baseline), sum(current)
    if not n or not m:
        raise ValueError("both histograms need at least one value")
    # Integers throughout (exact), iterated by map rather than a Python loop: a period judges every
    # column, and the false-alarm simulation judges thousands of periods.
    cumulative_b = map(mul, accumulate(baseline), repeat(m))  # m * #{baseline <= edge}
    cumulative_c = map(mul, accumulate(current), repeat(n))
    widest = max(map(abs, map(sub, cumulative_b, cumulative_c)))
    bound = max(map(min, map(mul, baseline, repeat(m)), map(mul, current, repeat(n))))
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
    """Compare the period's sketches (``(name, serialised sketch)`` pairs) with ``baseline``;
    ``alpha`` is the family-wise level of the period's drift checks."""
    merged, skipped, read = merge_period(baseline, sketches)
    statistics = statistics_document(merged, baseline.layout, baseline.inferred_types, with_edges=False)
    no_data = _no_data(merged, read, skipped)
    if no_data:
        return Evaluation(statistics, {"violations": []}, (), tuple(skipped), no_data, alpha)
    drift = drift_of(baseline, merged, alpha)
    compared = sum(1 for d in drift if d.distance is not None)
    rule = family_wise(alpha, compared)
    statistics[CUSTOM] = {
        **statistics[CUSTOM],
        "drift_test": {"test": DRIFT_TEST, "family_wise_alpha": alpha, "columns_compared": compared, "comparison_threshold": baseline.threshold, "rule": rule},
    }
    violations: list[dict[str, str]] = []
    for index, (name, column, result) in enumerate(zip(baseline.layout.columns, merged.features, drift, strict=True)):
        violations += _quality_violations(baseline, index, name, column)
        if result.drifted:
            violations.append(
                {
                    "feature_name": name,
                    "constraint_check_type": BASELINE_DRIFT,
                    # "distance: <number> exceeds" is what seed 001's utilities parse: keep one "exceeds".
                    "description": (
                        f"Baseline drift distance: {result.distance:.6g} exceeds threshold: {baseline.threshold:g}; "
                        f"two-sample KS critical value {result.critical_value:.4g} at alpha {result.level:.4g} "
                        f"({rule}; p {f'= {result.p_value:.3g}' if result.p_value else '< 1e-300'}) for "
                        f"{result.baseline_count} baseline and {result.current_count} current values "
                        f"(sketch error at most {result.error_bound:.4g})"
                    ),
                }
            )
    return Evaluation(statistics, {"violations": violations}, drift, tuple(skipped), None, alpha)


def drift_of(baseline: Baseline, merged: Sketch, alpha: float = DEFAULT_ALPHA) -> tuple[FeatureDrift, ...]:
    """Each column's distance and verdict: Holm's procedure over the columns with values in the
    period at family-wise level ``alpha``, then the comparison threshold (the module docstring)."""
    return judge(baseline, [column_distance(baseline, index, column.counts) for index, column in enumerate(merged.features)], alpha)


def column_distance(baseline: Baseline, index: int, counts: Sequence[int]) -> tuple[float, float, int, int] | None:
    """(distance, error bound, n, m) of column ``index`` with the period's bin ``counts``; None when
    the period has no finite value of it."""
    reference = baseline.counts[index]
    n, m = sum(reference), sum(counts)
    if not m:
        return None
    distance, bound = linf_distance(reference, counts)
    return distance, bound, n, m


def judge(baseline: Baseline, measured: Sequence[tuple[float, float, int, int] | None], alpha: float = DEFAULT_ALPHA) -> tuple[FeatureDrift, ...]:
    """The verdicts of the period's columns from their ``column_distance``: Holm's procedure at
    family-wise level ``alpha`` over the K columns measured, then the comparison threshold."""
    compared = [index for index, found in enumerate(measured) if found is not None]
    first_level = alpha / len(compared) if compared else alpha
    statistics = []
    for index in compared:
        distance, _, n, m = measured[index]
        statistics.append(distance * math.sqrt(n * m / (n + m)))
    verdicts = dict(zip(compared, holm(statistics, alpha), strict=True))
    drift = []
    for index, name in enumerate(baseline.layout.columns):
        n = sum(baseline.counts[index])
        needed = rows_needed(n, first_level) if n else None
        found = measured[index]
        if found is None:
            drift.append(FeatureDrift(name, None, None, None, n, 0, False, needed))
            continue
        distance, bound, _, m = found
        significant, level = verdicts[index]
        drifted = significant and distance > baseline.threshold
        drift.append(FeatureDrift(name, distance, bound, ks_critical_value(n, m, level), n, m, drifted, needed, level, significant))
    return tuple(drift)


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
