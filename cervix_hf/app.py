"""cervix_hf's Gradio app: cervix type, cell detection and pre/post fusion. Research demo, never a diagnosis.

    cervix-hf app [--colponet DIR_OR_HUB_ID] [--cell-detector ...] [--prepost ...] [--examples DIR]
                  [--checkpoints-dir DIR] [--host 127.0.0.1] [--port 7860]

`python app.py` in a checkout or a Space (the Space's entry point) and `python -m cervix_hf.app` run the same app.
Each model comes from, in this order: its flag or environment variable (`CERVIX_HF_COLPONET`,
`CERVIX_HF_CELL_DETECTOR`, `CERVIX_HF_PREPOST`; a saved folder or a Hub id `owner/name[@revision]`); the training
script's folder `checkpoints/<task>/`; the published Hub repo (`cervix_hf.hub`). Where none loads, its tab runs the
default configuration with untrained weights and every result says "UNTRAINED MODEL: output is meaningless"; the
start-up log says how to get real weights. Example images come from `--examples` / `CERVIX_HF_EXAMPLES`
(see `cervix_hf.app_examples`). Models load on first use; nothing is downloaded to render the page.
"""
import argparse
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import gradio as gr

from .app_examples import find_examples
from .app_models import DEFAULT_CHECKPOINTS_DIR, TASKS, AppModels, LoadedModel, ModelSlot, requested_models
from .cli import DefaultsHelpFormatter
from .detection_export import write_detections
from .image_io import ImageLoadError, load_image
from .inference import (
    OperatingPointError,
    classify_cervix_type,
    classify_prepost,
    detect_cells,
    explain_cervix_type,
    prepost_threshold,
)
from .prepost_fusion import OPERATING_POINT_NAMES
from .visualization import attention_received, detection_masks, overlay_heatmap

logger = logging.getLogger("cervix_hf.app")

EXAMPLES_ENV_VAR = "CERVIX_HF_EXAMPLES"
BANNER = (
    "# cervix_hf: cervical-cancer image models\n"
    "⚠️ **Research demo, not a diagnosis.** These models were trained on small public research datasets. No output "
    "of this app is a clinical finding, and none of it is approved for clinical use: never use it to decide on a "
    "patient's care."
)
# Requests each event runs at once; more wait in the queue. Inference uses every CPU core, so more would only
# share them.
CONCURRENCY_LIMIT = 2
QUEUE_SIZE = 64
# What `launch` needs besides the address: a cap on uploads, and the page rendered in the browser (no Node server).
LAUNCH_SETTINGS = {"max_file_size": "100mb", "ssr_mode": False}
DEFAULT_DETECTION_THRESHOLD = 0.5
MODEL_DEFAULT = "model default"
CUSTOM_THRESHOLD = "custom threshold"
# Distinct colours (Sasha Trubetskoy's list), one per cell class in the model's class order.
CLASS_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")
IMAGE_SOURCES = ["upload", "clipboard"]
OUTPUT_IMAGE_BUTTONS = ["download", "fullscreen"]  # not "share", which posts to the Hub
# Drawn images are sent as JPEG: PNG took ~190 ms to encode an 800x600 overlay, JPEG takes ~2 ms.
DRAWN_IMAGE_FORMAT = "jpeg"


def bad_input(message: str) -> gr.Error:
    """The error a user sees for a problem with their input: shown in the page, and no traceback in the log."""
    return gr.Error(message, print_exception=False)


def read_upload(upload: dict | None, what: str):
    """
    The uploaded file (gradio's file payload, left unprocessed so that this function reads the file itself) as an
    RGB image, and its original name. Every problem becomes a `gr.Error` with `cervix_hf.load_image`'s message.
    """
    if upload is None:
        raise bad_input(f"No {what}: upload an image file (JPEG, PNG, TIFF or BMP).")
    if not isinstance(upload, dict) or not upload.get("path"):
        raise bad_input(f"The {what} did not arrive as a file: upload it as an image file.")
    name = upload.get("orig_name") or Path(upload["path"]).name
    try:
        return load_image(upload["path"]), name
    except ImageLoadError as error:
        raise bad_input(str(ImageLoadError(name, error.problem))) from error


