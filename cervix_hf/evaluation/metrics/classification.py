"""Classification metrics for cervix_hf models: accuracy, per-class report, confusion matrix, log loss, ROC-AUC.

This file is a self-contained `evaluate` module (it imports only third-party libraries), so it also loads offline
by path: `evaluate.load("path/to/classification.py")`.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, log_loss, roc_auc_score

from cervix_hf.evaluation.metrics.consistency import expecter, safe_ratio

# The Kaggle multi-class log loss clips probabilities to [eps, 1 - eps] and renormalises each row.
KAGGLE_LOG_LOSS_EPS = 1e-15

_DESCRIPTION = """
Multi-class classification metrics: accuracy, per-class precision/recall/F1 with support (scikit-learn's
`classification_report`), the confusion matrix and, when class probabilities are given, the multi-class log loss
(the Intel & MobileODT competition metric, clipped as Kaggle does) and the macro one-vs-rest ROC-AUC, which ranks the
probabilities as given (unclipped, not renormalised).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`):
        Predicted class indices.
    references (`list[int]`):
        True class indices.
    prediction_scores (`list[list[float]]`, *optional*):
        Class probabilities (softmax outputs), one row of `num_classes` values per sample. A stored input (usable
        with `add_batch`) in the `"with_scores"` configuration; in the `"default"` configuration it may still be
        passed to `compute`.
    label_names (`list[str]`, *optional*, defaults to `["0", "1", ...]`):
        Class names, in class-index order; they key the classification report.

Returns:
    accuracy (`float`): fraction of correct predictions.
    classification_report (`dict`): per label name and for "macro avg" and "weighted avg", a dict with
        "precision", "recall", "f1-score" and "support".
    confusion_matrix (`list[list[int]]`): rows are true classes, columns predicted classes.
    log_loss (`float`): only when `prediction_scores` is given.
    roc_auc (`float` or `None`): macro one-vs-rest ROC-AUC of the probabilities as given (with two classes, the AUC
        of class 1's probabilities), only when `prediction_scores` is given; `None` when a class is absent from
        `references`, with the reason in `roc_auc_reason`.

Examples:
    >>> metric = ClassificationMetrics()
    >>> results = metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["Type_1", "Type_2"])
    >>> results["accuracy"]
    0.6666666666666666
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""

_FEATURES = {
    "default": datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
    "with_scores": datasets.Features(
        {
            "predictions": datasets.Value("int64"),
            "references": datasets.Value("int64"),
            "prediction_scores": datasets.Sequence(datasets.Value("float32")),
        }
    ),
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ClassificationMetrics(evaluate.Metric):
    r"""
    Accuracy, per-class report, confusion matrix and, given probabilities, log loss and ROC-AUC.

    Args:
        config_name (`str`, *optional*, defaults to `"default"`):
            `"default"` stores predictions and references; `"with_scores"` also stores `prediction_scores`, so that
            they can be accumulated with `add_batch`.
    """

    def _info(self):
        if self.config_name not in _FEATURES:
            raise ValueError(f"config_name must be one of {list(_FEATURES)}, got {self.config_name!r}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_FEATURES[self.config_name],
            reference_urls=["https://www.kaggle.com/competitions/intel-mobileodt-cervical-cancer-screening"],
        )

    def _compute(self, predictions, references, prediction_scores=None, label_names=None):
        return _classification_metrics(references, predictions, prediction_scores, label_names)


def compute_classification_metrics(references, probabilities, label_names) -> dict:
    r"""
    Metrics of a classifier from its class probabilities; the predicted class is the most probable one.

    Args:
        references (`Sequence[int]`):
            True class indices.
        probabilities (array-like of shape `(num_samples, num_classes)`):
            Class probabilities (softmax outputs).
        label_names (`Sequence[str]`):
            Class names, in class-index order.

    Returns:
        `dict`: the results of [`ClassificationMetrics`], log loss and ROC-AUC included.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return _classification_metrics(references, probabilities.argmax(axis=-1), probabilities, label_names)


def _classification_metrics(references, predictions, probabilities, label_names) -> dict:
    references = np.asarray(references, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if label_names is None:
        if probabilities is not None:
            num_classes = np.shape(probabilities)[-1]
        else:
            num_classes = int(max(references.max(), predictions.max())) + 1
        label_names = [str(label) for label in range(num_classes)]
    label_names = list(label_names)
    labels = list(range(len(label_names)))
    for name, values in (("references", references), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= len(labels)):
            raise ValueError(f"{name} must be class indices in [0, {len(labels)}) for label_names {label_names}.")

    report = classification_report(
        references, predictions, labels=labels, target_names=label_names, output_dict=True, zero_division=0
    )
    results = {
        "accuracy": float(accuracy_score(references, predictions)),
        # sklearn adds "accuracy" or "micro avg" depending on the labels present; keep a stable set of keys.
        "classification_report": {key: report[key] for key in [*label_names, "macro avg", "weighted avg"]},
        "confusion_matrix": confusion_matrix(references, predictions, labels=labels).tolist(),
    }
    if probabilities is None:
        return results

    probabilities = _validate_probabilities(probabilities, len(references), len(labels))
    results["log_loss"] = float(log_loss(references, _clip_and_renormalise(probabilities), labels=labels))
    missing = [name for label, name in zip(labels, label_names) if label not in set(references.tolist())]
    if missing:
        results["roc_auc"] = None
        results["roc_auc_reason"] = f"ROC-AUC is undefined: no reference sample of class(es) {missing}."
    elif len(labels) == 2:
        # sklearn's binary convention; with rows summing to 1 it is also the macro one-vs-rest AUC.
        results["roc_auc"] = float(roc_auc_score(references, probabilities[:, 1]))
    else:
        # One-vs-rest per class, averaged: sklearn's multi_class="ovr" on the probabilities as given. Clipping or
        # renormalising would tie scores below the clip and reorder exact ties by last-bit differences; the
        # one-hot form also accepts rows that miss a sum of 1 by half-precision rounding.
        one_hot_references = np.eye(len(labels), dtype=np.int64)[references]
        results["roc_auc"] = float(roc_auc_score(one_hot_references, probabilities, average="macro"))
    return results


def _validate_probabilities(probabilities, num_samples, num_classes) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (num_samples, num_classes):
        raise ValueError(
            f"prediction_scores must have shape (num_samples, num_classes) = ({num_samples}, {num_classes}), "
            f"got {probabilities.shape}."
        )
    if (probabilities < 0).any():
        raise ValueError("prediction_scores must be probabilities, got negative values: apply a softmax to logits.")
    return probabilities


def _clip_and_renormalise(probabilities: np.ndarray) -> np.ndarray:
    """Kaggle's log-loss input: each probability clipped to [eps, 1 - eps], then each row divided by its sum."""
    probabilities = np.clip(probabilities, KAGGLE_LOG_LOSS_EPS, 1 - KAGGLE_LOG_LOSS_EPS)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def eval_results_problems(eval_results: dict) -> list[str]:
    """
    The contradictions in a classifier's `eval_results.json`: class counts, supports, per-class and averaged rates
    and accuracy checked against the confusion matrix.
    """
    metrics, names = eval_results["metrics"], eval_results["label_names"]
    matrix, report = metrics["confusion_matrix"], metrics["classification_report"]
    split = eval_results.get("evaluated_on", "test")
    split_counts = eval_results["data"]["class_counts"].get(split)
    if len(matrix) != len(names) or any(len(row) != len(names) for row in matrix):
        return [f"metrics.confusion_matrix is not {len(names)}x{len(names)} for the classes {names}"]
    problems = []
    expect = expecter(problems)
    total = sum(map(sum, matrix))
    per_class = {"precision": [], "recall": [], "f1-score": [], "support": []}
    for index, name in enumerate(names):
        support, predicted, hits = sum(matrix[index]), sum(row[index] for row in matrix), matrix[index][index]
        recall, precision = safe_ratio(hits, support), safe_ratio(hits, predicted)
        scores = {
            "precision": precision,
            "recall": recall,
            "f1-score": safe_ratio(2 * precision * recall, precision + recall),
            "support": support,
        }
        for metric, value in scores.items():
            expect(f"metrics.classification_report.{name}.{metric}", report[name][metric], value)
            per_class[metric].append(value)
        if split_counts is not None:
            expect(f"data.class_counts.{split}.{name}", split_counts.get(name), support)
    expect("metrics.accuracy", metrics["accuracy"], safe_ratio(sum(matrix[i][i] for i in range(len(names))), total))
    supports = per_class.pop("support")
    for metric, values in per_class.items():
        macro = sum(values) / len(names)
        weighted = safe_ratio(sum(value * support for value, support in zip(values, supports)), total)
        expect(f"metrics.classification_report.macro avg.{metric}", report["macro avg"][metric], macro)
        expect(f"metrics.classification_report.weighted avg.{metric}", report["weighted avg"][metric], weighted)
    for average in ("macro avg", "weighted avg"):
        expect(f"metrics.classification_report.{average}.support", report[average]["support"], total)
    return problems
