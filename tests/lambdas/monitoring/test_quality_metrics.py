"""Every realized figure equals scikit-learn's on the same rows and weights (to 1e-9): on random
rows with tied scores, and on an uploaded ground-truth file joined with capture files through the
monitor's own join (the capture parser, multi-row requests, inference IDs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as sk

from lambdas.capture.records import ParseOptions
from lambdas.monitoring.quality import labels as ground_truth, metrics
from lambdas.monitoring.quality.evaluation import LABELLED, WEIGHTED, Captured, evaluate


def scikit_learn(y, p, yhat, w) -> dict[str, float]:
    """scikit-learn's figure for each of ours (None: unweighted)."""
    tn, fp, fn, tp = sk.confusion_matrix(y, yhat, sample_weight=w, labels=[0, 1]).ravel()
    everything = np.ones_like(y)
    return {
        "accuracy": sk.accuracy_score(y, yhat, sample_weight=w),
        "precision": sk.precision_score(y, yhat, sample_weight=w),
        "recall": sk.recall_score(y, yhat, sample_weight=w),
        "true_positive_rate": sk.recall_score(y, yhat, sample_weight=w),
        "true_negative_rate": sk.recall_score(1 - y, 1 - yhat, sample_weight=w),
        "false_positive_rate": fp / (fp + tn),
        "false_negative_rate": fn / (fn + tp),
        "f0_5": sk.fbeta_score(y, yhat, beta=0.5, sample_weight=w),
        "f1": sk.f1_score(y, yhat, sample_weight=w),
        "f2": sk.fbeta_score(y, yhat, beta=2, sample_weight=w),
        "auc": sk.roc_auc_score(y, p, sample_weight=w),
        "log_loss": sk.log_loss(y, p, sample_weight=w),
        "brier_score": sk.brier_score_loss(y, p, sample_weight=w),
        # Model Monitor's "best constant classifier" is the one that always predicts 1 (its example's figures).
        "accuracy_best_constant_classifier": sk.accuracy_score(y, everything, sample_weight=w),
        "precision_best_constant_classifier": sk.precision_score(y, everything, sample_weight=w),
        "recall_best_constant_classifier": sk.recall_score(y, everything, sample_weight=w),
        "f1_best_constant_classifier": sk.f1_score(y, everything, sample_weight=w),
        "f0_5_best_constant_classifier": sk.fbeta_score(y, everything, beta=0.5, sample_weight=w),
        "f2_best_constant_classifier": sk.fbeta_score(y, everything, beta=2, sample_weight=w),
    }


def assert_equal_to_scikit_learn(figures: metrics.Figures, y, p, yhat, w) -> None:
    expected = scikit_learn(y, p, yhat, w)
    assert set(expected) == set(figures.figures)
    for name, value in expected.items():
        assert figures.value(name) == pytest.approx(value, abs=1e-9, rel=0), name
    matrix = sk.confusion_matrix(y, yhat, sample_weight=w, labels=[0, 1])
    assert [figures.confusion[t][q] for t in "01" for q in "01"] == pytest.approx(matrix.ravel().tolist(), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weighted", [False, True])
def test_every_figure_equals_scikit_learns_on_random_rows_with_ties(seed, weighted):
    rng = np.random.default_rng(seed)
    n = 400
    p = np.round(rng.beta(0.6, 0.6, n), 2)  # rounded: many tied scores, and some exactly 0 and 1
    p[:5], p[5:10] = 0.0, 1.0
    y = (rng.random(n) < p).astype(int)
    yhat = (p >= 0.5).astype(int)
    w = rng.choice([1.0, 50.0, 1 / 0.34, 1 / 0.0068], n) if weighted else None
    figures = metrics.compute(y, p, yhat, w)
    assert_equal_to_scikit_learn(figures, y, p, yhat, w)
    assert figures.rows == n and figures.weight == pytest.approx(n if w is None else w.sum())


def test_unweighted_standard_errors_are_the_textbook_ones():
    """Accuracy: the binomial sqrt(R (1 - R) / (n - 1)); AUC: DeLong's (placement values), here
    computed directly from its definition."""
    rng = np.random.default_rng(7)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(int)
    yhat = (p >= 0.5).astype(int)
    figures = metrics.compute(y, p, yhat)
    accuracy = figures.figures["accuracy"]
    assert accuracy.standard_error == pytest.approx(np.sqrt(accuracy.value * (1 - accuracy.value) / 299), rel=1e-12)
    positives, negatives = p[y == 1], p[y == 0]
    outranks = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
    v10, v01 = outranks.mean(axis=1), outranks.mean(axis=0)
    m, k = len(positives), len(negatives)
    auc = outranks.mean()
    delong = ((v10 - auc) ** 2).sum() / m**2 + ((v01 - auc) ** 2).sum() / k**2
    assert figures.figures["auc"].standard_error == pytest.approx(np.sqrt(delong * 300 / 299), rel=1e-9)


def test_intervals_hold_the_figure_and_stay_inside_zero_and_one():
    y = np.array([1] * 20)
    p = np.linspace(0.6, 0.99, 20)
    figures = metrics.compute(y, p, (p >= 0.5).astype(int))
    accuracy = figures.figures["accuracy"]
    assert accuracy.value == 1.0 and accuracy.standard_error == 0.0
    # Wilson at n = 20 when every row is right: an interval below 1, not [1, 1].
    assert accuracy.low == pytest.approx(20 / (20 + metrics.Z95**2)) and accuracy.high == 1.0
    assert not figures.figures["auc"].defined  # one class only: undefined, written "NaN" as Model Monitor does
    assert figures.figures["auc"].document() == {"value": "NaN", "standard_deviation": "NaN"}


# --- through the real join --------------------------------------------------------------------


def capture_line(event_id: str, rows: list[list[float]], scores: list[float], inference_id: str | None = None) -> str:
    metadata = {"eventId": event_id, "inferenceTime": "2026-11-22T10:00:00Z"}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "\n".join(",".join(map(repr, r)) for r in rows), "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT", "data": "\n".join(map(repr, scores)), "encoding": "CSV"},
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    })  # fmt: skip


