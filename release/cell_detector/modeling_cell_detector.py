"""Cell detector: torchvision's Faster R-CNN over transformers' ResNet-50 with a feature pyramid.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.

The contract, stated once (it is torchvision's `FasterRCNN` contract, batched the transformers way):

- input: `pixel_values` `FloatTensor[B, 3, H, W]` in `[0, 1]` (the model resizes and normalises), padded at the
  bottom and right to a common size, with `pixel_mask` `LongTensor[B, H, W]` (1 on real pixels) when padded;
- training (`model.train()` with `labels`): `labels` is one dict per image with `boxes` `FloatTensor[N, 4]`
  (xyxy, pixels of the unpadded input image) and `class_labels` `Int64Tensor[N]` in `[0, num_labels)` (N may be
  0); the output holds `loss` (the sum) and `loss_dict` (torchvision's four losses);
- inference (`model.eval()`): the output holds up to `config.detections_per_image` detections per image, padded:
  `pred_boxes` (xyxy, pixels of the unpadded input image), `scores`, `pred_labels` (in `[0, num_labels)`, -1 for
  padding) and `detection_mask`; `image_sizes` is each input's unpadded (height, width).

[`CellDetectorModel`] takes the same input and returns the detector's features: the feature pyramid over the
resized, normalised images (see [`CellDetectorModelOutput`]).
"""

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from transformers import PreTrainedModel
from transformers.backbone_utils import load_backbone
from transformers.utils import ModelOutput

from .configuration_cell_detector import CellDetectorConfig
from .pipeline_cell_detector import PIPELINE_TASK, CellDetectionPipeline


@dataclass
class CellDetectorOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned in training mode with `labels`):
            Sum of the four Faster R-CNN losses.
        loss_dict (`dict[str, torch.FloatTensor]`, *optional*, returned with `loss`):
            `loss_classifier`, `loss_box_reg`, `loss_objectness`, `loss_rpn_box_reg`.
        pred_boxes (`torch.FloatTensor` of shape `(batch_size, max_detections, 4)`, *optional*):
            Detected boxes, xyxy in pixels of the unpadded input image; zeros where `detection_mask` is False.
        scores (`torch.FloatTensor` of shape `(batch_size, max_detections)`, *optional*):
            Detection scores in `[0, 1]`, highest first; 0 for padding.
        pred_labels (`torch.LongTensor` of shape `(batch_size, max_detections)`, *optional*):
            Class index in `[0, num_labels)` of each detection; -1 for padding.
        detection_mask (`torch.BoolTensor` of shape `(batch_size, max_detections)`, *optional*):
            True for real detections.
        image_sizes (`torch.LongTensor` of shape `(batch_size, 2)`, *optional*):
            Unpadded (height, width) of each input image, the frame of `pred_boxes`.
    """

    loss: torch.FloatTensor | None = None
    loss_dict: dict[str, torch.FloatTensor] | None = None
    pred_boxes: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None
    pred_labels: torch.LongTensor | None = None
    detection_mask: torch.BoolTensor | None = None
    image_sizes: torch.LongTensor | None = None


@dataclass
class CellDetectorModelOutput(ModelOutput):
    """
    Args:
        feature_maps (`tuple(torch.FloatTensor)`):
            The feature pyramid that the region proposal network and RoI heads read, finest level first: one map
            per backbone stage in `backbone_config.out_features` (strides 4, 8, 16 and 32 for the default four
            stages), then the max-pooled extra level (stride 64); each of shape
            `(batch_size, fpn_out_channels, padded_height / stride, padded_width / stride)`, where the padded size
            is the resized batch's, a multiple of 32.
        image_sizes (`torch.LongTensor` of shape `(batch_size, 2)`):
            (height, width) of each image after resizing (short side `config.min_size`, long side at most
            `config.max_size`), before padding: the part of the feature maps that shows the image.
    """

    feature_maps: tuple[torch.FloatTensor, ...] | None = None
    image_sizes: torch.LongTensor | None = None


class CellDetectorBackboneWithFPN(nn.Module):
    """transformers' ResNet backbone feeding torchvision's feature pyramid; what `FasterRCNN` calls `backbone`."""

    def __init__(self, config: CellDetectorConfig):
        super().__init__()
        self.body = load_backbone(config)
        self.fpn = FeaturePyramidNetwork(
            in_channels_list=list(self.body.num_features[1:]),
            out_channels=config.fpn_out_channels,
            extra_blocks=LastLevelMaxPool(),
        )
        self.out_channels = config.fpn_out_channels
        self.freeze_batch_norm = config.freeze_batch_norm

    def forward(self, pixel_values: torch.Tensor) -> OrderedDict:
        feature_maps = self.body(pixel_values).feature_maps
        return self.fpn(OrderedDict((str(i), fmap) for i, fmap in enumerate(feature_maps)))

    def train(self, mode: bool = True):
        """With `config.freeze_batch_norm`, batch norm stays frozen (eval statistics) in training too: detection
        batches are too small to estimate them. This is torchvision's `FrozenBatchNorm2d`, kept as `BatchNorm2d`
        modules so inference runs the native batch-norm kernel and ResNet checkpoints load unchanged. Without it,
        batch norm trains in the stages that train and stays frozen in the frozen ones."""
        super().train(mode)
        for module in self.batch_norms():
            if self.freeze_batch_norm or not module.weight.requires_grad:
                module.eval()
        return self

    def batch_norms(self) -> list[nn.BatchNorm2d]:
        return [module for module in self.body.modules() if isinstance(module, nn.BatchNorm2d)]


class CellDetectorPreTrainedModel(PreTrainedModel):
    config_class = CellDetectorConfig
    config: CellDetectorConfig
    base_model_prefix = "detector"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # The loss is a mean inside forward: Trainer must scale it for gradient accumulation, not pass token counts.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        # Nothing to add: the ResNet backbone initialises itself (its own `post_init`), and torchvision's feature
        # pyramid, region proposal network and RoI heads are initialised by their constructors, as in torchvision.
        pass

    def set_backbone_trainable(self, trainable: bool) -> None:
        """
        `True`: the last `config.trainable_backbone_stages` backbone stages train (5: the stem too), the earlier ones
        stay frozen. `False`: the whole backbone is frozen. Batch norm is frozen either way with
        `config.freeze_batch_norm`, else it trains with its stage.
        """
        # `base_model` is torchvision's FasterRCNN in the detector and the features model itself in
        # `CellDetectorModel`: both hold the backbone with its feature pyramid as `backbone`.
        backbone = self.base_model.backbone
        stages = [backbone.body.embedder] + list(backbone.body.encoder.stages)
        trainable_stages = self.config.trainable_backbone_stages if trainable else 0
        for index, stage in enumerate(stages):
            stage.requires_grad_(index >= len(stages) - trainable_stages)
        if self.config.freeze_batch_norm:
            for batch_norm in backbone.batch_norms():
                batch_norm.requires_grad_(False)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves as transformers does, and also names [`CellDetectorModel`] in `config.json`'s `auto_map`, so that
        `AutoModel.from_pretrained(..., trust_remote_code=True)` loads the features model (transformers writes only
        the saved class's own entry), and declares the `object-detection` pipeline with tiling
        ([`CellDetectionPipeline`], copied beside the weights with this file)."""
        self.config.custom_pipelines = {
            PIPELINE_TASK: {
                "impl": f"pipeline_cell_detector.{CellDetectionPipeline.__name__}",
                "pt": ["AutoModelForObjectDetection"],
                "type": "image",
            }
        }
        base = CellDetectorModel
        if base._auto_class is not None:
            entry = {base._auto_class: f"{base.__module__.rsplit('.', 1)[-1]}.{base.__name__}"}
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **entry}
        super().save_pretrained(save_directory, *args, **kwargs)


