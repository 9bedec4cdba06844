#!/usr/bin/env python3
"""Composition root: configuration -> stacks -> cdk-nag rule packs -> synth."""

import sys
from typing import NamedTuple

from aws_cdk import App, Environment

from stacks.batch.stack import BatchStack
from stacks.shared import config as app_config
from stacks.shared.compliance import register_rule_packs
from stacks.operations.dashboard import DashboardStack
from stacks.monitoring.stack import MonitoringStack
from stacks.retraining.stack import RetrainingStack
from stacks.review.stack import ReviewStack
from stacks.serving.stack import ServingStack
from stacks.storage.stack import StorageStack


MONITORING_DESCRIPTIONS = {
    "open": "open monitoring back end (Lambda and EventBridge Scheduler): data quality and feature attribution, baselines, schedules, alarms",
    "sagemaker": "Model Monitor data quality and Clarify explainability: baselines, schedules, alarms",
}
REVIEW_DESCRIPTIONS = {
    "open": "human review of low-confidence predictions in the reviewers' app (Cognito, HTTP API, DynamoDB), labels for retraining",
    "a2i": "A2I human review of low-confidence predictions, labels for retraining",
}


class Stacks(NamedTuple):
    storage: StorageStack
    serving: ServingStack
    monitoring: MonitoringStack | None
    review: ReviewStack | None
    retraining: RetrainingStack | None
    dashboard: DashboardStack
    batch: BatchStack | None = None


def build(app: App) -> Stacks:
    config = app_config.load(app.node.try_get_context)
    env = Environment(account=config.account, region=config.region) if config.account or config.region else None
    title = f"{config.app_name} model loop ({config.environment})"

    def stack(kind, construct_id: str, what: str, **props):
        part = construct_id.lower()
        return kind(app, construct_id, config=config, env=env, stack_name=config.stack_name(part), description=f"{title}: {what}", **props)

    storage = stack(StorageStack, "Storage", "KMS key and data buckets", termination_protection=config.retain_data)
    serving = stack(
        ServingStack,
        "Serving",
        "model, endpoint, data capture and the alert topic" if config.serving.endpoint else "the model's execution role and the alert topic (batch only: no endpoint)",
        storage=storage,
    )
    review = (
        stack(ReviewStack, "Review", REVIEW_DESCRIPTIONS[config.review.backend], storage=storage, serving=serving)
        if config.review.enabled
        else None
    )
    # Model quality reads review's selection band (which captured rows went to review).
    monitoring = (
        stack(MonitoringStack, "Monitoring", MONITORING_DESCRIPTIONS[config.monitoring.backend], storage=storage, serving=serving, review=review)
        if config.monitoring.any_enabled
        else None
    )
    retraining = (
        stack(
            RetrainingStack,
            "Retraining",
            "EventBridge triggers and the Step Functions retraining that redeploys the model",
            storage=storage,
            serving=serving,
            monitoring=monitoring,
            review=review,
        )
        if config.retraining.enabled
        else None
    )
    batch = (
        stack(
            BatchStack,
            "Batch",
            "the nightly batch: EventBridge Scheduler, the Step Functions run of a batch transform, and its review hand-off",
            storage=storage,
            serving=serving,
            review=review,
        )
        if config.batch.enabled
        else None
    )
    dashboard = stack(DashboardStack, "Operations", "CloudWatch dashboard of the whole loop", serving=serving, monitoring=monitoring, review=review, batch=batch)
    register_rule_packs(app)
    return Stacks(storage, serving, monitoring, review, retraining, dashboard, batch)


if __name__ == "__main__":
    # `cdk synth` runs the three cdk-nag packs (above) but not aws-cdk-lib's built-in CloudFormation
    # validation: building its engine and checking every template was a third of a synth (make
    # bench). The tests' apps keep it, with cdk.json's validateAgainstDefaultRules making its errors
    # fail them (tests/stacks/test_synth_checks.py), beside cfn-lint on every template.
    app = App(builtin_cloud_formation_validation=False)
    try:
        build(app)
    except app_config.ConfigError as error:  # the message names the key and what is allowed; a traceback adds nothing
        sys.exit(f"configuration error: {error}")
    app.synth()
