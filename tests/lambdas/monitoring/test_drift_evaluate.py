"""The evaluation, against independent references on the bundled data.

Baseline: the bundled ``baseline.csv`` (the model's score and the features of the 455 training
rows). Current period: the 114 held-out rows of ``test.csv`` (label first, no header, no score),
scored by the bundled model (XGBoost, loaded from ``model.tar.gz`` as the serving container
does), so the model's output column is compared too. Reference: ``scipy.stats.ks_2samp`` on the
raw values.
"""

from __future__ import annotations

import math
import re
import tarfile

import numpy as np
import pytest
import xgboost as xgb
from scipy.special import kolmogi
from scipy.stats import ks_2samp

from lambdas.monitoring.drift.baseline import baseline_documents, load
from lambdas.monitoring.drift.evaluate import (
    BASELINE_DRIFT,
    COMPLETENESS,
    DATA_TYPE,
    DEFAULT_ALPHA,
    evaluate,
    holm,
    ks_critical_value,
    ks_p_value,
    linf_distance,
    rows_needed,
)
from lambdas.monitoring.drift.sketch import Layout, dumps, profile
from stacks.shared.default_model import BASELINE_CSV, MODEL_ARTIFACT, TEST_CSV, captures

SHIFTS = captures.SHIFTS  # in baseline standard deviations: the sample shifted.jsonl's


@pytest.fixture(scope="module")
def baseline():
    documents = baseline_documents(BASELINE_CSV.read_text())
    return load(documents["statistics.json"], documents["constraints.json"])


@pytest.fixture(scope="module")
def baseline_table():
    return np.loadtxt(BASELINE_CSV, delimiter=",", skiprows=1)


@pytest.fixture(scope="module")
def model():
    with tarfile.open(MODEL_ARTIFACT) as tar:
        raw = tar.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


def scored(model, features: np.ndarray) -> np.ndarray:
    """The current table: the model's score first, then the features, as captures hold them."""
    return np.column_stack([model.predict(xgb.DMatrix(features)), features])


@pytest.fixture(scope="module")
def held_out(model):
    return scored(model, np.loadtxt(TEST_CSV, delimiter=",")[:, 1:])


def shift(model, baseline, baseline_table, held_out, *, rescore: bool) -> np.ndarray:
    moved = captures.shift(held_out)  # as the sample shifted.jsonl is made
    # Re-scored, the model's output moves as far as the model says; kept, only the inputs moved.
    return scored(model, moved[:, 1:]) if rescore else moved


@pytest.fixture(scope="module")
def shifted(model, baseline, baseline_table, held_out):
    return shift(model, baseline, baseline_table, held_out, rescore=False)


@pytest.fixture(scope="module")
def shifted_rescored(model, baseline, baseline_table, held_out):
    return shift(model, baseline, baseline_table, held_out, rescore=True)


def sketch_files(layout: Layout, table: np.ndarray, parts: int = 4) -> list[tuple[str, bytes]]:
    """The table profiled as ``parts`` capture objects, one sketch file each."""
    chunks = np.array_split(table, parts)
    rows = [[(r[0], r[1:]) for r in chunk.tolist()] for chunk in chunks]
    return [(f"sketch-{i}.json", dumps(profile(layout, part))) for i, part in enumerate(rows)]


def sketch_file(layout: Layout, rows: list) -> list[tuple[str, bytes]]:
    return [("sketch.json", dumps(profile(layout, rows)))]


def checks(result) -> list[tuple[str, str]]:
    return [(v["feature_name"], v["constraint_check_type"]) for v in result.violations["violations"]]


@pytest.mark.parametrize("period", ["held_out", "shifted", "shifted_rescored"])
def test_the_distance_is_ks_2samp_within_the_stated_bound(request, baseline, baseline_table, period):
    table = request.getfixturevalue(period)
    result = evaluate(baseline, sketch_files(baseline.layout, table))
    worst = 0.0
    for index, drift in enumerate(result.drift):
        reference = ks_2samp(baseline_table[:, index], table[:, index]).statistic
        # the sketch's distance is exact at the edges, so never above the exact statistic
        assert drift.distance <= reference + 1e-12
        assert reference - drift.distance <= drift.error_bound + 1e-12, drift.name
        worst = max(worst, reference - drift.distance)
    bounds = [d.error_bound for d in result.drift]
    print(f"{period}: max |distance - ks_2samp| {worst:.4f}; bounds {min(bounds):.4f}..{max(bounds):.4f}")


