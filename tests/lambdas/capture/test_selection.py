"""The review rule and the audit sample: the share drawn, the same rows on a replay, and the
probability with which each reviewed row was chosen (capture sampling included)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from fractions import Fraction

import pytest
from scipy.stats import binom

from lambdas.capture.selection import AUDIT, AUDIT_SALT, RULE, Audit, SelectionRule, audit_draw, inclusion_probability, selected_by

ROWS = 100_000


def ids(count: int) -> list[tuple[str, int]]:
    """Record IDs as the capture gives them: event IDs, and every tenth request of three rows."""
    return [(f"evt-{i:09d}", row) for i in range(count) for row in range(3 if i % 10 == 0 else 1)][:count]


@pytest.mark.parametrize("percentage", [2.0, 0.5, 50.0])
def test_the_audit_draws_its_share_within_the_binomial_interval(percentage: float) -> None:
    audit = Audit(percentage)
    drawn = sum(audit.selects(record, row) for record, row in ids(ROWS))
    low, high = binom.interval(0.999, ROWS, percentage / 100)
    assert low <= drawn <= high, f"{drawn} audit rows of {ROWS:,} at {percentage} %: outside the 99.9 % interval [{low:.0f}, {high:.0f}]"


def test_draws_are_uniform_over_the_unit_interval() -> None:
    """Each tenth of [0, 1) holds its share: a draw compared with any fraction gives that fraction."""
    draws = [audit_draw(record, row) for record, row in ids(ROWS)]
    assert all(0.0 <= d < 1.0 for d in draws)
    counts = [0] * 10
    for d in draws:
        counts[int(d * 10)] += 1
    low, high = binom.interval(0.999, ROWS, 0.1)
    assert all(low <= c <= high for c in counts), counts


def test_the_draw_is_the_documented_keyed_hash_so_every_process_draws_the_same_rows() -> None:
    """Re-derived from the module docstring, and drawn again in a fresh interpreter (whose str hash
    is salted differently): a replayed capture object selects the same audit rows."""
    def documented(record_id: str, row_index: int) -> int:
        return int.from_bytes(hashlib.blake2b(f"{AUDIT_SALT}/{record_id}/{row_index}".encode(), digest_size=8).digest(), "big")

    sample = [("inf-1", 0), ("evt-0042", 2), ("ünïcode/ID", 1), ("", 0)]
    assert [audit_draw(r, i) for r, i in sample] == [documented(r, i) / 2**64 for r, i in sample]
    for percentage in (2.0, 50.0, 0.01):
        audit = Audit(percentage)
        rows = [(f"evt-{i}", i % 3) for i in range(5_000)]
        assert [audit.selects(r, i) for r, i in rows] == [Fraction(documented(r, i), 2**64) < Fraction(percentage / 100) for r, i in rows]
    code = (
        "import json, sys; from lambdas.capture.selection import Audit; "
        f"print(json.dumps([i for i in range(20_000) if Audit(2.0).selects(f'evt-{{i}}', 0)]))"
    )
    fresh = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert fresh == [i for i in range(20_000) if Audit(2.0).selects(f"evt-{i}", 0)] and fresh


def test_rows_of_one_request_are_drawn_independently() -> None:
    """Rows that share a record ID are told apart by their index: each has its own draw."""
    draws = {audit_draw("evt-1", row) for row in range(1_000)}
    assert len(draws) == 1_000


def test_the_rule_comes_first_and_the_audit_takes_only_rows_it_does_not_select() -> None:
    band, audit = SelectionRule(lower=0.1, upper=0.9), Audit(100.0)
    assert selected_by(band, audit, 0.5, 1, "evt-1", 0) == RULE
    assert selected_by(band, audit, 0.95, 1, "evt-1", 0) == AUDIT  # 100 %: every row the rule leaves
    assert selected_by(band, None, 0.95, 1, "evt-1", 0) is None
    some = Audit(2.0)
    chosen = [i for i in range(10_000) if selected_by(band, some, 0.99, 1, f"e{i}", 0) == AUDIT]
    assert chosen == [i for i in range(10_000) if some.selects(f"e{i}", 0)]


@pytest.mark.parametrize("sampling, audit_percentage, rule_probability, audit_probability", [
    (0.34, 2.0, 0.34, 0.0068),
    (1.0, 2.0, 1.0, 0.02),
    (0.34, 100.0, 0.34, 0.34),
    (1.0, 0.5, 1.0, 0.005),
])
def test_inclusion_probability_includes_capture_sampling(sampling: float, audit_percentage: float, rule_probability: float, audit_probability: float) -> None:
    audit = Audit(audit_percentage)
    assert inclusion_probability(RULE, sampling, audit) == rule_probability
    assert inclusion_probability(AUDIT, sampling, audit) == audit_probability
    assert inclusion_probability(RULE, sampling, None) == rule_probability  # no audit sample: rule rows unchanged


def test_without_the_capture_sampling_fraction_no_probability_is_claimed() -> None:
    assert inclusion_probability(RULE, None, Audit(2.0)) is None
    assert inclusion_probability(AUDIT, None, Audit(2.0)) is None
    with pytest.raises(ValueError, match="without an audit sample"):
        inclusion_probability(AUDIT, 1.0, None)


@pytest.mark.parametrize("percentage", [0.0, -1.0, 100.5])
def test_an_audit_share_outside_its_range_is_refused(percentage: float) -> None:
    with pytest.raises(ValueError, match=r"audit percentage must be in \(0, 100\]"):
        Audit(percentage)
