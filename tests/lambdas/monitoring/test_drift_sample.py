"""The mergeable uniform sample: uniform priorities and inclusion, exact merge, exact round trip, bad files."""

from __future__ import annotations

import math
import random
import sys

import orjson
import pytest
from scipy import stats

from lambdas.monitoring.drift.sample import Sample, SampleError, dumps, loads, merge, priorities, sample, value

NAMES = ("a", "b")
SOURCE = "s3://capture/capture/ep/AllTraffic/2026/11/22/10/object-1.jsonl"


def rows(n: int, prefix: str = "evt") -> list[tuple[str, int, float, list]]:
    return [(f"{prefix}-{i // 3:06d}", i % 3, (i % 100) / 100, [float(i), str(i)]) for i in range(n)]


def test_priorities_are_uniform_within_an_object_and_across_objects():
    # Kolmogorov-Smirnov against U(0, 1): the rows of one object, and the first rows of objects whose
    # URIs differ in one character, must not give structured priorities.
    within = priorities(SOURCE)
    ranks = [within() for _ in range(20_000)]
    across = [priorities(f"s3://capture/object-{i:09d}.jsonl")() for i in range(20_000)]
    for found in (ranks, across):
        assert all(0.0 <= p < 1.0 for p in found)
        assert stats.kstest(found, "uniform").pvalue > 0.001
    assert stats.pearsonr(ranks[:-1], ranks[1:]).pvalue > 0.001  # successive rows: no correlation


def test_every_row_is_equally_likely_to_be_kept():
    # 200 rows, samples of 20 of 2,000 different objects: each row's inclusion count is
    # Binomial(2000, 0.1); a chi-square test of the counts against equal frequencies.
    counts = [0] * 200
    for scheme in range(2_000):
        kept = sample(20, NAMES, [(f"s{scheme}-{i}", 0, 0.5, [1.0, 2.0]) for i in range(200)], source=f"s3://capture/{scheme}.jsonl")
        for row in kept.rows:
            counts[int(row.event_id.rsplit("-", 1)[1])] += 1
    assert sum(counts) == 2_000 * 20
    assert stats.chisquare(counts).pvalue > 0.001


def test_the_kept_rows_are_the_smallest_priorities_drawn_in_the_objects_order():
    data = rows(500)
    kept = sample(10, NAMES, data, source=SOURCE)
    draw = priorities(SOURCE)
    expected = sorted((draw(), e, i) for e, i, _, _ in data)[:10]
    assert [(r.priority, r.event_id, r.row_index) for r in kept.rows] == expected
    assert kept.seen == 500


def test_merging_the_samples_of_many_objects_keeps_the_smallest_priorities_of_all_in_any_order():
    data = rows(900)
    random.Random(3).shuffle(data)
    parts = [sample(50, NAMES, data[i : i + 100], source=f"{SOURCE}.{i}") for i in range(0, 900, 100)]
    left = parts[0]
    for part in parts[1:]:
        left = merge(left, part)
    right = parts[-1]
    for part in reversed(parts[:-1]):
        right = merge(part, right)
    middle = merge(merge(parts[4], merge(parts[0], parts[8])), merge(merge(*parts[1:3]), merge(merge(*parts[5:7]), merge(parts[3], parts[7]))))
    assert dumps(left) == dumps(right) == dumps(middle)
    # Independently: every row's priority (each object's draws in order), the 50 smallest of all.
    everything = []
    for i in range(0, 900, 100):
        draw = priorities(f"{SOURCE}.{i}")
        everything += [(draw(), e, r) for e, r, _, _ in data[i : i + 100]]
    assert [(r.priority, r.event_id, r.row_index) for r in left.rows] == sorted(everything)[:50]
    assert left.seen == 900 and left.capacity == 50


def test_a_replay_gives_the_same_sample_and_merging_it_twice_keeps_each_row_once():
    data = rows(300)
    once = sample(40, NAMES, data, source=SOURCE)
    assert dumps(sample(40, NAMES, data, source=SOURCE)) == dumps(once)
    twice = merge(once, sample(40, NAMES, data, source=SOURCE))
    assert [r.priority for r in twice.rows] == [r.priority for r in once.rows]
    assert dumps(sample(40, NAMES, data, source=SOURCE + "-other")) != dumps(once)  # another object: other priorities


def test_a_smaller_capacity_wins_the_merge():
    data = rows(300)
    merged = merge(sample(40, NAMES, data[:150], source="a"), sample(10, NAMES, data[150:], source="b"))
    assert merged.capacity == 10
    assert dumps(merged) == dumps(merge(sample(10, NAMES, data[:150], source="a"), sample(10, NAMES, data[150:], source="b")))


def test_only_the_sample_of_one_object_takes_rows():
    read = loads(dumps(sample(5, NAMES, rows(20), source=SOURCE)))
    with pytest.raises(SampleError, match="only the sample of one capture object"):
        read.offer("e", 0, 0.5, [1.0, 2.0])


