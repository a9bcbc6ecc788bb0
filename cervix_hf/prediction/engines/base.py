"""What every model's prediction engine shares: its record, its row columns, rows of one input, and the checks that
tell a whole row from one cut short (`cervix-hf predict --resume`)."""

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from cervix_hf.data.intel_mobileodt import IMAGE_EXTENSIONS
from cervix_hf.io.images import ImageLoadError
from cervix_hf.prediction.inference import load_model_input, model_device
from cervix_hf.registry import ModelFamily


class PredictionEngine:
    r"""
    One model's prediction path, as its record names it (`ModelFamily.engine_ref`): batch prediction, `evaluate`
    and the app's Batch tab run a model through it and only write or show what it returns.

    A subclass sets `columns` and implements [`predict`] and [`is_complete`]; an engine with several rows per input
    (the detector: one per cell and a summary) overrides [`completed_keys`].

    Args:
        record (`ModelFamily`): the model's record.
        model, processor: the loaded model (any runtime) and its processor.
        ignore_quality_gate (`bool`): classify what a quality gate rejects too.
        threshold (`float`, *optional*): the model's score or decision threshold (default: its own).
        operating_point (`str`, *optional*): a named operating point of the model.
        max_decoded_pixels (`int`, *optional*): the decoding budget of one image (`load_image`).
        open_input (`Callable[[str], object]`, *optional*): what an input's name is read from (a path, or a binary
            file object); by default the name is the path. It may raise `ImageLoadError`, which becomes the row's
            error.
    """

    columns: list[str]

    def __init__(
        self,
        record: ModelFamily,
        model,
        processor,
        ignore_quality_gate: bool = False,
        threshold: float | None = None,
        operating_point: str | None = None,
        max_decoded_pixels: int | None = None,
        open_input: Callable[[str], Any] | None = None,
    ):
        self.record, self.model, self.processor = record, model, processor
        self.ignore_quality_gate = ignore_quality_gate
        self.max_decoded_pixels = max_decoded_pixels
        self.open_input = open_input or (lambda name: name)
        self.device = model_device(model)
        config = model.config
        self.labels = [config.id2label[i] for i in range(len(config.id2label))]
        self.setup(threshold, operating_point)

    def setup(self, threshold: float | None, operating_point: str | None) -> None:
        """Reads the thresholds and sets `columns` (called once, by `__init__`)."""
        raise NotImplementedError

    def predict(self, chunk: Sequence) -> list[dict]:
        """The rows of `chunk` (`BatchInput`s), in its order; an input that cannot be read gets a row with `error`."""
        raise NotImplementedError

    def __call__(self, chunk: Sequence) -> list[dict]:
        return self.predict(chunk)

    @property
    def model_type(self) -> str:
        return self.record.model_type

    @classmethod
    def is_complete(cls, row: dict) -> bool:
        """Whether every column of its kind holds a value that parses (values may be text, as read from a CSV)."""
        raise NotImplementedError

    @classmethod
    def completed_keys(cls, rows: Iterable[dict], key_of: Callable[[dict], tuple], whole: Callable[[dict], bool]):
        """The inputs with a whole, complete row (`whole`: the columns checks; `is_complete`: this model's)."""
        return {key_of(row) for row in rows if whole(row) and cls.is_complete(row)}

    one_row_per_input = True

    @classmethod
    def exportable(cls, record: ModelFamily) -> bool:
        """Whether `cervix-hf export` can export the model (its record names its graph's outputs)."""
        return record.onnx_outputs is not None

    @classmethod
    def export_precision(cls, folder: str | Path) -> str | None:
        """The precision of the export `folder` holds (`int8` before `fp32`), or `None` when it has none."""
        from cervix_hf.export.classifiers import available_precision

        return available_precision(folder)

    @classmethod
    def calibration_candidates(cls, data: Path) -> list:
        """The inputs of `data` an export may calibrate and check on: image files, searched recursively."""
        return sorted(path for path in data.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS)

    @classmethod
    def calibration_items(cls, record: ModelFamily, data: Path, processor, limit: int) -> list:
        """Up to `limit` real inputs from `data`, evenly spread over it, read as the model reads them; photos a quality
        gate rejects are left out (the model never sees them)."""
        candidates = cls.calibration_candidates(data)
        items = []
        for candidate in candidates[:: max(1, len(candidates) // max(1, limit))]:
            try:
                item = cls.calibration_item(record, candidate, processor)
            except ImageLoadError:
                continue
            if item is not None:
                items.append(item)
            if len(items) == limit:
                break
        return items

    @classmethod
    def calibration_item(cls, record: ModelFamily, candidate, processor):
        """One candidate of `calibration_candidates` read as the model reads it, or `None` for a photo its quality gate
        rejects."""
        item = load_model_input(candidate, record.model_type)
        if hasattr(processor, "assess_quality") and not processor.assess_quality(item)[0].is_acceptable:
            return None
        return item

    @classmethod
    def export(cls, model, processor, folder: Path, precision: str, items: list) -> dict:
        """Exports the model into `folder` (`onnx/`): half of `items` calibrate, the other half check it against
        PyTorch (`cervix_hf.export.classifiers.export_onnx`); the check's report."""
        from cervix_hf.export.classifiers import export_onnx

        return export_onnx(model, processor, folder, precision, items[0::2], items[1::2])

    @classmethod
    def export_summary(cls, report: dict, folder: Path, precision: str) -> list[str]:
        """What `cervix-hf export` prints of the check's `report`."""
        from cervix_hf.export.classifiers import onnx_path

        lines = [
            f"{onnx_path(folder, precision)}: {precision}, checked on {report['check_images']} real input(s): top-1 "
            f"agreement {report['top1_agreement']:.3f}, largest probability difference "
            f"{report['max_probability_difference']:.4f}; exported in {report['export_seconds']} s."
        ]
        if "error" in report.get("openvino", {}):
            lines.append(f"OpenVINO cannot run this export ({report['openvino']['error']}), so ONNX Runtime serves it.")
        elif "openvino" in report:
            check = report["openvino"]
            lines.append(
                f"Run by OpenVINO: top-1 agreement {check['top1_agreement']:.3f}, largest probability difference "
                f"{check['max_probability_difference']:.4f}; {openvino_verdict(report)}"
            )
        return lines

    def load(self, name: str):
        """The input `name` read within the model's bounds and the decoding budget, as the app's tabs read it."""
        return load_model_input(
            self.open_input(name), self.record.model_type, max_decoded_pixels=self.max_decoded_pixels
        )

    def row(self, item, **values) -> dict:
        """A row of `item` with every column, `None` where `values` gives nothing."""
        return {column: None for column in self.columns} | dict(zip(self.record.input_columns, item.paths)) | values

    def read_all(self, chunk: Sequence, rows: dict) -> list[tuple]:
        """`(item, input)` for each item of `chunk` that reads (one image, or the images of a pair); an item that does
        not gets its error row in `rows`."""
        ready = []
        for item in chunk:
            try:
                views = tuple(self.load(path) for path in item.paths)
            except (ImageLoadError, OSError) as error:
                rows[item] = self.row(item, status="error", error=str(error))
                continue
            ready.append((item, views if len(views) > 1 else views[0]))
        return ready


def openvino_verdict(report: dict) -> str:
    if report["openvino"]["accepted"]:
        return "OpenVINO serves the export by default (runtime auto)."
    return "outside the bounds, so ONNX Runtime serves the export by default."


def given(value) -> bool:
    return value is not None and value != ""


def number(value, low: float = -math.inf, high: float = math.inf) -> bool:
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool) and low <= parsed <= high


def count(value, low: int = 0) -> bool:
    try:
        return not isinstance(value, bool) and int(value) >= low
    except (TypeError, ValueError):
        return False


__all__ = ["PredictionEngine", "count", "given", "number", "openvino_verdict"]
