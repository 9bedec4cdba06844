"""Powertools reads these when a handler module is imported, as it does in Lambda."""

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MlLoopTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tests")
