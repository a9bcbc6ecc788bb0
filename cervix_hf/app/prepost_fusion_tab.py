"""The Pre/post fusion tab: a pre-stain and a post-stain photo, a decision at a chosen threshold or operating point."""

import json
from pathlib import Path

import gradio as gr

from cervix_hf.app.cache import ResultCache
from cervix_hf.app.exports import ExportFolders
from cervix_hf.app.inputs import (
    bad_input,
    checked_choice,
    checked_opacity,
    checked_threshold,
    read_upload,
    upload_digest,
)
from cervix_hf.app.models import ModelSlot
from cervix_hf.app.widgets import (
    CUSTOM_THRESHOLD,
    DEFAULT_HEATMAP_OPACITY,
    DRAWN_IMAGE_FORMAT,
    IMAGE_SOURCES,
    MODEL_DEFAULT,
    OUTPUT_IMAGE_BUTTONS,
    answer_heading,
    heatmap_opacity_slider,
    label_explanation,
    marked,
    meaningless,
    model_footer,
    result_label,
    untrained_prefix,
)
from cervix_hf.evaluation.metrics import wilson_interval
from cervix_hf.io.files import EVAL_RESULTS_FILE
from cervix_hf.models.prepost_fusion import OPERATING_POINT_NAMES
from cervix_hf.prediction.explain import attention_received, overlay_heatmap
from cervix_hf.prediction.inference import (
    OperatingPointError,
    PairError,
    classify_prepost,
    prepost_threshold,
    redecide_prepost,
)

CHOICES = [MODEL_DEFAULT, *OPERATING_POINT_NAMES, CUSTOM_THRESHOLD]


