"""SageMaker stand-ins that keep SageMaker's contracts, for the rehearsal and the retraining execution test.

moto 5.2 keeps SageMaker's control plane (CreateModel, CreateEndpointConfig, CreateEndpoint,
CreateTrainingJob, ... and their Describe calls) but runs nothing, and Step Functions' ``.sync``
for SageMaker is not implemented by its interpreter. What stands in here, and the contract each keeps:

- ``Endpoint(cloud, name).invoke(body, content_type, at, inference_id)``: InvokeEndpoint of the
  SageMaker XGBoost container on the artefact the endpoint's config's model names (``ModelDataUrl``,
  a ``model.tar.gz`` holding ``xgboost-model``), read from (moto) S3 and re-read whenever the
  endpoint moves to another config (UpdateEndpoint after a promotion); the config's first production
  variant serves (the app deploys one). ``text/csv`` in, one score a
  row out (``text/csv; charset=utf-8``, a line a row); or JSON Lines / JSON with the features under
  ``features_path`` and each score under ``score_path`` (the configuration's ``model.features_path``
  and ``score_path``: a JSON model, e.g. the ``jsonl`` environment's, served by the XGBoost stand-in). Data capture as SageMaker writes it, honouring
  the endpoint config's ``DataCaptureConfig``: ``EnableCapture``, ``InitialSamplingPercentage`` (each
  request captured with that probability: a seeded draw), ``CaptureOptions`` (Input, Output),
  ``CaptureContentTypeHeader`` (``CsvContentTypes`` / ``JsonContentTypes`` are captured as text,
  anything else base64) and ``KmsKeyId`` (SSE-KMS on every capture object). Layout:
  ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-SSS>-<uuid>.jsonl``, the hour of
  the request (UTC), one JSON line a request:
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html
  (the JSON format, key order and number form are those of
  ``stacks.shared.default_model.captures.capture_line``, which tests/local/rehearse/test_sagemaker.py
  checks byte for byte; ``eventMetadata.inferenceId`` is written when the caller passes one).
  SageMaker buffers captured requests and writes a file every few minutes: here a file holds the
  requests of one hour folder and at most ``FILE_SECONDS`` from its first request, and ``flush()``
  writes what is buffered (call it before delivering S3 events).
- ``install_sagemaker(cloud)``: ``.sync`` for ``createTrainingJob`` / ``createTransformJob`` /
  ``createProcessingJob`` (the task ends with DescribeX's output once the job ended, as Step
  Functions' ``.sync`` does; a failed job fails the task with ``States.TaskFailed`` and the job's
  description as the cause). The jobs:
  - training: the SageMaker XGBoost algorithm (``xgboost.train``) with the job's
    ``HyperParameters`` (``num_round`` the rounds, the rest XGBoost's parameters) on its
    ``train`` and ``validation`` channels (CSV, label first, no header: every object under the
    channel's S3 prefix), writing ``model.tar.gz`` (``xgboost-model``) to
    ``<S3OutputPath>/<job>/output/model.tar.gz`` and ``FinalMetricDataList`` as the container's metric
    definitions report them (``train:<metric>``, ``validation:<metric>``, the last round's);
    https://docs.aws.amazon.com/sagemaker/latest/dg/xgboost.html ,
    https://docs.aws.amazon.com/sagemaker/latest/dg/xgboost-tuning.html
  - transform: what the XGBoost container computes with batch transform's data processing: each
    input line (``SplitType`` Line) filtered by ``InputFilter``, scored, joined to the whole input
    line when ``JoinSource`` is ``Input`` (the score appended), filtered by ``OutputFilter``;
    output ``<S3OutputPath>/<path of the input object under the input prefix>.out``
    (https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html ,
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformOutput.html);
    ``S3Prefix`` and ``ManifestFile`` inputs; with ``DataCaptureConfig``, batch data capture in the
    layout ``lambdas/capture/records.py`` reads (``transform``). An artefact that does not load fails
    the job, as the container would.
  - processing: not rehearsed (Model Monitor and Clarify are SageMaker back ends): the job's first
    output receives placeholder documents of the analyzer's file names (statistics.json and
    constraints.json, or analysis.json for Clarify), named in ``unrehearsed``.
- ``UpdateEndpoint`` (not implemented by moto): the endpoint moves to the new config as SageMaker
  does when the update finishes (or, ``rollback=True``, stays, as after an auto-rollback).
- Step Functions: moto re-raises a failed Parallel branch's ``States.*`` error as a custom error
  name, which refuses the ``States.`` prefix (a ValueError no catch handles); Step Functions fails
  the Parallel state with the branch's error, which ``install_sagemaker`` keeps.
- ``route_lambda``: moto's Docker-less Lambda backend echoes the payload; a Step Functions Lambda
  task's invoke is routed to a Python callable (the retraining test's; the rehearsal's Cloud routes
  its own).

``Patches`` applies every patch with undo; pytest's ``monkeypatch`` has the same ``setattr`` and can be
passed instead. Development only: never deployed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import random
import re
import tarfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError
import numpy as np
import xgboost as xgb
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.sagemaker import models as sagemaker_models
from moto.sagemaker.responses import SageMakerResponse
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_unsupported as unsupported
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

from lambdas.shared import aws
from lambdas.shared.explain.results import Unexplainable
from lambdas.shared.explain.tree import MODEL_FILE, TreeExplainer
from local.rehearse.functions import holding_environment

REGION, ACCOUNT = "eu-west-1", "123456789012"  # the rehearsal's pseudo parameters (local/rehearse/cloud.py), tests.lambdas.aws_env's
FILE_SECONDS = 300  # how long a capture file collects requests before it is written (SageMaker: "every few minutes")
INPUT_ENCODINGS = {"csv": "CSV", "json": "JSON"}
OUTPUT_CONTENT_TYPE = "text/csv; charset=utf-8"  # what the XGBoost container answers to text/csv (samples/captures/*.jsonl)
SERVED_CONTENT_TYPES = ("text/csv", "application/jsonlines", "application/json")  # model.content_type's choices
_MISSING = object()


class Patches:
    """``setattr`` with ``undo()``: the method pytest's monkeypatch has, so either applies the stand-ins."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def setattr(self, target: Any, name: str, value: Any, raising: bool = True) -> None:
        old = getattr(target, name, _MISSING)
        if old is _MISSING and raising:
            raise AttributeError(f"{target!r} has no attribute {name!r}")
        self._saved.append((target, name, old))
        setattr(target, name, value)

    def undo(self) -> None:
        while self._saved:
            target, name, old = self._saved.pop()
            if old is _MISSING:
                delattr(target, name)
            else:
                setattr(target, name, old)


