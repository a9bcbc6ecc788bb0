"""Fine-tune ColpoNet (cervix type 1/2/3) on colposcopy photos.

Reproduce the published model (Intel & MobileODT competition data, `microsoft/resnet-50` backbone)::

    python -m train.train_colponet --data /path/to/intel-mobileodt --output-dir checkpoints/colponet

Several GPUs: ``torchrun --nproc_per_node 4 -m train.train_colponet ...`` (or ``accelerate launch -m ...``).

Smoke run on the real sample beside the project (a tiny backbone, under a minute on 2 CPU cores)::

    python -m train.train_colponet --data ../shared/data/intel-mobileodt-sample --output-dir runs/colponet-smoke \
        --model-size tiny --stage1-epochs 2 --stage2-epochs 2 --batch-size 8

Data: the competition layout (`train/Type_N/`, `additional_Type_N_v2/`, `test/` + `solution_stg1_release.csv`),
or any `<root>/<class name>/*.jpg` folder. It is split 70:20:10 (stratified, `--seed`); blurry training photos
are dropped by the quality gate; the held-out 10% gives `eval_results.json`.

Training runs in two stages, as in the seed work: the backbone frozen at lr 1e-4, then everything at 1e-5, each
with early stopping on the validation log loss (the competition's metric) and reduce-on-plateau.
"""

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from cervix_hf import ColpoNetForImageClassification, ColpoNetImageProcessor, load_pretrained_backbone
from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import (
    ImageClassificationDataset,
    class_counts,
    compute_class_weights,
    read_image_folder,
    read_intel_mobileodt,
    stratified_split,
)
from cervix_hf.metrics import compute_classification_metrics
from cervix_hf.model_presets import MODEL_SIZES, colponet_config
from cervix_hf.quality_filter import filter_by_quality
from cervix_hf.eval_results import EvalResults
from .engine import (
    TrainingStage,
    add_common_args,
    finish_run,
    on_main_process,
    published_path,
    run_stages,
    start_run,
    training_summary,
)
from .presets import CLASSIFICATION_PRESETS, classification_train_transform

logger = logging.getLogger("train.train_colponet")

SPLIT_FRACTIONS = (0.7, 0.2, 0.1)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], add_help=add_help, formatter_class=DefaultsHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="competition folder or <root>/<class>/*.jpg")
    parser.add_argument(
        "--from-checkpoint", type=Path, help="start from a saved ColpoNet folder instead of a fresh model"
    )
    parser.add_argument("--model-size", default="resnet-50", choices=MODEL_SIZES)
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
    return add_common_args(parser)


def load_records(data: Path):
    """Image paths and labels from the competition layout, else from a `<root>/<class>/` folder."""
    if not data.is_dir():
        raise SystemExit(f"--data {data}: no such folder.")
    if (data / "train").is_dir() or any(data.glob("additional_Type_*")):
        return read_intel_mobileodt(data)
    return read_image_folder(data)


def build_model(args: argparse.Namespace, label_names: list[str], class_weights: list[float] | None):
    if args.from_checkpoint:
        model = ColpoNetForImageClassification.from_pretrained(args.from_checkpoint, class_weights=class_weights)
        if list(model.config.id2label.values()) != label_names:
            raise SystemExit(
                f"--from-checkpoint {args.from_checkpoint} predicts {list(model.config.id2label.values())}, "
                f"but --data has the classes {label_names}."
            )
        return model
    config = colponet_config(
        args.model_size,
        id2label=dict(enumerate(label_names)),
        class_weights=class_weights,
        **({"use_pretrained_backbone": False} if args.no_pretrained_backbone else {}),
    )
    model = ColpoNetForImageClassification(config)
    load_pretrained_backbone(model, require=args.require_pretrained_backbone)
    return model


def build_processor(args: argparse.Namespace) -> ColpoNetImageProcessor:
    """The checkpoint's processor (or a new one), with the quality-gate thresholds given on the command line."""
    overrides = {
        "quality_laplacian_threshold": args.quality_laplacian_threshold,
        "quality_fft_threshold": args.quality_fft_threshold,
    }
    overrides = {name: value for name, value in overrides.items() if value is not None}
    if args.from_checkpoint:
        return ColpoNetImageProcessor.from_pretrained(args.from_checkpoint, **overrides)
    return ColpoNetImageProcessor(**overrides)


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


def main(args: argparse.Namespace) -> dict:
    state = start_run(args)
    if args.stage1_epochs <= 0 and args.stage2_epochs <= 0:
        raise SystemExit("Nothing to train: both --stage1-epochs and --stage2-epochs are 0.")
    records = load_records(args.data)
    label_names = list(records.label_names)
    paths, labels = list(records.paths), list(records.labels)
    splits = stratified_split(labels, fractions=SPLIT_FRACTIONS, seed=args.seed)
    subset = {name: ([paths[i] for i in idx], [labels[i] for i in idx]) for name, idx in splits.items()}

    quality_summary = {"mode": args.quality_gate, "rejected": 0}
    train_paths, train_labels = subset["train"]
    processor = build_processor(args)
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
    model = build_model(args, label_names, class_weights)

    transform = classification_train_transform(args.augmentation)
    datasets = {
        name: ImageClassificationDataset(split_paths, split_labels, processor, transform if name == "train" else None)
        for name, (split_paths, split_labels) in subset.items()
    }
    stages = [
        TrainingStage("stage1_frozen_backbone", args.stage1_lr, args.stage1_epochs, train_backbone=False),
        TrainingStage("stage2_full", args.stage2_lr, args.stage2_epochs, train_backbone=True),
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
    )
    prediction = trainer.predict(datasets["test"])  # on every process: each predicts its share, then they gather
    if not state.is_main_process:  # the main process alone writes the model, its evaluation and its card
        return {}
    probabilities = torch.softmax(torch.as_tensor(prediction.predictions), dim=-1).numpy()
    test_labels = np.asarray(subset["test"][1])
    eval_results = EvalResults(
        model_type=model.config.model_type,
        label_names=label_names,
        metrics=compute_classification_metrics(test_labels, probabilities, label_names),
        data={
            "source": published_path(args.data, args),
            "split_fractions": dict(zip(("train", "validation", "test"), SPLIT_FRACTIONS)),
            "seed": args.seed,
            "class_counts": {name: class_counts(split_labels, label_names) for name, (_, split_labels) in subset.items()},
            "quality_gate": {
                **quality_summary,
                "laplacian_threshold": processor.quality_laplacian_threshold,
                "fft_threshold": processor.quality_fft_threshold,
            },
        },
        training=training_summary(args, stage_summaries, class_weights=class_weights),
        extra={
            "predictions": [
                {
                    "path": published_path(path, args),
                    "label": label_names[label],
                    "probabilities": dict(zip(label_names, map(float, probs))),
                }
                for path, label, probs in zip(subset["test"][0], test_labels, probabilities)
            ],
        },
    )
    finish_run(model, processor, args.output_dir, eval_results, args)
    logger.info(
        "Held-out accuracy %.3f, log loss %.3f. Model and eval_results.json in %s.",
        eval_results.metrics["accuracy"],
        eval_results.metrics["log_loss"],
        args.output_dir,
    )
    return eval_results.to_dict()


if __name__ == "__main__":
    main(get_args_parser().parse_args())
