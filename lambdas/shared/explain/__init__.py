"""Exact SHAP values of the model the endpoint serves now, for the review starter (per record) and
the open monitoring back end (per period): ``results`` (what an explanation is, pure Python),
``deployed_model`` (which model the endpoint serves, boto3) and ``tree`` (XGBoost's own TreeSHAP,
which needs the explain layer built from ``requirements.txt`` here).
"""
