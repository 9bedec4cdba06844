"""Exact SHAP values from the served artefact (lambdas/shared/explain/tree.py).

The bundled model's attributions are checked for additivity against the booster's own margin; a
small model's are checked against Shapley values computed by brute force from its trees, so the
contributions are shown to be exact, not merely additive.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import pickle
import tarfile

import numpy as np
import pytest
import xgboost as xgb

from lambdas.shared.explain.results import RecordAttributions, Unexplainable
from lambdas.shared.explain.tree import TreeExplainer
from stacks.shared import default_model

ADDITIVITY = 1e-4


def csv_rows() -> list[list[str]]:
    with default_model.TEST_CSV.open() as stream:
        return [record[1:] for record in csv.reader(stream)]


def bundled_booster() -> xgb.Booster:
    with tarfile.open(default_model.MODEL_ARTIFACT) as tar:
        data = tar.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster


def tarball(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture(scope="module")
def explainer() -> TreeExplainer:
    with default_model.MODEL_ARTIFACT.open("rb") as stream:
        return TreeExplainer.from_artifact(stream, "bundled")


def test_bundled_model_attributions_add_up_to_its_margin_for_every_test_record(explainer) -> None:
    rows = csv_rows()
    results = explainer.explain(rows)
    booster = bundled_booster()
    matrix = xgb.DMatrix(np.asarray(rows, dtype=np.float32))
    margins = booster.predict(matrix, output_margin=True)
    probabilities = booster.predict(matrix)
    assert len(results) == len(rows) == 114
    for result, margin, probability in zip(results, margins, probabilities):
        assert isinstance(result, RecordAttributions) and len(result.contributions) == 30
        assert abs(result.base_value + sum(result.contributions) - float(margin)) < ADDITIVITY
        assert abs(result.probability - float(probability)) < 1e-6
    # One base value for the model; the records really differ.
    assert len({r.base_value for r in results}) == 1
    assert len({r.contributions for r in results}) > 50  # records in the same leaves of every tree share theirs


def _tree_value(node: dict, x: list[float], known: set[int]) -> float:
    """E[tree(x) | features in ``known``], unknown features averaged over the training cover: the
    path-dependent expectation that TreeSHAP takes Shapley values of."""
    if "leaf" in node:
        return node["leaf"]
    children = {child["nodeid"]: child for child in node["children"]}
    feature = int(node["split"][1:])
    if feature in known:
        # XGBoost compares in float32, against the threshold the dump prints to float32 precision.
        branch = node["yes"] if np.float32(x[feature]) < np.float32(node["split_condition"]) else node["no"]
        return _tree_value(children[branch], x, known)
    return sum(child["cover"] * _tree_value(child, x, known) for child in node["children"]) / node["cover"]


def test_contributions_are_exact_shapley_values_computed_by_brute_force() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(300, 3))
    labels = (data[:, 0] + 0.5 * data[:, 1] * data[:, 2] > 0).astype(float)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 0, "nthread": 1}, xgb.DMatrix(data, label=labels), num_boost_round=4)
    explainer = TreeExplainer(booster, "small")
    trees = [json.loads(tree) for tree in booster.get_dump(with_stats=True, dump_format="json")]
    records = data[:5].astype(np.float32).astype(float).tolist()
    n = 3
    for x, result in zip(records, explainer.explain(records)):
        value = lambda known: sum(_tree_value(tree, x, known) for tree in trees)  # noqa: E731
        intercept = result.margin - value(set(range(n)))  # the margin's constant part (base score)
        assert abs(result.base_value - (intercept + value(set()))) < 1e-5
        for i in range(n):
            others = [j for j in range(n) if j != i]
            shapley = sum(
                math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n) * (value(set(s) | {i}) - value(set(s)))
                for size in range(n) for s in itertools.combinations(others, size)
            )
            assert abs(result.contributions[i] - shapley) < 1e-5


def test_a_record_that_cannot_be_explained_gets_its_reason_and_the_others_are_explained(explainer) -> None:
    good = csv_rows()[0]
    missing = ["" if i == 3 else v for i, v in enumerate(good)]  # an empty CSV field is a missing value
    results = explainer.explain([good, good[:29], ["abc"] + good[1:], missing])
    assert isinstance(results[0], RecordAttributions) and isinstance(results[3], RecordAttributions)
    assert str(results[1]) == "the record has 29 features and model bundled takes 30"
    assert str(results[2]) == "feature 1 is 'abc', not a number"
    with_nan = np.asarray([[math.nan if v == "" else float(v) for v in missing]], dtype=np.float32)
    expected = float(bundled_booster().predict(xgb.DMatrix(with_nan, missing=np.nan), output_margin=True)[0])
    assert results[3].margin == pytest.approx(expected, abs=ADDITIVITY) and results[3].margin != pytest.approx(results[0].margin, abs=ADDITIVITY)


def test_models_the_app_cannot_explain_say_why() -> None:
    booster = bundled_booster()
    regression = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(np.eye(3), label=[1.0, 2.0, 3.0]), num_boost_round=1)
    cases = {
        "a pickle": (tarball({"xgboost-model": pickle.dumps({"not": "a booster"})}), "xgboost-model is a Python pickle, which the app does not load"),
        "not a tarball": (io.BytesIO(b"plain bytes"), "the model artefact is not a readable .tar.gz"),
        "no model file": (tarball({"code/inference.py": b"print('hi')"}), "model m is not an XGBoost model the app can read: code/inference.py does not load"),
        "empty": (tarball({}), "the artefact of model m holds no files"),
        "regression": (tarball({"xgboost-model": bytes(regression.save_raw("ubj"))}), "model m has objective reg:squarederror"),
    }
    for case, (stream, reason) in cases.items():
        with pytest.raises(Unexplainable) as raised:
            TreeExplainer.from_artifact(stream, "m")
        assert reason in str(raised.value), case
        assert not raised.value.transient
    # Other file names and formats the XGBoost container also serves load too.
    as_json = TreeExplainer.from_artifact(tarball({"model/model.json": bytes(booster.save_raw("json"))}), "m")
    assert as_json.feature_count == 30
    plain = TreeExplainer.from_artifact(io.BytesIO(bytes(booster.save_raw("ubj"))), "m", gzipped=False)
    assert plain.explain([csv_rows()[0]])[0].margin == pytest.approx(float(booster.predict(xgb.DMatrix(np.asarray([csv_rows()[0]], dtype=np.float32)), output_margin=True)[0]))


def test_the_artefact_reader_refuses_archives_that_unpack_beyond_the_limit(monkeypatch) -> None:
    from lambdas.shared.explain import tree

    monkeypatch.setattr(tree, "MAX_ARTIFACT_BYTES", 1000)
    with pytest.raises(Unexplainable, match="unpacks to more than"):
        TreeExplainer.from_artifact(tarball({"xgboost-model": b"\0" * 2000}), "m")


def test_a_model_with_several_outputs_says_so_for_every_readable_record() -> None:
    rng = np.random.default_rng(5)
    data = rng.normal(size=(200, 3))
    labels = np.column_stack([data[:, 0] > 0, data[:, 1] > 0]).astype(float)  # two targets
    booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "seed": 0}, xgb.DMatrix(data, label=labels), num_boost_round=2)
    results = TreeExplainer(booster, "multi").explain([[0.1, 0.2, 0.3], [1.0], [0.5, 0.5, 0.5]])
    assert [str(r) for r in results] == [
        "model multi has several outputs; the app explains one probability per record",
        "the record has 1 features and model multi takes 3",
        "model multi has several outputs; the app explains one probability per record",
    ]
