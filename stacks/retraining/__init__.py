"""Retrain: triggers and the Step Functions retraining that redeploys the model."""
