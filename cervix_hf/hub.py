"""Where cervix_hf's models and demo are published on the Hugging Face Hub: the one place that names the repos.

The app, the model cards and the publishing commands all read the repo ids from here. A Space (or anyone) can
point the app at other repos without editing code: `CERVIX_HF_<MODEL_TYPE>_REPO` (e.g. `CERVIX_HF_COLPONET_REPO`)
overrides a model's repo id, as `OWNER/NAME` or `OWNER/NAME@REVISION` to pin a revision (the app splits it);
`python -m train.push_space --model colponet=OWNER/NAME` sets it as a Space variable.
"""

import os
from collections.abc import Mapping

# Keyed by `config.model_type`.
PUBLISHED_MODELS = {
    "colponet": "cervix-hf/colponet",
    "cell_detector": "cervix-hf/cell-detector",
    "prepost_fusion": "cervix-hf/prepost-fusion",
}
DEFAULT_SPACE_ID = "cervix-hf/cervix-demo"
DEFAULT_REVISION = "main"


def repo_env_var(model_type: str) -> str:
    """The environment variable that overrides `model_type`'s repo id, e.g. `CERVIX_HF_COLPONET_REPO`."""
    _check_model_type(model_type)
    return f"CERVIX_HF_{model_type.upper()}_REPO"


def model_repo_id(model_type: str, environ: Mapping[str, str] | None = None) -> str:
    """
    The Hub repo id to load `model_type` from: `CERVIX_HF_<MODEL_TYPE>_REPO` when set, else
    `PUBLISHED_MODELS[model_type]`.

    Args:
        model_type (`str`):
            One of `PUBLISHED_MODELS` (`"colponet"`, `"cell_detector"`, `"prepost_fusion"`).
        environ (`Mapping[str, str]`, *optional*, defaults to `os.environ`):
            Where to look for the override.
    """
    environ = os.environ if environ is None else environ
    return environ.get(repo_env_var(model_type)) or PUBLISHED_MODELS[model_type]


def _check_model_type(model_type: str) -> None:
    if model_type not in PUBLISHED_MODELS:
        raise ValueError(f"Unknown model type {model_type!r}; published models: {', '.join(PUBLISHED_MODELS)}.")