def test_held_out_rows_raise_no_drift_violation(baseline, held_out):
    result = evaluate(baseline, sketch_files(baseline.layout, held_out))
    assert result.violations == {"violations": []} and result.no_data is None and result.skipped == ()
    distances = {d.name: round(d.distance, 4) for d in result.drift}
    print("held-out max distance", max(distances.values()), distances)
    # Some features differ by more than the threshold alone: the sample-size rule is what keeps 114
    # rows from alarming (critical value 0.234 for 455 and 114 values at Holm's first level, 0.003 / 31).
    assert max(distances.values()) > 0.1
    # Nothing passes the first step, so Holm stops there: every column is judged at alpha / K.
    assert result.compared == 31 and all(d.level == pytest.approx(DEFAULT_ALPHA / 31) and not d.significant for d in result.drift)
    assert all(d.critical_value == pytest.approx(ks_critical_value(455, 114, DEFAULT_ALPHA / 31)) for d in result.drift)


def test_three_shifted_features_are_flagged_and_no_other(baseline, shifted):
    result = evaluate(baseline, sketch_files(baseline.layout, shifted))
    flagged = {v["feature_name"] for v in result.violations["violations"]}
    assert flagged == set(SHIFTS)
    assert {v["constraint_check_type"] for v in result.violations["violations"]} == {BASELINE_DRIFT}
    print("shifted distances", {d.name: round(d.distance, 4) for d in result.drift if d.name in SHIFTS})
    print("largest unshifted", max((d.distance, d.name) for d in result.drift if d.name not in SHIFTS))


def test_rescored_the_models_output_drifts_with_its_inputs(baseline, shifted_rescored):
    """The same shift with the model's scores recomputed: the output column is flagged as well
    (the model answers differently because its inputs moved), and still no unshifted feature."""
    result = evaluate(baseline, sketch_files(baseline.layout, shifted_rescored))
    assert {v["feature_name"] for v in result.violations["violations"]} == {*SHIFTS, "probability"}
    output = result.drift[0]
    print("rescored output distance", round(output.distance, 4), "critical", round(output.critical_value, 4))


def test_a_handful_of_requests_cannot_alarm(baseline, shifted):
    # Against 455 baseline values, at Holm's first level for 31 columns (the strongest column must
    # pass it), the critical value exceeds 1 (the largest possible distance) below 6 values, and is
    # 0.79 for 8: a few requests alarm only if they are far off together.
    first = DEFAULT_ALPHA / 31
    assert ks_critical_value(455, 5, first) > 1 > ks_critical_value(455, 6, first)
    assert rows_needed(455, first) == 6 and rows_needed(455, DEFAULT_ALPHA) == 4
    few = shifted[:5]
    result = evaluate(baseline, sketch_files(baseline.layout, few, parts=5))
    assert result.violations == {"violations": []}
    assert result.too_few == "too few rows to judge: 5 rows, at least 6 needed"
    assert max(d.distance for d in result.drift) > 0.8  # far apart, but 5 values prove nothing


def test_drift_descriptions_parse_as_seed_001s_utilities_read_them(baseline, shifted):
    result = evaluate(baseline, sketch_files(baseline.layout, shifted))
    distances = {d.name: d.distance for d in result.drift}
    for violation in result.violations["violations"]:
        parsed = float(re.search("distance: (.+) exceeds", violation["description"]).group(1))
        assert parsed == pytest.approx(distances[violation["feature_name"]], rel=1e-5)


def test_period_statistics_match_numpy(baseline, held_out):
    statistics = evaluate(baseline, sketch_files(baseline.layout, held_out)).statistics
    assert statistics["dataset"] == {"item_count": len(held_out)}
    for index, feature in enumerate(statistics["features"]):
        numbers = feature["numerical_statistics"]
        assert numbers["mean"] == pytest.approx(held_out[:, index].mean(), rel=1e-12)
        assert numbers["std_dev"] == pytest.approx(held_out[:, index].std(), rel=1e-9)
        assert (numbers["min"], numbers["max"]) == (held_out[:, index].min(), held_out[:, index].max())


