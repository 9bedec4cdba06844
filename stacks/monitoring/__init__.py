"""Monitor: baselines, schedules, drift alarms and run events (one module per back end)."""