def checked_threshold(value) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise bad_input(f"The threshold must be a number from 0 to 1, got {value!r}.") from None
    if not 0.0 <= threshold <= 1.0:  # also rejects NaN
        raise bad_input(f"The threshold must be from 0 to 1, got {value!r}.")
    return threshold


def untrained_prefix(loaded: LoadedModel) -> str:
    return f"## ⚠️ {loaded.warning}\n\n" if loaded.warning else ""


def result_label(title: str, loaded: LoadedModel) -> str:
    return f"{title} ({loaded.warning})" if loaded.warning else title


def model_footer(loaded: LoadedModel) -> str:
    return f"\n\n*Model: {loaded.source.describe()}. Research demo, not a diagnosis.*"


class ExportFolders:
    """
    One fresh folder per request for download files, under a temporary directory removed when the app exits.
    gradio serves its own copy of each returned file, so folders older than `lifetime` seconds are deleted as new
    ones are made, which keeps a long-running app's disk use flat.
    """

    def __init__(self, lifetime: float = 600.0):
        self.lifetime = lifetime
        self._root = tempfile.TemporaryDirectory(prefix="cervix_hf_app_")

    def new(self) -> Path:
        cutoff = time.time() - self.lifetime
        for folder in Path(self._root.name).iterdir():
            try:
                expired = folder.stat().st_mtime < cutoff
            except FileNotFoundError:  # pruned meanwhile by a concurrent request
                continue
            if expired:
                shutil.rmtree(folder, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self._root.name))


def build_cervix_type_tab(slot: ModelSlot, examples: list[str]) -> None:
    def classify(photo, ignore_quality_gate):
        image, _ = read_upload(photo, "photo")
        loaded = slot.get()
        prediction = classify_cervix_type(loaded.model, loaded.processor, image, bool(ignore_quality_gate))
        verdict = f"**Quality gate:** {prediction.quality.message}\n\n"
        if not prediction.classified:
            verdict += "**Not classified.** Tick *Classify even if the quality gate rejects the photo* to override."
        else:
            overridden = "" if prediction.quality.is_acceptable else " (classified despite the quality gate: override)"
            verdict += (
                f"**Most probable: {prediction.label}** ({prediction.probabilities[prediction.label]:.1%}){overridden}."
            )
        details = {
            **prediction.to_dict(),
            "model": loaded.source.describe(),
            "trained": loaded.trained,
            "warning": loaded.warning,
        }
        probabilities = gr.Label(
            value=prediction.probabilities or None, label=result_label("Cervix type probabilities", loaded)
        )
        return untrained_prefix(loaded) + verdict + model_footer(loaded), probabilities, details

    def explain(photo, ignore_quality_gate):
        image, _ = read_upload(photo, "photo")
        loaded = slot.get()
        explanation = explain_cervix_type(loaded.model, loaded.processor, image, bool(ignore_quality_gate))
        if explanation.heatmap is None:
            return gr.Image(value=None, label="Grad-CAM: the photo was not classified")
        title = f"Grad-CAM for {explanation.label}: what drove the prediction (red = most)"
        return gr.Image(value=overlay_heatmap(image, explanation.heatmap), label=result_label(title, loaded))

    with gr.Tab("Cervix type"):
        gr.Markdown(
            "A colposcopy photo in; the transformation-zone type (1, 2 or 3) out. A quality gate first rejects "
            "blurry photos, which are not classified unless you override it."
        )
        with gr.Row():
            with gr.Column():
                photo = gr.Image(label="Colposcopy photo", sources=IMAGE_SOURCES, elem_id="cervix-photo")
                ignore_quality_gate = gr.Checkbox(label="Classify even if the quality gate rejects the photo")
                button = gr.Button("Classify", variant="primary")
                if examples:
                    gr.Examples([[path] for path in examples], inputs=photo, label="Example photos")
            with gr.Column():
                verdict = gr.Markdown("Upload a photo to classify it.", label="Verdict")
                probabilities = gr.Label(label="Cervix type probabilities", num_top_classes=3)
                heatmap = gr.Image(
                    label="Grad-CAM",
                    interactive=False,
                    format=DRAWN_IMAGE_FORMAT,
                    buttons=OUTPUT_IMAGE_BUTTONS,
                    elem_id="cervix-grad-cam",
                )
                with gr.Accordion("Details (JSON)", open=False):
                    details = gr.JSON(label="Details")
    inputs = [photo, ignore_quality_gate]
    event = gr.on(
        [button.click, photo.upload, ignore_quality_gate.input],
        classify,
        inputs,
        [verdict, probabilities, details],
        api_name="classify_cervix_type",
        preprocess=False,
    )
    event.success(explain, inputs, heatmap, api_name="cervix_grad_cam", preprocess=False)