# -- artefacts ------------------------------------------------------------------------------------


def archive(booster: xgb.Booster) -> bytes:
    """A model.tar.gz as the XGBoost container writes it: the booster saved as ``xgboost-model``."""
    data, buffer = bytes(booster.save_raw(raw_format="ubj")), io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        member = tarfile.TarInfo(MODEL_FILE)
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def load_booster(s3: Any, url: str, name: str) -> xgb.Booster:
    """The booster of the artefact at ``url``; ``Unexplainable`` saying why one does not load."""
    bucket, key = aws.split_s3_uri(url)
    return TreeExplainer.from_artifact(s3.get_object(Bucket=bucket, Key=key)["Body"], name).booster


def _objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    return keys


# -- training -------------------------------------------------------------------------------------


class JobFailed(Exception):
    """The job fails with this reason (``FailureReason``), as SageMaker's would."""


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def xgboost_parameters(hyperparameters: dict[str, str]) -> tuple[dict[str, Any], int]:
    """(XGBoost parameters, rounds) of a training job's ``HyperParameters`` (all strings, as the
    API takes them): ``num_round`` is required by the algorithm; ``eval_metric`` may list several,
    comma-separated (https://docs.aws.amazon.com/sagemaker/latest/dg/xgboost_hyperparameters.html)."""
    if "num_round" not in hyperparameters:
        raise JobFailed("ClientError: hyperparameter num_round is required by the XGBoost algorithm")
    params: dict[str, Any] = {"verbosity": 0, "nthread": 1}
    for name, text in hyperparameters.items():
        if name == "num_round":
            continue
        params[name] = text.split(",") if name == "eval_metric" else _number(text)
    try:
        rounds = int(hyperparameters["num_round"])
    except ValueError:
        raise JobFailed(f"ClientError: num_round {hyperparameters['num_round']!r} is not a whole number") from None
    return params, rounds


