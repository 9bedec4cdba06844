"""Benchmarks (``make bench``): each judged against a floor measured in the same run."""

from __future__ import annotations

import sys


def verdict(failures: list[str]) -> int:
    """Print each missed target on stderr; the exit status ``make bench`` returns."""
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0
