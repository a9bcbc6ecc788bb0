"""ColpoNet's training run behind `train.train_colponet` (its arguments and `--help` live there): the data and its
split, the quality gate, pseudo-labels, the model, the stages, the evaluation with its baselines, and the saved
model folder."""

import argparse
import functools
import logging
from pathlib import Path

import numpy as np
import torch

from cervix_hf import ColpoNetForImageClassification, ColpoNetImageProcessor
from cervix_hf.data import (
    DecodedImageDataset,
    ImageClassificationDataset,
    class_counts,
    compute_class_weights,
    read_image_folder,
    read_intel_mobileodt,
    read_unlabeled_folder,
    stratified_split,
)
from cervix_hf.evaluation.metrics import compute_classification_metrics
from cervix_hf.evaluation.results import EvalResults
from cervix_hf.io.images import load_image
from cervix_hf.models.colponet.image_quality import assess_image_quality
from cervix_hf.registry import colponet_config

from .colponet_baselines import class_prior, classical_baseline, compare, figures
from .engine import (
    MixupTrainer,
    TrainingStage,
    finish_run,
    on_main_process,
    published_path,
    run_stages,
    start_run,
    training_summary,
)
from .presets import classification_train_transform
from .pretrained_backbone import load_pretrained_backbone
from .pseudo_labels import pseudo_label
from .quality_filter import filter_by_quality
from .recipes import COLPONET_RECIPES

logger = logging.getLogger("train.train_colponet")


def calibrate_quality_gate(paths: list[str], percentile: float) -> dict[str, float]:
    """The quality gate's thresholds at `percentile` of the scores of `paths` (the training photos): photos like
    them are rejected at about that rate, whatever their resolution and camera."""
    if not 0 <= percentile < 50:
        raise SystemExit(f"--quality-percentile must be in [0, 50), got {percentile}.")
    reports = [assess_image_quality(load_image(path)) for path in paths]
    return {
        "quality_laplacian_threshold": float(np.percentile([r.laplacian_variance for r in reports], percentile)),
        "quality_fft_threshold": float(np.percentile([r.fft_score for r in reports], percentile)),
    }


def load_records(data: Path):
    """Image paths and labels from the competition layout, else from a `<root>/<class>/` folder."""
    if not data.is_dir():
        raise SystemExit(f"--data {data}: no such folder.")
    if (data / "train").is_dir() or any(data.glob("additional_Type_*")):
        return read_intel_mobileodt(data)
    return read_image_folder(data)


def build_model(
    args: argparse.Namespace, label_names: list[str], class_weights: list[float] | None
) -> tuple[ColpoNetForImageClassification, str]:
    """The model to train, and where its weights start from (for the card)."""
    if args.from_checkpoint:
        model = ColpoNetForImageClassification.from_pretrained(args.from_checkpoint, class_weights=class_weights)
        if list(model.config.id2label.values()) != label_names:
            raise SystemExit(
                f"--from-checkpoint {args.from_checkpoint} predicts {list(model.config.id2label.values())}, "
                f"but --data has the classes {label_names}."
            )
        return model, "saved ColpoNet " + published_path(args.from_checkpoint, args)
    config = colponet_config(
        args.model_size,
        id2label=dict(enumerate(label_names)),
        class_weights=class_weights,
        **({"use_pretrained_backbone": False} if args.no_pretrained_backbone else {}),
    )
    model = ColpoNetForImageClassification(config)
    if load_pretrained_backbone(model, require=args.require_pretrained_backbone):
        return model, f"backbone from {config.backbone} (ImageNet)"
    return model, "random weights (no ImageNet)"


def build_processor(args: argparse.Namespace, calibrated: dict[str, float] | None = None) -> ColpoNetImageProcessor:
    """The checkpoint's processor (or a new one of `--image-size`), with the quality-gate thresholds given on the
    command line or `calibrated` on the training split."""
    overrides = {
        "quality_laplacian_threshold": args.quality_laplacian_threshold,
        "quality_fft_threshold": args.quality_fft_threshold,
        **(calibrated or {}),
    }
    overrides = {name: value for name, value in overrides.items() if value is not None}
    if args.from_checkpoint:
        return ColpoNetImageProcessor.from_pretrained(args.from_checkpoint, **overrides)
    return ColpoNetImageProcessor(size={"height": args.image_size, "width": args.image_size}, **overrides)