def read_channel(s3: Any, channel: dict[str, Any]) -> np.ndarray:
    """A channel's rows (label first, no header) from every object under its S3 prefix."""
    name = channel["ChannelName"]
    content_type = str(channel.get("ContentType", "text/csv")).split(";")[0].strip()
    if content_type != "text/csv":
        raise JobFailed(f"ClientError: channel {name} has ContentType {content_type!r}; the stand-in reads text/csv (label first, no header)")
    bucket, prefix = aws.split_s3_uri(channel["DataSource"]["S3DataSource"]["S3Uri"])
    rows: list[list[float]] = []
    for key in _objects(s3, bucket, prefix):
        for number, line in enumerate(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append([float(value) for value in line.split(",")])
            except ValueError:
                raise JobFailed(f"ClientError: s3://{bucket}/{key} line {number} of channel {name} is not numeric CSV") from None
    if not rows:
        raise JobFailed(f"ClientError: channel {name} has no rows under s3://{bucket}/{prefix}")
    if len({len(row) for row in rows}) != 1:
        raise JobFailed(f"ClientError: channel {name}'s rows do not all have the same number of columns")
    return np.array(rows)


def train_xgboost(s3: Any, request: dict[str, Any]) -> tuple[bytes, list[dict[str, Any]]]:
    """What the SageMaker XGBoost algorithm does with a CreateTrainingJob request: the artefact and
    the final metrics (``train:<metric>`` and ``validation:<metric>``, the last round's)."""
    params, rounds = xgboost_parameters(request.get("HyperParameters") or {})
    channels = {channel["ChannelName"]: read_channel(s3, channel) for channel in request["InputDataConfig"]}
    if "train" not in channels:
        raise JobFailed(f"ClientError: no train channel (channels: {', '.join(sorted(channels))})")
    sets = [(name, xgb.DMatrix(rows[:, 1:], label=rows[:, 0], nthread=1)) for name, rows in channels.items() if name in ("train", "validation")]
    history: dict[str, dict[str, list[float]]] = {}
    try:
        booster = xgb.train(params, dict(sets)["train"], num_boost_round=rounds, evals=[(matrix, name) for name, matrix in sets], evals_result=history, verbose_eval=False)
    except xgb.core.XGBoostError as error:
        raise JobFailed(f"AlgorithmError: {str(error).splitlines()[0]}") from None
    metrics = [{"MetricName": f"{name}:{metric}", "Value": float(values[-1])} for name, by_metric in history.items() for metric, values in by_metric.items()]
    return archive(booster), metrics


# -- transform ------------------------------------------------------------------------------------

_FILTER = re.compile(r"^\$(?:\[(.*)\])?$")


def json_path_filter(expression: str | None, values: list[str]) -> list[str]:
    """A CSV row's values through batch transform's ``InputFilter`` / ``OutputFilter``: the JSONPath
    subset the documentation uses for CSV (``$``, ``$[i]``, ``$[i,j]``, ``$[a:b]``, ``$[a:]``, negative
    indexes): https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html"""
    if expression is None or expression == "$":
        return values
    match = _FILTER.match(expression.strip())
    if match is None or match[1] is None:
        raise JobFailed(f"ClientError: filter {expression!r} is not one the stand-in reads ($, $[i], $[i,j], $[a:b])")
    chosen: list[str] = []
    for part in match[1].split(","):
        part = part.strip()
        if ":" in part:
            start, _, stop = part.partition(":")
            chosen.extend(values[int(start) if start else None : int(stop) if stop else None])
        else:
            chosen.append(values[int(part)])
    return chosen


def _transform_inputs(s3: Any, data_source: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(bucket, key, path under the input prefix) of each input object: S3Prefix or ManifestFile
    (``[{"prefix": "s3://bucket/prefix/"}, "relative-key", ...]``:
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html)."""
    source = data_source["S3DataSource"]
    bucket, prefix = aws.split_s3_uri(source["S3Uri"])
    if source.get("S3DataType", "S3Prefix") == "ManifestFile":
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix)["Body"].read())
        # The prefix may be the bucket alone (``s3://bucket/``), as the nightly run's plan writes it.
        base_bucket, _, base_prefix = manifest[0]["prefix"].removeprefix("s3://").partition("/")
        return [(base_bucket, base_prefix + relative, relative) for relative in manifest[1:]]
    folder = prefix if prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return [(bucket, key, key[len(folder):]) for key in _objects(s3, bucket, prefix)]


def transform(s3: Any, sagemaker: Any, request: dict[str, Any], now: dt.datetime | None = None) -> list[str]:
    """A batch transform of the XGBoost container; returns the output URIs. With ``DataCaptureConfig``
    it also writes batch data capture as ``lambdas/capture/records.py`` documents it (and cites):
    ``<DestinationS3Uri>/input|output/yyyy/mm/dd/hh/<uuid>.json``, each a ManifestFile document naming
    the input objects and the output objects, and, with ``GenerateInferenceId``, each output line
    followed by ``,<inference ID>,<inference time>``."""
    url = sagemaker.describe_model(ModelName=request["ModelName"])["PrimaryContainer"]["ModelDataUrl"]
    try:
        booster = load_booster(s3, url, request["ModelName"])
    except Unexplainable as error:
        raise JobFailed(str(error)) from None
    processing = request.get("DataProcessing") or {}
    capture = request.get("DataCaptureConfig")
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    output_bucket, output_prefix = aws.split_s3_uri(request["TransformOutput"]["S3OutputPath"].rstrip("/") + "/")
    inputs, written = _transform_inputs(s3, request["TransformInput"]["DataSource"]), []
    for bucket, key, relative in inputs:
        lines = [line for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines() if line.strip()]
        try:
            features = np.array([[float(v) for v in json_path_filter(processing.get("InputFilter"), line.split(","))] for line in lines])
        except ValueError:
            raise JobFailed(f"ClientError: s3://{bucket}/{key} has a line that is not numeric CSV after InputFilter") from None
        scores = booster.predict(xgb.DMatrix(features.reshape(len(lines), -1), nthread=1)) if lines else []
        out = []
        for line, score in zip(lines, scores, strict=True):
            values = line.split(",") + [repr(float(score))] if processing.get("JoinSource") == "Input" else [repr(float(score))]
            values = json_path_filter(processing.get("OutputFilter"), values)
            if capture and capture.get("GenerateInferenceId"):
                values = [*values, str(uuid.uuid4()), inference_time(now)]
            out.append(",".join(values) + "\n")
        target = f"{output_prefix}{relative}.out"
        s3.put_object(Bucket=output_bucket, Key=target, Body="".join(out).encode())
        written.append(f"s3://{output_bucket}/{target}")
    if capture:
        from lambdas.capture.records import manifest_document  # the batch capture parser's own writer of the format

        bucket, prefix = aws.split_s3_uri(capture["DestinationS3Uri"].rstrip("/") + "/")
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": capture["KmsKeyId"]} if capture.get("KmsKeyId") else {}
        for part, uris in (("input", [f"s3://{b}/{k}" for b, k, _ in inputs]), ("output", written)):
            grouped: dict[str, list[str]] = {}
            for uri in uris:
                object_bucket, object_key = aws.split_s3_uri(uri)
                grouped.setdefault(object_bucket, []).append(object_key)
            for object_bucket, keys in grouped.items():
                s3.put_object(Bucket=bucket, Key=f"{prefix}{part}/{now:%Y/%m/%d/%H}/{uuid.uuid4()}.json", Body=manifest_document(object_bucket, keys), **extra)
    return written


# -- the .sync tasks, UpdateEndpoint, Lambda, Parallel errors --------------------------------------


def _plain(value: Any) -> Any:
    """A Describe* response as a task's JSON output: timestamps as epoch milliseconds (numbers, which
    is how this stand-in writes them; moto's interpreter cannot serialise datetimes, and the service
    was not checked here), no ResponseMetadata."""
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def failed_job(env: Any, action: str, described: dict[str, Any]) -> Callable[[], Any]:
    """The resolver of a ``.sync`` task whose job failed: States.TaskFailed with the job's description."""

    def resolve() -> Any:
        details = TaskFailedEventDetails(resource=f"{action}.sync", resourceType="sagemaker", error="States.TaskFailed", cause=json.dumps(described, default=str))
        raise FailureEventException(
            FailureEvent(env=env, error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed), event_type=HistoryEventType.TaskFailed, event_details=EventDetails(taskFailedEventDetails=details))
        )

    return resolve


