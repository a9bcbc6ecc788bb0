"""Output folders of tiny training runs, for card and publishing tests: a tiny model of each kind with random
weights, finished by the engine's `finish_run` (model, processor, `eval_results.json`, `training_args.json`, card)
from an evaluation computed by the real metric functions on hand-made predictions, in the layout the training
scripts write."""

from pathlib import Path

import numpy as np
import torch

from cervix_hf import (
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    ColpoNetForImageClassification,
    ColpoNetImageProcessor,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
)
from cervix_hf.data import class_counts
from cervix_hf.evaluation.metrics import (
    compute_classification_metrics,
    compute_detection_metrics,
    evaluate_binary,
    select_operating_points,
)
from cervix_hf.evaluation.results import EvalResults, StageSummary
from cervix_hf.registry import cell_detector_config, colponet_config, prepost_config
from train import train_cell_detector, train_colponet, train_prepost_fusion
from train.engine import finish_run

SPLITS = ("train", "validation", "test")


def stage_summary(name: str, learning_rate: float, train_backbone: bool, metric: str, best: float) -> StageSummary:
    """A stage summary as `train.engine.run_stages` writes it."""
    return StageSummary(
        stage=name,
        name=name,
        learning_rate=learning_rate,
        epochs=1.0,
        train_backbone=train_backbone,
        batch_size=None,
        global_step=3,
        epochs_run=1.0,
        train_loss=1.0986,
        best_metric=best,
        metric_for_best_model=metric,
        best_checkpoint=f"{name}/checkpoint-3",
        log_history=[],
    )


def colponet_run(output_dir: Path) -> Path:
    torch.manual_seed(0)
    label_names = ["Type_1", "Type_2", "Type_3"]
    model = ColpoNetForImageClassification(colponet_config("tiny", class_weights=[1.2, 0.8, 1.0])).eval()
    test_labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    probabilities = np.random.default_rng(0).dirichlet(np.ones(3), size=len(test_labels))
    eval_results = EvalResults(
        model_type="colponet",
        label_names=label_names,
        metrics=compute_classification_metrics(test_labels, probabilities, label_names),
        data={
            "source": "../shared/data/intel-mobileodt-sample",
            "split_fractions": {"train": 0.7, "validation": 0.2, "test": 0.1},
            "seed": 42,
            "class_counts": {
                "train": {"Type_1": 28, "Type_2": 26, "Type_3": 25},
                "validation": {"Type_1": 8, "Type_2": 8, "Type_3": 8},
                "test": class_counts(test_labels, label_names),
            },
            "quality_gate": {
                "mode": "drop",
                "rejected": 5,
                "checked": 84,
                "flagged_blurry": 5,
                "unreadable": 0,
                "laplacian_threshold": 12.0,
                "fft_threshold": 0.0,
            },
        },
        training={
            "stages": [
                stage_summary("stage1_frozen_backbone", 1e-4, False, "log_loss", 1.0984),
                stage_summary("stage2_full", 1e-5, True, "log_loss", 1.0981),
            ],
            "class_weights": [1.2, 0.8, 1.0],
            "augmentation": "flip",
            "batch_size": 16,
            "model_size": "tiny",
        },
    )
    args = train_colponet.get_args_parser().parse_args(
        ["--data", "../shared/data/intel-mobileodt-sample", "--output-dir", str(output_dir), "--model-size", "tiny"]
    )
    return finish_run(model, ColpoNetImageProcessor(), output_dir, eval_results, args)


