"""Model cards rendered from what a training run wrote, and checked against it.

A card is one Jinja template per model, `model_cards/<model_type>.md.j2` (with the shared macros of
`model_cards/_macros.md.j2`), rendered by huggingface_hub's `ModelCard.from_template` from the model folder's
`config.json`, `preprocessor_config.json`, `eval_results.json` and `training_args.json`. The templates live in
`model_cards/` at the repository root and travel inside the installed package (`cervix_hf/model_cards/`).

The template sees those files only as tracked fields (`ev`, `config`, `processor`, `args`): a string field prints
as itself, but a number can only be printed through `num`, `pct`, `count` or `val`, and every printed value records
which file and key it came from and where it landed in the card. [`render_model_card`] returns a card only after
[`check_model_card`] (`cervix_hf.hub.card_checks`) has:

- checked the evaluation file's numbers against each other ([`check_eval_results`]): a tampered accuracy no longer
  matches its confusion matrix;
- read every recorded value back from the card's text and compared it with the files as they are on disk;
- parsed the card's `model-index` metadata back and compared it with the evaluation file;
- refused numbers in tables that no file gave, tables without rows, and missing or empty required sections.

Render a card for an existing checkpoint with `cervix-hf render-card --model-dir DIR`.
"""

from pathlib import Path

import jinja2
import jinja2.meta
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from cervix_hf.evaluation.plots import evaluations_in, plots_in
from cervix_hf.hub.card_checks import check_eval_results, check_model_card
from cervix_hf.hub.card_spec import (
    DATASETS,
    INDEX_DIGITS,
    MACROS_TEMPLATE,
    MODEL_LICENSE,
    REQUIRED_SECTIONS,
    TEMPLATES_DIR,
    Dataset,
    ModelCardError,
    lookup_or_none,
    read_sources,
)
from cervix_hf.hub.card_values import CardValue, Field, Printer
from cervix_hf.hub.repos import DEFAULT_REVISION
from cervix_hf.io.files import CARD_FILE, CONFIG_FILE, EVAL_RESULTS_FILE, atomic_write_text
from cervix_hf.registry import FAMILIES_BY_TYPE


def render_model_card(
    model_dir,
    repo_id: str | None = None,
    revision: str = DEFAULT_REVISION,
    template_path=None,
) -> ModelCard:
    r"""
    Renders and checks the model card of a run's output folder (or a staged copy of it).

    Args:
        model_dir (`str` or `Path`):
            Folder with `config.json`, `preprocessor_config.json`, `eval_results.json` and `training_args.json`.
        repo_id (`str`, *optional*, defaults to the published repo of the model type, `cervix_hf.hub`):
            The Hub repo the card's code loads the model from.
        revision (`str`, *optional*, defaults to `"main"`):
            The branch, tag or commit the card's code pins.
        template_path (`str` or `Path`, *optional*, defaults to `model_cards/<model_type>.md.j2`):
            Another template.

    Returns:
        `huggingface_hub.ModelCard`: the card; `str(card)` is the README.md text.

    Raises:
        [`ModelCardError`]: listing every problem found (a missing file or key, an inconsistent evaluation file,
        a number in the card that disagrees with the files, an empty required section).
    """
    card, values = build_model_card(model_dir, repo_id, revision, template_path)
    check_model_card(str(card), values, model_dir)
    return card


def write_model_card(model_dir, repo_id: str | None = None, revision: str = DEFAULT_REVISION) -> Path:
    """Renders the card of `model_dir` (see [`render_model_card`]) and saves it as `model_dir/README.md`."""
    card = render_model_card(model_dir, repo_id=repo_id, revision=revision)
    path = Path(model_dir) / CARD_FILE
    atomic_write_text(path, str(card))
    return path


def build_model_card(
    model_dir, repo_id: str | None = None, revision: str = DEFAULT_REVISION, template_path=None
) -> tuple[ModelCard, list[CardValue]]:
    r"""
    Renders a card as [`render_model_card`] does, without its final check, and returns what it printed from the
    run's files and where: what [`check_model_card`] needs. Missing files or keys, an inconsistent evaluation file
    and template mistakes (a number printed without a formatting function, an unknown name) still raise
    [`ModelCardError`].
    """
    model_dir = Path(model_dir)
    sources = read_sources(model_dir)
    model_type = sources["config"].get("model_type")
    if model_type not in FAMILIES_BY_TYPE:
        raise ModelCardError(f"{model_dir / CONFIG_FILE}: no model card for model_type {model_type!r}.")
    if sources["eval"].get("model_type") != model_type:
        raise ModelCardError(
            f"{model_dir / EVAL_RESULTS_FILE} evaluates a {sources['eval'].get('model_type')!r} model but "
            f"{CONFIG_FILE} holds a {model_type!r}: the files come from different runs."
        )
    check_eval_results(sources["eval"], str(model_dir / EVAL_RESULTS_FILE))
    record = FAMILIES_BY_TYPE[model_type]
    template_path = Path(template_path) if template_path else TEMPLATES_DIR / record.card_template
    template_str = _read_template(TEMPLATES_DIR / MACROS_TEMPLATE) + _read_template(template_path)

    printer = Printer()
    repo_id = repo_id or record.repo_id
    dataset = _dataset_of(model_type, sources["eval"])
    card_data = _card_data(record, sources, repo_id, dataset)
    template_kwargs = {
        "ev": Field(printer, "eval", (), sources["eval"]),
        "config": Field(printer, "config", (), sources["config"]),
        "processor": Field(printer, "processor", (), sources["processor"]),
        "args": Field(printer, "args", (), sources["args"]),
        "num": printer.num,
        "pct": printer.pct,
        "count": printer.count,
        "val": printer.val,
        "repo_id": repo_id,
        "revision": revision,
        "version": _package_version(),
        "dataset": dataset,
        "architecture": _architecture(sources["config"]),
        "pretrained_note": _pretrained_note(card_data.base_model),
        "plots": plots_in(model_dir),
        "evaluations": evaluations_in(model_dir),
    }
    _check_template_names(template_str, template_path, {"card_data", *card_data.to_dict(), *template_kwargs})
    try:
        card = ModelCard.from_template(card_data, template_str=template_str, **template_kwargs)
    except jinja2.TemplateError as err:
        raise ModelCardError(f"{template_path}: {err}") from err
    text, values = printer.substitute(str(card))
    card = ModelCard(text)
    if str(card) != text:  # the YAML block must round-trip, or the recorded positions would be off
        raise ModelCardError(f"{template_path}: the card's metadata block does not round-trip through ModelCard.")
    return card, values


