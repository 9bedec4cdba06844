"""The baseline step: bin edges, statistics.json and constraints.json in Model Monitor's formats,
checked against numpy on the bundled baseline dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lambdas.monitoring.drift import baseline as drift_baseline
from lambdas.monitoring.drift.baseline import BaselineError, baseline_documents, bin_edges, load, profile_dataset
from lambdas.shared.baseline import header
from stacks.shared.default_model import BASELINE_CSV, FEATURE_NAMES


@pytest.fixture(scope="module")
def documents():
    return baseline_documents(BASELINE_CSV.read_text())


@pytest.fixture(scope="module")
def table():
    return np.loadtxt(BASELINE_CSV, delimiter=",", skiprows=1)


def test_statistics_follow_model_monitors_schema_and_match_numpy(documents, table):
    statistics = documents["statistics.json"]
    assert statistics["version"] == 0 and statistics["dataset"] == {"item_count": len(table)}
    assert [f["name"] for f in statistics["features"]] == header(FEATURE_NAMES)
    for index, feature in enumerate(statistics["features"]):
        column = table[:, index]
        numbers = feature["numerical_statistics"]
        assert feature["inferred_type"] == "Fractional"
        assert numbers["common"] == {"num_present": len(column), "num_missing": 0}
        assert numbers["mean"] == pytest.approx(column.mean(), rel=1e-12)
        assert numbers["sum"] == pytest.approx(column.sum(), rel=1e-12)
        assert numbers["std_dev"] == pytest.approx(column.std(), rel=1e-9)  # population, as deequ
        assert (numbers["min"], numbers["max"]) == (column.min(), column.max())
        buckets = numbers["distribution"]["kll"]["buckets"]
        assert sum(b["count"] for b in buckets) == len(column)
        assert all(b["lower_bound"] <= b["upper_bound"] for b in buckets)
        # seed 001's utilities tabulate every scalar of numerical_statistics: nothing custom in there
        assert set(numbers) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    json.dumps(statistics, allow_nan=False)  # plain JSON: no NaN or infinity anywhere


def test_the_sketch_bins_are_numpys_histogram_on_the_same_edges(documents, table):
    for index, feature in enumerate(documents["statistics.json"]["features"]):
        edges = feature["open_monitor"]["bin_edges"]
        counts = [b["count"] for b in feature["open_monitor"]["bins"]]
        cumulative = np.searchsorted(np.sort(table[:, index]), edges, side="right")  # #{x <= edge}
        assert np.cumsum(counts)[:-1].tolist() == cumulative.tolist()
        assert drift_baseline.quantile_bins(feature) == feature["open_monitor"]["bins"]


def test_kll_buckets_are_ten_equal_width_buckets_from_min_to_max_as_model_monitor_writes_them(documents, table):
    # Seed 001's show_distributions draws every bucket with the first bucket's width: it must be the
    # width of all of them, and not zero (the sketch's quantile bins began with a zero-width one).
    for index, feature in enumerate(documents["statistics.json"]["features"]):
        column = table[:, index]
        buckets = feature["numerical_statistics"]["distribution"]["kll"]["buckets"]
        assert len(buckets) == 10 and (buckets[0]["lower_bound"], buckets[-1]["upper_bound"]) == (column.min(), column.max())
        widths = [b["upper_bound"] - b["lower_bound"] for b in buckets]
        assert widths[0] > 0 and widths == pytest.approx([widths[0]] * 10, rel=1e-9)
        assert all(a["upper_bound"] == b["lower_bound"] for a, b in zip(buckets, buckets[1:]))
        counts = [b["count"] for b in buckets]
        assert all(type(c) is int and c >= 0 for c in counts) and sum(counts) == len(column)
        # read off the quantile bins (about 1 % of the rows each): near numpy's exact equal-width histogram
        exact, _ = np.histogram(column, bins=10, range=(column.min(), column.max()))
        assert np.abs(np.array(counts) - exact).max() <= 0.03 * len(column) + 1, feature["name"]


@pytest.mark.parametrize("value", [0.0, 7.5, -3e38, 1e-300])
def test_equal_values_get_buckets_around_them_with_a_width(value):
    _, sketch = profile_dataset("probability,a\n" + "".join(f"0.5,{value!r}\n" for _ in range(4)))
    buckets = drift_baseline.equal_width_buckets(sketch.features[1], (value,))
    widths = [b["upper_bound"] - b["lower_bound"] for b in buckets]
    assert len(buckets) == 10 and min(widths) > 0 and widths == pytest.approx([widths[0]] * 10, rel=1e-6)
    [holding] = [b for b in buckets if b["count"]]
    assert holding["count"] == 4 and holding["lower_bound"] <= value <= holding["upper_bound"]


def test_a_baseline_written_before_the_bins_moved_under_open_monitor_still_loads(documents):
    old = json.loads(json.dumps(documents["statistics.json"]))
    for feature in old["features"]:  # the first version's layout: the sketch bins in kll.buckets
        feature["numerical_statistics"]["distribution"]["kll"]["buckets"] = feature["open_monitor"].pop("bins")
    assert load(old, documents["constraints.json"]) == load(documents["statistics.json"], documents["constraints.json"])


def test_bin_edges_are_distinct_quantiles_from_min_to_max(table):
    for index in range(table.shape[1]):
        column = table[:, index]
        edges = bin_edges(column.tolist())
        assert edges[0] == column.min() and edges[-1] == column.max()
        assert all(a < b for a, b in zip(edges, edges[1:])) and len(edges) <= 101
        assert set(edges) <= set(column.tolist())
        expected = sorted(set(np.quantile(column, np.linspace(0, 1, 101), method="lower").tolist()))
        assert list(edges) == expected


def test_constraints_follow_model_monitors_schema(documents, table):
    constraints = documents["constraints.json"]
    assert constraints["version"] == 0
    assert constraints["monitoring_config"] == {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
        },
    }
    for index, feature in enumerate(constraints["features"]):
        assert feature["completeness"] == 1.0
        assert feature["num_constraints"] == {"is_non_negative": bool(table[:, index].min() >= 0)}


def test_load_reads_back_what_the_evaluation_needs(documents):
    layout, sketch = profile_dataset(BASELINE_CSV.read_text())
    baseline = load(documents["statistics.json"], documents["constraints.json"])
    assert baseline.layout == layout and baseline.layout.id == layout.id
    assert baseline.counts == tuple(tuple(c.counts) for c in sketch.features)
    assert baseline.threshold == 0.1 and baseline.completeness == (1.0,) * len(layout.columns)


def test_missing_and_integral_columns():
    baseline = baseline_documents("probability,count,size\n0.5,1,2.5\n0.25,,3.5\n0.75,3,1.0\n")
    features = {f["name"]: f for f in baseline["constraints.json"]["features"]}
    assert features["count"]["inferred_type"] == "Integral"
    assert features["count"]["completeness"] == pytest.approx(2 / 3)
    assert features["size"]["inferred_type"] == "Fractional"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("probability,a\n", "no rows"),
        ("probability,a,a\n0.5,1,2\n", "name every column once"),
        ("probability,a\n0.5,1\n0.5,1,2\n", "line 3 has 3 fields, the header 2"),
        ("probability,a\n0.5,1\n0.5,abc\n", "line 3, column 'a': 'abc' is not a number"),
        ("probability,a\n0.5,nan\n", "line 2, column 'a': 'nan' is not finite"),
        # beyond the float32 range: out of range (a value of 1.4e154 or more used to crash with OverflowError)
        ("probability,a\n0.5,1\n0.5,1e39\n", r"line 3, column 'a': '1e39' is beyond the float32 range .*: out of range"),
        ("probability,a\n0.5,1e155\n", "line 2, column 'a': '1e155' is beyond the float32 range"),
        ("probability,a\n0.5,-1.7e308\n", "line 2, column 'a': '-1.7e308' is beyond the float32 range"),
        (f"probability,a\n0.5,{10**200}\n", "line 2, column 'a': '1000000000000000000000000000000000000000' is beyond the float32 range"),
        ("probability,a\n0.5,\n", "column 'a' has no values"),
    ],
)
def test_a_bad_baseline_dataset_names_the_cell(text, reason):
    with pytest.raises(BaselineError, match=reason):
        baseline_documents(text)


def test_model_monitors_own_baseline_files_are_refused_with_a_reason(documents):
    statistics = json.loads(json.dumps(documents["statistics.json"]))
    for feature in statistics["features"]:
        del feature[drift_baseline.CUSTOM]
    with pytest.raises(BaselineError, match="lack 'open_monitor'"):
        load(statistics, documents["constraints.json"])
