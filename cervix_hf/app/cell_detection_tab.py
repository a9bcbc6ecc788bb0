"""The Cell detection tab: boxes per class above a score threshold, each numbered with its score, a per-cell table,
and downloads: the detections as CSV and JSON, the annotated image as PNG."""

from collections import Counter
from pathlib import Path

import gradio as gr

from cervix_hf.app.cache import ResultCache
from cervix_hf.app.exports import ExportFolders
from cervix_hf.app.inputs import checked_threshold, read_upload, upload_digest
from cervix_hf.app.models import ModelSlot
from cervix_hf.app.widgets import (
    CLASS_COLOURS,
    DEFAULT_DETECTION_THRESHOLD,
    DRAWN_IMAGE_FORMAT,
    IMAGE_SOURCES,
    answer_heading,
    label_explanation,
    marked,
    model_footer,
    result_label,
    untrained_prefix,
)
from cervix_hf.io.results import write_detections
from cervix_hf.prediction.explain import detection_masks, draw_detections
from cervix_hf.prediction.inference import detect_cells


class CellDetectionAnswers:
    """What the Cell detection tab answers, for its model `slot`: the cells found in an image above a score threshold
    (detected once per image, cached by content, so moving the threshold only filters again), their counts, the
    drawn image and the CSV and JSON downloads (written into `exports`)."""

    def __init__(self, slot: ModelSlot, exports):
        self.slot = slot
        self.exports = exports
        self.cache = ResultCache()

    def detections_above(self, upload, threshold):
        """The checked threshold, the uploaded image, its safe name, the model, its detections scoring above the
        threshold, the model's class names and a colour per class."""
        threshold = checked_threshold(threshold)
        image, name = read_upload(upload, "image", "cell_detector")
        loaded = self.slot.get()
        config = loaded.model.config
        # Every detection the model makes (scores above 0), once per image; a threshold keeps those the processor's
        # post-processing keeps (`keeps`), so moving the slider does not run the model.
        found = self.cache.get_or_compute(
            (id(loaded.model), upload_digest(upload)),
            lambda: detect_cells(loaded.predictor, loaded.processor, image, 0.0),
        )
        detections = [detection for detection in found if loaded.processor.keeps(detection.score, threshold)]
        labels = [config.id2label[i] for i in range(config.num_labels)]
        colours = {label: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, label in enumerate(labels)}
        return threshold, image, name, loaded, detections, labels, colours

    def download_stem(self, name: str, loaded) -> str:
        return Path(name).stem + ("_UNTRAINED_MODEL" if loaded.warning else "")

    def detect(self, upload, threshold):
        threshold, image, name, loaded, detections, labels, colours = self.detections_above(upload, threshold)
        counts = Counter(detection.label for detection in detections)
        # The header carries the warning: the table is a result too, and its header travels with its data.
        table = {
            "headers": ["class", result_label("cells", loaded)],
            "data": [[label, counts[label]] for label in labels] + [["total", len(detections)]],
        }
        cells = {
            "headers": ["cell", "class", result_label("score", loaded), "xmin", "ymin", "xmax", "ymax"],
            "data": [
                [number, cell.label, round(cell.score, 4), *(round(v, 1) for v in cell.box)]
                for number, cell in enumerate(detections, start=1)
            ],
        }
        _, masks = detection_masks(image, detections)
        # The shown image carries each cell's number (its row in the table) and score; the masks draw the boxes.
        display = draw_detections(image, detections, colours, draw_boxes=False)
        folder = self.exports.new()
        stem = self.download_stem(name, loaded)
        csv_path, json_path = folder / f"{stem}_detections.csv", folder / f"{stem}_detections.json"
        write_detections([(name, detections)], csv_path, json_path, labels)
        summary = (
            f"{answer_heading(f'{len(detections)} cell(s) found', loaded)} scoring above {threshold:.2f}: "
            + (", ".join(f"{counts[label]} {label}" for label in labels if counts[label]) or "none")
            + "."
        )
        title = "Detected cells, coloured by class, each with its number and score"
        annotated = gr.AnnotatedImage(
            value=(display, masks),
            color_map=colours,
            label=result_label(title, loaded),
            elem_classes=marked(loaded),
        )
        return (
            untrained_prefix(loaded) + summary + model_footer(loaded),
            annotated,
            table,
            str(csv_path),
            str(json_path),
            cells,
        )

    def annotate(self, upload, threshold):
        """The full-size annotated image as a PNG: written after the result is shown (encoding a large image takes
        up to a second), from the cached detections."""
        _, image, name, loaded, detections, _, colours = self.detections_above(upload, threshold)
        path = self.exports.new() / f"{self.download_stem(name, loaded)}_annotated.png"
        draw_detections(image, detections, colours, display_size=None).save(path, compress_level=1)
        return str(path)

    def cleared(self):
        """Every output emptied: what shows while a new image is detected, and after an error or a removal."""
        return "Upload an image to find its cells.", None, None, None, None, None, None

    def detect_if_given(self, upload, threshold):
        """The page's detection: the result, and the previous annotated image removed until the new one is written."""
        return self.cleared() if upload is None else (*self.detect(upload, threshold), None)

    def annotate_if_given(self, upload, threshold):
        return None if upload is None else self.annotate(upload, threshold)


