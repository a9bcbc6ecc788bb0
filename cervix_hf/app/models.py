"""Where the app's three models come from, and loading each of them once, lazily, for every request to share.

For each task the first source that is available and loads is used:

1. its command-line flag or environment variable (`--colponet` / `CERVIX_HF_COLPONET`, `--cell-detector` /
   `CERVIX_HF_CELL_DETECTOR`, `--prepost-fusion` / `CERVIX_HF_PREPOST_FUSION`; the record's aliases `--prepost` /
   `CERVIX_HF_PREPOST` too): a saved folder, or a Hub repo id with an optional revision,
   `owner/name@revision`;
2. the folder the training script writes, `checkpoints/<model_type>/` (`colponet`, `cell_detector`,
   `prepost_fusion`), or one under an alias of the record (`checkpoints/cell-detector`, `checkpoints/prepost`);
3. the repository's release models, `release/<model_type>/` beside the package's checkout, or in the current folder
   (a Space's); `CERVIX_HF_RELEASE_DIR` names another release folder;
4. the published Hub repo (`cervix_hf.hub.model_repo_id`), when the Hub answers within `HUB_CHECK_TIMEOUT` seconds
   or the repo is in the local Hugging Face cache (with `HF_HUB_OFFLINE=1` only the cache is looked at);
5. otherwise the model's default configuration with untrained (random) weights, so the app always starts; every
   result of that model then carries `UNTRAINED_WARNING`.

A flag or variable is decided to be a folder or a Hub id at once (`cervix_hf.hub.resolve_model_reference`); a folder
it names must load: `AppModels.load_requested` loads those at start and raises instead of falling through.
`ModelSlot.resolve` only looks (does the folder exist, does the Hub know the repo); `ModelSlot.get` reads the weights
on first use, once, under a lock, and falls through to the next source if they fail to load.
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from huggingface_hub import (
    HfApi,
    ModelCard,
    hf_hub_download,
    is_offline_mode,
    try_to_load_from_cache,
)
from huggingface_hub.errors import EntryNotFoundError
from PIL import Image

from cervix_hf.app.arguments import DEFAULT_CHECKPOINTS_DIR, RELEASE_DIR_ENV
from cervix_hf.export.classifiers import describe_runtime
from cervix_hf.hub import ModelReferenceError, model_repo_id, resolve_model_reference, split_revision
from cervix_hf.io.files import model_folder_problem
from cervix_hf.prediction.inference import ModelLoadError, load_config
from cervix_hf.registry import FAMILIES, RUNTIMES, ModelFamily

logger = logging.getLogger(__name__)

UNTRAINED_WARNING = "UNTRAINED MODEL: output is meaningless"
# Long enough for a slow Hub, short enough that an unreachable one does not stall the start-up.
HUB_CHECK_TIMEOUT = 5.0
RELEASE_FOLDER = "release"


def release_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """
    The folders that may hold the repository's release models, one `<model_type>/` folder each: `$CERVIX_HF_RELEASE_DIR`
    when set, else `release/` beside the package's checkout and `release/` in the current folder (a Space's).
    """
    environ = os.environ if environ is None else environ
    if environ.get(RELEASE_DIR_ENV):
        return [Path(environ[RELEASE_DIR_ENV]).expanduser().resolve()]
    checkout = Path(__file__).resolve().parents[2] / RELEASE_FOLDER
    current = Path(RELEASE_FOLDER).resolve()
    return [checkout] if current == checkout else [checkout, current]


@dataclass(frozen=True)
class ModelTask:
    """
    One of the app's models: its record, and how its weights are loaded.

    Args:
        family (`ModelFamily`): the model's record (`cervix_hf.registry`): its `model_type` (`colponet`,
            `cell_detector`, `prepost_fusion`) names the task and gives the flag (`--cell-detector`) and the
            environment variable (`CERVIX_HF_CELL_DETECTOR`).
        load (`Callable[[str, str | None], tuple]`): (model id, revision) -> (model in eval mode, processor).
    """

    family: ModelFamily
    load: Callable

    name = property(lambda self: self.family.model_type)
    title = property(lambda self: self.family.title)
    model_type = property(lambda self: self.family.model_type)
    checkpoint_folder = property(lambda self: self.family.checkpoint_folder)
    train_command = property(lambda self: self.family.train_command)
    env_var = property(lambda self: self.family.env_var)
    flag = property(lambda self: self.family.flag)

    def build_untrained(self, size: str) -> tuple:
        """The model of `size` (see `cervix_hf.registry`) with random weights in eval mode, and its processor."""
        # A size this model does not have (the cell classifier has no "resnet-50") gives its published one.
        size = size if size in self.family.sizes else self.family.published_size
        return self.family.task_model_class(self.family.config(size)).eval(), self.family.processor_class()


# Each model loads in PyTorch through its record's loader (the one `cervix_hf.prediction.loader.load` runs); its
# folder's export, where there is one, is loaded beside it (`ModelSlot._load_export`).
TASKS = tuple(ModelTask(record, partial(record.loader, runtime="torch")) for record in FAMILIES)
TASKS_BY_NAME = {task.name: task for task in TASKS}


@dataclass(frozen=True)
class ModelSource:
    """
    A place a model can be loaded from.

    Args:
        kind (`str`): `"folder"`, `"hub"` or `"untrained"`.
        location (`str`, *optional*): the folder, or the Hub repo id.
        revision (`str`, *optional*): the Hub revision asked for (branch, tag or commit); `None` is the default branch.
        origin (`str`): why this source is tried (e.g. `"--colponet / CERVIX_HF_COLPONET"`).
        commit (`str`, *optional*): the Hub commit the revision pointed to when the Hub was asked.
        required (`bool`): a folder a flag or variable named: it must load, never falls through to the next source.
    """

    kind: str
    location: str | None = None
    revision: str | None = None
    origin: str = ""
    commit: str | None = None
    required: bool = False

    @property
    def pinned_revision(self) -> str | None:
        """The commit the Hub named when asked, so that weights and card come from the revision it reported."""
        return self.commit or self.revision

    def describe(self) -> str:
        if self.kind == "folder":
            return f"local folder {self.location}"
        if self.kind == "hub":
            commit = f" (commit {self.commit[:10]})" if self.commit else ""
            return f"Hub repo {self.location} @ {self.revision or 'main'}{commit}"
        return "untrained default configuration"

    def shown(self) -> str:
        """
        How the app's pages and answers name the source: a folder by its own name, never by its path on the
        server (which [`describe`], for the log, gives).
        """
        if self.kind == "folder":
            return f"local model '{Path(self.location).name}'"
        return self.describe()


UNTRAINED_SOURCE = ModelSource("untrained", origin="no trained weights found")


def parse_model_reference(value: str, origin: str) -> ModelSource:
    """
    A flag's or environment variable's value as a source: a folder (required to load) or `owner/name[@revision]`,
    told apart by `resolve_model_reference`; its `ModelReferenceError` (a missing folder, not a saved model) is
    raised naming `origin`.
    """
    try:
        reference = resolve_model_reference(value)
    except ModelReferenceError as error:
        raise ModelReferenceError(f"{origin}: {error}") from None
    if reference.kind == "hub":
        return ModelSource("hub", reference.location, reference.revision, origin)
    return ModelSource("folder", reference.location, origin=origin, required=True)


@dataclass
class LoadedModel:
    """
    A model ready for inference, and where it came from.

    Args:
        model (`PreTrainedModel`): in eval mode, shared by every request (never modify it).
        processor: its image processor.
        source (`ModelSource`): where it was loaded from.
        card (`str`, *optional*): its model card (README.md) without the YAML header, when it has one.
        notes (`list[str]`): the sources tried before this one, each with why it was not used.
        exported (`OnnxModel`, *optional*): the folder's ONNX export (`cervix-hf export`), run by ONNX Runtime or
            OpenVINO for predictions; `model` stays for what needs PyTorch (Grad-CAM).
    """

    model: object
    processor: object
    source: ModelSource
    card: str | None = None
    notes: list[str] = field(default_factory=list)
    exported: object | None = None

    @property
    def predictor(self):
        """What predictions run on: the ONNX export when there is one, else the PyTorch model."""
        return self.exported or self.model

    @property
    def runtime(self) -> str:
        return describe_runtime(self.predictor)

    @property
    def trained(self) -> bool:
        return self.source.kind != "untrained"

    @property
    def warning(self) -> str | None:
        """`UNTRAINED_WARNING` for an untrained model, else `None`."""
        return None if self.trained else UNTRAINED_WARNING


class ModelSlot:
    """
    One task's model, resolved and loaded on first use and then shared; safe to call from several threads.

    Args:
        task (`ModelTask`): which model.
        requested (`str`, *optional*): the flag's or environment variable's value (a folder or
            `owner/name[@revision]`).
        checkpoints_dir (`str` or `Path`, *optional*, defaults to `checkpoints`): holds `<task.checkpoint_folder>/`.
        untrained_size (`str`, *optional*, defaults to `"resnet-50"`): size of the untrained fallback (the default
            configuration; `"tiny"` for tests).
        hub_timeout (`float`, *optional*, defaults to `HUB_CHECK_TIMEOUT`): seconds to wait for the Hub.
        runtime (`str`, *optional*, defaults to `"auto"`): `"auto"` runs predictions on a local folder's ONNX export
            when it has one (the fastest exported precision, by OpenVINO where it is installed and passed the
            export's check, else ONNX Runtime); `"onnx"` or `"openvino"` on the export by that engine; `"torch"`
            always on PyTorch. A folder without an export is served by PyTorch.
    """

    def __init__(
        self,
        task: ModelTask,
        requested: str | None = None,
        checkpoints_dir: str | Path = DEFAULT_CHECKPOINTS_DIR,
        untrained_size: str = "resnet-50",
        hub_timeout: float = HUB_CHECK_TIMEOUT,
        runtime: str = "auto",
    ):
        if runtime not in RUNTIMES:
            raise ValueError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
        self.task = task
        self.runtime = runtime
        self.untrained_size = untrained_size
        self.hub_timeout = hub_timeout
        self.sources = []
        if requested:
            self.sources.append(parse_model_reference(requested, f"{task.flag} / {task.env_var}"))
        folder = Path(checkpoints_dir) / task.checkpoint_folder
        self.sources.append(ModelSource("folder", str(folder.resolve()), origin="the training script's folder"))
        for alias in task.family.aliases:  # only where such a folder exists
            if (alias_folder := Path(checkpoints_dir) / alias).is_dir() and alias_folder != folder:
                self.sources.append(
                    ModelSource(
                        "folder", str(alias_folder.resolve()), origin="the training script's folder, under an alias"
                    )
                )
        for release in release_dirs():
            release_folder = release / task.checkpoint_folder
            self.sources.append(ModelSource("folder", str(release_folder), origin="the repository's release model"))
        self.sources.append(
            ModelSource("hub", *split_revision(model_repo_id(task.model_type)), origin="the published repo")
        )
        self._lock = threading.Lock()
        self._plan: list[tuple[ModelSource, str | None]] | None = None
        self._loaded: LoadedModel | None = None

    def resolve(self) -> list[tuple[ModelSource, str | None]]:
        """
        Every source with `None` if it is available or the reason it is not, in the order they are tried. Checked
        once (the Hub is asked at most once per source); no weights are read.
        """
        with self._lock:
            if self._plan is None:
                self._plan = [self._check(source) for source in self.sources]
            return self._plan

    def planned_config(self):
        """
        The config of the model this slot serves, read without its weights (for what a page offers before the model
        loads): the loaded model's; else the first available source's `config.json` (a folder's, or the Hub
        cache's: nothing is downloaded); else the untrained default's.
        """
        if self._loaded is not None:
            return self._loaded.model.config
        available = next((source for source, reason in self.resolve() if reason is None), None)
        location = available and available.location
        if available is not None and available.kind == "hub":
            cached = try_to_load_from_cache(available.location, "config.json", revision=available.pinned_revision)
            location = str(Path(cached).parent) if isinstance(cached, str) else None
        if location is not None:
            try:
                return load_config(location)
            except (OSError, ValueError) as error:  # the load itself will say so; the page offers the defaults
                logger.info("%s: cannot read the config of %s yet: %s", self.task.title, location, _first_line(error))
        family = self.task.family
        return family.config(self.untrained_size if self.untrained_size in family.sizes else family.published_size)

    def plan_message(self) -> str:
        """One paragraph for the start-up log: where the model will come from, or how to get real weights."""
        notes = []
        for source, reason in self.resolve():
            if reason is None:
                skipped = f" Not available before it: {'; '.join(notes)}." if notes else ""
                return f"{self.task.title}: will load from {source.describe()} on first use.{skipped}"
            notes.append(_note(source, reason))
        tried = "; ".join(notes)
        return (
            f"{self.task.title}: no trained weights found ({tried}). Its tab uses the default configuration with "
            f"UNTRAINED weights, and every result says '{UNTRAINED_WARNING}'. To get real weights: train it "
            f"({self.task.train_command}), or point {self.task.flag} / {self.task.env_var} at a saved folder or a Hub "
            "repo id (owner/name[@revision]), or run where the Hugging Face Hub is reachable (without HF_HUB_OFFLINE) "
            f"so that {self.sources[-1].location} can be downloaded."
        )

    def get(self) -> LoadedModel:
        """The model, loaded on the first call (later calls, from any thread, return the same object)."""
        loaded = self._loaded
        if loaded is None:
            plan = self.resolve()
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load(plan)
                loaded = self._loaded
        return loaded

    def _load_export(self, source: ModelSource):
        """The source folder's fastest ONNX export, unless `runtime` is `"torch"` or it has none; else `None`."""
        if self.runtime == "torch" or source.kind != "folder" or self.runtime not in self.task.family.runtimes:
            return None
        record = self.task.family
        try:
            if record.engine.exportable(record) and record.engine.export_precision(source.location):
                return record.loader(source.location, runtime=self.runtime)[0]
            return None
        except Exception as error:  # the PyTorch model still serves; say why the export did not
            logger.warning(
                "%s: the ONNX export in %s did not load (%s); using PyTorch.",
                self.task.title,
                source.location,
                _first_line(error),
            )
            return None

    def _check(self, source: ModelSource) -> tuple[ModelSource, str | None]:
        if source.kind == "folder":
            folder = Path(source.location)
            if not folder.is_dir():
                return source, "no such folder"
            problem = model_folder_problem(folder)
            return source, problem and problem.replace(str(folder), "the folder")
        try:
            cached = isinstance(try_to_load_from_cache(source.location, "config.json", revision=source.revision), str)
        except ValueError as error:  # not a valid repo id
            return source, f"not a valid Hub repo id ({_first_line(error)})"
        if is_offline_mode():
            return source, None if cached else "not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"
        try:
            info = HfApi().model_info(source.location, revision=source.revision, timeout=self.hub_timeout)
        # Whatever the Hub's answer (unreachable, unknown repo, gated, timed out), the app must still start.
        except Exception as error:
            if cached:
                return source, None
            return source, f"the Hub did not provide it ({type(error).__name__}: {_first_line(error)})"
        return replace(source, commit=info.sha), None

    def _load(self, plan: list[tuple[ModelSource, str | None]]) -> LoadedModel:
        notes = []
        for source, reason in plan:
            if reason is not None:
                notes.append(_shown_note(source, reason))
                continue
            try:
                model, processor = self.task.load(source.location, source.pinned_revision)
                if model.config.model_type != self.task.model_type:
                    raise ValueError(f"it holds a {model.config.model_type!r} model, not {self.task.model_type!r}")
            # A folder or repo that exists but does not load (wrong model, corrupt weights) falls through, logged.
            except Exception as error:
                if source.required:
                    raise ModelLoadError(f"{source.origin}: {source.location} could not be loaded: {error}") from None
                notes.append(_shown_note(source, f"could not be loaded ({_first_line(error)})"))
                logger.warning("%s: could not load %s: %s", self.task.title, source.describe(), error)
                continue
            exported = self._load_export(source)
            runtime = describe_runtime(exported or model)
            logger.info("%s: loaded from %s; predictions run on %s.", self.task.title, source.describe(), runtime)
            return LoadedModel(model, processor, source, _read_card(source), notes, exported)
        model, processor = self.task.build_untrained(self.untrained_size)
        logger.warning("%s: using UNTRAINED weights. %s", self.task.title, "; ".join(notes))
        return LoadedModel(model, processor, UNTRAINED_SOURCE, None, notes)


class AppModels:
    """The app's model slots, by model type (`colponet`, `cell_detector`, `prepost_fusion`)."""

    def __init__(self, slots: Mapping[str, ModelSlot]):
        self._slots = dict(slots)

    @classmethod
    def from_settings(
        cls,
        requested: Mapping[str, str | None] | None = None,
        checkpoints_dir: str | Path = DEFAULT_CHECKPOINTS_DIR,
        untrained_size: str = "resnet-50",
        runtime: str = "auto",
    ) -> "AppModels":
        """
        A slot per task. `requested` maps task names to a folder or Hub id (see `requested_models`); a task absent
        from it is looked for in `checkpoints_dir`, then on the Hub. `runtime` as in [`ModelSlot`].
        """
        requested = requested or {}
        unknown = set(requested) - set(TASKS_BY_NAME)
        if unknown:
            raise ValueError(f"Unknown task(s) {sorted(unknown)}; the app's tasks are {', '.join(TASKS_BY_NAME)}.")
        return cls(
            {
                task.name: ModelSlot(task, requested.get(task.name), checkpoints_dir, untrained_size, runtime=runtime)
                for task in TASKS
            }
        )

    def load_requested(self) -> None:
        """
        Loads now every model whose flag or variable names a folder, so that one which cannot load stops the app at
        start: `ModelLoadError` naming the flag and why.
        """
        for slot in self:
            if any(source.required for source in slot.sources):
                slot.get()

    def __getitem__(self, name: str) -> ModelSlot:
        return self._slots[name]

    def __iter__(self) -> Iterator[ModelSlot]:
        return iter(self._slots.values())

    def warm_up(self) -> None:
        """
        Loads every model and runs it once on a small gray image, so that the first user request does not pay for
        loading the weights and for the runtime's first-call set-up. Meant for a background thread at start-up:
        a request arriving meanwhile waits for its model's load, never loads it twice.
        """
        for slot in self:
            started = time.perf_counter()
            loaded = slot.get()
            image = Image.new("RGB", (256, 256), (128, 128, 128))
            # One image per image input: the fusion model's processor takes a pre and a post image.
            views = (image,) * sum(name.endswith("pixel_values") for name in loaded.processor.model_input_names)
            with torch.inference_mode():
                loaded.predictor(**loaded.processor(*views, return_tensors="pt"))
            logger.info("%s: warmed up in %.1f s.", slot.task.title, time.perf_counter() - started)

    def log_plan(self) -> None:
        """Resolves every model and logs where each will come from (and how to get real weights where none are)."""
        for slot in self:
            message = slot.plan_message()
            if any(reason is None for _, reason in slot.resolve()):
                logger.info(message)
            else:
                logger.warning(message)


def requested_models(flags: Mapping[str, str | None], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    Model type -> folder or Hub id, from the flags (by model type) or else the environment variables, the current
    name (`CERVIX_HF_PREPOST_FUSION`) before an alias (`CERVIX_HF_PREPOST`).
    """
    environ = os.environ if environ is None else environ
    requested = {
        task.name: flags.get(task.name)
        or next(filter(None, (environ.get(name) for name in (task.env_var, *task.family.alias_env_vars))), None)
        for task in TASKS
    }
    return {name: value for name, value in requested.items() if value}


def _read_card(source: ModelSource) -> str | None:
    """The model card's text (README.md without its YAML header), or `None` where there is none."""
    try:
        if source.kind == "folder":
            path = Path(source.location) / "README.md"
            if not path.is_file():
                return None
        else:
            path = hf_hub_download(source.location, "README.md", revision=source.pinned_revision)
        return ModelCard(Path(path).read_text(encoding="utf-8"), ignore_metadata_errors=True).text
    # A missing or unreadable card only leaves the Models tab without it.
    except (OSError, ValueError, EntryNotFoundError) as error:
        logger.info("No model card for %s: %s", source.describe(), _first_line(error))
        return None


def _note(source: ModelSource, reason: str) -> str:
    """Why a source was not used, for the log."""
    return f"{source.describe()} ({source.origin}): {reason}"


def _shown_note(source: ModelSource, reason: str) -> str:
    """Why a source was not used, as the Models tab shows it: the source by its name, not its server path."""
    if source.kind == "folder" and source.location:
        reason = reason.replace(source.location, source.shown())
    return f"{source.shown()} ({source.origin}): {reason}"


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


__all__ = [
    "AppModels",
    "HUB_CHECK_TIMEOUT",
    "LoadedModel",
    "ModelSlot",
    "ModelSource",
    "ModelTask",
    "TASKS",
    "TASKS_BY_NAME",
    "UNTRAINED_WARNING",
    "parse_model_reference",
    "release_dirs",
    "requested_models",
]
