"""cervix_hf on the Hugging Face Hub: the published repo ids and their `OWNER/NAME[@REVISION]` form (`repos`), the
model cards (`card_spec`, `card_values`, `card_checks`, `cards`) and publishing models and the Space in one commit
(`publishing`)."""

from cervix_hf.hub.repos import (
    DEFAULT_REVISION,
    DEFAULT_SPACE_ID,
    PUBLISHED_MODELS,
    ModelReference,
    ModelReferenceError,
    is_repo_reference,
    model_repo_id,
    repo_env_var,
    resolve_model_reference,
    split_revision,
)

__all__ = [
    "DEFAULT_REVISION",
    "DEFAULT_SPACE_ID",
    "PUBLISHED_MODELS",
    "ModelReference",
    "ModelReferenceError",
    "is_repo_reference",
    "model_repo_id",
    "repo_env_var",
    "resolve_model_reference",
    "split_revision",
]