def test_the_critical_value_is_kolmogorovs_at_the_stated_alpha():
    # c(alpha) = sqrt(-ln(alpha / 2) / 2) is the first term of the Kolmogorov distribution's tail;
    # scipy inverts the full series.
    assert ks_critical_value(1, 1, DEFAULT_ALPHA) / math.sqrt(2) == pytest.approx(kolmogi(DEFAULT_ALPHA), rel=1e-6)
    assert ks_critical_value(455, 114) == pytest.approx(1.8 * math.sqrt((455 + 114) / (455 * 114)), rel=0.01)


def test_the_p_value_is_below_alpha_exactly_beyond_the_critical_value():
    for n, m, alpha in [(455, 114, 0.003), (455, 20, 0.003 / 31), (1000, 7, 0.05), (455, 1000, 0.003 / 29)]:
        critical = ks_critical_value(n, m, alpha)
        assert ks_p_value(critical, n, m) == pytest.approx(alpha, rel=1e-9)
        assert ks_p_value(critical * 1.001, n, m) < alpha < ks_p_value(critical * 0.999, n, m)
    assert ks_p_value(0.0, 455, 114) == 1.0


def holm_reference(p_values: list[float], alpha: float) -> list[bool]:
    """Holm (1979) as textbooks state it, from adjusted p-values: ``max over j <= i of (K - j + 1) p_(j)``."""
    family = len(p_values)
    order = sorted(range(family), key=lambda i: p_values[i])
    rejected, adjusted = [False] * family, 0.0
    for step, index in enumerate(order):
        adjusted = max(adjusted, min(1.0, (family - step) * p_values[index]))
        rejected[index] = adjusted < alpha
    return rejected


def test_holm_rejects_what_the_textbook_procedure_rejects():
    rng = np.random.default_rng(21)
    for _ in range(2000):
        family = int(rng.integers(1, 40))
        # standardised statistics around the critical values that matter (c(0.003 / 40) .. c(0.003))
        statistics = rng.uniform(1.5, 2.6, family).tolist()
        if rng.random() < 0.3:
            statistics[0] = 5.0  # one column far off
        verdicts = holm(statistics, DEFAULT_ALPHA)
        p_values = [min(1.0, 2 * math.exp(-2 * s * s)) for s in statistics]
        assert [significant for significant, _ in verdicts] == holm_reference(p_values, DEFAULT_ALPHA)
        # a significant column is above its level's c, every other at or below the level where Holm stopped
        for s, (significant, level) in zip(statistics, verdicts, strict=True):
            c = math.sqrt(-math.log(level / 2) / 2)
            assert (s > c) == significant
    # Bonferroni's first step: the strongest column needs c(alpha / K); once it passed, the next needs
    # only c(alpha / (K - 1)). A column just below c(alpha / K) is not significant on its own...
    first, second = math.sqrt(-math.log(DEFAULT_ALPHA / 62) / 2), math.sqrt(-math.log(DEFAULT_ALPHA / 60) / 2)
    assert second < first
    assert [v[0] for v in holm([first - 1e-9, *[0.0] * 30], DEFAULT_ALPHA)] == [False] * 31
    # ...but is after a stronger one, and one below c(alpha / (K - 1)) is not, nor anything after it.
    assert [v[0] for v in holm([first - 1e-9, 9.0, *[0.0] * 29], DEFAULT_ALPHA)] == [True, True, *[False] * 29]
    assert [v[0] for v in holm([second - 1e-9, 9.0, *[0.0] * 29], DEFAULT_ALPHA)] == [False, True, *[False] * 29]
    # Each column's level: its own step's when significant, the stopping step's otherwise.
    assert holm([second - 1e-9, 9.0, 1.0], DEFAULT_ALPHA) == [(True, DEFAULT_ALPHA / 2), (True, DEFAULT_ALPHA / 3), (False, DEFAULT_ALPHA)]


def test_a_column_is_significant_exactly_when_above_its_critical_value_and_alarms_exactly_when_drifted(baseline, held_out, shifted):
    rng = np.random.default_rng(7)
    for table in (held_out, shifted, shifted[:20], held_out[:40]):
        for _ in range(5):
            rows = table[rng.integers(0, len(table), len(table))]
            result = evaluate(baseline, sketch_files(baseline.layout, rows, parts=1))
            for d in result.drift:
                assert (d.distance > d.critical_value) == d.significant, d
                assert (d.significant_distance > baseline.threshold) == d.drifted, d
                assert d.critical_value == pytest.approx(ks_critical_value(d.baseline_count, d.current_count, d.level))