def build_cell_detection_tab(slot: ModelSlot, examples: list[str], exports: ExportFolders) -> None:
    def detect(image, threshold):
        threshold = checked_threshold(threshold)
        image, name = read_upload(image, "image")
        loaded = slot.get()
        config = loaded.model.config
        detections = detect_cells(loaded.model, loaded.processor, image, threshold)
        labels = [config.id2label[i] for i in range(config.num_labels)]
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
        display, masks = detection_masks(image, detections)
        colours = {label: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, label in enumerate(labels)}
        folder = exports.new()
        stem = Path(name).stem + ("_UNTRAINED_MODEL" if loaded.warning else "")
        csv_path, json_path = folder / f"{stem}_detections.csv", folder / f"{stem}_detections.json"
        write_detections([(name, detections)], csv_path, json_path)
        summary = (
            f"**{len(detections)} cell(s) found** scoring above {threshold:.2f}: "
            + (", ".join(f"{counts[label]} {label}" for label in labels if counts[label]) or "none")
            + "."
        )
        annotated = gr.AnnotatedImage(
            value=(display, masks), color_map=colours, label=result_label("Detected cells, coloured by class", loaded)
        )
        return (
            untrained_prefix(loaded) + summary + model_footer(loaded),
            annotated,
            table,
            str(csv_path),
            str(json_path),
            cells,
        )

    with gr.Tab("Cell detection"):
        gr.Markdown("A Pap-smear image in; every cell found, with its class and score, out.")
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
    gr.on(
        [button.click, image.upload, threshold.release],
        detect,
        [image, threshold],
        [summary, annotated, counts, csv_file, json_file, cells],
        api_name="detect_cells",
        preprocess=False,
    )


