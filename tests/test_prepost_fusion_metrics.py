import copy
import json
import math
import re

import numpy as np
import pytest
from scipy.stats import binomtest

from cervix_hf.evaluation.metrics import (
    binary_report,
    bootstrap_intervals,
    check_binary_consistency,
    evaluate_binary,
    select_operating_points,
    threshold_table,
)

# Six cases worked out by hand; Positive when score >= threshold.
#   case  label  score
#   0     0      0.1
#   1     0      0.2
#   2     0      0.4
#   3     0      0.6    Positive at 0.5: a false positive
#   4     1      0.55
#   5     1      0.9
LABELS = [0, 0, 0, 0, 1, 1]
SCORES = [0.1, 0.2, 0.4, 0.6, 0.55, 0.9]


def test_report_at_one_threshold_matches_hand_arithmetic():
    report = binary_report(LABELS, SCORES, threshold=0.5)

    # At 0.5: Positive are 0.6 (label 0), 0.55 and 0.9 (label 1) -> TP = 2, FP = 1; TN = 3 (0.1, 0.2, 0.4), FN = 0.
    assert report["confusion_matrix"] == [[3, 1], [0, 2]]
    assert (report["num_cases"], report["num_positive"], report["num_negative"]) == (6, 2, 4)
    assert report["sensitivity"] == pytest.approx(1.0)  # TP / (TP + FN) = 2/2
    assert report["specificity"] == pytest.approx(0.75)  # TN / (TN + FP) = 3/4
    assert report["ppv"] == pytest.approx(2 / 3)  # TP / (TP + FP) = 2/3
    assert report["npv"] == pytest.approx(1.0)  # TN / (TN + FN) = 3/3
    assert report["accuracy"] == pytest.approx(5 / 6)  # (TP + TN) / 6
    assert report["f1"] == pytest.approx(0.8)  # 2TP / (2TP + FP + FN) = 4/5
    # ROC-AUC, the fraction of (Positive, Negative) pairs ranked right: 0.55 beats 3 of the 4 Negative scores,
    # 0.9 beats all 4 -> 7/8.
    assert report["roc_auc"] == pytest.approx(7 / 8)
    # Average precision, by decreasing score: 0.9 (P: precision 1/1), 0.6 (N), 0.55 (P: precision 2/3); each Positive
    # adds 1/2 of recall -> 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert report["pr_auc"] == pytest.approx(5 / 6)
    assert report["prevalence"] == pytest.approx(2 / 6)

    classes = report["classification_report"]
    assert classes["Negative"]["support"] == 4 and classes["Positive"]["support"] == 2
    assert classes["Positive"]["recall"] == pytest.approx(report["sensitivity"])
    assert classes["Negative"]["recall"] == pytest.approx(report["specificity"])
    assert classes["Negative"]["precision"] == pytest.approx(report["npv"])


def test_the_threshold_itself_counts_as_positive():
    # 0.6 scores exactly the threshold: Positive, so the Negative case 3 is a false positive.
    assert binary_report(LABELS, SCORES, threshold=0.6)["confusion_matrix"] == [[3, 1], [1, 1]]


@pytest.mark.parametrize(
    "score, threshold",
    [(0.3, 0.1 + 0.2), (0.1 + 0.2, 0.3)],
    ids=["threshold-above-by-rounding", "threshold-below-by-rounding"],
)
def test_a_score_equal_to_the_threshold_up_to_rounding_is_positive_everywhere(score, threshold):
    # 0.1 + 0.2 is 0.30000000000000004: either way round, the Negative case scored "0.3" is a false positive.
    results = evaluate_binary([0, 1], [score, 0.9], threshold=threshold)
    assert results["report"]["confusion_matrix"] == [[0, 1], [0, 1]]
    assert results["intervals"]["specificity"]["estimate"] == 0.0
    # One table row near 0.3, at the chosen threshold, with the report's counts.
    rows = [row for row in results["threshold_table"] if math.isclose(row["threshold"], 0.3)]
    assert [row["threshold"] for row in rows] == [threshold]
    assert (rows[0]["tp"], rows[0]["fp"], rows[0]["tn"], rows[0]["fn"]) == (1, 1, 0, 0)
    assert [row["fp"] for row in threshold_table([0, 1], [score, 0.9], [0.3, 0.1 + 0.2])] == [1, 1]


