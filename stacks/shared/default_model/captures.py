"""Sample capture files for a first look: the bundled held-out rows as SageMaker's data capture writes them.

    python -m stacks.shared.default_model.captures [--out DIR]

Writes two JSON Lines files into ``DIR`` (default: ``samples/captures/`` at the repository root,
where they are committed), in SageMaker's data-capture layout for the bundled model (``text/csv``
in, the score out as ``text/csv; charset=utf-8``): one request a line, one row a request, compact
JSON with the keys in SageMaker's order (``captureData`` -> ``endpointInput``, ``endpointOutput``;
``eventMetadata`` -> ``eventId``, ``inferenceTime``; ``eventVersion`` "0")::

    {"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"12.47,18.6,...","encoding":"CSV"},
     "endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.99...","encoding":"CSV"}},
     "eventMetadata":{"eventId":"<uuid>","inferenceTime":"2026-11-22T10:00:00Z"},"eventVersion":"0"}

- ``held-out.jsonl``: the 114 held-out rows of ``artifacts/test.csv`` (its label dropped: the
  endpoint never sees it), each answered with the bundled model's score (``model.tar.gz``, XGBoost,
  as the serving container computes it: test.csv carries no score). Against the bundled baseline
  (``baseline.csv``) nothing drifts: ``make drift-report`` finds no violation.
- ``shifted.jsonl``: the same rows with three features moved by a multiple of their standard
  deviation in the baseline (``SHIFTS``; the population standard deviation of the column in
  ``baseline.csv``): ``mean_texture`` +1.0 sd (+4.26), ``worst_area`` +1.5 sd (+851) and
  ``smoothness_error`` -2.0 sd (-0.00611, which takes 75 of the 114 values below the baseline's
  minimum). The scores are the model's on the unshifted rows, so only the inputs moved: the drift
  report flags exactly these three features (distances 0.43, 0.75 and 0.77, each against a KS
  critical value of about 0.23 for 114 rows: Holm's family-wise level over 31 columns).
- ``held-out-labels.jsonl``: ground truth for ``held-out.jsonl`` in Model Monitor's format with the
  app's ``sampling`` object, as the default configuration's review would have chosen its rows (capture
  sampling 100 %): every row the review rule selects (0.1 < score < 0.9) with inclusion probability 1
  (``selectedBy: rule``), and the rows of the others that the capture filter's own audit draw
  (``lambdas.capture.selection.Audit``, ``review.audit_percentage``'s default 2 %) picks, with
  probability 0.02 (``selectedBy: audit``), each answered with its true label.
  ``make quality-report LABELS=samples/captures/held-out-labels.jsonl`` joins them with the captures:
  realized figures weighted by 1/probability beside the unweighted ones and the estimate.

Reproducible: the rows, the model and the shifts are fixed, numbers are written in Python's
shortest round-trip form, event ids are UUIDs derived from the file and the line (``uuid5``), and
inference times are 30 seconds apart from 10:00 (held-out) and 11:00 (shifted) on 2026-11-22, so
every run writes the same bytes (a test checks the committed files). The scores need XGBoost (a test
dependency, in ``requirements-dev.txt``). The tests build their capture lines with ``capture_line``
and their shifted rows with ``shift``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tarfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lambdas.capture.selection import Audit, SelectionRule
from stacks.shared.default_model import BASELINE_CSV, FEATURE_NAMES, MODEL_ARTIFACT, TEST_CSV

ROOT = Path(__file__).resolve().parents[3]
SAMPLES_DIR = ROOT / "samples" / "captures"
HELD_OUT, SHIFTED = "held-out.jsonl", "shifted.jsonl"
HELD_OUT_LABELS = "held-out-labels.jsonl"
# Feature -> shift in standard deviations of the feature in the baseline dataset.
SHIFTS: dict[str, float] = {"mean_texture": 1.0, "worst_area": 1.5, "smoothness_error": -2.0}
START = {HELD_OUT: dt.datetime(2026, 11, 22, 10, tzinfo=dt.UTC), SHIFTED: dt.datetime(2026, 11, 22, 11, tzinfo=dt.UTC)}
SPACING = dt.timedelta(seconds=30)
# uuid5's namespace for the event ids (a fixed, arbitrary UUID: the ids only need to be unique and stable).
EVENT_NAMESPACE = uuid.UUID("6f1d1c52-3c1e-4d5e-9a56-0d2f3b7a9c10")
INPUT_TYPE, OUTPUT_TYPE = "text/csv", "text/csv; charset=utf-8"


def capture_line(features: Sequence[float | str], score: float | str, *, event_id: str, inference_time: str) -> str:
    """One request of one row as SageMaker's data capture writes it for a ``text/csv`` model: numbers
    in Python's shortest round-trip form (text as it is), compact JSON in SageMaker's key order."""
    text = [value if isinstance(value, str) else repr(float(value)) for value in features]
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {"observedContentType": INPUT_TYPE, "mode": "INPUT", "data": ",".join(text), "encoding": "CSV"},
                "endpointOutput": {
                    "observedContentType": OUTPUT_TYPE, "mode": "OUTPUT",
                    "data": score if isinstance(score, str) else repr(float(score)), "encoding": "CSV",
                },  # fmt: skip
            },
            "eventMetadata": {"eventId": event_id, "inferenceTime": inference_time},
            "eventVersion": "0",
        },
        separators=(",", ":"),
    )


def scores(features: np.ndarray) -> np.ndarray:
    """The bundled model's score of each row, as the serving container computes it."""
    import xgboost as xgb  # a test dependency: only generating the files needs it

    with tarfile.open(MODEL_ARTIFACT) as tar:
        booster = xgb.Booster()
        booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    return booster.predict(xgb.DMatrix(features))