def test_linf_distance_of_known_histograms():
    assert linf_distance([1, 1, 0], [0, 1, 1]) == (0.5, 0.5)
    assert linf_distance([2, 0], [2, 0]) == (0.0, 1.0)
    with pytest.raises(ValueError, match="3 baseline bins but 2"):
        linf_distance([1, 1, 0], [1, 1])


# Bad input: each case gets a clear reason, and nothing is lost.


def test_a_period_with_no_data_is_reported_not_violated(baseline):
    result = evaluate(baseline, [])
    assert result.no_data == "no sketch files in the period: no captured requests"
    assert result.violations == {"violations": []} and result.statistics["dataset"] == {"item_count": 0}
    empty = evaluate(baseline, [("sketch-0.json", dumps(profile(baseline.layout, [])))])
    assert empty.no_data == "1 sketch file(s) read, no usable rows" and empty.violations == {"violations": []}


def test_a_period_of_only_rejected_rows_says_why(baseline, held_out):
    rows = [(r[0], r[1:5]) for r in held_out[:3].tolist()]
    result = evaluate(baseline, sketch_file(baseline.layout, rows))
    reason = "1 sketch file(s) read, no usable rows, rows rejected: row has 4 features, the baseline 30: 3"
    assert result.no_data == reason
    assert result.violations == {"violations": []}
    assert result.statistics["open_monitor"]["rows_rejected"] == {"row has 4 features, the baseline 30": 3}


def test_unreadable_and_foreign_sketches_are_set_aside_and_the_rest_evaluated(baseline, shifted):
    good = sketch_files(baseline.layout, shifted)
    wider = Layout((*baseline.layout.columns, "new_feature"), (*baseline.layout.edges, (0.0, 1.0)))
    foreign = dumps(profile(wider, [(0.5, [1.0] * 31)]))
    bad = [("broken.json", b'{"format": "drift-sk'), ("model-v2.json", foreign)]
    result = evaluate(baseline, [good[0], *bad, *good[1:]])
    assert [name for name, _ in result.skipped] == ["broken.json", "model-v2.json"]
    assert "not JSON" in result.skipped[0][1]
    assert "sketch has 32 columns" in result.skipped[1][1] and "the baseline 31" in result.skipped[1][1]
    assert result.violations == evaluate(baseline, good).violations  # the rest still counts
    assert result.statistics == evaluate(baseline, good).statistics


HOSTILE = {  # a sketch of the period, each changed as a corrupt file or another writer might
    "bins-101-to-5.json": lambda d: d["bins"].__setitem__(1, 5),
    "bins-10e8.json": lambda d: d["bins"].__setitem__(1, 10**8),
    "negative-variance.json": lambda d: d["features"][1].update(sumsq="0:0"),
    "sum-4000-digits.json": lambda d: d["features"][1].update(sum="9" * 4000 + ":0"),
    "sum-exponent-10e8.json": lambda d: d["features"][1].update(sum="1:100000000"),
    "rows-0.json": lambda d: d.update(rows=0),
    "min-above-max.json": lambda d: d["features"][1].update(min=10.0, max=-10.0),
}


def test_malformed_sketches_are_set_aside_with_their_reasons_and_the_period_completes(baseline, held_out):
    import orjson

    from lambdas.monitoring.drift import report

    good = sketch_files(baseline.layout, held_out)
    template = orjson.loads(good[0][1])
    hostile = []
    for name, change in HOSTILE.items():
        document = orjson.loads(orjson.dumps(template))
        change(document)
        hostile.append((name, orjson.dumps(document)))
    result = evaluate(baseline, [*good[:2], *hostile, *good[2:]])
    assert [name for name, _ in result.skipped] == list(HOSTILE)
    reasons = dict(result.skipped)
    assert "has 5 bins, the baseline's layout" in reasons["bins-101-to-5.json"]
    assert "has 100000000 bins" in reasons["bins-10e8.json"]
    assert "negative variance" in reasons["negative-variance.json"]
    assert "beyond what a sketch holds" in reasons["sum-4000-digits.json"] and "beyond what a sketch holds" in reasons["sum-exponent-10e8.json"]
    assert "values counted for 0 rows" in reasons["rows-0.json"] and "min 10.0 > max -10.0" in reasons["min-above-max.json"]
    assert result.statistics == evaluate(baseline, good).statistics and result.no_data is None  # the good files still count
    # what the deployed run does next: write the statistics and the page, which names every file set aside
    orjson.dumps(result.statistics)
    documents = baseline_documents(BASELINE_CSV.read_text())
    page = report.render(result, documents["statistics.json"], report.Period(environment="dev", window="w", sketch_files=len(good) + len(hostile)))
    assert all(name in page for name in HOSTILE) and "Sketches set aside" in page


