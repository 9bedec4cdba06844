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
  critical value of 0.19 for 114 rows).

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

from stacks.shared.default_model import BASELINE_CSV, FEATURE_NAMES, MODEL_ARTIFACT, TEST_CSV

ROOT = Path(__file__).resolve().parents[3]
SAMPLES_DIR = ROOT / "samples" / "captures"
HELD_OUT, SHIFTED = "held-out.jsonl", "shifted.jsonl"
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


def build(out: Path = SAMPLES_DIR) -> list[Path]:
    """Write both files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    table = held_out()
    paths = []
    for name, rows in ((HELD_OUT, table), (SHIFTED, shift(table))):
        path = out / name
        path.write_text(capture_text(rows, name), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.shared.default_model.captures", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR, help=f"folder for {HELD_OUT} and {SHIFTED} (default: samples/captures/)")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
