"""Which predictions go to a human: the review rule (a confidence band, or a predicted outcome), and
an audit sample of the rows the rule does not select, chosen at random.

The audit draw is reproducible, so a replayed capture object selects the same rows and forms the
same review groups (and so the same loop names, which the starter recognises as started):

    N = the 8-byte BLAKE2b digest of the UTF-8 text "<AUDIT_SALT>/<record ID>/<row index>",
        read as a big-endian integer; u = N / 2**64                          (uniform in [0, 1))
    a row the rule does not select is an audit row when u < a = audit_percentage / 100,
        compared exactly: N < a * 2**64 (a as the binary double it is)

The record ID is ``PredictionRow.record_id`` (the caller's inference ID, else the event ID) and the
row index the row's position in its request. A salted hash of an ID the model never sees is
independent of the row's features and score, so each row outside the rule is chosen with
probability ``audit_percentage / 100`` whatever it holds. The salt is fixed, so every deployment
draws alike; another split that hashes the same IDs (a holdout, say) must use another salt, or its
rows would not be independent of the audit's.

A row reaches review with probability ``s`` (the capture sampling fraction in force when it was
captured) when the rule selects it, and ``s * a`` when it is an audit row (``a`` the audit
fraction): ``inclusion_probability``. A caller that reuses one inference ID for several requests
gives them the same draw; the ID is also the join key of a label, which such a caller breaks anyway.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

RULES = ("band", "outcome")
RULE, AUDIT = "rule", "audit"  # ``selectedBy`` of a review group row and of a label's ``sampling``
AUDIT_SALT = "mlloop-audit-sample-v1"
# The salt hashed once; each draw hashes a copy (BLAKE2b's own key parameter costs a fifth more a draw).
_SALTED = hashlib.blake2b(f"{AUDIT_SALT}/".encode(), digest_size=8)
_DRAWS = 2**64


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


def _drawn(record_id: str, row_index: int) -> int:
    """N of the module docstring. Record IDs come from orjson, which refuses lone surrogates, so
    every ID encodes as UTF-8."""
    digest = _SALTED.copy()
    digest.update(f"{record_id}/{row_index}".encode())
    return int.from_bytes(digest.digest(), "big")


def audit_draw(record_id: str, row_index: int) -> float:
    """The row's uniform draw u in [0, 1) (to a double's precision; ``Audit.selects`` compares exactly)."""
    return _drawn(record_id, row_index) / _DRAWS


@dataclass(frozen=True)
class Audit:
    """The audit sample: ``percentage`` % of the rows the rule does not select (0 < percentage <= 100)."""

    percentage: float
    # selects(record ID, row index): whether this row (one the rule does not select) is an audit
    # row. The parser asks it, after the rule, before decoding a row (``ParseOptions.audit``), for
    # most rows of every capture object: one closure with its names bound, about 0.7 µs a line on the
    # development machine (a 2 % audit costs the filter 10-20 % of its throughput: see make bench).
    selects: Callable[[str, int], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.percentage <= 100.0:
            raise ValueError(f"audit percentage must be in (0, 100], got {self.percentage} (0 turns the audit off: no Audit)")
        threshold = math.ceil(Fraction(self.fraction) * _DRAWS)  # N < threshold  <=>  N / 2**64 < a
        # 8-byte big-endian strings compare as the integers they spell, so no int is made for each
        # row: N < threshold <=> digest <= threshold - 1, which fits 8 bytes (1 <= threshold <= 2**64).
        at_most = (threshold - 1).to_bytes(8, "big")
        copy = _SALTED.copy

        def selects(record_id: str, row_index: int) -> bool:
            digest = copy()  # _drawn, inlined
            digest.update(f"{record_id}/{row_index}".encode())
            return digest.digest() <= at_most

        object.__setattr__(self, "selects", selects)

    @property
    def fraction(self) -> float:
        return self.percentage / 100.0


def selected_by(rule: SelectionRule, audit: Audit | None, probability: float, prediction: int, record_id: str, row_index: int) -> str | None:
    """``RULE``, ``AUDIT`` or None (the row is not reviewed). The rule comes first: a row it selects
    is never an audit row, whatever its draw."""
    if rule.selects_prediction(probability, prediction):
        return RULE
    if audit is not None and audit.selects(record_id, row_index):
        return AUDIT
    return None


def inclusion_probability(selected: str, capture_fraction: float | None, audit: Audit | None) -> float | None:
    """The probability with which a row came to be reviewed, capture sampling included: ``s`` for a
    rule row, ``s * a`` for an audit row; None when ``s`` is not known. Written to 12 significant
    digits, so 0.34 * 0.02 is 0.0068 and not 0.0068000000000000005."""
    if capture_fraction is None:
        return None
    if selected == RULE:
        return capture_fraction
    if audit is None:
        raise ValueError("an audit row without an audit sample")
    return float(f"{capture_fraction * audit.fraction:.12g}")
