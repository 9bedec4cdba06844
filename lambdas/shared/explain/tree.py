"""Exact per-record SHAP values of an XGBoost model: the booster's own TreeSHAP.

``Booster.predict(pred_contribs=True)`` returns, for each record, one contribution per feature plus
the bias (the base value); they add up to the record's margin, the log-odds the model turns into
its probability. This module loads the model from the artefact SageMaker serves (the
``model.tar.gz`` of the XGBoost container, which holds ``xgboost-model``) and explains records the
way the endpoint received them (CSV text or numbers).

Imports XGBoost (from the explain layer, ``requirements.txt`` here): the review starter imports this
module only when attributions are on, the attribution monitor always.
"""

from __future__ import annotations

import json
import math
import tarfile
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
import xgboost as xgb

from lambdas.shared.explain.deployed_model import MAX_ARTIFACT_BYTES, MODEL_FILE
from lambdas.shared.explain.results import RecordAttributions, Unexplainable

# Objectives whose output is a probability, sigmoid(margin): the score the review pipeline reads.
EXPLAINABLE_OBJECTIVES = ("binary:logistic", "reg:logistic")
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the largest value XGBoost reads as a finite float32
# Pickle protocols 2-5 start with this opcode; the app never unpickles (it would run the file's code).
_PICKLE_OPCODE = b"\x80"


def _read_members(archive: IO[bytes], max_bytes: int) -> dict[str, bytes]:
    """Regular files of a gzipped tar stream, read in one pass (no seeking, nothing written to disk)."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=archive, mode="r|gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                total += member.size
                if total > max_bytes:
                    raise Unexplainable(f"the model artefact unpacks to more than {max_bytes // 2**20} MB, more than the app loads")
                stream = tar.extractfile(member)
                files[member.name] = stream.read() if stream else b""
    except (tarfile.TarError, EOFError, OSError) as error:
        raise Unexplainable(f"the model artefact is not a readable .tar.gz ({error})") from None
    return files


def _booster(data: bytes) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster


class TreeExplainer:
    """SHAP values of one XGBoost booster, exact (TreeSHAP) for tree boosters."""

    def __init__(self, booster: xgb.Booster, model_name: str) -> None:
        objective = _objective(booster)
        if objective not in EXPLAINABLE_OBJECTIVES:
            raise Unexplainable(
                f"model {model_name} has objective {objective}; the app explains models whose output is a probability "
                f"({', '.join(EXPLAINABLE_OBJECTIVES)})"
            )
        booster.set_param({"nthread": 1})  # a loop has at most 10 records: threads cost more than they save
        self.booster = booster
        self.model_name = model_name
        self.feature_count = booster.num_features()

    @classmethod
    def from_artifact(cls, stream: IO[bytes], model_name: str, gzipped: bool = True) -> TreeExplainer:
        """Load ``xgboost-model`` from a model.tar.gz stream (else the first file that loads as
        XGBoost), or, not ``gzipped``, the stream is the model file itself."""
        if gzipped:
            files = _read_members(stream, MAX_ARTIFACT_BYTES)
        else:
            files = {MODEL_FILE: stream.read(MAX_ARTIFACT_BYTES + 1)}
            if len(files[MODEL_FILE]) > MAX_ARTIFACT_BYTES:
                raise Unexplainable(f"the model file of {model_name} is larger than {MAX_ARTIFACT_BYTES // 2**20} MB, more than the app loads")
        named = [name for name in files if name.rsplit("/", 1)[-1] == MODEL_FILE]
        candidates = named or sorted(files)
        failures = []
        for name in candidates:
            data = files[name]
            if data.startswith(_PICKLE_OPCODE):
                failures.append(f"{name} is a Python pickle, which the app does not load (unpickling runs code); save it with Booster.save_model")
                continue
            try:
                return cls(_booster(data), model_name)
            except xgb.core.XGBoostError as error:
                failures.append(f"{name} does not load as an XGBoost model ({str(error).splitlines()[0][:200]})")
        if not failures:
            raise Unexplainable(f"the artefact of model {model_name} holds no files")
        raise Unexplainable(f"model {model_name} is not an XGBoost model the app can read: {'; '.join(failures[:3])}")

    def explain(self, rows: Sequence[Sequence[Any]]) -> list[RecordAttributions | Unexplainable]:
        """One result per row, in order; a row that cannot be explained gets its reason instead."""
        numbers = [self._numbers(row) for row in rows]
        readable = [n for n in numbers if not isinstance(n, Unexplainable)]
        if not readable:
            return numbers
        try:
            contributions, margins = self.contributions(np.asarray(readable, dtype=np.float32))
        except Unexplainable as several:
            return [n if isinstance(n, Unexplainable) else several for n in numbers]
        explained = (
            RecordAttributions(base_value=float(values[-1]), contributions=tuple(float(v) for v in values[:-1]), margin=float(margin))
            for values, margin in zip(contributions, margins)
        )
        return [n if isinstance(n, Unexplainable) else next(explained) for n in numbers]

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(SHAP values, margins) of a float32 matrix of records, one row each: the SHAP values have
        one column per feature and the base value last, and each row adds up to its margin."""
        # One thread: a review group is a few rows, and the function has one vCPU (1,769 MB); a thread pool
        # per call cost ~22 ms against 0.3 ms on a many-core machine (the rehearsal's measure).
        data = xgb.DMatrix(matrix, missing=np.nan, nthread=1)
        contributions = self.booster.predict(data, pred_contribs=True, validate_features=False)
        if contributions.ndim != 2:
            raise Unexplainable(f"model {self.model_name} has several outputs; the app explains one probability per record")
        return contributions, self.booster.predict(data, output_margin=True, validate_features=False)

    def _numbers(self, row: Sequence[Any]) -> list[float] | Unexplainable:
        """The row as the booster reads it, or why it cannot be read."""
        if len(row) != self.feature_count:
            return Unexplainable(f"the record has {len(row)} features and model {self.model_name} takes {self.feature_count}")
        numbers = []
        for index, value in enumerate(row):
            if value is None or (isinstance(value, str) and not value.strip()):
                numbers.append(math.nan)  # missing, as the XGBoost container reads an empty CSV field
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                return Unexplainable(f"feature {index + 1} is {str(value)[:40]!r}, not a number")
            except OverflowError:  # an integer beyond the double range
                number = math.inf
            # XGBoost reads float32: infinity, or a value beyond the float32 range (infinity there),
            # fails the whole batch (XGBoostError), so the row is set aside instead. NaN is missing.
            if not abs(number) <= FLOAT32_MAX and not math.isnan(number):
                return Unexplainable(f"feature {index + 1} is {str(value)[:40]!r}, beyond the float32 range the model reads")
            numbers.append(number)
        return numbers


def _objective(booster: xgb.Booster) -> str:
    return json.loads(booster.save_config())["learner"]["objective"]["name"]
