"""Threshold analysis of a binary classifier (Negative = 0, Positive = 1) from one list of (label, score) pairs.

Every number comes from `labels` (0/1) and `scores` (the probability of Positive), with one decision rule used
everywhere: a case is predicted Positive when `score >= threshold`, a score that equals the threshold up to float
rounding included. "Up to float rounding" is a relative difference of at most `THRESHOLD_RELATIVE_TOLERANCE` (1e-9):
a threshold computed as 0.1 + 0.2 (0.30000000000000004) counts a score of 0.3 as Positive, as a threshold of 0.3
counts a score of 0.1 + 0.2. Distinct float32 scores differ relatively by at least 6e-8, so the tolerance never
merges two model outputs. [`evaluate_binary`] gathers what a model card needs and checks, with
[`check_binary_consistency`], that none of it contradicts the rest. Ratios with a zero denominator (e.g. PPV when
nothing is predicted Positive) are `None`, never a silent 0.
"""

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from sklearn.metrics import average_precision_score, classification_report, confusion_matrix, roc_auc_score

from cervix_hf.evaluation.metrics.consistency import expecter
from cervix_hf.models.prepost_fusion.configuration_prepost_fusion import PREPOST_LABELS

THRESHOLD_RELATIVE_TOLERANCE = 1e-9
DECISION_RULE = "Positive when score >= threshold (a score equal to the threshold up to float rounding included)"
DEFAULT_THRESHOLDS = np.round(np.arange(0, 1.0001, 0.05), 2)


