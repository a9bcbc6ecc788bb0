"""Pre/post fusion: two ResNet-50s, cross-attention between their feature tokens, one logit.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.backbone_utils import load_backbone
from transformers.utils import ModelOutput

from .configuration_prepost_fusion import PrePostFusionConfig
from .pipeline_prepost_fusion import PIPELINE_TASK, PrePostClassificationPipeline


@dataclass
class PrePostFusionModelOutput(ModelOutput):
    """
    Args:
        pooler_output (`torch.FloatTensor` of shape `(batch_size, 2 * fusion_hidden_size)`):
            The fused features of the case: the pre-stain tokens after attending to the post-stain image, averaged
            over positions, then the post-stain tokens after attending to the pre-stain image, averaged.
        pre_to_post_attentions (`torch.FloatTensor` of shape `(batch_size, num_heads, pre_tokens, post_tokens)`):
            How much each pre-stain position attends to each post-stain position (rows sum to 1); tokens are the
            backbone's last feature map in row-major order (7x7 for 224x224 inputs).
        post_to_pre_attentions (`torch.FloatTensor` of shape `(batch_size, num_heads, post_tokens, pre_tokens)`):
            The other direction.
        feature_map_size (`tuple[int, int]`):
            (height, width) of the token grid, to reshape the attentions for display.
    """

    pooler_output: torch.FloatTensor | None = None
    pre_to_post_attentions: torch.FloatTensor | None = None
    post_to_pre_attentions: torch.FloatTensor | None = None
    feature_map_size: tuple[int, int] | None = None


@dataclass
class PrePostFusionOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Binary cross-entropy on the logits, with `config.pos_weight` when set.
        logits (`torch.FloatTensor` of shape `(batch_size,)`):
            Logit of Positive.
        probabilities (`torch.FloatTensor` of shape `(batch_size,)`):
            `sigmoid(logits)`: the probability of Positive, compared with `config.decision_threshold`.
        pre_to_post_attentions, post_to_pre_attentions, feature_map_size:
            As in [`PrePostFusionModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    probabilities: torch.FloatTensor | None = None
    pre_to_post_attentions: torch.FloatTensor | None = None
    post_to_pre_attentions: torch.FloatTensor | None = None
    feature_map_size: tuple[int, int] | None = None


class PrePostCrossAttention(nn.Module):
    """Tokens of one image attend to the tokens of the other; residual connection and layer norm."""

    def __init__(self, config: PrePostFusionConfig):
        super().__init__()
        self.attention = nn.MultiheadAttention(
            config.fusion_hidden_size, config.num_attention_heads, dropout=config.attention_dropout, batch_first=True
        )
        self.norm = nn.LayerNorm(config.fusion_hidden_size)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attention(queries, keys, keys, need_weights=True, average_attn_weights=False)
        return self.norm(queries + attended), weights


class PrePostFusionPreTrainedModel(PreTrainedModel):
    config_class = PrePostFusionConfig
    config: PrePostFusionConfig
    base_model_prefix = "prepost"
    main_input_name = "pre_pixel_values"
    input_modalities = ("image",)
    # The loss is a mean inside forward: Trainer must scale it for gradient accumulation, not pass token counts.
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        # ResNet backbones initialise themselves (their own `post_init`); these are the fusion layers.
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()
        elif isinstance(module, PrePostFusionModel):
            init.normal_(module.stream_embeddings, std=0.02)

    def _backbones(self) -> tuple[nn.Module, nn.Module]:
        """(pre-stain backbone, post-stain backbone): the same module twice when shared."""
        model = self.base_model
        if self.config.share_backbone:
            return model.backbone, model.backbone
        return model.pre_backbone, model.post_backbone

    def set_backbone_trainable(self, trainable: bool) -> None:
        """Freezes (`False`) or unfreezes (`True`) the backbones, for staged fine-tuning. Frozen backbones also run
        in inference mode, in training too (see `train`)."""
        for backbone in self._backbones():
            backbone.requires_grad_(trainable)
        self.train(self.training)

    def train(self, mode: bool = True):
        """As `nn.Module.train`, except that frozen backbones stay in inference mode, as a frozen Keras layer does:
        their batch norm keeps the running statistics it was given (ImageNet's, when training started there)
        instead of re-estimating them from the fine-tuning batches."""
        super().train(mode)
        for backbone in self._backbones():
            if not any(parameter.requires_grad for parameter in backbone.parameters()):
                backbone.eval()
        return self

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves as transformers does, and also names [`PrePostFusionModel`] in `config.json`'s `auto_map`, so that
        `AutoModel.from_pretrained(..., trust_remote_code=True)` loads the features model: transformers writes only
        the saved class's own entry."""
        base = PrePostFusionModel
        if base._auto_class is not None:
            entry = {base._auto_class: f"{base.__module__.rsplit('.', 1)[-1]}.{base.__name__}"}
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **entry}
        super().save_pretrained(save_directory, *args, **kwargs)


