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

from ..registry import FAMILIES, family

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
