"""The nightly batch: EventBridge Scheduler -> Step Functions -> a batch transform -> the review loop."""