def compute_metrics_for(label_names: list[str]):
    def compute_metrics(eval_prediction) -> dict[str, float]:
        probabilities = torch.softmax(torch.as_tensor(eval_prediction.predictions), dim=-1).numpy()
        metrics = compute_classification_metrics(eval_prediction.label_ids, probabilities, label_names)
        return {
            "accuracy": metrics["accuracy"],
            "log_loss": metrics["log_loss"],
            "macro_f1": metrics["classification_report"]["macro avg"]["f1-score"],
        }

    return compute_metrics


def gate_effect(paths, labels, probabilities, processor, label_names) -> dict:
    """Accuracy and log loss of the evaluated photos the quality gate accepts and of those it rejects, at the
    processor's thresholds: whether rejected photos are really the ones the model gets wrong."""
    accepted = np.array([processor.assess_quality([load_image(path)])[0].is_acceptable for path in paths])
    effect = {}
    for name, mask in (("accepted", accepted), ("rejected", ~accepted)):
        effect[name] = {"n": int(mask.sum()), "accuracy": None, "log_loss": None}
        if mask.any():
            chosen = probabilities[mask]
            truth = np.asarray(labels)[mask]
            effect[name]["accuracy"] = float((chosen.argmax(1) == truth).mean())
            effect[name]["log_loss"] = float(-np.log(np.clip(chosen[np.arange(len(truth)), truth], 1e-15, 1)).mean())
    return effect


def train_teacher(args: argparse.Namespace) -> Path:
    """The saved teacher of a self-training run: `OUTPUT_DIR/teacher`, trained first with the same settings on the
    labelled photos alone (kept when a finished one is already there, so a resumed run does not train it again)."""
    teacher_dir = args.output_dir / "teacher"
    if (teacher_dir / "model.safetensors").is_file() and (teacher_dir / "eval_results.json").is_file():
        logger.info("Teacher: the finished model in %s.", teacher_dir)
        return teacher_dir
    teacher_args = argparse.Namespace(
        **{
            **vars(args),
            "unlabeled": None,
            "teacher": None,
            "soft_pseudo_labels": False,
            "baselines": False,
            "output_dir": teacher_dir,
        }
    )
    logger.info("Teacher: training it first, in %s.", teacher_dir)
    run(teacher_args)
    return teacher_dir


def add_pseudo_labels(state, args: argparse.Namespace, label_names: list[str], train_paths, train_labels):
    """The training split with the unlabelled photos the teacher is sure of, what was added (for the card), and,
    with `--soft-pseudo-labels`, every training photo's target probabilities (one-hot for the labelled photos, the
    teacher's for the others)."""
    try:
        unlabeled = read_unlabeled_folder(args.unlabeled)
    except ValueError as err:
        raise SystemExit(f"--unlabeled: {err}") from None
    pseudo = on_main_process(
        state, lambda: pseudo_label(args.teacher, unlabeled, label_names, args.pseudo_label_threshold)
    )
    summary = {
        "source": published_path(args.unlabeled, args),
        "teacher": published_path(args.teacher, args),
        "targets": "soft" if args.soft_pseudo_labels else "hard",
        **pseudo.summary,
    }
    soft_labels = None
    if args.soft_pseudo_labels:
        one_hot = np.eye(len(label_names))[np.asarray(train_labels, dtype=int)].tolist()
        soft_labels = one_hot + pseudo.probabilities
    return list(train_paths) + pseudo.paths, list(train_labels) + pseudo.labels, soft_labels, summary


