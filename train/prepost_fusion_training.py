"""The pre/post fusion model's training run behind `train.train_prepost_fusion` (its arguments and `--help` live
there): the pairs and their split, the model, the stages, the threshold analysis and the saved model folder."""

import argparse
import logging

import numpy as np
import torch

from cervix_hf import PrePostFusionForImageClassification, PrePostFusionImageProcessor
from cervix_hf.data import (
    PairDataset,
    case_level_split,
    class_counts,
    read_iarc_atlas,
    read_pairs_csv,
)
from cervix_hf.evaluation.metrics import binary_report, evaluate_binary, select_operating_points
from cervix_hf.evaluation.results import EvalResults
from cervix_hf.models.prepost_fusion import OPERATING_POINT_NAMES
from cervix_hf.registry import prepost_config

from .arguments import decision_threshold
from .engine import (
    TrainingStage,
    finish_run,
    published_path,
    run_stages,
    start_run,
    training_summary,
)
from .presets import paired_train_transform
from .pretrained_backbone import load_pretrained_backbone

logger = logging.getLogger("train.train_prepost_fusion")


def load_records(args: argparse.Namespace):
    if args.data.is_file():
        return read_pairs_csv(args.data, allow_outside_root=args.allow_outside_root)
    if args.data.is_dir():
        return read_iarc_atlas(args.data, post=args.post, allow_outside_root=args.allow_outside_root)
    raise SystemExit(f"--data {args.data}: no such file or folder.")


def build_model(args: argparse.Namespace, pos_weight: float | None) -> PrePostFusionForImageClassification:
    if args.from_checkpoint:
        return PrePostFusionForImageClassification.from_pretrained(args.from_checkpoint, pos_weight=pos_weight)
    overrides = {"pos_weight": pos_weight, "share_backbone": args.share_backbone}
    if args.no_pretrained_backbone:
        overrides["use_pretrained_backbone"] = False
    model = PrePostFusionForImageClassification(prepost_config(args.model_size, **overrides))
    load_pretrained_backbone(model, require=args.require_pretrained_backbone)
    return model


def threshold_from_argument(value: str, config) -> float:
    """`--decision-threshold`: an operating point's name (chosen on validation, saved in `config`) or a number."""
    return decision_threshold(value, config, OPERATING_POINT_NAMES)


def compute_metrics(eval_prediction) -> dict[str, float]:
    scores = torch.sigmoid(torch.as_tensor(eval_prediction.predictions)).numpy().reshape(-1)
    labels = np.asarray(eval_prediction.label_ids).reshape(-1).astype(int)
    report = binary_report(labels, scores, 0.5)
    return {"roc_auc": report["roc_auc"] or 0.0, "accuracy": report["accuracy"]}


def scores_of(trainer, dataset) -> tuple[np.ndarray, np.ndarray]:
    prediction = trainer.predict(dataset)
    scores = torch.sigmoid(torch.as_tensor(prediction.predictions)).numpy().reshape(-1)
    return np.asarray(prediction.label_ids).reshape(-1).astype(int), scores


def case_predictions(split, labels: np.ndarray, scores: np.ndarray) -> list[dict]:
    return [
        {"case_id": record.case_id, "label": int(label), "probability": float(score)}
        for record, label, score in zip(split.records, labels, scores)
    ]


def run(args: argparse.Namespace) -> dict:
    state = start_run(args)
    if args.stage1_epochs <= 0 and args.stage2_epochs <= 0:
        raise SystemExit("Nothing to train: both --stage1-epochs and --stage2-epochs are 0.")
    records = load_records(args)
    for reason, count in records.skipped.items():
        logger.warning("Skipped %d case(s): %s.", count, reason)
    splits = {name: records.select(idx) for name, idx in case_level_split(records, seed=args.seed).items()}
    train_labels = splits["train"].labels
    num_positive = sum(train_labels)
    pos_weight = None
    if args.pos_weight == "balanced":
        if num_positive in (0, len(train_labels)):
            raise SystemExit("The training split has a single class: a Negative/Positive model cannot be trained.")
        pos_weight = (len(train_labels) - num_positive) / num_positive
    model = build_model(args, pos_weight)
    processor = PrePostFusionImageProcessor()
    transform = paired_train_transform(args.augmentation)
    datasets = {
        name: PairDataset(split, processor, transform if name == "train" else None) for name, split in splits.items()
    }
    stages = [
        TrainingStage("stage1_frozen_backbones", args.stage1_lr, args.stage1_epochs, train_backbone=False),
        TrainingStage(
            "stage2_full", args.stage2_lr, args.stage2_epochs, train_backbone=True, batch_size=args.stage2_batch_size
        ),
    ]
    trainer, stage_summaries = run_stages(
        model,
        stages,
        args,
        datasets["train"],
        datasets["validation"],
        compute_metrics=compute_metrics,
        metric_for_best_model="loss",
        greater_is_better=False,
        processing_class=processor,
    )
    # On every process: each predicts its share, then they gather.
    validation_labels, validation_scores = scores_of(trainer, datasets["validation"])
    test_labels, test_scores = scores_of(trainer, datasets["test"])
    if not state.is_main_process:  # the main process alone writes the model, its evaluation and its card
        return {}
    operating_points = select_operating_points(
        validation_labels, validation_scores, args.target_sensitivity, args.target_specificity
    )
    model.config.operating_points = operating_points
    model.config.decision_threshold = threshold_from_argument(args.decision_threshold, model.config)
    metrics = evaluate_binary(test_labels, test_scores, model.config.decision_threshold, operating_points)
    eval_results = EvalResults(
        model_type=model.config.model_type,
        label_names=list(records.label_names),
        metrics=metrics,
        data={
            "source": published_path(args.data, args),
            "post_view": args.post if args.data.is_dir() else None,
            "split_fractions": {"train": 0.7, "validation": 0.2, "test": 0.1},
            "split_by": "case",
            "seed": args.seed,
            "class_counts": {
                name: class_counts(split.labels, list(records.label_names)) for name, split in splits.items()
            },
            "skipped": records.skipped,
            "skipped_cases": records.skipped_cases,
        },
        training=training_summary(
            args,
            stage_summaries,
            pos_weight=pos_weight,
            stage2_batch_size=args.stage2_batch_size,
            share_backbone=model.config.share_backbone,
            decision_threshold=args.decision_threshold,
        ),
        extra={
            "predictions": case_predictions(splits["test"], test_labels, test_scores),
            # the scores the operating points were chosen on, so anyone can choose them again
            "validation_predictions": case_predictions(splits["validation"], validation_labels, validation_scores),
        },
    )
    finish_run(model, processor, args.output_dir, eval_results, args)
    report = metrics["report"]
    logger.info(
        "Test (%d cases, %d Positive) at threshold %.3f: sensitivity %s, specificity %s, ROC-AUC %s. Saved in %s.",
        metrics["num_cases"],
        metrics["num_positive"],
        metrics["threshold"],
        report["sensitivity"],
        report["specificity"],
        report["roc_auc"],
        args.output_dir,
    )
    return eval_results.to_dict()
