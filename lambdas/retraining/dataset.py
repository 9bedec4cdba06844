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

The evaluation rows (``evaluation/evaluation.csv``), on which the promotion gate scores the
candidate and the serving model alike (``lambdas.retraining.comparison``):

- the test set (``test_data_s3_uri``, label first, no header; the bundled model's ``test.csv``),
  weight 1. Without one, the original rows of the validation split stand in (weight 1, source
  ``validation-split``): the candidate never trained on them, but the serving model may have;
- the held-out labels: ``holdout_percentage`` of the labelled records, chosen by a hash of the
  identity salted with ``holdout/`` (so independent of the validation split, and stable across
  runs: a held-out record is held out in every retraining). They never enter ``train/`` or
  ``validation/``, so a label never both trains and judges a model. Weight 1 / inclusion
  probability, read from the label's ground-truth line (``sampling.inclusionProbability``, the
  probability with which the row came to be reviewed: a rule-selected row and an audit row alike);
  a label whose probability is unknown (a loop written before sampling was recorded, or ground-truth
  lines that do not line up with the rows) has weight 1 and is counted as unweighted;
- a record of the evaluation set never trains: an original row or a label with the identity of a
  test-set row is left out of ``train/`` and ``validation/`` (counted), and the test set's label judges.

The ground-truth lines of a loop are ``ground-truth/<yyyy/mm/dd/hh>/<loop>.jsonl``, written by
``review_results`` beside ``training-rows/<loop>.csv`` from the same verdicts in the same order: line
i carries row i's sampling. They are used only when they line up (as many lines as rows, each
with the row's label); otherwise the loop's labels are unweighted and the manifest says why.

Each evaluation line is ``row, weight, source, label, features...``; the batch transforms send the
model only the features (``EVALUATION_INPUT_FILTER``) and join its score to the line.

Memory grows with the number of labelled rows (and test-set records) only: the original data is
streamed through, and the outputs are written to local files first and uploaded once complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lambdas.shared import aws
from lambdas.shared.review_group import origin_problem

LABELS_PREFIX = "training-rows/"
GROUND_TRUTH_PREFIX = "ground-truth/"  # review_results' label lines, with their sampling
TRAIN_FILE = "train.csv"
VALIDATION_FILE = "validation.csv"
EVALUATION_FILE = "evaluation.csv"
REJECTED_FILE = "rejected.jsonl"
MANIFEST_FILE = "manifest.json"
# Each channel reads a prefix of its own (the container reads every object under it).
TRAIN_CHANNEL, VALIDATION_CHANNEL, EVALUATION_CHANNEL = "train/", "validation/", "evaluation/"
# An evaluation line: these columns, then the label and the features.
EVALUATION_COLUMNS = ("row", "weight", "source")
# What a batch transform sends the model of an evaluation line: the features only. For CSV, a
# JSONPath slice selects columns: https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html
EVALUATION_INPUT_FILTER = f"$[{len(EVALUATION_COLUMNS) + 1}:]"
TEST_SOURCE, VALIDATION_SOURCE, UNWEIGHTED_SOURCE = "test", "validation-split", "reviewed-unweighted"
HOLDOUT_SALT = "holdout/"
MAX_REPORTED_CONFLICTS = 100
_SELECTED_BY = re.compile(r"[a-z]{1,20}")


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
    holdout_percentage: int
    test_data_s3_uri: str | None  # None: the original rows of the validation split judge instead


@dataclass(frozen=True)
class Sampling:
    """How a reviewed row came to be reviewed (its ground-truth line's ``sampling``)."""

    probability: float
    selected_by: str


@dataclass(frozen=True)
class Label:
    label: str
    features: list[str]
    source: str  # s3://.../training-rows/<loop>.csv:<line>
    sampling: Sampling | None
    origin: dict[str, Any] | None = None  # a batch row's input file and line, from its ground-truth line


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
    test_rows: int = 0
    held_out_labels: int = 0
    evaluation_rows: int = 0
    evaluation_sources: Counter[str] = field(default_factory=Counter)
    labels_with_origin: int = 0  # label rows of batch rows (their ground-truth line names the input file and line)
    excluded_as_test_records: int = 0  # original rows and labels with a test-set row's identity
    unweighted_objects: list[dict[str, Any]] = field(default_factory=list)
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


