"""Evaluation: metrics, calibration, slices, behavioural tests, model comparison, the report."""