def _branch_error(error_name: str) -> Any:
    return StatesErrorName.from_name(error_name) if error_name.startswith("States.") else CustomErrorName(error_name=error_name)


Trainer = Callable[[Any, dict[str, Any]], tuple[bytes, list[dict[str, Any]] | None]]


@dataclass
class SageMakerStandIns:
    """The installed stand-ins: what Step Functions asked of SageMaker (``requests`` by API action, as
    sent), what they did (``log``), what they could not rehearse (``unrehearsed``)."""

    region: str = REGION
    account: str = ACCOUNT
    trainer: Trainer = train_xgboost  # (s3, CreateTrainingJob request) -> (model.tar.gz, FinalMetricDataList or None)
    rollback: bool = False
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    unrehearsed: list[str] = field(default_factory=list)
    deployment_config: dict[str, Any] | None = None  # the last UpdateEndpoint's DeploymentConfig
    patches: Any = None

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def backend(self) -> Any:
        return sagemaker_models.sagemaker_backends[self.account][self.region]

    def uninstall(self) -> None:
        if isinstance(self.patches, Patches):
            self.patches.undo()

    def _note(self, text: str) -> None:
        if text not in self.unrehearsed:
            self.unrehearsed.append(text)

    def resolver(self, env: Any, action: str, request: dict[str, Any]) -> Callable[[], Any]:
        self.requests.setdefault(action, []).append(request)
        s3, sagemaker = self.client("s3"), self.client("sagemaker")
        if action == "createTrainingJob":
            name = request["TrainingJobName"]
            job = self.backend().training_jobs[name]
            try:
                artefact, metrics = self.trainer(s3, request)
            except JobFailed as error:
                job.training_job_status = "Failed"
                return failed_job(env, action, {**sagemaker.describe_training_job(TrainingJobName=name), "TrainingJobStatus": "Failed", "FailureReason": str(error)})
            job.final_metric_data_list = None if metrics is None else [{**m, "Timestamp": m.get("Timestamp", job.training_end_time)} for m in metrics]
            bucket, key = aws.split_s3_uri(job.model_artifacts["S3ModelArtifacts"])
            s3.put_object(Bucket=bucket, Key=key, Body=artefact)
            self.log.append({"kind": "training", "job": name, "artefact": f"s3://{bucket}/{key}", "metrics": job.final_metric_data_list})
            return lambda: _plain(sagemaker.describe_training_job(TrainingJobName=name))
        if action == "createTransformJob":
            name = request["TransformJobName"]
            try:
                outputs = transform(s3, sagemaker, request)
            except JobFailed as error:
                self.backend().transform_jobs[name].transform_job_status = "Failed"
                return failed_job(env, action, {**sagemaker.describe_transform_job(TransformJobName=name), "TransformJobStatus": "Failed", "FailureReason": str(error)})
            self.log.append({"kind": "transform", "job": name, "outputs": outputs})
            return lambda: _plain(sagemaker.describe_transform_job(TransformJobName=name))
        if action == "createProcessingJob":
            name = request["ProcessingJobName"]
            output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
            bucket, prefix = aws.split_s3_uri(output.rstrip("/") + "/")
            files = ("analysis.json",) if "shap" in name else ("statistics.json", "constraints.json")
            for file in files:
                s3.put_object(Bucket=bucket, Key=f"{prefix}{file}", Body=json.dumps({"job": name, "file": file}).encode())
            self._note("SageMaker processing jobs (Model Monitor and Clarify baselines): placeholder documents, not computed")
            self.log.append({"kind": "processing", "job": name, "outputs": [f"s3://{bucket}/{prefix}{file}" for file in files]})
            return lambda: _plain(sagemaker.describe_processing_job(ProcessingJobName=name))
        raise NotImplementedError(f"no .sync stand-in for SageMaker {action}")

    def update_endpoint(self, params: dict[str, Any]) -> str:
        endpoint = self.backend().endpoints[params["EndpointName"]]
        self.deployment_config = params.get("DeploymentConfig")
        if not self.rollback:
            endpoint.endpoint_config_name = params["EndpointConfigName"]
        self.log.append({"kind": "update-endpoint", "endpoint": params["EndpointName"], "config": params["EndpointConfigName"], "rolledBack": self.rollback})
        return json.dumps({"EndpointArn": endpoint.arn})


