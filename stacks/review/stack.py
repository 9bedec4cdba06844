"""Human review: selected captured predictions become review tasks, answers become labels.

``review.backend`` picks who shows the tasks to reviewers: ``open`` (default) the app's own
reviewers' web app (stacks/review/app.py), ``a2i`` Amazon A2I (stacks/review/a2i.py). The rest of
the loop (selection, the daily budget, attributions, results and labels) is the same for both.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from stacks.shared import aws_facts
from stacks.shared.config import AppConfig
from stacks.shared.functions import dependency_layer
from stacks.review.a2i import HumanTask
from stacks.review.app import ReviewersApp
from stacks.serving.inference import CAPTURE_PREFIX
from stacks.shared.ops_parameters import OpsParameters
from stacks.review.pipeline import ReviewPipeline, review_event_source
from stacks.serving.stack import ServingStack
from stacks.storage.stack import StorageStack


class ReviewStack(Stack):
    """The review back end (reviewers' app or A2I), the capture -> review -> labels pipeline and its alarms."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, storage: StorageStack, serving: ServingStack, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        review = config.review
        parameters = OpsParameters(self)
        if review.backend == "a2i":
            workteam_props = {"default": review.workteam_arn} if review.workteam_arn else {}
            workteam = parameters.add(
                "WorkteamArn",
                group="Human review",
                label="Private workteam ARN",
                description="ARN of the private workteam whose members review predictions (SageMaker > Labeling workforces > Private).",
                type="String",
                allowed_pattern=aws_facts.WORKTEAM_ARN_PATTERN.pattern,
                constraint_description="must be arn:<partition>:sagemaker:<region>:<account>:workteam/private-crowd/<name>",
                **workteam_props,
            )
        lower = parameters.add(
            "ReviewLowerThreshold",
            group="Human review",
            label="Band: lower probability",
            description="With the band rule, predictions with lower < probability < upper go to review (seed 000: 0.1). Must be below the upper threshold.",
            type="Number",
            default=review.lower,
            min_value=0,
            max_value=1,
        )
        upper = parameters.add(
            "ReviewUpperThreshold",
            group="Human review",
            label="Band: upper probability",
            description="With the band rule, predictions with lower < probability < upper go to review (seed 000: 0.9).",
            type="Number",
            default=review.upper,
            min_value=0,
            max_value=1,
        )
        max_loops = parameters.add(
            "MaxHumanLoopsPerDay",
            group="Human review",
            label="Human loops per day (budget)",
            description="At most this many human loops start per UTC day; further review groups wait on the deferred queue for the next day.",
            type="Number",
            default=review.max_loops_per_day,
            min_value=1,
        )
        layer = dependency_layer(self, "Dependencies")
        self.human_task: HumanTask | None = None
        self.reviewers_app: ReviewersApp | None = None
        if review.backend == "a2i":
            self.human_task = HumanTask(
                self,
                review.template.title().replace("_", ""),  # LowConfidence | OutcomeReview
                config=config,
                template=review.template,
                workteam_arn=workteam.value_as_string,
                review_bucket=storage.buckets["review"],
                key=storage.key,
                layer=layer,
            )
        else:
            self.reviewers_app = ReviewersApp(
                self,
                "ReviewersApp",
                config=config,
                review_bucket=storage.buckets["review"],
                key=storage.key,
                layer=layer,
                alarm_topic=serving.alerts.topic,
                event_source=review_event_source(config),
            )
        endpoint = serving.inference
        self.pipeline = ReviewPipeline(
            self,
            "Pipeline",
            config=config,
            storage=storage,
            endpoint=endpoint,
            capture_prefix=f"{CAPTURE_PREFIX}/{endpoint.endpoint_name}/{endpoint.variant_name}",
            back_end=self.human_task or self.reviewers_app,
            layer=layer,
            alarm_topic=serving.alerts.topic,
            lower=lower.value_as_string,
            upper=upper.value_as_string,
            max_loops_per_day=max_loops.value_as_string,
        )

        if self.human_task is not None:
            CfnOutput(self, "FlowDefinitionArn", value=self.human_task.flow_definition_arn, description="A2I flow definition reviewers' tasks come from")
            CfnOutput(self, "HumanTaskUiArn", value=self.human_task.task_ui.attr_human_task_ui_arn, description="Worker task template")
            CfnOutput(self, "ReviewOutputS3Uri", value=self.human_task.output_s3_uri, description="Where A2I writes reviewers' answers")
        for name, work in (("CaptureEvents", self.pipeline.capture_events), ("ReviewGroups", self.pipeline.review_queue), ("LoopResults", self.pipeline.results_queue)):
            CfnOutput(self, f"{name}DeadLetterQueueUrl", value=work.dead_letter_queue.queue_url, description=f"Parked {name} messages, each with a reason attribute")
        CfnOutput(self, "DeferredQueueUrl", value=self.pipeline.deferred.queue_url, description="Review groups over the daily budget, moved back after midnight UTC")
        CfnOutput(self, "LabelsAvailableEventSource", value=self.pipeline.event_source, description="EventBridge source of the 'Labels Available' events")
