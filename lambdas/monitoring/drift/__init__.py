"""The app's own data-quality monitor: per-feature sketches of captured rows (``sketch``), baselines in
Model Monitor's formats (``baseline``) and the evaluation of a period against them (``evaluate``).

Pure Python (standard library and orjson), so it runs in the Lambda runtime and offline alike.
"""
