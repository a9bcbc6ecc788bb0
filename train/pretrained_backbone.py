"""Initialising a model's ResNet backbones from ImageNet weights (`config.backbone`, e.g. `microsoft/resnet-50`).

This is a training-time step, kept out of the models' `__init__` so that loading a saved model never downloads
anything.
"""

import logging

from torch import nn
from transformers import ResNetBackbone

logger = logging.getLogger(__name__)


class PretrainedBackboneUnavailableError(RuntimeError):
    """The pretrained backbone could not be loaded and the caller asked for it to be required."""


def load_pretrained_backbone(model: nn.Module, require: bool = False) -> bool:
    """
    Copies `model.config.backbone`'s weights into every ResNet backbone of `model`.

    Args:
        model (`PreTrainedModel`):
            A cervix_hf model whose config has `backbone` and `use_pretrained_backbone`.
        require (`bool`, *optional*, defaults to `False`):
            Raise [`PretrainedBackboneUnavailableError`] instead of warning when the weights cannot be loaded
            (offline, no Hub access, or an unknown checkpoint).

    Returns:
        `bool`: whether pretrained weights were loaded. `False` (with a warning) means the backbone keeps its
        random initialisation.
    """
    config = model.config
    backbones = [module for module in model.modules() if isinstance(module, ResNetBackbone)]
    if not config.use_pretrained_backbone or not backbones:
        return False
    try:
        pretrained = ResNetBackbone.from_pretrained(config.backbone)
    except (OSError, ValueError) as err:
        message = (
            f"Could not load the pretrained backbone {config.backbone!r}: {err}. The backbone starts from RANDOM "
            "weights, so expect much lower accuracy from the same training budget. Connect to the Hugging Face Hub "
            "(or place the checkpoint in the local cache and set HF_HUB_OFFLINE=1), or pass "
            "use_pretrained_backbone=False to start from random weights on purpose."
        )
        if require:
            raise PretrainedBackboneUnavailableError(message) from err
        logger.warning(message)
        return False
    state = pretrained.state_dict()
    for backbone in backbones:
        try:
            backbone.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(
                f"`backbone_config` does not match the architecture of {config.backbone!r}; use the ResNet-50 "
                f"configuration (the default) to start from its weights. Details: {err}"
            ) from err
    logger.info("Initialised %d backbone(s) from %s.", len(backbones), config.backbone)
    return True
