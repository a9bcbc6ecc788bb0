"""Real inputs for an export's calibration and check, read from a data folder of the kind the model sees."""

from pathlib import Path

import numpy as np

from cervix_hf.data import (
    IMAGE_EXTENSIONS,
    guess_detection_format,
    read_iarc_atlas,
    read_isbi2014_edf,
    read_pairs_csv,
    read_sipakmed,
)
from cervix_hf.io.images import ImageLoadError
from cervix_hf.prediction.inference import load_model_input


def detection_items(data: Path, limit: int) -> list[tuple]:
    """Up to `limit` (image, target) pairs from `data`, evenly spread: targets from an ISBI 2014 or SIPaKMeD
    layout's boxes, `None` for a plain folder of images."""
    data_format = guess_detection_format(data)
    if data_format is None:
        candidates = [(path, None) for path in sorted(data.rglob("*")) if path.suffix.lower() in IMAGE_EXTENSIONS]
    else:
        records = read_isbi2014_edf(data) if data_format == "isbi2014" else read_sipakmed(data)
        candidates = [
            (
                record.image_path,
                {
                    "boxes": np.asarray(record.boxes, dtype=np.float32).reshape(-1, 4),
                    "labels": np.asarray(record.labels, dtype=np.int64),
                },
            )
            for record in records.records
        ]
    items = []
    for path, target in candidates[:: max(1, len(candidates) // max(1, limit))][:limit]:
        try:
            image = load_model_input(path, "cell_detector", reduce=False)
        except ImageLoadError:
            continue
        items.append((image, target))
    return items


def calibration_items(model_type: str, data: Path, processor, limit: int) -> list:
    """Up to `limit` real inputs from `data`, evenly spread over it: photos the quality gate accepts, pairs, or
    (image, target) pairs for the detector."""
    if model_type == "cell_detector":
        return detection_items(data, limit)
    if model_type == "prepost_fusion":
        records = read_pairs_csv(data) if data.suffix.lower() == ".csv" else read_iarc_atlas(data)
        candidates = [(record.pre_path, record.post_path) for record in records.records]
    else:
        candidates = sorted(path for path in data.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS)
    step = max(1, len(candidates) // max(1, limit))
    items = []
    for candidate in candidates[::step]:
        try:
            if model_type == "prepost_fusion":
                item = tuple(load_model_input(view, model_type) for view in candidate)
            else:
                item = load_model_input(candidate, model_type)
                if hasattr(processor, "assess_quality") and not processor.assess_quality(item)[0].is_acceptable:
                    continue  # the model never sees photos its quality gate rejects
        except ImageLoadError:
            continue
        items.append(item)
        if len(items) == limit:
            break
    return items
