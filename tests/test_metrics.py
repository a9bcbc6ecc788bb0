import math
from pathlib import Path

import evaluate
import numpy as np
import pytest

from cervix_hf.metrics import ClassificationMetrics, compute_classification_metrics
from cervix_hf.metrics import classification as classification_module

LABEL_NAMES = ["Type_1", "Type_2", "Type_3"]

# Six samples, three classes, worked out by hand:
#   sample  true  probabilities      predicted
#   0       0     [0.7, 0.2, 0.1]    0  right
#   1       0     [0.2, 0.5, 0.3]    1  wrong
#   2       1     [0.1, 0.8, 0.1]    1  right
#   3       1     [0.3, 0.6, 0.1]    1  right
#   4       2     [0.1, 0.3, 0.6]    2  right
#   5       2     [0.5, 0.1, 0.4]    0  wrong
# accuracy = 4/6
# confusion matrix (rows true, columns predicted): [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
# precision = column diagonal / column sum: Type_1 1/2, Type_2 2/3, Type_3 1/1
# recall = row diagonal / row sum (support 2 each): Type_1 1/2, Type_2 2/2, Type_3 1/2
# F1 = 2PR/(P+R): Type_1 0.5, Type_2 (4/3)/(5/3) = 0.8, Type_3 1/1.5 = 2/3
# macro (= weighted, equal supports): precision 13/18, recall 2/3, F1 (0.5 + 0.8 + 2/3)/3 = 59/90
# log loss = -(ln 0.7 + ln 0.2 + ln 0.8 + ln 0.6 + ln 0.6 + ln 0.4)/6
#          = (0.356675 + 1.609438 + 0.223144 + 0.510826 + 0.510826 + 0.916291)/6 = 0.687866
# one-vs-rest AUC, as the fraction of (positive, negative) pairs ranked right:
#   Type_1: positives 0.7, 0.2 vs negatives 0.1, 0.3, 0.1, 0.5 -> (4 + 2)/8 = 0.75
#   Type_2: positives 0.8, 0.6 vs negatives 0.2, 0.5, 0.3, 0.1 -> 8/8 = 1
#   Type_3: positives 0.6, 0.4 vs negatives 0.1, 0.3, 0.1, 0.1 -> 8/8 = 1
#   macro = (0.75 + 1 + 1)/3 = 11/12
REFERENCES = [0, 0, 1, 1, 2, 2]
PROBABILITIES = [
    [0.7, 0.2, 0.1],
    [0.2, 0.5, 0.3],
    [0.1, 0.8, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.3, 0.6],
    [0.5, 0.1, 0.4],
]
PREDICTIONS = [0, 1, 1, 1, 2, 0]


def _load_by_path(config_name="default"):
    return evaluate.load(str(Path(classification_module.__file__)), config_name)


def _assert_hand_computed(results):
    assert results["accuracy"] == pytest.approx(4 / 6)
    assert results["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    report = results["classification_report"]
    assert list(report) == [*LABEL_NAMES, "macro avg", "weighted avg"]
    per_class = {"Type_1": (0.5, 0.5, 0.5), "Type_2": (2 / 3, 1.0, 0.8), "Type_3": (1.0, 0.5, 2 / 3)}
    for name, (precision, recall, f1) in per_class.items():
        assert report[name] == pytest.approx({"precision": precision, "recall": recall, "f1-score": f1, "support": 2})
    for average in ("macro avg", "weighted avg"):
        expected = {"precision": 13 / 18, "recall": 2 / 3, "f1-score": 59 / 90, "support": 6}
        assert report[average] == pytest.approx(expected)
    # float32 storage of the scores in the "with_scores" configuration costs ~1e-7.
    assert results["log_loss"] == pytest.approx(0.687866, abs=1e-6)
    assert results["roc_auc"] == pytest.approx(11 / 12)


@pytest.mark.parametrize("make_metric", [ClassificationMetrics, _load_by_path], ids=["direct", "evaluate.load by path"])
def test_hand_computed_example(make_metric):
    results = make_metric().compute(
        predictions=PREDICTIONS, references=REFERENCES, prediction_scores=PROBABILITIES, label_names=LABEL_NAMES
    )
    _assert_hand_computed(results)


def test_with_scores_configuration_accumulates_batches():
    metric = _load_by_path("with_scores")
    for start in (0, 3):
        batch = slice(start, start + 3)
        metric.add_batch(
            predictions=PREDICTIONS[batch], references=REFERENCES[batch], prediction_scores=PROBABILITIES[batch]
        )
    _assert_hand_computed(metric.compute(label_names=LABEL_NAMES))


def test_compute_classification_metrics_predicts_the_most_probable_class():
    _assert_hand_computed(compute_classification_metrics(REFERENCES, np.array(PROBABILITIES), LABEL_NAMES))


def test_without_scores_there_is_no_log_loss_nor_roc_auc():
    results = ClassificationMetrics().compute(predictions=PREDICTIONS, references=REFERENCES)
    assert results["accuracy"] == pytest.approx(4 / 6)
    assert list(results["classification_report"])[:3] == ["0", "1", "2"]
    assert "log_loss" not in results and "roc_auc" not in results


def test_roc_auc_is_none_with_a_reason_when_a_class_is_absent():
    probabilities = [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]]
    results = compute_classification_metrics([0, 1, 1], probabilities, LABEL_NAMES)
    assert results["roc_auc"] is None
    assert "Type_3" in results["roc_auc_reason"]
    assert results["classification_report"]["Type_3"]["support"] == 0
    assert results["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_log_loss_is_clipped_and_renormalised_like_kaggle():
    # A zero probability for the true class is clipped to 1e-15, then the row [1e-15, 1 - 1e-15, 1e-15] is divided
    # by its sum 1 + 1e-15: loss = -ln(1e-15 / (1 + 1e-15)) = 34.538776 instead of infinity.
    results = compute_classification_metrics([0], [[0.0, 1.0, 0.0]], LABEL_NAMES)
    assert results["log_loss"] == pytest.approx(-math.log(1e-15 / (1 + 1e-15)))
    # Rows that do not sum to 1 are renormalised: [0.2, 0.1, 0.1] counts as [0.5, 0.25, 0.25].
    results = compute_classification_metrics([0], [[0.2, 0.1, 0.1]], LABEL_NAMES)
    assert results["log_loss"] == pytest.approx(math.log(2))


def test_two_classes():
    probabilities = [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]]
    results = compute_classification_metrics([0, 0, 1, 1], probabilities, ["CIN1", "CIN2+"])
    # Positives 0.7, 0.8 outrank negatives 0.1 and 0.6: AUC = 4/4.
    assert results["roc_auc"] == pytest.approx(1.0)
    assert results["accuracy"] == pytest.approx(0.75)


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="config_name"):
        ClassificationMetrics(config_name="multilabel")
    with pytest.raises(ValueError, match="class indices"):
        ClassificationMetrics().compute(predictions=[0, 3], references=[0, 1], label_names=LABEL_NAMES)
    with pytest.raises(ValueError, match="shape"):
        compute_classification_metrics([0, 1], [[0.5, 0.5], [0.5, 0.5]], LABEL_NAMES)
    with pytest.raises(ValueError, match="softmax"):
        compute_classification_metrics([0, 1], [[2.0, -1.0, 0.0], [0.1, 0.8, 0.1]], LABEL_NAMES)
