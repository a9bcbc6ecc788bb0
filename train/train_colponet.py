"""Fine-tune ColpoNet (cervix type 1/2/3) on colposcopy photos.

Reproduce the published model (Intel & MobileODT competition data, `microsoft/resnet-50` backbone)::

    python -m train.train_colponet --data /path/to/intel-mobileodt --output-dir checkpoints/colponet

Several GPUs: ``torchrun --nproc_per_node 4 -m train.train_colponet ...`` (or ``accelerate launch -m ...``).

The real-data recipe (``--recipe kaggle``, ``train/recipes.py``): ColpoNet from random weights on the competition's
1,481 training photos, evaluated on a stratified 20% validation split (``--seed 42``) that training never uses to
choose; about 40 minutes on 2 CPU cores::

    python -m train.train_colponet --data ../shared/data/intel-mobileodt-512 --recipe kaggle \
        --output-dir checkpoints/colponet

Smoke run on the real sample beside the project (a tiny backbone, under a minute on 2 CPU cores)::

    python -m train.train_colponet --data ../shared/data/intel-mobileodt-sample --output-dir runs/colponet-smoke \
        --model-size tiny --stage1-epochs 2 --stage2-epochs 2 --batch-size 8

Data: the competition layout (`train/Type_N/`, `additional_Type_N_v2/`, `test/` + `solution_stg1_release.csv`),
or any `<root>/<class name>/*.jpg` folder. It is split by `--split` (stratified, `--seed`; 70:20:10 by default);
blurry training photos are dropped by the quality gate; the test split (the validation split when `--split` gives
the test 0) gives `eval_results.json`.

By default training runs in two stages, as in the seed work: the backbone frozen at lr 1e-4, then everything at
1e-5, each with early stopping on the validation log loss (the competition's metric) and reduce-on-plateau.
`--schedule cosine` trains for the fixed number of epochs instead and keeps the last weights.
"""

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from cervix_hf import ColpoNetForImageClassification, ColpoNetImageProcessor, load_pretrained_backbone
from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import (
    DecodedImageDataset,
    ImageClassificationDataset,
    class_counts,
    compute_class_weights,
    read_image_folder,
    read_intel_mobileodt,
    stratified_split,
)
from cervix_hf.metrics import compute_classification_metrics
from cervix_hf.image_io import load_image
from cervix_hf.model_presets import colponet_config
from cervix_hf.models.colponet.image_quality import assess_image_quality
from cervix_hf.quality_filter import filter_by_quality
from cervix_hf.registry import family
from cervix_hf.eval_results import EvalResults
from .engine import (
    TrainingStage,
    add_common_args,
    finish_run,
    on_main_process,
    SCHEDULES,
    RecipeArgumentParser,
    published_path,
    run_stages,
    start_run,
    training_summary,
)
from .colponet_baselines import class_prior, classical_baseline, compare, figures
from .presets import CLASSIFICATION_PRESETS, classification_train_transform
from .recipes import COLPONET_RECIPES

logger = logging.getLogger("train.train_colponet")

