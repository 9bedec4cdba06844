"""The rehearsal's requests: ``(at, label, features)``, spread evenly over the hours, in order.

- ``default(env, hours)``: the environment's bundled data. For the bundled breast-cancer model
  (``dev``, ``prod``) the bundled rows (``artifacts/train.csv`` then ``test.csv``, 569 rows: label,
  then the 30 features) in a seeded shuffled order, repeated as needed, ``DEFAULT_PER_HOUR``
  requests an hour. From the middle of the run (the first request at or after ``start + hours / 2``)
  three features are shifted, by the same documented amounts as the shipped sample
  ``samples/captures/shifted.jsonl`` (``stacks.shared.default_model.captures.SHIFTS``, in standard
  deviations of the feature in the bundled baseline, applied by its ``shift``): ``mean_texture``
  +1.0 sd (+4.26), ``worst_area`` +1.5 sd (+851), ``smoothness_error`` -2.0 sd (-0.00611). The labels
  stay the rows' own (only the inputs move). Why these are enough: the hourly data-quality monitor
  (``lambdas/monitoring/drift``) flags a column when its KS distance to the baseline passes Holm's
  critical value at family-wise alpha 0.003 over 31 columns; with 120 rows an hour against the 455
  baseline rows that value is about 0.23 for the first column, and a 1 sd shift of a roughly normal
  feature moves its distribution by about 0.38 (2 Phi(0.5) - 1), the larger shifts further.
  tests/local/rehearse/test_traffic.py runs the monitor's own evaluation on every hour of a default
  day: from the middle each shifted feature is flagged in at least 10 of the 12 hours (and the
  model's score with them), no other feature is; before the middle nothing is
  shifted and the same test finds no drift.
- For an environment whose model and data are placeholders (an ``artifact_s3_uri`` with
  ``REPLACE-ME``: churn, income), there is no data to bundle: synthetic rows of the declared
  features (each standard normal; the label drawn from a logistic model of a seeded linear
  combination) and a stand-in model trained on them (``Traffic.artefact``, XGBoost, binary:logistic,
  ``Traffic.training`` its training rows, label first), with a note saying so. The first three
  declared features are shifted by +1.5 (sd) from the middle.
- ``from_csv(path, hours)``: a user's file without header, label first then the model's features,
  one request a line, spread evenly over ``hours`` in order. A line that cannot be read (a label that
  is not a whole number, a value that is not a number, a different number of columns than the
  first good line, or than ``feature_names`` when given: the environment's model's) is kept in
  ``Traffic.rejected`` with its line number and reason, and named in the notes; the rest is used.

Development only: never deployed.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from stacks.shared import default_model
from stacks.shared.default_model import captures

START = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)  # a Monday, 00:00 UTC: the default when a caller gives no start (the rehearsal passes its own, clock.DEFAULT_START)
DEFAULT_PER_HOUR = 120  # requests an hour of the default traffic: enough for the hourly monitor to judge the shifts (module docstring)
PLACEHOLDER = "REPLACE-ME"
SYNTHETIC_SHIFT_SDS = 1.5  # the shift of the synthetic data's three features, in their standard deviations (1)
SYNTHETIC_TRAINING_ROWS = 2_000


class Request(NamedTuple):
    at: dt.datetime
    label: int
    features: tuple[float, ...]

    def body(self) -> str:
        """The request's ``text/csv`` body: the features, numbers in Python's shortest round-trip form."""
        return ",".join(repr(float(value)) for value in self.features)


class Traffic(list):
    """The requests (a list of ``Request``: ``(at, label, features)``), and what the run should know
    about them: ``feature_names``, ``shifted`` (feature -> shift in the feature's units, from
    ``shift_from``), ``notes`` (plain sentences for the summary), ``rejected`` ((line, reason) of a
    TRAFFIC file), ``artefact`` (a stand-in model.tar.gz when the environment's model is a
    placeholder, else None), ``training`` (its training rows, label first, CSV text) and ``objects``
    (each placeholder URI of the configuration -> what it should hold, for ``Cloud.start(objects=...)``)."""

    def __init__(self, requests: list[Request], *, feature_names: tuple[str, ...], shifted: dict[str, float] | None = None,
                 shift_from: dt.datetime | None = None, notes: list[str] | None = None) -> None:  # fmt: skip
        super().__init__(requests)
        self.feature_names = feature_names
        self.shifted = shifted or {}
        self.shift_from = shift_from
        self.notes = notes or []
        self.rejected: list[tuple[int, str]] = []
        self.artefact: bytes | None = None
        self.training: str | None = None
        self.objects: dict[str, bytes] = {}  # placeholder URI -> what it should hold (Cloud.start(objects=...))


def times(count: int, hours: float, start: dt.datetime = START) -> list[dt.datetime]:
    """``count`` instants spread evenly over ``hours`` from ``start``, in order (the first at ``start``)."""
    if hours <= 0:
        raise ValueError(f"hours must be positive: got {hours}")
    step = hours * 3600 / count if count else 0
    return [start + dt.timedelta(seconds=round(i * step, 3)) for i in range(count)]


def _config(env: str):
    from stacks.shared.config import load_environment

    return load_environment(env)


def default(env: str = "dev", hours: float = 24, *, start: dt.datetime = START, per_hour: int = DEFAULT_PER_HOUR, seed: int = 0) -> Traffic:
    """The environment's bundled data with three features shifted from the middle (module docstring)."""
    config = _config(env)
    count = max(1, math.ceil(per_hour * hours))
    when = times(count, hours, start)
    middle = start + dt.timedelta(hours=hours / 2)
    first_shifted = next((i for i, at in enumerate(when) if at >= middle), count)
    rng = np.random.default_rng(seed)
    if config.model.is_bundled:
        data = np.vstack([np.loadtxt(default_model.TRAIN_CSV, delimiter=","), np.loadtxt(default_model.TEST_CSV, delimiter=",")])
        order = np.concatenate([rng.permutation(len(data)) for _ in range(math.ceil(count / len(data)))])[:count]
        rows = data[order]
        # captures.shift takes (score, features) rows: the score column is a placeholder it keeps.
        table = rows.copy()
        if first_shifted < count:
            table[first_shifted:] = captures.shift(rows[first_shifted:])
        baseline = np.loadtxt(default_model.BASELINE_CSV, delimiter=",", skiprows=1)
        names = tuple(default_model.FEATURE_NAMES)
        shifted = {name: float(sds * baseline[:, 1 + names.index(name)].std()) for name, sds in captures.SHIFTS.items()}
        notes = [
            f"traffic: the bundled data ({len(data)} rows, shuffled, repeated), {per_hour} requests an hour for {hours:g} h; from "
            f"{middle:%Y-%m-%d %H:%M} UTC " + ", ".join(f"{name} {sds:+g} sd ({shifted[name]:+.4g})" for name, sds in captures.SHIFTS.items())
        ]
        traffic = Traffic(
            [Request(at, int(row[0]), tuple(float(v) for v in row[1:])) for at, row in zip(when, table, strict=True)],
            feature_names=names, shifted=shifted, shift_from=middle, notes=notes,
        )  # fmt: skip
        return traffic
    uri = str(config.model.artifact_s3_uri)
    if PLACEHOLDER not in uri:
        raise ValueError(f"environment {env!r} serves its own model ({uri}) and bundles no data: give TRAFFIC=<csv> (label first, then the model's features)")
    traffic = _synthetic(tuple(config.model.feature_names), count, when, first_shifted, middle, rng, env, uri)
    traffic.objects = _placeholder_objects(config, traffic, rng)
    return traffic


