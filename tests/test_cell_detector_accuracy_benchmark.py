"""The accuracy benchmark's operating-point figures: precision, recall and F1 at IoU 0.5, one match per nucleus."""

import pytest

from benchmarks.detector_accuracy import precision_recall_f1


def test_each_nucleus_matches_once_and_misses_count_against_recall():
    truths = [{"boxes": [[0, 0, 20, 20], [40, 40, 60, 60], [100, 100, 120, 120]]}, {"boxes": []}]
    predictions = [
        {"boxes": [[0, 0, 20, 20], [1, 1, 21, 21], [40, 40, 60, 52]], "scores": [0.9, 0.8, 0.7]},
        {"boxes": [[5, 5, 25, 25]], "scores": [0.6]},
    ]
    # [0,0,20,20] matches; its shifted twin finds the nucleus taken (a duplicate); [40,40,60,52] has IoU 0.6 and
    # matches; the third nucleus is missed; the second image's box is a false positive.
    scores = precision_recall_f1(truths, predictions)
    assert scores["precision"] == pytest.approx(2 / 4) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)) and scores["detections"] == 4


def test_nothing_found_scores_zero():
    scores = precision_recall_f1([{"boxes": [[0, 0, 10, 10]]}], [{"boxes": [], "scores": []}])
    assert scores == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "detections": 0}
