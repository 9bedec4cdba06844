"""The open back end's baselines, computed by the evaluators' own code: at deploy time (a
CloudFormation custom resource, CDK Provider framework ``on_event``) and in retraining's baseline step.

Properties (CloudFormation passes every value as a string):

- ``Monitor``: ``data-quality``, ``explainability`` or ``model-quality``;
- ``MonitoringBucket``; ``DatasetS3Uri``: an object, or a folder of CSV objects; or, for data
  quality, ``BaselineStatisticsS3Uri`` and ``BaselineConstraintsS3Uri``: files to publish as they are
  (checked to be files this app's baseline wrote: the evaluator needs their bin edges);
- data quality: ``DriftThreshold``; optional ``FeatureNames`` (JSON list): the dataset's header must be
  ``probability`` then exactly these (the capture Lambda profiles rows of the model's width);
- explainability: ``ModelDataUrl`` (the served artefact), ``FeatureNames`` (JSON list), ``LabelName``;
  the dataset is the training rows, label first, no header;
- model quality: the dataset is the model's scores on its labelled test set (a CSV with the header
  ``label,probability``); ``DecisionThreshold`` (default 0.5) and ``Tolerance`` (default 0.05).
  Without ``DatasetS3Uri`` (your own model and no test-set scores) the baseline says so, and the
  monitor computes figures without constraints or estimate (``lambdas.monitoring.quality.documents``).

Files: ``<monitor>/baselines/<hash of the properties>/...``, then copied to ``<monitor>/current/``,
the fixed files the evaluators and the capture Lambda read. The rules of the SageMaker back end's
baseline resource (``lambdas/monitoring/baseline_job/handler.py``, ``lambdas/shared/baseline.py``):
unchanged properties on update compute nothing; changed ones leave a baseline that retraining
promoted (its marker in ``current/``) unless the dataset changed, which is the user's choice and
replaces it and clears the marker. Delete leaves the files (as processing jobs' outputs stay).

A dataset that cannot be baselined fails the deployment: the error's message, which names the
dataset and the line or column at fault, becomes the CloudFormation event's reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from lambdas.monitoring.drift.baseline import CONSTRAINTS_FILE, DEFAULT_THRESHOLD, STATISTICS_FILE, BaselineError, baseline_documents, load
from lambdas.shared import aws
from lambdas.shared import baseline as shared_baseline

DATA_QUALITY, EXPLAINABILITY, MODEL_QUALITY = "data-quality", "explainability", "model-quality"
ANALYSIS_FILE = "analysis.json"
CALIBRATION_FILE = "calibration.json"
FILES = {
    DATA_QUALITY: (STATISTICS_FILE, CONSTRAINTS_FILE),
    EXPLAINABILITY: (ANALYSIS_FILE,),
    MODEL_QUALITY: (STATISTICS_FILE, CONSTRAINTS_FILE, CALIBRATION_FILE),
}
HASH = 16
NEW_BASELINE = "NewBaseline"
MAX_DATASET_BYTES = 512 * 2**20  # read whole into memory: sample a larger dataset first


class DatasetError(ValueError):
    """A baseline dataset (or its properties) that cannot be baselined: the deployment fails with this message."""


def properties_hash(properties: Mapping[str, Any]) -> str:
    relevant = {k: v for k, v in properties.items() if k != "ServiceToken"}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:HASH]


def current_uris(bucket: str, monitor: str) -> dict[str, str]:
    """``{file: s3://bucket/<monitor>/current/<file>}``: the publish map of ``lambdas.shared.baseline``."""
    return {name: f"s3://{bucket}/{monitor}/current/{name}" for name in FILES[monitor]}


def read_dataset(s3: Any, uri: str) -> str:
    """The dataset's text: the object at ``uri``, or every object under the folder ``uri`` in key order
    (each with the same header, kept once)."""
    bucket, key = aws.split_s3_uri(uri)
    try:
        return _text(s3, bucket, key, uri)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code not in ("NoSuchKey", "AccessDenied"):  # AccessDenied: also what a missing key is without ListBucket
            raise
    folder = key.rstrip("/") + "/"
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
        keys = sorted(item["Key"] for page in pages for item in page.get("Contents") or [] if not item["Key"].endswith("/"))
    except ClientError as error:
        raise DatasetError(f"baseline dataset {uri}: reading it was refused ({code}) and listing {folder} too ({error.response['Error']['Code']})") from None
    if not keys:
        raise DatasetError(f"baseline dataset {uri}: no such object ({code}), and no objects under {folder}")
    header, parts = None, []
    for item in keys:
        text = _text(s3, bucket, item, f"s3://{bucket}/{item}")
        first, _, rest = text.partition("\n")
        if header is None:
            header = first
            parts.append(text if text.endswith("\n") else text + "\n")
        elif first.strip() != header.strip():
            raise DatasetError(f"baseline dataset {uri}: s3://{bucket}/{item} has the header {first.strip()[:200]!r}, the first file {header.strip()[:200]!r}")
        else:
            parts.append(rest if rest.endswith("\n") or not rest else rest + "\n")
    return "".join(parts)


def _text(s3: Any, bucket: str, key: str, uri: str) -> str:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_DATASET_BYTES + 1)
    if len(body) > MAX_DATASET_BYTES:
        raise DatasetError(f"baseline dataset {uri} is larger than {MAX_DATASET_BYTES // 2**20} MiB: baseline a sample of it")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"baseline dataset {uri} is not UTF-8 text: {error}") from None


