"""Cell detector configuration.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

SIPAKMED_LABELS = ("Dyskeratotic", "Koilocytotic", "Metaplastic", "Parabasal", "Superficial-Intermediate")


class CellDetectorConfig(PreTrainedConfig):
    r"""
    Configuration of [`CellDetectorForObjectDetection`]: torchvision's Faster R-CNN (region proposal network and
    RoI heads) over a ResNet-50 backbone (transformers' ResNet, the `microsoft/resnet-50` architecture) with a
    feature pyramid; and of [`CellDetectorModel`], that backbone and feature pyramid alone.

    **Who owns what.** Resizing and normalisation are owned by the model, as in torchvision's Faster R-CNN: each
    image is resized so its short side is `min_size` (long side at most `max_size`) and normalised with
    `image_mean`/`image_std` inside `forward`, and the detections are mapped back to the input image's pixels.
    [`CellDetectorImageProcessor`] only converts images to `[0, 1]` tensors, pads a batch, and rescales boxes to
    `target_sizes` in post-processing. Anchor sizes are in pixels of the resized image. With `keep_input_scale`
    the model does not resize at all (it still normalises): it trains on crops and detects whole images or tiles at
    the data's own scale.

    **Labels.** `num_labels` (from `id2label`) counts cell classes only. The background class that torchvision
    needs is added in one place, `CellDetectorForObjectDetection`: its box predictor has `num_labels + 1` outputs
    and class `i` of this config is torchvision's class `i + 1`.

    Args:
        backbone (`str`, *optional*, defaults to `"microsoft/resnet-50"`):
            Hub id of the ImageNet checkpoint for the backbone when training starts with
            `use_pretrained_backbone=True` (see `cervix_hf.load_pretrained_backbone`). Never read when a saved
            detector is loaded.
        backbone_config (`dict` or `ResNetConfig`, *optional*):
            Backbone architecture. Defaults to ResNet-50 with `out_features=["stage1", "stage2", "stage3", "stage4"]`.
        use_pretrained_backbone (`bool`, *optional*, defaults to `True`):
            Whether training starts the backbone from `backbone`'s weights.
        trainable_backbone_stages (`int`, *optional*, defaults to 3):
            How many of the backbone's last stages are trained (0-5, 5 meaning the stem too); earlier stages are
            frozen, as torchvision's `trainable_backbone_layers`.
        freeze_batch_norm (`bool`, *optional*, defaults to `True`):
            Whether batch norm keeps its loaded statistics and affine weights in training (torchvision's
            `FrozenBatchNorm2d`: right for an ImageNet backbone and small batches). A backbone trained from random
            weights needs `False`, so that batch norm of the trained stages normalises its features.
        fpn_out_channels (`int`, *optional*, defaults to 256):
            Channels of every feature-pyramid level.
        anchor_sizes (`list[int]`, *optional*, defaults to `[16, 32, 64, 128, 256]`):
            One anchor size (pixels) per pyramid level, finest first: nuclei of ~20 px and whole cells of ~50-200
            px at 1024 px.
        anchor_aspect_ratios (`list[float]`, *optional*, defaults to `[0.5, 1.0, 2.0]`):
            Height/width ratios of the anchors at every level.
        min_size (`int`, *optional*, defaults to 1024):
            Short side of the resized image (unused with `keep_input_scale`).
        max_size (`int`, *optional*, defaults to 1333):
            Upper bound on the long side of the resized image (unused with `keep_input_scale`).
        keep_input_scale (`bool`, *optional*, defaults to `False`):
            Whether images enter the network at their own size instead of being resized to `min_size`: training
            crops and whole test images then show nuclei at one scale. Large slides go through tiles
            (`detect_cells(..., tile_size=...)`).
        image_mean (`list[float]`, *optional*, defaults to ImageNet's mean):
            Per-channel mean subtracted from `[0, 1]` pixels.
        image_std (`list[float]`, *optional*, defaults to ImageNet's standard deviation):
            Per-channel standard deviation that pixels are divided by.
        rpn_nms_threshold (`float`, *optional*, defaults to 0.7):
            IoU above which the region proposal network suppresses overlapping proposals.
        rpn_pre_nms_top_n (`int`, *optional*, defaults to 2000):
            Proposals per pyramid level kept before NMS (training; half at inference).
        rpn_post_nms_top_n (`int`, *optional*, defaults to 2000):
            Proposals kept after NMS (training; half at inference).
        rpn_batch_size_per_image (`int`, *optional*, defaults to 256):
            Anchors sampled per image for the region proposal network's loss.
        rpn_positive_fraction (`float`, *optional*, defaults to 0.5):
            Largest fraction of those anchors that are positive.
        box_batch_size_per_image (`int`, *optional*, defaults to 512):
            Proposals sampled per image for the RoI heads' loss; fewer cost less where an image holds few objects.
        box_positive_fraction (`float`, *optional*, defaults to 0.25):
            Largest fraction of those proposals that are positive.
        box_score_threshold (`float`, *optional*, defaults to 0.05):
            Detections scoring lower are dropped inside the model (post-processing applies its own threshold).
        box_nms_threshold (`float`, *optional*, defaults to 0.5):
            Per-class IoU above which overlapping detections are suppressed.
        detections_per_image (`int`, *optional*, defaults to 300):
            Most detections returned per image (a Pap-smear field holds dozens to hundreds of cells).
        id2label (`dict[int, str]`, *optional*, defaults to SIPaKMeD's five classes):
            Cell classes, without background.
    """

    model_type = "cell_detector"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="resnet",
            init_kwargs={"out_features": ["stage1", "stage2", "stage3", "stage4"]},
        ),
    }

    backbone: str | None = "microsoft/resnet-50"
    backbone_config: dict | PreTrainedConfig | None = None
    use_pretrained_backbone: bool = True
    trainable_backbone_stages: int = 3
    freeze_batch_norm: bool = True
    fpn_out_channels: int = 256
    anchor_sizes: list[int] | tuple[int, ...] = (16, 32, 64, 128, 256)
    anchor_aspect_ratios: list[float] | tuple[float, ...] = (0.5, 1.0, 2.0)
    min_size: int = 1024
    max_size: int = 1333
    keep_input_scale: bool = False
    image_mean: list[float] | tuple[float, ...] = (0.485, 0.456, 0.406)
    image_std: list[float] | tuple[float, ...] = (0.229, 0.224, 0.225)
    rpn_nms_threshold: float = 0.7
    rpn_pre_nms_top_n: int = 2000
    rpn_post_nms_top_n: int = 2000
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    box_score_threshold: float = 0.05
    box_nms_threshold: float = 0.5
    detections_per_image: int = 300

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(SIPAKMED_LABELS))
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: int(idx) for idx, name in self.id2label.items()}
        for name in ("anchor_sizes", "anchor_aspect_ratios", "image_mean", "image_std"):
            setattr(self, name, list(getattr(self, name)))
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self):
        for name in ("fpn_out_channels", "min_size", "max_size", "rpn_pre_nms_top_n", "rpn_post_nms_top_n",
                     "detections_per_image", "rpn_batch_size_per_image", "box_batch_size_per_image"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.max_size < self.min_size:
            raise ValueError(f"`max_size` ({self.max_size}) must be at least `min_size` ({self.min_size}).")
        if not 0 <= self.trainable_backbone_stages <= 5:
            raise ValueError(f"`trainable_backbone_stages` must be 0-5, got {self.trainable_backbone_stages!r}.")
        for name in ("rpn_nms_threshold", "box_score_threshold", "box_nms_threshold", "rpn_positive_fraction",
                     "box_positive_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)!r}.")
        if any(size <= 0 for size in self.anchor_sizes) or any(r <= 0 for r in self.anchor_aspect_ratios):
            raise ValueError(
                f"`anchor_sizes` and `anchor_aspect_ratios` must be positive, got {self.anchor_sizes!r} and "
                f"{self.anchor_aspect_ratios!r}."
            )
        for name in ("image_mean", "image_std"):
            if len(getattr(self, name)) != 3:
                raise ValueError(f"`{name}` must hold 3 values (R, G, B), got {getattr(self, name)!r}.")
        if getattr(self.backbone_config, "model_type", None) != "resnet":
            raise ValueError("`backbone_config` must describe a ResNet (model_type 'resnet').")
        # One anchor size per pyramid level: the backbone's stages plus the extra max-pooled level.
        levels = len(self.backbone_config.out_features) + 1
        if len(self.anchor_sizes) != levels:
            raise ValueError(
                f"`anchor_sizes` needs one size per feature-pyramid level ({levels}: the backbone's "
                f"{len(self.backbone_config.out_features)} out_features plus a pooled level), got {self.anchor_sizes!r}."
            )


__all__ = ["CellDetectorConfig", "SIPAKMED_LABELS"]
