"""The cell classifier's training run behind `train.train_cell_classifier` (its arguments, recipes and `--help` live
there): the Herlev cells and their split by slide image, the training loop, the operating points, the evaluation
against the baselines and the saved model folder."""

import argparse
import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import set_seed

from cervix_hf import CellClassifierForImageClassification, CellClassifierImageProcessor
from cervix_hf.data import class_counts, read_herlev, source_image_split
from cervix_hf.data.herlev import HERLEV_SPLIT_FRACTIONS
from cervix_hf.evaluation.metrics import select_operating_points, wilson_interval
from cervix_hf.evaluation.metrics.cell_classification import evaluate_grouped_classifier, group_probability
from cervix_hf.evaluation.results import EvalResults
from cervix_hf.io.files import EVAL_RESULTS_FILE
from cervix_hf.io.images import load_image
from cervix_hf.models.cell_classifier import OPERATING_POINT_NAMES

from .arguments import decision_threshold
from .engine import NonFiniteLossError, WeightAverage, finish_run, published_path
from .train_cell_classifier import FAMILY, CellRecipe, get_args_parser, recipe_of

logger = logging.getLogger("train.train_cell_classifier")


def decode(paths: list[str], processor: CellClassifierImageProcessor) -> torch.Tensor:
    """Every image, resized by the processor and rescaled to [0, 1] (not normalised): `(N, 3, size, size)`."""
    images = [load_image(path) for path in paths]
    return processor(images=images, do_normalize=False, return_tensors="pt")["pixel_values"].float()


def normalise(images: torch.Tensor, processor: CellClassifierImageProcessor) -> torch.Tensor:
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    return (images - mean) / std


def augment(images: torch.Tensor, recipe: CellRecipe, generator: torch.Generator) -> torch.Tensor:
    """A batch in [0, 1] (`(N, 3, H, W)`) augmented per cell: rotation, flip, zoom and shift in one bilinear
    resampling (the border reflected, as the letterboxed cells' background continues), then colour jitter."""
    n = images.shape[0]

    def uniform(low: float, high: float, *shape) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    angle = uniform(0, 2 * math.pi) if recipe.rotation else torch.zeros(n)
    scale = uniform(1 - recipe.zoom, 1 + recipe.zoom)
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if recipe.flip else torch.ones(n)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * mirror, -sin, uniform(-recipe.shift, recipe.shift)], dim=1),
            torch.stack([sin * mirror, cos, uniform(-recipe.shift, recipe.shift)], dim=1),
        ],
        dim=1,
    )
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    images = nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    jitter = recipe.colour_jitter
    if jitter > 0:
        grey = images.mean(dim=1, keepdim=True)
        images = grey + (images - grey) * uniform(1 - jitter, 1 + jitter, 1, 1, 1)  # saturation
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = mean + (images - mean) * uniform(1 - jitter, 1 + jitter, 1, 1, 1)  # contrast
        images = images * uniform(1 - jitter, 1 + jitter, 1, 1, 1)  # brightness
        images = images * uniform(1 - jitter / 2, 1 + jitter / 2, 3, 1, 1)  # stain
    return images.clamp(0, 1)


