"""What every tab shows alike: constants of the page, results marked as an untrained model's, headings, footers, the
heat-map slider and what a model's labels mean."""

import gradio as gr

from cervix_hf.app.models import LoadedModel

DEFAULT_DETECTION_THRESHOLD = 0.5


MODEL_DEFAULT = "model default"


CUSTOM_THRESHOLD = "custom threshold"


# Distinct colours (Sasha Trubetskoy's list), one per cell class in the model's class order.
CLASS_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")


IMAGE_SOURCES = ["upload", "clipboard"]


OUTPUT_IMAGE_BUTTONS = ["download", "fullscreen"]  # not "share", which posts to the Hub


# Drawn images are sent as JPEG: PNG took ~190 ms to encode an 800x600 overlay, JPEG takes ~2 ms.
DRAWN_IMAGE_FORMAT = "jpeg"


def untrained_prefix(loaded: LoadedModel) -> str:
    return f"## ⚠️ {loaded.warning}\n\n" if loaded.warning else ""


# An untrained model's results are marked where they are shown: their components carry this class, which the page's
# style greys out, their labels say the output is meaningless, and the verdicts call the answer random.
UNTRAINED_CLASS = "untrained-output"


APP_CSS = f".{UNTRAINED_CLASS} {{ opacity: 0.45; filter: grayscale(1); }}"


UNTRAINED_ANSWER = "Untrained model, random output"


def marked(loaded: LoadedModel) -> list[str]:
    """The `elem_classes` of a result component: greyed out when the model is untrained."""
    return [] if loaded.trained else [UNTRAINED_CLASS]


def answer_heading(answer: str, loaded: LoadedModel) -> str:
    """`answer` in bold, called a random output when the model is untrained."""
    return f"**{answer}**" if loaded.trained else f"**{UNTRAINED_ANSWER}: {answer}**"


def meaningless(figure: str, loaded: LoadedModel) -> str:
    """A figure of the answer (a probability, a score), said to mean nothing when the model is untrained."""
    return figure if loaded.trained else f"{figure}: meaningless"


# Heat maps are blended over the photo at this opacity unless the user moves the tab's slider.
DEFAULT_HEATMAP_OPACITY = 0.45


def heatmap_opacity_slider(elem_id: str) -> gr.Slider:
    return gr.Slider(0.0, 1.0, value=DEFAULT_HEATMAP_OPACITY, step=0.05, label="Heat-map opacity", elem_id=elem_id)


def result_label(title: str, loaded: LoadedModel) -> str:
    return f"{title} ({loaded.warning})" if loaded.warning else title


def model_footer(loaded: LoadedModel) -> str:
    return f"\n\n*Model: {loaded.source.shown()}. Research demo, not a diagnosis.*"


def card_link(model_type: str) -> str:
    """A Markdown link to the published model card of `model_type` (its repo, or the one its variable names)."""
    from cervix_hf.hub.repos import model_repo_id, split_revision

    repo_id, _ = split_revision(model_repo_id(model_type))
    return f"[model card](https://huggingface.co/{repo_id})"


def label_explanation(model_type: str) -> str:
    """What the model's labels mean (its record's `label_explanation`), with a link to its card."""
    from cervix_hf.registry import family

    return f"{family(model_type).label_explanation} More in the {card_link(model_type)}."