def install_sagemaker(cloud: Any = None, *, patch: Any = None, trainer: Trainer | None = None, rollback: bool = False,
                      region: str | None = None, account: str | None = None) -> SageMakerStandIns:  # fmt: skip
    """Patch moto (inside ``mock_aws``) so SageMaker ``.sync`` tasks, UpdateEndpoint and Parallel
    branch errors behave as described in this module's docstring. ``patch``: pytest's monkeypatch,
    or None for a ``Patches`` (``uninstall()`` undoes it). ``trainer`` replaces the XGBoost training
    (a test choosing its candidate). ``cloud``: the rehearsal's Cloud (its region and account, and its
    ``unrehearsed`` list receives what these stand-ins do not rehearse)."""
    stand_ins = SageMakerStandIns(
        region=region or getattr(cloud, "region", REGION), account=account or getattr(cloud, "account", ACCOUNT),
        trainer=trainer or train_xgboost, rollback=rollback, patches=patch or Patches(),
    )  # fmt: skip
    if cloud is not None and isinstance(getattr(cloud, "unrehearsed", None), list):
        stand_ins.unrehearsed = cloud.unrehearsed
        stand_ins._note("SageMaker runs no container: the endpoint, training and batch transform jobs are in-process XGBoost stand-ins keeping SageMaker's contracts (local/rehearse/sagemaker.py)")

    def build_sync_resolver(task, env, resource_runtime_part, normalised_parameters, state_credentials):
        # On moto's execution thread: the stand-ins make boto3 clients, which read os.environ, while a
        # rehearsed function's call may be swapping it (functions.ENVIRONMENT_LOCK).
        resolved = holding_environment(stand_ins.resolver)(env, task.resource.api_action, normalised_parameters)
        return holding_environment(resolved)

    def update_endpoint(response):
        return stand_ins.update_endpoint(json.loads(response.body))

    patcher = stand_ins.patches
    patcher.setattr(unsupported.StateTaskServiceUnsupported, "_build_sync_resolver", build_sync_resolver)
    patcher.setattr(unsupported, "_SUPPORTED_INTEGRATION_PATTERNS", {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync})
    patcher.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
    patcher.setattr(branches_decl, "CustomErrorName", _branch_error)
    return stand_ins