def test_a_score_below_the_threshold_by_more_than_rounding_is_negative():
    # 1e-6 below the threshold, or float32's 0.699999988 for a threshold of 0.7: Negative, as a model comparing its
    # float32 probability with the threshold decides.
    assert evaluate_binary([0, 1], [0.3, 0.9], threshold=0.3 + 1e-6)["report"]["confusion_matrix"] == [[1, 0], [0, 1]]
    float32_score = float(np.float32(0.7))
    assert binary_report([0, 1], [float32_score, 0.9], threshold=0.7)["confusion_matrix"] == [[1, 0], [0, 1]]


def test_undefined_ratios_are_none_not_zero():
    # At 0.95 nothing is predicted Positive: PPV = 0/0.
    report = binary_report(LABELS, SCORES, threshold=0.95)
    assert report["ppv"] is None
    assert report["classification_report"]["Positive"]["precision"] is None
    assert report["sensitivity"] == 0.0  # 0 of 2 found is defined, and 0

    # Only Negative cases: sensitivity and the AUCs are undefined, with the reason.
    report = binary_report([0, 0, 0], [0.1, 0.6, 0.2], threshold=0.5)
    assert report["sensitivity"] is None
    assert report["roc_auc"] is None and report["pr_auc"] is None
    assert "only one class" in report["auc_reason"]


def test_threshold_table_rows():
    rows = {row["threshold"]: row for row in threshold_table(LABELS, SCORES)}
    assert list(rows) == pytest.approx([round(0.05 * k, 2) for k in range(21)])

    # 0.0: every case Positive -> TP 2, FP 4, TN 0, FN 0; precision 2/6; F1 = 4/(4 + 4); NPV = 0/0.
    assert rows[0.0] == {
        "threshold": 0.0,
        "tp": 2,
        "fp": 4,
        "tn": 0,
        "fn": 0,
        "accuracy": pytest.approx(2 / 6),
        "precision": pytest.approx(2 / 6),
        "recall": 1.0,
        "specificity": 0.0,
        "npv": None,
        "f1": pytest.approx(0.5),
    }
    # 0.6: Positive are 0.6 (N) and 0.9 (P) -> TP 1, FP 1, TN 3, FN 1; F1 = 2/(2 + 1 + 1).
    assert rows[0.6] == {
        "threshold": 0.6,
        "tp": 1,
        "fp": 1,
        "tn": 3,
        "fn": 1,
        "accuracy": pytest.approx(4 / 6),
        "precision": 0.5,
        "recall": 0.5,
        "specificity": 0.75,
        "npv": 0.75,
        "f1": pytest.approx(0.5),
    }
    # 1.0: nothing Positive -> TP 0, FP 0, TN 4, FN 2; precision 0/0; F1 = 0/(0 + 0 + 2) = 0.
    assert rows[1.0] == {
        "threshold": 1.0,
        "tp": 0,
        "fp": 0,
        "tn": 4,
        "fn": 2,
        "accuracy": pytest.approx(4 / 6),
        "precision": None,
        "recall": 0.0,
        "specificity": 1.0,
        "npv": pytest.approx(4 / 6),
        "f1": 0.0,
    }


def test_operating_points():
    # Candidates (0, 1 and every score) with their sensitivity, specificity and Youden's J:
    #   threshold  0     0.1   0.2   0.4   0.55  0.6   0.9   1
    #   sens       1     1     1     1     1     0.5   0.5   0
    #   spec       0     0     0.25  0.5   0.75  0.75  1     1
    #   J          0     0     0.25  0.5   0.75  0.25  0.5   0
    points = select_operating_points(LABELS, SCORES, target_sensitivity=0.9, target_specificity=0.9)
    # Highest threshold with sensitivity >= 0.9: 0.55.
    assert points["screening"] == {
        "rule": points["screening"]["rule"],
        "threshold": 0.55,
        "sensitivity": 1.0,
        "specificity": 0.75,
        "achieved": True,
        "reason": None,
    }
    # Lowest threshold with specificity >= 0.9: 0.9.
    assert (points["confirmatory"]["threshold"], points["confirmatory"]["sensitivity"]) == (0.9, 0.5)
    assert points["confirmatory"]["achieved"]
    # Largest J, 0.75, at 0.55.
    assert points["balanced"]["threshold"] == 0.55

    # With a specificity target of 0.7, the lowest threshold reaching it is 0.55 (0.75), not 0.9.
    assert select_operating_points(LABELS, SCORES, target_specificity=0.7)["confirmatory"]["threshold"] == 0.55


def test_balanced_point_ties_go_to_the_threshold_closest_to_one_half():
    # labels 0, 1, 0, 1 with scores 0.1, 0.2, 0.3, 0.6:
    #   at 0.2: sens 2/2, spec 1/2 -> J 0.5 (0.3 from 0.5);  at 0.6: sens 1/2, spec 2/2 -> J 0.5 (0.1 from 0.5)
    #   at 0.3: sens 1/2, spec 1/2 -> J 0;  at 0, 0.1: J 0;  at 1: J 0
    points = select_operating_points([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.6])
    assert points["balanced"]["threshold"] == 0.6


