"""Publishing models and the demo Space to the Hugging Face Hub, each in one commit.

As timm does: a trained model folder is staged into a temporary folder with `save_pretrained` (the weights, the
config with its `auto_map` and the model's own `.py` files, exactly as transformers writes them with today's code),
its model card is rendered and checked there from the run's evaluation (`cervix_hf.hub.cards`), and the folder
goes up in one `create_commit`, so the repo never holds half an upload.

The token comes from `HF_TOKEN` or `hf auth login`, read by huggingface_hub; this module never prints, logs or
writes it. `HF_ENDPOINT` points everything at another Hub. With `HF_HUB_OFFLINE=1` nothing is attempted.

Commands: `cervix-hf push-to-hub` and `cervix-hf push-space` (`python -m train.push_to_hub`, `python -m
train.push_space`).
"""

import importlib.metadata
import json
import platform
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx2  # huggingface_hub's HTTP client: its connection errors are not OSErrors
from huggingface_hub import CommitOperationAdd, HfApi, SpaceCard, SpaceCardData, constants, get_token
from huggingface_hub.hf_api import CommitInfo

from cervix_hf.data.examples import EXAMPLES_FOLDER, example_source, find_examples
from cervix_hf.evaluation.plots import evaluations_in, plots_in
from cervix_hf.hub.card_spec import DATASETS, TEMPLATES_DIR, ModelCardError
from cervix_hf.hub.cards import write_model_card
from cervix_hf.hub.repos import DEFAULT_REVISION, PUBLISHED_MODELS, repo_env_var, split_revision
from cervix_hf.io.files import (
    CARD_FILE,
    CONFIG_FILE,
    EVAL_RESULTS_FILE,
    EXPORT_REPORT,
    ONNX_FOLDER,
    PROCESSOR_FILE,
    TRAINING_ARGS_FILE,
    give_default_mode,
)
from cervix_hf.registry import FAMILIES_BY_TYPE

# The checkout this package runs from (directly or installed with `pip install -e .`): the Space is staged from it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_NAME = "cervix_hf"
# What a user of a published model needs besides the files `save_pretrained` writes.
RUN_FILES = (EVAL_RESULTS_FILE, TRAINING_ARGS_FILE)
REQUIRED_MODEL_FILES = (CONFIG_FILE, "model.safetensors", PROCESSOR_FILE, CARD_FILE, *RUN_FILES)
SPACE_FILES = ("app.py", "requirements.txt")
SPACE_TEMPLATE = "space.md.j2"
# Never uploaded with the package: caches and build leftovers.
IGNORED_IN_PACKAGE = ("__pycache__", "*.pyc", "*.pyo", ".*")
# The terms under which the Space shows a data set's images as examples, which its README states beside each file;
# keyed like the cards' data-set records (`card_spec.DATASETS`: name, link, citation), as `example_source` tells a
# file's data set from its layout. A data set missing here (SIPaKMeD: the sample data's README records no terms for
# it) has its images refused rather than published without their terms.
EXAMPLE_TERMS = {
    "intel-mobileodt": "the Kaggle competition's rules: research use",
    "iarc-atlas": "IARC owns the images: research and education use only, with citation",
    "isbi2014": "the challenge's terms: research use, with citation",
}
# A few images per tab weigh a few MB; more is a folder of something else.
MAX_EXAMPLES_BYTES = 20 * 1024**2
# The repository's trained models (`release/<model_type>/`), which the Space serves without the Hub's model repos.
RELEASE_FOLDER = "release"
MAX_RELEASE_BYTES = 40 * 1024**2


class PublishError(RuntimeError):
    """Publishing cannot start or failed; nothing was committed."""


class SpaceExample(NamedTuple):
    """An example image of the Space: its path in the Space, the file it is copied from, its data set's key."""

    staged: str
    source: Path
    dataset: str


