"""The retraining state machine's Lambda steps. Each takes the state's input and returns a small
JSON result; SageMaker jobs themselves run as Step Functions ``.sync`` tasks between them.

- ``assemble``: the training set (``dataset.assemble``) and the names of everything this run creates;
- ``evaluate``: the new model's objective metric against the serving model's, with the tolerance;
- ``baselines``: the monitors' baseline job requests for the new model and data (the same requests
  the monitoring stack's baseline custom resources send, from templates it provides);
- ``deploy``: a copy of the live endpoint config (same variant, instances, KMS and data capture,
  including the capture percentage operators set) naming the new model, then UpdateEndpoint with
  blue/green deployment guardrails and automatic rollback on the configured alarms;
- ``endpoint``: where the update stands (UpdateEndpoint is request-only: the machine polls this);
- ``promote``: the new baselines into the monitors' fixed ``current/`` files, and the lineage record
  (data, labels, metrics, triggers) next to the model artefact and as ``current.json``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.baseline_job.handler import processing_job_request, publish_outputs, write_documents
from lambdas.retraining import dataset

RETRAINING_PREFIX = "retraining"  # in the datasets and models buckets
CURRENT_LINEAGE = "current.json"
LINEAGE_FILE = "lineage.json"


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
    feature_count: int
    label_count: int
    validation_percentage: int
    objective_metric: str
    objective_goal: str  # minimize | maximize
    tolerance: float
    deployment: dict[str, Any]  # UpdateEndpoint DeploymentConfig


def names(settings: StepSettings, execution: str) -> dict[str, str]:
    """Every SageMaker name this run uses: ``<app>-<env>-<execution>`` (at most 63 characters)."""
    base = f"{settings.prefix}-{execution}"
    if len(base) > 63:
        raise StepError(f"execution name {execution!r} makes {base!r} longer than SageMaker's 63 characters; start runs with put-events")
    return {"execution": execution, "trainingJob": base, "model": base, "endpointConfig": base}


def assemble(event: dict[str, Any], settings: StepSettings, s3: Any) -> dict[str, Any]:
    run = names(settings, event["execution"])
    output = f"s3://{settings.datasets_bucket}/{RETRAINING_PREFIX}/{run['execution']}/"
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
    return {
        **result,
        "names": run,
        "modelOutputS3Uri": f"s3://{settings.models_bucket}/{RETRAINING_PREFIX}/{run['execution']}/",
    }


def _metric(metrics: list[dict[str, Any]] | None, name: str) -> float | None:
    values = [m["Value"] for m in metrics or [] if m.get("MetricName") == name]
    return float(values[-1]) if values else None


def current_lineage(s3: Any, settings: StepSettings) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=settings.models_bucket, Key=f"{RETRAINING_PREFIX}/{CURRENT_LINEAGE}")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def evaluate(event: dict[str, Any], settings: StepSettings, s3: Any) -> dict[str, Any]:
    """Promote when the candidate is not worse than the serving model by more than the tolerance."""
    metric = settings.objective_metric
    candidate = _metric(event["training"].get("FinalMetricDataList"), metric)
    if candidate is None:
        reported = sorted({m.get("MetricName") for m in event["training"].get("FinalMetricDataList") or []})
        raise StepError(f"training job {event['training'].get('TrainingJobName')} reported no {metric}; it reported: {', '.join(reported) or 'nothing'}")
    lineage = current_lineage(s3, settings)
    current = (lineage or {}).get("metrics", {}).get(metric)
    result = {"metric": metric, "goal": settings.objective_goal, "tolerance": settings.tolerance, "candidate": candidate, "current": current}
    if current is None:
        return {**result, "promote": True, "reason": f"no {metric} is recorded for the serving model; the candidate's {candidate:.6g} becomes the reference"}
    worse_by = (candidate - current) if settings.objective_goal == "minimize" else (current - candidate)
    promote = worse_by <= settings.tolerance
    verdict = "not worse than" if worse_by <= 0 else ("within tolerance of" if promote else "worse than")
    reason = f"candidate {metric} {candidate:.6g} is {verdict} the serving model's {current:.6g} ({settings.objective_goal}, tolerance {settings.tolerance:g})"
    return {**result, "promote": promote, "reason": reason}


def baselines(event: dict[str, Any], s3: Any) -> dict[str, Any]:
    """Each monitor's baseline request for this run: its template with the new data and model.

    ``jobs`` (by monitor) feeds the machine's ``createProcessingJob.sync`` task of each monitor, which
    reads every field of ``PROCESSING_FIELDS`` by path, so each is present; ``monitors`` is what
    ``promote`` publishes.
    """
    monitors, jobs = {}, {}
    for monitor, template in (event.get("templates") or {}).items():
        request = copy.deepcopy(template["request"])
        for item in request["ProcessingInputs"]:
            if item["InputName"] == template["datasetInput"]:
                item["S3Input"]["S3Uri"] = event["dataset"]["trainS3Uri"]
        for document in (request.get("Documents") or {}).values():
            if isinstance(document["Body"].get("predictor"), dict):  # Clarify: explain the new model
                document["Body"]["predictor"]["model_name"] = event["names"]["model"]
        job, documents = processing_job_request({"Request": json.dumps(request)}, event["names"]["execution"])
        write_documents(s3, documents)
        job.setdefault("Environment", {})
        jobs[monitor] = job
        monitors[monitor] = {"outputS3Uri": job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"], "publish": template["publish"], "job": job["ProcessingJobName"]}
    return {"jobs": jobs, "monitors": monitors}


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


def promote(event: dict[str, Any], settings: StepSettings, s3: Any) -> dict[str, Any]:
    """Record and publish the deployed model: baselines into current/, the lineage records."""
    for monitor in (event.get("baselines") or {}).values():
        publish_outputs(s3, monitor["outputS3Uri"], monitor["publish"])
    run, training, evaluation = event["names"], event["training"], event["evaluation"]
    artefact = training["ModelArtifacts"]["S3ModelArtifacts"]
    now = dt.datetime.now(dt.UTC).isoformat()
    lineage = {
        "promotedAt": now,
        "execution": run["execution"],
        "model": {"name": run["model"], "artifactS3Uri": artefact, "endpointConfig": event["deployment"]["endpointConfigName"]},
        "previousEndpointConfig": event["deployment"]["previousEndpointConfigName"],
        "trainingJob": training["TrainingJobName"],
        "data": {k: event["dataset"][k] for k in ("trainS3Uri", "validationS3Uri", "manifestS3Uri", "rejectedS3Uri", "counts", "labelsThrough")},
        "metrics": {m["MetricName"]: m["Value"] for m in training.get("FinalMetricDataList") or []},
        "evaluation": evaluation,
        "baselines": {name: b["publish"] for name, b in (event.get("baselines") or {}).items()},
        "triggers": event.get("triggers", []),
    }
    body = json.dumps(lineage, indent=1, default=str).encode()
    for key in (f"{RETRAINING_PREFIX}/{run['execution']}/{LINEAGE_FILE}", f"{RETRAINING_PREFIX}/{CURRENT_LINEAGE}"):
        s3.put_object(Bucket=settings.models_bucket, Key=key, Body=body, ContentType="application/json")
    return {"lineageS3Uri": f"s3://{settings.models_bucket}/{RETRAINING_PREFIX}/{run['execution']}/{LINEAGE_FILE}", "artifactS3Uri": artefact, "model": run["model"]}
