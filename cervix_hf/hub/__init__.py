"""cervix_hf on the Hugging Face Hub: the published repo ids and their `OWNER/NAME[@REVISION]` form (`repos`), the
model cards (`card_spec`, `card_values`, `card_checks`, `cards`) and publishing models and the Space in one commit
(`publishing`)."""

from .repos import (
    DEFAULT_REVISION,
    DEFAULT_SPACE_ID,
    PUBLISHED_MODELS,
    is_repo_reference,
    model_repo_id,
    repo_env_var,
    split_revision,
)

__all__ = [
    "DEFAULT_REVISION",
    "DEFAULT_SPACE_ID",
    "PUBLISHED_MODELS",
    "is_repo_reference",
    "model_repo_id",
    "repo_env_var",
    "split_revision",
]
