"""Model cards rendered from what a training run wrote, and checked against it.

A card is one Jinja template per model, `model_cards/<model_type>.md.j2` (with the shared macros of
`model_cards/_macros.md.j2`), rendered by huggingface_hub's `ModelCard.from_template` from the model folder's
`config.json`, `preprocessor_config.json`, `eval_results.json` and `training_args.json`. The templates live in
`model_cards/` at the repository root and travel inside the installed package (`cervix_hf/model_cards/`).

The template sees those files only as tracked fields (`ev`, `config`, `processor`, `args`): a string field prints
as itself, but a number can only be printed through `num`, `pct`, `count` or `val`, and every printed value records
which file and key it came from and where it landed in the card. [`render_model_card`] returns a card only after
[`check_model_card`] has:

- checked the evaluation file's numbers against each other ([`check_eval_results`]): a tampered accuracy no longer
  matches its confusion matrix;
- read every recorded value back from the card's text and compared it with the files as they are on disk;
- parsed the card's `model-index` metadata back and compared it with the evaluation file;
- refused numbers in tables that no file gave, tables without rows, and missing or empty required sections.

Render a card for an existing checkpoint with `cervix-hf render-card --model-dir DIR`.
"""

import json
import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import jinja2
import jinja2.meta
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .eval_results import eval_results_problems
from .files import CARD_FILE, CONFIG_FILE, EVAL_RESULTS_FILE, PROCESSOR_FILE, TRAINING_ARGS_FILE, atomic_write_text
from .hub import DEFAULT_REVISION
from .registry import FAMILIES_BY_TYPE

# Where each tracked source of a template comes from.
SOURCE_FILES = {
    "eval": EVAL_RESULTS_FILE,
    "config": CONFIG_FILE,
    "processor": PROCESSOR_FILE,
    "args": TRAINING_ARGS_FILE,
}


def _templates_dir() -> Path:
    """The templates inside the installed package, else at the root of the checkout this package runs from."""
    package_dir = Path(__file__).resolve().parent
    installed, checkout = package_dir / "model_cards", package_dir.parent / "model_cards"
    return checkout if checkout.is_dir() and not installed.is_dir() else installed


TEMPLATES_DIR = _templates_dir()
MACROS_TEMPLATE = "_macros.md.j2"

# The weights inherit the research-only terms of their training data (see each card's licence section).
MODEL_LICENSE = {"license": "other", "license_name": "research-only"}

REQUIRED_SECTIONS = (
    "Model details",
    "Version and changelog",
    "Uses",
    "Direct use",
    "Downstream use",
    "Out-of-scope use",
    "Bias, risks and limitations",
    "How to get started",
    "Input specification",
    "Labels",
    "Training data",
    "Training procedure",
    "Evaluation",
    "Hardware and software",
    "Citation and data licences",
)
INDEX_DIGITS = 4
NOT_AVAILABLE = "n/a"


class ModelCardError(ValueError):
    """A model card cannot be rendered: a file is missing or inconsistent, or the card disagrees with the files."""


@dataclass(frozen=True)
class Dataset:
    """What a card says about a training dataset."""

    name: str
    slug: str
    url: Optional[str]
    licence: str
    citation: str


DATASETS = {
    "intel-mobileodt": Dataset(
        name="Intel & MobileODT Cervical Cancer Screening",
        slug="intel-mobileodt-cervical-cancer-screening",
        url="https://www.kaggle.com/competitions/intel-mobileodt-cervical-cancer-screening",
        licence="the Kaggle competition's rules: research use; the images are not redistributed with the model",
        citation="Intel & MobileODT Cervical Cancer Screening. Kaggle, 2017.",
    ),
    "iarc-atlas": Dataset(
        name="IARC Atlas of Colposcopy",
        slug="iarc-colposcopy-atlas",
        url="https://screening.iarc.fr/atlascolpo.php",
        licence="IARC owns the images: research and education use only, with citation",
        citation="IARC Screening Group. Atlas of Colposcopy: Principles and Practice. International Agency for "
        "Research on Cancer, Lyon.",
    ),
    "isbi2014": Dataset(
        name="ISBI 2014 Overlapping Cervical Cytology Image Segmentation Challenge (EDF images)",
        slug="isbi2014-overlapping-cervical-cytology",
        url=None,
        licence="the challenge's terms: research use, with citation",
        citation="Lu Z., Carneiro G., Bradley A. P. et al. An improved joint optimization of multiple level set "
        "functions for the segmentation of overlapping cervical cells. IEEE Transactions on Image Processing, 2015.",
    ),
    "sipakmed": Dataset(
        name="SIPaKMeD",
        slug="sipakmed",
        url="https://www.cs.uoi.gr/~marina/sipakmed.html",
        licence="research use, with citation of the dataset paper",
        citation="Plissiti M. E., Dimitrakopoulos P., Sfikas G. et al. SIPaKMeD: a new dataset for feature and "
        "image based classification of normal and pathological cervical cells in Pap smear images. ICIP 2018.",
    ),
}


