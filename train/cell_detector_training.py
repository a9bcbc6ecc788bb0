"""The cell detector's training run behind `train.train_cell_detector` (its arguments and `--help` live there): the
annotations and their split, the model, the stages, the evaluation against the classical baseline and the saved
model folder."""

import argparse
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from cervix_hf import CellDetectorForObjectDetection, CellDetectorImageProcessor
from cervix_hf.data import (
    DetectionDataset,
    DetectionRecords,
    detection_collate,
    read_detection_data,
    stratified_split,
)
from cervix_hf.evaluation.metrics import compute_detection_metrics
from cervix_hf.evaluation.plots import draw_detection_sample
from cervix_hf.evaluation.results import EvalResults
from cervix_hf.io.results import write_detections
from cervix_hf.prediction.inference import CellDetection
from cervix_hf.registry import cell_detector_config

from .classical_detection import ClassicalNucleusDetector
from .detector_recipes import DETECTOR_RECIPES
from .engine import (
    CervixTrainer,
    TrainingStage,
    finish_run,
    published_path,
    run_stages,
    start_run,
    training_summary,
)
from .presets import detection_train_transform
from .pretrained_backbone import load_pretrained_backbone
from .train_cell_detector import apply_recipe

logger = logging.getLogger("train.train_cell_detector")


def load_records(args: argparse.Namespace) -> tuple[DetectionRecords, str]:
    """The records of `--data` and the format they were read in (`cervix_hf.data.read_detection_data`)."""
    try:
        records, data_format = read_detection_data(
            args.data, args.format, args.annotations, args.box_from, args.allow_outside_root
        )
    except ValueError as error:
        raise SystemExit(str(error)) from None
    for warning in records.warnings:
        logger.warning(warning)
    return records, data_format


def split_records(records: DetectionRecords, args: argparse.Namespace) -> dict[str, DetectionRecords]:
    """Test = `--test-names` (the rest split train/validation), else a 70:20:10 split stratified by main class."""
    main_class = [Counter(r.labels).most_common(1)[0][0] if r.labels else -1 for r in records.records]
    if not args.test_names:
        indices = stratified_split(main_class, fractions=(0.7, 0.2, 0.1), seed=args.seed)
        return {name: records.select(idx) for name, idx in indices.items()}
    stems = [Path(r.image_path).stem for r in records.records]
    unknown = sorted(set(args.test_names) - set(stems))
    if unknown:
        raise SystemExit(f"--test-names {' '.join(unknown)}: no such image in --data {args.data}.")
    test = [i for i, stem in enumerate(stems) if stem in args.test_names]
    rest = np.random.default_rng(args.seed).permutation(
        [i for i in range(len(stems)) if stems[i] not in args.test_names]
    )
    num_validation = max(1, round(args.validation_fraction * len(rest)))
    return {
        "train": records.select(sorted(rest[num_validation:].tolist())),
        "validation": records.select(sorted(rest[:num_validation].tolist())),
        "test": records.select(test),
    }


class DetectionCollator:
    """Turns raw samples (image, boxes, class labels) into the model's `pixel_values`, `pixel_mask`, `labels`."""

    def __init__(self, processor: CellDetectorImageProcessor):
        self.processor = processor

    def __call__(self, samples: list[dict]) -> dict:
        annotations = [{"boxes": s["boxes"], "class_labels": s["class_labels"]} for s in samples]
        return dict(self.processor([s["image"] for s in samples], annotations=annotations, return_tensors="pt"))


