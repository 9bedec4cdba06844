"""Starts one Amazon A2I human loop per review group, within a daily budget."""