def build_prepost_tab(slot: ModelSlot, examples: list[tuple[str, str]]) -> None:
    def chosen_threshold(operating_point, threshold) -> dict:
        """The radio's choice as `classify_prepost`'s arguments: a named operating point, or the user's threshold."""
        if operating_point == CUSTOM_THRESHOLD:
            return {"threshold": checked_threshold(threshold)}
        return {"operating_point": None if operating_point == MODEL_DEFAULT else operating_point}

    def unavailable(error: OperatingPointError) -> gr.Error:
        return bad_input(f"{error} Choose another, or '{CUSTOM_THRESHOLD}'.")

    def show_operating_point(operating_point, threshold):
        try:
            value, origin = prepost_threshold(slot.get().model.config, **chosen_threshold(operating_point, threshold))
        except OperatingPointError as error:
            raise unavailable(error) from None
        slider = gr.Slider(value=value, interactive=operating_point == CUSTOM_THRESHOLD)
        return slider, f"Threshold {value:.3f}: {origin}."

    def classify(pre_image, post_image, operating_point, threshold):
        missing = [what for what, upload in (("pre-stain", pre_image), ("post-stain", post_image)) if upload is None]
        if missing:
            subject = (
                "The pre-stain and the post-stain images are" if len(missing) == 2 else f"The {missing[0]} image is"
            )
            raise bad_input(
                f"{subject} missing: upload both images of the same cervix, before the stain (after normal saline) "
                "and after it (after acetic acid)."
            )
        pre, _ = read_upload(pre_image, "pre-stain image")
        post, _ = read_upload(post_image, "post-stain image")
        chosen = chosen_threshold(operating_point, threshold)
        loaded = slot.get()
        try:
            prediction = classify_prepost(loaded.model, loaded.processor, pre, post, **chosen)
        except OperatingPointError as error:
            raise unavailable(error) from None
        comparison = "≥" if prediction.label == "Positive" else "<"
        verdict = (
            f"**Decision: {prediction.label}**: probability of Positive {prediction.probability:.3f} {comparison} "
            f"threshold {prediction.threshold:.3f} ({prediction.threshold_origin})."
        )
        probabilities = gr.Label(
            value={"Positive": prediction.probability, "Negative": 1.0 - prediction.probability},
            label=result_label("Probabilities", loaded),
        )
        attention = gr.Image(
            value=overlay_heatmap(post, attention_received(prediction.pre_to_post_attention)),
            label=result_label("Where the pre-stain image attends in the post-stain image (red = most)", loaded),
        )
        details = {
            **prediction.to_dict(),
            "operating_point": operating_point,
            "model": loaded.source.describe(),
            "trained": loaded.trained,
            "warning": loaded.warning,
        }
        return untrained_prefix(loaded) + verdict + model_footer(loaded), probabilities, attention, details

    with gr.Tab("Pre/post fusion"):
        gr.Markdown(
            "Two photos of the same cervix in, before the stain (after normal saline) and after it (after acetic "
            "acid); the probability of Positive and the decision at a threshold out."
        )
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    pre = gr.Image(label="Pre-stain image", sources=IMAGE_SOURCES, elem_id="prepost-pre")
                    post = gr.Image(label="Post-stain image", sources=IMAGE_SOURCES, elem_id="prepost-post")
                operating_point = gr.Radio(
                    [MODEL_DEFAULT, *OPERATING_POINT_NAMES, CUSTOM_THRESHOLD],
                    value=MODEL_DEFAULT,
                    label="Operating point",
                    info="Chosen on the validation split when the model was trained.",
                )
                threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Decision threshold", interactive=False)
                operating_point_info = gr.Markdown(label="Operating point")
                button = gr.Button("Classify the pair", variant="primary")
                if examples:
                    gr.Examples([list(pair) for pair in examples], inputs=[pre, post], label="Example pairs")
            with gr.Column():
                verdict = gr.Markdown("Upload both images to classify the pair.", label="Verdict")
                probabilities = gr.Label(label="Probabilities")
                attention = gr.Image(
                    label="Attention between the two images",
                    interactive=False,
                    format=DRAWN_IMAGE_FORMAT,
                    buttons=OUTPUT_IMAGE_BUTTONS,
                    elem_id="prepost-attention",
                )
                with gr.Accordion("Details (JSON)", open=False):
                    details = gr.JSON(label="Details")
    operating_point.input(
        show_operating_point,
        [operating_point, threshold],
        [threshold, operating_point_info],
        api_name="prepost_operating_point",
    )
    gr.on(
        [button.click, operating_point.input, threshold.release],
        classify,
        [pre, post, operating_point, threshold],
        [verdict, probabilities, attention, details],
        api_name="classify_prepost",
        preprocess=False,
    )


