"""Evaluation metrics of cervix_hf models: an `evaluate` module for classification, functions for detection and for
the threshold analysis of binary classifiers."""

from cervix_hf.evaluation.metrics.binary import (
    binary_report,
    bootstrap_intervals,
    check_binary_consistency,
    evaluate_binary,
    select_operating_points,
    threshold_table,
    wilson_interval,
)
from cervix_hf.evaluation.metrics.classification import ClassificationMetrics, compute_classification_metrics
from cervix_hf.evaluation.metrics.detection import compute_detection_metrics

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
