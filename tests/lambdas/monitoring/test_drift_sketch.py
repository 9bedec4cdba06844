"""The per-feature sketch: binning, exact merge, exact serialised round trip, bad input."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import orjson
import pytest

from lambdas.monitoring.drift import baseline as drift_baseline
from lambdas.monitoring.drift.sketch import Layout, Sketch, SketchError, dumps, loads, merge, profile
from stacks.shared.default_model import BASELINE_CSV

SMALL = Layout(("probability", "a", "b"), ((0.1, 0.5, 0.9), (1.0, 2.0, 3.0), (0.0, 1.0)))


def bundled_rows() -> tuple[Layout, list[tuple[float, list[float]]]]:
    layout, _ = drift_baseline.profile_dataset(BASELINE_CSV.read_text())
    table = np.loadtxt(BASELINE_CSV, delimiter=",", skiprows=1)
    return layout, [(row[0], row[1:]) for row in table.tolist()]


def test_a_value_on_an_edge_counts_at_that_edge():
    # bins: (-inf, 1], (1, 2], (2, 3], (3, inf)
    sketch = profile(SMALL, [(0.5, [value, 0.0]) for value in (0.5, 1.0, 1.5, 2.0, 3.0, 3.5)])
    assert sketch.features[1].counts == [2, 2, 1, 1]
    assert (sketch.features[1].minimum, sketch.features[1].maximum) == (0.5, 3.5)


def test_bad_values_are_counted_apart_and_never_binned():
    values = [1.5, "2.5", " 2 ", None, "", " ", "abc", True, [1], math.nan, "NaN", math.inf, "-inf", "Infinity", 10**400]
    sketch = profile(SMALL, [(0.5, [value, 0.0]) for value in values])
    column = sketch.features[1]
    assert (column.finite, column.missing, column.text, column.nan, column.inf) == (3, 3, 3, 2, 4)
    assert column.present + column.missing == len(values) == sketch.rows  # nothing lost
    assert column.total == Fraction(1.5) + Fraction(2.5) + 2 and column.fractional == 2


def test_a_row_with_another_feature_count_is_rejected_with_its_reason():
    sketch = profile(SMALL, [(0.5, [1.0, 0.0]), (0.5, [1.0, 0.0, 7.0]), (0.5, [1.0]), (0.5, [2.0])])
    assert sketch.rows == 1
    assert sketch.rejected == {"row has 3 features, the baseline 2": 1, "row has 1 features, the baseline 2": 2}


def test_a_capture_with_only_an_input_or_only_an_output_counts_the_other_half_missing():
    sketch = profile(SMALL, [(None, [1.0, 0.0]), (0.7, None)])
    assert sketch.rows == 2
    assert [(c.finite, c.missing) for c in sketch.features] == [(1, 1), (1, 1), (1, 1)]


def test_sums_are_exact_whatever_the_magnitudes():
    values = [1e308, 5e-324, -1e308, 0.1, 0.2, -0.3, 2.0**-60, 123456.789]
    sketch = profile(SMALL, [(0.5, [v, 0.0]) for v in values])
    column = sketch.features[1]
    assert column.total == sum(Fraction(v) for v in values)
    assert column.total_squares == sum(Fraction(v) ** 2 for v in values)


def test_merging_the_sketches_of_a_split_equals_the_sketch_of_the_whole():
    layout, rows = bundled_rows()
    rows = rows + [(None, ["text", *r[1][1:]]) for r in rows[:3]] + [(0.5, [1.0])]  # bad input merges too
    whole = profile(layout, rows)
    a, b, c = profile(layout, rows[:7]), profile(layout, rows[7:200]), profile(layout, rows[200:])
    left, right = merge(merge(a, b), c), merge(a, merge(b, c))
    assert left == whole and right == whole and merge(c, merge(b, a)) == whole
    assert dumps(left) == dumps(right) == dumps(whole)  # the same bytes, not only equal values


def test_the_serialised_round_trip_is_exact():
    layout, rows = bundled_rows()
    rows = rows[:50] + [(0.5, [5e-324, *rows[0][1][1:]]), (math.nan, ["x", *rows[0][1][1:]])]
    sketch = profile(layout, rows)
    data = dumps(sketch)
    again = loads(data, layout)
    assert again == sketch and dumps(again) == data
    assert [c.minimum for c in again.features] == [c.minimum for c in sketch.features]


def test_an_empty_sketch_round_trips():
    sketch = Sketch.empty(SMALL)
    assert loads(dumps(sketch), SMALL) == sketch


def test_sketch_bytes_per_feature():
    """Serialised bytes per column (31 columns of the bundled model, the header included), measured
    on the bundled baseline's rows: 1 row 151 B, 10 rows 200 B, 114 rows 515 B, 455 rows 649 B.
    The histogram is sparse, so a small capture object writes a small sketch; the exact sums
    (``"p:k"``) are most of a one-row sketch."""
    layout, rows = bundled_rows()
    sizes = {}
    for n in (1, 10, 114, 455):
        sizes[n] = len(dumps(profile(layout, rows[:n]))) / len(layout.columns)
    print("sketch bytes per feature by rows:", {n: round(size) for n, size in sizes.items()})
    assert sizes[1] < 200 and sizes[455] < 700
    assert sizes[1] < sizes[10] < sizes[114] <= sizes[455]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", 'no "format"'),
        (b'{"format": "drift-sketch", "version": 2}', "version 2; this code reads version 1"),
        (b'{"format": "drift-sketch"}', "version None"),
        (b'{"format": "drift-sketch", "version": 1}', "malformed sketch: KeyError"),
    ],
)
def test_a_sketch_that_does_not_parse_raises_a_clear_reason(data, reason):
    with pytest.raises(SketchError, match=reason):
        loads(data)


def test_a_truncated_sketch_raises():
    data = dumps(profile(SMALL, [(0.5, [1.0, 0.0])]))
    with pytest.raises(SketchError, match="not JSON"):
        loads(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["features"][1].update(h=[9, 1]), "bin 9 outside 0..3"),
        (lambda d: d["features"][1].update(missing=-1), "missing must be a non-negative integer"),
        (lambda d: d["features"][1].update(h=[1]), "odd number"),
        (lambda d: d["features"][1].update(sum="1/3"), "a sum must be written"),
        (lambda d: d["features"][1].pop("min"), "no min/max"),
        (lambda d: d["features"].pop(), "3 columns but 3 bin counts and 2 features"),
    ],
)
def test_a_malformed_field_names_what_is_wrong(change, reason):
    document = orjson.loads(dumps(profile(SMALL, [(0.5, [1.0, 0.0])])))
    change(document)
    with pytest.raises(SketchError, match=reason):
        loads(orjson.dumps(document))


def test_a_feature_count_that_changed_is_named():
    wider = Layout((*SMALL.columns, "c"), (*SMALL.edges, (0.0,)))
    data = dumps(profile(wider, [(0.5, [1.0, 0.0, 1.0])]))
    with pytest.raises(SketchError, match=r"sketch has 4 columns .* the baseline 3 .* another model's features"):
        loads(data, SMALL)


def test_a_sketch_of_another_baseline_is_named():
    other = Layout(SMALL.columns, (SMALL.edges[0], (1.0, 2.5), SMALL.edges[2]))
    data = dumps(profile(other, [(0.5, [1.0, 0.0])]))
    with pytest.raises(SketchError, match=f"profiled against baseline layout {other.id}, the baseline is {SMALL.id}"):
        loads(data, SMALL)
    with pytest.raises(SketchError, match="different baselines"):
        merge(Sketch.empty(SMALL), loads(data))


def test_negative_zero_does_not_make_the_merge_order_visible():
    a, b = profile(SMALL, [(0.5, [-0.0, 0.0])]), profile(SMALL, [(0.5, [0.0, 0.0])])
    assert dumps(merge(a, b)) == dumps(merge(b, a))


def test_number_subclasses_are_numbers_and_booleans_are_not():
    sketch = profile(SMALL, [(np.float64(0.5), [np.float64(1.5), np.int64(1)]), (0.5, [True, False])])
    assert [(c.finite, c.text) for c in sketch.features] == [(2, 0), (1, 1), (1, 1)]