def _placeholder_objects(config, traffic: Traffic, rng: np.random.Generator) -> dict[str, bytes]:
    """What the configuration's placeholder URIs should hold, from the synthetic data and the stand-in
    model: the model artefact, retraining's training (and test) CSV (label first, no header), the
    model-quality baseline (``label,probability`` header, lambdas/monitoring/quality/documents.py) and
    the data-quality baseline (``probability`` then the features, lambdas/shared/baseline.py ``header``).
    A placeholder this cannot fill (code, JSON Lines datasets) is named in the notes."""
    import xgboost as xgb

    from lambdas.shared.baseline import header
    from lambdas.shared.explain.tree import TreeExplainer

    booster = TreeExplainer.from_artifact(io.BytesIO(traffic.artefact), "stand-in").booster
    names = traffic.feature_names
    training = np.loadtxt(io.StringIO(traffic.training), delimiter=",")
    held_out = training[rng.permutation(len(training))[: len(training) // 5]]
    scores = booster.predict(xgb.DMatrix(held_out[:, 1:]))
    csv = "".join(f"{int(row[0])}," + ",".join(repr(float(v)) for v in row[1:]) + "\n" for row in held_out)
    wanted = {
        "model.artifact_s3_uri": (config.model.artifact_s3_uri, traffic.artefact),
        "retraining.training_data_s3_uri": (config.retraining.training_data_s3_uri, traffic.training.encode()),
        "retraining.test_data_s3_uri": (config.retraining.test_data_s3_uri, csv.encode()),
        "monitoring.model_quality.dataset_s3_uri": (
            config.monitoring.model_quality.dataset_s3_uri,
            ("label,probability\n" + "".join(f"{int(label)},{float(score)!r}\n" for label, score in zip(held_out[:, 0], scores, strict=True))).encode(),
        ),
        "monitoring.data_quality.dataset_s3_uri": (
            config.monitoring.data_quality.dataset_s3_uri,
            (",".join(header(names)) + "\n" + "".join(f"{float(score)!r}," + ",".join(repr(float(v)) for v in row) + "\n" for score, row in zip(scores, held_out[:, 1:], strict=True))).encode(),
        ),
    }  # fmt: skip
    objects = {str(uri): body for uri, body in wanted.values() if uri is not None and PLACEHOLDER in str(uri)}
    if objects:
        traffic.notes.append("placeholder objects supplied from the synthetic data: " + ", ".join(f"{name} {uri}" for name, (uri, _) in wanted.items() if str(uri) in objects))
    return objects


def _synthetic(names: tuple[str, ...], count: int, when: list[dt.datetime], first_shifted: int, middle: dt.datetime,
               rng: np.random.Generator, env: str, uri: str) -> Traffic:  # fmt: skip
    import xgboost as xgb

    from local.rehearse.sagemaker import archive

    weights = rng.normal(size=len(names))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        features = rng.normal(size=(n, len(names)))
        labels = (rng.random(n) < 1 / (1 + np.exp(-features @ weights))).astype(int)
        return features, labels

    train_x, train_y = draw(SYNTHETIC_TRAINING_ROWS)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1}, xgb.DMatrix(train_x, label=train_y), num_boost_round=30)
    features, labels = draw(count)
    moved = names[:3]
    features[first_shifted:, : len(moved)] += SYNTHETIC_SHIFT_SDS
    traffic = Traffic(
        [Request(at, int(label), tuple(float(v) for v in row)) for at, label, row in zip(when, labels, features, strict=True)],
        feature_names=names, shifted=dict.fromkeys(moved, SYNTHETIC_SHIFT_SDS), shift_from=middle,
        notes=[
            f"traffic: environment {env!r} names a placeholder model ({uri}) and bundles no data: synthetic rows of its "
            f"{len(names)} declared features (standard normal, labels from a seeded logistic model) and a stand-in XGBoost "
            f"model trained on {SYNTHETIC_TRAINING_ROWS} of them serve instead; from {middle:%Y-%m-%d %H:%M} UTC "
            + ", ".join(f"{name} +{SYNTHETIC_SHIFT_SDS:g} sd" for name in moved)
        ],
    )  # fmt: skip
    traffic.artefact = archive(booster)
    traffic.training = "".join(f"{label}," + ",".join(repr(float(v)) for v in row) + "\n" for label, row in zip(train_y, train_x, strict=True))
    return traffic


