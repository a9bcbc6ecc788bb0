"""COCO-style detection metrics, computed by pycocotools (the reference implementation).

`compute_detection_metrics` takes ground truth and detections in absolute xyxy pixels, builds the COCO objects in
memory and runs `COCOeval`, returning mAP@[.5:.95], mAP@.5, mAP@.75, and per class AP@[.5:.95], AP@.5 and
recall (mean over IoU .5:.95, at `max_detections`).
"""

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cervix_hf.evaluation.metrics.consistency import expecter


def compute_detection_metrics(
    ground_truths: Sequence[dict],
    predictions: Sequence[dict],
    label_names: Sequence[str],
    max_detections: int = 300,
) -> dict:
    """
    Args:
        ground_truths (`list[dict]`): per image, `boxes` (`[N, 4]` xyxy pixels) and `labels` (`[N]`, class index).
        predictions (`list[dict]`): per image (same order), `boxes` (`[K, 4]`), `labels` (`[K]`) and `scores`
            (`[K]`).
        label_names (`list[str]`): class names, by index.
        max_detections (`int`, *optional*, defaults to 300): detections per image that count (COCO's `maxDets`);
            a Pap-smear field holds more cells than COCO's default 100.

    Returns:
        `dict` with `map` (AP@[.5:.95]), `map_50`, `map_75`, `mar` (recall@[.5:.95]), `per_class` (name -> `ap`,
        `ap_50`, `recall`, `num_ground_truth`, `num_detections`, and `pr_curve_50`: the interpolated precision at
        COCO's 101 recall points 0, 0.01, ..., 1 at IoU 0.5, `None` past the highest recall reached), `num_images`. A class without ground truth has
        `None` for its AP and recall; the means are over classes with ground truth, as COCO does.
    """
    if len(ground_truths) != len(predictions):
        raise ValueError(f"Got {len(ground_truths)} ground-truth images but {len(predictions)} prediction images.")
    images, annotations, detections = [], [], []
    for image_id, (truth, prediction) in enumerate(zip(ground_truths, predictions)):
        images.append({"id": image_id})
        for box, label in zip(_boxes(truth["boxes"]), np.asarray(truth["labels"]).reshape(-1)):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": _xywh(box),
                    "area": float((box[2] - box[0]) * (box[3] - box[1])),
                    "iscrowd": 0,
                }
            )
        scores = np.asarray(prediction["scores"]).reshape(-1)
        for box, label, score in zip(_boxes(prediction["boxes"]), np.asarray(prediction["labels"]).reshape(-1), scores):
            detections.append(
                {"image_id": image_id, "category_id": int(label), "bbox": _xywh(box), "score": float(score)}
            )
    categories = [{"id": index, "name": name} for index, name in enumerate(label_names)]
    per_class_counts = {
        name: {
            "num_ground_truth": sum(a["category_id"] == index for a in annotations),
            "num_detections": sum(d["category_id"] == index for d in detections),
        }
        for index, name in enumerate(label_names)
    }
    if not annotations or not detections:
        # COCOeval needs both; with no detections every class with ground truth scores zero.
        per_class = {name: _class_scores(counts, 0.0, 0.0, 0.0, None) for name, counts in per_class_counts.items()}
        overall = 0.0 if annotations else None
        return {
            "map": overall,
            "map_50": overall,
            "map_75": overall,
            "mar": overall,
            "per_class": per_class,
            "num_images": len(images),
        }

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations, "categories": categories}
        truth.createIndex()
        found = truth.loadRes(detections)
        evaluator = COCOeval(truth, found, iouType="bbox")
        evaluator.params.maxDets = [1, 10, max_detections]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"]  # [IoU thresholds, recall points, classes, areas, max dets]
    recall = evaluator.eval["recall"]  # [IoU thresholds, classes, areas, max dets]
    per_class = {
        name: _class_scores(
            per_class_counts[name],
            ap=_mean_valid(precision[:, :, index, 0, -1]),
            ap_50=_mean_valid(precision[0, :, index, 0, -1]),
            recall=_mean_valid(recall[:, index, 0, -1]),
            pr_curve_50=[None if value < 0 else round(float(value), 6) for value in precision[0, :, index, 0, -1]],
        )
        for index, name in enumerate(label_names)
    }
    # As COCOeval.summarize, but every figure at `max_detections` (summarize fixes AP@[.5:.95] at 100).
    return {
        "map": _mean_valid(precision[:, :, :, 0, -1]),
        "map_50": _mean_valid(precision[0, :, :, 0, -1]),
        "map_75": _mean_valid(precision[5, :, :, 0, -1]),
        "mar": _mean_valid(recall[:, :, 0, -1]),
        "per_class": per_class,
        "num_images": len(images),
    }


def _class_scores(counts: dict, ap: float, ap_50: float, recall: float, pr_curve_50: list | None) -> dict:
    """A class's scores; `None` where it has no ground truth (nothing to find, so nothing to score)."""
    if not counts["num_ground_truth"]:
        return {"ap": None, "ap_50": None, "recall": None, **counts, "pr_curve_50": None}
    return {"ap": ap, "ap_50": ap_50, "recall": recall, **counts, "pr_curve_50": pr_curve_50}


def _boxes(boxes) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _xywh(box) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else 0.0


def eval_results_problems(eval_results: dict) -> list[str]:
    """
    The contradictions in a detector's `eval_results.json`: mean AP and recall against the per-class ones, and
    ground-truth boxes and images against the evaluated split.
    """
    metrics, data = eval_results["metrics"], eval_results["data"]
    split = eval_results.get("evaluated_on", "test")
    problems = []
    expect = expecter(problems)
    per_class = metrics["per_class"]
    for overall, per in (("map", "ap"), ("map_50", "ap_50"), ("mar", "recall")):
        scored = [scores[per] for scores in per_class.values() if scores[per] is not None]
        expect(f"metrics.{overall}", metrics[overall], sum(scored) / len(scored) if scored else None)
    split_boxes = data["boxes_per_class_per_split"][split]
    for name, scores in per_class.items():
        expect(f"metrics.per_class.{name}.num_ground_truth", scores["num_ground_truth"], split_boxes.get(name, 0))
        if (scores["ap"] is None) != (scores["num_ground_truth"] == 0):
            problems.append(f"metrics.per_class.{name}.ap must be null exactly when the class has no ground truth")
    expect("metrics.num_images", metrics["num_images"], data["images_per_split"][split])
    return problems