def learning_rate_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def train(model, images: torch.Tensor, labels: torch.Tensor, recipe: CellRecipe, processor, seed: int, quiet: bool):
    """Trains `model` in place on `images` (in [0, 1]) with the recipe; loads the weight average at the end. Returns
    the summary of the run (the one stage of `eval_results.json`)."""
    generator = torch.Generator().manual_seed(seed)
    memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    decay, no_decay = [], []
    for parameter in model.parameters():
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.learning_rate,
    )
    steps_per_epoch = math.ceil(len(labels) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    warmup = int(recipe.warmup_epochs * steps_per_epoch)
    average = WeightAverage(recipe.ema_decay) if recipe.ema_decay > 0 else None
    log_history, step, started = [], 0, time.monotonic()
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(labels), generator=generator)
        losses = []
        for start in range(0, len(order), recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            if len(batch) < 2:  # batch norm needs two cells
                continue
            for group in optimiser.param_groups:
                group["lr"] = learning_rate_at(step, total, warmup, recipe.learning_rate)
            pixels = normalise(augment(images[batch], recipe, generator), processor).to(memory_format=memory_format)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
                loss = model(pixel_values=pixels, labels=labels[batch]).loss
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"Non-finite training loss ({loss.item()}) at step {step}: lower --learning-rate, or check the "
                    "data for corrupt images or labels."
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            if average is not None:
                average.update(model, step)
            losses.append(loss.item())
        entry = {
            "epoch": epoch + 1,
            "step": step,
            "loss": float(np.mean(losses)),
            "learning_rate": group["lr"],
            "seconds": round(time.monotonic() - started, 1),
        }
        log_history.append(entry)
        if not quiet or (epoch + 1) % 10 == 0 or epoch + 1 == recipe.epochs:
            logger.info("epoch %d/%d: loss %.4f (%.0f s)", epoch + 1, recipe.epochs, entry["loss"], entry["seconds"])
    if average is not None:
        model.load_state_dict(average.state)
    model.to(memory_format=torch.contiguous_format).eval()
    return {
        "stage": "train",
        "name": "train",
        "learning_rate": recipe.learning_rate,
        "epochs": recipe.epochs,
        "train_backbone": True,
        "batch_size": recipe.batch_size,
        "global_step": step,
        "epochs_run": float(recipe.epochs),
        "train_loss": float(np.mean([entry["loss"] for entry in log_history])),
        "best_metric": None,
        "metric_for_best_model": "none (a fixed schedule; the weight average is kept)",
        "best_checkpoint": None,
        "log_history": log_history,
        "train_seconds": round(time.monotonic() - started, 1),
    }


@torch.inference_mode()
def predict_probabilities(
    model, images: torch.Tensor, processor, recipe: CellRecipe, batch_size: int = 64
) -> np.ndarray:
    """Class probabilities of `images` (in [0, 1]); with `test_time_flips`, the mean over the four flips of each."""
    flips = [(), (3,), (2,), (2, 3)] if recipe.test_time_flips else [()]
    rows = []
    for start in range(0, len(images), batch_size):
        pixels = normalise(images[start : start + batch_size], processor)
        total = 0
        for dims in flips:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
                logits = model(pixel_values=pixels.flip(dims) if dims else pixels).logits
            total = total + logits.float().softmax(dim=-1)
        rows.append(total / len(flips))
    return torch.cat(rows).numpy().astype(np.float64)


def threshold_from_argument(value: str, config) -> float:
    """`--decision-threshold`: an operating point's name (chosen on validation, saved in `config`) or a number."""
    return decision_threshold(value, config, OPERATING_POINT_NAMES)


def split_summary(
    references, probabilities, label_names, groups, positive_group, operating_points, majority: int
) -> dict:
    """The figures the recipe's targets are stated in, on one split: the 7-class accuracy and, at each operating
    point, the normal/abnormal accuracy, sensitivity and specificity, each with its 95% Wilson interval; and the
    baselines that need no image: the training split's most frequent class (`majority`), and "abnormal" for all."""
    references = np.asarray(references)
    correct = int((probabilities.argmax(axis=1) == references).sum())
    abnormal = np.isin(references, [label_names.index(name) for name in groups[positive_group]])
    scores = group_probability(probabilities, label_names, groups[positive_group])
    summary = {
        "num_cases": len(references),
        "accuracy": correct / len(references),
        "accuracy_interval": wilson_interval(correct, len(references)),
        "points": {},
    }
    for name, hits, extra in (
        ("majority_class", int((references == majority).sum()), {"label": label_names[majority]}),
        ("all_abnormal", int(abnormal.sum()), {}),
    ):
        summary[name] = {
            **extra,
            "estimate": hits / len(references),
            "successes": hits,
            "total": len(references),
            "wilson": wilson_interval(hits, len(references)),
        }
    for name, point in operating_points.items():
        if point["threshold"] is None:
            continue
        called = scores >= point["threshold"] * (1 - 1e-9)
        counts = {
            "accuracy": (int((called == abnormal).sum()), len(references)),
            "sensitivity": (int((called & abnormal).sum()), int(abnormal.sum())),
            "specificity": (int((~called & ~abnormal).sum()), int((~abnormal).sum())),
        }
        summary["points"][name] = {"threshold": point["threshold"]} | {
            measure: {
                "estimate": hits / total,
                "successes": hits,
                "total": total,
                "wilson": wilson_interval(hits, total),
            }
            for measure, (hits, total) in counts.items()
        }
    return summary


def cell_predictions(records, probabilities: np.ndarray, args) -> list[dict]:
    names = records.label_names
    return [
        {
            "image": published_path(path, args),
            "source_image": source,
            "label": names[label],
            "probabilities": dict(zip(names, map(float, row))),
        }
        for path, label, source, row in zip(records.paths, records.labels, records.source_images, probabilities)
    ]


def finished_run(folder: Path, recipe: CellRecipe, args: argparse.Namespace):
    """The model of a finished run of `recipe` (same settings and seed) in eval mode, and its training summary."""
    trained = json.loads((folder / EVAL_RESULTS_FILE).read_text())
    if trained["training"].get("settings") != asdict(recipe) or trained["data"].get("seed") != args.seed:
        raise SystemExit(f"--weights-from {folder}: that run used other settings or another seed than this command.")
    model = CellClassifierForImageClassification.from_pretrained(
        folder, label_smoothing=recipe.label_smoothing, classifier_dropout=recipe.classifier_dropout
    )
    model.config.operating_points, model.config.decision_threshold = None, 0.5  # chosen again below
    return model.eval(), trained["training"]["stages"][0]


def published_command(args: argparse.Namespace) -> str:
    """The command that reproduces this run, as the card prints it: the flags that differ from their defaults, with
    the data and output folders named as the run's files name them (`published_path`)."""
    defaults = vars(get_args_parser().parse_args(["--data", "-", "--output-dir", "-"]))
    words = ["cervix-hf", "train", "cell_classifier"]
    for name, value in vars(args).items():
        if name == "weights_from":
            continue  # the weights of a run of this same command
        if name in ("data", "output_dir"):
            words += [f"--{name.replace('_', '-')}", published_path(value, args) if name == "data" else str(value)]
        elif value != defaults.get(name):
            flag = f"--{name.replace('_', '-')}"
            words += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
    return " ".join(words)


def build_model(recipe: CellRecipe) -> CellClassifierForImageClassification:
    config = FAMILY.config(
        recipe.model_size, label_smoothing=recipe.label_smoothing, classifier_dropout=recipe.classifier_dropout
    )
    return CellClassifierForImageClassification(config)


def run(args: argparse.Namespace) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = recipe_of(args)
    set_seed(args.seed)
    started = time.monotonic()
    records = read_herlev(args.data)
    splits = {name: records.select(indices) for name, indices in source_image_split(records, seed=args.seed).items()}
    processor = CellClassifierImageProcessor(size={"height": recipe.image_size, "width": recipe.image_size})
    images = {name: decode(split.paths, processor) for name, split in splits.items()}
    logger.info("Decoded %d cells at %d px in %.0f s.", len(records), recipe.image_size, time.monotonic() - started)
    if args.weights_from:
        model, stage = finished_run(args.weights_from, recipe, args)
    else:
        model = build_model(recipe)
        stage = train(
            model,
            images["train"],
            torch.tensor(splits["train"].labels),
            recipe,
            processor,
            args.seed,
            quiet=args.no_progress_bar,
        )
    probabilities = {
        name: predict_probabilities(model, images[name], processor, recipe) for name in ("validation", "test")
    }
    config, names = model.config, list(records.label_names)
    negative, positive = config.group_names
    validation = splits["validation"]
    abnormal = np.isin(validation.labels, [names.index(name) for name in config.label_groups[positive]])
    scores = group_probability(probabilities["validation"], names, config.label_groups[positive])
    operating_points = select_operating_points(
        abnormal.astype(int), scores, args.target_sensitivity, args.target_specificity
    )
    config.operating_points = operating_points
    config.decision_threshold = threshold_from_argument(args.decision_threshold, config)
    metrics = evaluate_grouped_classifier(
        splits["test"].labels,
        probabilities["test"],
        names,
        config.label_groups,
        positive,
        config.decision_threshold,
        operating_points,
    )
    majority = int(np.bincount(splits["train"].labels, minlength=len(names)).argmax())
    summaries = {
        name: split_summary(
            splits[name].labels, probabilities[name], names, config.label_groups, positive, operating_points, majority
        )
        for name in ("validation", "test")
    }
    eval_results = EvalResults(
        model_type=config.model_type,
        label_names=names,
        metrics=metrics,
        data={
            "source": published_path(args.data, args),
            "dataset": "herlev",
            "split_fractions": dict(zip(("train", "validation", "test"), HERLEV_SPLIT_FRACTIONS)),
            "split_by": "source_image",
            "seed": args.seed,
            "class_counts": {name: class_counts(split.labels, names) for name, split in splits.items()},
            "source_images": {name: len(set(split.source_images)) for name, split in splits.items()},
        },
        training={
            "stages": [stage],
            "recipe": args.recipe,
            "command": published_command(args),
            "settings": asdict(recipe),
            "augmentation": f"recipe {args.recipe}",
            "batch_size": recipe.batch_size,
            "model_size": recipe.model_size,
            "decision_threshold": args.decision_threshold,
            "train_seconds": stage["train_seconds"],
            "weights_from": published_path(args.weights_from, args) if args.weights_from else None,
        },
        extra={
            "label_groups": config.label_groups,
            "positive_group": positive,
            "summary": summaries,
            "predictions": cell_predictions(splits["test"], probabilities["test"], args),
            # the scores the operating points were chosen on, so anyone can choose them again
            "validation_predictions": cell_predictions(validation, probabilities["validation"], args),
        },
    )
    finish_run(model, processor, args.output_dir, eval_results, args)
    for name, summary in summaries.items():
        point = summary["points"].get("screening", {})
        logger.info(
            "%s (%d cells): 7-class accuracy %.3f %s; at the screening point %.3f: normal/abnormal accuracy %.3f %s, "
            "sensitivity %.3f %s, specificity %.3f %s.",
            name,
            summary["num_cases"],
            summary["accuracy"],
            _interval(summary["accuracy_interval"]),
            point.get("threshold", float("nan")),
            *(
                value
                for measure in ("accuracy", "sensitivity", "specificity")
                for value in (point[measure]["estimate"], _interval(point[measure]["wilson"]))
            ),
        )
    logger.info(
        "Trained in %.0f s; %.0f s in all. Saved in %s.",
        stage["train_seconds"],
        time.monotonic() - started,
        args.output_dir,
    )
    return eval_results.to_dict()


def _interval(bounds) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"
