"""Data readers, splits and PyTorch datasets for cervix_hf training and evaluation.

The names below are imported on first use (PEP 562): a reader costs no torch import until a dataset is built."""

import importlib

_EXPORTS = {
    "cervix_hf.data.datasets": (
        "DecodedImageDataset",
        "ImageClassificationDataset",
        "SeededAugmentation",
        "class_counts",
        "compute_class_weights",
    ),
    "cervix_hf.data.detection": (
        "ISBI2014_EDF_LABELS",
        "SIPAKMED_LABELS",
        "DetectionRecord",
        "DetectionRecords",
        "guess_detection_format",
        "read_coco",
        "read_detection_csv",
        "read_isbi2014_edf",
        "read_sipakmed",
        "read_voc",
        "DETECTION_FORMATS",
        "read_detection_data",
    ),
    "cervix_hf.data.detection_dataset": (
        "DetectionDataset",
        "detection_collate",
    ),
    "cervix_hf.data.detection_transforms": (
        "DetectionTransform",
        "RandomRightAngleRotation",
    ),
    "cervix_hf.data.herlev": (
        "HerlevRecords",
        "read_herlev",
        "source_image_split",
    ),
    "cervix_hf.data.intel_mobileodt": (
        "IMAGE_EXTENSIONS",
        "INTEL_MOBILEODT_LABELS",
        "INTEL_MOBILEODT_SUBSETS",
        "ImageFolderRecords",
        "is_intel_mobileodt",
        "read_image_folder",
        "read_intel_mobileodt",
        "read_unlabeled_folder",
    ),
    "cervix_hf.data.prepost": (
        "PairDataset",
        "PairRecord",
        "PairRecords",
        "PairTransform",
        "case_level_split",
        "is_iarc_atlas",
        "read_iarc_atlas",
        "read_iarc_atlas_types",
        "read_pairs_csv",
    ),
    "cervix_hf.data.splits": ("stratified_split",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'cervix_hf.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