def test_nan_infinity_and_text_are_type_violations_never_in_the_distribution(baseline, held_out):
    index = baseline.layout.columns.index("mean_radius")
    rows = [(r[0], r[1:]) for r in held_out.tolist()]
    spoiled = [(out, list(features)) for out, features in rows]
    for position, bad in zip(range(0, 40, 10), [math.nan, "NaN", math.inf, "twelve"]):
        spoiled[position][1][index - 1] = bad
    clean = evaluate(baseline, sketch_file(baseline.layout, [r for i, r in enumerate(rows) if i % 10 or i >= 40]))
    result = evaluate(baseline, sketch_file(baseline.layout, spoiled))
    assert checks(result) == [("mean_radius", DATA_TYPE)]
    observed = "Observed: Only 96.5% of data is Fractional (1 text, 2 NaN, 1 infinite of 114 present values)"
    assert observed in result.violations["violations"][0]["description"]
    feature = result.statistics["features"][index]
    custom = feature["open_monitor"]
    assert (custom["num_text"], custom["num_nan"], custom["num_infinite"]) == (1, 2, 1)
    assert feature["numerical_statistics"]["common"] == {"num_present": 114, "num_missing": 0}
    # the four bad values are not in the histogram: mean_radius's distribution is that of the other 110 rows
    spoiled_drift, clean_drift = result.drift[index], clean.drift[index]
    assert clean_drift.current_count == spoiled_drift.current_count == 110
    assert spoiled_drift.distance == clean_drift.distance


def test_missing_values_are_a_completeness_violation(baseline, held_out):
    rows = [(r[0], r[1:]) for r in held_out.tolist()]
    rows[:5] = [(None, features) for _, features in rows[:5]]  # captures that held only the input
    result = evaluate(baseline, sketch_file(baseline.layout, rows))
    assert checks(result) == [("probability", COMPLETENESS)]
    expected = "Expected: 100.0%, observed: 95.6% (5 of 114 values missing)"
    assert expected in result.violations["violations"][0]["description"]


def test_fractional_values_in_an_integral_column_are_a_type_violation():
    documents = baseline_documents("probability,visits\n" + "".join(f"0.{i % 9 + 1},{i % 5}\n" for i in range(50)))
    baseline = load(documents["statistics.json"], documents["constraints.json"])
    rows = [(float(f"0.{i % 9 + 1}"), [i % 5]) for i in range(45)] + [(0.5, [2.5])]
    result = evaluate(baseline, sketch_file(baseline.layout, rows))
    assert checks(result) == [("visits", DATA_TYPE)]
    assert "1 not whole of 46 present values" in result.violations["violations"][0]["description"]
    assert result.statistics["features"][1]["inferred_type"] == "Fractional"


def test_a_column_with_no_number_in_the_period_is_not_compared_but_reported(baseline, held_out):
    index = baseline.layout.columns.index("worst_area")
    rows = [(r[0], [*r[1:index], "n/a", *r[index + 1 :]]) for r in held_out[:20].tolist()]
    result = evaluate(baseline, sketch_file(baseline.layout, rows))
    assert result.drift[index].distance is None and not result.drift[index].drifted
    assert checks(result) == [("worst_area", DATA_TYPE)]
    assert "Observed: Only 0.0% of data is Fractional (20 text" in result.violations["violations"][0]["description"]
    feature = result.statistics["features"][index]
    assert "mean" not in feature["numerical_statistics"] and "bin_edges" not in feature["open_monitor"]
