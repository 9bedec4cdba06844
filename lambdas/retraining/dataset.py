"""Assemble a retraining set: the original training data plus the reviewers' labelled rows.

Both sources are CSV with the label first and no header (the XGBoost container's format, and what
``review_results`` writes to ``training-rows/``). A record's identity is its feature values, each
number normalised (``1``, ``1.0`` and ``1e0`` are the same record), because the original training
data carries no record IDs. Rules:

- a labelled row replaces every original row with the same identity (the human label wins);
- labelled rows with the same identity keep the newest object's label (S3 ``LastModified``, then
  key); a different earlier label is reported as a conflict;
- a malformed row (wrong field count, a label outside the label set, a feature that is not a
  number) is written to ``rejected.jsonl`` with its source and reason and never stops the others;
- validation rows are chosen by a hash of the identity, so a record stays on the same side of the
  split in every retraining and the validation metric is not measured on rows trained on before.

Memory grows with the number of labelled rows only: the original data is streamed through, and
both outputs are written to local files first and uploaded once complete.
"""

from __future__ import annotations

import csv
import hashlib
import re
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lambdas.shared import aws

LABELS_PREFIX = "training-rows/"
TRAIN_FILE = "train.csv"
VALIDATION_FILE = "validation.csv"
REJECTED_FILE = "rejected.jsonl"
MANIFEST_FILE = "manifest.json"
# Each channel reads a prefix of its own (the container reads every object under it).
TRAIN_CHANNEL, VALIDATION_CHANNEL = "train/", "validation/"
MAX_REPORTED_CONFLICTS = 100


class DatasetError(RuntimeError):
    """The set cannot be trained on (no rows, or nothing for validation); the execution fails with it."""


@dataclass(frozen=True)
class DatasetSettings:
    training_data_s3_uri: str
    labels_bucket: str | None  # None: review is off, the original data only
    output_s3_uri: str  # s3://bucket/prefix for this execution
    feature_count: int
    label_count: int
    validation_percentage: int


@dataclass
class Assembly:
    original_rows: int = 0
    replaced_rows: int = 0
    label_rows: int = 0
    label_objects: list[dict[str, Any]] = field(default_factory=list)
    duplicate_labels: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    conflict_count: int = 0
    rejected: int = 0
    train_rows: int = 0
    validation_rows: int = 0
    labels_through: str | None = None  # newest LastModified of the label objects used


# A number as a CSV reader such as XGBoost's takes it: Python's float() also takes "1_000", "inf",
# "nan" and surrounding spaces, which would pass here and break training.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def normalised_number(text: str) -> str:
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"{text!r} is not a decimal number")
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return repr(value)


def parse_row(fields: list[str], settings: DatasetSettings) -> tuple[str, list[str], str]:
    """(label, features, identity) of one CSV row; ValueError with the reason if it is malformed."""
    if len(fields) != settings.feature_count + 1:
        raise ValueError(f"{len(fields)} fields, expected {settings.feature_count + 1} (label then {settings.feature_count} features)")
    try:
        label = int(float(fields[0]))
    except ValueError:
        raise ValueError(f"label {fields[0]!r} is not a number") from None
    if str(fields[0]).strip() not in (str(label), f"{label}.0") or not 0 <= label < settings.label_count:
        raise ValueError(f"label {fields[0]!r} is not one of 0-{settings.label_count - 1}")
    features = [field.strip() for field in fields[1:]]
    try:
        normalised = [normalised_number(value) for value in features]
    except ValueError as error:
        raise ValueError(f"feature not a number: {error}") from None
    identity = hashlib.sha256(",".join(normalised).encode()).hexdigest()
    return str(label), features, identity


def in_validation(identity: str, percentage: int) -> bool:
    return int(identity[:8], 16) % 100 < percentage




