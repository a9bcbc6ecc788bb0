"""The cell detector's prediction engine: one row per cell found, and a summary row per image."""

from collections import Counter
from pathlib import Path

import numpy as np

from cervix_hf.data import guess_detection_format, read_isbi2014_edf, read_sipakmed
from cervix_hf.data.intel_mobileodt import IMAGE_EXTENSIONS
from cervix_hf.io.images import ImageLoadError
from cervix_hf.io.results import detection_columns, detection_rows
from cervix_hf.prediction.engines.base import PredictionEngine, count, given, number, openvino_verdict
from cervix_hf.prediction.inference import detect_cells, load_model_input


class CellDetectorEngine(PredictionEngine):
    """Per image: a row per cell (`row=cell`: its number, `label`, `score` and box), then a summary (`row=image`:
    `cells`, `count_<class>`). Images run one at a time: a field is one large image (tiled when larger than the
    model's tile), and Faster R-CNN resizes each on its own. `threshold` defaults to the model's score threshold."""

    one_row_per_input = False

    def setup(self, threshold, operating_point) -> None:
        self.threshold = self.model.config.box_score_threshold if threshold is None else threshold
        self.columns = detection_columns(self.labels)

    def predict(self, chunk) -> list[dict]:
        rows = []
        for item in chunk:
            try:
                cells = detect_cells(
                    self.model,
                    self.processor,
                    self.open_input(item.paths[0]),
                    self.threshold,
                    max_decoded_pixels=self.max_decoded_pixels,
                )
            except (ImageLoadError, OSError) as error:
                rows.append(self.row(item, row="image", error=str(error)))
                continue
            rows += detection_rows(item.paths[0], cells, self.labels)
        return rows

    @classmethod
    def is_complete(cls, row: dict) -> bool:
        if row.get("row") == "cell":
            return (
                count(row.get("cell"), 1)
                and given(row.get("label"))
                and number(row.get("score"), 0, 1)
                and all(number(row.get(side)) for side in ("xmin", "ymin", "xmax", "ymax"))
            )
        counts = [row[column] for column in row if column.startswith("count_")]
        return (
            row.get("row") == "image"
            and count(row.get("cells"))
            and all(count(value) for value in counts)
            and sum(int(value) for value in counts) == int(row["cells"])
        )

    @classmethod
    def exportable(cls, record) -> bool:
        return True  # its learned layers (`cervix_hf.export.detector`)

    @classmethod
    def export_precision(cls, folder) -> str | None:
        from cervix_hf.export.detector import available_detector_precision

        return available_detector_precision(folder)

    @classmethod
    def calibration_candidates(cls, data: Path) -> list:
        """(image path, target) pairs of `data`: targets from an ISBI 2014 or SIPaKMeD layout's boxes (the check
        scores mAP@.5 against them), `None` for a plain folder of images (the check scores against PyTorch's own
        detections)."""
        data_format = guess_detection_format(data)
        if data_format is None:
            return [(path, None) for path in sorted(data.rglob("*")) if path.suffix.lower() in IMAGE_EXTENSIONS]
        records = read_isbi2014_edf(data) if data_format == "isbi2014" else read_sipakmed(data)
        return [
            (
                record.image_path,
                {
                    "boxes": np.asarray(record.boxes, dtype=np.float32).reshape(-1, 4),
                    "labels": np.asarray(record.labels, dtype=np.int64),
                },
            )
            for record in records.records
        ]

    @classmethod
    def calibration_item(cls, record, candidate, processor):
        """The image at its full size (the export checks whole fields), with its target."""
        path, target = candidate
        return load_model_input(path, record.model_type, reduce=False), target

    @classmethod
    def export(cls, model, processor, folder: Path, precision: str, items: list) -> dict:
        """Exports the backbone, RPN head and box head (`cervix_hf.export.detector`): half of `items` calibrate, the
        other half check mAP@.5 against PyTorch's."""
        from cervix_hf.export.detector import export_detector_onnx

        calibration = [image for image, _ in items[0::2]]
        return export_detector_onnx(model, processor, folder, precision, calibration, items[1::2])

    @classmethod
    def export_summary(cls, report: dict, folder: Path, precision: str) -> list[str]:
        from cervix_hf.export.classifiers import onnx_path

        lines = [
            f"{onnx_path(folder, precision).parent}: the detector's backbone, RPN head and box head in {precision}, "
            f"checked on {report['check_images']} real image(s): mAP@.5 {report['export_map_50']:.4f} against "
            f"PyTorch's {report['pytorch_map_50']:.4f} (scored against {report['scored_against']}); exported in "
            f"{report['export_seconds']} s."
        ]
        if "openvino" in report:
            lines.append(
                f"Run by OpenVINO: mAP@.5 {report['openvino']['export_map_50']:.4f}; {openvino_verdict(report)}"
            )
        return lines

    @classmethod
    def completed_keys(cls, rows, key_of, whole):
        """The images whose summary row and every cell row are whole and complete, with as many cell rows as the
        summary counts."""
        cells, summaries, broken = Counter(), {}, set()
        for row in rows:
            key = key_of(row)
            if not (whole(row) and cls.is_complete(row)) or (row["row"] == "image" and key in summaries):
                broken.add(key)
            elif row["row"] == "cell":
                cells[key] += 1
            else:
                summaries[key] = int(row["cells"])
        return {key for key, total in summaries.items() if key not in broken and cells[key] == total}
