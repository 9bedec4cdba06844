"""The shape of the data-quality baseline dataset, shared by the bundled baseline
(``stacks/shared/default_model``), the deploy-time baseline and retraining's re-baseline; and the marker
that says a monitor's ``current/`` baseline was promoted by a retraining.

Model Monitor's analyzer names a headerless CSV's columns ``_c0``, ``_c1``, ... and emits its
per-feature metrics (``feature_baseline_drift_<column>``) under those names (seed 000), so the
baseline carries a header. Its first column is what captures hold at run time in that position:
the model's output, a probability (not the training label, which is integral and would raise a
``data_type_check`` violation on every run). The features follow in the model's order.

A monitor reads its baseline from fixed files under ``<monitor prefix>/current/``. Two writers
fill them: the monitoring stack's baseline custom resource (at deploy) and retraining's Promote
step. Promote also writes ``current/promoted.json`` (:func:`write_promoted_marker`); a later stack
update then republishes its own baseline only when the user gave a new dataset
(:func:`publishes_on_update`), so an unrelated update cannot bring back the old model's baseline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lambdas.shared.aws import key_listed, split_s3_uri

# The header name of the model's output column.
OUTPUT_COLUMN = "probability"
# Written next to the baselines in current/ by a promoting retraining; its body is
# ``{"execution": <retraining execution name>, "promotedAt": <ISO time>}``.
PROMOTED_MARKER = "promoted.json"


def header(feature_names: Sequence[str]) -> list[str]:
    """The baseline dataset's header row: the model's output, then the features."""
    return [OUTPUT_COLUMN, *feature_names]


def current_prefix(publish: Mapping[str, str]) -> str:
    """``s3://bucket/<monitor>/current``: the one folder every published file of a monitor goes to
    (``publish`` maps a baseline job's file to its destination, as in the baseline requests)."""
    folders = {uri.rsplit("/", 1)[0] for uri in publish.values()}
    if len(folders) != 1:
        raise ValueError(f"a monitor publishes into one current/ folder, got {sorted(folders)}")
    return folders.pop()


def promoted_marker_uri(publish: Mapping[str, str]) -> str:
    return f"{current_prefix(publish)}/{PROMOTED_MARKER}"


def write_promoted_marker(s3: Any, publish: Mapping[str, str], *, execution: str, promoted_at: str) -> str:
    """Record that ``current/`` now holds the baseline of retraining ``execution``; returns its URI."""
    uri = promoted_marker_uri(publish)
    bucket, key = split_s3_uri(uri)
    body = json.dumps({"execution": execution, "promotedAt": promoted_at}).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return uri


def is_promoted(s3: Any, publish: Mapping[str, str]) -> bool:
    """Whether a retraining promoted the baseline in ``current/`` (listed, not read: a missing object
    read without s3:ListBucket is a 403, not a 404)."""
    return key_listed(s3, *split_s3_uri(promoted_marker_uri(publish)))


def clear_promoted_marker(s3: Any, publish: Mapping[str, str]) -> None:
    """``current/`` holds a deploy-time baseline again."""
    bucket, key = split_s3_uri(promoted_marker_uri(publish))
    s3.delete_object(Bucket=bucket, Key=key)


def dataset_uris(request: Mapping[str, Any]) -> list[str]:
    """The data a baseline request reads: every processing input with an S3 URI of its own (the
    analysis config input is filled from a document the handler writes, so it has none)."""
    return sorted(item["S3Input"]["S3Uri"] for item in request.get("ProcessingInputs", []) if item.get("S3Input", {}).get("S3Uri"))


def publishes_on_update(old_request: Mapping[str, Any], new_request: Mapping[str, Any], *, promoted: bool) -> bool:
    """Whether a changed baseline request replaces the monitor's ``current/`` files on a stack
    update: yes when the user chose new data to baseline, or when no retraining promoted what is
    there; otherwise the promoted baseline (and, for Clarify, its config naming the retrained model) stays."""
    return dataset_uris(old_request) != dataset_uris(new_request) or not promoted
