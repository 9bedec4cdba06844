"""What every stage uses: configuration, compliance, functions and layers, work queues, log groups, alerts, AWS facts, image tables."""