@dataclass(frozen=True)
class CardValue:
    r"""
    One value a card shows from a run's file, and where it shows it.

    Args:
        source (`str`): `"eval"`, `"config"`, `"processor"` or `"args"` (see `SOURCE_FILES`).
        path (`tuple`): keys (and list indices) of the value in that file.
        style (`str`): how it was printed: `"fixed"` (`digits` decimals), `"percent"`, `"count"`, `"general"`,
            `"text"` or `"bool"`.
        digits (`int` or `None`): decimals of `"fixed"` and `"percent"`.
        start (`int`), end (`int`): where the printed text lies in the card (`card_text[start:end]`).
    """

    source: str
    path: tuple
    style: str
    digits: Optional[int]
    start: int
    end: int

    def describe(self) -> str:
        return f"{SOURCE_FILES[self.source]} {_dotted(self.path)}"


def render_model_card(
    model_dir,
    repo_id: Optional[str] = None,
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


def write_model_card(model_dir, repo_id: Optional[str] = None, revision: str = DEFAULT_REVISION) -> Path:
    """Renders the card of `model_dir` (see [`render_model_card`]) and saves it as `model_dir/README.md`."""
    card = render_model_card(model_dir, repo_id=repo_id, revision=revision)
    path = Path(model_dir) / CARD_FILE
    atomic_write_text(path, str(card))
    return path


def check_model_card(card_text: str, values: list[CardValue], model_dir) -> None:
    r"""
    Checks a rendered card against the run's files as they are on disk now.

    Args:
        card_text (`str`):
            The card, YAML metadata included (`str(card)`).
        values (`list[CardValue]`):
            What the template printed from the files, and where (recorded while rendering).
        model_dir (`str` or `Path`):
            The folder whose files the card was rendered from.

    Raises:
        [`ModelCardError`]: listing every problem found.
    """
    sources = read_sources(Path(model_dir))
    model_type = sources["config"].get("model_type")
    problems = eval_results_problems(sources["eval"])
    problems += _value_problems(card_text, values, sources)
    problems += _index_problems(card_text, sources["eval"], model_type)
    record = FAMILIES_BY_TYPE.get(model_type)
    problems += _section_problems(card_text, REQUIRED_SECTIONS + (record.card_sections if record else ()))
    problems += _table_problems(card_text, values)
    if problems:
        raise ModelCardError(f"The model card of {model_dir} is wrong:\n- " + "\n- ".join(problems))


def check_eval_results(eval_results: dict, model_type: str, name: str = EVAL_RESULTS_FILE) -> None:
    r"""
    Checks that the numbers of an `eval_results.json` agree with each other: class counts, supports, per-class
    and averaged rates and accuracy against the confusion matrix (classifiers); mean AP and recall against the
    per-class ones and ground-truth boxes against the test split (detector); [`check_binary_consistency`] and the
    test split's class counts (pre/post fusion). `name` names the file in the error.

    Raises:
        [`ModelCardError`]: listing every contradiction.
    """
    problems = eval_results_problems(eval_results)
    if problems:
        raise ModelCardError(f"{name} contradicts itself:\n- " + "\n- ".join(problems))


def read_sources(model_dir: Path) -> dict[str, dict]:
    """The four files a card is rendered from, by source name; a clear error for a missing or unreadable one."""
    sources = {}
    for source, name in SOURCE_FILES.items():
        path = model_dir / name
        if not path.is_file():
            raise ModelCardError(
                f"{path} is missing: a model card is rendered from the output folder of a training run "
                "(train/train_*.py --output-dir), which holds it."
            )
        try:
            sources[source] = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelCardError(f"{path} is not valid JSON: {err}.") from err
    return sources


def build_model_card(
    model_dir, repo_id: Optional[str] = None, revision: str = DEFAULT_REVISION, template_path=None
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
    check_eval_results(sources["eval"], model_type, str(model_dir / EVAL_RESULTS_FILE))
    record = FAMILIES_BY_TYPE[model_type]
    template_path = Path(template_path) if template_path else TEMPLATES_DIR / record.card_template
    template_str = _read_template(TEMPLATES_DIR / MACROS_TEMPLATE) + _read_template(template_path)

    printer = _Printer()
    repo_id = repo_id or record.repo_id
    dataset = _dataset_of(model_type, sources["eval"])
    card_data = _card_data(record, sources, repo_id, dataset)
    template_kwargs = {
        "ev": _Field(printer, "eval", (), sources["eval"]),
        "config": _Field(printer, "config", (), sources["config"]),
        "processor": _Field(printer, "processor", (), sources["processor"]),
        "args": _Field(printer, "args", (), sources["args"]),
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


# ----------------------------------------------------------------------------------------------------------------
# Rendering helpers


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
        value = _lookup_or_none(eval_results, metric.path)
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


def _dataset_of(model_type: str, eval_results: dict) -> Dataset:
    """The dataset a run trained on, from what its evaluation file says about the data."""
    data = eval_results.get("data", {})
    source = str(data.get("source", ""))
    name = Path(source).name.lower()
    if model_type == "colponet" and ("mobileodt" in name or "intel" in name):
        return DATASETS["intel-mobileodt"]
    if model_type == "cell_detector":
        found = data.get("format") if data.get("format") in DATASETS else None
        if found is None and ("isbi" in name or "edf" in name):
            found = "isbi2014"
        if found is None and "sipakmed" in name:
            found = "sipakmed"
        if found:
            return DATASETS[found]
    if model_type == "prepost_fusion" and (data.get("post_view") or "iarc" in name):
        return DATASETS["iarc-atlas"]
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
    return "reduced ResNet (a smoke-test size, not the published ResNet-50)"


def _pretrained_note(base_model: Optional[str]) -> str:
    if base_model:
        return (
            f"initialised from `{base_model}` (ImageNet) when training started; the run's files do not "
            "record whether the download succeeded (training warns and falls back to random weights when the Hub "
            "is unreachable)"
        )
    return "trained from random weights (no ImageNet initialisation)"


def _package_version() -> str:
    from . import __version__

    return __version__


class _Printer:
    """Prints the template's values as placeholders, remembering what each one is; `substitute` puts the text in."""

    _PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")

    def __init__(self):
        self._printed: list[tuple[str, tuple, str, Optional[int], str]] = []

    def num(self, field, digits: int = 3) -> str:
        """A number with `digits` decimals (`n/a` for null)."""
        value = self._number(field, "num")
        return self._print(field, "fixed", digits, NOT_AVAILABLE if value is None else f"{value:.{digits}f}")

    def pct(self, field, digits: int = 1) -> str:
        """A fraction as a percentage with `digits` decimals (`n/a` for null)."""
        value = self._number(field, "pct")
        return self._print(field, "percent", digits, NOT_AVAILABLE if value is None else f"{100 * value:.{digits}f}%")

    def count(self, field) -> str:
        """A whole number (e.g. a support stored as 4.0)."""
        value = self._number(field, "count")
        if value is None or not float(value).is_integer():
            raise ModelCardError(f"count() of {field._describe()} needs a whole number, got {value!r}.")
        return self._print(field, "count", None, str(int(value)))

    def val(self, field) -> str:
        """Any value as it is: a whole number, a float to 6 significant digits, a string, yes/no, a list of them."""
        self._check_field(field, "val")
        value = field._value
        if isinstance(value, list):
            return ", ".join(self.val(item) for item in field) or "none"
        if value is None:
            return self._print(field, "text", None, NOT_AVAILABLE)
        if isinstance(value, bool):
            return self._print(field, "bool", None, "yes" if value else "no")
        if isinstance(value, int):
            return self._print(field, "count", None, str(value))
        if isinstance(value, float):
            return self._print(field, "general", None, f"{value:g}")
        if isinstance(value, str):
            return self._print(field, "text", None, value)
        raise ModelCardError(f"val() cannot print {field._describe()}, a {type(value).__name__}.")

    def substitute(self, rendered: str) -> tuple[str, list[CardValue]]:
        pieces, values, position, length = [], [], 0, 0
        for match in self._PLACEHOLDER.finditer(rendered):
            before = rendered[position : match.start()]
            pieces.append(before)
            length += len(before)
            source, path, style, digits, text = self._printed[int(match.group(1))]
            values.append(CardValue(source, path, style, digits, length, length + len(text)))
            pieces.append(text)
            length += len(text)
            position = match.end()
        pieces.append(rendered[position:])
        return "".join(pieces), values

    def _number(self, field, function: str):
        self._check_field(field, function)
        value = field._value
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ModelCardError(f"{function}() of {field._describe()} needs a number, got {value!r}.")
        return value

    @staticmethod
    def _check_field(field, function: str) -> None:
        if not isinstance(field, _Field):
            raise ModelCardError(
                f"{function}() was given {field!r}, which no run file holds: a card prints only values read from "
                "the run's files (ev, config, processor, args)."
            )

    def _print(self, field: "_Field", style: str, digits: Optional[int], text: str) -> str:
        self._printed.append((field._source, field._path, style, digits, text))
        return f"\ue000{len(self._printed) - 1}\ue001"


class _Field:
    """
    A value of one of the run's files, as the template sees it: keys and indices give more fields (a missing key is
    an error naming the file; `.get(key)` reads a missing one as null); a string prints as itself; a number prints only
    through the printer's functions. `is_none`, `equals(x)` and truthiness serve conditions.
    """

    def __init__(self, printer: _Printer, source: str, path: tuple, value: Any):
        self._printer, self._source, self._path, self._value = printer, source, path, value

    def __getattr__(self, name: str) -> "_Field":
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, key) -> "_Field":
        if isinstance(key, _Field):  # e.g. a label name read from the file, used as a key
            key = key._value
        value = self._value
        if isinstance(value, dict) and key in value:
            return _Field(self._printer, self._source, self._path + (key,), value[key])
        if isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            return _Field(self._printer, self._source, self._path + (key % len(value),), value[key])
        raise ModelCardError(f"{SOURCE_FILES[self._source]} has no {_dotted(self._path + (key,))}.")

    def get(self, key) -> "_Field":
        """The value at `key`, or null (printed as n/a) when the file has no such key."""
        if isinstance(self._value, dict) and key in self._value:
            return self[key]
        return _Field(self._printer, self._source, self._path + (key,), None)

    def items(self) -> list[tuple[str, "_Field"]]:
        return [(key, self[key]) for key in self._mapping()]

    def keys(self) -> list[str]:
        return list(self._mapping())

    @property
    def is_none(self) -> bool:
        return self._value is None

    def equals(self, other) -> bool:
        return self._value == (other._value if isinstance(other, _Field) else other)

    def __iter__(self):
        if isinstance(self._value, dict):
            return iter(self.keys())
        if isinstance(self._value, list):
            return iter([self[index] for index in range(len(self._value))])
        raise ModelCardError(f"{self._describe()} is not a list or a mapping: it cannot be looped over.")

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        if isinstance(self._value, str):
            return self._printer.val(self)
        if isinstance(self._value, bool):
            return self._printer.val(self)
        raise ModelCardError(
            f"The template prints {self._describe()} ({self._value!r}) directly: print numbers through num(), pct(), "
            "count() or val() so the card can be checked against the file."
        )

    def _mapping(self) -> dict:
        if not isinstance(self._value, dict):
            raise ModelCardError(f"{self._describe()} is not a mapping.")
        return self._value

    def _describe(self) -> str:
        return f"{SOURCE_FILES[self._source]} {_dotted(self._path) or '(the whole file)'}"


# ----------------------------------------------------------------------------------------------------------------
# Checks


def _value_problems(card_text: str, values: list[CardValue], sources: dict) -> list[str]:
    problems = []
    for value in values:
        shown = card_text[value.start : value.end]
        expected = _lookup_or_none(sources[value.source], value.path)  # a missing key reads as null
        if not _agrees(shown, expected, value.style, value.digits):
            line = card_text.count("\n", 0, value.start) + 1
            problems.append(f"line {line} shows {shown!r} for {value.describe()}, but the file holds {expected!r}")
    return problems


def _agrees(shown: str, expected, style: str, digits: Optional[int]) -> bool:
    """Whether the card's text `shown` is a faithful print of the file's value `expected`."""
    if expected is None:
        return shown == NOT_AVAILABLE
    if style == "text":
        return shown == str(expected)
    if style == "bool":
        return shown == ("yes" if expected else "no")
    if isinstance(expected, bool) or not isinstance(expected, (int, float)):
        return False
    if style == "percent":
        if not shown.endswith("%"):
            return False
        shown, expected = shown[:-1], 100 * expected
    try:
        number = float(shown)
    except ValueError:
        return False
    if style == "count":
        return shown.lstrip("-").isdigit() and number == expected
    if style == "general":
        return math.isclose(number, expected, rel_tol=1e-5, abs_tol=1e-12)
    # "fixed" and "percent": the file's value, rounded to the digits shown
    return abs(number - expected) <= 0.5 * 10.0**-digits * (1 + 1e-9) + 1e-12


def _index_problems(card_text: str, eval_results: dict, model_type: str) -> list[str]:
    try:
        card = ModelCard(card_text)
    except ValueError as err:
        return [f"the card's metadata cannot be parsed: {err}"]
    shown = {result.metric_type: result.metric_value for result in card.data.eval_results or []}
    problems = []
    record = FAMILIES_BY_TYPE.get(model_type)
    for metric in record.index_metrics if record else ():
        metric_type, path = metric.type, metric.path
        expected, value = _lookup_or_none(eval_results, path), shown.get(metric_type)
        if expected is None:
            if metric_type in shown:
                problems.append(f"model-index has {metric_type} but {EVAL_RESULTS_FILE} {_dotted(path)} is null")
        elif metric_type not in shown:
            problems.append(f"model-index lacks {metric_type} ({EVAL_RESULTS_FILE} {_dotted(path)})")
        elif not isinstance(value, (int, float)) or abs(value - expected) > 0.5 * 10.0**-INDEX_DIGITS:
            problems.append(
                f"model-index shows {metric_type} = {shown[metric_type]!r}, but {EVAL_RESULTS_FILE} "
                f"{_dotted(path)} holds {expected!r}"
            )
    return problems


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _body_lines(card_text: str) -> list[tuple[int, str, bool]]:
    """(offset, line, inside a code block) for each line of the card after its metadata block."""
    lines, offset, fenced = [], 0, False
    body_start = 0
    if card_text.startswith("---"):
        end = card_text.find("\n---", 3)
        body_start = card_text.find("\n", end + 1) + 1 if end != -1 else 0
    for line in card_text.splitlines(keepends=True):
        if offset >= body_start:
            if line.lstrip().startswith("```"):
                lines.append((offset, line, True))
                fenced = not fenced
            else:
                lines.append((offset, line, fenced))
        offset += len(line)
    return lines


def _section_problems(card_text: str, required: tuple[str, ...]) -> list[str]:
    headings = []  # (index in lines, level, title)
    lines = _body_lines(card_text)
    for index, (_, line, fenced) in enumerate(lines):
        match = None if fenced else _HEADING.match(line.rstrip("\n"))
        if match:
            headings.append((index, len(match.group(1)), match.group(2)))
    problems = []
    for title in required:
        found = [(i, level) for i, level, name in headings if name == title]
        if not found:
            problems.append(f"the required section '{title}' is missing")
            continue
        start, level = found[0]
        end = next((i for i, other, _ in headings if i > start and other <= level), len(lines))
        content = "".join(
            line
            for i, (_, line, fenced) in enumerate(lines[start + 1 : end], start + 1)
            if fenced or not _HEADING.match(line.rstrip("\n"))
        )
        content = _COMMENT.sub("", content)
        meaningful = [line for line in content.splitlines() if line.strip() and not _is_table_rule(line)]
        if not meaningful:
            problems.append(f"the required section '{title}' is empty")
    return problems


_NUMBER = re.compile(r"(?<![\w.\-])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?%?(?![\w.])")


def _table_problems(card_text: str, values: list[CardValue]) -> list[str]:
    """Tables need rows, and every number in a table row must be a value printed from a run's file."""
    starts = [value.start for value in values]
    ends = [value.end for value in values]

    def printed(position: int) -> bool:
        index = bisect_right(starts, position) - 1
        return index >= 0 and position < ends[index]

    problems, table, heading = [], [], "the card"
    for offset, line, fenced in _body_lines(card_text) + [(len(card_text), "", False)]:
        is_row = not fenced and line.lstrip().startswith("|")
        if is_row:
            table.append((offset, line))
            continue
        if table:
            rows = [(o, l) for o, l in table[2:]] if len(table) > 1 and _is_table_rule(table[1][1]) else table
            if not rows:
                problems.append(f"a table in section '{heading}' has no rows")
            for row_offset, row in rows:
                for match in _NUMBER.finditer(row):
                    if not printed(row_offset + match.start()):
                        line_number = card_text.count("\n", 0, row_offset) + 1
                        problems.append(
                            f"line {line_number}: the number {match.group()!r} in a table of section '{heading}' "
                            "comes from no run file"
                        )
            table = []
        match = None if fenced else _HEADING.match(line.rstrip("\n"))
        if match:
            heading = match.group(2)
    return problems


def _is_table_rule(line: str) -> bool:
    return bool(re.fullmatch(r"\s*\|?(\s*:?-{3,}:?\s*\|)+\s*:?-*:?\s*\|?\s*", line.rstrip("\n")))


def _lookup_or_none(data, path: tuple):
    try:
        for key in path:
            data = data[key]
        return data
    except (KeyError, IndexError, TypeError):
        return None


def _dotted(path: tuple) -> str:
    return ".".join(str(key) for key in path)