def detector_run(output_dir: Path) -> Path:
    torch.manual_seed(0)
    label_names = ["nucleus", "cell"]
    model = CellDetectorForObjectDetection(cell_detector_config("tiny", id2label=dict(enumerate(label_names))))
    truths = [
        {"boxes": np.array([[10, 10, 40, 40], [60, 60, 120, 110]]), "labels": np.array([0, 1])},
        {"boxes": np.array([[20, 30, 45, 58]]), "labels": np.array([0])},
    ]
    predictions = [
        {
            "boxes": np.array([[11, 10, 40, 42], [58, 61, 119, 112], [0, 0, 9, 9]]),
            "labels": np.array([0, 1, 1]),
            "scores": np.array([0.9, 0.7, 0.4]),
        },
        {"boxes": np.array([[70, 70, 90, 90]]), "labels": np.array([0]), "scores": np.array([0.6])},
    ]
    eval_results = EvalResults(
        model_type="cell_detector",
        label_names=label_names,
        metrics=compute_detection_metrics(truths, predictions, label_names),
        data={
            "source": "../data/cells",
            "format": "coco",
            "test_images": ["a.png", "b.png"],
            "seed": 42,
            "images_per_split": {"train": 6, "validation": 2, "test": 2},
            "boxes_per_class_per_split": {
                "train": {"nucleus": 20, "cell": 9},
                "validation": {"nucleus": 5, "cell": 3},
                "test": {"nucleus": 2, "cell": 1},
            },
            "reader_warnings": [],
        },
        training={
            "stages": [stage_summary("train", 1e-3, True, "map", 0.12)],
            "augmentation": "flip",
            "batch_size": 2,
            "model_size": "tiny",
            "min_size": model.config.min_size,
            "max_size": model.config.max_size,
            "recipe": None,
            "crop_size": None,
            "crops_per_image": 1,
        },
        extra={"export_threshold": 0.5, "classical_baseline": None},
    )
    args = train_cell_detector.get_args_parser().parse_args(
        [
            "--data",
            "../data/cells",
            "--format",
            "coco",
            "--annotations",
            "cells.json",
            "--output-dir",
            str(output_dir),
            "--model-size",
            "tiny",
        ]
    )
    return finish_run(model, CellDetectorImageProcessor(), output_dir, eval_results, args)


def prepost_run(output_dir: Path) -> Path:
    """As `train/train_prepost_fusion.py`: operating points chosen on validation scores, evaluated on test scores."""
    torch.manual_seed(0)
    label_names = ["Negative", "Positive"]
    validation_labels = [0, 0, 0, 0, 0, 0, 1, 1, 1]
    validation_scores = [0.1, 0.2, 0.35, 0.3, 0.55, 0.15, 0.6, 0.4, 0.8]
    test_labels = [0, 0, 0, 0, 0, 1, 1, 1]
    test_scores = [0.05, 0.3, 0.45, 0.2, 0.62, 0.7, 0.38, 0.9]
    points = select_operating_points(validation_labels, validation_scores)
    threshold = points["balanced"]["threshold"]
    config = prepost_config("tiny", pos_weight=2.0, decision_threshold=threshold, operating_points=points)
    model = PrePostFusionForImageClassification(config).eval()
    split_labels = {"train": [0] * 14 + [1] * 7, "validation": validation_labels, "test": test_labels}
    eval_results = EvalResults(
        model_type="prepost_fusion",
        label_names=label_names,
        metrics=evaluate_binary(test_labels, test_scores, threshold, points),
        data={
            "source": "../shared/data/iarc-colposcopy-atlas",
            "post_view": "acetic",
            "split_fractions": {"train": 0.7, "validation": 0.2, "test": 0.1},
            "split_by": "case",
            "seed": 42,
            "class_counts": {name: class_counts(labels, label_names) for name, labels in split_labels.items()},
            "skipped": {"no normal saline view": 13, "no acetic acid view": 1},
            "skipped_cases": [["case_17", "no normal saline view"]],
        },
        training={
            "stages": [
                stage_summary("stage1_frozen_backbones", 1e-4, False, "loss", 0.69),
                stage_summary("stage2_full", 1e-5, True, "loss", 0.68),
            ],
            "pos_weight": 2.0,
            "augmentation": "flip",
            "batch_size": 8,
            "stage2_batch_size": 8,
            "model_size": "tiny",
            "share_backbone": False,
            "decision_threshold": "balanced",
        },
    )
    args = train_prepost_fusion.get_args_parser().parse_args(
        [
            "--data",
            "../shared/data/iarc-colposcopy-atlas",
            "--output-dir",
            str(output_dir),
            "--model-size",
            "tiny",
            "--decision-threshold",
            "balanced",
        ]
    )
    return finish_run(model, PrePostFusionImageProcessor(), output_dir, eval_results, args)


