"""What happens after a monitoring run: one app event per finished run, alerts, and a watchdog.

    sagemaker back end: SageMaker "Processing Job State Change" (our schedules, finished) --> run-events
        queue --> monitoring_runs --> "Monitoring Run Ended" (source <app>.monitoring) + MonitoringRuns metric
    open back end, and the model-quality monitor with either back end: each evaluator publishes
        "Monitoring Run Ended" and MonitoringRuns itself (open.py)
    "Monitoring Run Ended" with violations, failed or stopped --> alert topic (a JSON summary, published
        through the rule's own role; what cannot be delivered goes to an alarmed queue)
    hourly --> monitoring watchdog --> MonitoringScheduleOverdue metric per schedule --> alarm; it asks
        SageMaker (DescribeMonitoringSchedule) or EventBridge Scheduler (GetSchedule, and the
        evaluation's latest.json run marker) whichever runs the schedule: with the sagemaker back end
        and model quality on, a second watchdog watches the model-quality schedule on Scheduler

Retraining consumes "Monitoring Run Ended"; its shape is in the README.
"""

from __future__ import annotations

import json

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from lambdas.monitoring.runs.runs import MISSED_CADENCES, OVERDUE_METRIC, RUN_ENDED, RUNS_METRIC, latest_marker_key
from stacks.shared import aws_facts
from stacks.shared.compliance import acknowledge, acknowledge_wildcards
from stacks.shared.config import AppConfig
from stacks.shared.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES, METRICS_NAMESPACE, AppFunction, Invocation
from stacks.monitoring.open import OpenMonitor
from stacks.monitoring.sagemaker import DATA_QUALITY_PREFIX, EXPLAINABILITY_PREFIX
from stacks.shared.work_queue import WorkQueue, alarm_at_one_message, encrypted_queue

BAD_OUTCOMES = ("CompletedWithViolations", "Failed", "Stopped")
# "Monitoring Run Ended" detail fields an alert carries (lambdas/monitoring/runs/runs.py writes them all).
ALERT_FIELDS = (
    "monitor", "endpointName", "processingJobName", "outcome", "violationCount", "checkTypes", "features", "failureReason", "reportS3Uri",
    "reportHtmlS3Uri",
)  # fmt: skip
OUTCOMES = ("Completed", *BAD_OUTCOMES)
WATCHDOG_INTERVAL = Duration.hours(1)


def event_source(config: AppConfig) -> str:
    """The source of the app's "Monitoring Run Ended" events (either back end)."""
    return f"{config.app_name}.monitoring"


class MonitoringEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        monitors: list,  # DataQualityMonitor | ExplainabilityMonitor, or the open back end's, and OpenModelQualityMonitor
        endpoint_name: str,
        monitoring_bucket: s3.IBucket,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = config.prefix
        self.backend = config.monitoring.backend
        self.event_source = event_source(config)
        self.monitor_kinds = [monitor.kind for monitor in monitors]
        # Who runs each schedule: EventBridge Scheduler (the open monitors, model quality with either
        # back end) or Model Monitor and Clarify.
        runs_on = {"open": [m for m in monitors if isinstance(m, OpenMonitor)], "sagemaker": [m for m in monitors if not isinstance(m, OpenMonitor)]}
        schedules = {kind: {m.schedule_name: {"monitor": m.kind, "endpoint": endpoint_name} for m in group} for kind, group in runs_on.items()}
        # Powertools adds the service as a dimension to every metric the functions emit; the open
        # back end's evaluators use the same one.
        self.service = f"{prefix}-monitoring-runs"
        common = {"key": key, "layer": layer, "retain_logs": config.retain_data, "service": self.service}
        timeout = Duration.minutes(1)
        # The alarms the dashboard shows beside the drift alarms.
        self.alarms: list[cloudwatch.Alarm] = []
        if runs_on["sagemaker"]:
            self._processing_job_runs(runs_on["sagemaker"], schedules["sagemaker"], monitoring_bucket, key, alarm_topic, common, timeout)
        self.alarms += [monitor.evaluation.alarm for monitor in runs_on["open"]]
        self._alerts(key, alarm_topic)
        self.watchdogs: dict[str, AppFunction] = {}
        self.overdue_alarms: list[cloudwatch.Alarm] = []
        # The stack's back end's watchdog keeps its construct ID; the other one (Scheduler's, for model
        # quality beside Model Monitor) gets its own.
        for backend in sorted(schedules, key=lambda kind: kind != self.backend):
            if schedules[backend]:
                self._watchdog(config, backend, schedules[backend], monitoring_bucket, alarm_topic, common, timeout)

    def _processing_job_runs(self, monitors: list, schedules: dict, monitoring_bucket: s3.IBucket, key: kms.IKey, alarm_topic: sns.ITopic, common: dict, timeout: Duration) -> None:
        """SageMaker's processing-job events of our schedules' runs --> monitoring_runs --> Monitoring Run Ended."""
        self.queue = WorkQueue(self, "RunEvents", key=key, consumer_timeout=timeout, alarm_topic=alarm_topic, purpose="Finished monitoring runs waiting for monitoring_runs")

        self.runs = AppFunction(
            self,
            "MonitoringRuns",
            handler="lambdas.monitoring.runs.handler.handler",
            description="Reads each finished monitoring run's violations and publishes Monitoring Run Ended",
            invocation=Invocation.queue(),
            timeout=timeout,
            environment={
                "SCHEDULES": json.dumps(schedules),
                "EVENT_SOURCE": self.event_source,
                "EVENT_BUS_NAME": "default",
                "DEAD_LETTER_QUEUE_URL": self.queue.dead_letter_queue.queue_url,
            },
            **common,
        )
        reports = [f"{p}/reports/" for p in (DATA_QUALITY_PREFIX, EXPLAINABILITY_PREFIX)]
        self.runs.allow(["s3:GetObject"], [monitoring_bucket.arn_for_objects(f"{r}*") for r in reports])
        # A clean data-quality run writes no constraint_violations.json. S3 answers a read of a missing
        # key with 404 NoSuchKey only to a caller who may list the bucket, otherwise with 403
        # AccessDenied (GetObject, "Permissions"); listing is evaluated with s3:prefix set to the key,
        # so a listing grant on the report prefixes is enough (ceph/ceph#68577 mirrors AWS there).
        # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
        self.runs.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[monitoring_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{r}*" for r in reports]}},
            )
        )
        self.runs.allow(["kms:Decrypt"], [key.key_arn])
        self.queue.dead_letter_queue.grant_send_messages(self.runs.role)
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        default_bus.grant_put_events_to(self.runs.role)
        self.queue.consume(self.runs)
        self.runs.acknowledge_wildcards(
            "Reads and lists only the monitors' report prefixes (<monitor>/reports/*: Model Monitor names each run's "
            "folder by endpoint, schedule and hour); kms:GenerateDataKey* and kms:ReEncrypt* are what "
            "aws-cdk-lib's grant_send_messages gives for the KMS-encrypted dead-letter queue it parks bad events on."
        )

        self.run_finished = self.queue.add_rule(
            self,
            "RunFinished",
            description="Monitoring runs of this app's schedules that completed, failed or were stopped",
            event_pattern=events.EventPattern(
                source=[aws_facts.SAGEMAKER_EVENT_SOURCE],
                detail_type=[aws_facts.PROCESSING_JOB_STATE_CHANGE],
                # A run of one of our schedules, known by its MonitoringScheduleArn or, should the
                # event not carry it (unverified: stacks/shared/aws_facts.py), by its report under our prefixes.
                detail={
                    "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
                    "$or": [
                        {"MonitoringScheduleArn": [monitor.schedule.attr_monitoring_schedule_arn for monitor in monitors]},
                        {"ProcessingOutputConfig": {"Outputs": {"S3Output": {"S3Uri": [{"prefix": f"s3://{monitoring_bucket.bucket_name}/{r}"} for r in reports]}}}},
                    ],
                },
            ),
        )
        self.alarms.append(self.queue.alarm)

    def _alerts(self, key: kms.IKey, alarm_topic: sns.ITopic) -> None:
        self.run_ended_pattern = {"source": [self.event_source], "detail-type": [RUN_ENDED]}
        # The alert is a JSON object whose every value is one event field, placed unquoted: EventBridge
        # then inserts each as its JSON value (arrays stay arrays, quotes in a failure reason are
        # escaped), where a field inside a quoted string template is inserted unescaped ("EventBridge
        # doesn't escape values extracted by Input Path", Common issues).
        # https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_InputTransformer.html
        # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
        self.alert_message = {
            "alert": "A monitoring run found violations, failed or was stopped",
            **{name: events.EventField.from_path(f"$.detail.{name}") for name in ALERT_FIELDS},
        }
        # What EventBridge cannot deliver to the topic (after retrying for 24 hours) is kept here.
        self.undelivered_alerts = encrypted_queue(self, "UndeliveredAlerts", key=key, retention=Duration.days(14))
        acknowledge(
            self.undelivered_alerts,
            "This is a dead-letter queue: EventBridge's, for monitoring-run alerts it could not publish to the alert topic.",
            "AwsSolutions-SQS3",
        )
        alarm_at_one_message(
            self,
            "UndeliveredAlertsAlarm",
            self.undelivered_alerts,
            "Monitoring-run alerts EventBridge could not publish to the alert topic (see each message's ERROR_CODE and "
            "ERROR_MESSAGE attributes); the alarm may not reach the topic either: check the topic and its key policy.",
            alarm_topic,
        )
        self.alert_rule = events.Rule(
            self,
            "RunEndedBadly",
            description="Monitoring runs that found violations, failed or were stopped: notify the alert topic",
            event_pattern=events.EventPattern(source=[self.event_source], detail_type=[RUN_ENDED], detail={"outcome": list(BAD_OUTCOMES)}),
            targets=[
                # Published with the rule's own role: the topic and key policies then grant EventBridge
                # nothing, so no other account's rule can publish through them (confused deputy); a
                # KMS key policy cannot scope EventBridge-to-SNS by aws:SourceAccount or aws:SourceArn.
                # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html
                targets.SnsTopic(
                    alarm_topic,
                    authorize_using_role=True,
                    message=events.RuleTargetInput.from_object(self.alert_message),
                    dead_letter_queue=self.undelivered_alerts,
                    retry_attempts=185,
                )
            ],
        )
        policy = self.alert_rule.node.find_child("EventsRole").node.find_child("DefaultPolicy")
        acknowledge_wildcards(
            policy,
            policy.document,
            "aws-cdk-lib's grant_publish on the KMS-encrypted alert topic: kms:GenerateDataKey* is its key action for "
            "encrypting the message, on the app's key only.",
        )
        acknowledge(policy, ACK_INLINE_POLICY, *INLINE_POLICY_RULES)

    def _watchdog(self, config: AppConfig, backend: str, schedules: dict, monitoring_bucket: s3.IBucket, alarm_topic: sns.ITopic, common: dict, timeout: Duration) -> None:
        """A schedule whose runs stopped happening (or that is not running) raises an alarm."""
        stack, prefix = Stack.of(self), config.prefix
        environment = {"SCHEDULES": json.dumps(schedules), "EVENT_SOURCE": self.event_source, "CADENCES": json.dumps(aws_facts.MONITORING_CADENCES), "BACKEND": backend}
        if backend == "open":
            environment["MONITORING_BUCKET"] = monitoring_bucket.bucket_name
        construct_id = "Watchdog" if backend == self.backend else f"{backend.title()}Watchdog"
        watchdog = self.watchdogs[backend] = AppFunction(
            self,
            construct_id,
            handler="lambdas.monitoring.runs.handler.watchdog",
            description="Hourly: reports monitoring schedules that are not running or whose runs stopped happening",
            invocation=Invocation.schedule(
                rate="hourly",
                failures="a run that fails publishes no MonitoringScheduleOverdue data point, and an overdue alarm whose data "
                "stops goes to INSUFFICIENT_DATA, which notifies the alert topic; the next hour's run replaces a lost one.",
            ),
            timeout=timeout,
            environment=environment,
            **common,
        )
        if backend == "sagemaker":
            watchdog.allow(
                ["sagemaker:DescribeMonitoringSchedule"],
                [stack.format_arn(service="sagemaker", resource="monitoring-schedule", resource_name=name) for name in schedules],
            )
        else:
            # The schedules (default group) and each evaluation's run marker: HEAD is authorised as
            # s3:GetObject, and listing the exact key tells a missing marker (404) from a denied one.
            watchdog.allow(
                ["scheduler:GetSchedule"],
                [stack.format_arn(service="scheduler", resource="schedule", resource_name=f"default/{name}") for name in schedules],
            )
            markers = [latest_marker_key(where["monitor"], where["endpoint"], name) for name, where in schedules.items()]
            watchdog.allow(["s3:GetObject"], [monitoring_bucket.arn_for_objects(marker) for marker in markers])
            watchdog.role.add_to_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[monitoring_bucket.bucket_arn], conditions={"StringEquals": {"s3:prefix": markers}})
            )
        events.Rule(
            self,
            f"{construct_id}Schedule",
            description="Checks every hour that each monitoring schedule still runs",
            schedule=events.Schedule.rate(WATCHDOG_INTERVAL),
            targets=[targets.LambdaFunction(watchdog.function, retry_attempts=2)],
        )
        for name in schedules:
            alarm = cloudwatch.Alarm(
                self,
                f"Overdue{name.removeprefix(prefix + '-').title().replace('-', '')}",
                alarm_description=(
                    f"ALARM: monitoring schedule {name} has not run for {MISSED_CADENCES} cadences or is not scheduled. "
                    "INSUFFICIENT_DATA after data: the watchdog stopped reporting. See the watchdog's log for the reason."
                ),
                metric=self.overdue_metric(name),
                threshold=1,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # Missing data is not "overdue": an alarm is created in INSUFFICIENT_DATA and stays there
                # until the watchdog's first run (up to an hour after deploy), instead of starting in ALARM
                # as a breaching alarm would. A watchdog that stops reporting later moves the alarm from
                # OK to INSUFFICIENT_DATA, which notifies like ALARM does.
                treat_missing_data=cloudwatch.TreatMissingData.MISSING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
            alarm.add_insufficient_data_action(cw_actions.SnsAction(alarm_topic))
            self.overdue_alarms.append(alarm)

    @property
    def watchdog(self) -> AppFunction:
        """The watchdog of the stack's back end's schedules (or the only one)."""
        return self.watchdogs.get(self.backend) or next(iter(self.watchdogs.values()))

    def overdue_metric(self, schedule: str) -> cloudwatch.Metric:
        # Every watchdog has the runs' service (Powertools' dimension), so one metric per schedule.
        return self.watchdog.metric(OVERDUE_METRIC, statistic="Maximum", period=WATCHDOG_INTERVAL, Schedule=schedule)

    def runs_metric(self, monitor: str, outcome: str, period: Duration) -> cloudwatch.Metric:
        """MonitoringRuns of one monitor and outcome: monitoring_runs' (sagemaker) or the evaluators' (open), one service."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=RUNS_METRIC,
            dimensions_map={"Monitor": monitor, "Outcome": outcome, "service": self.service},
            statistic="Sum",
            period=period,
            label=f"{monitor} {outcome}",
        )
