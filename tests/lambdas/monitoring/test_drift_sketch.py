"""The per-feature sketch: binning, exact merge, exact serialised round trip, bad input."""

from __future__ import annotations

import math
import random
import re
from fractions import Fraction

import numpy as np
import orjson
import pytest

from lambdas.monitoring.drift import baseline as drift_baseline
from lambdas.monitoring.drift.sketch import RANGE_LIMIT, Layout, Sketch, SketchError, dumps, loads, merge, profile
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
    assert sketch.features[1].below == 1  # 0.5: below the first edge (the baseline's minimum); 1.0 is on it
    assert (sketch.features[1].minimum, sketch.features[1].maximum) == (0.5, 3.5)


def test_bad_values_are_counted_apart_and_never_binned():
    values = [1.5, "2.5", " 2 ", None, "", " ", "abc", True, [1], math.nan, "NaN", math.inf, "-inf", "Infinity", 10**400, "1e39", -1e200]
    sketch = profile(SMALL, [(0.5, [value, 0.0]) for value in values])
    column = sketch.features[1]
    assert (column.finite, column.missing, column.text, column.nan, column.inf, column.out_of_range) == (3, 3, 3, 2, 3, 3)
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
    values = [3.4e38, 5e-324, -3.4e38, 0.1, 0.2, -0.3, 2.0**-60, 123456.789, RANGE_LIMIT, -RANGE_LIMIT]
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
        # Inconsistent or absurd fields (a corrupt file, another writer's): refused, never a crash later.
        (lambda d: d["features"][1].update(h=[0, 1, 0, 1]), "bin 0 after bin 0: the bins must ascend"),
        (lambda d: d.update(rows=0), "probability: 1 values counted for 0 rows"),
        (lambda d: d.update(rows=5), "probability: 1 values counted for 5 rows"),
        (lambda d: d["features"][1].update(fractional=2), "a: 2 non-integral values of 1 finite ones"),
        (lambda d: d["features"][1].update(below=2), "a: 2 values below the first edge, more than bin 0 holds"),
        (lambda d: d["features"][1].update(min=10.0, max=-10.0), "a: min 10.0 > max -10.0"),
        (lambda d: d["features"][1].update(min=1e308), "min/max must be finite numbers within the float32 range, got 1e"),
        (lambda d: d["features"][1].update(sumsq="0:0"), "a: the sums give a negative variance"),
        (lambda d: d["features"][1].update(sum="5:0", sumsq="25:0"), "a: the sum is outside 1 times the min and max"),
        (lambda d: d["features"][1].update(sumsq="4:0"), "a: the sum of squares exceeds 1 times the largest square"),
        (lambda d: d["features"][1].update(sum="9" * 4000 + ":0"), "a: a sum \"p:k\" with 4000 digits and k = 0: beyond what a sketch holds"),
        (lambda d: d["features"][1].update(sum="1:100000000"), "k = 100000000: beyond what a sketch holds"),
        (lambda d: d["features"][1].update(sumsq="1:" + "9" * 30), "beyond what a sketch holds"),
        (lambda d: d["bins"].__setitem__(1, 10**7), "10000007 bins in all, more than 1,000,000"),
    ],
)
def test_a_malformed_field_names_what_is_wrong(change, reason):
    document = orjson.loads(dumps(profile(SMALL, [(0.5, [1.0, 0.0])])))
    change(document)
    with pytest.raises(SketchError, match=re.escape(reason)):
        loads(orjson.dumps(document))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["bins"].__setitem__(1, 3), "sketch column 'a' has 3 bins, the baseline's layout 4"),
        (lambda d: d["bins"].__setitem__(1, 5) or d["features"][1].update(h=[4, 1]), "sketch column 'a' has 5 bins, the baseline's layout 4"),
        (lambda d: d["bins"].__setitem__(1, 10**8), "sketch column 'a' has 100000000 bins, the baseline's layout 4"),
        (lambda d: d["bins"].__setitem__(1, "4"), "sketch column 'a' has '4' bins"),
        # 2.5 belongs to bin 2 ((2, 3]), but the only value counted is in bin 0
        (lambda d: d["features"][1].update(min=2.5, max=2.5, sum="5:1", sumsq="25:2"), "a: min 2.5 and max 2.5 are not in the first and last bins"),
    ],
)
def test_a_sketch_that_does_not_fit_the_layout_is_refused_before_anything_is_allocated(change, reason):
    import tracemalloc

    document = orjson.loads(dumps(profile(SMALL, [(0.5, [1.0, 0.0])])))
    change(document)
    data = orjson.dumps(document)
    tracemalloc.start()
    try:
        with pytest.raises(SketchError, match=reason):
            loads(data, SMALL)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # 10**8 bins would be 800 MB of list before any check


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