def objects_under(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(item for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    return objects


class _Outputs:
    """train.csv, validation.csv and rejected.jsonl in a temporary directory, uploaded at the end."""

    def __init__(self, directory: str) -> None:
        self.paths = {name: os.path.join(directory, name) for name in (TRAIN_FILE, VALIDATION_FILE, REJECTED_FILE)}
        self.files = {name: open(path, "w", newline="", encoding="utf-8") for name, path in self.paths.items()}  # noqa: SIM115
        self.writers = {name: csv.writer(self.files[name], lineterminator="\n") for name in (TRAIN_FILE, VALIDATION_FILE)}

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()


def assemble(s3: Any, settings: DatasetSettings, directory: str | None = None) -> dict[str, Any]:
    """Write the set under ``settings.output_s3_uri``; return where it is and what it holds."""
    result = Assembly()
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        outputs = _Outputs(scratch)
        try:
            labels = _read_labels(s3, settings, result, outputs)
            _copy_original(s3, settings, labels, result, outputs)
            for identity, (label, features, _) in labels.items():
                _write(outputs, settings, result, identity, label, features)
        finally:
            outputs.close()
        if result.train_rows == 0 or result.validation_rows == 0:
            raise DatasetError(
                f"the assembled set has {result.train_rows} training and {result.validation_rows} validation rows; "
                f"both must have rows (validation_percentage is {settings.validation_percentage})"
            )
        bucket, prefix = aws.split_s3_uri(settings.output_s3_uri.rstrip("/") + "/")
        for name, path in outputs.paths.items():
            s3.upload_file(path, bucket, f"{prefix}{_channel(name)}{name}")
    manifest = _manifest(settings, result)
    s3.put_object(Bucket=bucket, Key=f"{prefix}{MANIFEST_FILE}", Body=json.dumps(manifest, indent=1).encode(), ContentType="application/json")
    return {
        "trainS3Uri": f"s3://{bucket}/{prefix}{TRAIN_CHANNEL}",
        "validationS3Uri": f"s3://{bucket}/{prefix}{VALIDATION_CHANNEL}",
        "trainFileS3Uri": f"s3://{bucket}/{prefix}{TRAIN_CHANNEL}{TRAIN_FILE}",
        "manifestS3Uri": f"s3://{bucket}/{prefix}{MANIFEST_FILE}",
        "rejectedS3Uri": f"s3://{bucket}/{prefix}{REJECTED_FILE}",
        "counts": manifest["counts"],
        "labelsThrough": result.labels_through,
    }


def _channel(name: str) -> str:
    return {TRAIN_FILE: TRAIN_CHANNEL, VALIDATION_FILE: VALIDATION_CHANNEL}.get(name, "")


def _parsed_rows(s3: Any, bucket: str, key: str, settings: DatasetSettings, result: Assembly, outputs: _Outputs) -> Iterator[tuple[int, str, list[str], str]]:
    """(line, label, features, identity) of each good row of one object, streamed; each malformed
    row goes to rejected.jsonl with its source, line and reason instead."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    lines = (line.decode("utf-8", errors="replace") for line in body.iter_lines())
    for line, fields in enumerate(csv.reader(lines), start=1):
        if not fields:
            continue
        try:
            yield line, *parse_row(fields, settings)
        except ValueError as error:
            result.rejected += 1
            record = {"source": f"s3://{bucket}/{key}", "line": line, "row": fields, "reason": str(error)}
            outputs.files[REJECTED_FILE].write(json.dumps(record) + "\n")


def _read_labels(s3: Any, settings: DatasetSettings, result: Assembly, outputs: _Outputs) -> dict[str, tuple[str, list[str], str]]:
    """identity -> (label, features, source) of the newest label of each labelled record."""
    labels: dict[str, tuple[str, list[str], str]] = {}
    if settings.labels_bucket is None:
        return labels
    objects = sorted(objects_under(s3, settings.labels_bucket, LABELS_PREFIX), key=lambda o: (o["LastModified"], o["Key"]))
    for item in objects:
        source = f"s3://{settings.labels_bucket}/{item['Key']}"
        result.label_objects.append({"key": item["Key"], "etag": item.get("ETag", "").strip('"'), "lastModified": item["LastModified"].isoformat()})
        result.labels_through = item["LastModified"].isoformat()
        for line, label, features, identity in _parsed_rows(s3, settings.labels_bucket, item["Key"], settings, result, outputs):
            result.label_rows += 1
            earlier = labels.get(identity)
            if earlier is not None:
                result.duplicate_labels += 1
                if earlier[0] != label:
                    result.conflict_count += 1
                    if len(result.conflicts) < MAX_REPORTED_CONFLICTS:
                        result.conflicts.append({"kept": {"label": label, "source": f"{source}:{line}"}, "replaced": {"label": earlier[0], "source": earlier[2]}})
            labels[identity] = (label, features, f"{source}:{line}")
    return labels


def _copy_original(s3: Any, settings: DatasetSettings, labels: dict[str, Any], result: Assembly, outputs: _Outputs) -> None:
    bucket, prefix = aws.split_s3_uri(settings.training_data_s3_uri)
    objects = objects_under(s3, bucket, prefix)
    if not objects:
        raise DatasetError(f"no training data at {settings.training_data_s3_uri}")
    for item in sorted(objects, key=lambda o: o["Key"]):
        for _, label, features, identity in _parsed_rows(s3, bucket, item["Key"], settings, result, outputs):
            result.original_rows += 1
            if identity in labels:
                result.replaced_rows += 1  # written with the human label afterwards
                continue
            _write(outputs, settings, result, identity, label, features)


def _write(outputs: _Outputs, settings: DatasetSettings, result: Assembly, identity: str, label: str, features: list[str]) -> None:
    if in_validation(identity, settings.validation_percentage):
        outputs.writers[VALIDATION_FILE].writerow([label, *features])
        result.validation_rows += 1
    else:
        outputs.writers[TRAIN_FILE].writerow([label, *features])
        result.train_rows += 1


def _manifest(settings: DatasetSettings, result: Assembly) -> dict[str, Any]:
    return {
        "trainingDataS3Uri": settings.training_data_s3_uri,
        "labelsS3Uri": f"s3://{settings.labels_bucket}/{LABELS_PREFIX}" if settings.labels_bucket else None,
        "validationPercentage": settings.validation_percentage,
        "counts": {
            "originalRows": result.original_rows,
            "originalRowsReplacedByLabels": result.replaced_rows,
            "labelRows": result.label_rows,
            "labelledRecords": result.label_rows - result.duplicate_labels,
            "duplicateLabels": result.duplicate_labels,
            "conflictingLabels": result.conflict_count,
            "rejectedRows": result.rejected,
            "trainRows": result.train_rows,
            "validationRows": result.validation_rows,
        },
        "labelsThrough": result.labels_through,
        "labelObjects": result.label_objects,
        "conflicts": result.conflicts,
    }