def run(args: argparse.Namespace) -> dict:
    if args.teacher and not args.unlabeled:
        raise SystemExit("--teacher labels the photos of --unlabeled: give --unlabeled too.")
    if args.soft_pseudo_labels and not args.unlabeled:
        raise SystemExit("--soft-pseudo-labels are the teacher's for the photos of --unlabeled: give --unlabeled too.")
    if args.unlabeled and not args.teacher:
        args.teacher = train_teacher(args)
    state = start_run(args)
    if args.stage1_epochs <= 0 and args.stage2_epochs <= 0:
        raise SystemExit("Nothing to train: both --stage1-epochs and --stage2-epochs are 0.")
    if not 0 <= args.ema_decay < 1:
        raise SystemExit(f"--ema-decay must be in [0, 1), got {args.ema_decay}.")
    if args.image_size < 32:
        raise SystemExit(f"--image-size must be at least 32 pixels, got {args.image_size}.")
    records = load_records(args.data)
    label_names = list(records.label_names)
    paths, labels = list(records.paths), list(records.labels)
    try:
        splits = stratified_split(labels, fractions=args.split, seed=args.seed)
    except ValueError as err:
        raise SystemExit(f"--split {' '.join(map(str, args.split))}: {err}") from None
    subset = {name: ([paths[i] for i in idx], [labels[i] for i in idx]) for name, idx in splits.items()}
    evaluated_on = "test" if subset["test"][0] else "validation"

    quality_summary = {"mode": args.quality_gate, "rejected": 0}
    train_paths, train_labels = subset["train"]
    subset_paths_before_gate, subset_labels_before_gate = list(train_paths), list(train_labels)
    calibrated = None
    if args.quality_percentile is not None and not args.from_checkpoint:
        calibrated = on_main_process(state, lambda: calibrate_quality_gate(train_paths, args.quality_percentile))
        quality_summary["calibrated"] = {"on": "train", "percentile": args.quality_percentile, **calibrated}
        logger.info("Quality gate calibrated on the training split: %s.", calibrated)
    processor = build_processor(args, calibrated)
    if args.quality_gate != "off":
        gate = on_main_process(  # reads every training photo: once, not on every process
            state,
            lambda: filter_by_quality(
                train_paths,
                [label_names[label] for label in train_labels],  # names, so the gate's log reads per class
                laplacian_threshold=processor.quality_laplacian_threshold,
                fft_threshold=processor.quality_fft_threshold,
                mode=args.quality_gate,
                logger=logger,
            ),
        )
        quality_summary.update(
            checked=gate.num_images,
            rejected=gate.num_rejected if args.quality_gate == "drop" else 0,
            flagged_blurry=gate.num_blurry,
            unreadable=gate.num_unreadable,
            per_class=gate.per_label,
            rejected_files=[
                {"path": published_path(path, args), "reason": str(reason)} for path, reason in gate.rejected
            ],
        )
        train_paths = list(gate.kept_paths)
        train_labels = [label_names.index(name) for name in gate.kept_labels]
        subset["train"] = (train_paths, train_labels)

    pseudo_labels = soft_labels = None
    if args.unlabeled:
        train_paths, train_labels, soft_labels, pseudo_labels = add_pseudo_labels(
            state, args, label_names, train_paths, train_labels
        )
        subset["train"] = (train_paths, train_labels)

    class_weights = None
    if args.class_weights == "balanced":
        class_weights = [float(w) for w in compute_class_weights(train_labels, len(label_names))]
    model, initialisation = build_model(args, label_names, class_weights)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)

    transform = classification_train_transform(args.augmentation, size=args.image_size)
    dataset_class = DecodedImageDataset if args.decode_once else ImageClassificationDataset
    datasets = {
        name: dataset_class(split_paths, split_labels, processor)
        for name, (split_paths, split_labels) in subset.items()
        if split_paths and name != "train"
    }
    # Each photo's augmentation is drawn from (seed, epoch, photo): the same whatever --workers. Probability
    # targets (soft pseudo-labels) are carried by the decoded dataset alone.
    train_class, soft = (DecodedImageDataset, {"soft_labels": soft_labels}) if soft_labels else (dataset_class, {})
    datasets["train"] = train_class(train_paths, train_labels, processor, transform, seed=args.seed, **soft)
    stages = [
        TrainingStage(
            "stage1_frozen_backbone", args.stage1_lr, args.stage1_epochs, train_backbone=False, schedule=args.schedule
        ),
        TrainingStage("stage2_full", args.stage2_lr, args.stage2_epochs, train_backbone=True, schedule=args.schedule),
    ]
    trainer, stage_summaries = run_stages(
        model,
        stages,
        args,
        datasets["train"],
        datasets["validation"],
        compute_metrics=compute_metrics_for(label_names),
        metric_for_best_model="log_loss",
        greater_is_better=False,
        processing_class=processor,
        trainer_class=functools.partial(
            MixupTrainer, mixup_alpha=args.mixup_alpha, weight_average_decay=args.ema_decay
        ),
        training_settings={"weight_decay": args.weight_decay, "label_smoothing_factor": args.label_smoothing},
    )
    # On every process: each predicts its share, then they gather.
    prediction = trainer.predict(datasets[evaluated_on])
    if not state.is_main_process:  # the main process alone writes the model, its evaluation and its card
        return {}
    probabilities = torch.softmax(torch.as_tensor(prediction.predictions, dtype=torch.float32), dim=-1).numpy()
    eval_paths, eval_labels = subset[evaluated_on]
    eval_labels = np.asarray(eval_labels)
    quality_summary["effect_on_" + evaluated_on] = gate_effect(
        eval_paths, eval_labels, probabilities, processor, label_names
    )
    intervals = figures(probabilities, eval_labels, label_names)
    baselines = None
    if args.baselines:
        train_labels_all = subset_labels_before_gate
        baselines = {
            "class_prior": compare(
                probabilities,
                class_prior(train_labels_all, len(label_names), len(eval_labels)),
                eval_labels,
                label_names,
            ),
            "colour_texture_logistic_regression": compare(
                probabilities,
                classical_baseline(subset_paths_before_gate, train_labels_all, eval_paths),
                eval_labels,
                label_names,
            ),
        }
    eval_results = EvalResults(
        model_type=model.config.model_type,
        label_names=label_names,
        metrics=compute_classification_metrics(eval_labels, probabilities, label_names),
        data={
            "source": published_path(args.data, args),
            "split_fractions": dict(zip(("train", "validation", "test"), args.split)),
            "split_rule": "stratified by class, shuffled with the seed, from every labelled photo of --data",
            "pseudo_labels": pseudo_labels,
            "seed": args.seed,
            "class_counts": {
                name: class_counts(split_labels, label_names) for name, (_, split_labels) in subset.items()
            },
            "quality_gate": {
                **quality_summary,
                "laplacian_threshold": processor.quality_laplacian_threshold,
                "fft_threshold": processor.quality_fft_threshold,
            },
        },
        training=training_summary(
            args,
            stage_summaries,
            class_weights=class_weights,
            recipe=COLPONET_RECIPES[args.recipe].to_dict() if args.recipe else None,
            image_size=args.image_size,
            schedule=args.schedule,
            label_smoothing=args.label_smoothing,
            mixup_alpha=args.mixup_alpha,
            ema_decay=args.ema_decay,
            weight_decay=args.weight_decay,
            bf16=args.bf16,
            initialisation=initialisation,
        ),
        evaluated_on=evaluated_on,
        extra={
            "intervals": intervals,
            "baselines": baselines,
            "predictions": [
                {
                    "path": published_path(path, args),
                    "label": label_names[label],
                    "probabilities": dict(zip(label_names, map(float, probs))),
                }
                for path, label, probs in zip(eval_paths, eval_labels, probabilities)
            ],
        },
    )
    finish_run(model, processor, args.output_dir, eval_results, args)
    logger.info(
        "%s accuracy %.3f, log loss %.3f. Model and eval_results.json in %s.",
        evaluated_on.capitalize(),
        eval_results.metrics["accuracy"],
        eval_results.metrics["log_loss"],
        args.output_dir,
    )
    return eval_results.to_dict()
