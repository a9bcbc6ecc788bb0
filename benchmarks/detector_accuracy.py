"""The learned cell detector against the classical nucleus baseline on real nuclei, measured in one run.

    python -m benchmarks.detector_accuracy [--recipe nuclei] [--model DIR] [--output-dir DIR]

Trains the detector with the named recipe (`train.detector_recipes`) on ISBI 2014 EDF000-EDF009 (two of them
for validation) through `train.train_cell_detector`, or takes an already trained `--model`, then scores it and the
classical baseline (`train.classical_detection`) on EDF010-EDF011 with the same reader and the same COCO code
(`cervix_hf.evaluation.metrics.compute_detection_metrics`, 300 detections per image): mAP@[.5:.95], mAP@.5, recall at 300
detections (mean over IoU .5:.95), and precision, recall and F1 at IoU 0.5 at the recipe's score threshold (the
baseline has no score threshold: all its detections count), plus the training wall time.

Target: the detector's mAP@.5 at least 0.80 and at least 1.8 times the baseline's, training under 15 minutes on
2 CPU cores.
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import read_isbi2014_edf
from cervix_hf.evaluation.metrics import compute_detection_metrics
from cervix_hf.io.images import load_image
from cervix_hf.prediction.inference import load_detector
from cervix_hf.sample_data import sample_data_dir
from train.classical_detection import ClassicalNucleusDetector
from train.detector_recipes import DETECTOR_RECIPES

TEST_NAMES = ("EDF010", "EDF011")
TARGET_MAP_50, TARGET_RATIO, TARGET_TRAIN_MINUTES = 0.80, 1.8, 15


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    corner_min = np.maximum(a[:, None, :2], b[None, :, :2])
    corner_max = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(corner_max - corner_min, 0, None), axis=2)
    area = lambda boxes: np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def precision_recall_f1(truths: list[dict], predictions: list[dict], iou_threshold: float = 0.5) -> dict:
    """Greedy one-to-one matching, best score first, at `iou_threshold` (COCO's rule at one IoU), over all images."""
    matched = found = expected = 0
    for truth, prediction in zip(truths, predictions):
        truth_boxes = np.asarray(truth["boxes"], np.float64).reshape(-1, 4)
        boxes = np.asarray(prediction["boxes"], np.float64).reshape(-1, 4)[
            np.argsort(-np.asarray(prediction["scores"]))
        ]
        expected, found = expected + len(truth_boxes), found + len(boxes)
        if not len(truth_boxes) or not len(boxes):
            continue
        iou = box_iou(boxes, truth_boxes)
        free = np.ones(len(truth_boxes), bool)
        for row in iou:
            candidates = np.where(free & (row >= iou_threshold))[0]
            if len(candidates):
                free[candidates[row[candidates].argmax()]] = False
                matched += 1
    precision = matched / found if found else 0.0
    recall = matched / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "detections": found}


@torch.inference_mode()
def detector_predictions(model, processor, records) -> list[dict]:
    """Every detection (scores above 0) of `model` on each record's image, in its pixels."""
    predictions = []
    for record in records:
        image = load_image(record.image_path)
        outputs = model(**processor(image, return_tensors="pt"))
        result = processor.post_process_object_detection(outputs, 0.0, target_sizes=[(image.height, image.width)])[0]
        predictions.append({key: value.numpy() for key, value in result.items()})
    return predictions


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (data-loading workers), user and system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def train(args: argparse.Namespace, output_dir: Path) -> tuple[float, float]:
    """Trains with `train.train_cell_detector` and the recipe; returns the wall and CPU time in seconds."""
    from train import train_cell_detector

    argv = [
        "--data",
        str(args.data),
        "--format",
        "isbi2014",
        "--test-names",
        *TEST_NAMES,
        "--output-dir",
        str(output_dir),
        "--recipe",
        args.recipe,
        "--seed",
        str(args.seed),
        "--no-progress-bar",
        "--no-pretrained-backbone",
    ]
    start, start_cpu = time.perf_counter(), cpu_seconds()
    train_cell_detector.main(train_cell_detector.get_args_parser().parse_args(argv))
    return time.perf_counter() - start, cpu_seconds() - start_cpu