def describe_model(slot: ModelSlot) -> str:
    loaded = slot.get()
    config = loaded.model.config
    labels = ", ".join(config.id2label[i] for i in range(config.num_labels))
    parameters = sum(parameter.numel() for parameter in loaded.model.parameters())
    trained = "yes" if loaded.trained else f"**no: {loaded.warning}**"
    lines = [
        f"## {slot.task.title}",
        f"- **Loaded from:** {loaded.source.describe()}",
        f"- **Trained:** {trained}",
        f"- **Model:** `{config.model_type}` ({type(loaded.model).__name__}, {parameters:,} parameters)",
        f"- **Labels:** {labels}",
    ]
    if loaded.notes:
        lines.append("\nSources tried first:\n" + "\n".join(f"- {note}" for note in loaded.notes))
    if not loaded.trained:
        lines.append(f"\nTo get real weights: `{slot.task.train_command}`, or set `{slot.task.env_var}`.")
    card = loaded.card or "*No model card (README.md) where the model was loaded from.*"
    lines.append(f"\n<details><summary>Model card</summary>\n\n{card}\n\n</details>")
    return "\n".join(lines)


def build_models_tab(models: AppModels) -> None:
    def describe_all():
        return [describe_model(slot) for slot in models]

    with gr.Tab("Models") as tab:
        gr.Markdown(
            "For each model: where it was loaded from and whether it is trained, then its card. Opening this tab "
            "loads any model not used yet."
        )
        cards = [gr.Markdown(f"## {slot.task.title}\nNot loaded yet.", label=slot.task.name) for slot in models]
        button = gr.Button("Refresh")
    gr.on([tab.select, button.click], describe_all, None, cards, api_name="models")


def build_demo(models: AppModels | None = None, examples_dir: str | Path | None = None) -> gr.Blocks:
    """
    The app. `models` defaults to the environment variables' models, then `checkpoints/` in the current folder, then
    the Hub; `examples_dir` to `$CERVIX_HF_EXAMPLES` (no examples when unset). Nothing is loaded until a request needs
    it.
    """
    models = models or AppModels.from_settings(requested_models({}))
    examples = find_examples(examples_dir or os.environ.get(EXAMPLES_ENV_VAR))
    logger.info(
        "Examples: %d photo(s), %d Pap-smear image(s), %d pre/post pair(s).",
        len(examples.cervix_type),
        len(examples.cells),
        len(examples.prepost),
    )
    exports = ExportFolders()
    with gr.Blocks(
        title="cervix_hf: research demo, not a diagnosis", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        gr.Markdown(BANNER)
        build_cervix_type_tab(models["colponet"], examples.cervix_type)
        build_cell_detection_tab(models["cell_detector"], examples.cells, exports)
        build_prepost_tab(models["prepost"], examples.prepost)
        build_models_tab(models)
    return demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    for task in TASKS:
        parser.add_argument(
            task.flag,
            metavar="DIR_OR_HUB_ID",
            dest=task.name,
            help=f"{task.title}: a saved folder or owner/name[@revision] (default: ${task.env_var}, then "
            f"CHECKPOINTS_DIR/{task.checkpoint_folder}, then the published Hub repo, else untrained)",
        )
    parser.add_argument(
        "--examples", metavar="DIR", help=f"example images (default: ${EXAMPLES_ENV_VAR}; none if unset)"
    )
    parser.add_argument(
        "--checkpoints-dir",
        default=str(DEFAULT_CHECKPOINTS_DIR),
        help="folder of the training commands' models, one <task> folder each (relative to the current folder)",
    )
    parser.add_argument("--host", help="address to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $GRADIO_SERVER_PORT, else 7860 or the next free one)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up requests
    models = AppModels.from_settings(
        requested_models({task.name: getattr(args, task.name) for task in TASKS}), checkpoints_dir=args.checkpoints_dir
    )
    models.log_plan()
    examples_dir = args.examples or os.environ.get(EXAMPLES_ENV_VAR)
    if examples_dir and not Path(examples_dir).is_dir():
        logger.warning("The examples folder %s does not exist: the app starts without examples.", examples_dir)
    demo = build_demo(models, examples_dir)
    demo.launch(server_name=args.host, server_port=args.port, **LAUNCH_SETTINGS)


if __name__ == "__main__":
    main()
