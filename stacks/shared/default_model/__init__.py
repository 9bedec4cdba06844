"""The model the app serves when configuration names none: seed 000's breast-cancer XGBoost.

The artefacts in ``artifacts/`` are produced by ``python -m stacks.shared.default_model.train`` (``make model``) and
committed, so synthesising needs neither XGBoost nor scikit-learn; a test retrains and checks the
committed files are exactly what the script produces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
MODEL_ARTIFACT = ARTIFACTS_DIR / "model.tar.gz"
TRAIN_CSV = ARTIFACTS_DIR / "train.csv"
TEST_CSV = ARTIFACTS_DIR / "test.csv"
# The data-quality baseline: a header row, then the model's score and the features of each training
# row (lambdas/shared/baseline.py).
BASELINE_CSV = ARTIFACTS_DIR / "baseline.csv"
# The model-quality baseline: a header row ``label,probability``, then each test row's label and the
# model's probability for it (lambdas/monitoring/quality/documents.py).
TEST_SCORES_CSV = ARTIFACTS_DIR / "test-scores.csv"
DATASETS = (TRAIN_CSV, TEST_CSV, BASELINE_CSV, TEST_SCORES_CSV)

# The SageMaker XGBoost container this artefact is trained for (xgboost 3.2 on PyPI).
FRAMEWORK = "xgboost"
FRAMEWORK_VERSION = "3.2-0"
CONTENT_TYPE = "text/csv"

# Seed 000's hyperparameters, which retraining reuses.
HYPERPARAMETERS: dict[str, str] = {
    "max_depth": "5",
    "eta": "0.2",
    "gamma": "4",
    "min_child_weight": "6",
    "subsample": "0.8",
    "objective": "binary:logistic",
    "num_round": "100",
}

# scikit-learn's ``load_breast_cancer().feature_names`` with spaces as underscores, so each name
# is usable in CloudWatch metric names, JMESPath expressions and HTML form field names.
FEATURE_NAMES: tuple[str, ...] = (
    "mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness",
    "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry",
    "mean_fractal_dimension", "radius_error", "texture_error", "perimeter_error", "area_error",
    "smoothness_error", "compactness_error", "concavity_error", "concave_points_error",
    "symmetry_error", "fractal_dimension_error", "worst_radius", "worst_texture",
    "worst_perimeter", "worst_area", "worst_smoothness", "worst_compactness", "worst_concavity",
    "worst_concave_points", "worst_symmetry", "worst_fractal_dimension",
)  # fmt: skip

# The dataset's own target coding: 0 is malignant, 1 is benign (``load_breast_cancer().target_names``).
# Seed 000's task template says "0 Benign, 1 Malignant", which contradicts the data it trains on.
LABEL_NAMES: tuple[str, ...] = ("malignant", "benign")


def content_hash(*paths: Path) -> str:
    """Short SHA-256 over file contents: a key prefix that changes exactly when the model does."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
