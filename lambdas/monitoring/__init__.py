"""Monitoring's functions: baseline jobs, run events."""
