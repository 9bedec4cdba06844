"""The retraining state machine's Lambda steps. Each takes the state's input and returns a small
JSON result; SageMaker jobs themselves run as Step Functions ``.sync`` tasks between them.

- ``assemble``: the training set and the evaluation rows (``dataset.assemble``) and the names of
  everything this run creates;
- ``servingModel``: the model the endpoint serves now, which the gate scores beside the candidate;
- ``evaluate``: the promotion gate. Both models scored the same evaluation rows (two batch
  transforms, each line the evaluation row joined to the model's score); the paired comparison of
  ``lambdas.retraining.comparison`` gives both figures, their difference and its 95 % interval, and
  promotes when the interval's worse end is within the tolerance. Every run is judged so, the first
  one included: there is always a serving model;
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
import math
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.monitoring.baseline_job.handler import processing_job_request, publish_outputs, write_documents
from lambdas.monitoring.open import baseline as open_baseline
from lambdas.retraining import dataset
from lambdas.retraining.objectives import objective
from lambdas.shared import aws
from lambdas.shared.baseline import header, write_promoted_marker

RETRAINING_PREFIX = "retraining"  # in the datasets and models buckets
CURRENT_LINEAGE = "current.json"
LINEAGE_FILE = "lineage.json"
SCORES_FOLDER = "scores"  # the batch transform's output: each training row, then the new model's score
# The evaluation transforms' outputs: each evaluation line, then the candidate's or the serving model's score.
EVALUATION_SCORES_FOLDER = "evaluation-scores"
CANDIDATE, SERVING = "candidate", "serving"
EVALUATION_RESULT_FILE = "evaluation.json"
EVALUATION_REJECTED_FILE = "evaluation-rejected.jsonl"
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
    holdout_percentage: int
    test_data_s3_uri: str | None  # None: the validation split of the original data judges (dataset.py)
    variant_name: str
    objective_metric: str
    objective_goal: str  # minimize | maximize
    tolerance: float
    deployment: dict[str, Any]  # UpdateEndpoint DeploymentConfig
    served_model_parameter: str  # SSM parameter the serving stack reads the model artefact from

    @property
    def feature_count(self) -> int:
        return len(self.feature_names)


def names(settings: StepSettings, execution: str) -> dict[str, str]:
    """Every SageMaker name this run uses: ``<app>-<env>-<execution>``, and for the evaluation
    transforms that with ``-candidate`` or ``-serving`` (each at most 63 characters)."""
    base = f"{settings.prefix}-{execution}"
    longest = f"{base}-{CANDIDATE}"
    if len(longest) > 63:
        raise StepError(f"execution name {execution!r} makes {longest!r} longer than SageMaker's 63 characters; start runs with put-events")
    return {
        "execution": execution, "trainingJob": base, "model": base, "transformJob": base, "endpointConfig": base,
        "candidateTransformJob": f"{base}-{CANDIDATE}", "servingTransformJob": f"{base}-{SERVING}",
    }  # fmt: skip


def run_locations(datasets_bucket: str, models_bucket: str, execution: str) -> dict[str, str]:
    """Where a run's data, model and scores go. The stack derives the jobs' grants from these with
    ``execution`` "*" (every run), so a location is defined here only."""
    output = f"s3://{datasets_bucket}/{RETRAINING_PREFIX}/{execution}/"
    return {
        "outputS3Uri": output,
        "trainS3Uri": f"{output}{dataset.TRAIN_CHANNEL}",
        "validationS3Uri": f"{output}{dataset.VALIDATION_CHANNEL}",
        "evaluationS3Uri": f"{output}{dataset.EVALUATION_CHANNEL}",
        "candidateScoresS3Uri": f"{output}{EVALUATION_SCORES_FOLDER}/{CANDIDATE}/",
        "servingScoresS3Uri": f"{output}{EVALUATION_SCORES_FOLDER}/{SERVING}/",
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
            holdout_percentage=settings.holdout_percentage,
            test_data_s3_uri=settings.test_data_s3_uri,
        ),
    )
    return {**result, **locations, "names": run}


def serving_model(settings: StepSettings, sagemaker: Any) -> dict[str, Any]:
    """The model the endpoint serves now: the configured variant's (or the only variant's). During a
    blue/green update DescribeEndpoint names the config still serving. The gate scores this model, so
    the first retraining is judged against the model deployed with the app, like every later one."""
    described = sagemaker.describe_endpoint(EndpointName=settings.endpoint_name)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    variants = config["ProductionVariants"]
    chosen = [v for v in variants if v["VariantName"] == settings.variant_name] or (variants if len(variants) == 1 else [])
    if not chosen:
        raise StepError(f"endpoint {settings.endpoint_name} has no variant {settings.variant_name} (it has {', '.join(v['VariantName'] for v in variants)})")
    name = chosen[0]["ModelName"]
    model = sagemaker.describe_model(ModelName=name)
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    artefact = container.get("ModelDataUrl") or ((container.get("ModelDataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
    return {"modelName": name, "endpointConfigName": described["EndpointConfigName"], "variantName": chosen[0]["VariantName"], "artifactS3Uri": artefact}


def evaluate(event: dict[str, Any], settings: StepSettings, s3: Any, sagemaker: Any) -> dict[str, Any]:
    """The promotion gate: the paired comparison of the candidate and the serving model on the
    same evaluation rows (``lambdas.retraining.comparison`` states the method and the rule).

    Each transform's output line is the evaluation line (row, weight, source, label, features)
    followed by the model's score. A line that is not of that shape, or whose score the figure
    cannot take, is parked in ``evaluation-rejected.jsonl`` with its reason; the comparison is on the
    rows both models scored. The serving model's unusable rows only leave the comparison; the
    candidate's refuse it (a model that fails on rows the serving one answers is not promoted).
    """
    from lambdas.retraining import comparison  # numpy, from the explain layer; the stacks import this module

    goal = objective(settings.objective_metric, goal=settings.objective_goal)
    run, data = event["names"], event["dataset"]
    parked: list[dict[str, Any]] = []
    scored = {model: _scored_rows(s3, data[f"{model}ScoresS3Uri"], model, settings, goal.probabilities, parked) for model in (CANDIDATE, SERVING)}
    both = sorted(scored[CANDIDATE].keys() & scored[SERVING].keys())
    for row in both:
        if scored[CANDIDATE][row][:3] != scored[SERVING][row][:3]:
            raise StepError(f"the two transforms' outputs differ on evaluation row {row}'s weight, source or label: they did not score the same rows")
    unscored_by_candidate = len(scored[SERVING].keys() - scored[CANDIDATE].keys())
    expected = int((data.get("counts") or {}).get("evaluationRows") or 0)
    rejected_uri = None
    if parked:
        rejected_key = f"{RETRAINING_PREFIX}/{run['execution']}/{EVALUATION_REJECTED_FILE}"
        s3.put_object(Bucket=settings.datasets_bucket, Key=rejected_key, Body="".join(json.dumps(p) + "\n" for p in parked).encode())
        rejected_uri = f"s3://{settings.datasets_bucket}/{rejected_key}"
    rows = [scored[CANDIDATE][row] for row in both]
    try:
        compared = comparison.paired_comparison(
            goal, [r[2] for r in rows], [r[0] for r in rows], [r[3] for r in rows], [scored[SERVING][row][3] for row in both]
        )
    except comparison.ComparisonError as error:
        raise StepError(f"the evaluation rows cannot judge the candidate ({error}); {len(parked)} transform lines rejected{f': {rejected_uri}' if rejected_uri else ''}") from None
    sources = Counter(r[1] for r in rows)
    promote = compared.promotes(settings.tolerance) and unscored_by_candidate == 0
    reported = sagemaker.describe_training_job(TrainingJobName=event["training"]["TrainingJobName"]).get("FinalMetricDataList") or []
    result = {
        "metric": goal.name, "figure": goal.description, "goal": goal.goal, "tolerance": settings.tolerance,
        **compared.as_dict(),
        "candidate": {**compared.candidate.as_dict(), "model": run["model"], "artifactS3Uri": event["training"]["ModelArtifacts"]["S3ModelArtifacts"]},
        "serving": {**compared.serving.as_dict(), "model": event["serving"]["modelName"], "artifactS3Uri": event["serving"].get("artifactS3Uri")},
        "evaluationRows": expected, "rowsBySource": dict(sorted(sources.items())),
        "rowsNotCompared": expected - len(both), "rowsUnscoredByCandidate": unscored_by_candidate, "rejectedS3Uri": rejected_uri,
        "promote": promote, "reason": _reason(compared, sources, settings.tolerance, unscored_by_candidate, rejected_uri),
        "trainingJobMetrics": {m["MetricName"]: m["Value"] for m in reported},
    }  # fmt: skip
    s3.put_object(
        Bucket=settings.datasets_bucket, Key=f"{RETRAINING_PREFIX}/{run['execution']}/{EVALUATION_RESULT_FILE}",
        Body=json.dumps(result, indent=1).encode(), ContentType="application/json",
    )  # fmt: skip
    return result


def _reason(compared: Any, sources: Counter[str], tolerance: float, unscored_by_candidate: int, rejected_uri: str | None) -> str:
    """Both figures, the difference, its interval and the decision, in one sentence."""
    c, s, d, worse = compared.candidate, compared.serving, compared.difference, compared.worse_by
    rows = ", ".join(f"{count} {source}" for source, count in sorted(sources.items()))
    within = worse.high <= tolerance
    text = (
        f"{compared.objective.description} on the same {compared.rows} evaluation rows ({rows}; weighted): "
        f"candidate {c.value:.4f} [{c.low:.4f}, {c.high:.4f}], serving model {s.value:.4f} [{s.low:.4f}, {s.high:.4f}]; "
        f"difference (candidate - serving) {d.value:+.4f}, 95 % interval [{d.low:+.4f}, {d.high:+.4f}]; "
        f"the candidate is worse by at most {worse.high:+.4f} with 97.5 % confidence (one-sided), {'within' if within else 'beyond'} the tolerance {tolerance:g}"
    )
    if unscored_by_candidate:
        text += f"; the candidate gave no usable score for {unscored_by_candidate} rows the serving model scored ({rejected_uri})"
    return text


def _scored_rows(s3: Any, uri: str, model: str, settings: StepSettings, probabilities: bool, parked: list[dict[str, Any]]) -> dict[int, tuple[float, str, int, float]]:
    """row -> (weight, source, label, score) of one evaluation transform's output."""
    expected = len(dataset.EVALUATION_COLUMNS) + 1 + settings.feature_count + 1
    rows: dict[int, tuple[float, str, int, float]] = {}
    for source, number, fields in dataset.records_under(s3, uri):
        try:
            row = _evaluation_row(fields, expected, probabilities)
        except ValueError as error:
            parked.append({"model": model, "source": source, "line": number, "row": fields[: expected + 5], "reason": str(error)})
            continue
        rows[row[0]] = row[1:]
    return rows