def stage_model(model_dir, staging_dir, repo_id: str | None = None, revision: str = DEFAULT_REVISION) -> list[str]:
    r"""
    Stages what a user of the model needs into `staging_dir`: `config.json` (with `auto_map`), `model.safetensors`,
    `preprocessor_config.json` and the model's `.py` files, written by `save_pretrained`; `eval_results.json` and
    `training_args.json` from the run; the ONNX exports and their check report (`onnx/`), when the run folder has
    them (`cervix-hf export`); the evaluation's plots (`plots/*.png`) and the evaluations on other data
    (`evaluations/<name>/`, `cervix-hf evaluate`); and the model card `README.md`, rendered and checked from them.

    Args:
        model_dir (`str` or `Path`):
            A training run's output folder (`train/train_*.py --output-dir`).
        staging_dir (`str` or `Path`):
            An empty or new folder.
        repo_id (`str`, *optional*, defaults to the published repo, `cervix_hf.hub`):
            The repo the card's code loads from.
        revision (`str`, *optional*, defaults to `"main"`):
            The branch the card's code pins.

    Returns:
        `list[str]`: the staged files, relative to `staging_dir`, sorted.

    Raises:
        [`PublishError`]: `model_dir` is not a cervix_hf model, or its weights do not match its config.
        [`~cervix_hf.hub.card_spec.ModelCardError`]: the card cannot be rendered or fails its check.
    """
    model_dir, staging_dir = Path(model_dir), Path(staging_dir)
    if staging_dir.exists() and any(staging_dir.iterdir()):
        raise PublishError(f"Staging folder {staging_dir} is not empty: give a new or empty folder.")
    model_class, processor_class = _model_classes(model_dir)
    for name in RUN_FILES:
        if not (model_dir / name).is_file():
            raise PublishError(
                f"{model_dir / name} is missing: publish the output folder of a training run (train/train_*.py), "
                "which writes it."
            )
    model, loading = model_class.from_pretrained(model_dir, output_loading_info=True)
    mismatched = {kind: keys for kind, keys in loading.items() if keys and kind != "error_msgs"}
    if mismatched or loading.get("error_msgs"):
        raise PublishError(
            f"The weights in {model_dir} do not match {model_class.__name__} ({mismatched or loading['error_msgs']}): "
            "publishing them would give users a different model. Retrain, or load and re-save with the code they "
            "were trained with."
        )
    staging_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(staging_dir)
    for weights in staging_dir.glob("*.safetensors"):  # a kept staging folder (--staging-dir) is read by others too
        give_default_mode(weights)
    processor_class.from_pretrained(model_dir).save_pretrained(staging_dir)
    for name in RUN_FILES:
        shutil.copy2(model_dir / name, staging_dir / name)
    if (model_dir / ONNX_FOLDER / EXPORT_REPORT).is_file():  # its checked exports (cervix-hf export), with their report
        (staging_dir / ONNX_FOLDER).mkdir()
        for path in sorted((model_dir / ONNX_FOLDER).glob("*.onnx")) + [model_dir / ONNX_FOLDER / EXPORT_REPORT]:
            shutil.copy2(path, staging_dir / ONNX_FOLDER / path.name)
    # The evaluation's plots, and the evaluations on other data (cervix-hf evaluate), which the card links.
    linked = [plot.path for plot in plots_in(model_dir)]
    linked += [path for found in evaluations_in(model_dir) for path in (found.path, *(p.path for p in found.plots))]
    for path in linked:
        (staging_dir / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_dir / path, staging_dir / path)
    write_model_card(staging_dir, repo_id=repo_id, revision=revision)
    files = _relative_files(staging_dir)
    missing = [name for name in REQUIRED_MODEL_FILES if name not in files]
    if missing or not any(name.endswith(".py") for name in files):
        raise PublishError(f"Staging {model_dir} did not produce {missing or 'the model code (*.py)'}.")
    return files


def push_to_hub(
    model_dir,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    staging_dir=None,
    endpoint: str | None = None,
) -> CommitInfo:
    r"""
    Publishes a training run's model folder to a Hub model repo in one commit: stages it ([`stage_model`]),
    creates the repo (and the branch) if needed, and commits every staged file at once.

    Args:
        model_dir (`str` or `Path`):
            A training run's output folder.
        repo_id (`str`):
            `OWNER/NAME` of the model repo.
        private (`bool`, *optional*, defaults to `False`):
            Create the repo private (an existing repo keeps its visibility).
        revision (`str`, *optional*, defaults to `"main"`):
            Branch to commit to, created from `main` if needed; the card pins it.
        commit_message (`str`, *optional*):
            Defaults to "Upload <model type> from <folder name>".
        staging_dir (`str` or `Path`, *optional*):
            Where to stage (kept); by default a temporary folder, removed afterwards.
        endpoint (`str`, *optional*, defaults to `HF_ENDPOINT` or https://huggingface.co):
            The Hub to publish to.

    Returns:
        `huggingface_hub.CommitInfo`: the commit (`commit_url`, `oid`).

    Raises:
        [`PublishError`]: offline, no token, or the Hub refused or could not be reached; nothing was committed.
    """
    revision = revision or DEFAULT_REVISION
    api = _online_api(endpoint)
    with _staging(staging_dir) as folder:
        files = stage_model(model_dir, folder, repo_id=repo_id, revision=revision)
        model_type = json.loads((folder / CONFIG_FILE).read_text())["model_type"]
        message = commit_message or f"Upload {model_type} from {Path(model_dir).resolve().name}"
        with _hub_errors(api, repo_id):
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision != DEFAULT_REVISION:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            return _commit(api, repo_id, folder, files, message, revision, repo_type="model")