def _read_template(path: Path) -> str:
    if not path.is_file():
        raise ModelCardError(
            f"Model card template {path} not found (the project's templates are model_cards/ in a checkout and "
            "cervix_hf/model_cards/ in an installed package: reinstall cervix_hf, or restore the folder)."
        )
    return path.read_text(encoding="utf-8")


def _check_template_names(template_str: str, template_path: Path, provided: set[str]) -> None:
    """A name the template uses but nobody provides would render as nothing: refuse it."""
    try:
        used = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(template_str))
    except jinja2.TemplateSyntaxError as err:
        raise ModelCardError(f"{template_path}, line {err.lineno}: {err.message}") from err
    unknown = sorted(used - provided)
    if unknown:
        raise ModelCardError(f"{template_path} uses {', '.join(unknown)}, which the renderer does not provide.")


def _card_data(record, sources: dict, repo_id: str, dataset: Dataset) -> ModelCardData:
    eval_results, config = sources["eval"], sources["config"]
    index = []
    for metric in record.index_metrics:
        value = lookup_or_none(eval_results, metric.path)
        if value is not None:
            index.append(
                EvalResult(
                    task_type=record.pipeline_tag,
                    dataset_type=dataset.slug,
                    dataset_name=dataset.name,
                    dataset_split=eval_results.get("evaluated_on", "test"),
                    metric_type=metric.type,
                    metric_name=metric.name,
                    metric_value=round(float(value), INDEX_DIGITS),
                )
            )
    return ModelCardData(
        **MODEL_LICENSE,
        library_name="transformers",
        pipeline_tag=record.pipeline_tag,
        tags=["medical", "cervical-cancer", "research-only", "custom_code", record.model_type],
        base_model=config.get("backbone") if config.get("use_pretrained_backbone") else None,
        datasets=[dataset.slug],
        metrics=[metric.type for metric in record.index_metrics],
        model_name=repo_id.split("/")[-1],
        eval_results=index or None,
    )


# Words in a data folder's name that tell its data set (the shared data keeps each set's own folder name).
DATASET_NAME_HINTS = {
    "intel-mobileodt": ("mobileodt", "intel"),
    "isbi2014": ("isbi", "edf"),
    "sipakmed": ("sipakmed",),
    "iarc-atlas": ("iarc",),
    "herlev": ("herlev",),
}


def _dataset_of(model_type: str, eval_results: dict) -> Dataset:
    """The dataset a run trained on, from what its evaluation file says about the data: the data set it names, the
    annotation format it read, or its folder's name."""
    data = eval_results.get("data", {})
    source = str(data.get("source", ""))
    name = Path(source).name.lower()
    if data.get("dataset") in DATASETS:  # a run that names its data set
        return DATASETS[data["dataset"]]
    if data.get("format") in DATASETS:  # a detection run records the annotation format it read
        return DATASETS[data["format"]]
    if data.get("post_view"):  # only the IARC atlas layout has post-stain views to choose from
        return DATASETS["iarc-atlas"]
    for slug, hints in DATASET_NAME_HINTS.items():  # else the data folder's name
        if any(hint in name for hint in hints):
            return DATASETS[slug]
    return Dataset(
        name=f"custom data ({Path(source).name or 'unnamed'})",
        slug="custom",
        url=None,
        licence="not recorded by the run: state the data's licence and terms before publishing this model",
        citation="not recorded by the run: cite the data's source before publishing this model",
    )


def _architecture(config: dict) -> str:
    backbone = config.get("backbone_config") or {}
    if backbone.get("depths") == [3, 4, 6, 3] and backbone.get("hidden_sizes") == [256, 512, 1024, 2048]:
        return "ResNet-50"
    parts = []
    if backbone.get("layer_type"):
        parts.append(f"{backbone['layer_type']} blocks")
    for name, key in (("depths", "depths"), ("widths", "hidden_sizes")):
        if backbone.get(key):
            parts.append(f"{name} {'-'.join(map(str, backbone[key]))}")
    layout = ", ".join(parts)
    return f"reduced ResNet ({layout}; not the published ResNet-50)" if layout else "reduced ResNet"


def _pretrained_note(base_model: str | None) -> str:
    if base_model:
        return (
            f"initialised from `{base_model}` (ImageNet) when training started; the run's files do not "
            "record whether the download succeeded (training warns and falls back to random weights when the Hub "
            "is unreachable)"
        )
    return "trained from random weights (no ImageNet initialisation)"


def _package_version() -> str:
    from cervix_hf import __version__

    return __version__


__all__ = [
    "REQUIRED_SECTIONS",
    "TEMPLATES_DIR",
    "CardValue",
    "ModelCardError",
    "build_model_card",
    "check_model_card",
    "render_model_card",
    "write_model_card",
]