def build_cell_detection_tab(slot: ModelSlot, examples: list[str], exports: ExportFolders) -> None:
    answers = CellDetectionAnswers(slot, exports)

    with gr.Tab("Cell detection"):
        gr.Markdown("A Pap-smear image in; every cell found, with its class and score, out.")
        gr.Markdown(label_explanation("cell_detector"), elem_id="cell_detector-labels")
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Pap-smear image", sources=IMAGE_SOURCES, elem_id="cells-image")
                threshold = gr.Slider(
                    0.0,
                    1.0,
                    value=DEFAULT_DETECTION_THRESHOLD,
                    step=0.01,
                    label="Score threshold",
                    elem_id="cells-threshold",
                )
                button = gr.Button("Detect cells", variant="primary")
                if examples:
                    gr.Examples([[path] for path in examples], inputs=image, label="Example images")
            with gr.Column():
                summary = gr.Markdown("Upload an image to find its cells.", label="Summary")
                annotated = gr.AnnotatedImage(
                    label="Detected cells, coloured by class", format=DRAWN_IMAGE_FORMAT, elem_id="cells-annotated"
                )
                counts = gr.Dataframe(
                    headers=["class", "cells"], datatype=["str", "number"], label="Cells per class", interactive=False
                )
                cells = gr.Dataframe(
                    headers=["cell", "class", "score", "xmin", "ymin", "xmax", "ymax"],
                    datatype=["number", "str", "number", "number", "number", "number", "number"],
                    label="Each cell, best score first (box in pixels)",
                    interactive=False,
                    elem_id="cells-table",
                )
                with gr.Row():
                    csv_file = gr.File(label="Detections (CSV)", elem_id="cells-csv")
                    json_file = gr.File(label="Detections (JSON)", elem_id="cells-json")
                    png_file = gr.File(label="Annotated image (PNG, full size)", elem_id="cells-png")
    outputs = [summary, annotated, counts, csv_file, json_file, cells]

    # A new image (an upload, a chosen example, a removal) or the button first clears the old result, then
    # detects; a failed request leaves no stale result behind. The threshold re-filters the cached detections
    # from every way of changing it (dragging, arrow keys, typing a number and Enter; `release` fires only when a
    # drag ends), the last one winning. Each result is followed by its annotated image for download.
    shown, inputs = [*outputs, png_file], [image, threshold]
    rerun = gr.on([button.click], answers.cleared, None, shown, queue=False, api_name=False)
    rerun = rerun.then(answers.detect, inputs, outputs, api_name="detect_cells", preprocess=False)
    rerun.success(answers.annotate, inputs, png_file, api_name="annotated_cells", preprocess=False)
    on_change = image.change(answers.cleared, None, shown, queue=False, api_name=False)
    on_change = on_change.then(answers.detect_if_given, inputs, shown, api_name=False, preprocess=False)
    on_change.success(answers.annotate_if_given, inputs, png_file, api_name=False, preprocess=False)
    moved = threshold.input(
        answers.detect_if_given, inputs, shown, api_name=False, preprocess=False, trigger_mode="always_last"
    )
    moved.success(answers.annotate_if_given, inputs, png_file, api_name=False, preprocess=False)
