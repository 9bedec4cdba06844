"""Operate: the dashboard of the whole loop."""