def route_lambda(patch: Any, call: Callable[[str, Any], Any]) -> None:
    """Step Functions' Lambda tasks (moto's Docker-less backend) answered by ``call(function, payload)``."""

    def invoke(backend, function_name, qualifier, body, headers, response_headers):
        return json.dumps(call(function_name, json.loads(body))).encode()

    patch.setattr(LambdaSimpleBackend, "invoke", invoke)


# -- SageMaker resources from the templates -------------------------------------------------------


def _generated_name(logical_id: str, stack: str) -> str:
    """A name as CloudFormation generates one when the template gives none (at most 63 characters)."""
    digest = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9]', '', logical_id)[:50]}-{digest}"


def create_sagemaker_resource(resource_type: str, logical_id: str, properties: dict[str, Any], *, stack: str = "", region: str = REGION) -> tuple[str, dict[str, str]]:
    """Create in moto an ``AWS::SageMaker::Model`` / ``EndpointConfig`` / ``Endpoint`` of a template
    (properties resolved): (Ref value, attributes). Ref is the ARN; GetAtt ``ModelName``,
    ``EndpointConfigName``, ``EndpointName``
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-sagemaker-model.html#aws-resource-sagemaker-model-return-values
    and the endpoint config's and endpoint's pages)."""
    sagemaker = boto3.client("sagemaker", region_name=region)
    if resource_type == "AWS::SageMaker::Model":
        name = properties.get("ModelName") or _generated_name(logical_id, stack)
        args = {k: v for k, v in properties.items() if k in ("ExecutionRoleArn", "PrimaryContainer", "Containers", "EnableNetworkIsolation", "VpcConfig")}
        arn = sagemaker.create_model(ModelName=name, **args)["ModelArn"]
        return arn, {"ModelName": name}
    if resource_type == "AWS::SageMaker::EndpointConfig":
        name = properties.get("EndpointConfigName") or _generated_name(logical_id, stack)
        args = {k: v for k, v in properties.items() if k in ("ProductionVariants", "DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig")}
        arn = sagemaker.create_endpoint_config(EndpointConfigName=name, **args)["EndpointConfigArn"]
        return arn, {"EndpointConfigName": name}
    if resource_type == "AWS::SageMaker::Endpoint":
        name = properties.get("EndpointName") or _generated_name(logical_id, stack)
        arn = sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=properties["EndpointConfigName"])["EndpointArn"]
        return arn, {"EndpointName": name}
    raise NotImplementedError(f"{resource_type} is not created by the SageMaker stand-ins")


# -- the endpoint ---------------------------------------------------------------------------------


