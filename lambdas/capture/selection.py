"""Which predictions go to a human: a confidence band, or a predicted outcome."""

from __future__ import annotations

from dataclasses import dataclass

RULES = ("band", "outcome")


@dataclass(frozen=True)
class SelectionRule:
    """``band``: lower < p < upper (seed 000: 0.1, 0.9); ``outcome``: predicted label == outcome (seed 002)."""

    rule: str = "band"
    lower: float = 0.1
    upper: float = 0.9
    outcome: int = 0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule: {self.rule!r} is not allowed; allowed values: {', '.join(RULES)}")
        if not (0.0 <= self.lower < self.upper <= 1.0):
            raise ValueError(f"lower and upper must satisfy 0 <= lower < upper <= 1, got {self.lower} and {self.upper}")

    def selects_prediction(self, probability: float, prediction: int) -> bool:
        """Whether a row with this probability and predicted label goes to review. The parser asks
        it before decoding a row (``ParseOptions.keep``), so rows not selected are never decoded."""
        if self.rule == "band":
            return self.lower < probability < self.upper
        return prediction == self.outcome
