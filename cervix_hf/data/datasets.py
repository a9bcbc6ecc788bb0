"""PyTorch dataset of labelled image files, and the class statistics used to weight the training loss."""

from typing import Callable, Optional, Sequence

import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset

from ..image_io import load_image


class ImageClassificationDataset(Dataset):
    r"""
    Labelled image files as model inputs: `{"pixel_values": FloatTensor[C, H, W], "labels": int}` per item.

    Args:
        paths (`Sequence[str]`):
            Image files, read with [`load_image`] (RGB).
        labels (`Sequence[int]`):
            Class index of each image.
        image_processor (`Callable`):
            Called as `image_processor(images=[image], return_tensors="pt")`; it owns resizing and normalisation.
        transform (`Callable[[PIL.Image.Image], PIL.Image.Image]`, *optional*):
            Augmentation applied to the loaded image before `image_processor`.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        image_processor: Callable,
        transform: Optional[Callable[[PIL.Image.Image], PIL.Image.Image]] = None,
    ):
        if len(paths) != len(labels):
            raise ValueError(f"paths and labels must have the same length, got {len(paths)} and {len(labels)}.")
        self.paths = list(paths)
        self.labels = [int(label) for label in labels]
        self.image_processor = image_processor
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        image = load_image(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        pixel_values = self.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixel_values, "labels": self.labels[index]}


def class_counts(labels: Sequence[int], label_names: Sequence[str]) -> dict[str, int]:
    r"""
    Number of samples of each class, zero included, in the order of `label_names`.

    Args:
        labels (`Sequence[int]`):
            Class index of each sample.
        label_names (`Sequence[str]`):
            Class names, in class-index order.
    """
    return dict(zip(label_names, _count_labels(labels, len(label_names)).tolist()))


def compute_class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    r"""
    Inverse-frequency class weights normalised to mean 1, for `torch.nn.CrossEntropyLoss(weight=...)` on imbalanced
    data (the Intel & MobileODT training set is about 17% / 53% / 30% Type_1 / Type_2 / Type_3).

    Args:
        labels (`Sequence[int]`):
            Class index of each training sample.
        num_classes (`int`):
            Number of classes.

    Returns:
        `torch.FloatTensor` of shape `(num_classes,)`.

    Raises:
        `ValueError`: when a class has no sample (its weight would be infinite).
    """
    counts = _count_labels(labels, num_classes)
    if (counts == 0).any():
        raise ValueError(
            f"Classes {np.flatnonzero(counts == 0).tolist()} have no sample in labels: cannot weight them by inverse "
            "frequency. Check the labels or the num_classes."
        )
    inverse_frequency = 1.0 / counts
    return torch.tensor(inverse_frequency / inverse_frequency.mean(), dtype=torch.float32)


def _count_labels(labels: Sequence[int], num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be class indices in [0, {num_classes}), got {sorted(set(labels.tolist()))}.")
    return np.bincount(labels, minlength=num_classes)
