"""Pre/post fusion configuration.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

PREPOST_LABELS = ("Negative", "Positive")
OPERATING_POINT_NAMES = ("screening", "balanced", "confirmatory")


class PrePostFusionConfig(PreTrainedConfig):
    r"""
    Configuration of [`PrePostFusionModel`] and [`PrePostFusionForImageClassification`]: two ResNet-50 backbones
    (or one shared) read a pre-stain and a post-stain image of the same cervix; their spatial feature tokens are
    fused by multi-head attention, each image's tokens attending to the other's; one logit gives the probability of
    Positive.

    Resizing and normalisation are owned by [`PrePostFusionImageProcessor`].

    Args:
        backbone (`str`, *optional*, defaults to `"microsoft/resnet-50"`):
            Hub id of the ImageNet checkpoint that initialises both backbones when training starts with
            `use_pretrained_backbone=True`. Never read when a saved model is loaded.
        backbone_config (`dict` or `ResNetConfig`, *optional*):
            Backbone architecture, for both images. Defaults to ResNet-50 with `out_features=["stage4"]`.
        use_pretrained_backbone (`bool`, *optional*, defaults to `True`):
            Whether training starts the backbones from `backbone`'s weights.
        share_backbone (`bool`, *optional*, defaults to `False`):
            One backbone reads both images (half the backbone parameters) instead of one per image.
        fusion_hidden_size (`int`, *optional*, defaults to 256):
            Width of the feature tokens after projection, where the attention works.
        num_attention_heads (`int`, *optional*, defaults to 8):
            Heads of each cross-attention; must divide `fusion_hidden_size`.
        attention_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the attention weights during training.
        classifier_dropout (`float`, *optional*, defaults to 0.3):
            Dropout before the final linear layer.
        pos_weight (`float`, *optional*):
            Weight of the Positive class in the binary cross-entropy (e.g. negatives / positives for imbalanced
            data). `None` weighs both classes equally.
        decision_threshold (`float`, *optional*, defaults to 0.5):
            A case is called Positive when its probability is at or above this threshold.
        operating_points (`dict`, *optional*):
            Named thresholds chosen on the validation split by training: `screening` (the highest threshold whose
            validation sensitivity reaches the target), `balanced` (best Youden's J), `confirmatory` (the lowest
            threshold whose specificity reaches the target); each maps to a dict with `threshold`, `sensitivity`,
            `specificity`, `achieved`.
        id2label (`dict[int, str]`, *optional*, defaults to `{0: "Negative", 1: "Positive"}`):
            Label names.
    """

    model_type = "prepost_fusion"
    # Outputs that are not predictions: Trainer's evaluation keeps only the logits.
    keys_to_ignore_at_inference = [
        "probabilities",
        "pre_to_post_attentions",
        "post_to_pre_attentions",
        "feature_map_size",
    ]
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(
            config_class=AutoConfig, model_type="resnet", init_kwargs={"out_features": ["stage4"]}
        ),
    }

    backbone: str | None = "microsoft/resnet-50"
    backbone_config: dict | PreTrainedConfig | None = None
    use_pretrained_backbone: bool = True
    share_backbone: bool = False
    fusion_hidden_size: int = 256
    num_attention_heads: int = 8
    attention_dropout: float = 0.1
    classifier_dropout: float = 0.3
    pos_weight: float | None = None
    decision_threshold: float = 0.5
    operating_points: dict | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(PREPOST_LABELS))
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: int(idx) for idx, name in self.id2label.items()}
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self):
        for name in ("fusion_hidden_size", "num_attention_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.fusion_hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must divide `fusion_hidden_size` "
                f"({self.fusion_hidden_size})."
            )
        for name in ("attention_dropout", "classifier_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)!r}.")
        if not 0.0 <= self.decision_threshold <= 1.0:
            raise ValueError(f"`decision_threshold` must be in [0, 1], got {self.decision_threshold!r}.")
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise ValueError(f"`pos_weight` must be positive, got {self.pos_weight!r}.")
        if self.num_labels != 2:
            raise ValueError(f"`id2label` must name exactly two classes (Negative, Positive), got {self.id2label!r}.")
        if self.operating_points is not None:
            unknown = set(self.operating_points) - set(OPERATING_POINT_NAMES)
            if unknown:
                raise ValueError(
                    f"`operating_points` has unknown names {sorted(unknown)}; use {', '.join(OPERATING_POINT_NAMES)}."
                )
            for name, point in self.operating_points.items():
                threshold = point.get("threshold") if isinstance(point, dict) else None
                # None: the validation split could not define the point (e.g. one class only); `reason` says why.
                if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
                    raise ValueError(f"`operating_points[{name!r}]` needs a `threshold` in [0, 1], got {point!r}.")
        if getattr(self.backbone_config, "model_type", None) != "resnet":
            raise ValueError("`backbone_config` must describe a ResNet (model_type 'resnet').")
        if list(self.backbone_config.out_features) != self.backbone_config.stage_names[-1:]:
            raise ValueError(
                "`backbone_config.out_features` must be the last stage only "
                f"([{self.backbone_config.stage_names[-1]!r}]): the fusion reads the last feature map."
            )

    def threshold_for(self, operating_point: str | None = None, threshold: float | None = None) -> float:
        """
        The threshold of a decision: `threshold` when given, else the named operating point's, else
        `decision_threshold`.

        Raises:
            `ValueError`: both are given, or the model has no such point, or training could not define it (the
            reason is given).
        """
        if threshold is not None and operating_point is not None:
            raise ValueError("Pass either `threshold` or `operating_point`, not both.")
        if threshold is not None:
            return float(threshold)
        if operating_point is None:
            return float(self.decision_threshold)
        points = self.operating_points or {}
        if operating_point not in points:
            raise ValueError(
                f"Unknown operating point {operating_point!r}; this model has {', '.join(sorted(points)) or 'none'}."
            )
        point = points[operating_point]
        if point.get("threshold") is None:
            raise ValueError(f"The operating point {operating_point!r} is undefined: {point.get('reason')}")
        return float(point["threshold"])


__all__ = ["PrePostFusionConfig", "PREPOST_LABELS", "OPERATING_POINT_NAMES"]
