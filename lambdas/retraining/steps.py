"""The retraining state machine's Lambda steps. Each takes the state's input and returns a small
JSON result; SageMaker jobs themselves run as Step Functions ``.sync`` tasks between them.

- ``assemble``: the training set (``dataset.assemble``) and the names of everything this run creates;
- ``evaluate``: the new model's objective metric (DescribeTrainingJob's ``FinalMetricDataList``)
  against the serving model's, with the tolerance;
- ``baselineDataset``: the data-quality baseline dataset of the new model: the batch transform's
  joined output (each training row followed by the new model's score) rewritten as the header of
  ``lambdas.shared.baseline`` and one row per record, score first, then the features;
- ``baselines``: the monitors' baseline job requests for the new model and data (the same requests
  the monitoring stack's baseline custom resources send, from templates it provides);
- ``openBaselines`` (the open monitoring back end, which has no jobs): the baselines themselves,
  computed by the code of the open back end's baseline custom resource, under
  ``<monitor>/baselines/<execution>/``;
- ``deploy``: a copy of the live endpoint config (same variant, instances, KMS and data capture,
  including the capture percentage operators set) naming the new model, then UpdateEndpoint with
  blue/green deployment guardrails and automatic rollback on the configured alarms;
- ``endpoint``: where the update stands (UpdateEndpoint is request-only: the machine polls this);
- ``promote``: the new baselines into the monitors' fixed ``current/`` files with the promoted
  marker (so a monitoring-stack update keeps them), the model artefact into the serving stack's
  parameter (so a serving-stack update keeps serving it), and the lineage record (data, labels,
  metrics, triggers) next to the model artefact and as ``current.json``.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.monitoring.baseline_job.handler import processing_job_request, publish_outputs, write_documents
from lambdas.monitoring.open import baseline as open_baseline
from lambdas.retraining import dataset
from lambdas.shared import aws
from lambdas.shared.baseline import header, write_promoted_marker

RETRAINING_PREFIX = "retraining"  # in the datasets and models buckets
CURRENT_LINEAGE = "current.json"
LINEAGE_FILE = "lineage.json"
SCORES_FOLDER = "scores"  # the batch transform's output: each training row, then the new model's score
BASELINE_FOLDER = "baseline"  # the data-quality baseline dataset built from it
BASELINE_FILE = "baseline.csv"
BASELINE_REJECTED_FILE = "baseline-rejected.jsonl"
# A template's "dataset": which data its baseline job reads (see baselines()).
SCORED_DATASET, TRAINING_DATASET = "scored", "training"


class StepError(RuntimeError):
    """A step that cannot go on; the execution fails with this message (and notifies)."""


@dataclass(frozen=True)
class StepSettings:
    prefix: str  # <app>-<env>
    endpoint_name: str
    datasets_bucket: str
    models_bucket: str
    training_data_s3_uri: str
    labels_bucket: str | None
    feature_names: tuple[str, ...]
    label_count: int
    validation_percentage: int
    objective_metric: str
    objective_goal: str  # minimize | maximize
    tolerance: float
    deployment: dict[str, Any]  # UpdateEndpoint DeploymentConfig
    served_model_parameter: str  # SSM parameter the serving stack reads the model artefact from

    @property
    def feature_count(self) -> int:
        return len(self.feature_names)


def names(settings: StepSettings, execution: str) -> dict[str, str]:
    """Every SageMaker name this run uses: ``<app>-<env>-<execution>`` (at most 63 characters)."""
    base = f"{settings.prefix}-{execution}"
    if len(base) > 63:
        raise StepError(f"execution name {execution!r} makes {base!r} longer than SageMaker's 63 characters; start runs with put-events")
    return {"execution": execution, "trainingJob": base, "model": base, "transformJob": base, "endpointConfig": base}


def run_locations(datasets_bucket: str, models_bucket: str, execution: str) -> dict[str, str]:
    """Where a run's data, model and scores go. The stack derives the jobs' grants from these with
    ``execution`` "*" (every run), so a location is defined here only."""
    output = f"s3://{datasets_bucket}/{RETRAINING_PREFIX}/{execution}/"
    return {
        "outputS3Uri": output,
        "trainS3Uri": f"{output}{dataset.TRAIN_CHANNEL}",
        "validationS3Uri": f"{output}{dataset.VALIDATION_CHANNEL}",
        "modelOutputS3Uri": f"s3://{models_bucket}/{RETRAINING_PREFIX}/{execution}/",
        "scoresS3Uri": f"{output}{SCORES_FOLDER}/",
        "baselineS3Uri": f"{output}{BASELINE_FOLDER}/",
    }


def assemble(event: dict[str, Any], settings: StepSettings, s3: Any) -> dict[str, Any]:
    run = names(settings, event["execution"])
    locations = run_locations(settings.datasets_bucket, settings.models_bucket, run["execution"])
    output = locations.pop("outputS3Uri")
    result = dataset.assemble(
        s3,
        dataset.DatasetSettings(
            training_data_s3_uri=settings.training_data_s3_uri,
            labels_bucket=settings.labels_bucket,
            output_s3_uri=output,
            feature_count=settings.feature_count,
            label_count=settings.label_count,
            validation_percentage=settings.validation_percentage,
        ),
    )
    return {**result, **locations, "names": run}


def _metric(metrics: list[dict[str, Any]] | None, name: str) -> float | None:
    values = [m["Value"] for m in metrics or [] if m.get("MetricName") == name]
    return float(values[-1]) if values else None


def current_lineage(s3: Any, settings: StepSettings) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=settings.models_bucket, Key=f"{RETRAINING_PREFIX}/{CURRENT_LINEAGE}")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def evaluate(event: dict[str, Any], settings: StepSettings, s3: Any, sagemaker: Any) -> dict[str, Any]:
    """Promote when the candidate is not worse than the serving model by more than the tolerance.

    The metrics are read here, not selected in the Train state: a job that reports none has no
    ``FinalMetricDataList``, and a state's ResultSelector on a missing field is a ``States.Runtime``
    error no catch handles; here it is a StepError, which the execution notifies.
    """
    metric, job = settings.objective_metric, event["training"]["TrainingJobName"]
    reported = sagemaker.describe_training_job(TrainingJobName=job).get("FinalMetricDataList") or []
    candidate = _metric(reported, metric)
    if candidate is None:
        names = sorted({m.get("MetricName") for m in reported})
        raise StepError(f"training job {job} reported no {metric}; it reported: {', '.join(names) or 'nothing'}")
    lineage = current_lineage(s3, settings)
    current = (lineage or {}).get("metrics", {}).get(metric)
    result = {
        "metric": metric, "goal": settings.objective_goal, "tolerance": settings.tolerance, "candidate": candidate, "current": current,
        "metrics": {m["MetricName"]: m["Value"] for m in reported},
    }  # fmt: skip
    if current is None:
        return {**result, "promote": True, "reason": f"no {metric} is recorded for the serving model; the candidate's {candidate:.6g} becomes the reference"}
    worse_by = (candidate - current) if settings.objective_goal == "minimize" else (current - candidate)
    promote = worse_by <= settings.tolerance
    verdict = "not worse than" if worse_by <= 0 else ("within tolerance of" if promote else "worse than")
    reason = f"candidate {metric} {candidate:.6g} is {verdict} the serving model's {current:.6g} ({settings.objective_goal}, tolerance {settings.tolerance:g})"
    return {**result, "promote": promote, "reason": reason}


def baseline_dataset(event: dict[str, Any], settings: StepSettings, s3: Any) -> dict[str, Any]:
    """The data-quality baseline dataset of the new model, from the batch transform's output.

    The transform read ``train/`` with the label filtered out of the model's input (``$[1:]``) and
    joined each output line to its input line, so each line is ``label, features..., score`` (CSV
    join: the input row, then the prediction). What captures hold at run time, and so what the
    baseline describes, is the score then the features: the label is dropped. A line that is not
    of that shape is written to ``baseline-rejected.jsonl`` with its reason.
    """
    run = event["names"]
    scores_bucket, scores_prefix = aws.split_s3_uri(event["dataset"]["scoresS3Uri"])
    out_bucket, out_prefix = aws.split_s3_uri(event["dataset"]["baselineS3Uri"])
    rejected_key = f"{RETRAINING_PREFIX}/{run['execution']}/{BASELINE_REJECTED_FILE}"
    expected = settings.feature_count + 2
    rows = rejected = 0
    with tempfile.TemporaryDirectory() as scratch:
        path, rejected_path = os.path.join(scratch, BASELINE_FILE), os.path.join(scratch, BASELINE_REJECTED_FILE)
        with open(path, "w", newline="", encoding="utf-8") as output, open(rejected_path, "w", encoding="utf-8") as parked:
            writer = csv.writer(output, lineterminator="\n")
            writer.writerow(header(settings.feature_names))
            for item in sorted(dataset.objects_under(s3, scores_bucket, scores_prefix), key=lambda o: o["Key"]):
                body = s3.get_object(Bucket=scores_bucket, Key=item["Key"])["Body"]
                lines = (line.decode("utf-8", errors="replace") for line in body.iter_lines())
                for number, fields in enumerate(csv.reader(lines), start=1):
                    if not fields:
                        continue
                    reason = _scored_row_problem(fields, expected)
                    if reason is not None:
                        rejected += 1
                        parked.write(json.dumps({"source": f"s3://{scores_bucket}/{item['Key']}", "line": number, "row": fields[:expected + 5], "reason": reason}) + "\n")
                        continue
                    writer.writerow([fields[-1].strip(), *(value.strip() for value in fields[1:-1])])
                    rows += 1
        if rows == 0:
            raise StepError(f"the batch transform of {run['transformJob']} wrote no usable rows under {event['dataset']['scoresS3Uri']} ({rejected} rejected)")
        s3.upload_file(path, out_bucket, f"{out_prefix}{BASELINE_FILE}")
        if rejected:
            s3.upload_file(rejected_path, settings.datasets_bucket, rejected_key)
    return {
        "s3Uri": f"s3://{out_bucket}/{out_prefix}",
        "rows": rows,
        "rejectedRows": rejected,
        "rejectedS3Uri": f"s3://{settings.datasets_bucket}/{rejected_key}" if rejected else None,
    }


def _scored_row_problem(fields: list[str], expected: int) -> str | None:
    if len(fields) != expected:
        return f"{len(fields)} fields, expected {expected} (label, {expected - 2} features, then one score)"
    try:
        dataset.normalised_number(fields[-1])
    except ValueError as error:
        return f"score is not a finite number: {error}"
    return None


def baselines(event: dict[str, Any], s3: Any) -> dict[str, Any]:
    """Each monitor's baseline request for this run: its template with the new data and model.

    A template's ``dataset`` says what its job reads: ``scored`` (data quality) the new model's
    baseline dataset from ``baselineDataset`` (with a header), ``training`` (Clarify) the assembled
    ``train/`` set, label first and headerless, as its analysis config expects.
    ``jobs`` (by monitor) feeds the machine's ``createProcessingJob.sync`` task of each monitor, which
    reads every field of ``PROCESSING_FIELDS`` by path, so each is present; ``monitors`` is what
    ``promote`` publishes.
    """
    monitors, jobs = {}, {}
    for monitor, template in (event.get("templates") or {}).items():
        request = copy.deepcopy(template["request"])
        if template["dataset"] == SCORED_DATASET:
            if not event.get("baselineDataset"):
                raise StepError(f"the {monitor} baseline reads the new model's scored dataset, and this run built none")
            uri = event["baselineDataset"]["s3Uri"]
            environment = request.setdefault("Environment", {})
            dataset_format = json.loads(environment.get("dataset_format") or "{}")
            dataset_format.setdefault("csv", {})["header"] = True
            environment["dataset_format"] = json.dumps(dataset_format)
        else:
            uri = event["dataset"]["trainS3Uri"]
        for item in request["ProcessingInputs"]:
            if item["InputName"] == template["datasetInput"]:
                item["S3Input"]["S3Uri"] = uri
        for document in (request.get("Documents") or {}).values():
            if isinstance(document["Body"].get("predictor"), dict):  # Clarify: explain the new model
                document["Body"]["predictor"]["model_name"] = event["names"]["model"]
        job, documents = processing_job_request({"Request": json.dumps(request)}, event["names"]["execution"])
        write_documents(s3, documents)
        job.setdefault("Environment", {})
        jobs[monitor] = job
        monitors[monitor] = {"outputS3Uri": job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"], "publish": template["publish"], "job": job["ProcessingJobName"]}
    return {"jobs": jobs, "monitors": monitors}


def open_baselines(event: dict[str, Any], settings: StepSettings, s3: Any) -> dict[str, Any]:
    """The open back end's baselines of the new model, in the shape ``promote`` publishes
    (``monitors``: output folder and the ``current/`` files by monitor).

    ``event["monitors"]`` (fixed in the state machine) names each monitor's kind and bucket, and its
    drift threshold (data quality) or explained label (explainability). Data quality baselines the
    new model's scored dataset from ``baselineDataset``; explainability explains the training rows
    (``train.csv``, label first, no header) with the new model's artefact. A dataset that cannot be
    baselined fails the step (``open_baseline.DatasetError``), and the execution notifies it.
    """
    execution = event["names"]["execution"]
    monitors = {}
    for name, spec in (event.get("monitors") or {}).items():
        kind, bucket = spec["monitor"], spec["bucket"]
        if kind == open_baseline.DATA_QUALITY:
            if not event.get("baselineDataset"):
                raise StepError(f"the {name} baseline reads the new model's scored dataset, and this run built none")
            uri = f"{event['baselineDataset']['s3Uri']}{BASELINE_FILE}"
            files = open_baseline.data_quality_documents(
                open_baseline.read_dataset(s3, uri), source=uri, threshold=float(spec["threshold"]), feature_names=settings.feature_names
            )
        else:
            uri = event["dataset"]["trainFileS3Uri"]
            properties = {"ModelDataUrl": event["training"]["ModelArtifacts"]["S3ModelArtifacts"], "FeatureNames": list(settings.feature_names), "LabelName": spec["label"]}
            files = open_baseline.explainability_documents(s3, properties, open_baseline.read_dataset(s3, uri), source=uri)
        prefix = f"{kind}/baselines/{execution}"
        open_baseline.write(s3, bucket, prefix, files)
        monitors[name] = {"outputS3Uri": f"s3://{bucket}/{prefix}", "publish": open_baseline.current_uris(bucket, kind)}
    return {"monitors": monitors}


def deploy(event: dict[str, Any], settings: StepSettings, sagemaker: Any) -> dict[str, Any]:
    endpoint = sagemaker.describe_endpoint(EndpointName=settings.endpoint_name)
    if endpoint["EndpointStatus"] != "InService":
        raise StepError(f"endpoint {settings.endpoint_name} is {endpoint['EndpointStatus']}, not InService; nothing was changed")
    previous = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = event["names"]["model"]
    variants = [{**_variant(v), "ModelName": model} for v in previous["ProductionVariants"]]
    request: dict[str, Any] = {"EndpointConfigName": event["names"]["endpointConfig"], "ProductionVariants": variants}
    for key in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig", "EnableNetworkIsolation", "VpcConfig", "ExecutionRoleArn"):
        if key in previous:
            request[key] = previous[key]
    request["Tags"] = [{"Key": "retraining-execution", "Value": event["names"]["execution"]}]
    try:
        sagemaker.create_endpoint_config(**request)
    except ClientError as error:
        if "already existing" not in str(error):  # a retried step: the config is ours from the first try
            raise
    sagemaker.update_endpoint(EndpointName=settings.endpoint_name, EndpointConfigName=request["EndpointConfigName"], DeploymentConfig=settings.deployment)
    return {"endpointConfigName": request["EndpointConfigName"], "previousEndpointConfigName": endpoint["EndpointConfigName"]}


_VARIANT_KEYS = (
    "VariantName", "InitialInstanceCount", "InstanceType", "InitialVariantWeight", "AcceleratorType",
    "CoreDumpConfig", "ServerlessConfig", "VolumeSizeInGB", "ModelDataDownloadTimeoutInSeconds",
    "ContainerStartupHealthCheckTimeoutInSeconds", "EnableSSMAccess", "ManagedInstanceScaling", "RoutingConfig",
)  # fmt: skip


def _variant(described: dict[str, Any]) -> dict[str, Any]:
    """The CreateEndpointConfig fields of a described production variant."""
    return {key: described[key] for key in _VARIANT_KEYS if key in described}


def endpoint(event: dict[str, Any], settings: StepSettings, sagemaker: Any) -> dict[str, Any]:
    """``state``: updating | deployed | rolled-back | failed."""
    described = sagemaker.describe_endpoint(EndpointName=settings.endpoint_name)
    status = described["EndpointStatus"]
    wanted = event["deployment"]["endpointConfigName"]
    if status in ("Updating", "SystemUpdating", "Creating", "RollingBack"):
        state = "updating"
    elif status == "InService":
        state = "deployed" if described["EndpointConfigName"] == wanted else "rolled-back"
    else:
        state = "failed"
    return {"state": state, "status": status, "endpointConfigName": described["EndpointConfigName"], "failureReason": described.get("FailureReason", "")}


def promote(event: dict[str, Any], settings: StepSettings, s3: Any, ssm: Any) -> dict[str, Any]:
    """Record and publish the deployed model so that no stack update brings the old one back:
    baselines into current/ with the promoted marker (the baseline custom resource leaves marked
    files alone), the artefact into the serving stack's parameter, and the lineage records."""
    run, training, evaluation = event["names"], event["training"], event["evaluation"]
    artefact = training["ModelArtifacts"]["S3ModelArtifacts"]
    now = dt.datetime.now(dt.UTC).isoformat()
    # The endpoint serves the new model already: record that first.
    ssm.put_parameter(Name=settings.served_model_parameter, Value=artefact, Type="String", Overwrite=True)
    for monitor in (event.get("baselines") or {}).values():
        publish_outputs(s3, monitor["outputS3Uri"], monitor["publish"])
        write_promoted_marker(s3, monitor["publish"], execution=run["execution"], promoted_at=now)
    lineage = {
        "promotedAt": now,
        "execution": run["execution"],
        "model": {"name": run["model"], "artifactS3Uri": artefact, "endpointConfig": event["deployment"]["endpointConfigName"]},
        "servedModelParameter": settings.served_model_parameter,
        "previousEndpointConfig": event["deployment"]["previousEndpointConfigName"],
        "trainingJob": training["TrainingJobName"],
        "data": {k: event["dataset"][k] for k in ("trainS3Uri", "validationS3Uri", "manifestS3Uri", "rejectedS3Uri", "counts", "labelsThrough")},
        "metrics": evaluation.get("metrics") or {},
        "evaluation": evaluation,
        "baselines": {name: b["publish"] for name, b in (event.get("baselines") or {}).items()},
        "triggers": event.get("triggers", []),
    }
    body = json.dumps(lineage, indent=1, default=str).encode()
    for key in (f"{RETRAINING_PREFIX}/{run['execution']}/{LINEAGE_FILE}", f"{RETRAINING_PREFIX}/{CURRENT_LINEAGE}"):
        s3.put_object(Bucket=settings.models_bucket, Key=key, Body=body, ContentType="application/json")
    return {"lineageS3Uri": f"s3://{settings.models_bucket}/{RETRAINING_PREFIX}/{run['execution']}/{LINEAGE_FILE}", "artifactS3Uri": artefact, "model": run["model"]}
