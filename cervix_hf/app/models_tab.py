"""The Models tab: where each model was loaded from, whether it is trained, its card, and its evaluation plots."""

import json
from pathlib import Path

import gradio as gr

from cervix_hf.app.models import AppModels, ModelSlot
from cervix_hf.evaluation.metrics import wilson_interval
from cervix_hf.evaluation.plots import plots_in
from cervix_hf.io.files import EVAL_RESULTS_FILE
from cervix_hf.registry import family

# Pixels of a model's description and card before it scrolls.
CARD_MAX_HEIGHT = 700


def describe_model(slot: ModelSlot) -> str:
    loaded = slot.get()
    config = loaded.model.config
    labels = ", ".join(config.id2label[i] for i in range(config.num_labels))
    parameters = sum(parameter.numel() for parameter in loaded.model.parameters())
    lines = [
        f"## {slot.task.title}",
        f"- **Loaded from:** {loaded.source.shown()}",
        trained_line(loaded),
        f"- **Runtime:** {loaded.runtime}",
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


def trained_line(loaded) -> str:
    """Whether the model is trained, and what its evaluation says (with its interval and size), not just "yes"."""
    if not loaded.trained:
        return f"- **Trained:** **no: {loaded.warning}**"
    if loaded.source.kind != "folder":
        return "- **Trained:** yes; its evaluation is in its card below"
    path = Path(loaded.source.location) / EVAL_RESULTS_FILE
    if not path.is_file():
        return (
            f"- **Trained:** yes, with no evaluation file ({EVAL_RESULTS_FILE}) where it was loaded from: how "
            "well it does is unknown"
        )
    try:
        return f"- **Evaluation:** {evaluation_summary(json.loads(path.read_text()))}"
    except (ValueError, KeyError, TypeError, ZeroDivisionError) as error:
        return f"- **Trained:** yes; its {EVAL_RESULTS_FILE} could not be read ({error})"


def _interval(successes: int, total: int) -> str:
    if total == 0:
        return "no cases to measure it on"
    low, high = wilson_interval(successes, total)
    return f"95% interval {low:.2f}-{high:.2f}"


def evaluation_summary(eval_results: dict) -> str:
    """The evaluation's main figure with its 95% Wilson interval, how many it was measured on, and on what data."""
    metrics, split = eval_results["metrics"], eval_results.get("evaluated_on", "test")
    source = eval_results["data"].get("source", "unnamed data")
    kind = family(eval_results["model_type"]).evaluation_plots  # the kind of evaluation its record declares
    if kind == "binary":
        (tn, fp), (fn, tp) = metrics["report"]["confusion_matrix"]
        return (
            f"at threshold {metrics['threshold']:.2f}, sensitivity {tp / max(1, tp + fn):.2f} "
            f"({_interval(tp, tp + fn)}) on {tp + fn} Positive and specificity {tn / max(1, tn + fp):.2f} "
            f"({_interval(tn, tn + fp)}) on {tn + fp} Negative {split} cases of {source}"
        )
    if kind == "detection":
        baseline = (eval_results.get("classical_baseline") or {}).get("metrics", {}).get("map_50")
        beside = f"; the classical baseline's {baseline:.2f} on the same images" if baseline is not None else ""
        return f"mAP@.5 {metrics['map_50'] or 0:.2f} on {metrics['num_images']} {split} images of {source}{beside}"
    matrix = metrics["confusion_matrix"]
    total, hits = sum(map(sum, matrix)), sum(matrix[i][i] for i in range(len(matrix)))
    chance = 1 / len(matrix)
    return (
        f"accuracy {hits / total:.2f} ({_interval(hits, total)}) on {total} {split} photos of {source} "
        f"(chance: {chance:.2f})"
    )


def model_plots(slot: ModelSlot) -> list[tuple[str, str]]:
    """The evaluation plots of a model loaded from a local folder (`plots/`, drawn by training), with titles."""
    loaded = slot.get()
    if loaded.source.kind != "folder":
        return []
    folder = Path(loaded.source.location)
    return [(str(folder / plot.path), plot.title) for plot in plots_in(folder)]


def build_models_tab(models: AppModels) -> None:
    def describe_all():
        return [describe_model(slot) for slot in models] + [model_plots(slot) or None for slot in models]

    with gr.Tab("Models") as tab:
        gr.Markdown(
            "For each model: where it was loaded from and whether it is trained, then its card. Opening this tab "
            "loads any model not used yet."
        )
        cards, galleries = [], []
        for slot in models:
            # A long card scrolls inside its box: with every card open the tab stays a few screens tall.
            cards.append(
                gr.Markdown(
                    f"## {slot.task.title}\nNot loaded yet.",
                    label=slot.task.name,
                    max_height=CARD_MAX_HEIGHT,
                    elem_id=f"card-{slot.task.name}",
                )
            )
            galleries.append(
                gr.Gallery(
                    label=f"{slot.task.title}: evaluation plots (from its training run)",
                    columns=3,
                    height="auto",
                    elem_id=f"plots-{slot.task.name}",
                )
            )
        button = gr.Button("Refresh")
    gr.on([tab.select, button.click], describe_all, None, cards + galleries, api_name="models")