@torch.inference_mode()
def predict_dataset(model, processor, dataset: DetectionDataset, batch_size: int) -> tuple[list, list, list]:
    """Ground truth, detections (model's score threshold) and image paths for every image of `dataset`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    truths, predictions, paths = [], [], []
    for start in range(0, len(dataset), batch_size):
        samples = detection_collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        inputs = processor([s["image"] for s in samples], return_tensors="pt").to(device)
        for sample, result in zip(samples, processor.post_process_object_detection(model(**inputs), threshold=0.0)):
            truths.append({"boxes": sample["boxes"].numpy(), "labels": sample["class_labels"].numpy()})
            predictions.append({k: v.cpu().numpy() for k, v in result.items()})
            paths.append(sample["path"])
    model.train(was_training)
    return truths, predictions, paths


class DetectionTrainer(CervixTrainer):
    """Evaluates with COCO mAP (pycocotools) instead of a loss: Faster R-CNN computes losses only in training mode."""

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        truths, predictions, _ = predict_dataset(
            self.model, self.processing_class, dataset, self.args.per_device_eval_batch_size
        )
        scores = compute_detection_metrics(truths, predictions, self.model.config.id2label.values())
        metrics = {f"{metric_key_prefix}_{name}": scores[name] or 0.0 for name in ("map", "map_50", "map_75", "mar")}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def build_model(args: argparse.Namespace, label_names: list[str]) -> CellDetectorForObjectDetection:
    sizes = {k: v for k, v in (("min_size", args.min_size), ("max_size", args.max_size)) if v is not None}
    if args.from_checkpoint:
        model = CellDetectorForObjectDetection.from_pretrained(args.from_checkpoint, **sizes)
        if list(model.config.id2label.values()) != label_names:
            raise SystemExit(
                f"--from-checkpoint {args.from_checkpoint} detects {list(model.config.id2label.values())}, "
                f"but --data has the classes {label_names}."
            )
        return model
    recipe_config = DETECTOR_RECIPES[args.recipe].config if args.recipe else {}
    overrides = {**recipe_config, "id2label": dict(enumerate(label_names)), **sizes}
    if args.no_pretrained_backbone:
        overrides["use_pretrained_backbone"] = False
    model = CellDetectorForObjectDetection(cell_detector_config(args.model_size, **overrides))
    load_pretrained_backbone(model, require=args.require_pretrained_backbone)
    return model


def classical_baseline(dataset: DetectionDataset, truths: list, label_names: list[str]) -> dict:
    """The classical nucleus detector (`train.classical_detection`) on the test split, scored by the same code."""
    detector = ClassicalNucleusDetector()
    found = [detector(record.image_path) for record in dataset.records]
    return {
        "method": "train.classical_detection.ClassicalNucleusDetector",
        "settings": detector.to_dict(),
        "metrics": compute_detection_metrics(truths, found, label_names),
    }


def run(args: argparse.Namespace) -> dict:
    args = apply_recipe(args)
    state = start_run(args)
    records, data_format = load_records(args)
    splits = split_records(records, args)
    label_names = list(records.label_names)
    model = build_model(args, label_names)
    processor = CellDetectorImageProcessor()
    transform = detection_train_transform(args.augmentation, crop_size=args.crop_size)
    datasets = {name: DetectionDataset(split, transform if name == "train" else None) for name, split in splits.items()}
    # Each epoch draws --crops-per-image augmented samples (different random crops) from every training image.
    datasets["train"] = torch.utils.data.ConcatDataset([datasets["train"]] * args.crops_per_image)
    trainer, stage_summaries = run_stages(
        model,
        [TrainingStage("train", args.lr, args.epochs, train_backbone=True)],
        args,
        datasets["train"],
        datasets["validation"],
        compute_metrics=None,
        metric_for_best_model="map",
        greater_is_better=True,
        data_collator=DetectionCollator(processor),
        processing_class=processor,
        trainer_class=DetectionTrainer,
    )
    if not state.is_main_process:  # the main process alone evaluates on the test split and writes the run
        return {}

    batch_size = args.eval_batch_size or args.batch_size
    truths, predictions, paths = predict_dataset(model, processor, datasets["test"], batch_size)
    metrics = compute_detection_metrics(truths, predictions, label_names)
    baseline = classical_baseline(datasets["test"], truths, label_names) if data_format == "isbi2014" else None
    per_image = [
        (
            path,
            [
                CellDetection(label_names[int(label)], float(score), tuple(float(v) for v in box))
                for box, label, score in zip(found["boxes"], found["labels"], found["scores"])
                if score > args.export_threshold
            ],
        )
        for path, found in zip(paths, predictions)
    ]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_detections(per_image, args.output_dir / "detections.csv", args.output_dir / "detections.json", label_names)
    if paths:  # the first test image, its true boxes and the detections, for the card's plots
        draw_detection_sample(
            datasets["test"][0]["image"],
            truths[0],
            predictions[0],
            label_names,
            args.output_dir,
            args.export_threshold,
            Path(paths[0]).name,
        )
    eval_results = EvalResults(
        model_type=model.config.model_type,
        label_names=label_names,
        metrics=metrics,
        data={
            "source": published_path(args.data, args),
            "format": data_format,
            "test_images": [Path(p).name for p in paths],
            "seed": args.seed,
            "images_per_split": {name: len(split) for name, split in splits.items()},
            "boxes_per_class_per_split": {name: split.box_counts() for name, split in splits.items()},
            "reader_warnings": records.warnings,
        },
        training=training_summary(
            args,
            stage_summaries,
            min_size=model.config.min_size,
            max_size=model.config.max_size,
            recipe=DETECTOR_RECIPES[args.recipe].to_dict() if args.recipe else None,
            crop_size=args.crop_size,
            crops_per_image=args.crops_per_image,
        ),
        extra={"export_threshold": args.export_threshold, "classical_baseline": baseline},
    )
    finish_run(model, processor, args.output_dir, eval_results, args)
    logger.info(
        "Test mAP@[.5:.95] %.3f, mAP@.5 %.3f on %d images. Model, eval_results.json and detections in %s.",
        metrics["map"] or 0.0,
        metrics["map_50"] or 0.0,
        len(paths),
        args.output_dir,
    )
    return eval_results.to_dict()