def _resizing_and_normalisation(config: CellDetectorConfig) -> dict:
    """torchvision's `GeneralizedRCNNTransform` arguments: the detector and its features model see the same images."""
    return {
        "min_size": config.min_size,
        "max_size": config.max_size,
        "image_mean": config.image_mean,
        "image_std": config.image_std,
    }


class InputScaleTransform(GeneralizedRCNNTransform):
    """torchvision's normalisation and batching without its resize (`config.keep_input_scale`)."""

    def resize(self, image, target=None):
        return image, target


def _transform(config: CellDetectorConfig) -> GeneralizedRCNNTransform:
    transform_class = InputScaleTransform if config.keep_input_scale else GeneralizedRCNNTransform
    return transform_class(**_resizing_and_normalisation(config))


class CellDetectorModel(CellDetectorPreTrainedModel):
    """
    The cell detector's features: its ResNet backbone and feature pyramid, without the region proposal network and
    RoI heads. Input as for [`CellDetectorForObjectDetection`] (`[0, 1]` pixels, resized and normalised here the
    same way); loading a saved detector into it keeps the detector's backbone weights.
    """

    def __init__(self, config: CellDetectorConfig):
        super().__init__(config)
        self.transform = _transform(config)  # no weights
        self.backbone = CellDetectorBackboneWithFPN(config)
        self.post_init()
        self.set_backbone_trainable(True)

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pixel_mask: torch.LongTensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CellDetectorModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Images in `[0, 1]`, from [`CellDetectorImageProcessor`].
        pixel_mask (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
            1 on real pixels, 0 on padding. Without it every pixel is real.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        images, _ = _unpad(pixel_values, pixel_mask)
        resized, _ = self.transform(images)
        output = CellDetectorModelOutput(
            feature_maps=tuple(self.backbone(resized.tensors).values()),
            image_sizes=torch.tensor(resized.image_sizes, device=pixel_values.device),
        )
        return output if return_dict else output.to_tuple()


class CellDetectorForObjectDetection(CellDetectorPreTrainedModel):
    """Faster R-CNN finding and classifying cells; see the module docstring for the input and output contract."""

    def __init__(self, config: CellDetectorConfig):
        super().__init__(config)
        anchor_generator = AnchorGenerator(
            sizes=tuple((size,) for size in config.anchor_sizes),
            aspect_ratios=(tuple(config.anchor_aspect_ratios),) * len(config.anchor_sizes),
        )
        self.detector = FasterRCNN(
            CellDetectorBackboneWithFPN(config),
            num_classes=config.num_labels + 1,  # the one place background is added: torchvision's class 0
            **_resizing_and_normalisation(config),
            rpn_anchor_generator=anchor_generator,
            rpn_pre_nms_top_n_train=config.rpn_pre_nms_top_n,
            rpn_pre_nms_top_n_test=config.rpn_pre_nms_top_n // 2,
            rpn_post_nms_top_n_train=config.rpn_post_nms_top_n,
            rpn_post_nms_top_n_test=config.rpn_post_nms_top_n // 2,
            rpn_nms_thresh=config.rpn_nms_threshold,
            box_score_thresh=config.box_score_threshold,
            box_nms_thresh=config.box_nms_threshold,
            box_detections_per_img=config.detections_per_image,
            rpn_batch_size_per_image=config.rpn_batch_size_per_image,
            rpn_positive_fraction=config.rpn_positive_fraction,
            box_batch_size_per_image=config.box_batch_size_per_image,
            box_positive_fraction=config.box_positive_fraction,
        )
        self.detector.transform = _transform(config)
        self.post_init()
        self.set_backbone_trainable(True)

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pixel_mask: torch.LongTensor | None = None,
        labels: list[dict[str, torch.Tensor]] | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CellDetectorOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Images in `[0, 1]`, from [`CellDetectorImageProcessor`].
        pixel_mask (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
            1 on real pixels, 0 on padding. Without it every pixel is real.
        labels (`list[dict]`, *optional*):
            Per image: `boxes` (`FloatTensor[N, 4]`, xyxy pixels) and `class_labels` (`LongTensor[N]`). Required in
            training mode.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        images, image_sizes = _unpad(pixel_values, pixel_mask)
        if self.training:
            if labels is None:
                raise ValueError(
                    "CellDetectorForObjectDetection is in training mode and needs `labels` (one dict per image with "
                    "`boxes` and `class_labels`); call `model.eval()` to detect."
                )
            loss_dict = self.detector(images, _to_torchvision_targets(labels, pixel_values.device))
            loss = sum(loss_dict.values())
            output = CellDetectorOutput(loss=loss, loss_dict=loss_dict, image_sizes=image_sizes)
        else:
            output = _pad_detections(self.detector(images), image_sizes, self.config.detections_per_image)
        return output if return_dict else output.to_tuple()


def _unpad(pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The list of unpadded images torchvision expects, and their (height, width)."""
    batch, _, height, width = pixel_values.shape
    if pixel_mask is None:
        sizes = torch.tensor([[height, width]] * batch, device=pixel_values.device)
    else:
        sizes = torch.stack([pixel_mask.any(dim=2).sum(dim=1), pixel_mask.any(dim=1).sum(dim=1)], dim=1)
    images = [image[:, : int(h), : int(w)] for image, (h, w) in zip(pixel_values, sizes.tolist())]
    return images, sizes


def _to_torchvision_targets(labels: list[dict[str, torch.Tensor]], device: torch.device) -> list[dict]:
    targets = []
    for index, label in enumerate(labels):
        if "boxes" not in label or "class_labels" not in label:
            raise ValueError(f"labels[{index}] needs `boxes` and `class_labels`, got keys {sorted(label)}.")
        boxes = torch.as_tensor(label["boxes"], dtype=torch.float32, device=device).reshape(-1, 4)
        classes = torch.as_tensor(label["class_labels"], dtype=torch.int64, device=device).reshape(-1)
        targets.append({"boxes": boxes, "labels": classes + 1})  # torchvision's class 0 is background
    return targets


def _pad_detections(detections: list[dict], image_sizes: torch.Tensor, max_detections: int) -> CellDetectorOutput:
    batch = len(detections)
    device = image_sizes.device
    boxes = torch.zeros(batch, max_detections, 4, device=device)
    scores = torch.zeros(batch, max_detections, device=device)
    classes = torch.full((batch, max_detections), -1, dtype=torch.long, device=device)
    for i, detection in enumerate(detections):
        count = len(detection["scores"])
        boxes[i, :count] = detection["boxes"]
        scores[i, :count] = detection["scores"]
        classes[i, :count] = detection["labels"] - 1
    return CellDetectorOutput(
        pred_boxes=boxes, scores=scores, pred_labels=classes, detection_mask=classes >= 0, image_sizes=image_sizes
    )


__all__ = [
    "CellDetectorPreTrainedModel",
    "CellDetectorModel",
    "CellDetectorForObjectDetection",
    "CellDetectorModelOutput",
    "CellDetectorOutput",
]