def test_unreachable_target_returns_the_closest_point_and_says_so():
    # A Negative case scored 1.0 is Positive at every threshold, so specificity is at most 2/3:
    #   threshold  0    0.2  0.3  0.8  1
    #   spec       0    0    1/3  2/3  2/3   (Negative scores 1.0, 0.3, 0.2)
    #   sens       1    1    1    1    0     (Positive score 0.8)
    points = select_operating_points([0, 0, 0, 1], [1.0, 0.3, 0.2, 0.8], target_specificity=0.9)
    confirmatory = points["confirmatory"]
    assert confirmatory["achieved"] is False
    assert "0.9" in confirmatory["reason"]
    # The highest specificity, 2/3, first reached at 0.8, where sensitivity is still 1.
    assert confirmatory["threshold"] == 0.8
    assert confirmatory["specificity"] == pytest.approx(2 / 3) and confirmatory["sensitivity"] == 1.0


def test_operating_points_need_both_classes():
    points = select_operating_points([1, 1], [0.3, 0.8])
    assert all(point["threshold"] is None and not point["achieved"] for point in points.values())
    assert "both classes" in points["balanced"]["reason"]


def test_bootstrap_and_wilson_intervals():
    intervals = bootstrap_intervals(LABELS, SCORES, threshold=0.5, n_resamples=500, seed=1)
    specificity = intervals["specificity"]
    assert (specificity["estimate"], specificity["successes"], specificity["total"]) == (0.75, 3, 4)
    low, high = specificity["bootstrap"]
    assert 0 <= low <= 0.75 <= high <= 1
    # Stratified: every resample draws the 2 Positive cases from the Positive cases, both found -> always 1.
    assert intervals["sensitivity"]["bootstrap"] == [1.0, 1.0]
    # ... which is why the Wilson interval is reported too. For 2/2 (z = 1.959964, z^2 = 3.841459):
    #   centre = (1 + z^2/4) / (1 + z^2/2) = 1.960365 / 2.920730 = 0.671191
    #   half = z / 2.920730 * sqrt(0 + z^2/16) = 0.671055 * 0.489991 = 0.328811 -> [0.3424, 1] (capped at 1)
    assert intervals["sensitivity"]["wilson"] == pytest.approx([0.3424, 1.0], abs=1e-4)
    assert bootstrap_intervals(LABELS, SCORES, 0.5, n_resamples=500, seed=1) == intervals


def test_bootstrap_interval_is_the_2_5_and_97_5_percentiles_of_the_documented_resampling():
    labels, scores = _forty_nine_cases()
    # The resampling the docstring states, at the defaults (2000 resamples, 95%, seed 0): Positive cases first.
    labels, scores = np.array(labels), np.array(scores)
    correct = (scores >= 0.5) == labels
    rng = np.random.default_rng(0)
    expected = {}
    for name, label in (("sensitivity", 1), ("specificity", 0)):
        class_correct = correct[labels == label]
        resampled = class_correct[rng.integers(0, len(class_correct), size=(2000, len(class_correct)))].mean(axis=1)
        expected[name] = np.percentile(resampled, [2.5, 97.5])
        assert not np.allclose(expected[name], np.percentile(resampled, [10, 90]))  # an 80% interval would differ
    for intervals in (bootstrap_intervals(labels, scores, 0.5), evaluate_binary(labels, scores, 0.5)["intervals"]):
        assert intervals["confidence"] == 0.95
        for name in ("sensitivity", "specificity"):
            assert intervals[name]["bootstrap"] == pytest.approx(expected[name].tolist(), abs=1e-12)


@pytest.mark.parametrize("confidence", [0.95, 0.8])
@pytest.mark.parametrize("total", [1, 4, 13])
def test_wilson_intervals_agree_with_scipy(total, confidence):
    for successes in range(total + 1):
        # All cases Positive, `successes` of them found at 0.5.
        scores = [0.9] * successes + [0.1] * (total - successes)
        wilson = bootstrap_intervals([1] * total, scores, 0.5, n_resamples=1, confidence=confidence)["sensitivity"]
        expected = binomtest(successes, total).proportion_ci(confidence_level=confidence, method="wilson")
        assert wilson["wilson"] == pytest.approx([expected.low, expected.high], abs=1e-12)