def stage_space(
    staging_dir, models: dict[str, str] | None = None, project_root=PROJECT_ROOT, examples_dir=None
) -> list[str]:
    r"""
    Stages the demo Space into `staging_dir`: `app.py`, `requirements.txt` and the `cervix_hf` package from
    `project_root`, its `release/` models when it has them (the app serves them before the Hub repos, so the Space
    shows trained models on its own), the example images picked from `examples_dir`, and a `README.md` whose front
    matter configures a Gradio Space that loads `models` and whose text lists each example with its data set, terms
    and citation.

    Args:
        staging_dir (`str` or `Path`):
            An empty or new folder.
        models (`dict[str, str]`, *optional*):
            Repo ids by model type, overriding `cervix_hf.hub.PUBLISHED_MODELS`.
        project_root (`str` or `Path`, *optional*, defaults to this repository):
            Where `app.py`, `requirements.txt` and `cervix_hf/` are read from.
        examples_dir (`str` or `Path`, *optional*):
            A folder laid out like the public data sets (e.g. the project's sample data): the examples
            `cervix_hf.data.examples.find_examples` picks in it, at most `EXAMPLES_PER_TAB` per tab, are copied into
            `examples/` (`Type_N/<photo>`, `EDFnnn.png`, `case_<ID>/<views>`), where the Space's app finds them. By
            default the Space has no examples.

    Returns:
        `list[str]`: the staged files, relative to `staging_dir`, sorted.

    Raises:
        [`PublishError`]: `project_root` is not a checkout, its `release/` weighs over `MAX_RELEASE_BYTES`, or an
        example cannot be published (data set without recorded terms, too large a set, none found); nothing was
        staged.
    """
    staging_dir, project_root = Path(staging_dir), Path(project_root)
    if staging_dir.exists() and any(staging_dir.iterdir()):
        raise PublishError(f"Staging folder {staging_dir} is not empty: give a new or empty folder.")
    examples = _space_examples(examples_dir) if examples_dir is not None else []
    missing = [name for name in (*SPACE_FILES, PACKAGE_NAME) if not (project_root / name).exists()]
    if missing:
        raise PublishError(
            f"{project_root} has no {', '.join(missing)}: the Space is staged from a checkout of the project (its "
            "app.py, requirements.txt and cervix_hf/); run from a clone, where `pip install -e .` installs cervix-hf."
        )
    release = project_root / RELEASE_FOLDER
    release_files = [
        path
        for path in release.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(release).parts)
    ]
    release_bytes = sum(path.stat().st_size for path in release_files)
    if release_bytes > MAX_RELEASE_BYTES:
        raise PublishError(
            f"{release} weighs {release_bytes / 1024**2:.1f} MB, over the {MAX_RELEASE_BYTES / 1024**2:.0f} MB the "
            "Space's release models may take: rebuild them smaller, or remove what is not a model's file."
        )
    staging_dir.mkdir(parents=True, exist_ok=True)
    for path in release_files:
        (staging_dir / RELEASE_FOLDER / path.relative_to(release)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, staging_dir / RELEASE_FOLDER / path.relative_to(release))
    for name in SPACE_FILES:
        shutil.copy2(project_root / name, staging_dir / name)
    shutil.copytree(
        project_root / PACKAGE_NAME, staging_dir / PACKAGE_NAME, ignore=shutil.ignore_patterns(*IGNORED_IN_PACKAGE)
    )
    for example in examples:
        (staging_dir / example.staged).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(example.source, staging_dir / example.staged)
    card = _space_card(space_models(models), project_root / "requirements.txt", examples)
    (staging_dir / CARD_FILE).write_text(str(card), encoding="utf-8")
    return _relative_files(staging_dir)


