"""A batch transform stand-in that writes what SageMaker documents a transform with data capture
writes (layout: ``lambdas/capture/records.py``, "Batch transform data capture"), for the finish
step's tests and the batch state machine's: for each object the run's manifest lists, the joined
output ``<S3OutputPath>/<key>.out`` (input line, then the score and, with generated inference IDs,
the inference ID and time) and the capture manifests ``<DestinationS3Uri>/input|output/yyyy/mm/dd/hh/<id>.json``.

The score is a function of the row (``score``), so tests know which rows the rule selects.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

from lambdas.capture.records import manifest_document, manifest_uris
from lambdas.shared.aws import split_s3_uri

START = dt.datetime(2026, 12, 7, 2, 0, 5, tzinfo=dt.UTC)
END = dt.datetime(2026, 12, 7, 2, 6, 45, tzinfo=dt.UTC)  # 400 s


def score(features: list[str]) -> float:
    """The stand-in model: the first feature's tenth, kept in [0, 1]."""
    return min(max(float(features[0]) / 10, 0.0), 1.0)


def run_transform(s3: Any, manifest_uri: str, output_uri: str, capture_uri: str, *, job: str = "job-1", instance_count: int = 1,
                  generate_inference_id: bool = True, model: Callable[[list[str]], float] = score) -> dict[str, Any]:
    """Run the stand-in over ``manifest_uri``; returns DescribeTransformJob's output for it."""
    bucket, key = split_s3_uri(manifest_uri)
    inputs = manifest_uris(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    prefix = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())[0]["prefix"]
    out_bucket, out_prefix = split_s3_uri(output_uri.rstrip("/") + "/x")
    out_prefix = out_prefix[:-1]
    outputs = []
    for number, uri in enumerate(inputs):
        in_bucket, in_key = split_s3_uri(uri)
        lines = s3.get_object(Bucket=in_bucket, Key=in_key)["Body"].read().decode().splitlines()
        joined = []
        for index, line in enumerate(lines):
            row = f"{line},{model(line.split(',')):.6f}"
            if generate_inference_id:
                inference_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{job}/{number}/{index}")
                row += f",{inference_id},{END.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            joined.append(row)
        relative = uri[len(prefix):]
        out_key = f"{out_prefix}{relative}.out"
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=("\n".join(joined) + "\n").encode())
        outputs.append(out_key)
    cap_bucket, cap_prefix = split_s3_uri(capture_uri.rstrip("/") + "/x")
    cap_prefix = cap_prefix[:-1]
    hour = START.strftime("%Y/%m/%d/%H")
    s3.put_object(Bucket=cap_bucket, Key=f"{cap_prefix}input/{hour}/{uuid.uuid4()}.json", Body=manifest_document(in_bucket if inputs else bucket, [split_s3_uri(u)[1] for u in inputs]))
    s3.put_object(Bucket=cap_bucket, Key=f"{cap_prefix}output/{hour}/{uuid.uuid4()}.json", Body=manifest_document(out_bucket, outputs))
    return {
        "TransformJobName": job, "TransformJobStatus": "Completed",
        "TransformStartTime": START.isoformat(), "TransformEndTime": END.isoformat(),
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": instance_count},
        "TransformOutput": {"S3OutputPath": output_uri, "AssembleWith": "Line"},
        "DataCaptureConfig": {"DestinationS3Uri": capture_uri, "GenerateInferenceId": generate_inference_id},
    }
