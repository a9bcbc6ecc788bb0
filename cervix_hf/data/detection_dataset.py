"""PyTorch dataset of detection records: loaded, augmented images with their boxes, for the detector's processor."""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from cervix_hf.data.detection import DetectionRecords
from cervix_hf.io.images import load_image


class DetectionDataset(Dataset):
    r"""
    Detection records as raw samples, one dict per image:

    - `"image"`: the RGB `PIL.Image.Image`, after augmentation;
    - `"boxes"`: `torch.FloatTensor` of shape `[N, 4]`, `(xmin, ymin, xmax, ymax)` in the image's pixels;
    - `"class_labels"`: `torch.LongTensor` of shape `[N]`, 0-based class indices into `label_names`;
    - `"image_id"`: `int`, the record's `image_id`;
    - `"path"`: `str`, the image file.

    Resizing and normalisation belong to the detector's image processor, which takes a list of these samples.

    Args:
        records (`DetectionRecords`):
            Images and their boxes, e.g. from [`read_coco`] or [`read_isbi2014_edf`].
        transform (`Callable`, *optional*):
            Augmentation called as `transform(image, boxes, labels)` and returning `(image, boxes, labels)`, such as a
            [`DetectionTransform`] from [`detection_train_transform`].
    """

    def __init__(self, records: DetectionRecords, transform: Callable | None = None):
        self.records = records.records
        self.label_names = list(records.label_names)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        image, boxes, labels = load_image(record.image_path), record.boxes, record.labels
        if self.transform is not None:
            image, boxes, labels = self.transform(image, boxes, labels)
        return {
            "image": image,
            "boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            "class_labels": torch.as_tensor(labels, dtype=torch.int64),
            "image_id": record.image_id,
            "path": record.image_path,
        }


def detection_collate(samples: list[dict]) -> list[dict]:
    """Batches [`DetectionDataset`] samples as a list: their images differ in size until the processor resizes them."""
    return list(samples)
