"""Operate: the CloudWatch dashboard an ops team opens first.

Rows, top to bottom: the endpoint (traffic, latency, errors), data quality (drift per feature and
run outcomes), explainability (global SHAP per feature), model quality (each figure from labels with
its label-free estimate beside it, and the rows labelled), human review (backlog, loops, labels) and
the nightly batch (runs, rows, alarms). A batch-only environment has no endpoint row.
A row whose part is switched off is left out; the dashboard always exists. The monitoring rows are
the same for either monitoring back end: each monitor gives its own metrics (Model Monitor's and
Clarify's namespaces, or the open evaluators' MlLoop metrics) and alarms.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from stacks.batch.stack import BatchStack
from stacks.shared import aws_facts
from stacks.shared.config import AppConfig
from stacks.monitoring.events import OUTCOMES
from stacks.monitoring.stack import MonitoringStack
from stacks.review.stack import ReviewStack
from stacks.serving.stack import ServingStack

WIDTH = 24  # a dashboard row is 24 units wide
FEATURES_PER_GRAPH = 10  # more lines than this and a graph stops being readable


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class DashboardStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        serving: ServingStack,
        monitoring: MonitoringStack | None,
        review: ReviewStack | None,
        batch: BatchStack | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=config.stack_name("operations"), default_interval=Duration.days(7)
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# {config.app_name} ({config.environment}): serve, capture, monitor, review, label\n"
                    + (f"Endpoint **{config.endpoint.name}**. " if config.serving.endpoint else f"Batch only: nightly run **{config.prefix}-batch**. ")
                    + f"Alarms notify the alert topic (output `AlertTopicArn` of `{config.stack_name('serving')}`). Rows below follow the loop."
                ),
                width=WIDTH,
                height=2,
            )
        )
        if config.serving.endpoint:
            self.dashboard.add_widgets(*self._endpoint(config))
        if batch is not None:
            self.dashboard.add_widgets(*self._batch(batch))
        if monitoring is not None and monitoring.data_quality is not None:
            self.dashboard.add_widgets(*self._data_quality(monitoring))
        if monitoring is not None and monitoring.explainability is not None:
            self.dashboard.add_widgets(*self._explainability(monitoring))
        if monitoring is not None and monitoring.model_quality is not None:
            self.dashboard.add_widgets(*self._model_quality(monitoring))
        if monitoring is not None:
            self.dashboard.add_widgets(*self._monitoring_runs(monitoring))
        if review is not None:
            self.dashboard.add_widgets(*self._review(review))

    @staticmethod
    def _endpoint(config: AppConfig) -> list[cloudwatch.IWidget]:
        def metric(name: str, statistic: str, label: str | None = None, namespace: str = aws_facts.ENDPOINT_METRICS_NAMESPACE) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map={"EndpointName": config.endpoint.name, "VariantName": config.endpoint.variant_name},
                statistic=statistic,
                period=Duration.minutes(5),
                label=label or name,
            )

        return [
            cloudwatch.GraphWidget(title="Endpoint invocations", left=[metric("Invocations", "Sum")], width=6),
            cloudwatch.GraphWidget(
                title="Endpoint latency (microseconds)",
                left=[metric("ModelLatency", "p50", "ModelLatency p50"), metric("ModelLatency", "p90", "ModelLatency p90"), metric("OverheadLatency", "p90", "OverheadLatency p90")],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint errors",
                left=[metric("Invocation4XXErrors", "Sum", "4XX"), metric("Invocation5XXErrors", "Sum", "5XX"), metric("ModelSetupTime", "Maximum")],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint instances",
                left=[metric(name, "Average", namespace=aws_facts.ENDPOINT_INSTANCE_METRICS_NAMESPACE) for name in ("CPUUtilization", "MemoryUtilization", "DiskUtilization")],
                width=6,
            ),
        ]

    @staticmethod
    def _batch(batch: BatchStack) -> list[cloudwatch.IWidget]:
        machine, day = batch.state_machine, Duration.days(1)
        outcomes = [machine.metric(name, statistic="Sum", period=day, label=name.removeprefix("Executions")) for name in ("ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")]
        return [
            cloudwatch.GraphWidget(title="Nightly batch runs per day", left=outcomes, stacked=True, width=8),
            cloudwatch.GraphWidget(
                title="Nightly batch rows per day",
                left=[batch.steps.metric(name, period=day, label=name) for name in ("BatchRowsPredicted", "BatchRowsRejected", "RowsSelectedForReview", "RowsSelectedForAudit")],
                width=8,
            ),
            cloudwatch.AlarmStatusWidget(title="Nightly batch alarms (run failed, overdue)", alarms=[batch.failed_alarm, batch.overdue_alarm], width=8, height=6),
        ]

    @staticmethod
    def _data_quality(monitoring: MonitoringStack) -> list[cloudwatch.IWidget]:
        dq = monitoring.data_quality
        threshold = cloudwatch.HorizontalAnnotation(value=dq.drift_threshold, label="alarm threshold", color=cloudwatch.Color.RED)
        features = list(dq.drift_metrics.values())
        graphs = _chunks(features, FEATURES_PER_GRAPH)
        width = max(WIDTH // len(graphs), 6)
        return [
            cloudwatch.GraphWidget(
                title=f"Data drift per feature (baseline distance) {index + 1}/{len(graphs)}",
                left=chunk,
                left_annotations=[threshold],
                width=width,
                height=6,
            )
            for index, chunk in enumerate(graphs)
        ]

    @staticmethod
    def _explainability(monitoring: MonitoringStack) -> list[cloudwatch.IWidget]:
        ex = monitoring.explainability
        return [
            cloudwatch.GraphWidget(
                title=f"Global SHAP per feature (mean |SHAP|, label {ex.label}), latest run",
                left=list(ex.shap_metrics.values()),
                view=cloudwatch.GraphWidgetView.BAR,
                width=WIDTH,
                height=8,
            )
        ]

    @staticmethod
    def _model_quality(monitoring: MonitoringStack) -> list[cloudwatch.IWidget]:
        mq = monitoring.model_quality
        figures = list(mq.quality_metrics)
        width = WIDTH // (len(figures) + 1)
        return [
            *(
                cloudwatch.GraphWidget(
                    title=f"Model quality: {name}, from labels and estimated from scores",
                    left=[mq.quality_metrics[name], mq.estimated_metrics[name]],
                    left_y_axis=cloudwatch.YAxisProps(min=0, max=1, show_units=False),
                    width=width,
                    height=6,
                )
                for name in figures
            ),
            cloudwatch.GraphWidget(title="Model quality: labelled rows per evaluation", left=[mq.labelled_rows_metric], width=WIDTH - width * len(figures), height=6),
        ]

    @staticmethod
    def _monitoring_runs(monitoring: MonitoringStack) -> list[cloudwatch.IWidget]:
        runs = monitoring.events
        day = Duration.days(1)
        return [
            cloudwatch.GraphWidget(
                title="Monitoring run outcomes per day",
                left=[runs.runs_metric(kind, outcome, day) for kind in runs.monitor_kinds for outcome in OUTCOMES],
                stacked=True,
                view=cloudwatch.GraphWidgetView.TIME_SERIES,
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Monitoring alarms (overdue schedules, failed runs, drift, model quality)",
                alarms=[
                    *runs.overdue_alarms,
                    *runs.alarms,
                    *(monitoring.data_quality.drift_alarms if monitoring.data_quality else []),
                    *(monitoring.model_quality.violation_alarms if monitoring.model_quality else []),
                ],
                width=12,
                height=6,
            ),
        ]

    @staticmethod
    def _review(review: ReviewStack) -> list[cloudwatch.IWidget]:
        pipeline = review.pipeline
        five = Duration.minutes(5)
        queues = [
            ("capture objects", pipeline.capture_events),
            ("review groups", pipeline.review_queue),
            ("loop results", pipeline.results_queue),
        ]
        backlog = [q.queue.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum", label=name) for name, q in queues]
        backlog.append(pipeline.deferred.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum", label="deferred (over daily budget)"))
        parked = [q.dead_letter_queue.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum", label=f"{name} DLQ") for name, q in queues]
        return [
            cloudwatch.GraphWidget(title="Human review backlog (messages waiting)", left=backlog, width=8),
            cloudwatch.GraphWidget(title="Human review: parked (dead-letter queues)", left=parked, width=8),
            cloudwatch.GraphWidget(
                title="Human review flow per hour",
                left=[
                    function.metric(name, label=name)
                    for function, name in (
                        (pipeline.capture_filter, "RowsSelectedForReview"),
                        (pipeline.capture_filter, "RowsSelectedForAudit"),
                        (pipeline.starter, "HumanLoopsStarted"),
                        (pipeline.starter, "RowsOverDailyCap"),
                        (pipeline.starter, "RecordsNotExplained"),
                        (pipeline.results, "HumanLoopsCompleted"),
                        (pipeline.results, "LabelsWritten"),
                    )
                ],
                width=8,
            ),
        ]