def _evaluation_row(fields: list[str], expected: int, probabilities: bool) -> tuple[int, float, str, int, float]:
    if len(fields) != expected:
        raise ValueError(f"{len(fields)} fields, expected {expected} (row, weight, source, label, {expected - 5} features, then one score)")
    row, weight, source, label = int(fields[0]), float(fields[1]), fields[2], int(fields[3])
    score = float(dataset.normalised_number(fields[-1].strip()))
    if probabilities and not 0 <= score <= 1:
        raise ValueError(f"score {score!r} is not a probability, which the figure needs")
    if not (math.isfinite(weight) and weight > 0 and label in (0, 1)):
        raise ValueError(f"weight {weight!r} or label {label!r} out of range")
    return row, weight, source, label, score


def baseline_dataset(event: dict[str, Any], settings: StepSettings, s3: Any) -> dict[str, Any]:
    """The data-quality baseline dataset of the new model, from the batch transform's output.

    The transform read ``train/`` with the label filtered out of the model's input (``$[1:]``) and
    joined each output line to its input line, so each line is ``label, features..., score`` (CSV
    join: the input row, then the prediction). What captures hold at run time, and so what the
    baseline describes, is the score then the features: the label is dropped. A line that is not
    of that shape is written to ``baseline-rejected.jsonl`` with its reason.
    """
    run = event["names"]
    out_bucket, out_prefix = aws.split_s3_uri(event["dataset"]["baselineS3Uri"])
    rejected_key = f"{RETRAINING_PREFIX}/{run['execution']}/{BASELINE_REJECTED_FILE}"
    expected = settings.feature_count + 2
    rows = rejected = 0
    with tempfile.TemporaryDirectory() as scratch:
        path, rejected_path = os.path.join(scratch, BASELINE_FILE), os.path.join(scratch, BASELINE_REJECTED_FILE)
        with open(path, "w", newline="", encoding="utf-8") as output, open(rejected_path, "w", encoding="utf-8") as parked:
            writer = csv.writer(output, lineterminator="\n")
            writer.writerow(header(settings.feature_names))
            for source, number, fields in dataset.records_under(s3, event["dataset"]["scoresS3Uri"]):
                reason = _scored_row_problem(fields, expected)
                if reason is not None:
                    rejected += 1
                    parked.write(json.dumps({"source": source, "line": number, "row": fields[:expected + 5], "reason": reason}) + "\n")
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
        "metrics": evaluation.get("trainingJobMetrics") or {},  # as the training job reported them (its validation channel)
        "evaluation": evaluation,  # the gate: both figures on the same rows, the difference and its interval
        "baselines": {name: b["publish"] for name, b in (event.get("baselines") or {}).items()},
        "triggers": event.get("triggers", []),
    }
    body = json.dumps(lineage, indent=1, default=str).encode()
    for key in (f"{RETRAINING_PREFIX}/{run['execution']}/{LINEAGE_FILE}", f"{RETRAINING_PREFIX}/{CURRENT_LINEAGE}"):
        s3.put_object(Bucket=settings.models_bucket, Key=key, Body=body, ContentType="application/json")
    return {"lineageS3Uri": f"s3://{settings.models_bucket}/{RETRAINING_PREFIX}/{run['execution']}/{LINEAGE_FILE}", "artifactS3Uri": artefact, "model": run["model"]}
