"""The Models tab: where each model was loaded from, whether it is trained, its card, and its evaluation plots."""

from pathlib import Path

import gradio as gr

from ..evaluation_plots import plots_in
from .models import AppModels, ModelSlot


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
            cards.append(gr.Markdown(f"## {slot.task.title}\nNot loaded yet.", label=slot.task.name))
            galleries.append(gr.Gallery(label=f"{slot.task.title}: evaluation plots (from its training run)",
                                        columns=3, height="auto", elem_id=f"plots-{slot.task.name}"))  # fmt: skip
        button = gr.Button("Refresh")
    gr.on([tab.select, button.click], describe_all, None, cards + galleries, api_name="models")
