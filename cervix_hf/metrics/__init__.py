"""Evaluation metrics of cervix_hf models: an `evaluate` module for classification, functions for detection and for
the threshold analysis of binary classifiers."""

from .binary import (
    binary_report,
    bootstrap_intervals,
    check_binary_consistency,
    evaluate_binary,
    select_operating_points,
    threshold_table,
    wilson_interval,
)
from .classification import ClassificationMetrics, compute_classification_metrics
from .detection import compute_detection_metrics

__all__ = [
    "ClassificationMetrics",
    "binary_report",
    "bootstrap_intervals",
    "check_binary_consistency",
    "compute_classification_metrics",
    "compute_detection_metrics",
    "evaluate_binary",
    "select_operating_points",
    "threshold_table",
    "wilson_interval",
]
