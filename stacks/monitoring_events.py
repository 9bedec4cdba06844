"""What happens after a monitoring run: one app event per finished run, alerts, and a watchdog.

    SageMaker "Processing Job State Change" (our schedules, finished) --> run-events queue
        --> monitoring_runs --> "Monitoring Run Ended" (source <app>.monitoring) + MonitoringRuns metric
    "Monitoring Run Ended" with violations, failed or stopped --> alert topic (readable message)
    hourly --> monitoring watchdog --> MonitoringScheduleOverdue metric per schedule --> alarm

Retraining consumes "Monitoring Run Ended"; its shape is in the README.
"""

from __future__ import annotations

import json

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from lambdas.monitoring_runs.runs import MISSED_CADENCES, OVERDUE_METRIC, RUN_ENDED, RUNS_METRIC
from stacks import aws_facts
from stacks.config import AppConfig
from stacks.functions import AppFunction
from stacks.monitoring import DATA_QUALITY_PREFIX, EXPLAINABILITY_PREFIX
from stacks.work_queue import WorkQueue

BAD_OUTCOMES = ("CompletedWithViolations", "Failed", "Stopped")
OUTCOMES = ("Completed", *BAD_OUTCOMES)
WATCHDOG_INTERVAL = Duration.hours(1)


class MonitoringEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        monitors: list,  # DataQualityMonitor | ExplainabilityMonitor
        endpoint_name: str,
        monitoring_bucket: s3.IBucket,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        prefix = config.prefix
        self.event_source = f"{config.app_name}.monitoring"
        self.monitor_kinds = [monitor.kind for monitor in monitors]
        schedules = {monitor.schedule_name: {"monitor": monitor.kind, "endpoint": endpoint_name} for monitor in monitors}
        # Powertools adds the service as a dimension to every metric the functions emit.
        self.service = f"{prefix}-monitoring-runs"
        common = {"key": key, "layer": layer, "retain_logs": config.retain_data, "service": self.service}
        timeout = Duration.minutes(1)
        self.queue = WorkQueue(self, "RunEvents", key=key, consumer_timeout=timeout, alarm_topic=alarm_topic, purpose="Finished monitoring runs waiting for monitoring_runs")

        self.runs = AppFunction(
            self,
            "MonitoringRuns",
            handler="lambdas.monitoring_runs.handler.handler",
            description="Reads each finished monitoring run's violations and publishes Monitoring Run Ended",
            timeout=timeout,
            environment={
                "SCHEDULES": json.dumps(schedules),
                "EVENT_SOURCE": self.event_source,
                "EVENT_BUS_NAME": "default",
                "DEAD_LETTER_QUEUE_URL": self.queue.dead_letter_queue.queue_url,
            },
            **common,
        )
        self.runs.allow(["s3:GetObject"], [monitoring_bucket.arn_for_objects(f"{p}/reports/*") for p in (DATA_QUALITY_PREFIX, EXPLAINABILITY_PREFIX)])
        self.runs.allow(["kms:Decrypt"], [key.key_arn])
        self.queue.dead_letter_queue.grant_send_messages(self.runs.role)
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        default_bus.grant_put_events_to(self.runs.role)
        self.queue.consume(self.runs)
        self.runs.acknowledge_wildcards("Reads only the monitors' report prefixes; log streams are named by Lambda.")

        self.run_finished = events.Rule(
            self,
            "RunFinished",
            description="Monitoring runs of this app's schedules that completed, failed or were stopped",
            event_pattern=events.EventPattern(
                source=[aws_facts.SAGEMAKER_EVENT_SOURCE],
                detail_type=[aws_facts.PROCESSING_JOB_STATE_CHANGE],
                detail={
                    "MonitoringScheduleArn": [monitor.schedule.attr_monitoring_schedule_arn for monitor in monitors],
                    "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
                },
            ),
            targets=[targets.SqsQueue(self.queue.queue, dead_letter_queue=self.queue.dead_letter_queue, retry_attempts=185)],
        )
        self.run_ended_pattern = {"source": [self.event_source], "detail-type": [RUN_ENDED]}
        field = events.EventField.from_path
        self.alert_rule = events.Rule(
            self,
            "RunEndedBadly",
            description="Monitoring runs that found violations, failed or were stopped: notify the alert topic",
            event_pattern=events.EventPattern(source=[self.event_source], detail_type=[RUN_ENDED], detail={"outcome": list(BAD_OUTCOMES)}),
            targets=[
                targets.SnsTopic(
                    alarm_topic,
                    message=events.RuleTargetInput.from_text(
                        f"{field('$.detail.monitor')} monitoring run {field('$.detail.processingJobName')} of {field('$.detail.endpointName')} "
                        f"ended {field('$.detail.outcome')}. Violations: {field('$.detail.violationCount')} "
                        f"(checks {field('$.detail.checkTypes')}, features {field('$.detail.features')}). "
                        f"Failure: {field('$.detail.failureReason')}. Report: {field('$.detail.reportS3Uri')}"
                    ),
                )
            ],
        )

        # --- watchdog: a schedule whose runs stopped happening ----------------------------------
        self.watchdog = AppFunction(
            self,
            "Watchdog",
            handler="lambdas.monitoring_runs.handler.watchdog",
            description="Hourly: reports monitoring schedules that are not running or whose runs stopped happening",
            timeout=timeout,
            environment={"SCHEDULES": json.dumps(schedules), "EVENT_SOURCE": self.event_source, "CADENCES": json.dumps(aws_facts.MONITORING_CADENCES)},
            **common,
        )
        self.watchdog.allow(
            ["sagemaker:DescribeMonitoringSchedule"],
            [stack.format_arn(service="sagemaker", resource="monitoring-schedule", resource_name=name) for name in schedules],
        )
        self.watchdog.acknowledge_wildcards("Log streams are named by Lambda.")
        events.Rule(
            self,
            "WatchdogSchedule",
            description="Checks every hour that each monitoring schedule still runs",
            schedule=events.Schedule.rate(WATCHDOG_INTERVAL),
            targets=[targets.LambdaFunction(self.watchdog.function, retry_attempts=2)],
        )
        self.overdue_alarms = []
        for name in schedules:
            alarm = cloudwatch.Alarm(
                self,
                f"Overdue{name.removeprefix(prefix + '-').title().replace('-', '')}",
                alarm_description=(
                    f"Monitoring schedule {name} has not run for {MISSED_CADENCES} cadences or is not scheduled "
                    "(or the watchdog stopped reporting). See the watchdog's log for the reason."
                ),
                metric=self.overdue_metric(name),
                threshold=1,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
            self.overdue_alarms.append(alarm)

    def overdue_metric(self, schedule: str) -> cloudwatch.Metric:
        return self.watchdog.metric(OVERDUE_METRIC, statistic="Maximum", period=WATCHDOG_INTERVAL, Schedule=schedule)

    def runs_metric(self, monitor: str, outcome: str, period: Duration) -> cloudwatch.Metric:
        return self.runs.metric(RUNS_METRIC, period=period, label=f"{monitor} {outcome}", Monitor=monitor, Outcome=outcome)