def push_space(
    space_id: str,
    *,
    models: dict[str, str] | None = None,
    private: bool = False,
    commit_message: str | None = None,
    staging_dir=None,
    project_root=PROJECT_ROOT,
    examples_dir=None,
    endpoint: str | None = None,
) -> CommitInfo:
    r"""
    Publishes the demo Space in one commit ([`stage_space`]), after creating it (Gradio SDK) if needed and setting
    its `CERVIX_HF_<MODEL_TYPE>_REPO` variables, which `cervix_hf.hub.model_repo_id` reads, to the model repos.

    Args:
        space_id (`str`):
            `OWNER/NAME` of the Space.
        models (`dict[str, str]`, *optional*):
            Repo ids by model type, overriding `cervix_hf.hub.PUBLISHED_MODELS`.
        private, commit_message, staging_dir, endpoint:
            As in [`push_to_hub`].
        project_root (`str` or `Path`, *optional*, defaults to this repository):
            Where the app is read from.
        examples_dir (`str` or `Path`, *optional*):
            Where the Space's example images are picked from, as in [`stage_space`]; none by default.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.

    Raises:
        [`PublishError`]: offline, no token, an example cannot be published, or the Hub refused or could not be
        reached; nothing was committed.
    """
    api = _online_api(endpoint)
    repos = space_models(models)
    with _staging(staging_dir) as folder:
        files = stage_space(folder, repos, project_root, examples_dir)
        with _hub_errors(api, space_id):
            api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            for model_type, repo_id in repos.items():
                api.add_space_variable(
                    space_id, repo_env_var(model_type), repo_id, description=f"Hub repo of the {model_type} model"
                )
            message = commit_message or "Upload the cervix_hf demo"
            return _commit(api, space_id, folder, files, message, DEFAULT_REVISION, repo_type="space")


def space_models(models: dict[str, str] | None = None) -> dict[str, str]:
    """The model repos a Space loads: `cervix_hf.hub.PUBLISHED_MODELS` with `models` overriding some of them."""
    unknown = sorted(set(models or {}) - set(PUBLISHED_MODELS))
    if unknown:
        raise PublishError(
            f"Unknown model type(s) {', '.join(unknown)}; the Space shows {', '.join(PUBLISHED_MODELS)}."
        )
    return {**PUBLISHED_MODELS, **(models or {})}


def _space_examples(examples_dir) -> list[SpaceExample]:
    """The example images a Space gets from `examples_dir`, after checking that each one's data set has recorded
    terms, that together they stay small and that no two land on the same path; a `PublishError` naming what is
    wrong otherwise."""
    examples_dir = Path(examples_dir)
    if not examples_dir.is_dir():
        raise PublishError(
            f"The examples folder {examples_dir} does not exist: give the folder to pick the Space's example images "
            "from (--examples), e.g. the project's sample data."
        )
    found = find_examples(examples_dir)
    sources = [Path(path) for path in (*found.cervix_type, *found.cells, *(p for pair in found.prepost for p in pair))]
    if not sources:
        raise PublishError(
            f"No example image found in {examples_dir}: it is searched for the public data sets' layouts "
            "(Type_N/ photos, EDFnnn.png Pap smears, IARC case folders with saline and acetic-acid views; see "
            "cervix_hf/data/examples.py), e.g. the project's sample data."
        )
    unknown = [path for path in sources if example_source(path) not in EXAMPLE_TERMS]
    if unknown:
        named = [f"{path} ({DATASETS[example_source(path)].name})" for path in unknown]
        recorded = "; ".join(DATASETS[key].name for key in EXAMPLE_TERMS)
        raise PublishError(
            f"Cannot publish {', '.join(named)} as an example: the terms under which its data set's images may be "
            f"shown are not recorded (only those of {recorded}, in EXAMPLE_TERMS of cervix_hf/hub/publishing.py), "
            f"and no example is published without them. Remove it from {examples_dir} or point --examples at "
            "another folder; nothing was staged."
        )
    size = sum(path.stat().st_size for path in sources)
    if size > MAX_EXAMPLES_BYTES:
        raise PublishError(
            f"The examples picked in {examples_dir} weigh {size / 1024**2:.1f} MB, over the "
            f"{MAX_EXAMPLES_BYTES / 1024**2:.0f} MB a Space's examples may take: point --examples at a folder of "
            "smaller images; nothing was staged."
        )
    examples: dict[str, SpaceExample] = {}
    for path in sources:
        dataset = example_source(path)
        # Kept in the folders find_examples recognises: Type_N/ for a photo, the case folder for a pair's views.
        kept = path.name if dataset == "isbi2014" else f"{path.parent.name}/{path.name}"
        staged = f"{EXAMPLES_FOLDER}/{kept}"
        if staged in examples:
            raise PublishError(
                f"{examples[staged].source} and {path} would both be the Space's {staged}: keep one of them in "
                f"{examples_dir}; nothing was staged."
            )
        examples[staged] = SpaceExample(staged, path, dataset)
    return list(examples.values())


