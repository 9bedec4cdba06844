"""The model the endpoint serves now, loaded for explaining, and reloaded when retraining swaps it.

    DescribeEndpoint -> EndpointConfigName -> DescribeEndpointConfig -> the variant's ModelName
    -> DescribeModel -> ModelDataUrl (or ModelDataSource) -> S3 GetObject -> TreeExplainer

Batch only (``serving.endpoint`` false) there is no endpoint to ask: the nightly run makes its model
from the served-model SSM parameter's ModelDataUrl, so that parameter is the source instead
(``served_model_parameter``: GetParameter -> ModelDataUrl -> S3 GetObject), and the URL names the model.

The endpoint is asked again at most every ``refresh_seconds``; a model is downloaded only when the
endpoint's model name changes, so after a retraining the next loops are explained by the new model
with no redeploy of this app. During a blue/green update DescribeEndpoint names the config still
serving until the new one has taken all traffic, which is the model that made the prediction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared.explain.results import Unexplainable
from lambdas.shared.aws import split_s3_uri

# The file the SageMaker XGBoost container loads from its model directory.
MODEL_FILE = "xgboost-model"
# What the app loads at most: artefacts are streamed and unpacked in memory.
MAX_ARTIFACT_BYTES = 512 * 2**20


class DeployedModel:
    def __init__(
        self,
        sagemaker: Any,
        s3: Any,
        *,
        endpoint_name: str | None = None,
        variant_name: str | None = None,
        served_model_parameter: tuple[Any, str] | None = None,  # (SSM client, parameter name): batch only
        refresh_seconds: float,
        load: Callable[[IO[bytes], str, bool], Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (endpoint_name is None) == (served_model_parameter is None):
            raise ValueError("a deployed model is found through an endpoint or the served-model parameter: give exactly one")
        self._sagemaker = sagemaker
        self._s3 = s3
        self._endpoint = endpoint_name
        self._variant = variant_name
        self._parameter = served_model_parameter
        self._refresh = refresh_seconds
        self._load = load
        self._clock = clock
        self._checked_at: float | None = None
        self._model: tuple[str, dict[str, Any]] | None = None  # (name, container)
        self._loaded: dict[str, Any] = {}  # model name -> explainer, or the exception that says why not

    def explainer(self) -> Any:
        """The current model's explainer; raises ``Unexplainable`` with the reason if there is none.

        ``load(stream, model_name, gzipped)`` builds the explainer from the artefact's bytes.
        """
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._refresh:
            self._model = self._describe()
            self._checked_at = now
            # Keep only the current model; forget failures that may have passed (S3, throttling).
            self._loaded = {
                name: value for name, value in self._loaded.items()
                if name == self._model[0] and not (isinstance(value, Unexplainable) and value.transient)
            }
        name, container = self._model
        if name not in self._loaded:
            try:
                self._loaded[name] = self._fetch(name, container)
            except Unexplainable as error:
                self._loaded[name] = error
        result = self._loaded[name]
        if isinstance(result, Exception):
            raise result
        return result

    def _describe(self) -> tuple[str, dict[str, Any]]:
        if self._parameter is not None:
            return self._from_parameter(*self._parameter)
        try:
            endpoint = self._sagemaker.describe_endpoint(EndpointName=self._endpoint)
            config = self._sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
            variants = config["ProductionVariants"]
            chosen = [v for v in variants if v["VariantName"] == self._variant] or (variants if len(variants) == 1 else [])
            if not chosen:
                names = ", ".join(v["VariantName"] for v in variants)
                raise Unexplainable(f"endpoint {self._endpoint} has no variant {self._variant} (it has {names})")
            model = self._sagemaker.describe_model(ModelName=chosen[0]["ModelName"])
        except (ClientError, BotoCoreError) as error:
            raise Unexplainable(f"could not find the endpoint's model ({_describe_error(error)})", transient=True) from None
        containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
        if len(containers) != 1:
            raise Unexplainable(f"model {model['ModelName']} is an inference pipeline of {len(containers)} containers")
        return model["ModelName"], containers[0]

    @staticmethod
    def _from_parameter(ssm: Any, name: str) -> tuple[str, dict[str, Any]]:
        try:
            url = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as error:
            raise Unexplainable(f"could not read the served model's parameter {name} ({_describe_error(error)})", transient=True) from None
        return url, {"ModelDataUrl": url}

    def _fetch(self, name: str, container: dict[str, Any]) -> Any:
        artifact = _artifact(container)
        if artifact is None:
            raise Unexplainable(f"model {name} has no model artefact in S3")
        uri, gzipped = artifact
        try:
            bucket, key = split_s3_uri(uri)
            response = self._s3.get_object(Bucket=bucket, Key=key)
        except ValueError:
            raise Unexplainable(f"model {name} has the artefact location {uri!r}, not an S3 object") from None
        except (ClientError, BotoCoreError) as error:
            raise Unexplainable(f"could not read the artefact {uri} of model {name} ({_describe_error(error)})", transient=True) from None
        body = response["Body"]
        try:
            if response.get("ContentLength", 0) > MAX_ARTIFACT_BYTES:
                raise Unexplainable(f"the artefact of model {name} is {response['ContentLength'] // 2**20} MB; the app loads up to {MAX_ARTIFACT_BYTES // 2**20} MB")
            return self._load(body, name, gzipped)
        finally:
            body.close()


def _artifact(container: dict[str, Any]) -> tuple[str, bool] | None:
    """(S3 URI, gzipped) of what the container reads: ``ModelDataUrl`` (a model.tar.gz), or
    ``ModelDataSource``: a gzipped tar object, an uncompressed object, or a prefix holding xgboost-model."""
    if container.get("ModelDataUrl"):
        return container["ModelDataUrl"], True
    source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    if not source.get("S3Uri"):
        return None
    gzipped = source.get("CompressionType") == "Gzip"
    if source.get("S3DataType") == "S3Prefix" and not gzipped:
        return source["S3Uri"].rstrip("/") + "/" + MODEL_FILE, False
    return source["S3Uri"], gzipped


def _describe_error(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error.response['Error'].get('Code')}: {error.response['Error'].get('Message', '')}"
    return str(error)