def held_out() -> np.ndarray:
    """The held-out rows as captures hold them: the model's score, then the 30 features."""
    features = np.loadtxt(TEST_CSV, delimiter=",")[:, 1:]
    return np.column_stack([scores(features), features])


def shift(table: np.ndarray) -> np.ndarray:
    """``table`` (score, then features) with each feature of ``SHIFTS`` moved by its multiple of the
    baseline's standard deviation; the scores kept (only the inputs moved)."""
    baseline = np.loadtxt(BASELINE_CSV, delimiter=",", skiprows=1)  # probability, then the features
    shifted = table.copy()
    for name, sds in SHIFTS.items():
        index = 1 + FEATURE_NAMES.index(name)
        shifted[:, index] += sds * baseline[:, index].std()
    return shifted


def capture_text(table: np.ndarray, name: str) -> str:
    """The capture file ``name`` of ``table`` (score, then features): one line a row."""
    lines = []
    for number, row in enumerate(table.tolist()):
        event_id = str(uuid.uuid5(EVENT_NAMESPACE, f"{name}:{number}"))
        time = (START[name] + number * SPACING).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(capture_line(row[1:], row[0], event_id=event_id, inference_time=time) + "\n")
    return "".join(lines)


def labels_text(table: np.ndarray, labels: np.ndarray, name: str = HELD_OUT) -> str:
    """Ground-truth lines for the capture file ``name`` of ``table``: the rule's rows and an audit sample."""
    from stacks.shared.config import ReviewConfig  # the defaults: review.lower, upper, audit_percentage

    defaults = {name: field.default for name, field in ReviewConfig.model_fields.items()}
    rule = SelectionRule(lower=defaults["lower"], upper=defaults["upper"])
    audit = Audit(defaults["audit_percentage"])
    lines = []
    for number, (score, label) in enumerate(zip(table[:, 0].tolist(), labels.tolist(), strict=True)):
        event_id = str(uuid.uuid5(EVENT_NAMESPACE, f"{name}:{number}"))
        if rule.selects_prediction(score, int(score >= 0.5)):
            sampling = {"inclusionProbability": 1.0, "selectedBy": "rule"}
        elif audit.selects(event_id, 0):
            sampling = {"inclusionProbability": audit.fraction, "selectedBy": "audit"}
        else:
            continue
        line = {"groundTruthData": {"data": str(int(label)), "encoding": "CSV"}, "eventMetadata": {"eventId": event_id}, "eventVersion": "0", "sampling": sampling}
        lines.append(json.dumps(line, separators=(",", ":")) + "\n")
    return "".join(lines)


def build(out: Path = SAMPLES_DIR) -> list[Path]:
    """Write the three files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    table = held_out()
    paths = []
    for name, rows in ((HELD_OUT, table), (SHIFTED, shift(table))):
        path = out / name
        path.write_text(capture_text(rows, name), encoding="utf-8")
        paths.append(path)
    path = out / HELD_OUT_LABELS
    path.write_text(labels_text(table, np.loadtxt(TEST_CSV, delimiter=",")[:, 0]), encoding="utf-8")
    paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.shared.default_model.captures", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR, help=f"folder for {HELD_OUT}, {SHIFTED} and {HELD_OUT_LABELS} (default: samples/captures/)")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