def inference_time(at: dt.datetime) -> str:
    """``eventMetadata.inferenceTime`` as SageMaker writes it: UTC, seconds, ``Z``."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def capture_record(body: str, content_type: str, output: str, output_type: str, *, event_id: str, at: dt.datetime,
                   inference_id: str | None = None, modes: Iterable[str] = ("Input", "Output"),
                   csv_types: Iterable[str] = (), json_types: Iterable[str] = ()) -> str:  # fmt: skip
    """One request as a data-capture JSON line (compact, SageMaker's key order)."""

    def part(mode: str, observed: str, data: str) -> dict[str, str]:
        media = observed.split(";")[0].strip().lower()
        if media in {t.lower() for t in csv_types}:
            encoding, text = "CSV", data
        elif media in {t.lower() for t in json_types}:
            encoding, text = "JSON", data
        else:
            encoding, text = "BASE64", base64.b64encode(data.encode()).decode()
        return {"observedContentType": observed, "mode": mode, "data": text, "encoding": encoding}

    modes = set(modes)
    capture: dict[str, Any] = {}
    if "Input" in modes:
        capture["endpointInput"] = part("INPUT", content_type, body)
    if "Output" in modes:
        capture["endpointOutput"] = part("OUTPUT", output_type, output)
    metadata = {"eventId": event_id, **({"inferenceId": inference_id} if inference_id else {}), "inferenceTime": inference_time(at)}
    return json.dumps({"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}, separators=(",", ":"))


@dataclass
class _File:
    first: dt.datetime
    lines: list[str]


class Endpoint:
    """InvokeEndpoint of the XGBoost container behind ``endpoint_name`` in the rehearsal's (moto's)
    SageMaker, with data capture as SageMaker writes it (module docstring). ``seed``: the sampling
    draws and the event and file IDs (uuid4 from a seeded generator), so a rehearsal is repeatable."""

    def __init__(self, cloud: Any, endpoint_name: str, *, seed: int = 0, file_seconds: int = FILE_SECONDS,
                 features_path: str = "features", score_path: str = "score") -> None:  # fmt: skip
        self.region, self.account = getattr(cloud, "region", REGION), getattr(cloud, "account", ACCOUNT)
        self.name = endpoint_name
        self._serving_now: tuple[str, dict[str, Any], dict[str, Any], xgb.Booster] | None = None
        self.file_seconds = file_seconds
        self.features_path, self.score_path = features_path, score_path  # model.features_path / score_path, for JSON requests
        self._random = random.Random(seed)
        self._boosters: dict[str, xgb.Booster] = {}
        self._file: _File | None = None
        self._target: tuple[str, str, str | None] | None = None  # bucket, folder, KMS key of the open file
        self.requests = self.captured = 0
        self.written: list[str] = []  # every capture object, s3://bucket/key
        self.sagemaker, self.s3 = boto3.client("sagemaker", region_name=self.region), boto3.client("s3", region_name=self.region)
        try:
            self.sagemaker.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as error:
            raise LookupError(f"no endpoint {endpoint_name!r} in the rehearsal's SageMaker (the Serving template's AWS::SageMaker::Endpoint, "
                              f"created by create_sagemaker_resource): {error}") from None  # fmt: skip

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _serving(self) -> tuple[dict[str, Any], dict[str, Any], xgb.Booster]:
        """(production variant, capture config, booster) of the endpoint's config now. The config's name
        is read from moto's SageMaker state on every request (as the service routes each request to the
        endpoint's current config); the config, its model and the artefact only when it changes (an API
        round trip through moto costs about 13 ms, three a request would be most of a rehearsal)."""
        config_name = sagemaker_models.sagemaker_backends[self.account][self.region].endpoints[self.name].endpoint_config_name
        if self._serving_now is None or self._serving_now[0] != config_name:
            config = self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
            variant = config["ProductionVariants"][0]
            url = self.sagemaker.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]["ModelDataUrl"]
            if url not in self._boosters:
                self._boosters[url] = load_booster(self.s3, url, variant["ModelName"])
            self._serving_now = (config_name, variant, config.get("DataCaptureConfig") or {}, self._boosters[url])
        return self._serving_now[1:]

    def _rows(self, body: str, media_type: str) -> list[list[Any]]:
        """The request's rows: CSV lines, JSON Lines objects' ``features_path``, or a JSON document's
        ``instances`` (each its ``features_path``) or ``features_path``."""
        try:
            if media_type == "text/csv":
                return [[float(v) for v in line.split(",")] for line in body.splitlines() if line.strip()]
            if media_type == "application/jsonlines":
                return [json.loads(line)[self.features_path] for line in body.splitlines() if line.strip()]
            document = json.loads(body)
            if isinstance(document, dict) and isinstance(document.get("instances"), list):
                return [instance[self.features_path] if isinstance(instance, dict) else instance for instance in document["instances"]]
            return [document[self.features_path]]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"body is not a {media_type} request of the model's features ({type(error).__name__}: {error}): {body[:80]!r}") from None

    def _answer(self, scores: list[float], media_type: str) -> tuple[str, str]:
        """(response body, its content type): a score a line for CSV; ``{score_path: score}`` a line for
        JSON Lines; ``{"predictions": [{score_path: score}, ...]}`` for JSON (what the capture parser reads)."""
        if media_type == "text/csv":
            return "\n".join(repr(s) for s in scores), OUTPUT_CONTENT_TYPE
        if media_type == "application/jsonlines":
            return "\n".join(json.dumps({self.score_path: s}) for s in scores), media_type
        return json.dumps({"predictions": [{self.score_path: s} for s in scores]}), media_type

    def invoke(self, body: str, content_type: str = "text/csv", at: dt.datetime | None = None, inference_id: str | None = None) -> list[float]:
        """The model's score of each row of ``body`` (the features in order: CSV, one row a line; or JSON
        Lines / JSON with the features under ``features_path``)."""
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in SERVED_CONTENT_TYPES:
            raise ValueError(f"content_type {content_type!r} is not served by the endpoint stand-in; allowed: {', '.join(SERVED_CONTENT_TYPES)}")
        at = at or dt.datetime.now(dt.UTC)
        variant, capture, booster = self._serving()
        rows = self._rows(body, media_type)
        try:
            features = np.array(rows, dtype=float)
        except (ValueError, TypeError):
            raise ValueError(f"body's features are not numbers: {body[:80]!r}") from None
        if features.ndim != 2 or features.shape[1] != booster.num_features():
            raise ValueError(f"body has {features.shape[-1] if features.size else 0} features a row; the model takes {booster.num_features()}")
        scores = [float(s) for s in booster.predict(xgb.DMatrix(features, nthread=1))]  # one thread: 0.3 ms, not 22 ms, a one-row request here
        self.requests += 1
        sampled = self._random.random() * 100 < float(capture.get("InitialSamplingPercentage", 0))
        event_id = self._uuid()
        if capture.get("EnableCapture") and sampled:
            header = capture.get("CaptureContentTypeHeader") or {}
            answer, answer_type = self._answer(scores, media_type)
            line = capture_record(
                body, content_type, answer, answer_type, event_id=event_id, at=at, inference_id=inference_id,
                modes=[o["CaptureMode"] for o in capture.get("CaptureOptions", [])],
                csv_types=header.get("CsvContentTypes", ()), json_types=header.get("JsonContentTypes", ()),
            )  # fmt: skip
            self._capture(capture, variant["VariantName"], at, line)
        return scores

    def _capture(self, capture: dict[str, Any], variant: str, at: dt.datetime, line: str) -> None:
        bucket, prefix = aws.split_s3_uri(capture["DestinationS3Uri"].rstrip("/") + "/")
        at = at.astimezone(dt.UTC)
        target = (bucket, f"{prefix}{self.name}/{variant}/{at:%Y/%m/%d/%H}/", capture.get("KmsKeyId"))
        if self._file is not None and (target != self._target or (at - self._file.first).total_seconds() >= self.file_seconds):
            self.flush()
        if self._file is None:
            self._file, self._target = _File(at, []), target
        self._file.lines.append(line + "\n")
        self.captured += 1

    def flush(self) -> list[str]:
        """Write the open capture file, if any: its ``s3://`` URI in a list."""
        if self._file is None or self._target is None:
            return []
        bucket, folder, key_id = self._target
        first = self._file.first
        key = f"{folder}{first:%M-%S}-{first.microsecond // 1000:03d}-{self._uuid()}.jsonl"
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id} if key_id else {}
        self.s3.put_object(Bucket=bucket, Key=key, Body="".join(self._file.lines).encode(), ContentType="application/octet-stream", **extra)
        self._file = None
        self.written.append(f"s3://{bucket}/{key}")
        return [self.written[-1]]
