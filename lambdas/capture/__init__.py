"""Reads captured predictions and picks the ones a human should review."""
