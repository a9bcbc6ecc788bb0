"""Evaluation metrics of cervix_hf models, as `evaluate` modules."""

from .classification import ClassificationMetrics, compute_classification_metrics

__all__ = ["ClassificationMetrics", "compute_classification_metrics"]
