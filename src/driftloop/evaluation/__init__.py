"""Evaluation: metrics, calibration, slices and paired bootstrap comparisons."""
