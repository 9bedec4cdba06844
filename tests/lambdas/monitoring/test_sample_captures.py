"""The sample capture files (``samples/captures/``): exactly what their generator writes, in
SageMaker's data-capture layout, and what the two local commands make of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stacks.shared.default_model import BASELINE_CSV, FEATURE_NAMES, captures
from tests.conftest import ROOT

FILES = (captures.HELD_OUT, captures.SHIFTED)
GENERATED = (*FILES, captures.HELD_OUT_LABELS)


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)


def test_the_committed_samples_are_exactly_what_the_generator_writes(tmp_path: Path) -> None:
    made = run("-m", "stacks.shared.default_model.captures", "--out", tmp_path)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(GENERATED)
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (captures.SAMPLES_DIR / name).read_bytes(), f"{name}: run python -m stacks.shared.default_model.captures"


@pytest.mark.parametrize("name", FILES)
def test_each_line_is_one_request_in_sagemakers_capture_layout(name: str) -> None:
    lines = (captures.SAMPLES_DIR / name).read_text().splitlines()
    assert len(lines) == 114
    ids = set()
    for line in lines:
        assert ": " not in line and ", " not in line  # compact, as data capture writes it
        record = json.loads(line)
        assert list(record) == ["captureData", "eventMetadata", "eventVersion"] and record["eventVersion"] == "0"
        request, response = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
        assert list(request) == list(response) == ["observedContentType", "mode", "data", "encoding"]
        assert (request["observedContentType"], request["mode"], request["encoding"]) == ("text/csv", "INPUT", "CSV")
        assert (response["observedContentType"], response["mode"], response["encoding"]) == ("text/csv; charset=utf-8", "OUTPUT", "CSV")
        assert len(request["data"].split(",")) == len(FEATURE_NAMES) and 0 <= float(response["data"]) <= 1
        assert list(record["eventMetadata"]) == ["eventId", "inferenceTime"]
        ids.add(record["eventMetadata"]["eventId"])
    assert len(ids) == 114


def test_the_shifted_file_moves_the_documented_features_by_the_documented_amounts() -> None:
    def table(name: str) -> np.ndarray:
        rows = [json.loads(line)["captureData"] for line in (captures.SAMPLES_DIR / name).read_text().splitlines()]
        return np.array([[float(r["endpointOutput"]["data"]), *map(float, r["endpointInput"]["data"].split(","))] for r in rows])

    held_out, shifted = table(captures.HELD_OUT), table(captures.SHIFTED)
    baseline = np.loadtxt(BASELINE_CSV, delimiter=",", skiprows=1)
    moved = {FEATURE_NAMES[i - 1] for i in range(1, held_out.shape[1]) if not np.array_equal(held_out[:, i], shifted[:, i])}
    assert moved == set(captures.SHIFTS) and np.array_equal(held_out[:, 0], shifted[:, 0])  # scores kept
    for name, sds in captures.SHIFTS.items():
        index = 1 + FEATURE_NAMES.index(name)
        amount = sds * baseline[:, index].std()
        assert np.allclose(shifted[:, index] - held_out[:, index], amount, rtol=1e-9, atol=1e-12)
        assert f"``{name}`` {sds:+.1f} sd ({amount:+.3g}" in " ".join(captures.__doc__.split())  # the docstring says so


def test_the_drift_report_flags_the_three_shifted_features_and_nothing_in_the_held_out_file(tmp_path: Path) -> None:
    shifted = run("-m", "local.drift_report", captures.SAMPLES_DIR / captures.SHIFTED, "--out", tmp_path / "shifted")
    assert shifted.returncode == 0, shifted.stderr
    violations = json.loads((tmp_path / "shifted" / "constraint_violations.json").read_text())["violations"]
    assert sorted((v["feature_name"], v["constraint_check_type"]) for v in violations) == sorted((f, "baseline_drift_check") for f in captures.SHIFTS)
    assert "114 rows profiled, 0 rejected" in shifted.stdout and "3 violation(s) in 3 feature(s)" in shifted.stdout
    held_out = run("-m", "local.drift_report", captures.SAMPLES_DIR / captures.HELD_OUT, "--out", tmp_path / "held-out")
    assert held_out.returncode == 0, held_out.stderr
    assert json.loads((tmp_path / "held-out" / "constraint_violations.json").read_text()) == {"violations": []}
    assert "114 rows profiled, 0 rejected" in held_out.stdout and "; no violations;" in held_out.stdout


def test_the_review_preview_reads_the_held_out_file() -> None:
    preview = run("-m", "local.review_preview", captures.SAMPLES_DIR / captures.HELD_OUT)
    assert preview.returncode == 0, preview.stderr
    selected = [json.loads(line) for line in preview.stdout.splitlines() if line.startswith("{")]
    assert selected and all(0.1 < s["probability"] < 0.9 for s in selected)  # the default band
    assert "records read: 114, rows: 114" in preview.stdout + preview.stderr


def test_the_sample_labels_are_what_review_would_have_chosen_and_the_weighted_accuracy_is_unbiased(tmp_path: Path) -> None:
    lines = [json.loads(line) for line in (captures.SAMPLES_DIR / captures.HELD_OUT_LABELS).read_text().splitlines()]
    by = {kind: [line for line in lines if line["sampling"]["selectedBy"] == kind] for kind in ("rule", "audit")}
    assert len(by["rule"]) + len(by["audit"]) == len(lines) and by["rule"] and by["audit"]
    assert {line["sampling"]["inclusionProbability"] for line in by["audit"]} == {0.02}  # review.audit_percentage's default
    made = run("-m", "local.quality_report", "--env", "dev", "--out", tmp_path, captures.SAMPLES_DIR / captures.HELD_OUT,
               "--labels", captures.SAMPLES_DIR / captures.HELD_OUT_LABELS)  # fmt: skip
    assert made.returncode == 0, made.stderr
    test = np.loadtxt(captures.TEST_CSV, delimiter=",")
    held_out = captures.held_out()
    truth = float(np.mean((held_out[:, 0] >= 0.5) == test[:, 0]))  # the accuracy over all 114 predictions
    figures = json.loads((tmp_path / "statistics.json").read_text())["binary_classification_metrics"]
    weighted = figures["accuracy"]["value"]
    reviewed = sum((line["groundTruthData"]["data"] == "1") == (score >= 0.5) for line, score in _scores(lines, held_out)) / len(lines)
    # The reviewers' rows alone are the uncertain ones: their accuracy is far below the truth; weighted by
    # 1/probability the same labels estimate the accuracy over every prediction.
    assert reviewed < truth - 0.05 and abs(weighted - truth) < 0.02


def _scores(lines: list[dict], held_out: np.ndarray) -> list[tuple[dict, float]]:
    import uuid

    ids = {str(uuid.uuid5(captures.EVENT_NAMESPACE, f"{captures.HELD_OUT}:{n}")): n for n in range(len(held_out))}
    return [(line, float(held_out[ids[line["eventMetadata"]["eventId"]], 0])) for line in lines]