def in_holdout(identity: str, percentage: int) -> bool:
    """Whether a labelled record is held out to judge: a hash of the salted identity, so the
    choice is independent of ``in_validation``'s and the same in every run."""
    return int(hashlib.sha256(f"{HOLDOUT_SALT}{identity}".encode()).hexdigest()[:8], 16) % 100 < percentage


def objects_under(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(item for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    return objects


class _Outputs:
    """train.csv, validation.csv, evaluation.csv and rejected.jsonl in a temporary directory, uploaded at the end."""

    def __init__(self, directory: str) -> None:
        self.paths = {name: os.path.join(directory, name) for name in (TRAIN_FILE, VALIDATION_FILE, EVALUATION_FILE, REJECTED_FILE)}
        self.files = {name: open(path, "w", newline="", encoding="utf-8") for name, path in self.paths.items()}  # noqa: SIM115
        self.writers = {name: csv.writer(self.files[name], lineterminator="\n") for name in (TRAIN_FILE, VALIDATION_FILE, EVALUATION_FILE)}

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
            tested = _read_test_set(s3, settings, result, outputs)
            _copy_original(s3, settings, labels, tested, result, outputs)
            _place_labels(settings, labels, tested, result, outputs)
        finally:
            outputs.close()
        if result.train_rows == 0 or result.validation_rows == 0:
            raise DatasetError(
                f"the assembled set has {result.train_rows} training and {result.validation_rows} validation rows; "
                f"both must have rows (validation_percentage is {settings.validation_percentage})"
            )
        if result.evaluation_rows == 0:
            raise DatasetError("the evaluation set has no rows (no test-set rows and no held-out labels): the new model cannot be judged")
        bucket, prefix = aws.split_s3_uri(settings.output_s3_uri.rstrip("/") + "/")
        for name, path in outputs.paths.items():
            s3.upload_file(path, bucket, f"{prefix}{_channel(name)}{name}")
    manifest = _manifest(settings, result)
    s3.put_object(Bucket=bucket, Key=f"{prefix}{MANIFEST_FILE}", Body=json.dumps(manifest, indent=1).encode(), ContentType="application/json")
    return {
        "trainS3Uri": f"s3://{bucket}/{prefix}{TRAIN_CHANNEL}",
        "validationS3Uri": f"s3://{bucket}/{prefix}{VALIDATION_CHANNEL}",
        "evaluationS3Uri": f"s3://{bucket}/{prefix}{EVALUATION_CHANNEL}",
        "trainFileS3Uri": f"s3://{bucket}/{prefix}{TRAIN_CHANNEL}{TRAIN_FILE}",
        "manifestS3Uri": f"s3://{bucket}/{prefix}{MANIFEST_FILE}",
        "rejectedS3Uri": f"s3://{bucket}/{prefix}{REJECTED_FILE}",
        "counts": manifest["counts"],
        "labelsThrough": result.labels_through,
    }


def _channel(name: str) -> str:
    return {TRAIN_FILE: TRAIN_CHANNEL, VALIDATION_FILE: VALIDATION_CHANNEL, EVALUATION_FILE: EVALUATION_CHANNEL}.get(name, "")


def _streamed_records(s3: Any, bucket: str, key: str) -> Iterator[list[str]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    return csv.reader(line.decode("utf-8", errors="replace") for line in body.iter_lines())


def records_under(s3: Any, uri: str) -> Iterator[tuple[str, int, list[str]]]:
    """(object URI, line, fields) of each non-empty CSV record of every object under ``uri``, in key order, streamed."""
    bucket, prefix = aws.split_s3_uri(uri)
    for item in sorted(objects_under(s3, bucket, prefix), key=lambda o: o["Key"]):
        for line, fields in enumerate(_streamed_records(s3, bucket, item["Key"]), start=1):
            if fields:
                yield f"s3://{bucket}/{item['Key']}", line, fields


def _parsed_rows(
    records: Iterable[list[str]], source: str, settings: DatasetSettings, result: Assembly, outputs: _Outputs
) -> Iterator[tuple[int, str, list[str], str]]:
    """(line, label, features, identity) of each good row of one object; each malformed row goes to
    rejected.jsonl with its source, line and reason instead."""
    for line, fields in enumerate(records, start=1):
        if not fields:
            continue
        try:
            yield line, *parse_row(fields, settings)
        except ValueError as error:
            result.rejected += 1
            record = {"source": source, "line": line, "row": fields, "reason": str(error)}
            outputs.files[REJECTED_FILE].write(json.dumps(record) + "\n")


def _objects(s3: Any, uri: str, what: str) -> Iterator[tuple[str, str]]:
    """(bucket, key) of each object under ``uri``, in key order; DatasetError if there is none."""
    bucket, prefix = aws.split_s3_uri(uri)
    objects = objects_under(s3, bucket, prefix)
    if not objects:
        raise DatasetError(f"no {what} at {uri}")
    for item in sorted(objects, key=lambda o: o["Key"]):
        yield bucket, item["Key"]


def _read_labels(s3: Any, settings: DatasetSettings, result: Assembly, outputs: _Outputs) -> dict[str, Label]:
    """identity -> the newest label of each labelled record, with its sampling where known."""
    labels: dict[str, Label] = {}
    if settings.labels_bucket is None:
        return labels
    bucket = settings.labels_bucket
    ground_truth = _ground_truth_files(s3, bucket)
    objects = sorted(objects_under(s3, bucket, LABELS_PREFIX), key=lambda o: (o["LastModified"], o["Key"]))
    for item in objects:
        source = f"s3://{bucket}/{item['Key']}"
        result.label_objects.append({"key": item["Key"], "etag": item.get("ETag", "").strip('"'), "lastModified": item["LastModified"].isoformat()})
        result.labels_through = item["LastModified"].isoformat()
        # One object per review loop: small enough to hold, and read whole to line it up with its ground truth.
        text = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8", errors="replace")
        records = list(csv.reader(io.StringIO(text)))
        documents = _loop_ground_truth(s3, bucket, item["Key"], records, ground_truth, result)
        for line, label, features, identity in _parsed_rows(records, source, settings, result, outputs):
            result.label_rows += 1
            origin = _origin(documents.get(line))
            result.labels_with_origin += origin is not None
            earlier = labels.get(identity)
            if earlier is not None:
                result.duplicate_labels += 1
                if earlier.label != label:
                    result.conflict_count += 1
                    if len(result.conflicts) < MAX_REPORTED_CONFLICTS:
                        kept = {"label": label, "source": f"{source}:{line}", **({"origin": origin} if origin else {})}
                        replaced = {"label": earlier.label, "source": earlier.source, **({"origin": earlier.origin} if earlier.origin else {})}
                        result.conflicts.append({"kept": kept, "replaced": replaced})
            labels[identity] = Label(label, features, f"{source}:{line}", _sampling(documents.get(line)), origin)
    return labels


def _ground_truth_files(s3: Any, bucket: str) -> dict[str, list[str]]:
    """File name -> keys of the ground-truth files (``<yyyy/mm/dd/hh>/<loop>.jsonl``)."""
    files: dict[str, list[str]] = {}
    for item in objects_under(s3, bucket, GROUND_TRUTH_PREFIX):
        files.setdefault(item["Key"].rsplit("/", 1)[-1], []).append(item["Key"])
    return files


def _loop_ground_truth(s3: Any, bucket: str, key: str, records: list[list[str]], ground_truth: dict[str, list[str]], result: Assembly) -> dict[int, dict[str, Any]]:
    """Line -> the ground-truth line of a loop's training row (its sampling and origin), when the
    loop's ground-truth file lines up with its rows (see the module docstring); else {}."""
    name = f"{key[len(LABELS_PREFIX):].removesuffix('.csv')}.jsonl"
    candidates = ground_truth.get(name, [])
    matched = []
    for candidate in candidates:
        lines = s3.get_object(Bucket=bucket, Key=candidate)["Body"].read().decode("utf-8", errors="replace").splitlines()
        documents = [_json_object(line) for line in lines]
        if len(documents) == len(records) and all(_same_label(document, fields) for document, fields in zip(documents, records, strict=True)):
            matched.append(documents)
    if len(matched) != 1:
        reason = (
            f"no ground-truth file {GROUND_TRUTH_PREFIX}<hour>/{name}"
            if not candidates
            else f"{len(candidates)} ground-truth files named {name}, {len(matched)} of them with a line of the same label for each row"
        )
        if len(result.unweighted_objects) < MAX_REPORTED_CONFLICTS:
            result.unweighted_objects.append({"key": key, "reason": reason})
        return {}
    return {line: document for line, document in enumerate(matched[0], start=1) if document is not None}


def _origin(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ground-truth line's ``origin`` (a batch row's input file and line), if it is well formed."""
    origin = (document or {}).get("origin")
    return origin if origin is not None and origin_problem(origin) is None else None


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _same_label(document: dict[str, Any] | None, fields: list[str]) -> bool:
    data = ((document or {}).get("groundTruthData") or {}).get("data")
    if data is None or not fields:
        return False
    try:
        return int(float(str(data))) == int(float(fields[0]))
    except ValueError:
        return False


def _sampling(document: dict[str, Any] | None) -> Sampling | None:
    """A line's ``sampling``, if it names a probability in (0, 1]."""
    sampling = (document or {}).get("sampling")
    if not isinstance(sampling, dict):
        return None
    probability = sampling.get("inclusionProbability")
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not (0 < probability <= 1) or math.isnan(probability):
        return None
    selected = sampling.get("selectedBy")
    return Sampling(float(probability), selected if isinstance(selected, str) and _SELECTED_BY.fullmatch(selected) else "other")


def _read_test_set(s3: Any, settings: DatasetSettings, result: Assembly, outputs: _Outputs) -> set[str]:
    """The test set's rows into evaluation.csv (weight 1); returns their identities."""
    identities: set[str] = set()
    if settings.test_data_s3_uri is None:
        return identities
    for bucket, key in _objects(s3, settings.test_data_s3_uri, "test set"):
        for _, label, features, identity in _parsed_rows(_streamed_records(s3, bucket, key), f"s3://{bucket}/{key}", settings, result, outputs):
            result.test_rows += 1
            identities.add(identity)
            _judge(outputs, result, TEST_SOURCE, 1.0, label, features)
    return identities


def _copy_original(s3: Any, settings: DatasetSettings, labels: dict[str, Label], tested: set[str], result: Assembly, outputs: _Outputs) -> None:
    for bucket, key in _objects(s3, settings.training_data_s3_uri, "training data"):
        for _, label, features, identity in _parsed_rows(_streamed_records(s3, bucket, key), f"s3://{bucket}/{key}", settings, result, outputs):
            result.original_rows += 1
            if identity in labels:
                result.replaced_rows += 1  # placed with the human label afterwards
                continue
            if identity in tested:
                result.excluded_as_test_records += 1
                continue
            if settings.test_data_s3_uri is None and in_validation(identity, settings.validation_percentage):
                _judge(outputs, result, VALIDATION_SOURCE, 1.0, label, features)
            _write(outputs, settings, result, identity, label, features)


def _place_labels(settings: DatasetSettings, labels: dict[str, Label], tested: set[str], result: Assembly, outputs: _Outputs) -> None:
    """Each label trains (train/ or validation/) or, held out, judges (evaluation.csv); never both."""
    for identity, label in labels.items():
        if identity in tested:
            result.excluded_as_test_records += 1  # the test set's row judges this record
        elif in_holdout(identity, settings.holdout_percentage):
            result.held_out_labels += 1
            if label.sampling is None:
                _judge(outputs, result, UNWEIGHTED_SOURCE, 1.0, label.label, label.features)
            else:
                _judge(outputs, result, f"reviewed-{label.sampling.selected_by}", 1 / label.sampling.probability, label.label, label.features)
        else:
            _write(outputs, settings, result, identity, label.label, label.features)


def _judge(outputs: _Outputs, result: Assembly, source: str, weight: float, label: str, features: list[str]) -> None:
    outputs.writers[EVALUATION_FILE].writerow([result.evaluation_rows, repr(weight), source, label, *features])
    result.evaluation_rows += 1
    result.evaluation_sources[source] += 1


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
        "testDataS3Uri": settings.test_data_s3_uri,
        "holdoutPercentage": settings.holdout_percentage,
        "counts": {
            "originalRows": result.original_rows,
            "originalRowsReplacedByLabels": result.replaced_rows,
            "labelRows": result.label_rows,
            "labelRowsWithOrigin": result.labels_with_origin,
            "labelledRecords": result.label_rows - result.duplicate_labels,
            "duplicateLabels": result.duplicate_labels,
            "conflictingLabels": result.conflict_count,
            "rejectedRows": result.rejected,
            "trainRows": result.train_rows,
            "validationRows": result.validation_rows,
            "testRows": result.test_rows,
            "heldOutLabels": result.held_out_labels,
            "evaluationRows": result.evaluation_rows,
            "excludedAsTestRecords": result.excluded_as_test_records,
        },
        "evaluationSources": dict(sorted(result.evaluation_sources.items())),
        "unweightedLabelObjects": result.unweighted_objects,
        "labelsThrough": result.labels_through,
        "labelObjects": result.label_objects,
        "conflicts": result.conflicts,
    }

