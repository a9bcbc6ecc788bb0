"""The Pap cell tab: one Pap-smear cell image; its seven class probabilities, the normal/abnormal roll-up and the
decision at an operating point or a threshold."""

from functools import partial

import gradio as gr

from cervix_hf.app.exports import ExportFolders
from cervix_hf.app.inputs import bad_input, checked_choice, checked_threshold, read_upload
from cervix_hf.app.models import ModelSlot
from cervix_hf.app.widgets import (
    CUSTOM_THRESHOLD,
    IMAGE_SOURCES,
    MODEL_DEFAULT,
    answer_heading,
    label_explanation,
    marked,
    meaningless,
    model_footer,
    result_label,
    untrained_prefix,
)
from cervix_hf.models.cell_classifier import OPERATING_POINT_NAMES
from cervix_hf.prediction.inference import OperatingPointError, classify_cell

CHOICES = [MODEL_DEFAULT, *OPERATING_POINT_NAMES, CUSTOM_THRESHOLD]
PROMPT = "Upload an image of one Pap-smear cell to classify it."


def classify(slot: ModelSlot, cell_image, operating_point, threshold):
    """The tab's answer for one upload: the verdict, the class and group probabilities, and the details."""
    image, name = read_upload(cell_image, "cell image", "cell_classifier")
    checked_choice(operating_point, CHOICES, "The operating point")
    chosen = (
        {"threshold": checked_threshold(threshold)}
        if operating_point == CUSTOM_THRESHOLD
        else {"operating_point": None if operating_point == MODEL_DEFAULT else operating_point}
    )
    loaded = slot.get()
    try:
        answer = classify_cell(loaded.predictor, loaded.processor, image, **chosen)
    except OperatingPointError as error:
        raise bad_input(f"{error} Choose another, or '{CUSTOM_THRESHOLD}'.") from None
    negative, positive = loaded.model.config.group_names
    decision, label = answer["decision"], answer["label"]
    comparison = "≥" if decision == positive else "<"
    probability = meaningless(f"{answer['groups'][positive]:.3f}", loaded)
    verdict = (
        f"{answer_heading(f'Decision: {decision}', loaded)}: probability of {positive} {probability} {comparison} "
        f"threshold {answer['threshold']:.3f} ({answer['threshold_origin']}). Most probable class: {label} "
        f"({meaningless(format(answer['probabilities'][label], '.1%'), loaded)})."
    )
    classes = gr.Label(
        value=answer["probabilities"],
        label=result_label("Class probabilities", loaded),
        elem_classes=marked(loaded),
    )
    groups = gr.Label(
        value=answer["groups"], label=result_label(f"{negative} / {positive}", loaded), elem_classes=marked(loaded)
    )
    details = {
        **answer,
        "image": name,
        "model": loaded.source.shown(),
        "trained": loaded.trained,
        "warning": loaded.warning,
    }
    return untrained_prefix(loaded) + verdict + model_footer(loaded), classes, groups, details


def cleared():
    """What the tab shows with no image: the prompt, and empty results."""
    return PROMPT, gr.Label(value=None), gr.Label(value=None), None


def classify_if_given(slot: ModelSlot, cell_image, operating_point, threshold):
    return cleared() if cell_image is None else classify(slot, cell_image, operating_point, threshold)


def build_cell_classifier_tab(slot: ModelSlot, examples: list[str], exports: ExportFolders | None = None) -> None:
    """The tab's page and its events, each one call of the functions above for this tab's model `slot`."""
    with gr.Tab("Pap cell"):
        gr.Markdown(
            "One Pap-smear cell in (a crop centred on a single cell, as in the Herlev database); the probability of "
            "each of seven classes, their sum for normal and for abnormal, and the decision at a threshold out."
        )
        gr.Markdown(label_explanation("cell_classifier"), elem_id="cell_classifier-labels")
        with gr.Row():
            with gr.Column():
                cell = gr.Image(label="Cell image", sources=IMAGE_SOURCES, elem_id="cell-image")
                operating_point = gr.Radio(
                    CHOICES,
                    value=MODEL_DEFAULT,
                    label="Operating point",
                    info="Thresholds on the probability of abnormal, chosen on the validation split when the model "
                    "was trained (screening: abnormal sensitivity at least 0.95).",
                    elem_id="cell-operating-point",
                )
                threshold = gr.Slider(
                    0.0,
                    1.0,
                    value=0.5,
                    step=0.01,
                    label="Custom threshold (probability of abnormal)",
                    elem_id="cell-threshold",
                )
                button = gr.Button("Classify the cell", variant="primary")
                if examples:
                    gr.Examples([[path] for path in examples], inputs=cell, label="Example cells")
            with gr.Column():
                verdict = gr.Markdown(PROMPT, label="Verdict")
                groups = gr.Label(label="Normal / abnormal", elem_id="cell-groups")
                classes = gr.Label(label="Class probabilities", num_top_classes=7, elem_id="cell-classes")
                with gr.Accordion("Details (JSON)", open=False):
                    details = gr.JSON(label="Details")
    inputs, outputs = [cell, operating_point, threshold], [verdict, classes, groups, details]

    # As the other tabs: a new image first clears the old result, then runs; the button re-runs; the operating
    # point and the threshold decide again.
    rerun = button.click(cleared, None, outputs, queue=False, api_name=False)
    rerun.then(partial(classify, slot), inputs, outputs, api_name="classify_cell", preprocess=False)
    on_change = cell.change(cleared, None, outputs, queue=False, api_name=False)
    on_change.then(partial(classify_if_given, slot), inputs, outputs, api_name=False, preprocess=False)
    gr.on(
        [operating_point.input, threshold.input],
        partial(classify_if_given, slot),
        inputs,
        outputs,
        api_name=False,
        preprocess=False,
        trigger_mode="always_last",
    )
