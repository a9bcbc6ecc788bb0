"""Metrics of a classifier whose classes roll up into two groups (the cell classifier: seven Herlev classes, normal
and abnormal): the multi-class metrics of its classes, and the threshold analysis of its positive group's
probability (the sum of the group's class probabilities), with 95% intervals.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from cervix_hf.evaluation.metrics.binary import check_binary_consistency, evaluate_binary, wilson_interval
from cervix_hf.evaluation.metrics.classification import compute_classification_metrics
from cervix_hf.evaluation.metrics.classification import eval_results_problems as classification_problems
from cervix_hf.evaluation.metrics.consistency import expecter


def group_probability(probabilities, label_names: Sequence[str], members: Sequence[str]) -> np.ndarray:
    """The probability of a group of classes: the sum of its members' probabilities, per row."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    columns = [list(label_names).index(name) for name in members]
    return np.clip(probabilities[:, columns].sum(axis=1), 0.0, 1.0)


def evaluate_grouped_classifier(
    references: Sequence[int],
    probabilities,
    label_names: Sequence[str],
    label_groups: Mapping[str, Sequence[str]],
    positive_group: str,
    threshold: float,
    operating_points: dict | None = None,
) -> dict:
    r"""
    Everything a card reports about a classifier whose classes roll up into a negative and a positive group.

    Args:
        references (`Sequence[int]`): true class indices.
        probabilities (array-like of shape `(num_samples, num_classes)`): class probabilities.
        label_names (`Sequence[str]`): class names, in class order.
        label_groups (`Mapping[str, Sequence[str]]`): two groups of class names.
        positive_group (`str`): the group whose probability the threshold applies to.
        threshold (`float`): the decision threshold on the positive group's probability.
        operating_points (`dict`, *optional*): points chosen on validation cases ([`select_operating_points`]),
            measured again on these cases.

    Returns:
        `dict`: [`compute_classification_metrics`]'s result (accuracy, classification report, confusion matrix, log
        loss, ROC-AUC of the classes) with `accuracy_interval` (Wilson, 95%), and `binary`: [`evaluate_binary`] of
        the positive group (Negative = the other group, Positive = `positive_group`) with `groups` naming them and
        `accuracy_interval` (Wilson, 95%) of its accuracy at `threshold`.
    """
    references = np.asarray(references, dtype=np.int64)
    metrics = compute_classification_metrics(references, probabilities, list(label_names))
    correct = int(round(metrics["accuracy"] * len(references)))
    metrics["accuracy_interval"] = wilson_interval(correct, len(references))
    positive = positive_group
    negative = next(name for name in label_groups if name != positive)
    positive_classes = [list(label_names).index(name) for name in label_groups[positive]]
    binary_labels = np.isin(references, positive_classes).astype(np.int64)
    scores = group_probability(probabilities, label_names, label_groups[positive])
    binary = evaluate_binary(binary_labels, scores, threshold, operating_points)
    (tn, _), (_, tp) = binary["report"]["confusion_matrix"]
    binary["accuracy_interval"] = wilson_interval(tn + tp, binary["num_cases"])
    binary["groups"] = {"Negative": negative, "Positive": positive}
    metrics["binary"] = binary
    return metrics


def eval_results_problems(eval_results: dict) -> list[str]:
    """
    The contradictions in a grouped classifier's `eval_results.json`: the classes' report against their confusion
    matrix and class counts; the binary analysis's own consistency; its case counts against the confusion matrix
    rolled up by group.
    """
    problems = classification_problems(eval_results)
    metrics, names = eval_results["metrics"], eval_results["label_names"]
    binary = metrics["binary"]
    try:
        check_binary_consistency(binary)
    except ValueError as err:
        problems.append(str(err))
    expect = expecter(problems)
    groups = eval_results["label_groups"]
    positive = binary["groups"]["Positive"]
    matrix = metrics["confusion_matrix"]
    positive_rows = sum(sum(matrix[names.index(name)]) for name in groups[positive])
    expect(
        "metrics.binary.num_positive (the positive group's rows of the confusion matrix)",
        binary["num_positive"],
        positive_rows,
    )
    expect("metrics.binary.num_cases", binary["num_cases"], sum(map(sum, matrix)))
    return problems


__all__ = ["evaluate_grouped_classifier", "eval_results_problems", "group_probability"]
