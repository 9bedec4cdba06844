"""What explaining a record gives: its SHAP values, or the reason it cannot be explained. Pure Python."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Unexplainable(Exception):
    """Why the app cannot explain a model or a record; reviewers and reports show the message as it is.

    ``transient``: the cause may pass (an S3 or SageMaker error), so the model is tried again later.
    """

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True)
class RecordAttributions:
    base_value: float  # log-odds before any feature is known
    contributions: tuple[float, ...]  # one per feature, in log-odds
    margin: float  # base value + sum of contributions, as the model computes it

    @property
    def probability(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.margin))


class Explainer(Protocol):
    model_name: str

    def explain(self, rows: Sequence[Sequence[Any]]) -> list[RecordAttributions | Unexplainable]: ...
