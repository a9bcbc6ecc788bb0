"""ColpoNet: ResNet-50 backbone + DenseNet-style dense block + GoogLeNet-style inception block.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.backbone_utils import load_backbone
from transformers.utils import ModelOutput

from .configuration_colponet import ColpoNetConfig
from .pipeline_colponet import PIPELINE_TASK, ColpoNetImageClassificationPipeline


@dataclass
class ColpoNetModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, inception_out_channels, height, width)`):
            Output of the inception block (for 224x224 inputs and a ResNet-50 backbone, height = width = 7).
        pooler_output (`torch.FloatTensor` of shape `(batch_size, inception_out_channels)`):
            `last_hidden_state` averaged over its spatial positions.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The backbone's stem and stage outputs, then the outputs of the reduction, dense and inception blocks,
            each of shape `(batch_size, channels, height, width)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ColpoNetImageClassifierOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Cross-entropy, weighted by `config.class_weights` when set.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Class scores before softmax.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            As in [`ColpoNetModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class ColpoNetConvBlock(nn.Sequential):
    """Convolution, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ColpoNetDenseLayer(nn.Module):
    """DenseNet-BC layer: a 1x1 bottleneck then a 3x3 convolution; its output is concatenated to its input."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_factor: int):
        super().__init__()
        self.bottleneck = ColpoNetConvBlock(in_channels, bottleneck_factor * growth_rate, kernel_size=1)
        self.conv = ColpoNetConvBlock(bottleneck_factor * growth_rate, growth_rate, kernel_size=3)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return torch.cat([hidden_state, self.conv(self.bottleneck(hidden_state))], dim=1)


class ColpoNetDenseBlock(nn.Sequential):
    def __init__(self, in_channels: int, num_layers: int, growth_rate: int, bottleneck_factor: int):
        super().__init__(
            *[
                ColpoNetDenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck_factor)
                for i in range(num_layers)
            ]
        )


class ColpoNetInceptionBlock(nn.Module):
    """GoogLeNet inception module: parallel 1x1, 3x3, 5x5 and pooling branches, concatenated."""

    def __init__(self, in_channels: int, branch_channels: list[int]):
        super().__init__()
        one, three_reduce, three, five_reduce, five, pool_proj = branch_channels
        self.branch_1x1 = ColpoNetConvBlock(in_channels, one, 1)
        self.branch_3x3 = nn.Sequential(
            ColpoNetConvBlock(in_channels, three_reduce, 1), ColpoNetConvBlock(three_reduce, three, 3)
        )
        self.branch_5x5 = nn.Sequential(
            ColpoNetConvBlock(in_channels, five_reduce, 1), ColpoNetConvBlock(five_reduce, five, 5)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1), ColpoNetConvBlock(in_channels, pool_proj, 1)
        )

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        branches = (self.branch_1x1, self.branch_3x3, self.branch_5x5, self.branch_pool)
        return torch.cat([branch(hidden_state) for branch in branches], dim=1)


class ColpoNetPreTrainedModel(PreTrainedModel):
    config_class = ColpoNetConfig
    config: ColpoNetConfig
    base_model_prefix = "colponet"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # The loss is a mean inside forward: Trainer must scale it for gradient accumulation, not pass token counts.
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            # A small classifier init keeps the first losses near log(num_labels), even over a random backbone.
            init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            if module.num_batches_tracked is not None:
                init.zeros_(module.num_batches_tracked)

    def set_backbone_trainable(self, trainable: bool) -> None:
        """Freezes (`False`) or unfreezes (`True`) the ResNet backbone, for staged fine-tuning. A frozen backbone also
        runs in inference mode, in training too (see `train`)."""
        self.base_model.backbone.requires_grad_(trainable)
        self.train(self.training)

    def train(self, mode: bool = True):
        """As `nn.Module.train`, except that a frozen backbone stays in inference mode, as a frozen Keras layer does:
        its batch norm keeps the running statistics it was given (ImageNet's, when training started there) instead
        of re-estimating them from the fine-tuning batches."""
        super().train(mode)
        backbone = self.base_model.backbone
        if not any(parameter.requires_grad for parameter in backbone.parameters()):
            backbone.eval()
        return self

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves as transformers does, and also names [`ColpoNetModel`] in `config.json`'s `auto_map`, so that
        `AutoModel.from_pretrained(..., trust_remote_code=True)` loads the features model: transformers writes only
        the saved class's own entry."""
        base = ColpoNetModel
        if base._auto_class is not None:
            entry = {base._auto_class: f"{base.__module__.rsplit('.', 1)[-1]}.{base.__name__}"}
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **entry}
        super().save_pretrained(save_directory, *args, **kwargs)


