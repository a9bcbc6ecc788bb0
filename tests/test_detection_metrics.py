"""COCO metrics through pycocotools, against cases worked out by hand."""

import pytest

from cervix_hf.metrics import compute_detection_metrics

NAMES = ["nucleus", "cell"]


def test_perfect_detections_score_one():
    truth = [{"boxes": [[10, 10, 30, 30], [50, 50, 90, 80]], "labels": [0, 1]}]
    found = [{"boxes": [[10, 10, 30, 30], [50, 50, 90, 80]], "labels": [0, 1], "scores": [0.9, 0.8]}]
    metrics = compute_detection_metrics(truth, found, NAMES)
    assert metrics["map"] == pytest.approx(1.0) and metrics["map_50"] == pytest.approx(1.0)
    assert metrics["per_class"]["cell"] == {
        "ap": pytest.approx(1.0), "ap_50": pytest.approx(1.0), "recall": pytest.approx(1.0),
        "num_ground_truth": 1, "num_detections": 1,
    }  # fmt: skip


def test_a_box_at_iou_0_58_counts_at_two_of_ten_thresholds():
    # Ground truth 0..10 x 0..10 (area 100); detection 0..10 x 0..5.8 (area 58) lies inside it: IoU = 0.58.
    # It matches at IoU thresholds 0.50 and 0.55 only: AP@.5 = 1, AP@[.5:.95] = 2 / 10 = 0.2, recall likewise 0.2.
    truth = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}]
    found = [{"boxes": [[0, 0, 10, 5.8]], "labels": [0], "scores": [0.7]}]
    metrics = compute_detection_metrics(truth, found, NAMES)
    assert metrics["map_50"] == pytest.approx(1.0)
    assert metrics["map"] == pytest.approx(0.2)
    assert metrics["mar"] == pytest.approx(0.2)
    assert metrics["map_75"] == pytest.approx(0.0)
    assert metrics["per_class"]["cell"]["ap"] is None  # no cell to find: not scored, not averaged


def test_half_the_cells_found_and_a_false_positive_ranked_first():
    # Two nuclei; detections: a false positive (score 0.9), then one true nucleus (0.8). Precision/recall points:
    # (0/1, 0), (1/2, 0.5). COCO's interpolated precision is 0.5 for recall <= 0.5 and 0 above it, sampled at 101
    # recall points 0.00..1.00: 51 points at 0.5 -> AP = 51 * 0.5 / 101.
    truth = [{"boxes": [[0, 0, 20, 20], [40, 40, 60, 60]], "labels": [0, 0]}]
    found = [{"boxes": [[100, 100, 120, 120], [0, 0, 20, 20]], "labels": [0, 0], "scores": [0.9, 0.8]}]
    metrics = compute_detection_metrics(truth, found, NAMES)
    assert metrics["map_50"] == pytest.approx(51 * 0.5 / 101)
    assert metrics["per_class"]["nucleus"]["recall"] == pytest.approx(0.5)


def test_images_without_cells_and_without_detections():
    truth = [{"boxes": [], "labels": []}, {"boxes": [[0, 0, 10, 10]], "labels": [1]}]
    nothing = [{"boxes": [], "labels": [], "scores": []}] * 2
    metrics = compute_detection_metrics(truth, nothing, NAMES)
    assert metrics["map"] == 0.0 and metrics["per_class"]["cell"]["ap"] == 0.0
    assert metrics["num_images"] == 2
    empty = compute_detection_metrics([{"boxes": [], "labels": []}], [{"boxes": [], "labels": [], "scores": []}], NAMES)
    assert empty["map"] is None
