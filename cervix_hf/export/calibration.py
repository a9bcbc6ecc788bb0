"""Real inputs for an export's calibration and check, read from a data folder of the kind the model sees (each
model's engine knows which: `PredictionEngine.calibration_items`)."""

from pathlib import Path

from cervix_hf.registry import family


def calibration_items(model_type: str, data: Path, processor, limit: int) -> list:
    """Up to `limit` real inputs of the `model_type` model from `data`, evenly spread over it: photos its quality gate
    accepts, pairs, or (image, target) pairs for the detector."""
    record = family(model_type)
    return record.engine.calibration_items(record, Path(data), processor, limit)
