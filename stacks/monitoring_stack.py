"""Monitor: Model Monitor data-quality schedule with its baseline and drift alarms (switchable)."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Stack
from constructs import Construct

from stacks import aws_facts
from stacks.config import AppConfig
from stacks.functions import dependency_layer
from stacks.inference import CAPTURE_PREFIX
from stacks.monitoring import DataQualityMonitor
from stacks.ops_parameters import OpsParameters
from stacks.serving_stack import ServingStack
from stacks.storage_stack import StorageStack


class MonitoringStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, storage: StorageStack, serving: ServingStack, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        dq = config.monitoring.data_quality
        parameters = OpsParameters(self)
        # Only cadences whose period leaves room for a run of max_runtime_seconds.
        cadences = [expression for expression, period in aws_facts.MONITORING_CADENCES.items() if period >= dq.max_runtime_seconds]
        schedule = parameters.add(
            "DataQualitySchedule",
            group="Data quality monitoring",
            label="Schedule",
            description=f"How often the data-quality job checks captured data (hourly: cron(0 * ? * * *)); each run may take up to {dq.max_runtime_seconds} s.",
            type="String",
            default=dq.schedule,
            allowed_values=cadences,
        )
        endpoint = serving.inference
        if dq.dataset_s3_uri is not None:
            bucket, key = dq.dataset_s3_uri.removeprefix("s3://").split("/", 1)
            dataset_uri, dataset_arn = dq.dataset_s3_uri, f"arn:{Aws.PARTITION}:s3:::{bucket}/{key}"
        else:
            bundled = serving.bundled_model
            dataset_uri, dataset_arn = bundled.train_s3_uri, storage.datasets.arn_for_objects(bundled.train_key)
        self.data_quality = DataQualityMonitor(
            self,
            "DataQuality",
            config=config,
            endpoint_name=endpoint.endpoint_name,
            dataset_s3_uri=dataset_uri,
            dataset_object_arn=dataset_arn,
            capture_bucket=storage.capture,
            capture_prefix=f"{CAPTURE_PREFIX}/{endpoint.endpoint_name}",
            monitoring_bucket=storage.buckets["monitoring"],
            key=storage.key,
            layer=dependency_layer(self, "Dependencies"),
            alarm_topic=serving.alerts.topic,
            schedule_expression=schedule.value_as_string,
        )
        CfnOutput(self, "DataQualityScheduleName", value=self.data_quality.schedule_name, description="Model Monitor data-quality schedule")
        if dq.computes_baseline:
            CfnOutput(self, "DataQualityStatisticsS3Uri", value=self.data_quality.baseline.get_att_string("StatisticsS3Uri"), description="Baseline statistics.json")
            CfnOutput(self, "DataQualityConstraintsS3Uri", value=self.data_quality.baseline.get_att_string("ConstraintsS3Uri"), description="Baseline constraints.json")
