"""Benchmarks (``make bench``): each judged against a floor measured in the same run.

Each figure is the median over its runs, the floor and the measured code alternating run by run
(a busy machine slows a pair alike), so one slow run on a loaded machine does not fail a target
that the code meets.
"""

from __future__ import annotations

import statistics
import sys


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    """The median of ``measured / floor`` over interleaved (floor, measured) pairs."""
    return statistics.median(measured / floor for floor, measured in pairs)


def verdict(failures: list[str]) -> int:
    """Print each missed target on stderr; the exit status ``make bench`` returns."""
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0
