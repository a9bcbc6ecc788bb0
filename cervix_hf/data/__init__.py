"""Data readers, splits and PyTorch datasets for cervix_hf training and evaluation."""

from cervix_hf.data.datasets import DecodedImageDataset, ImageClassificationDataset, class_counts, compute_class_weights
from cervix_hf.data.detection import (
    ISBI2014_EDF_LABELS,
    SIPAKMED_LABELS,
    DetectionRecord,
    DetectionRecords,
    guess_detection_format,
    read_coco,
    read_detection_csv,
    read_isbi2014_edf,
    read_sipakmed,
    read_voc,
)
from cervix_hf.data.detection_dataset import DetectionDataset, detection_collate
from cervix_hf.data.detection_transforms import DetectionTransform, RandomRightAngleRotation
from cervix_hf.data.herlev import HerlevRecords, read_herlev, source_image_split
from cervix_hf.data.intel_mobileodt import (
    IMAGE_EXTENSIONS,
    INTEL_MOBILEODT_LABELS,
    INTEL_MOBILEODT_SUBSETS,
    ImageFolderRecords,
    is_intel_mobileodt,
    read_image_folder,
    read_intel_mobileodt,
    read_unlabeled_folder,
)
from cervix_hf.data.prepost import (
    PairDataset,
    PairRecord,
    PairRecords,
    PairTransform,
    case_level_split,
    is_iarc_atlas,
    read_iarc_atlas,
    read_iarc_atlas_types,
    read_pairs_csv,
)
from cervix_hf.data.splits import stratified_split

__all__ = [
    "DetectionDataset",
    "DetectionRecord",
    "DetectionRecords",
    "DetectionTransform",
    "IMAGE_EXTENSIONS",
    "INTEL_MOBILEODT_LABELS",
    "INTEL_MOBILEODT_SUBSETS",
    "ISBI2014_EDF_LABELS",
    "HerlevRecords",
    "DecodedImageDataset",
    "ImageClassificationDataset",
    "ImageFolderRecords",
    "PairDataset",
    "PairRecord",
    "PairRecords",
    "PairTransform",
    "RandomRightAngleRotation",
    "SIPAKMED_LABELS",
    "case_level_split",
    "class_counts",
    "compute_class_weights",
    "is_iarc_atlas",
    "is_intel_mobileodt",
    "detection_collate",
    "guess_detection_format",
    "read_coco",
    "read_detection_csv",
    "read_herlev",
    "read_iarc_atlas",
    "read_iarc_atlas_types",
    "read_image_folder",
    "read_unlabeled_folder",
    "read_intel_mobileodt",
    "read_isbi2014_edf",
    "read_pairs_csv",
    "read_sipakmed",
    "read_voc",
    "source_image_split",
    "stratified_split",
]
