"""What the local report commands share: their usage error and how it ends the command, and the
environment read as ``cdk synth -c env=<env>`` reads it."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from stacks.shared.config import AppConfig, ConfigError, load_environment


class UsageError(Exception):
    """A problem with the command's arguments or inputs: reported with exit code 2."""


def environment_config(environment: str) -> AppConfig:
    try:
        return load_environment(environment)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def main(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run; a ``UsageError`` exits with code 2 and the usage line."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        parser.error(str(error))
    return 2
