"""Evaluation metrics of cervix_hf models, as `evaluate` modules."""

from .classification import ClassificationMetrics, compute_classification_metrics
from .detection import compute_detection_metrics

__all__ = ["ClassificationMetrics", "compute_classification_metrics", "compute_detection_metrics"]
