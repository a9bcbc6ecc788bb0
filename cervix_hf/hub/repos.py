"""Where cervix_hf's models and demo are published on the Hugging Face Hub, and how a repo reference is written.

The published repo ids are the `repo_id`s of the model records (`cervix_hf.registry`); the app, the model cards and
the publishing commands read them through `model_repo_id`. A Space (or anyone) can point the app at other repos
without editing code: `CERVIX_HF_<MODEL_TYPE>_REPO` (e.g. `CERVIX_HF_COLPONET_REPO`) overrides a model's repo id,
as `OWNER/NAME` or `OWNER/NAME@REVISION` to pin a revision; `python -m train.push_space --model colponet=OWNER/NAME`
sets it as a Space variable. `split_revision` is the one reader of that `OWNER/NAME[@REVISION]` form.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cervix_hf.io.files import model_folder_problem
from cervix_hf.registry import FAMILIES, family

# Keyed by `config.model_type`.
PUBLISHED_MODELS = {record.model_type: record.repo_id for record in FAMILIES}
DEFAULT_SPACE_ID = "cervix-hf/cervix-demo"
DEFAULT_REVISION = "main"

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def split_revision(reference: str) -> tuple[str, str | None]:
    """`OWNER/NAME[@REVISION]` as `(OWNER/NAME, REVISION or None)`."""
    repo_id, _, revision = reference.partition("@")
    return repo_id, revision or None


def is_repo_reference(reference: str) -> bool:
    """Whether `reference` has the form `OWNER/NAME[@REVISION]`."""
    return bool(_REPO_ID.match(split_revision(reference)[0]))


class ModelReferenceError(ValueError):
    """A model argument that names a local folder which holds no saved model: missing, a file, an interrupted
    training run, or a folder without `config.json`."""


@dataclass(frozen=True)
class ModelReference:
    """
    Where a model argument points: `kind` `"folder"` (`location` the resolved path) or `"hub"` (`location` the repo
    id, `revision` the one asked for, `None` for the default branch).
    """

    kind: str
    location: str
    revision: str | None = None


# Folders the project's own commands write models to: `checkpoints/colponet` means a folder, never a Hub owner.
LOCAL_MODEL_FOLDERS = ("checkpoints", "runs", "release")


def resolve_model_reference(value: str, revision: str | None = None, local_only: bool = False) -> ModelReference:
    """
    Whether a `--model` (or app flag) value is a local folder or a Hub repo id, decided at once, without the Hub.

    An existing folder is a folder. A value that looks like a path is a folder too, missing or not: it starts with
    `./`, `../`, `/` or `~`, is not of the form `OWNER/NAME[@REVISION]`, or its first part is a folder in the current
    one or one of the project's model folders (`checkpoints/colponet`), unless the Hugging Face cache holds a repo of
    that name. Anything else is a Hub repo id, with `revision` (else the one after `@`); with `local_only` (a command
    that writes into the model folder) it is a missing folder too.

    Raises:
        `ModelReferenceError`: for a folder that does not exist, is a file, or is not a saved model (an interrupted
            training run is told to use `--resume`).
    """
    path = Path(value).expanduser()
    if path.is_dir():
        problem = model_folder_problem(path)
        if problem:
            raise ModelReferenceError(problem)
        return ModelReference("folder", str(path.resolve()))
    if path.exists():
        raise ModelReferenceError(f"{value} is a file; a model is a folder (the one save_pretrained wrote).")
    if local_only or _looks_like_path(value):
        hub = "" if local_only else ", or a Hub repo id (OWNER/NAME[@REVISION])"
        raise ModelReferenceError(
            f"{value}: no such folder ({path.resolve()}). Give the folder a training run or save_pretrained wrote{hub}."
        )
    repo_id, named_revision = split_revision(value)
    return ModelReference("hub", repo_id, revision or named_revision)


def _looks_like_path(value: str) -> bool:
    if value.startswith(("./", "../", "/", "~")) or value in (".", "..") or "\\" in value:
        return True
    if not is_repo_reference(value):
        return True
    repo_id, revision = split_revision(value)
    first = repo_id.split("/")[0]
    if not (first in LOCAL_MODEL_FOLDERS or Path(first).is_dir()):
        return False
    from huggingface_hub import try_to_load_from_cache

    return not isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)


def repo_env_var(model_type: str) -> str:
    """The environment variable that overrides `model_type`'s repo id, e.g. `CERVIX_HF_COLPONET_REPO`."""
    return family(model_type).repo_env_var


def model_repo_id(model_type: str, environ: Mapping[str, str] | None = None) -> str:
    """
    The Hub repo to load `model_type` from, `OWNER/NAME[@REVISION]`: `CERVIX_HF_<MODEL_TYPE>_REPO` when set, else
    `PUBLISHED_MODELS[model_type]`.

    Args:
        model_type (`str`):
            One of `PUBLISHED_MODELS` (`"colponet"`, `"cell_detector"`, `"prepost_fusion"`).
        environ (`Mapping[str, str]`, *optional*, defaults to `os.environ`):
            Where to look for the override.
    """
    environ = os.environ if environ is None else environ
    return environ.get(repo_env_var(model_type)) or PUBLISHED_MODELS[model_type]