def _validation_counts(loaded) -> dict | None:
    """The validation split's cases per class, from a local model folder's `eval_results.json`, when it has them."""
    if loaded.source.kind != "folder":
        return None
    path = Path(loaded.source.location) / EVAL_RESULTS_FILE
    try:
        return json.loads(path.read_text())["data"]["class_counts"]["validation"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _rate(name: str, value: float, cases: int | None, kind: str) -> str:
    if cases is None:
        return f"{name} {value:.2f}"
    low, high = wilson_interval(round(value * cases), cases) if cases else (0.0, 1.0)
    return f"{name} {value:.2f} (95% interval {low:.2f}-{high:.2f}, {cases} {kind})"


def operating_point_choices(loaded) -> list[tuple[str, str]]:
    """
    The operating points the loaded model defines (a threshold chosen on its validation split), each labelled with
    its validation sensitivity and specificity, their 95% Wilson intervals and how many cases they rest on (when
    its evaluation file says), between its default threshold and a custom one. A point it lacks is not offered.
    """
    points = loaded.model.config.operating_points or {}
    counts = _validation_counts(loaded) or {}
    positive, negative = counts.get("Positive"), counts.get("Negative")
    choices = [(MODEL_DEFAULT, MODEL_DEFAULT)]
    for name in OPERATING_POINT_NAMES:
        point = points.get(name) or {}
        if point.get("threshold") is None:
            continue
        label = f"{name}: threshold {point['threshold']:.2f}"
        if point.get("sensitivity") is not None and point.get("specificity") is not None:
            label += (
                f"; on validation, {_rate('sensitivity', point['sensitivity'], positive, 'Positive')}, "
                f"{_rate('specificity', point['specificity'], negative, 'Negative')}"
            )
        choices.append((label, name))
    return [*choices, (CUSTOM_THRESHOLD, CUSTOM_THRESHOLD)]


def operating_points_summary(choices: list[tuple[str, str]]) -> str:
    """One line under the choices that says which operating points the loaded model defines, or that it has none."""
    defined = [value for _, value in choices if value not in (MODEL_DEFAULT, CUSTOM_THRESHOLD)]
    if not defined:
        return (
            "This model defines no operating points: it decides at its default threshold, or at a custom one you set."
        )
    return f"Operating points this model defines, chosen on its validation split: {', '.join(defined)}."


class PrePostAnswers:
    """What the Pre/post fusion tab answers, for its model `slot`: the decision on a pair at an operating point or a
    threshold (the model's probability cached by content, so a new threshold only decides again) and where the pre
    image attends in the post image."""

    def __init__(self, slot: ModelSlot):
        self.slot = slot
        self.cache = ResultCache()

    def chosen_threshold(self, operating_point, threshold) -> dict:
        """The radio's choice as `classify_prepost`'s arguments: a named operating point, or the user's threshold."""
        checked_choice(operating_point, CHOICES, "The operating point")
        if operating_point == CUSTOM_THRESHOLD:
            return {"threshold": checked_threshold(threshold)}
        return {"operating_point": None if operating_point == MODEL_DEFAULT else operating_point}

    def unavailable(self, error: OperatingPointError) -> gr.Error:
        return bad_input(f"{error} Choose another, or '{CUSTOM_THRESHOLD}'.")

    def show_operating_point(self, operating_point, threshold):
        try:
            value, origin = prepost_threshold(
                self.slot.get().model.config, **self.chosen_threshold(operating_point, threshold)
            )
        except OperatingPointError as error:
            raise self.unavailable(error) from None
        slider = gr.Slider(value=value, interactive=operating_point == CUSTOM_THRESHOLD)
        return slider, f"Threshold {value:.3f}: {origin}."

    def classify(self, pre_image, post_image, operating_point, threshold, opacity=DEFAULT_HEATMAP_OPACITY):
        missing = [what for what, upload in (("pre-stain", pre_image), ("post-stain", post_image)) if upload is None]
        if missing:
            subject = (
                "The pre-stain and the post-stain images are" if len(missing) == 2 else f"The {missing[0]} image is"
            )
            raise bad_input(
                f"{subject} missing: upload both images of the same cervix, before the stain (after normal saline) "
                "and after it (after acetic acid)."
            )
        pre, _ = read_upload(pre_image, "pre-stain image", "prepost_fusion")
        post, _ = read_upload(post_image, "post-stain image", "prepost_fusion")
        chosen = self.chosen_threshold(operating_point, threshold)
        opacity = checked_opacity(opacity)
        loaded = self.slot.get()
        try:
            # The model runs once per pair; another threshold or operating point decides again from its answer.
            answer = self.cache.get_or_compute(
                (id(loaded.model), upload_digest(pre_image), upload_digest(post_image)),
                lambda: classify_prepost(loaded.predictor, loaded.processor, pre, post),
            )
            prediction = redecide_prepost(loaded.model, loaded.processor, answer, **chosen)
        except OperatingPointError as error:
            raise self.unavailable(error) from None
        except PairError as error:
            raise bad_input(str(error)) from None
        comparison = "≥" if prediction.label == "Positive" else "<"
        verdict = (
            f"{answer_heading(f'Decision: {prediction.label}', loaded)}: probability of Positive "
            f"{meaningless(f'{prediction.probability:.3f}', loaded)} {comparison} threshold "
            f"{prediction.threshold:.3f} ({prediction.threshold_origin})."
        )
        probabilities = gr.Label(
            value={"Positive": prediction.probability, "Negative": 1.0 - prediction.probability},
            label=result_label("Probabilities", loaded),
            elem_classes=marked(loaded),
        )
        attention = gr.Image(
            value=overlay_heatmap(post, attention_received(prediction.pre_to_post_attention), alpha=opacity),
            label=result_label("Where the pre-stain image attends in the post-stain image (red = most)", loaded),
            elem_classes=marked(loaded),
        )
        details = {
            **prediction.to_dict(),
            "operating_point": operating_point,
            "model": loaded.source.shown(),
            "trained": loaded.trained,
            "warning": loaded.warning,
        }
        return untrained_prefix(loaded) + verdict + model_footer(loaded), probabilities, attention, details

    def show_operating_points(self):
        choices = operating_point_choices(self.slot.get())
        return gr.Radio(choices=choices), operating_points_summary(choices)

    def cleared(self):
        """Every output emptied: what shows while a new pair is classified, and after an error or a removal."""
        return "Upload both images to classify the pair.", gr.Label(value=None), gr.Image(value=None), None

    def classify_if_both(self, pre_image, post_image, operating_point, threshold, opacity):
        if pre_image is None or post_image is None:
            return self.cleared()
        return self.classify(pre_image, post_image, operating_point, threshold, opacity)


def build_prepost_tab(slot: ModelSlot, examples: list[tuple[str, str]], exports: ExportFolders | None = None) -> None:
    answers = PrePostAnswers(slot)

    with gr.Tab("Pre/post fusion") as tab:
        gr.Markdown(
            "Two photos of the same cervix in, before the stain (after normal saline) and after it (after acetic "
            "acid); the probability of Positive and the decision at a threshold out."
        )
        gr.Markdown(label_explanation("prepost_fusion"), elem_id="prepost_fusion-labels")
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    pre = gr.Image(label="Pre-stain image", sources=IMAGE_SOURCES, elem_id="prepost-pre")
                    post = gr.Image(label="Post-stain image", sources=IMAGE_SOURCES, elem_id="prepost-post")
                # Only the points the model defines, read from its config before it loads: the API offers these.
                defined = slot.planned_config().operating_points or {}
                offered = [
                    name for name in OPERATING_POINT_NAMES if (defined.get(name) or {}).get("threshold") is not None
                ]
                operating_point = gr.Radio(
                    [MODEL_DEFAULT, *offered, CUSTOM_THRESHOLD],
                    value=MODEL_DEFAULT,
                    label="Operating point",
                    info="Chosen on the validation split when the model was trained; only those the model defines.",
                    elem_id="prepost-operating-point",
                )
                threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Decision threshold", interactive=False)
                operating_point_info = gr.Markdown(label="Operating point", elem_id="prepost-operating-point-info")
                button = gr.Button("Classify the pair", variant="primary")
                if examples:
                    gr.Examples([list(pair) for pair in examples], inputs=[pre, post], label="Example pairs")
            with gr.Column():
                verdict = gr.Markdown("Upload both images to classify the pair.", label="Verdict")
                probabilities = gr.Label(label="Probabilities", elem_id="prepost-probabilities")
                attention = gr.Image(
                    label="Attention between the two images",
                    interactive=False,
                    format=DRAWN_IMAGE_FORMAT,
                    buttons=OUTPUT_IMAGE_BUTTONS,
                    elem_id="prepost-attention",
                )
                opacity = heatmap_opacity_slider("prepost-opacity")
                with gr.Accordion("Details (JSON)", open=False):
                    details = gr.JSON(label="Details")

    # The model loads on first use; the choices it defines are shown once the tab is opened, with a line that says
    # which they are (and so that the list is now the model's).
    tab.select(answers.show_operating_points, None, [operating_point, operating_point_info], api_name=False)
    operating_point.input(
        answers.show_operating_point,
        [operating_point, threshold],
        [threshold, operating_point_info],
        api_name="prepost_operating_point",
    )
    inputs = [pre, post, operating_point, threshold, opacity]
    outputs = [verdict, probabilities, attention, details]

    # As the other tabs: a change of either image (an upload, a chosen example, a removal) first clears the old
    # result, then classifies the pair as soon as both images are there; the button re-runs. A failed request
    # leaves no stale result. The operating point and every way of changing the threshold decide again, and the
    # opacity blends the attention again, from the pair's cached answer.
    rerun = gr.on([button.click], answers.cleared, None, outputs, queue=False, api_name=False)
    rerun.then(answers.classify, inputs, outputs, api_name="classify_prepost", preprocess=False)
    on_change = gr.on([pre.change, post.change], answers.cleared, None, outputs, queue=False, api_name=False)
    on_change.then(
        answers.classify_if_both, inputs, outputs, api_name=False, preprocess=False, trigger_mode="always_last"
    )
    gr.on(
        [operating_point.input, threshold.input, opacity.input],
        answers.classify_if_both,
        inputs,
        outputs,
        api_name=False,
        preprocess=False,
        trigger_mode="always_last",
    )
