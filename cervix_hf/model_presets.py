"""Named model sizes: the published ResNet-50 one, and a tiny one for smoke runs and tests on a CPU.

The tiny size has the same architecture with a few channels per layer; it trains in seconds and says nothing
about the full model's accuracy.
"""

from .cell_detector import CellDetectorConfig
from .colponet import ColpoNetConfig
from .prepost import PrePostFusionConfig

MODEL_SIZES = ("resnet-50", "tiny")

TINY_RESNET = {
    "model_type": "resnet",
    "embedding_size": 8,
    "hidden_sizes": [8, 16, 32, 64],
    "depths": [1, 1, 1, 1],
    "layer_type": "bottleneck",
}


def tiny_backbone_config(out_features: list[str]) -> dict:
    return {**TINY_RESNET, "out_features": out_features}


def colponet_config(size: str = "resnet-50", **overrides) -> ColpoNetConfig:
    """A [`ColpoNetConfig`] of the named size; `overrides` are passed to the config."""
    if size == "resnet-50":
        return ColpoNetConfig(**overrides)
    if size == "tiny":
        tiny = {
            "backbone_config": tiny_backbone_config(["stage4"]),
            "use_pretrained_backbone": False,
            "reduction_channels": 16,
            "dense_num_layers": 2,
            "dense_growth_rate": 8,
            "dense_bottleneck_factor": 2,
            "inception_branch_channels": [8, 8, 8, 4, 4, 4],
        }
        return ColpoNetConfig(**{**tiny, **overrides})
    raise ValueError(f"Unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}.")


def cell_detector_config(size: str = "resnet-50", **overrides) -> CellDetectorConfig:
    """A [`CellDetectorConfig`] of the named size; `overrides` are passed to the config."""
    if size == "resnet-50":
        return CellDetectorConfig(**overrides)
    if size == "tiny":
        tiny = {
            "backbone_config": tiny_backbone_config(["stage1", "stage2", "stage3", "stage4"]),
            "use_pretrained_backbone": False,
            "trainable_backbone_stages": 4,
            "fpn_out_channels": 16,
            "min_size": 256,
            "max_size": 256,
            "rpn_pre_nms_top_n": 200,
            "rpn_post_nms_top_n": 100,
            "detections_per_image": 50,
        }
        return CellDetectorConfig(**{**tiny, **overrides})
    raise ValueError(f"Unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}.")


def prepost_config(size: str = "resnet-50", **overrides) -> PrePostFusionConfig:
    """A [`PrePostFusionConfig`] of the named size; `overrides` are passed to the config."""
    if size == "resnet-50":
        return PrePostFusionConfig(**overrides)
    if size == "tiny":
        tiny = {
            "backbone_config": tiny_backbone_config(["stage4"]),
            "use_pretrained_backbone": False,
            "fusion_hidden_size": 16,
            "num_attention_heads": 2,
        }
        return PrePostFusionConfig(**{**tiny, **overrides})
    raise ValueError(f"Unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}.")