def cell_classifier_run(output_dir: Path) -> Path:
    """As `train/train_cell_classifier.py`: operating points on the abnormal group's validation probabilities, the
    test split evaluated with them, the validation and test summaries, the training summary of its one stage."""
    from cervix_hf import HERLEV_LABELS, CellClassifierForImageClassification, CellClassifierImageProcessor
    from cervix_hf.evaluation.metrics.cell_classification import evaluate_grouped_classifier, group_probability
    from cervix_hf.models.cell_classifier import HERLEV_GROUPS
    from cervix_hf.registry import family
    from train import cell_classifier_training, train_cell_classifier

    torch.manual_seed(0)
    names = list(HERLEV_LABELS)
    rng = np.random.default_rng(0)

    def probabilities(labels):
        logits = rng.normal(size=(len(labels), 7)) + 2.0 * np.eye(7)[labels]
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    labels = {
        "train": np.repeat(np.arange(7), 5),
        "validation": np.repeat(np.arange(7), 3),
        "test": np.repeat(np.arange(7), 2),
    }
    scores = {split: probabilities(labels[split]) for split in ("validation", "test")}
    abnormal = (labels["validation"] >= 3).astype(int)
    points = select_operating_points(
        abnormal, group_probability(scores["validation"], names, HERLEV_GROUPS["abnormal"]), 0.95, 0.95
    )
    threshold = points["screening"]["threshold"]
    model = CellClassifierForImageClassification(
        family("cell_classifier").config("tiny", operating_points=points, decision_threshold=threshold)
    ).eval()
    args = train_cell_classifier.get_args_parser().parse_args(
        ["--data", "../shared/data/herlev", "--output-dir", str(output_dir), "--recipe", "tiny"]
    )
    stage = {
        **stage_summary("train", 3e-3, True, "none (a fixed schedule; the weight average is kept)", None),
        "train_seconds": 12.5,
    }
    eval_results = EvalResults(
        model_type="cell_classifier",
        label_names=names,
        metrics=evaluate_grouped_classifier(
            labels["test"], scores["test"], names, HERLEV_GROUPS, "abnormal", threshold, points
        ),
        data={
            "source": "herlev",
            "dataset": "herlev",
            "split_fractions": {"train": 0.7, "validation": 0.2, "test": 0.1},
            "split_by": "source_image",
            "seed": 42,
            "class_counts": {split: class_counts(values, names) for split, values in labels.items()},
            "source_images": {"train": 20, "validation": 12, "test": 9},
        },
        training={
            "stages": [stage],
            "recipe": "tiny",
            "command": cell_classifier_training.published_command(args),
            "settings": train_cell_classifier.asdict(train_cell_classifier.RECIPES["tiny"]),
            "augmentation": "recipe tiny",
            "batch_size": 16,
            "model_size": "tiny",
            "decision_threshold": "screening",
            "train_seconds": 12.5,
            "weights_from": None,
        },
        extra={
            "label_groups": HERLEV_GROUPS,
            "positive_group": "abnormal",
            "summary": {
                split: cell_classifier_training.split_summary(
                    labels[split], scores[split], names, HERLEV_GROUPS, "abnormal", points, 5
                )
                for split in ("validation", "test")
            },
            "predictions": [
                {
                    "image": f"cell{i}.jpg",
                    "source_image": f"s{i}",
                    "label": names[label],
                    "probabilities": dict(zip(names, map(float, row))),
                }
                for i, (label, row) in enumerate(zip(labels["test"], scores["test"]))
            ],
        },
    )
    return finish_run(model, CellClassifierImageProcessor(), output_dir, eval_results, args)


RUNS = {
    "colponet": colponet_run,
    "cell_detector": detector_run,
    "prepost_fusion": prepost_run,
    "cell_classifier": cell_classifier_run,
}
