import math
from pathlib import Path

import evaluate
import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from cervix_hf.evaluation.metrics import ClassificationMetrics, compute_classification_metrics
from cervix_hf.evaluation.metrics import classification as classification_module

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


def test_roc_auc_ranks_the_probabilities_as_given():
    # float32 softmax rows:
    #   true  class 0    class 1  class 2
    #   0     4.2e-18    0.9933   0.0067
    #   1     8.3e-27    0.9526   0.0474
    #   2     8.3e-27    0.0474   0.9526
    # One-vs-rest: class 0's 4.2e-18 outranks both 8.3e-27 -> 1; class 1's 0.9526 beats 0.0474 but not 0.9933 -> 1/2;
    # class 2's 0.9526 beats both -> 1. Macro = 5/6. Clipped to 1e-15 and renormalised, class 0's three scores
    # differ only by the row sums' last bits and the true one ranks last: 0, and a macro AUC of 1/2.
    probabilities = softmax(np.array([[-40, 0, -5], [-60, 0, -3], [-60, -3, 0]], dtype=np.float32), axis=1)
    results = compute_classification_metrics([0, 1, 2], probabilities, LABEL_NAMES)
    assert results["roc_auc"] == pytest.approx(5 / 6)


def _random_probabilities(kind, rng, num_samples, num_classes):
    if kind == "dirichlet(0.05) float32":  # mostly near-one-hot rows, with values far below 1e-15 and exact zeros
        return rng.dirichlet([0.05] * num_classes, num_samples).astype(np.float32)
    if kind == "tenths":  # many exact ties and zeros: rows of tenths summing to 1
        tenths = np.stack([rng.multinomial(10, [1 / num_classes] * num_classes) for _ in range(num_samples)])
        return tenths / 10
    # One-hot rows mixed with Dirichlet(0.05) rows.
    probabilities = np.eye(num_classes)[rng.integers(0, num_classes, num_samples)]
    soft = rng.random(num_samples) < 0.5
    probabilities[soft] = rng.dirichlet([0.05] * num_classes, soft.sum())
    return probabilities


@pytest.mark.parametrize("kind", ["dirichlet(0.05) float32", "tenths", "one-hot and dirichlet(0.05)"])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_roc_auc_agrees_with_sklearn_on_random_probabilities(kind, num_classes):
    rng = np.random.default_rng(num_classes)
    label_names = LABEL_NAMES[:num_classes]
    for _ in range(25):
        num_samples = int(rng.integers(num_classes, 30))
        # Every class present, so the AUC is defined.
        references = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, num_samples - num_classes)])
        probabilities = _random_probabilities(kind, rng, num_samples, num_classes)
        scores = np.asarray(probabilities, dtype=np.float64)
        if num_classes == 2:
            expected = roc_auc_score(references, scores[:, 1])
        else:
            expected = roc_auc_score(references, scores, multi_class="ovr", average="macro")
        results = compute_classification_metrics(references, probabilities, label_names)
        assert results["roc_auc"] == pytest.approx(expected, rel=1e-12), (references.tolist(), scores.tolist())


def test_roc_auc_ranks_rows_that_do_not_sum_to_one():
    # Half-precision softmax rows miss a sum of 1 by up to ~1e-3; each class's column is ranked as given. Here every
    # sample's true class holds its column's highest score: AUC 1.
    probabilities = [[0.2, 0.1, 0.1], [0.1, 0.4, 0.1], [0.1, 0.1, 0.3]]
    assert compute_classification_metrics([0, 1, 2], probabilities, LABEL_NAMES)["roc_auc"] == 1.0


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