SPLIT_FRACTIONS = (0.7, 0.2, 0.1)
# `--recipe`'s fields, by argument name.
RECIPE_ARGS = ("model_size", "image_size", "augmentation", "stage1_epochs", "stage1_lr", "stage2_epochs", "stage2_lr",
               "schedule", "batch_size", "weight_decay", "label_smoothing", "class_weights", "split",
               "quality_percentile", "bf16", "channels_last", "decode_once", "baselines")  # fmt: skip


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = RecipeArgumentParser(
        description=__doc__.split("\n\n")[0],
        add_help=add_help,
        formatter_class=DefaultsHelpFormatter,
        recipes={name: recipe_defaults(recipe) for name, recipe in COLPONET_RECIPES.items()},
    )
    parser.add_argument("--data", required=True, type=Path, help="competition folder or <root>/<class>/*.jpg")
    parser.add_argument(
        "--from-checkpoint", type=Path, help="start from a saved ColpoNet folder instead of a fresh model"
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(COLPONET_RECIPES),
        help="named recipe (train/recipes.py): its settings become the defaults of "
        + ", ".join("--" + name.replace("_", "-") for name in RECIPE_ARGS)
        + "; flags given still win",
    )
    parser.add_argument("--model-size", default="resnet-50", choices=family("colponet").sizes)
    parser.add_argument("--image-size", default=224, type=int, help="side of the model's square input (pixels)")
    parser.add_argument(
        "--split",
        default=list(SPLIT_FRACTIONS),
        type=float,
        nargs=3,
        metavar=("TRAIN", "VALIDATION", "TEST"),
        help="stratified fractions (--seed); a test fraction of 0 evaluates the model on its validation split",
    )
    parser.add_argument("--schedule", default="plateau", choices=SCHEDULES, help="see train/engine.TrainingStage")
    parser.add_argument("--label-smoothing", default=0.0, type=float, help="of the cross-entropy")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="weights in channels-last memory order: faster convolutions on CPUs (oneDNN) and GPUs",
    )
    parser.add_argument(
        "--decode-once",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="decode every photo once into memory instead of every epoch",
    )
    parser.add_argument("--stage1-epochs", default=5, type=float, help="frozen backbone")
    parser.add_argument("--stage1-lr", default=1e-4, type=float)
    parser.add_argument("--stage2-epochs", default=20, type=float, help="everything trained")
    parser.add_argument("--stage2-lr", default=1e-5, type=float)
    parser.add_argument("--augmentation", default="default", choices=CLASSIFICATION_PRESETS)
    parser.add_argument(
        "--class-weights",
        default="balanced",
        choices=("balanced", "none"),
        help="weigh the loss by inverse class frequency of the training split",
    )
    parser.add_argument(
        "--quality-gate",
        default="drop",
        choices=("drop", "list", "off"),
        help="drop blurry training photos, only list them, or skip the gate",
    )
    parser.add_argument(
        "--quality-laplacian-threshold",
        type=float,
        help="quality gate threshold, saved with the processor (default: the processor's, calibrated on 224-px "
        "photos; 100 is the seed work's value for full-resolution photos)",
    )
    parser.add_argument("--quality-fft-threshold", type=float, help="quality gate FFT threshold (default: 0)")
    parser.add_argument(
        "--quality-percentile",
        type=float,
        help="calibrate both quality-gate thresholds to this percentile of the training split's scores, saved with "
        "the processor (overrides --quality-laplacian-threshold and --quality-fft-threshold)",
    )
    parser.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also score the class prior and a colour-and-texture logistic regression (train/colponet_baselines.py) "
        "on the evaluated split, with paired bootstrap intervals, for the card",
    )
    return add_common_args(parser)


def recipe_defaults(recipe) -> dict:
    """A recipe's settings, as the defaults of the arguments they set."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in recipe.to_dict().items() if name in RECIPE_ARGS}  # fmt: skip


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


def main(args: argparse.Namespace) -> dict:
    state = start_run(args)
    if args.stage1_epochs <= 0 and args.stage2_epochs <= 0:
        raise SystemExit("Nothing to train: both --stage1-epochs and --stage2-epochs are 0.")
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

    class_weights = None
    if args.class_weights == "balanced":
        class_weights = [float(w) for w in compute_class_weights(train_labels, len(label_names))]
    model, initialisation = build_model(args, label_names, class_weights)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)

    transform = classification_train_transform(args.augmentation, size=args.image_size)
    dataset_class = DecodedImageDataset if args.decode_once else ImageClassificationDataset
    datasets = {
        name: dataset_class(split_paths, split_labels, processor, transform if name == "train" else None)
        for name, (split_paths, split_labels) in subset.items()
        if split_paths
    }
    stages = [
        TrainingStage("stage1_frozen_backbone", args.stage1_lr, args.stage1_epochs, train_backbone=False,
                      schedule=args.schedule),
        TrainingStage("stage2_full", args.stage2_lr, args.stage2_epochs, train_backbone=True, schedule=args.schedule),
    ]  # fmt: skip
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
            "class_prior": compare(probabilities, class_prior(train_labels_all, len(label_names), len(eval_labels)),
                                   eval_labels, label_names),
            "colour_texture_logistic_regression": compare(
                probabilities, classical_baseline(subset_paths_before_gate, train_labels_all, eval_paths),
                eval_labels, label_names),
        }  # fmt: skip
    eval_results = EvalResults(
        model_type=model.config.model_type,
        label_names=label_names,
        metrics=compute_classification_metrics(eval_labels, probabilities, label_names),
        data={
            "source": published_path(args.data, args),
            "split_fractions": dict(zip(("train", "validation", "test"), args.split)),
            "split_rule": "stratified by class, shuffled with the seed, from every labelled photo of --data",
            "seed": args.seed,
            "class_counts": {name: class_counts(split_labels, label_names) for name, (_, split_labels) in subset.items()},
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


if __name__ == "__main__":
    main(get_args_parser().parse_args())