def _reference(layout: Layout, rows: list) -> list[dict]:
    """Per column, the sketch's documented content computed value by value, independently of the
    batch code: a number is what float() reads (booleans aside), blank text and None are missing."""
    from bisect import bisect_left

    found = [{"counts": [0] * (len(e) + 1), "missing": 0, "text": 0, "nan": 0, "inf": 0, "out_of_range": 0, "fractional": 0, "below": 0, "numbers": []} for e in layout.edges]
    for output, features in rows:
        if features is not None and len(features) != layout.features:
            continue
        for column, edges, value in zip(found, layout.edges, [output, *(features if features is not None else [None] * layout.features)]):
            if value is None or (isinstance(value, str) and not value.strip()):
                column["missing"] += 1
                continue
            if isinstance(value, (bool, np.bool_)):
                column["text"] += 1
                continue
            try:
                x = float(value)
            except OverflowError:
                column["out_of_range"] += 1
                continue
            except (TypeError, ValueError):
                column["text"] += 1
                continue
            if math.isnan(x):
                column["nan"] += 1
            elif math.isinf(x):
                column["inf"] += 1
            elif abs(x) > 3.4028234663852886e38:  # beyond the largest float32
                column["out_of_range"] += 1
            else:
                column["counts"][bisect_left(edges, x)] += 1
                column["below"] += x < edges[0]
                column["fractional"] += not x.is_integer()
                column["numbers"].append(x + 0.0)
    return found


@pytest.mark.parametrize("seed", range(6))
def test_batches_match_a_value_by_value_reference(seed: int) -> None:
    # Batches that cross BATCH_ROWS, with the odd values (text, booleans, None, NaN, huge integers,
    # values spanning every binade) in some rows only, so both the packed rows and the others are read.
    rng = random.Random(seed)
    layout = Layout(("probability", "a", "b", "c"), ((0.25, 0.5, 0.75), (-1.0, 0.0, 1.0, 5.0), (0.0, 3.0), (-1e300, 1e-300, 1e300)))
    odd = [None, "", " ", "abc", True, False, np.bool_(True), math.nan, "nan", math.inf, "-inf", 10**400, -0.0, 5e-324, 1e308, -1e308, [1], "2.5", 7, Fraction(1, 3)]
    rows = []
    for _ in range(rng.randint(1, 5_000)):
        clean = rng.random() > 0.05
        features = [rng.uniform(-10, 10), rng.choice([0.0, 1.0, 2.0]) if clean else rng.choice(odd), rng.uniform(-1, 1) * 2.0 ** rng.randint(-1074, 1020)]
        if not clean and rng.random() < 0.3:
            features = rng.choice([None, features[:2], [*features, 1.0]])
        rows.append((rng.random() if clean else rng.choice([*odd, 0.0, 1.0]), features))
    sketch = profile(layout, rows)
    for column, expected in zip(sketch.features, _reference(layout, rows), strict=True):
        numbers = expected.pop("numbers")
        assert {k: getattr(column, k) for k in expected} == expected
        assert (column.minimum, column.maximum) == ((min(numbers), max(numbers)) if numbers else (None, None))
        assert column.total == sum(map(Fraction, numbers)) and column.total_squares == sum(Fraction(x) ** 2 for x in numbers)
    assert sketch.rows + sketch.rejected_rows == len(rows)
