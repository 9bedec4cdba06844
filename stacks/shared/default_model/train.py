"""Train the bundled breast-cancer XGBoost model (seed 000) reproducibly.

    python -m stacks.shared.default_model.train [--out DIR]

Writes ``model.tar.gz`` (an ``xgboost-model`` file, as the SageMaker XGBoost container loads it),
``train.csv`` and ``test.csv`` (label first, no header: the container's CSV training format) and
``baseline.csv`` (the data-quality baseline: a header row, then for each training row the model's
score and the features, as captures hold them; ``lambdas/shared/baseline.py``) and ``test-scores.csv``
(the model-quality baseline: ``label,probability``, then each test row's label and the model's
probability for it) into ``DIR``
(default: the ``artifacts`` folder beside this file, which the stacks deploy as assets).

Everything is fixed so that two runs give the same bytes: scikit-learn's bundled dataset (no
download), ``random_state=42`` for the split, ``seed=0`` and one thread for XGBoost, and a tarball
with zeroed timestamps and owners.
"""

from __future__ import annotations

import argparse
import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from lambdas.shared.baseline import header
from stacks.shared.default_model import ARTIFACTS_DIR, BASELINE_CSV, FEATURE_NAMES, HYPERPARAMETERS, TEST_SCORES_CSV

# The SageMaker XGBoost container loads ``xgboost-model`` from the artifact; training with the
# same major.minor as the container image (``framework_version`` 3.2-0) keeps the format readable.
MODEL_FILE_NAME = "xgboost-model"
TEST_SIZE = 0.2
SPLIT_RANDOM_STATE = 42


def split_dataset() -> tuple[np.ndarray, np.ndarray]:
    """Label-first rows of the breast-cancer set, split 80/20 as seed 000 does."""
    data = load_breast_cancer()
    rows = np.column_stack([data.target.astype(float), data.data])
    train, test = train_test_split(rows, test_size=TEST_SIZE, random_state=SPLIT_RANDOM_STATE)
    return train, test


def train_booster(train: np.ndarray, validation: np.ndarray) -> xgb.Booster:
    params = {k: v for k, v in HYPERPARAMETERS.items() if k != "num_round"}
    params.update({"seed": 0, "nthread": 1, "eval_metric": "logloss"})
    dtrain = xgb.DMatrix(train[:, 1:], label=train[:, 0])
    dvalid = xgb.DMatrix(validation[:, 1:], label=validation[:, 0])
    return xgb.train(
        params,
        dtrain,
        num_boost_round=int(HYPERPARAMETERS["num_round"]),
        evals=[(dtrain, "train"), (dvalid, "validation")],
        verbose_eval=False,
    )


def write_csv(rows: np.ndarray, path: Path) -> None:
    # repr-exact floats and an integer label, as the seed's pandas ``to_csv`` wrote them.
    with path.open("w", newline="\n") as out:
        for row in rows:
            out.write(",".join([str(int(row[0]))] + [repr(float(v)) for v in row[1:]]) + "\n")


def write_baseline_csv(booster: xgb.Booster, train: np.ndarray, path: Path) -> None:
    """The header, then each training row's predicted probability followed by its features."""
    scores = booster.predict(xgb.DMatrix(train[:, 1:]))
    with path.open("w", newline="\n") as out:
        out.write(",".join(header(FEATURE_NAMES)) + "\n")
        for score, row in zip(scores, train, strict=True):
            out.write(",".join([repr(float(score))] + [repr(float(v)) for v in row[1:]]) + "\n")


def write_test_scores_csv(booster: xgb.Booster, test: np.ndarray, path: Path) -> None:
    """``label,probability``, then each test row's label and the model's probability for it."""
    scores = booster.predict(xgb.DMatrix(test[:, 1:]))
    with path.open("w", newline="\n") as out:
        out.write("label,probability\n")
        for score, row in zip(scores, test, strict=True):
            out.write(f"{int(row[0])},{float(score)!r}\n")


def write_model_tarball(booster: xgb.Booster, path: Path) -> None:
    model_bytes = booster.save_raw(raw_format="ubj")
    info = tarfile.TarInfo(MODEL_FILE_NAME)
    info.size = len(model_bytes)
    info.mtime = 0
    info.mode = 0o644
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(model_bytes))
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(buffer.getvalue())


def build(out_dir: Path) -> xgb.Booster:
    out_dir.mkdir(parents=True, exist_ok=True)
    train, test = split_dataset()
    booster = train_booster(train, test)
    write_csv(train, out_dir / "train.csv")
    write_csv(test, out_dir / "test.csv")
    write_model_tarball(booster, out_dir / "model.tar.gz")
    write_baseline_csv(booster, train, out_dir / BASELINE_CSV.name)
    write_test_scores_csv(booster, test, out_dir / TEST_SCORES_CSV.name)
    return booster


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ARTIFACTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    build(args.out)
    print(f"wrote model.tar.gz, train.csv, test.csv, {BASELINE_CSV.name}, {TEST_SCORES_CSV.name} to {args.out}")


if __name__ == "__main__":
    main()