def test_values_are_floats_and_missing_text_and_non_finite_are_kept_for_the_explainer():
    # an integer beyond the double range is kept as the largest double: out of range, as the sketch counts it
    cells = [1, "2.5", " 3 ", None, "", "abc", True, math.nan, math.inf, "-inf", 10**400, [1]]
    assert [value(c) for c in cells] == [1.0, 2.5, 3.0, None, None, "abc", True, "NaN", "Infinity", "-Infinity", sys.float_info.max, [1]]
    assert [value(value(c)) for c in cells] == [value(c) for c in cells]  # what is read back is kept as it is
    kept = sample(5, ["x"] * len(cells), [("e", 0, 0.25, cells)], source=SOURCE)
    assert loads(dumps(kept)).rows[0].features == kept.rows[0].features


def test_the_serialised_round_trip_is_exact():
    kept = sample(25, NAMES, rows(200), source=SOURCE)
    again = loads(dumps(kept), NAMES)
    assert dumps(again) == dumps(kept)
    assert [r.features for r in again.rows] == [r.features for r in kept.rows]


def test_a_row_with_another_feature_count_is_counted_with_its_reason():
    kept = sample(5, NAMES, [("e", 0, 0.5, [1.0]), ("e", 1, 0.5, [1.0, 2.0])], source=SOURCE)
    assert kept.seen == 1 and kept.rejected == {"row has 1 features, the sample 2": 1}
    assert loads(dumps(kept)).rejected == kept.rejected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not a sample: not JSON"),
        (b"[]", 'no "format": "drift-sample"'),
        (orjson.dumps({"format": "drift-sketch", "version": 1}), 'no "format": "drift-sample"'),
        (orjson.dumps({"format": "drift-sample", "version": 2}), "format version 2"),
        (orjson.dumps({"format": "drift-sample", "version": 1}), "malformed sample: KeyError"),
    ],
)
def test_a_file_that_does_not_parse_raises_a_clear_reason(data, reason):
    with pytest.raises(SampleError, match=reason):
        loads(data)


def _document(**change) -> bytes:
    document = orjson.loads(dumps(sample(5, NAMES, rows(20), source=SOURCE)))
    document.update(change)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"capacity": -1}, "capacity must be a non-negative integer"),
        ({"columns": ["score", "a", "b"]}, "columns must start with 'probability'"),
        ({"seen": 2}, "at most capacity"),
        ({"rows": [[0.5, "e", 0, 0.5, 1.0]]}, "must have 6 entries"),
        ({"rows": [[1.0, "e", 0, 0.5, 1.0, 2.0]]}, "priority must be a number in \\[0, 1\\)"),
        ({"rows": [[0.5, "e", -1, 0.5, 1.0, 2.0]]}, "row 0 index must be a non-negative integer"),
        ({"rows": [[0.5, "e", 0, "high", 1.0, 2.0]]}, "the output must be a number"),
    ],
)
def test_a_malformed_field_names_what_is_wrong(change, reason):
    with pytest.raises(SampleError, match=reason):
        loads(_document(**change))


def test_a_sample_of_other_columns_is_named():
    data = dumps(sample(5, NAMES, rows(20), source=SOURCE))
    with pytest.raises(SampleError, match="sample has 2 features .* the model 3 .* another model's features"):
        loads(data, ("a", "b", "c"))
    with pytest.raises(SampleError, match="'b' != 'c'"):
        loads(data, ("a", "c"))
    with pytest.raises(SampleError, match="different columns"):
        merge(loads(data), Sample.empty(5, ("a", "c"), source=SOURCE))


def test_offering_rows_together_equals_offering_them_one_by_one():
    data = rows(700) + [("odd", 0, 0.5, [1.0])] + rows(300, "late")
    together = Sample.empty(30, NAMES, source=SOURCE)
    for start in range(0, len(data), 256):
        part = data[start : start + 256]
        together.offer_many(lambda i, part=part: part[i][:2], [o for _, _, o, _ in part], [f for _, _, _, f in part])
    assert dumps(together) == dumps(sample(30, NAMES, data, source=SOURCE))
    assert together.seen == 1_000 and together.rejected == {"row has 1 features, the sample 2": 1}


def test_equal_priorities_are_broken_by_identity_so_order_and_merging_still_do_not_matter(monkeypatch):
    from lambdas.monitoring.drift import sample as module

    monkeypatch.setattr(module, "priorities", lambda source: lambda: 0.5)
    data = rows(60)
    shuffled = data[::-1]
    forwards, backwards = sample(7, NAMES, data, source="a"), sample(7, NAMES, shuffled, source="b")
    merged = merge(sample(7, NAMES, data[:25], source="c"), sample(7, NAMES, data[25:], source="d"))
    assert dumps(forwards) == dumps(backwards) == dumps(merged)
    assert [(r.event_id, r.row_index) for r in forwards.rows] == sorted((e, i) for e, i, _, _ in data)[:7]
