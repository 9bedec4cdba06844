"""Monitoring runs -> "Monitoring Run Ended" events and metrics; a watchdog for schedules that stop running."""