def _model_classes(model_dir: Path):
    """The cervix_hf task model and image processor classes of the model saved in `model_dir`."""
    config_path = model_dir / CONFIG_FILE
    if not config_path.is_file():
        raise PublishError(f"{config_path} is missing: --model-dir must be a saved model folder.")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type not in FAMILIES_BY_TYPE:
        known = ", ".join(FAMILIES_BY_TYPE)
        raise PublishError(f"{config_path} holds a {model_type!r} model; cervix_hf publishes {known}.")
    record = FAMILIES_BY_TYPE[model_type]
    return record.task_model_class, record.processor_class


def _online_api(endpoint: str | None) -> HfApi:
    """An `HfApi` for `endpoint`, after checking, without any request, that publishing can start."""
    if constants.HF_HUB_OFFLINE:
        raise PublishError(
            "HF_HUB_OFFLINE is set: publishing needs the Hugging Face Hub. Unset HF_HUB_OFFLINE (and "
            "TRANSFORMERS_OFFLINE) when the Hub is reachable; nothing was uploaded."
        )
    if get_token() is None:
        raise PublishError(
            "No Hugging Face token: set HF_TOKEN to a token with write access, or run `hf auth login`; nothing was "
            "uploaded."
        )
    return HfApi(endpoint=endpoint)


@contextmanager
def _staging(staging_dir):
    if staging_dir is not None:
        yield Path(staging_dir)
        return
    with tempfile.TemporaryDirectory(prefix="cervix_hf-staging-") as folder:
        yield Path(folder)


@contextmanager
def _hub_errors(api: HfApi, repo_id: str):
    """Turns the Hub's refusals and unreachable endpoints into one error a user can act on."""
    try:
        yield
    # HfHubHTTPError and OfflineModeIsEnabled are OSErrors; the Hub's verdict on README.md metadata is a ValueError.
    except (OSError, ValueError, httpx2.HTTPError) as err:
        raise PublishError(
            f"Publishing to {repo_id} on {api.endpoint} failed, and nothing was committed: {err}. Check the network "
            "(or HF_ENDPOINT), that the token has write access to the namespace, and the repo id."
        ) from err


def _commit(api: HfApi, repo_id: str, folder: Path, files: list[str], message: str, revision: str, repo_type: str):
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=folder / name) for name in files]
    return api.create_commit(repo_id, operations, commit_message=message, revision=revision, repo_type=repo_type)


def _gradio_version(requirements: Path) -> str | None:
    """The Gradio the Space runs: pinned in `requirements`, else the installed one, else the Hub's default."""
    pinned = re.search(r"^gradio==([\w.]+)\s*$", requirements.read_text(encoding="utf-8"), re.MULTILINE)
    if pinned:
        return pinned.group(1)
    try:
        return importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        return None


def _space_card(models: dict[str, str], requirements: Path, examples: list[SpaceExample]) -> SpaceCard:
    card_data = SpaceCardData(
        title="cervix_hf: cervical-cancer image models (research demo)",
        emoji="🔬",
        colorFrom="pink",
        colorTo="indigo",
        sdk="gradio",
        sdk_version=_gradio_version(requirements),
        python_version=".".join(platform.python_version_tuple()[:2]),
        app_file="app.py",
        models=[split_revision(reference)[0] for reference in models.values()],
        license="other",
        short_description="Research demo, never a diagnosis",
        tags=["medical", "cervical-cancer", "research-only"],
    )
    template = TEMPLATES_DIR / SPACE_TEMPLATE
    if not template.is_file():
        raise ModelCardError(
            f"Space card template {template} not found (model_cards/ in a checkout, cervix_hf/model_cards/ installed)."
        )
    return SpaceCard.from_template(
        card_data,
        template_path=str(template),
        model_repos=models,
        variables={model_type: repo_env_var(model_type) for model_type in models},
        examples=[
            {"path": example.staged, "dataset": DATASETS[example.dataset], "terms": EXAMPLE_TERMS[example.dataset]}
            for example in examples
        ],
    )


def _relative_files(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