class PrePostFusionModel(PrePostFusionPreTrainedModel):
    """The fused features of a pre-stain and a post-stain image: backbones, token projection, cross-attention both
    ways, pooling; [`PrePostFusionForImageClassification`] without its classifier."""

    def __init__(self, config: PrePostFusionConfig):
        super().__init__(config)
        if config.share_backbone:
            self.backbone = load_backbone(config)
        else:
            self.pre_backbone = load_backbone(config)
            self.post_backbone = load_backbone(config)
        channels = self._backbones()[0].num_features[-1]
        self.projection = nn.Linear(channels, config.fusion_hidden_size)
        self.projection_norm = nn.LayerNorm(config.fusion_hidden_size)
        # Which image a token comes from, so the shared projection keeps the two streams apart.
        self.stream_embeddings = nn.Parameter(torch.empty(2, config.fusion_hidden_size))
        self.pre_to_post = PrePostCrossAttention(config)
        self.post_to_pre = PrePostCrossAttention(config)
        self.post_init()

    def _tokens(self, backbone: nn.Module, pixel_values: torch.Tensor, stream: int):
        # Only the last stage is used: calling the encoder directly lets the earlier stages' outputs be freed
        # (the backbone's own forward keeps them all), which is measurably faster on the CPU.
        feature_map = backbone.encoder(backbone.embedder(pixel_values)).last_hidden_state  # (batch, C, H, W)
        tokens = feature_map.flatten(2).transpose(1, 2)  # (batch, height * width, channels)
        tokens = self.projection_norm(self.projection(tokens)) + self.stream_embeddings[stream]
        return tokens, tuple(feature_map.shape[-2:])

    def forward(
        self,
        pre_pixel_values: torch.FloatTensor,
        post_pixel_values: torch.FloatTensor,
        return_dict: bool | None = None,
        **kwargs,
    ) -> PrePostFusionModelOutput | tuple:
        r"""
        pre_pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Pre-stain images (e.g. after normal saline), from [`PrePostFusionImageProcessor`].
        post_pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Post-stain images of the same cervices (e.g. after acetic acid), in the same order.
        """
        if pre_pixel_values.shape[0] != post_pixel_values.shape[0]:
            raise ValueError(
                f"Got {pre_pixel_values.shape[0]} pre-stain but {post_pixel_values.shape[0]} post-stain images: "
                "every case needs both."
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        pre_backbone, post_backbone = self._backbones()
        pre_tokens, grid = self._tokens(pre_backbone, pre_pixel_values, stream=0)
        post_tokens, _ = self._tokens(post_backbone, post_pixel_values, stream=1)
        pre_fused, pre_to_post = self.pre_to_post(pre_tokens, post_tokens)
        post_fused, post_to_pre = self.post_to_pre(post_tokens, pre_tokens)
        output = PrePostFusionModelOutput(
            pooler_output=torch.cat([pre_fused.mean(dim=1), post_fused.mean(dim=1)], dim=-1),
            pre_to_post_attentions=pre_to_post,
            post_to_pre_attentions=post_to_pre,
            feature_map_size=grid,
        )
        return output if return_dict else output.to_tuple()


class PrePostFusionForImageClassification(PrePostFusionPreTrainedModel):
    """Negative/Positive from a pre-stain and a post-stain image of the same cervix."""

    def __init__(self, config: PrePostFusionConfig):
        super().__init__(config)
        self.prepost = PrePostFusionModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(2 * config.fusion_hidden_size, 1)
        self.post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also declares the `prepost-classification` pipeline in `config.json`; its file is copied beside the
        weights with this one (it is imported above), so `pipeline(..., trust_remote_code=True)` works where
        cervix_hf is not installed."""
        self.config.custom_pipelines = {
            PIPELINE_TASK: {
                "impl": f"pipeline_prepost_fusion.{PrePostClassificationPipeline.__name__}",
                "pt": ["AutoModelForImageClassification"],
                "type": "image",
            }
        }
        super().save_pretrained(save_directory, *args, **kwargs)

    def forward(
        self,
        pre_pixel_values: torch.FloatTensor,
        post_pixel_values: torch.FloatTensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> PrePostFusionOutput | tuple:
        r"""
        pre_pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Pre-stain images (e.g. after normal saline), from [`PrePostFusionImageProcessor`].
        post_pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Post-stain images of the same cervices (e.g. after acetic acid), in the same order.
        labels (`torch.Tensor` of shape `(batch_size,)`, *optional*):
            1 for Positive, 0 for Negative; when given, the loss is returned.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        fused = self.prepost(pre_pixel_values, post_pixel_values, return_dict=True)
        logits = self.classifier(self.dropout(fused.pooler_output)).squeeze(-1)
        loss = None
        if labels is not None:
            pos_weight = None
            if self.config.pos_weight is not None:
                pos_weight = torch.tensor(self.config.pos_weight, dtype=logits.dtype, device=logits.device)
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits, labels.to(logits.dtype).to(logits.device), pos_weight=pos_weight
            )
        output = PrePostFusionOutput(
            loss=loss,
            logits=logits,
            probabilities=torch.sigmoid(logits),
            pre_to_post_attentions=fused.pre_to_post_attentions,
            post_to_pre_attentions=fused.post_to_pre_attentions,
            feature_map_size=fused.feature_map_size,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "PrePostFusionPreTrainedModel",
    "PrePostFusionModel",
    "PrePostFusionForImageClassification",
    "PrePostFusionModelOutput",
    "PrePostFusionOutput",
]
