"""Turns completed A2I human loops into labels for retraining and model-quality monitoring."""