def test_an_uploaded_ground_truth_file_joined_with_capture_files_gives_scikit_learns_figures():
    """Three capture files (requests of one to three rows; some callers give an inference ID, which
    is then the record ID) and one uploaded ground-truth file: a label for each of 150 rows by
    (record ID, row index), half with an inclusion probability, in shuffled order."""
    rng = np.random.default_rng(11)
    files, truth, lines = [], {}, []
    row = 0
    for file in range(3):
        text = []
        for request in range(40):
            width = 1 + (request % 3)
            scores = [round(float(s), 3) for s in rng.beta(0.5, 0.5, width)]
            inference = f"inf-{file}-{request}" if request % 4 == 0 else None
            event = f"evt-{file}-{request}"
            text.append(capture_line(event, [[1.0, 2.0]] * width, scores, inference))
            for index, score in enumerate(scores):
                record_id = inference or event
                label = int(rng.random() < score)
                probability = [1.0, 0.5, 0.02, None][row % 4]
                truth[(record_id, index)] = (label, score, probability)
                record = {"groundTruthData": {"data": str(label), "encoding": "CSV"}, "eventMetadata": {"eventId": record_id, "rowIndex": index}, "eventVersion": "0"}
                if probability is not None:
                    record["sampling"] = {"inclusionProbability": probability, "selectedBy": "audit" if probability < 1 else "rule"}
                lines.append(json.dumps(record))
                row += 1
        files.append(("\n".join(text) + "\n").encode())
    order = rng.permutation(len(lines))
    upload = ("\n".join(lines[i] for i in order) + "\n").encode()

    found, rejected = ground_truth.read_file(upload, "ground-truth/2026/11/22/12/upload.jsonl", "2026-11-22T12:00:00Z")
    assert not rejected and len(found) == len(truth) == row
    latest = ground_truth.latest(found)
    captured = Captured(latest.labels, ParseOptions(threshold=0.5))
    for body in files:
        captured.add(body)
    evaluation = evaluate(captured, latest, threshold=0.5, calibration=None, calibration_note="none", constraints={}, estimate_on=False)
    assert evaluation.joined == row and captured.rows == row

    keys = sorted(truth)
    y = np.array([truth[k][0] for k in keys])
    p = np.array([truth[k][1] for k in keys])
    yhat = (p >= 0.5).astype(int)
    assert_equal_to_scikit_learn(evaluation.bases[LABELLED], y, p, yhat, None)
    known = np.array([truth[k][2] is not None for k in keys])
    weights = np.array([1 / truth[k][2] for k in keys if truth[k][2] is not None])
    assert_equal_to_scikit_learn(evaluation.bases[WEIGHTED], y[known], p[known], yhat[known], weights)
    assert evaluation.primary == WEIGHTED and evaluation.without_probability == (~known).sum()
