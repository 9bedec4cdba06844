"""The bundled model: reproducible from its script, loadable the way the XGBoost container loads it."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from lambdas.shared import baseline
from stacks.shared import default_model
from stacks.shared.default_model import train


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    train.build(out)
    return out


def test_committed_artefacts_are_exactly_what_the_script_produces(rebuilt: Path) -> None:
    names = sorted(path.name for path in default_model.ARTIFACTS_DIR.iterdir())
    assert names == sorted(path.name for path in rebuilt.iterdir()) == sorted(["model.tar.gz", *(path.name for path in default_model.DATASETS)])
    for name in names:
        assert (rebuilt / name).read_bytes() == (default_model.ARTIFACTS_DIR / name).read_bytes(), name


def _load_like_the_container(tmp_path: Path) -> xgb.Booster:
    with tarfile.open(default_model.MODEL_ARTIFACT) as tar:
        assert tar.getnames() == ["xgboost-model"]
        tar.extractall(tmp_path, filter="data")
    booster = xgb.Booster()
    booster.load_model(str(tmp_path / "xgboost-model"))
    return booster


def _rows(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",")


def test_datasets_are_label_first_without_header_split_80_20() -> None:
    train_rows, test_rows = _rows(default_model.TRAIN_CSV), _rows(default_model.TEST_CSV)
    assert train_rows.shape == (455, 31) and test_rows.shape == (114, 31)
    assert set(np.unique(train_rows[:, 0])) == {0.0, 1.0}
    assert not default_model.TRAIN_CSV.read_text().splitlines()[0][0].isalpha()


# The container loads the extension-less ``xgboost-model`` the same way; xgboost guesses UBJSON.
@pytest.mark.filterwarnings("ignore:.*Unknown file format.*:UserWarning")
def test_model_predicts_probabilities_that_separate_the_held_out_set(tmp_path: Path) -> None:
    booster = _load_like_the_container(tmp_path)
    test_rows = _rows(default_model.TEST_CSV)
    probabilities = booster.predict(xgb.DMatrix(test_rows[:, 1:]))
    assert booster.num_features() == len(default_model.FEATURE_NAMES) == 30
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    accuracy = ((probabilities > 0.5) == test_rows[:, 0].astype(bool)).mean()
    assert accuracy > 0.93


def test_label_names_follow_the_dataset_target_coding() -> None:
    from sklearn.datasets import load_breast_cancer

    assert tuple(load_breast_cancer().target_names) == default_model.LABEL_NAMES


@pytest.mark.filterwarnings("ignore:.*Unknown file format.*:UserWarning")
def test_baseline_dataset_is_the_models_scores_and_the_training_features_under_a_header(tmp_path: Path) -> None:
    """What captures hold at run time, column for column: the probability the endpoint returns for
    each training row, then that row's features (seed 000's run found a data_type_check violation
    when the label stood there)."""
    with default_model.BASELINE_CSV.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == baseline.header(default_model.FEATURE_NAMES)
    values = np.array(rows[1:], dtype=float)
    train_rows = _rows(default_model.TRAIN_CSV)
    assert values.shape == (train_rows.shape[0], train_rows.shape[1])
    np.testing.assert_array_equal(values[:, 1:], train_rows[:, 1:])
    scores = _load_like_the_container(tmp_path).predict(xgb.DMatrix(train_rows[:, 1:]))
    np.testing.assert_allclose(values[:, 0], scores, rtol=1e-6)
    assert not set(np.unique(values[:, 0])) <= {0.0, 1.0}  # fractional, not the integral label