def from_csv(path: Path | str, hours: float, *, start: dt.datetime = START, feature_names: tuple[str, ...] | None = None) -> Traffic:
    """A TRAFFIC file (no header, label first then the features, one request a line), spread evenly
    over ``hours`` in order; unreadable lines kept in ``rejected`` with their reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"TRAFFIC {path}: cannot read it ({error})") from None
    good: list[tuple[int, tuple[float, ...]]] = []
    rejected: list[tuple[int, str]] = []
    feature_count = None if feature_names is None else len(feature_names)
    width = feature_count
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        values = [value.strip() for value in line.split(",")]
        try:
            label = int(values[0])
        except ValueError:
            rejected.append((number, f"the label {values[0]!r} is not a whole number (label first, then the features)"))
            continue
        try:
            features = tuple(float(value) for value in values[1:])
        except ValueError as error:
            rejected.append((number, f"a feature is not a number ({error})"))
            continue
        if width is None:
            width = len(features)
        if len(features) != width:
            source = "the environment's model takes" if feature_count is not None else "the first line has"
            rejected.append((number, f"{len(features)} features; {source} {width}"))
            continue
        good.append((label, features))
    if not good:
        raise ValueError(f"TRAFFIC {path}: no usable line (label first, then the model's features, no header)"
                         + (f"; line {rejected[0][0]}: {rejected[0][1]}" if rejected else ""))  # fmt: skip
    when = times(len(good), hours, start)
    traffic = Traffic(
        [Request(at, label, features) for at, (label, features) in zip(when, good, strict=True)],
        feature_names=tuple(feature_names) if feature_names is not None else tuple(f"feature_{i}" for i in range(width or 0)),
        notes=[f"traffic: {path} ({len(good)} requests over {hours:g} h, as given: nothing shifted)"],
    )
    traffic.rejected = rejected
    if rejected:
        traffic.notes.append(f"traffic: {len(rejected)} lines of {path} not used, first line {rejected[0][0]}: {rejected[0][1]}")
    return traffic
