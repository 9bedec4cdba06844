"""Monitor: Model Monitor data quality and Clarify explainability, each switchable, with their
baselines, schedules, drift alarms, run events and watchdog."""

from __future__ import annotations

from aws_cdk import CfnOutput, CfnParameter, Stack
from constructs import Construct

from lambdas.retraining.steps import RETRAINING_PREFIX
from stacks.shared import aws_facts, default_model
from stacks.monitoring import clarify
from stacks.shared.config import AppConfig, MonitorJobConfig
from stacks.shared.functions import dependency_layer
from stacks.serving.inference import CAPTURE_PREFIX
from stacks.monitoring.sagemaker import BaselineJobs, DataQualityMonitor, ExplainabilityMonitor
from stacks.monitoring.events import MonitoringEvents
from stacks.shared.ops_parameters import OpsParameters
from stacks.serving.stack import ServingStack
from stacks.storage.stack import StorageStack


def _schedule_parameter(parameters: OpsParameters, name: str, group: str, job: MonitorJobConfig) -> CfnParameter:
    # Only cadences whose period leaves room for a run of max_runtime_seconds.
    cadences = [expression for expression, period in aws_facts.MONITORING_CADENCES.items() if period >= job.max_runtime_seconds]
    return parameters.add(
        name,
        group=group,
        label="Schedule",
        description=f"How often the job runs (hourly: cron(0 * ? * * *), daily: cron(0 0 ? * * *)); each run may take up to {job.max_runtime_seconds} s.",
        type="String",
        default=job.schedule,
        allowed_values=cadences,
    )


class MonitoringStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, storage: StorageStack, serving: ServingStack, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        monitoring = config.monitoring
        parameters = OpsParameters(self)
        endpoint = serving.inference
        monitoring_bucket, key = storage.buckets["monitoring"], storage.key
        layer = dependency_layer(self, "Dependencies")
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

        self.data_quality: DataQualityMonitor | None = None
        self.explainability: ExplainabilityMonitor | None = None
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
                schedule_expression=_schedule_parameter(parameters, "DataQualitySchedule", "Data quality monitoring", dq).value_as_string,
            )
            CfnOutput(self, "DataQualityScheduleName", value=self.data_quality.schedule_name, description="Model Monitor data-quality schedule")
            CfnOutput(self, "DataQualityStatisticsS3Uri", value=self.data_quality.statistics_s3_uri, description="Baseline statistics.json each run reads (retraining replaces it)")
            CfnOutput(self, "DataQualityConstraintsS3Uri", value=self.data_quality.constraints_s3_uri, description="Baseline constraints.json each run reads (retraining replaces it)")
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
                schedule_expression=_schedule_parameter(parameters, "ExplainabilitySchedule", "Explainability monitoring", ex).value_as_string,
            )
            CfnOutput(self, "ExplainabilityScheduleName", value=self.explainability.schedule_name, description="Clarify explainability schedule")
            CfnOutput(self, "ExplainabilityBaselineS3Uri", value=self.explainability.constraints_s3_uri, description="Baseline analysis.json (global SHAP values) each run reads (retraining replaces it)")
            CfnOutput(self, "ExplainabilityAnalysisConfigS3Uri", value=self.explainability.analysis_config_s3_uri, description="analysis_config.json each run reads (retraining replaces it)")

        self.monitors = [monitor for monitor in (self.data_quality, self.explainability) if monitor is not None]
        self.events = MonitoringEvents(
            self,
            "RunEvents",
            config=config,
            monitors=self.monitors,
            endpoint_name=endpoint.endpoint_name,
            monitoring_bucket=monitoring_bucket,
            key=key,
            layer=layer,
            alarm_topic=serving.alerts.topic,
        )
