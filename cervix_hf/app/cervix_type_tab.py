"""The Cervix type tab: ColpoNet with its quality gate, and Grad-CAM."""

import gradio as gr

from cervix_hf.app.cache import ResultCache
from cervix_hf.app.exports import ExportFolders
from cervix_hf.app.inputs import bad_input, checked_flag, checked_opacity, read_upload, upload_digest
from cervix_hf.app.models import ModelSlot
from cervix_hf.app.widgets import (
    DEFAULT_HEATMAP_OPACITY,
    DRAWN_IMAGE_FORMAT,
    IMAGE_SOURCES,
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
from cervix_hf.prediction.explain import overlay_heatmap
from cervix_hf.prediction.inference import classify_cervix_type, explain_cervix_type, prepare_cervix_photo

OVERRIDE = "Classify even if the quality gate rejects the photo"


class CervixTypeAnswers:
    """What the Cervix type tab answers, for its model `slot`: the classification of a photo (cached by content, so the
    Grad-CAM request that follows explains the type shown without classifying again) and its Grad-CAM map."""

    def __init__(self, slot: ModelSlot):
        self.slot = slot
        # The classification of the last photos (their preprocessed pixels, gate verdict and prediction), by
        # content: only Grad-CAM's own forward and backward pass runs again, in PyTorch.
        self.cache = ResultCache()
        # Grad-CAM maps by the same key, so that moving the opacity slider only blends again.
        self.explanations = ResultCache()

    def classified(self, photo, ignore_quality_gate):
        image, _ = read_upload(photo, "photo", "colponet")
        loaded = self.slot.get()
        override = checked_flag(ignore_quality_gate, OVERRIDE)

        def compute():
            prepared = prepare_cervix_photo(loaded.processor, image)
            return prepared, classify_cervix_type(loaded.predictor, loaded.processor, prepared, override)

        key = (id(loaded.model), upload_digest(photo), override)
        return key, image, loaded, *self.cache.get_or_compute(key, compute)

    def classify(self, photo, ignore_quality_gate):
        _, _, loaded, _, prediction = self.classified(photo, ignore_quality_gate)
        verdict = f"**Quality gate:** {prediction.quality.message}\n\n"
        if not prediction.classified:
            verdict += f"**Not classified.** Tick *{OVERRIDE}* to override."
        else:
            overridden = "" if prediction.quality.is_acceptable else " (classified despite the quality gate: override)"
            probability = meaningless(f"{prediction.probabilities[prediction.label]:.1%}", loaded)
            verdict += f"{answer_heading(f'Most probable: {prediction.label}', loaded)} ({probability}){overridden}."
        details = {
            **prediction.to_dict(),
            "model": loaded.source.shown(),
            "trained": loaded.trained,
            "warning": loaded.warning,
        }
        probabilities = gr.Label(
            value=prediction.probabilities or None,
            label=result_label("Cervix type probabilities", loaded),
            elem_classes=marked(loaded),
        )
        return untrained_prefix(loaded) + verdict + model_footer(loaded), probabilities, details

    def explain(self, photo, ignore_quality_gate, opacity=DEFAULT_HEATMAP_OPACITY):
        if photo is None:
            raise bad_input("No photo: upload an image file (JPEG, PNG, TIFF or BMP).")
        opacity = checked_opacity(opacity)
        key, image, loaded, prepared, prediction = self.classified(photo, ignore_quality_gate)
        explanation = self.explanations.get_or_compute(
            key, lambda: explain_cervix_type(loaded.model, loaded.processor, prepared, key[2], prediction)
        )
        if explanation.heatmap is None:
            return gr.Image(value=None, label="Grad-CAM: the photo was not classified")
        title = f"Grad-CAM for {explanation.label}: what drove the prediction (red = most)"
        return gr.Image(
            value=overlay_heatmap(image, explanation.heatmap, alpha=opacity),
            label=result_label(title, loaded),
            elem_classes=marked(loaded),
        )

    def cleared(self):
        """Every output emptied: what shows while a new photo is classified, and after an error or a removal."""
        return "Upload a photo to classify it.", gr.Label(value=None), None, gr.Image(value=None)

    def classify_if_given(self, photo, ignore_quality_gate):
        return self.cleared()[:3] if photo is None else self.classify(photo, ignore_quality_gate)

    def explain_if_given(self, photo, ignore_quality_gate, opacity):
        return None if photo is None else self.explain(photo, ignore_quality_gate, opacity)


def build_cervix_type_tab(slot: ModelSlot, examples: list[str], exports: ExportFolders | None = None) -> None:
    """The tab's page and its events, each one call of a `CervixTypeAnswers` method."""
    answers = CervixTypeAnswers(slot)

    with gr.Tab("Cervix type"):
        gr.Markdown(
            "A colposcopy photo in; the transformation-zone type (1, 2 or 3) out. A quality gate first rejects "
            "blurry photos, which are not classified unless you override it."
        )
        gr.Markdown(label_explanation("colponet"), elem_id="colponet-labels")
        with gr.Row():
            with gr.Column():
                photo = gr.Image(label="Colposcopy photo", sources=IMAGE_SOURCES, elem_id="cervix-photo")
                ignore_quality_gate = gr.Checkbox(label=OVERRIDE)
                button = gr.Button("Classify", variant="primary")
                if examples:
                    gr.Examples([[path] for path in examples], inputs=photo, label="Example photos")
            with gr.Column():
                verdict = gr.Markdown("Upload a photo to classify it.", label="Verdict")
                probabilities = gr.Label(
                    label="Cervix type probabilities", num_top_classes=3, elem_id="cervix-probabilities"
                )
                heatmap = gr.Image(
                    label="Grad-CAM",
                    interactive=False,
                    format=DRAWN_IMAGE_FORMAT,
                    buttons=OUTPUT_IMAGE_BUTTONS,
                    elem_id="cervix-grad-cam",
                )
                opacity = heatmap_opacity_slider("cervix-opacity")
                with gr.Accordion("Details (JSON)", open=False):
                    details = gr.JSON(label="Details")
    inputs, outputs = [photo, ignore_quality_gate], [verdict, probabilities, details]

    # Any change of the photo (an upload, an example chosen, a removal) first clears the old result, then
    # classifies the new photo; so does the button (a re-run) and the override. A failed request leaves no stale
    # result behind.
    on_change = photo.change(answers.cleared, None, [*outputs, heatmap], queue=False, api_name=False)
    on_change = on_change.then(answers.classify_if_given, inputs, outputs, preprocess=False, api_name=False)
    rerun = gr.on(
        [button.click, ignore_quality_gate.input],
        answers.cleared,
        None,
        [*outputs, heatmap],
        queue=False,
        api_name=False,
    )
    event = rerun.then(answers.classify, inputs, outputs, api_name="classify_cervix_type", preprocess=False)
    event.success(answers.explain, [*inputs, opacity], heatmap, api_name="cervix_grad_cam", preprocess=False)

    on_change.success(answers.explain_if_given, [*inputs, opacity], heatmap, api_name=False, preprocess=False)
    # The opacity blends the cached map again, from every way of moving the slider, the last one winning.
    opacity.input(
        answers.explain_if_given,
        [*inputs, opacity],
        heatmap,
        api_name=False,
        preprocess=False,
        trigger_mode="always_last",
    )