def row(name: str, metrics: dict, operating: dict, train_seconds: float | None) -> str:
    minutes = f"{train_seconds / 60:.1f} min" if train_seconds is not None else "none"
    return (
        f"{name:<34}{metrics['map']:>10.3f}{metrics['map_50']:>9.3f}{metrics['mar']:>10.3f}"
        f"{operating['precision']:>10.3f}{operating['recall']:>8.3f}{operating['f1']:>7.3f}{minutes:>12}"
    )


def main(args: argparse.Namespace) -> dict:
    recipe = DETECTOR_RECIPES[args.recipe]
    records = read_isbi2014_edf(args.data, TEST_NAMES)
    truths = [{"boxes": np.asarray(r.boxes), "labels": np.asarray(r.labels)} for r in records.records]
    train_seconds = train_cpu_seconds = None
    model_dir = args.model
    if model_dir is None:
        model_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="detector-accuracy-"))
        train_seconds, train_cpu_seconds = train(args, model_dir)
    threshold = recipe.score_threshold if args.threshold is None else args.threshold

    learned = detector_predictions(*load_detector(str(model_dir)), records.records)
    learned_metrics = compute_detection_metrics(truths, learned, records.label_names)
    kept = [{k: v[p["scores"] > threshold] for k, v in p.items()} for p in learned]
    learned_operating = precision_recall_f1(truths, kept)

    start = time.perf_counter()
    baseline = [ClassicalNucleusDetector()(record.image_path) for record in records.records]
    baseline_seconds = time.perf_counter() - start
    baseline_metrics = compute_detection_metrics(truths, baseline, records.label_names)
    baseline_operating = precision_recall_f1(truths, baseline)

    ratio = learned_metrics["map_50"] / max(baseline_metrics["map_50"], 1e-9)
    print(
        f"ISBI 2014 EDF, test {', '.join(TEST_NAMES)} ({sum(len(t['boxes']) for t in truths)} nuclei); "
        f"model {model_dir}; {torch.get_num_threads()} threads"
    )
    print(f"{'':<34}{'mAP':>10}{'mAP@.5':>9}{'AR@300':>10}{'P@thr':>10}{'R@thr':>8}{'F1':>7}{'training':>12}")
    print(row(f"learned detector ({args.recipe}, >{threshold:g})", learned_metrics, learned_operating, train_seconds))
    print(row("classical baseline (all boxes)", baseline_metrics, baseline_operating, None))
    print(
        f"mAP@.5 ratio learned / baseline: {ratio:.2f} (target >= {TARGET_RATIO}); baseline runs in "
        f"{baseline_seconds:.1f} s for {len(records.records)} images"
    )
    if train_seconds is not None:
        # On a machine that other work shares, the CPU time over the threads used is what 2 free cores would take.
        print(
            f"training: {train_seconds / 60:.1f} min wall, {train_cpu_seconds / 60:.1f} min CPU over "
            f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at the end"
        )
    reached = learned_metrics["map_50"] >= TARGET_MAP_50 and ratio >= TARGET_RATIO
    if train_seconds is not None:
        reached = reached and train_seconds <= TARGET_TRAIN_MINUTES * 60
    print(
        f"target (mAP@.5 >= {TARGET_MAP_50}, ratio >= {TARGET_RATIO}, training <= {TARGET_TRAIN_MINUTES} min): "
        f"{'reached' if reached else 'NOT reached'}"
    )
    return {
        "learned": {
            "metrics": learned_metrics,
            "operating": learned_operating,
            "train_seconds": train_seconds,
            "train_cpu_seconds": train_cpu_seconds,
        },
        "baseline": {"metrics": baseline_metrics, "operating": baseline_operating},
        "ratio_map_50": ratio,
        "reached": reached,
    }


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--data", type=Path, default=sample_data_dir() / "isbi2014-edf", help="the ISBI 2014 EDF set")
    parser.add_argument("--recipe", default="nuclei", choices=sorted(DETECTOR_RECIPES))
    parser.add_argument("--model", type=Path, help="an already trained detector folder (skips training)")
    parser.add_argument("--output-dir", type=Path, help="where the trained detector goes (default: a temporary one)")
    parser.add_argument("--threshold", type=float, help="score threshold for P/R/F1 (default: the recipe's)")
    parser.add_argument("--seed", default=42, type=int)
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
