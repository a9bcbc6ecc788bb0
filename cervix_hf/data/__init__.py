"""Data readers, splits and PyTorch datasets for cervix_hf training and evaluation."""

from .datasets import ImageClassificationDataset, class_counts, compute_class_weights
from .intel_mobileodt import (
    IMAGE_EXTENSIONS,
    INTEL_MOBILEODT_LABELS,
    ImageFolderRecords,
    read_image_folder,
    read_intel_mobileodt,
)
from .splits import stratified_split

__all__ = [
    "IMAGE_EXTENSIONS",
    "INTEL_MOBILEODT_LABELS",
    "ImageClassificationDataset",
    "ImageFolderRecords",
    "class_counts",
    "compute_class_weights",
    "read_image_folder",
    "read_intel_mobileodt",
    "stratified_split",
]