def test_a_class_without_cases_has_no_interval():
    intervals = bootstrap_intervals([0, 0, 0], [0.1, 0.6, 0.2], threshold=0.5)
    assert intervals["sensitivity"]["estimate"] is None and intervals["sensitivity"]["wilson"] is None
    assert "no Positive case" in intervals["sensitivity"]["reason"]
    assert intervals["specificity"]["estimate"] == pytest.approx(2 / 3)


def _row_at(results: dict, threshold: float) -> dict:
    return next(row for row in results["threshold_table"] if math.isclose(row["threshold"], threshold))


def _forty_nine_cases():
    # 45 Negative cases, 42 scored below 0.5 and 3 above; 4 Positive cases, 1 scored above 0.5.
    negative_scores = list(np.linspace(0.02, 0.45, 42)) + [0.6, 0.7, 0.8]
    positive_scores = [0.9, 0.3, 0.2, 0.1]
    return [0] * 45 + [1] * 4, negative_scores + positive_scores


def test_small_test_set_reports_agree_with_each_other():
    labels, scores = _forty_nine_cases()
    results = evaluate_binary(labels, scores, threshold=0.5)

    assert (results["num_cases"], results["num_positive"], results["num_negative"]) == (49, 4, 45)
    classes = results["report"]["classification_report"]
    # The supports are the class counts of these 49 cases, nothing else.
    assert (classes["Negative"]["support"], classes["Positive"]["support"]) == (45, 4)
    assert classes["Negative"]["support"] + classes["Positive"]["support"] == 49
    assert classes["macro avg"]["support"] == 49
    # TP = 1 of 4 -> sensitivity 0.25, the Positive recall; TN = 42 of 45.
    assert results["report"]["confusion_matrix"] == [[42, 3], [3, 1]]
    assert results["report"]["sensitivity"] == classes["Positive"]["recall"] == 0.25
    assert results["report"]["specificity"] == pytest.approx(42 / 45)
    assert results["intervals"]["sensitivity"]["estimate"] == 0.25
    # Wilson 95% for 1/4 (z = 1.959964, z^2 = 3.841459):
    #   centre = (0.25 + z^2/8) / (1 + z^2/4) = 0.730182 / 1.960365 = 0.372472
    #   half = z / 1.960365 * sqrt(0.25 * 0.75 / 4 + z^2/64) = 0.999795 * sqrt(0.106898) = 0.326885
    #   -> [0.0456, 0.6994]: four Positive cases cannot say more.
    assert results["intervals"]["sensitivity"]["wilson"] == pytest.approx([0.0456, 0.6994], abs=1e-4)
    row = _row_at(results, 0.5)
    assert (row["tp"], row["fp"], row["tn"], row["fn"]) == (1, 3, 42, 3)
    json.dumps(results)  # plain Python numbers, ready for a model card


def test_the_chosen_threshold_gets_a_table_row_off_the_grid():
    results = evaluate_binary(LABELS, SCORES, threshold=0.57)
    row = _row_at(results, 0.57)
    assert (row["tp"], row["fp"], row["tn"], row["fn"]) == (1, 1, 3, 1)


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda r: r["report"]["classification_report"]["Positive"].update(support=29), "Positive support"),
        (lambda r: r["report"]["classification_report"]["Negative"].update(support=309), "Negative support"),
        (lambda r: r["report"].update(sensitivity=0.38), "sensitivity"),
        (lambda r: r["report"]["classification_report"]["Positive"].update(recall=0.38), "Positive recall"),
        (lambda r: r["report"]["confusion_matrix"][0].__setitem__(0, 41), "confusion-matrix total"),
        (lambda r: r.update(num_cases=50), "num_positive + num_negative"),
        (lambda r: _row_at(r, 0.5).update(tp=2), "threshold-table"),
        (lambda r: r["intervals"]["specificity"].update(estimate=0.9), "intervals specificity"),
    ],
    ids=["positive-support", "negative-support", "sensitivity", "recall", "matrix", "num-cases", "table", "interval"],
)
def test_consistency_check_catches_a_tampered_result(tamper, message):
    results = evaluate_binary(*_forty_nine_cases(), threshold=0.5)
    check_binary_consistency(copy.deepcopy(results))  # untouched: no error
    tampered = copy.deepcopy(results)
    tamper(tampered)
    with pytest.raises(ValueError, match=re.escape(message)):
        check_binary_consistency(tampered)


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        ([0, 2], [0.1, 0.2], "labels must be 0"),
        ([0, 1], [0.1, 1.5], "scores must be probabilities"),
        ([0, 1], [0.1], "same length"),
        ([], [], "empty"),
    ],
)
def test_invalid_inputs_are_refused(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        binary_report(labels, scores, threshold=0.5)
