"""PyTorch datasets of labelled image files (read per item, or decoded once into memory), and the class statistics used
to weight the training loss."""

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset

from cervix_hf.io.images import load_image


class SeededAugmentation:
    """
    Augmentation draws that depend on the run's seed, the epoch and the item alone: with `seed` set, each item's
    transform runs on torch's random generator seeded from `(seed, epoch, index)` (and the generator's state is put
    back afterwards), so the same command draws the same augmentations whatever the number of data-loading workers,
    and a different draw every epoch. Without `seed`, the transform draws from torch's generator as it stands (each
    worker's own). The training loop calls `set_epoch` before each epoch (`train.engine.run_stages`).
    """

    seed: int | None = None
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _augment(self, transform: Callable, image, index: int):
        if self.seed is None:
            return transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, self.epoch, index)) % 2**63)
            return transform(image)


class ImageClassificationDataset(SeededAugmentation, Dataset):
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
        seed (`int`, *optional*):
            Seeds each item's augmentation from `(seed, epoch, index)` ([`SeededAugmentation`]).
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        image_processor: Callable,
        transform: Callable[[PIL.Image.Image], PIL.Image.Image] | None = None,
        seed: int | None = None,
    ):
        if len(paths) != len(labels):
            raise ValueError(f"paths and labels must have the same length, got {len(paths)} and {len(labels)}.")
        self.paths = list(paths)
        self.labels = [int(label) for label in labels]
        self.image_processor = image_processor
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        image = load_image(self.paths[index])
        if self.transform is not None:
            image = self._augment(self.transform, image, index)
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


class DecodedImageDataset(SeededAugmentation, Dataset):
    r"""
    Labelled image files decoded once, into memory, as model inputs: `{"pixel_values": FloatTensor[C, H, W],
    "labels": int}` per item, like [`ImageClassificationDataset`] without reading a file per item.

    Without `transform` (evaluation), each image goes through `image_processor` once, when the dataset is built, so
    its inputs are exactly those of prediction. With `transform` (training), each image is kept as a
    `cache_size` x `cache_size` uint8 tensor; an item is the transform of that tensor (torchvision v2 transforms
    accept tensors), resized to the processor's size when the transform leaves another size, then rescaled to
    [0, 1] and normalised with the processor's mean and standard deviation.

    Args:
        paths (`Sequence[str]`):
            Image files, read with [`load_image`] (RGB).
        labels (`Sequence[int]`):
            Class index of each image.
        image_processor (`BaseImageProcessor`):
            The model's processor: its `size`, `image_mean`, `image_std` and, without `transform`, its call.
        transform (`Callable[[torch.Tensor], torch.Tensor]`, *optional*):
            Augmentation of a uint8 `[C, H, W]` tensor.
        cache_size (`int`, *optional*, defaults to 1.25 x the processor's height):
            Side of the kept training images, larger than the model's input so that random crops keep detail.
        workers (`int`, *optional*, defaults to 2):
            Threads decoding the files.
        soft_labels (`Sequence[Sequence[float]]`, *optional*):
            A class-probability vector per image (a teacher's, for distillation): an item's `"labels"` is then that
            `FloatTensor[num_labels]` instead of the class index, for a loss with probability targets.
        seed (`int`, *optional*):
            Seeds each item's augmentation from `(seed, epoch, index)` ([`SeededAugmentation`]).
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        image_processor,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cache_size: int | None = None,
        workers: int = 2,
        soft_labels: Sequence[Sequence[float]] | None = None,
        seed: int | None = None,
    ):
        if len(paths) != len(labels):
            raise ValueError(f"paths and labels must have the same length, got {len(paths)} and {len(labels)}.")
        if soft_labels is not None and len(soft_labels) != len(paths):
            raise ValueError(f"soft_labels must have one vector per path, got {len(soft_labels)} for {len(paths)}.")
        self.paths = list(paths)
        self.labels = [int(label) for label in labels]
        self.soft_labels = None if soft_labels is None else torch.tensor(soft_labels, dtype=torch.float32)
        self.seed = seed
        self.transform = transform
        self.size = (int(image_processor.size["height"]), int(image_processor.size["width"]))
        self.mean = torch.tensor(image_processor.image_mean).view(-1, 1, 1)
        self.std = torch.tensor(image_processor.image_std).view(-1, 1, 1)
        side = cache_size or round(1.25 * self.size[0])

        def decode(path: str) -> torch.Tensor:
            image = load_image(path)
            if transform is None:
                return image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
            resized = image.resize((side, side), PIL.Image.Resampling.BILINEAR)
            return torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()

        with ThreadPoolExecutor(max(1, workers)) as pool:
            self.images = list(pool.map(decode, self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        if self.transform is not None:
            image = self._augment(self.transform, image, index)
            if tuple(image.shape[-2:]) != self.size:
                image = torch.nn.functional.interpolate(
                    image[None].float(), size=self.size, mode="bilinear", antialias=True
                )[0]
            image = (image.float() / 255.0 - self.mean) / self.std
        label = self.labels[index] if self.soft_labels is None else self.soft_labels[index]
        return {"pixel_values": image, "labels": label}