def data_quality_documents(text: str, *, source: str, threshold: float = DEFAULT_THRESHOLD, feature_names: Sequence[str] | None = None) -> dict[str, bytes]:
    """``statistics.json`` and ``constraints.json`` of a baseline dataset (header: probability, then the features)."""
    if feature_names is not None:
        got = [name.strip() for name in text.partition("\n")[0].strip().split(",")]
        expected = shared_baseline.header(feature_names)
        if got != expected:
            raise DatasetError(
                f"baseline dataset {source}: its header has {len(got)} columns {got[:4]}..., the model "
                f"{len(expected)}: {shared_baseline.OUTPUT_COLUMN}, then model.feature_names in order {expected[1:4]}..."
            )
    try:
        documents = baseline_documents(text, threshold=threshold)
    except BaselineError as error:
        raise DatasetError(f"baseline dataset {source}: {error}") from None
    return {name: json.dumps(document, indent=1).encode() for name, document in documents.items()}


def explainability_documents(s3: Any, properties: Mapping[str, Any], text: str, *, source: str) -> dict[str, bytes]:
    """``analysis.json`` of the model at ``ModelDataUrl`` on the training rows (label first, no header)."""
    # The explainability half needs XGBoost (the explain layer): imported only here.
    from lambdas.monitoring.open import attribution
    from lambdas.shared.explain.results import Unexplainable
    from lambdas.shared.explain.tree import TreeExplainer

    feature_names = _names(properties, "FeatureNames")
    rows = training_rows(text, len(feature_names), source=source)
    model_uri = properties["ModelDataUrl"]
    bucket, key = aws.split_s3_uri(model_uri)
    try:
        explainer = TreeExplainer.from_artifact(s3.get_object(Bucket=bucket, Key=key)["Body"], model_uri)
        analysis = attribution.baseline_analysis(explainer.booster, rows, feature_names, properties["LabelName"])
    except (Unexplainable, ValueError) as error:
        raise DatasetError(f"explainability baseline of {model_uri} on {source}: {error}") from None
    return {ANALYSIS_FILE: json.dumps(analysis, indent=1).encode()}


