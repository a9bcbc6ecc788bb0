"""The cell classifier's evaluation: the 7-class metrics and the normal/abnormal analysis agree with each other, and
the evaluation file's check finds a tampered figure."""

import copy

import numpy as np
import pytest

from cervix_hf.evaluation.metrics import select_operating_points
from cervix_hf.evaluation.metrics.cell_classification import evaluate_grouped_classifier
from cervix_hf.evaluation.results import EvalResults, EvalResultsError
from cervix_hf.models.cell_classifier import HERLEV_GROUPS, HERLEV_LABELS

NAMES = list(HERLEV_LABELS)


@pytest.fixture
def evaluation():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 6)
    logits = rng.normal(size=(len(labels), 7)) + 2.5 * np.eye(7)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    abnormal = (labels >= 3).astype(int)
    points = select_operating_points(abnormal, probabilities[:, 3:].sum(axis=1), 0.95, 0.95)
    metrics = evaluate_grouped_classifier(
        labels, probabilities, NAMES, HERLEV_GROUPS, "abnormal", points["screening"]["threshold"], points
    )
    return labels, probabilities, metrics


def eval_results(metrics, labels) -> EvalResults:
    counts = {name: int((labels == index).sum()) for index, name in enumerate(NAMES)}
    return EvalResults(
        model_type="cell_classifier",
        label_names=NAMES,
        metrics=metrics,
        data={"source": "herlev", "seed": 0, "class_counts": {"test": counts}},
        training={"stages": [], "augmentation": None, "batch_size": None, "model_size": None},
        extra={"label_groups": HERLEV_GROUPS, "positive_group": "abnormal"},
        software={},
    )


def test_the_binary_analysis_is_the_abnormal_group_sum(evaluation):
    labels, probabilities, metrics = evaluation
    binary = metrics["binary"]
    assert binary["num_positive"] == int((labels >= 3).sum()) and binary["num_negative"] == int((labels < 3).sum())
    threshold = binary["threshold"]
    called = probabilities[:, 3:].sum(axis=1) >= threshold - 1e-12
    assert binary["report"]["sensitivity"] == pytest.approx(called[labels >= 3].mean())
    assert binary["report"]["specificity"] == pytest.approx((~called[labels < 3]).mean())
    assert binary["groups"] == {"Negative": "normal", "Positive": "abnormal"}
    assert metrics["accuracy"] == pytest.approx((probabilities.argmax(axis=1) == labels).mean())
    low, high = metrics["accuracy_interval"]
    assert low < metrics["accuracy"] < high


def test_a_consistent_evaluation_validates(evaluation):
    labels, _, metrics = evaluation
    eval_results(metrics, labels).validate()


@pytest.mark.parametrize(
    "path, value",
    [
        (("binary", "report", "accuracy"), 0.99),
        (("binary", "num_positive"), 1),
        (("accuracy",), 0.99),
    ],
)
def test_a_tampered_figure_is_found(evaluation, path, value):
    labels, _, metrics = evaluation
    tampered = copy.deepcopy(metrics)
    target = tampered
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(EvalResultsError):
        eval_results(tampered, labels).validate()