def binary_report(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict:
    r"""
    Confusion matrix, rates, classification report and threshold-free AUCs at one threshold.

    Args:
        labels (`Sequence[int]`):
            True class of each case, 0 (Negative) or 1 (Positive).
        scores (`Sequence[float]`):
            Probability of Positive of each case, in [0, 1].
        threshold (`float`):
            Decision threshold in [0, 1]: Positive when `score >= threshold`, up to float rounding.

    Returns:
        `dict` with `threshold`, `decision_rule`, `num_cases`, `num_positive`, `num_negative`, `prevalence` (the
        PR-AUC of a random classifier), `confusion_matrix` (`[[TN, FP], [FN, TP]]`, rows true, columns predicted),
        `sensitivity` (recall of Positive), `specificity` (recall of Negative), `ppv`, `npv`, `accuracy`, `f1`
        (of Positive), `classification_report` (scikit-learn's, keys `"Negative"`, `"Positive"`, `"accuracy"`,
        `"macro avg"`, `"weighted avg"`, supports summing to `num_cases`, undefined values `None`), `roc_auc`,
        `pr_auc` (average precision) and `auc_reason` (why the AUCs are `None` when only one class is present,
        else `None`).
    """
    labels, scores = _validate(labels, scores)
    threshold = _validate_threshold(threshold)
    predictions = _predict(scores, threshold)
    tn, fp, fn, tp = _confusion_counts(labels, predictions)
    report = classification_report(
        labels, predictions, labels=[0, 1], target_names=list(PREPOST_LABELS), output_dict=True, zero_division=np.nan
    )
    num_positive = int(labels.sum())
    results = {
        "threshold": threshold,
        "decision_rule": DECISION_RULE,
        "num_cases": len(labels),
        "num_positive": num_positive,
        "num_negative": len(labels) - num_positive,
        "prevalence": num_positive / len(labels),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        **_rates(tn, fp, fn, tp),
        "classification_report": _report_values(report),
        "roc_auc": None,
        "pr_auc": None,
        "auc_reason": None,
    }
    if 0 < num_positive < len(labels):
        results["roc_auc"] = float(roc_auc_score(labels, scores))
        results["pr_auc"] = float(average_precision_score(labels, scores))
    else:
        results["auc_reason"] = f"only one class is present ({_class_presence(num_positive, len(labels))})."
    return results


def bootstrap_intervals(
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    r"""
    Confidence intervals of sensitivity and specificity at `threshold`, two ways.

    - Percentile bootstrap over cases: each resample draws, with replacement, as many Positive cases from the
      Positive cases and as many Negative cases from the Negative cases as the data holds (stratified by label), so
      every resample has both classes and the same prevalence, and sensitivity and specificity are defined in every
      resample. The interval is the `(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles of the resampled
      values (numpy's default, linear interpolation), e.g. the 2.5th and 97.5th percentiles at 95%. To reproduce
      it: `rng = numpy.random.default_rng(seed)`, then for the Positive cases, and after them the Negative cases
      (each in input order), `rng.integers(0, total, size=(n_resamples, total))` indexes the resamples.
    - Wilson score interval, a closed form for a proportion that stays inside [0, 1] and behaves with few cases
      (e.g. 4 Positive cases), where the bootstrap can only take 5 values.

    With a small test set these intervals are wide, and that is the point: with 4 Positive cases, 1 found out of 4
    gives a Wilson 95% interval of about 0.05 to 0.70 for the sensitivity. Report them beside every estimate.

    Args:
        labels (`Sequence[int]`):
            True class of each case, 0 (Negative) or 1 (Positive).
        scores (`Sequence[float]`):
            Probability of Positive of each case, in [0, 1].
        threshold (`float`):
            Decision threshold in [0, 1]: Positive when `score >= threshold`, up to float rounding.
        n_resamples (`int`, *optional*, defaults to 2000):
            Number of bootstrap resamples.
        confidence (`float`, *optional*, defaults to 0.95):
            Confidence level, in (0, 1).
        seed (`int`, *optional*, defaults to 0):
            Seed of the resampling; the same seed gives the same intervals.

    Returns:
        `dict` with `threshold`, `method`, `n_resamples`, `confidence`, `seed`, and for `"sensitivity"` and
        `"specificity"` a dict with `estimate`, `successes` (TP, respectively TN), `total` (Positive, respectively
        Negative, cases), `bootstrap` and `wilson` (`[low, high]`), and `reason`: all `None` but `reason` when the
        class has no case.
    """
    labels, scores = _validate(labels, scores)
    threshold = _validate_threshold(threshold)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    rng = np.random.default_rng(seed)
    correct = _predict(scores, threshold) == labels
    results = {
        "threshold": threshold,
        "method": "percentile bootstrap over cases, stratified by label; Wilson score interval",
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
    }
    # Sensitivity is the fraction of Positive cases predicted correctly, specificity that of Negative cases.
    for name, label in (("sensitivity", 1), ("specificity", 0)):
        class_correct = correct[labels == label]
        total = len(class_correct)
        if total == 0:
            reason = f"no {PREPOST_LABELS[label]} case: {name} is undefined."
            results[name] = dict.fromkeys(("estimate", "bootstrap", "wilson"), None)
            results[name].update(successes=0, total=0, reason=reason)
            continue
        resampled = class_correct[rng.integers(0, total, size=(n_resamples, total))].mean(axis=1)
        quantiles = np.quantile(resampled, [(1 - confidence) / 2, (1 + confidence) / 2])
        successes = int(class_correct.sum())
        results[name] = {
            "estimate": successes / total,
            "successes": successes,
            "total": total,
            "bootstrap": [float(quantiles[0]), float(quantiles[1])],
            "wilson": wilson_interval(successes, total, confidence),
            "reason": None,
        }
    return results


def threshold_table(
    labels: Sequence[int], scores: Sequence[float], thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[dict]:
    r"""
    Counts and rates at each threshold (Positive when `score >= threshold`, up to float rounding).

    Args:
        labels (`Sequence[int]`):
            True class of each case, 0 (Negative) or 1 (Positive).
        scores (`Sequence[float]`):
            Probability of Positive of each case, in [0, 1].
        thresholds (`Sequence[float]`, *optional*, defaults to 0, 0.05, ..., 1):
            Thresholds in [0, 1], one row each, in the given order.

    Returns:
        `list[dict]`: per threshold, `threshold`, `tp`, `fp`, `tn`, `fn`, `accuracy`, `precision` (= PPV), `recall`
        (= sensitivity), `specificity`, `npv` and `f1`; undefined rates are `None`.
    """
    labels, scores = _validate(labels, scores)
    rows = []
    for threshold in thresholds:
        threshold = _validate_threshold(threshold)
        tn, fp, fn, tp = _confusion_counts(labels, _predict(scores, threshold))
        rates = _rates(tn, fp, fn, tp)
        rows.append(
            {
                "threshold": threshold,
                "tp": tp,
                "fp": fp,
                "tn": tn,
                "fn": fn,
                "accuracy": rates["accuracy"],
                "precision": rates["ppv"],
                "recall": rates["sensitivity"],
                "specificity": rates["specificity"],
                "npv": rates["npv"],
                "f1": rates["f1"],
            }
        )
    return rows


def select_operating_points(
    labels: Sequence[int],
    scores: Sequence[float],
    target_sensitivity: float = 0.9,
    target_specificity: float = 0.9,
) -> dict:
    r"""
    Thresholds for three uses, chosen on these scores (Positive when `score >= threshold`, up to float rounding).

    The candidate thresholds are 0, 1 and every distinct score. Predictions change only where the threshold crosses
    a score, so the candidates give every distinct outcome and the choice is exact, not limited to a grid; the one
    outcome they may miss is "all Negative" when a score is 1 (up to rounding), which no threshold in [0, 1] gives.

    - `screening`: the highest threshold whose sensitivity is at least `target_sensitivity` (miss few Positive
      cases, then raise as few false alarms as possible).
    - `confirmatory`: the lowest threshold whose specificity is at least `target_specificity`.
    - `balanced`: the threshold maximising Youden's J = sensitivity + specificity - 1; among ties, the one closest
      to 0.5, then the lower one.

    Threshold 0 predicts every case Positive, so the screening target is always reached, if need be by flagging
    everything: read its specificity. The confirmatory target is out of reach only when Negative cases score 1 (up
    to rounding); the point is then the one of highest specificity (the lowest such threshold), with `achieved`
    False and the reason.
    Thresholds chosen on a test set are optimistic for that set: choose them on validation data.

    Args:
        labels (`Sequence[int]`):
            True class of each case, 0 (Negative) or 1 (Positive).
        scores (`Sequence[float]`):
            Probability of Positive of each case, in [0, 1].
        target_sensitivity (`float`, *optional*, defaults to 0.9):
            Minimum sensitivity of the screening point, in [0, 1].
        target_specificity (`float`, *optional*, defaults to 0.9):
            Minimum specificity of the confirmatory point, in [0, 1].

    Returns:
        `dict` with `"screening"`, `"confirmatory"` and `"balanced"`, each a dict with `rule`, `threshold`,
        `sensitivity`, `specificity`, `achieved` (`bool`) and `reason` (`None` when achieved). Without both classes
        the thresholds are `None`.
    """
    labels, scores = _validate(labels, scores)
    for name, target in (("target_sensitivity", target_sensitivity), ("target_specificity", target_specificity)):
        if not 0 <= target <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {target!r}.")
    rules = {
        "screening": f"highest threshold with sensitivity >= {target_sensitivity}",
        "confirmatory": f"lowest threshold with specificity >= {target_specificity}",
        "balanced": "threshold maximising Youden's J (sensitivity + specificity - 1); ties: closest to 0.5, then lower",
    }
    num_positive = int(labels.sum())
    if not 0 < num_positive < len(labels):
        reason = f"sensitivity and specificity need both classes ({_class_presence(num_positive, len(labels))})."
        undefined = dict.fromkeys(("threshold", "sensitivity", "specificity"), None)
        return {name: {"rule": rule, **undefined, "achieved": False, "reason": reason} for name, rule in rules.items()}

    # In increasing threshold order: sensitivity never increases along the rows, specificity never decreases.
    rows = threshold_table(labels, scores, np.unique(np.concatenate([scores, [0.0, 1.0]])))
    sensitivity = np.array([row["recall"] for row in rows])
    specificity = np.array([row["specificity"] for row in rows])

    def point(name: str, index: int, achieved: bool, reason: str | None = None) -> dict:
        row = rows[index]
        return {
            "rule": rules[name],
            "threshold": row["threshold"],
            "sensitivity": row["recall"],
            "specificity": row["specificity"],
            "achieved": achieved,
            "reason": reason,
        }

    # Threshold 0 predicts every case Positive, so some candidate always reaches the sensitivity target.
    screening = point("screening", int(np.flatnonzero(sensitivity >= target_sensitivity).max()), True)
    meets_specificity = specificity >= target_specificity
    if meets_specificity.any():
        confirmatory = point("confirmatory", int(np.flatnonzero(meets_specificity).min()), True)
    else:
        closest = int(np.flatnonzero(specificity == specificity.max()).min())
        reason = (
            f"no threshold in [0, 1] reaches specificity >= {target_specificity} on these scores (Negative cases "
            f"scored 1.0 are Positive at every threshold); the highest specificity, {specificity.max():.4g}, is "
            "returned."
        )
        confirmatory = point("confirmatory", closest, False, reason)
    youden = sensitivity + specificity - 1
    best = np.flatnonzero(np.isclose(youden, youden.max(), rtol=0, atol=1e-12))
    balanced = point("balanced", int(min(best, key=lambda index: (abs(rows[index]["threshold"] - 0.5), index))), True)
    return {"screening": screening, "confirmatory": confirmatory, "balanced": balanced}


def evaluate_binary(
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    operating_points: dict | None = None,
) -> dict:
    r"""
    Everything a model card reports about a binary classifier on a test set, from one list of (label, score)
    pairs, checked by [`check_binary_consistency`] before it is returned.

    Args:
        labels (`Sequence[int]`):
            True class of each case, 0 (Negative) or 1 (Positive).
        scores (`Sequence[float]`):
            Probability of Positive of each case, in [0, 1].
        threshold (`float`):
            The model's decision threshold in [0, 1]: Positive when `score >= threshold`, up to float rounding.
        operating_points (`dict`, *optional*):
            Operating points chosen on other (validation) cases, as [`select_operating_points`] returns them: each
            is measured again on these cases (`test_sensitivity`, `test_specificity`, `chosen_on: "validation"`).
            Without it, the points are chosen on these cases (`chosen_on: "evaluated cases"`, optimistic).

    Returns:
        `dict` with `num_cases`, `num_positive`, `num_negative`, `threshold`, `decision_rule`, `report` (of
        [`binary_report`] at `threshold`), `intervals` (of [`bootstrap_intervals`], default settings),
        `threshold_table` (of [`threshold_table`] on the default grid plus `threshold`) and `operating_points` (of
        [`select_operating_points`]).

    Raises:
        `ValueError`: on invalid inputs, or when the results contradict each other (a bug, never expected).
    """
    report = binary_report(labels, scores, threshold)
    if operating_points is None:
        points = {
            name: {**point, "chosen_on": "evaluated cases"}
            for name, point in select_operating_points(labels, scores).items()
        }
    else:
        points = {}
        for name, point in operating_points.items():
            measured = binary_report(labels, scores, point["threshold"]) if point["threshold"] is not None else {}
            points[name] = {
                **point,
                "chosen_on": "validation",
                "test_sensitivity": measured.get("sensitivity"),
                "test_specificity": measured.get("specificity"),
            }
    # The chosen threshold takes the place of a grid threshold equal to it up to rounding: one row per threshold.
    grid = [value for value in DEFAULT_THRESHOLDS if not _same_threshold(value, report["threshold"])]
    table_thresholds = np.union1d(grid, [report["threshold"]])
    results = {
        "num_cases": report["num_cases"],
        "num_positive": report["num_positive"],
        "num_negative": report["num_negative"],
        "threshold": report["threshold"],
        "decision_rule": DECISION_RULE,
        "report": report,
        "intervals": bootstrap_intervals(labels, scores, threshold),
        "threshold_table": threshold_table(labels, scores, table_thresholds),
        "operating_points": points,
    }
    check_binary_consistency(results)
    return results


def check_binary_consistency(results: dict) -> None:
    r"""
    Checks that the numbers of an [`evaluate_binary`] result agree with each other: class counts and
    `num_cases`, the confusion matrix and the class counts, the classification report's supports, recalls,
    precisions, F1 and accuracy and the report's own rates, the rates and the confusion matrix, the interval
    estimates and the report, and the threshold-table row at the chosen threshold and the report.

    Args:
        results (`dict`):
            An [`evaluate_binary`] result, possibly edited or read back from a file.

    Raises:
        `ValueError`: listing every contradiction found.
    """
    problems = []

    def expect(description: str, found, expected) -> None:
        if not _same(found, expected):
            problems.append(f"{description} is {found!r} but should be {expected!r}")

    num_cases, num_positive, num_negative = (results[key] for key in ("num_cases", "num_positive", "num_negative"))
    report = results["report"]
    expect("num_positive + num_negative", num_positive + num_negative, num_cases)
    for key in ("num_cases", "num_positive", "num_negative", "threshold"):
        expect(f"report {key}", report[key], results[key])

    (tn, fp), (fn, tp) = report["confusion_matrix"]
    expect("confusion-matrix total", tn + fp + fn + tp, num_cases)
    expect("confusion-matrix Negative row (TN + FP)", tn + fp, num_negative)
    expect("confusion-matrix Positive row (FN + TP)", fn + tp, num_positive)
    for name, value in _rates(tn, fp, fn, tp).items():
        expect(f"{name} (from the confusion matrix {report['confusion_matrix']})", report[name], value)

    classes = report["classification_report"]
    expect("classification-report Negative support", classes["Negative"]["support"], num_negative)
    expect("classification-report Positive support", classes["Positive"]["support"], num_positive)
    for average in ("macro avg", "weighted avg"):
        expect(f"classification-report {average} support", classes[average]["support"], num_cases)
    for name, (class_name, metric) in {
        "sensitivity": ("Positive", "recall"),
        "specificity": ("Negative", "recall"),
        "ppv": ("Positive", "precision"),
        "npv": ("Negative", "precision"),
        "f1": ("Positive", "f1-score"),
    }.items():
        expect(f"{name} (the classification report's {class_name} {metric})", report[name], classes[class_name][metric])
    expect("accuracy (the classification report's)", report["accuracy"], classes["accuracy"])

    intervals = results["intervals"]
    expect("intervals threshold", intervals["threshold"], results["threshold"])
    for name, successes, total in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp)):
        expect(f"intervals {name} estimate", intervals[name]["estimate"], report[name])
        expect(
            f"intervals {name} successes / total",
            [intervals[name]["successes"], intervals[name]["total"]],
            [successes, total],
        )

    rows = [row for row in results["threshold_table"] if row["threshold"] == results["threshold"]]
    if not rows:
        problems.append(f"the threshold table has no row at the chosen threshold {results['threshold']}")
    for row in rows:
        expect("threshold-table row [tp, fp, tn, fn]", [row[key] for key in ("tp", "fp", "tn", "fn")], [tp, fp, tn, fn])
        for column, name in (
            ("recall", "sensitivity"),
            ("specificity", "specificity"),
            ("precision", "ppv"),
            ("npv", "npv"),
            ("accuracy", "accuracy"),
            ("f1", "f1"),
        ):
            expect(f"threshold-table row {column}", row[column], report[name])

    if problems:
        raise ValueError("Contradictory binary evaluation results: " + "; ".join(problems) + ".")


def _validate(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1 or len(labels) != len(scores):
        raise ValueError(
            f"labels and scores must be flat lists of the same length, got shapes {labels.shape} and {scores.shape}."
        )
    if len(labels) == 0:
        raise ValueError("labels and scores are empty: there is nothing to evaluate.")
    if not np.isin(labels, [0, 1]).all():
        raise ValueError(f"labels must be 0 (Negative) or 1 (Positive), got {sorted(set(labels.tolist()))}.")
    if not (np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()):
        raise ValueError("scores must be probabilities of Positive in [0, 1]: apply a sigmoid or softmax to logits.")
    return labels.astype(np.int64), scores


def _validate_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}.")
    return threshold


def _predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The decision rule (`DECISION_RULE`), applied here only: Positive at or above the threshold, or below it by
    float rounding only."""
    return (scores >= threshold * (1 - THRESHOLD_RELATIVE_TOLERANCE)).astype(np.int64)


def _confusion_counts(labels: np.ndarray, predictions: np.ndarray) -> tuple[int, int, int, int]:
    """(TN, FP, FN, TP)."""
    tn, fp, fn, tp = confusion_matrix(labels, predictions, labels=[0, 1]).ravel()
    return int(tn), int(fp), int(fn), int(tp)


def _rates(tn: int, fp: int, fn: int, tp: int) -> dict[str, float | None]:
    """Rates from confusion counts; `None` where the denominator is 0."""
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _report_values(report: dict) -> dict:
    """scikit-learn's classification report with supports as `int`, other numbers as `float` and NaN (from
    `zero_division=np.nan`) as `None`."""

    def value(name: str, number) -> float | None:
        if name == "support":
            return int(number)
        return None if math.isnan(number) else float(number)

    return {
        key: {name: value(name, number) for name, number in entry.items()}
        if isinstance(entry, dict)
        else value(key, entry)
        for key, entry in report.items()
    }


def _same(found, expected) -> bool:
    """Equal, numbers within rounding; `None` only equals `None`."""
    if isinstance(expected, list):
        return isinstance(found, list) and len(found) == len(expected) and all(map(_same, found, expected))
    if found is None or expected is None:
        return found is None and expected is None
    return math.isclose(found, expected, rel_tol=1e-9, abs_tol=1e-12)


def _same_threshold(first: float, second: float) -> bool:
    """Equal up to float rounding, as the decision rule counts a score equal to the threshold."""
    return math.isclose(first, second, rel_tol=THRESHOLD_RELATIVE_TOLERANCE, abs_tol=0)


def _class_presence(num_positive: int, num_cases: int) -> str:
    return f"{num_positive} Positive and {num_cases - num_positive} Negative cases"


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> list[float]:
    """The Wilson score interval of the proportion `successes / total` (`total` at least 1), `[low, high]`."""
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    proportion = successes / total
    denominator = 1 + z**2 / total
    centre = (proportion + z**2 / (2 * total)) / denominator
    half_width = z / denominator * math.sqrt(proportion * (1 - proportion) / total + z**2 / (4 * total**2))
    return [max(0.0, centre - half_width), min(1.0, centre + half_width)]


def eval_results_problems(eval_results: dict) -> list[str]:
    """
    The contradictions in a binary classifier's `eval_results.json`: [`check_binary_consistency`] of its metrics,
    and the evaluated split's class counts against them.
    """
    metrics = eval_results["metrics"]
    problems = []
    try:
        check_binary_consistency(metrics)
    except ValueError as err:
        problems.append(str(err))
    expect = expecter(problems)
    split = eval_results.get("evaluated_on", "test")
    split_counts = eval_results["data"]["class_counts"][split]
    for name, count in zip(eval_results["label_names"], ("num_negative", "num_positive")):
        expect(f"data.class_counts.{split}.{name}", split_counts.get(name), metrics[count])
    return problems