class ColpoNetModel(ColpoNetPreTrainedModel):
    """ColpoNet without its classifier: backbone, channel reduction, dense block, inception block, pooling."""

    def __init__(self, config: ColpoNetConfig):
        super().__init__(config)
        self.backbone = load_backbone(config)
        backbone_channels = self.backbone.num_features[-1]
        self.reduction = ColpoNetConvBlock(backbone_channels, config.reduction_channels, kernel_size=1)
        self.dense_block = ColpoNetDenseBlock(
            config.reduction_channels,
            config.dense_num_layers,
            config.dense_growth_rate,
            config.dense_bottleneck_factor,
        )
        dense_channels = config.reduction_channels + config.dense_num_layers * config.dense_growth_rate
        self.inception_block = ColpoNetInceptionBlock(dense_channels, config.inception_branch_channels)
        self.pooler = nn.AdaptiveAvgPool2d(1)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ColpoNetModelOutput | tuple:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # Only the last stage is used: calling the encoder directly lets the earlier stages' outputs be freed
        # (the backbone's own forward keeps them all), which is measurably faster on the CPU.
        backbone_outputs = self.backbone.encoder(
            self.backbone.embedder(pixel_values), output_hidden_states=output_hidden_states, return_dict=True
        )
        reduced = self.reduction(backbone_outputs.last_hidden_state)
        dense = self.dense_block(reduced)
        inception = self.inception_block(dense)
        pooled = self.pooler(inception).flatten(1)
        hidden_states = None
        if output_hidden_states:
            hidden_states = tuple(backbone_outputs.hidden_states) + (reduced, dense, inception)
        if not return_dict:
            return tuple(v for v in (inception, pooled, hidden_states) if v is not None)
        return ColpoNetModelOutput(last_hidden_state=inception, pooler_output=pooled, hidden_states=hidden_states)


class ColpoNetForImageClassification(ColpoNetPreTrainedModel):
    """ColpoNet with dropout and a linear classifier over the pooled features."""

    def __init__(self, config: ColpoNetConfig):
        super().__init__(config)
        self.colponet = ColpoNetModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.inception_out_channels, config.num_labels)
        self.post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also declares the `image-classification` pipeline behind the quality gate
        ([`ColpoNetImageClassificationPipeline`]) in `config.json`; its file is copied beside the weights with this
        one (it is imported above), so that `pipeline(..., trust_remote_code=True)` refuses blurry photos where
        cervix_hf is not installed."""
        self.config.custom_pipelines = {
            PIPELINE_TASK: {
                "impl": f"pipeline_colponet.{ColpoNetImageClassificationPipeline.__name__}",
                "pt": ["AutoModelForImageClassification"],
                "type": "image",
            }
        }
        super().save_pretrained(save_directory, *args, **kwargs)

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ColpoNetImageClassifierOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Images normalised by [`ColpoNetImageProcessor`].
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, num_labels)`; when given, the loss is returned.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.colponet(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            weight = None
            if self.config.class_weights is not None:
                weight = torch.tensor(self.config.class_weights, dtype=logits.dtype, device=logits.device)
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device), weight=weight)
        if not return_dict:
            return tuple(v for v in (loss, logits, outputs.hidden_states) if v is not None)
        return ColpoNetImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


__all__ = [
    "ColpoNetPreTrainedModel",
    "ColpoNetModel",
    "ColpoNetForImageClassification",
    "ColpoNetModelOutput",
    "ColpoNetImageClassifierOutput",
]
