"""Custom-resource handlers (CDK Provider framework) for Model Monitor / Clarify baseline jobs.

``on_event`` starts a processing job built from the ``Request`` property (CreateProcessingJob's
request without a name, plus ``NamePrefix`` and optional ``Documents``); ``is_complete`` polls
DescribeProcessingJob. A failed or stopped job raises, so the deployment fails with the job's
FailureReason in the CloudFormation event. The job writes under ``<output S3Uri>/<job name>``, so
every baseline keeps its own files and a monitor never reads a half-written one.

``Documents`` are JSON files the job or its monitor needs (Clarify's analysis configs):
``{"<Name>": {"File": "x.json", "Body": {...}, "Input": "<InputName>"?}}``. Each is written to
``<output>/<job name>/<File>`` before the job starts; ``Input`` points that processing input at it;
its URI comes back as the attribute ``<Name>S3Uri`` next to ``OutputS3Uri`` and ``ProcessingJobName``.

``Publish`` (``{"<file under the job's output>": "s3://…"}``) copies files of a completed job to
fixed URIs: the monitors read their baselines from ``current/`` files that retraining replaces, and
a job definition (create-only) never has to change when a baseline does.

Job names: ``<prefix>-<hash of the request>-<hash of the CloudFormation request id>``. An
unchanged request on update keeps the old job (no new baseline); a changed one runs a new job; a
create retried after a rollback gets a new name (a failed job's name cannot be reused).

Only a job this event started is published (``Data.NewBaseline``). On update, a changed request
whose dataset is unchanged runs no job when a retraining has promoted the monitor's ``current/``
baseline (its marker, ``lambdas.shared.baseline``): that baseline belongs to the model the
endpoint serves now. A new dataset is the user's choice and replaces it (and clears the marker).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas.shared import aws, baseline

NAME_MAX = 63  # ProcessingJobName: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
REQUEST_HASH = 16
ATTEMPT_HASH = 8
# on_event's answer, which the Provider framework passes on to is_complete in the event's Data:
# "true" when this event started the job (only then is it published).
NEW_BASELINE = "NewBaseline"


def _sagemaker() -> Any:
    return aws.client("sagemaker")


def request_hash(properties: dict[str, Any]) -> str:
    request = json.loads(properties["Request"])
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:REQUEST_HASH]


def processing_job_request(properties: dict[str, Any], request_id: str) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
    """The CreateProcessingJob request and the documents to write first ({name: (uri, body)})."""
    request = json.loads(properties["Request"])
    prefix = request.pop("NamePrefix")
    request.pop("Publish", None)
    attempt = hashlib.sha256(request_id.encode()).hexdigest()[:ATTEMPT_HASH]
    name = f"{prefix[: NAME_MAX - REQUEST_HASH - ATTEMPT_HASH - 2]}-{request_hash(properties)}-{attempt}"
    for output in request["ProcessingOutputConfig"]["Outputs"]:
        output["S3Output"]["S3Uri"] = f"{output['S3Output']['S3Uri'].rstrip('/')}/{name}"
    documents = {}
    inputs = {item["InputName"]: item for item in request.get("ProcessingInputs", [])}
    for document, spec in document_specs(request.pop("Documents", {}), _output_uri(request)).items():
        uri, body, input_name = spec
        documents[document] = (uri, body)
        if input_name is not None:
            inputs[input_name]["S3Input"]["S3Uri"] = uri
    return {"ProcessingJobName": name, **request}, documents


def _output_uri(job: dict[str, Any]) -> str:
    return job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/")


def document_specs(documents: dict[str, Any], output_uri: str) -> dict[str, tuple[str, Any, str | None]]:
    return {name: (f"{output_uri}/{spec['File']}", spec["Body"], spec.get("Input")) for name, spec in documents.items()}


def write_documents(s3: Any, documents: dict[str, tuple[str, Any]]) -> None:
    for uri, body in documents.values():
        bucket, key = aws.split_s3_uri(uri)
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body, indent=1).encode(), ContentType="application/json")


def publish_outputs(s3: Any, output_uri: str, publish: dict[str, str]) -> None:
    """Copy ``<output_uri>/<file>`` to each destination (server-side, KMS-encrypted as the bucket)."""
    source_bucket, source_prefix = aws.split_s3_uri(output_uri.rstrip("/") + "/")
    for file, destination in publish.items():
        bucket, key = aws.split_s3_uri(destination)
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": f"{source_prefix}{file}"})


def on_event(event: dict[str, Any], context: Any = None, sagemaker: Any = None, s3: Any = None) -> dict[str, Any]:
    sagemaker = sagemaker or _sagemaker()
    kind = event["RequestType"]
    if kind == "Delete":
        _stop_if_running(sagemaker, event["PhysicalResourceId"])
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    if kind == "Update" and not _runs_on_update(event, s3):
        return {"PhysicalResourceId": event["PhysicalResourceId"], "Data": {NEW_BASELINE: "false"}}
    request, documents = processing_job_request(event["ResourceProperties"], event["RequestId"])
    if documents:
        write_documents(s3 or aws.client("s3"), documents)
    try:
        sagemaker.create_processing_job(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUse":  # a retried call: the job runs already
            raise
    return {"PhysicalResourceId": request["ProcessingJobName"], "Data": {NEW_BASELINE: "true"}}


def _runs_on_update(event: dict[str, Any], s3: Any = None) -> bool:
    if f"-{request_hash(event['ResourceProperties'])}-" in event.get("PhysicalResourceId", ""):
        return False  # same request: keep the baseline
    new = json.loads(event["ResourceProperties"]["Request"])
    old = json.loads(event.get("OldResourceProperties", {}).get("Request", "{}"))
    publish = new.get("Publish")
    if not publish:
        return True
    return baseline.publishes_on_update(old, new, promoted=baseline.is_promoted(s3 or aws.client("s3"), publish))


def is_complete(event: dict[str, Any], context: Any = None, sagemaker: Any = None, s3: Any = None) -> dict[str, Any]:
    if event["RequestType"] == "Delete":
        return {"IsComplete": True}
    sagemaker = sagemaker or _sagemaker()
    name = event["PhysicalResourceId"]
    job = sagemaker.describe_processing_job(ProcessingJobName=name)
    status = job["ProcessingJobStatus"]
    if status in ("Failed", "Stopped"):
        raise RuntimeError(f"baseline job {name} {status.lower()}: {job.get('FailureReason') or job.get('ExitMessage') or 'no reason given'}")
    if status != "Completed":
        return {"IsComplete": False}
    output = _output_uri(job)
    request = json.loads(event["ResourceProperties"]["Request"])
    documents = request.get("Documents", {})
    new_baseline = (event.get("Data") or {}).get(NEW_BASELINE) == "true"  # what on_event returned
    if request.get("Publish") and new_baseline:
        s3 = s3 or aws.client("s3")
        publish_outputs(s3, output, request["Publish"])
        baseline.clear_promoted_marker(s3, request["Publish"])
    return {
        "IsComplete": True,
        "Data": {
            NEW_BASELINE: "true" if new_baseline else "false",
            "ProcessingJobName": name,
            "OutputS3Uri": output,
            **{f"{document}S3Uri": uri for document, (uri, _, _) in document_specs(documents, output).items()},
        },
    }


def _stop_if_running(sagemaker: Any, name: str) -> None:
    try:
        status = sagemaker.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"]
        if status == "InProgress":
            sagemaker.stop_processing_job(ProcessingJobName=name)
    except ClientError as error:
        # No such job (a create that never started): nothing to stop. Processing jobs cannot be
        # deleted; their outputs stay in the monitoring bucket.
        if error.response["Error"]["Code"] not in ("ValidationException", "ResourceNotFound"):
            raise
