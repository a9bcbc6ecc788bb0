"""Pseudo-labels: a trained ColpoNet (the teacher) labels unlabelled photos, and the photos it is sure of join the
training split of the next model (self-training, "noisy student": the student sees them through the training
augmentation, the teacher saw them without). The student learns either the teacher's class (hard labels) or its
class probabilities (soft labels: distillation on the unlabelled photos).

Only the training split changes: the validation and test photos, and the baselines, stay those of the labelled data.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cervix_hf import ColpoNetForImageClassification, ColpoNetImageProcessor
from cervix_hf.data import DecodedImageDataset

logger = logging.getLogger(__name__)


@dataclass
class PseudoLabels:
    r"""
    Args:
        paths (`list[str]`): the unlabelled photos the teacher is sure of.
        labels (`list[int]`): the teacher's class for each, in the student's class order.
        probabilities (`list[list[float]]`): the teacher's class probabilities for each (its soft labels).
        summary (`dict`): what was labelled and kept (for `eval_results.json` and the card).
    """

    paths: list[str]
    labels: list[int]
    probabilities: list[list[float]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def teacher_probabilities(model, processor, paths: list[str], batch_size: int = 64) -> np.ndarray:
    """Class probabilities of `model` for `paths`, the mean over each photo and its mirror image."""
    dataset = DecodedImageDataset(paths, [0] * len(paths), processor)
    model.eval()
    batches = []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            pixels = torch.stack(
                [dataset[i]["pixel_values"] for i in range(start, min(start + batch_size, len(dataset)))]
            )
            logits = model(pixel_values=pixels).logits + model(pixel_values=pixels.flip(-1)).logits
            batches.append(torch.softmax(logits.float() / 2, dim=-1))
    return torch.cat(batches).numpy()


def pseudo_label(teacher: Path, paths: list[str], label_names: list[str], threshold: float) -> PseudoLabels:
    """
    Labels `paths` with the saved ColpoNet `teacher` and keeps the photos whose top class probability is at least
    `threshold`.

    Raises:
        `SystemExit`: naming `teacher`, when it cannot be loaded or predicts other classes than `label_names`.
    """
    if not 0 <= threshold < 1:
        raise SystemExit(f"--pseudo-label-threshold must be in [0, 1), got {threshold}.")
    try:
        model = ColpoNetForImageClassification.from_pretrained(teacher)
        processor = ColpoNetImageProcessor.from_pretrained(teacher)
    except (OSError, ValueError) as err:
        raise SystemExit(f"--teacher {teacher}: not a saved ColpoNet model folder ({err}).") from None
    teacher_names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    if teacher_names != list(label_names):
        raise SystemExit(f"--teacher {teacher} predicts {teacher_names}, but --data has the classes {label_names}.")
    probabilities = teacher_probabilities(model, processor, paths)
    confidence, predicted = probabilities.max(1), probabilities.argmax(1)
    kept = np.flatnonzero(confidence >= threshold)
    summary = {
        "unlabeled": len(paths),
        "threshold": threshold,
        "kept": int(kept.size),
        "per_class": {name: int((predicted[kept] == index).sum()) for index, name in enumerate(label_names)},
    }
    logger.info("Pseudo-labels: kept %d of %d unlabelled photos (%s).", kept.size, len(paths), summary["per_class"])
    return PseudoLabels(
        [paths[i] for i in kept],
        [int(predicted[i]) for i in kept],
        [[float(p) for p in probabilities[i]] for i in kept],
        summary,
    )