def training_rows(text: str, feature_count: int, *, source: str) -> list[list[float]]:
    """The features of each training row (CSV, label first, no header), as numbers."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != feature_count + 1:
            raise DatasetError(f"training dataset {source} line {number}: {len(fields)} fields, expected the label then {feature_count} features")
        try:
            rows.append([float(value) for value in fields[1:]])
        except ValueError as error:
            raise DatasetError(f"training dataset {source} line {number}: {error}") from None
    if not rows:
        raise DatasetError(f"training dataset {source} has no rows")
    return rows


def _names(properties: Mapping[str, Any], key: str) -> list[str]:
    value = properties.get(key)
    names = json.loads(value) if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"property {key} must be a JSON list of names, got {value!r}")
    return names


def given_files(s3: Any, properties: Mapping[str, Any]) -> dict[str, bytes]:
    """The configured baseline files, checked: the evaluator and the capture Lambda need the bin
    edges this app's baseline writes (Model Monitor's own files have none)."""
    uris = {STATISTICS_FILE: properties["BaselineStatisticsS3Uri"], CONSTRAINTS_FILE: properties["BaselineConstraintsS3Uri"]}
    files, documents = {}, {}
    for name, uri in uris.items():
        bucket, key = aws.split_s3_uri(uri)
        try:
            files[name] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            documents[name] = json.loads(files[name])
        except ClientError as error:
            raise DatasetError(f"baseline file {uri}: {error.response['Error']['Code']}") from None
        except ValueError as error:
            raise DatasetError(f"baseline file {uri} is not JSON: {error}") from None
    try:
        load(documents[STATISTICS_FILE], documents[CONSTRAINTS_FILE])
    except BaselineError as error:
        raise DatasetError(
            f"baseline files {uris[STATISTICS_FILE]} and {uris[CONSTRAINTS_FILE]}: {error}; the open back end needs files its own "
            "baseline wrote (make drift-report writes none; a deployment's data-quality/baselines/<hash>/ holds them), or a dataset (dataset_s3_uri)"
        ) from None
    return files


def model_quality_documents(text: str | None, properties: Mapping[str, Any], *, source: str | None) -> dict[str, bytes]:
    """``statistics.json``, ``constraints.json`` and ``calibration.json`` of the test-set scores
    (None: no scores, so no constraints and no estimate)."""
    # numpy (the explain layer) is imported only for this monitor.
    from lambdas.monitoring.quality import documents

    numbers = {}
    for name, default, low, high in (("DecisionThreshold", 0.5, 0.0, 1.0), ("Tolerance", 0.05, 0.0, 1.0)):
        try:
            numbers[name] = float(properties.get(name, default))
        except ValueError:
            raise DatasetError(f"property {name} must be a number, got {properties[name]!r}") from None
        if not low <= numbers[name] <= high:
            raise DatasetError(f"property {name} must be from {low:g} to {high:g}, got {numbers[name]}")
    if text is None:
        found = documents.empty_baseline("no test-set scores were given (monitoring.model_quality.dataset_s3_uri) for this model")
    else:
        try:
            found = documents.baseline_documents(text, source=source or "", threshold=numbers["DecisionThreshold"], tolerance=numbers["Tolerance"])
        except documents.ScoresError as error:
            raise DatasetError(str(error)) from None
    return {name: json.dumps(document, indent=1).encode() for name, document in found.items()}


def compute(s3: Any, properties: Mapping[str, Any]) -> dict[str, bytes]:
    """The baseline files of the properties' monitor."""
    monitor = properties["Monitor"]
    if monitor == DATA_QUALITY and "DatasetS3Uri" not in properties:
        return given_files(s3, properties)
    if monitor == MODEL_QUALITY and not properties.get("DatasetS3Uri"):
        return model_quality_documents(None, properties, source=None)
    uri = properties["DatasetS3Uri"]
    text = read_dataset(s3, uri)
    if monitor == MODEL_QUALITY:
        return model_quality_documents(text, properties, source=uri)
    if monitor == DATA_QUALITY:
        try:
            threshold = float(properties.get("DriftThreshold", DEFAULT_THRESHOLD))
        except ValueError:
            raise DatasetError(f"property DriftThreshold must be a number, got {properties['DriftThreshold']!r}") from None
        names = _names(properties, "FeatureNames") if properties.get("FeatureNames") else None
        return data_quality_documents(text, source=uri, threshold=threshold, feature_names=names)
    return explainability_documents(s3, properties, text, source=uri)


def write(s3: Any, bucket: str, prefix: str, files: Mapping[str, bytes]) -> dict[str, str]:
    """Each file under ``prefix``; returns ``{file: uri}``."""
    for name, body in files.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body, ContentType="application/json")
    return {name: f"s3://{bucket}/{prefix}/{name}" for name in files}


def publish(s3: Any, bucket: str, prefix: str, monitor: str) -> None:
    """Copy ``<prefix>/<file>`` to ``current/`` (server-side), as the SageMaker back end's resource and Promote do."""
    for name, destination in current_uris(bucket, monitor).items():
        _, key = aws.split_s3_uri(destination)
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": f"{prefix}/{name}"})


def on_event(event: dict[str, Any], context: Any = None, s3: Any = None) -> dict[str, Any]:
    kind = event["RequestType"]
    if kind == "Delete":  # first, and never failing: a rollback of a failed create deletes too
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    properties = event["ResourceProperties"]
    monitor = properties.get("Monitor")
    if monitor not in FILES:
        raise DatasetError(f"property Monitor must be one of {', '.join(FILES)}, got {monitor!r}")
    bucket = properties["MonitoringBucket"]
    current = current_uris(bucket, monitor)
    data = {f"{name.split('.')[0].title()}S3Uri": uri for name, uri in current.items()}
    digest = properties_hash(properties)
    physical = f"{monitor}-baseline-{digest}"
    s3 = s3 or aws.client("s3")
    if kind == "Update":
        if event.get("PhysicalResourceId") == physical:
            return {"PhysicalResourceId": physical, "Data": {**data, NEW_BASELINE: "false"}}
        same_data = _inputs(event.get("OldResourceProperties") or {}) == _inputs(properties)
        if same_data and shared_baseline.is_promoted(s3, current):
            return {"PhysicalResourceId": event["PhysicalResourceId"], "Data": {**data, NEW_BASELINE: "false"}}
    prefix = f"{monitor}/baselines/{digest}"
    write(s3, bucket, prefix, compute(s3, properties))
    publish(s3, bucket, prefix, monitor)
    shared_baseline.clear_promoted_marker(s3, current)
    return {"PhysicalResourceId": physical, "Data": {**data, NEW_BASELINE: "true", "BaselineS3Uri": f"s3://{bucket}/{prefix}/"}}


def _inputs(properties: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the user chose to baseline: a new choice replaces even a promoted baseline."""
    return tuple(properties.get(k) for k in ("DatasetS3Uri", "BaselineStatisticsS3Uri", "BaselineConstraintsS3Uri"))


handler = on_event
