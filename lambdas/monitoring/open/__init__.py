"""The open monitoring back end: the app's own scheduled evaluators and their deploy-time baselines."""
