"""Serve and capture: the model, its endpoint, data capture and the bundled artefacts."""
