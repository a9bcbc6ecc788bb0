"""COCO metrics through pycocotools, against cases worked out by hand and against COCOeval run directly."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cervix_hf.evaluation.metrics import compute_detection_metrics

NAMES = ["nucleus", "cell"]


def test_perfect_detections_score_one():
    truth = [{"boxes": [[10, 10, 30, 30], [50, 50, 90, 80]], "labels": [0, 1]}]
    found = [{"boxes": [[10, 10, 30, 30], [50, 50, 90, 80]], "labels": [0, 1], "scores": [0.9, 0.8]}]
    metrics = compute_detection_metrics(truth, found, NAMES)
    assert metrics["map"] == pytest.approx(1.0) and metrics["map_50"] == pytest.approx(1.0)
    assert metrics["per_class"]["cell"] == {
        "ap": pytest.approx(1.0),
        "ap_50": pytest.approx(1.0),
        "recall": pytest.approx(1.0),
        "num_ground_truth": 1,
        "num_detections": 1,
        "pr_curve_50": [1.0] * 101,
    }


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
    # The curve the card plots: those same 101 points, precision 0 past the highest recall reached.
    assert metrics["per_class"]["nucleus"]["pr_curve_50"] == [0.5] * 51 + [0.0] * 50


def test_images_without_cells_and_without_detections():
    truth = [{"boxes": [], "labels": []}, {"boxes": [[0, 0, 10, 10]], "labels": [1]}]
    nothing = [{"boxes": [], "labels": [], "scores": []}] * 2
    metrics = compute_detection_metrics(truth, nothing, NAMES)
    assert metrics["map"] == 0.0 and metrics["per_class"]["cell"]["ap"] == 0.0
    assert metrics["num_images"] == 2
    empty = compute_detection_metrics([{"boxes": [], "labels": []}], [{"boxes": [], "labels": [], "scores": []}], NAMES)
    assert empty["map"] is None


def _crowded_fields(num_images=2, per_image=150):
    # Per image, 150 nuclei of 20 x 20 px on a 15 x 10 grid and one detection of each, shifted right by dx px: IoU =
    # (20 - dx) / (20 + dx), so dx = 1, 2, 3, 5 give 0.905, 0.818, 0.739 and 0.600. COCO caps detections per image
    # and class, so all are of one class; random scores decide which fall past the 100th. The 0.739 ones count at
    # IoU 0.70 but not at 0.75.
    rng = np.random.default_rng(0)
    truths, found = [], []
    for _ in range(num_images):
        corners = np.array([(30.0 * (k % 15), 30.0 * (k // 15)) for k in range(per_image)])
        boxes = np.hstack([corners, corners + 20])
        shifts = np.array([1, 2, 3, 5] * (per_image // 4 + 1))[:per_image]
        labels = np.zeros(per_image, dtype=np.int64)
        truths.append({"boxes": boxes, "labels": labels})
        shifted = boxes + np.stack([shifts, np.zeros(per_image), shifts, np.zeros(per_image)], axis=1)
        found.append({"boxes": shifted, "labels": labels, "scores": rng.random(per_image)})
    return truths, found


def _pycocotools_reference(truths, found, max_dets):
    """COCOeval run directly on the same boxes, in COCO's own xywh, with `maxDets = [1, 10, max_dets]`."""
    images, annotations, results = [], [], []
    for image_id, (truth, prediction) in enumerate(zip(truths, found), start=1):
        images.append({"id": image_id})
        for (x0, y0, x1, y1), label in zip(truth["boxes"], truth["labels"]):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
        for (x0, y0, x1, y1), label, score in zip(prediction["boxes"], prediction["labels"], prediction["scores"]):
            box = [x0, y0, x1 - x0, y1 - y0]
            results.append({"image_id": image_id, "category_id": int(label) + 1, "bbox": box, "score": float(score)})
    categories = [{"id": 1, "name": "nucleus"}, {"id": 2, "name": "cell"}]
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = {"images": images, "annotations": annotations, "categories": categories}
        ground_truth.createIndex()
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(results), iouType="bbox")
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # summarize() reads AP@[.5:.95] at 100 detections only; the other stats are at maxDets[2]. AP@[.5:.95] and AP@.70
    # are read from the precision array [IoU, recall, class, area "all", maxDets[2]], -1 marking "no ground truth".
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    at_070 = precision[np.flatnonzero(np.isclose(evaluator.params.iouThrs, 0.70))[0]]
    return {
        "map": precision[precision > -1].mean(),
        "map_50": evaluator.stats[1],
        "map_75": evaluator.stats[2],
        "map_70": at_070[at_070 > -1].mean(),
        "mar": evaluator.stats[8],
    }


def test_agrees_with_pycocotools_at_300_detections_per_image():
    truths, found = _crowded_fields()
    metrics = compute_detection_metrics(truths, found, NAMES)
    expected = _pycocotools_reference(truths, found, max_dets=300)
    for key in ("map", "map_50", "map_75", "mar"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-12), key
    assert metrics["per_class"]["nucleus"]["num_detections"] == 2 * 150
    # The case tells the figures apart: detections past the 100th count, and AP@.75 is neither 0 nor AP@.70.
    assert _pycocotools_reference(truths, found, max_dets=100)["map_50"] < expected["map_50"] - 0.1
    assert 0.2 < expected["map_75"] < expected["map_70"] - 0.1
