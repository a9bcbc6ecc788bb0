"""Named model sizes: the published ResNet-50 one, and a tiny one for smoke runs and tests on a CPU.

Each model's sizes are facts of its record (`ModelFamily.config`, `cervix_hf.registry`); these are its shortcuts.
"""

from .registry import FAMILIES_BY_TYPE, MODEL_SIZES, TINY_RESNET, tiny_backbone_config


def model_config(model_type: str, size: str = "resnet-50", **overrides):
    """The config of `model_type` at the named size (`MODEL_SIZES`); `overrides` are passed to the config."""
    return FAMILIES_BY_TYPE[model_type].config(size, **overrides)


def colponet_config(size: str = "resnet-50", **overrides):
    """A [`ColpoNetConfig`] of the named size; `overrides` are passed to the config."""
    return model_config("colponet", size, **overrides)


def cell_detector_config(size: str = "resnet-50", **overrides):
    """A [`CellDetectorConfig`] of the named size; `overrides` are passed to the config."""
    return model_config("cell_detector", size, **overrides)


def prepost_config(size: str = "resnet-50", **overrides):
    """A [`PrePostFusionConfig`] of the named size; `overrides` are passed to the config."""
    return model_config("prepost_fusion", size, **overrides)


__all__ = [
    "MODEL_SIZES",
    "TINY_RESNET",
    "cell_detector_config",
    "colponet_config",
    "model_config",
    "prepost_config",
    "tiny_backbone_config",
]
