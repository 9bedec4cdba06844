"""What the local report commands share: their usage error and how it ends the command, and the
environment read as ``cdk synth -c env=<env>`` reads it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from stacks.shared.config import AppConfig, ConfigError, load_environment


class UsageError(Exception):
    """A problem with the command's arguments or inputs: reported with exit code 2."""


def environment_config(environment: str) -> AppConfig:
    try:
        return load_environment(environment)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def input_files(kind: str, paths: Sequence[Path], suffix: str = ".jsonl") -> list[Path]:
    """The files a command reads: each path a readable file, or a folder whose ``suffix`` files
    (in every subfolder, in name order) it stands for, as ``aws s3 cp --recursive`` leaves a
    prefix of capture or ground-truth files (``yyyy/mm/dd/hh/``)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
            if not found:
                raise UsageError(f"{kind} {path}: a folder with no {suffix} file in it or below it")
            files += found
        elif not path.exists():
            raise UsageError(f"{kind} {path}: no such file or folder")
        else:
            files.append(path)
    for path in files:
        if not os.access(path, os.R_OK):
            raise UsageError(f"{kind} {path}: not readable")
    return files


def main(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run; a ``UsageError`` exits with code 2 and the usage line."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        parser.error(str(error))
    return 2
