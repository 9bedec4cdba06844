"""Monitor: data quality, explainability and model quality, each switchable, with their baselines,
schedules, alarms, run events and watchdog. Data quality and explainability run on one of two back
ends (``monitoring.backend``):

- ``open`` (default): the app's own monitors (stacks/monitoring/open.py): capture profiling,
  EventBridge Scheduler evaluations in Lambda, baselines from the same code; any account;
- ``sagemaker``: Model Monitor and Clarify schedules (stacks/monitoring/sagemaker.py), for accounts
  that still have them.

Model quality is the app's own monitor (open.py's OpenModelQualityMonitor) with either back end.
Either way the schedules, alarms, run events and dashboard rows have the same names."""

from __future__ import annotations

from aws_cdk import CfnOutput, CfnParameter, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from lambdas.retraining.steps import RETRAINING_PREFIX
from stacks.shared import aws_facts, default_model
from stacks.monitoring import clarify
from stacks.shared.config import AppConfig, ModelQualityConfig, MonitorJobConfig
from stacks.shared.functions import dependency_layer, explain_layer
from stacks.serving.inference import CAPTURE_PREFIX
from stacks.monitoring.sagemaker import BaselineJobs, DataQualityMonitor, ExplainabilityMonitor
from stacks.monitoring.events import MonitoringEvents, event_source
from stacks.monitoring.open import OpenBaselines, OpenDataQualityMonitor, OpenExplainabilityMonitor, OpenModelQualityMonitor, S3Source
from stacks.review.capture import CapturePipeline, profiling_target
from stacks.review.stack import ReviewStack
from stacks.shared.ops_parameters import OpsParameters
from stacks.serving.stack import ServingStack
from stacks.storage.stack import StorageStack


MODEL_QUALITY_BASELINE_REASON = "the model-quality baseline reads the model's scores on its test set (label,probability) as configured, if any"


def _schedule_parameter(parameters: OpsParameters, name: str, group: str, job: MonitorJobConfig | ModelQualityConfig, backend: str) -> CfnParameter:
    if backend == "open":
        # An evaluation reads sketch files, well within any cadence: every cadence is allowed.
        cadences = list(aws_facts.MONITORING_CADENCES)
        description = "How often the evaluation runs (hourly: cron(0 * ? * * *), daily: cron(0 0 ? * * *)), at minute 20 of the hour, on the hours before."
    else:
        # Only cadences whose period leaves room for a run of max_runtime_seconds.
        cadences = [expression for expression, period in aws_facts.MONITORING_CADENCES.items() if period >= job.max_runtime_seconds]
        description = f"How often the job runs (hourly: cron(0 * ? * * *), daily: cron(0 0 ? * * *)); each run may take up to {job.max_runtime_seconds} s."
    return parameters.add(
        name,
        group=group,
        label="Schedule",
        description=description,
        type="String",
        default=job.schedule,
        allowed_values=cadences,
    )


class MonitoringStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, storage: StorageStack, serving: ServingStack, review: ReviewStack | None = None, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        monitoring = config.monitoring
        self.backend = monitoring.backend
        self.review = review
        self.parameters = OpsParameters(self)
        endpoint = serving.inference
        self.layer = dependency_layer(self, "Dependencies")
        self.data_quality: DataQualityMonitor | OpenDataQualityMonitor | None = None
        self.capture: CapturePipeline | None = None  # the open back end's profiling, when review does not build it
        self.explainability: ExplainabilityMonitor | OpenExplainabilityMonitor | None = None
        self.model_quality: OpenModelQualityMonitor | None = None
        if self.backend == "open":
            self._open(config, storage, serving)
        else:
            self._sagemaker(config, storage, serving)
        what = {"open": "Open data-quality schedule (EventBridge Scheduler)", "sagemaker": "Model Monitor data-quality schedule"}[self.backend]
        if self.data_quality is not None:
            CfnOutput(self, "DataQualityScheduleName", value=self.data_quality.schedule_name, description=what)
            CfnOutput(self, "DataQualityStatisticsS3Uri", value=self.data_quality.statistics_s3_uri, description="Baseline statistics.json each run reads (retraining replaces it)")
            CfnOutput(self, "DataQualityConstraintsS3Uri", value=self.data_quality.constraints_s3_uri, description="Baseline constraints.json each run reads (retraining replaces it)")
        if self.explainability is not None:
            what = {"open": "Open attribution schedule (EventBridge Scheduler)", "sagemaker": "Clarify explainability schedule"}[self.backend]
            CfnOutput(self, "ExplainabilityScheduleName", value=self.explainability.schedule_name, description=what)
            CfnOutput(self, "ExplainabilityBaselineS3Uri", value=self.explainability.constraints_s3_uri, description="Baseline analysis.json (global SHAP values) each run reads (retraining replaces it)")
            if isinstance(self.explainability, ExplainabilityMonitor):
                CfnOutput(self, "ExplainabilityAnalysisConfigS3Uri", value=self.explainability.analysis_config_s3_uri, description="analysis_config.json each run reads (retraining replaces it)")

        if self.model_quality is not None:
            CfnOutput(self, "ModelQualityScheduleName", value=self.model_quality.schedule_name, description="Open model-quality schedule (EventBridge Scheduler), with either back end")
            CfnOutput(self, "ModelQualityReportsS3Uri", value=self.model_quality.reports_s3_uri, description="Model-quality reports: <endpoint>/<schedule>/yyyy/mm/dd/hh/")

        self.monitors = [monitor for monitor in (self.data_quality, self.explainability, self.model_quality) if monitor is not None]
        self.events = MonitoringEvents(
            self,
            "RunEvents",
            config=config,
            monitors=self.monitors,
            endpoint_name=endpoint.endpoint_name,
            monitoring_bucket=storage.buckets["monitoring"],
            key=storage.key,
            layer=self.layer,
            alarm_topic=serving.alerts.topic,
        )

    def _open(self, config: AppConfig, storage: StorageStack, serving: ServingStack) -> None:
        """The app's own monitors: baselines computed by a custom resource, evaluations on EventBridge Scheduler."""
        monitoring = config.monitoring
        endpoint, bundled = serving.inference, serving.bundled_model
        bucket, key = storage.buckets["monitoring"], storage.key
        # numpy (in the explain layer) for the data-quality baseline's sketch; XGBoost for attributions.
        explain = explain_layer(self)
        baselines = OpenBaselines(self, "Baselines", config=config, key=key, layer=self.layer, explain=explain, monitoring_bucket=bucket)
        common = {"config": config, "baselines": baselines, "endpoint_name": endpoint.endpoint_name, "monitoring_bucket": bucket, "key": key, "layer": self.layer,
                  "alarm_topic": serving.alerts.topic, "event_source": event_source(config)}  # fmt: skip
        reasons = []
        if monitoring.data_quality.enabled:
            dq = monitoring.data_quality
            if not dq.computes_baseline:
                dataset = None  # the configured baseline files, copied to current/
            elif dq.dataset_s3_uri is not None:
                dataset = S3Source.configured(self, dq.dataset_s3_uri)
            else:
                # The bundled model's scores and features with a header (lambdas/shared/baseline.py).
                dataset = S3Source.object(bundled.datasets_bucket, bundled.baseline_key)
            self.data_quality = OpenDataQualityMonitor(
                self,
                "DataQuality",
                **common,
                dataset=dataset,
                schedule_expression=_schedule_parameter(self.parameters, "DataQualitySchedule", "Data quality monitoring", dq, self.backend).value_as_string,
            )
            reasons.append("the data-quality baseline reads its dataset (or your baseline files) as configured")
        if monitoring.explainability.enabled:
            ex = monitoring.explainability
            # Labelled training rows (label first, no header), as Clarify's baseline reads them.
            dataset = S3Source.configured(self, ex.dataset_s3_uri) if ex.dataset_s3_uri is not None else S3Source.object(bundled.datasets_bucket, bundled.train_key)
            # The model the endpoint serves now, from the parameter the serving stack deploys from
            # (retraining's Promote rewrites it), read here too so this stack names no serving output.
            served = CfnParameter(
                self,
                "ServedModelDataUrl",
                type="AWS::SSM::Parameter::Value<String>",
                default=config.served_model_parameter,
                description="Name of the SSM parameter holding the served model's ModelDataUrl (the attribution baseline explains it).",
            )
            model_arns = [endpoint.model_data_arn]
            if config.retraining.enabled:
                model_arns.append(storage.models.arn_for_objects(f"{RETRAINING_PREFIX}/*"))
            self.explainability = OpenExplainabilityMonitor(
                self,
                "Explainability",
                **common,
                variant_name=endpoint.variant_name,
                endpoint_arn=endpoint.endpoint_arn,
                model_data_url=served.value_as_string,
                model_arns=model_arns,
                dataset=dataset,
                explain=explain,
                schedule_expression=_schedule_parameter(self.parameters, "ExplainabilitySchedule", "Explainability monitoring", ex, self.backend).value_as_string,
            )
            reasons.append("the attribution baseline reads its training rows and the served model's artefact (a retrained one under retraining/<execution>/)")
        if monitoring.model_quality.enabled:
            self._model_quality(config, storage, serving, baselines, explain)
            reasons.append(MODEL_QUALITY_BASELINE_REASON)
        baselines.acknowledge("; ".join(reasons) + ".")
        # The open monitors read what capture_filter profiles from each capture object. With review on,
        # the review pipeline's capture_filter does it beside review selection (one read per object);
        # without review, the capture pipeline is built here, profiling only.
        profiling = profiling_target(config, storage)
        if not config.review.enabled and profiling is not None:
            self.capture = CapturePipeline(
                self,
                "Capture",
                config=config,
                storage=storage,
                capture_prefix=f"{CAPTURE_PREFIX}/{endpoint.endpoint_name}/{endpoint.variant_name}",
                layer=self.layer,
                alarm_topic=serving.alerts.topic,
                report_bucket=bucket,
                profiling=profiling,
            )

    def _model_quality_dataset(self, config: AppConfig, serving: ServingStack) -> S3Source | None:
        """The test-set scores the model-quality constraints come from: yours, the bundled model's, or
        none (your own model without them: figures and estimates, no constraints)."""
        mq, bundled = config.monitoring.model_quality, serving.bundled_model
        if mq.dataset_s3_uri is not None:
            return S3Source.configured(self, mq.dataset_s3_uri)
        if bundled is not None:
            # Deployed with its other datasets (default_model.DATASETS), in test.csv's folder.
            return S3Source.object(bundled.datasets_bucket, bundled.test_scores_key)
        return None

    def _model_quality(self, config: AppConfig, storage: StorageStack, serving: ServingStack, baselines: OpenBaselines, explain: lambda_.ILayerVersion) -> None:
        """The app's own model-quality monitor, with either back end."""
        endpoint = serving.inference
        self.model_quality = OpenModelQualityMonitor(
            self,
            "ModelQuality",
            config=config,
            baselines=baselines,
            dataset=self._model_quality_dataset(config, serving),
            endpoint_name=endpoint.endpoint_name,
            # Where SageMaker writes this endpoint's capture files (the serving stack's destination).
            capture_bucket=storage.capture,
            capture_prefix=f"{CAPTURE_PREFIX}/{endpoint.endpoint_name}/",
            labels_bucket=storage.buckets["labels"],
            monitoring_bucket=storage.buckets["monitoring"],
            key=storage.key,
            layer=self.layer,
            explain=explain,
            alarm_topic=serving.alerts.topic,
            schedule_expression=_schedule_parameter(self.parameters, "ModelQualitySchedule", "Model quality monitoring", config.monitoring.model_quality, "open").value_as_string,
            event_source=event_source(config),
            review_selection=self._review_selection(config),
        )

    def _review_selection(self, config: AppConfig) -> dict[str, str]:
        """The review rule as capture_filter applies it (stacks/review/capture.py), so the evaluator knows
        which captured rows went to review and can report each stratum's response rate; the band's
        thresholds are the review stack's parameters. Nothing without review."""
        if self.review is None:
            return {}
        review = config.review
        band = {name: self.review.node.find_child(f"Review{name.title()}Threshold").value_as_string for name in ("lower", "upper")}
        return {
            "REVIEW_SELECTION": "true",
            "SELECTION_RULE": review.rule,
            "LOWER_THRESHOLD": band["lower"],
            "UPPER_THRESHOLD": band["upper"],
            "SELECTED_OUTCOME": str(review.outcome),
            "AUDIT_PERCENTAGE": str(review.audit_percentage),
        }

    def _sagemaker(self, config: AppConfig, storage: StorageStack, serving: ServingStack) -> None:
        """Model Monitor and Clarify: baseline processing jobs, job definitions and monitoring schedules."""
        monitoring = config.monitoring
        parameters = self.parameters
        endpoint = serving.inference
        monitoring_bucket, key = storage.buckets["monitoring"], storage.key
        layer = self.layer
        computes_baselines = (monitoring.data_quality.enabled and monitoring.data_quality.computes_baseline) or monitoring.explainability.enabled
        baselines = BaselineJobs(self, "BaselineJobs", config=config, key=key, layer=layer, monitoring_bucket=monitoring_bucket) if computes_baselines else None
        common = {
            "config": config,
            "baselines": baselines,
            "endpoint_name": endpoint.endpoint_name,
            "capture_bucket": storage.capture,
            "capture_prefix": f"{CAPTURE_PREFIX}/{endpoint.endpoint_name}",
            "monitoring_bucket": monitoring_bucket,
            "key": key,
            # Retraining baselines the monitors on its assembled sets, all under this prefix.
            "retraining_data_s3_uri": f"s3://{storage.datasets.bucket_name}/{RETRAINING_PREFIX}/" if config.retraining.enabled else None,
        }
        bundled = serving.bundled_model
        if monitoring.data_quality.enabled:
            dq = monitoring.data_quality
            self.data_quality = DataQualityMonitor(
                self,
                "DataQuality",
                **common,
                # Yours, or the bundled model's scores and features with a header (lambdas/shared/baseline.py);
                # None: the configured baseline files instead (config checks).
                dataset_s3_uri=dq.dataset_s3_uri or (bundled.baseline_s3_uri if bundled is not None else None),
                alarm_topic=serving.alerts.topic,
                schedule_expression=_schedule_parameter(parameters, "DataQualitySchedule", "Data quality monitoring", dq, self.backend).value_as_string,
            )
        if monitoring.explainability.enabled:
            ex = monitoring.explainability
            self.explainability = ExplainabilityMonitor(
                self,
                "Explainability",
                **common,
                # Clarify reads labelled training rows (label first, no header: clarify.baselining_config).
                dataset_s3_uri=ex.dataset_s3_uri or bundled.train_s3_uri,
                model_name=endpoint.model.attr_model_name,
                shap_baseline=clarify.shap_baseline(config, default_model.TRAIN_CSV),
                schedule_expression=_schedule_parameter(parameters, "ExplainabilitySchedule", "Explainability monitoring", ex, self.backend).value_as_string,
            )
        if monitoring.model_quality.enabled:
            # Model Monitor's model-quality monitor is not used: the app's own, as with the open back end,
            # with the open baselines' custom resource for its constraints.
            explain = explain_layer(self)
            open_baselines = OpenBaselines(self, "Baselines", config=config, key=key, layer=layer, explain=explain, monitoring_bucket=monitoring_bucket)
            self._model_quality(config, storage, serving, open_baselines, explain)
            open_baselines.acknowledge(MODEL_QUALITY_BASELINE_REASON + ".")
