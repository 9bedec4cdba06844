#!/usr/bin/env python3
"""Composition root: configuration -> stacks -> cdk-nag rule packs -> synth."""

from aws_cdk import App, Environment

from stacks import config as app_config
from stacks.compliance import register_rule_packs
from stacks.review_stack import ReviewStack
from stacks.serving_stack import ServingStack
from stacks.storage_stack import StorageStack


def build(app: App) -> tuple[StorageStack, ServingStack, ReviewStack | None]:
    config = app_config.load(app.node.try_get_context)
    env = Environment(account=config.account, region=config.region) if config.account or config.region else None
    title = f"{config.app_name} model loop ({config.environment})"
    storage = StorageStack(
        app,
        "Storage",
        config=config,
        env=env,
        stack_name=config.stack_name("storage"),
        termination_protection=config.retain_data,
        description=f"{title}: KMS key and data buckets",
    )
    serving = ServingStack(
        app,
        "Serving",
        config=config,
        env=env,
        stack_name=config.stack_name("serving"),
        storage=storage,
        description=f"{title}: model, endpoint and data capture",
    )
    review = None
    if config.review.enabled:
        review = ReviewStack(
            app,
            "Review",
            config=config,
            env=env,
            stack_name=config.stack_name("review"),
            storage=storage,
            serving=serving,
            description=f"{title}: A2I human review of low-confidence predictions, labels for retraining",
        )
    register_rule_packs(app)
    return storage, serving, review


if __name__ == "__main__":
    app = App()
    build(app)
    app.synth()
