"""Cell classifier: a small ResNet from random weights and a linear layer, one Pap-smear cell per image.

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

from .configuration_cell_classifier import CellClassifierConfig
from .pipeline_cell_classifier import PIPELINE_TASK, CellClassificationPipeline


@dataclass
class CellClassifierModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, channels, height, width)`):
            The backbone's last feature map (4x4 for 128x128 inputs).
        pooler_output (`torch.FloatTensor` of shape `(batch_size, channels)`):
            `last_hidden_state` averaged over its spatial positions.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The backbone's stem and stage outputs, each of shape `(batch_size, channels, height, width)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class CellClassifierOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Cross-entropy with `config.label_smoothing`.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Class scores before softmax; [`CellClassifierImageProcessor.post_process_classification`] turns them
            into class probabilities, the group roll-up and the decision.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            As in [`CellClassifierModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class CellClassifierPreTrainedModel(PreTrainedModel):
    config_class = CellClassifierConfig
    config: CellClassifierConfig
    base_model_prefix = "cell_classifier"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            # A small classifier init keeps the first losses near log(num_labels) over a random backbone.
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

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves as transformers does, and also names [`CellClassifierModel`] in `config.json`'s `auto_map`, so that
        `AutoModel.from_pretrained(..., trust_remote_code=True)` loads the features model: transformers writes only
        the saved class's own entry."""
        base = CellClassifierModel
        if base._auto_class is not None:
            entry = {base._auto_class: f"{base.__module__.rsplit('.', 1)[-1]}.{base.__name__}"}
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **entry}
        super().save_pretrained(save_directory, *args, **kwargs)


class CellClassifierModel(CellClassifierPreTrainedModel):
    """The cell classifier without its classifier: the ResNet backbone and global average pooling."""

    def __init__(self, config: CellClassifierConfig):
        super().__init__(config)
        self.backbone = load_backbone(config)
        self.pooler = nn.AdaptiveAvgPool2d(1)
        self.post_init()

    @property
    def num_features(self) -> int:
        return self.backbone.num_features[-1]

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CellClassifierModelOutput | tuple:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # The encoder called directly keeps only the last stage (the backbone's forward keeps them all).
        outputs = self.backbone.encoder(
            self.backbone.embedder(pixel_values), output_hidden_states=output_hidden_states, return_dict=True
        )
        last = outputs.last_hidden_state
        pooled = self.pooler(last).flatten(1)
        hidden_states = tuple(outputs.hidden_states) if output_hidden_states else None
        if not return_dict:
            return tuple(v for v in (last, pooled, hidden_states) if v is not None)
        return CellClassifierModelOutput(last_hidden_state=last, pooler_output=pooled, hidden_states=hidden_states)


class CellClassifierForImageClassification(CellClassifierPreTrainedModel):
    """The cell classifier with dropout and a linear layer over the pooled features: one logit per class."""

    def __init__(self, config: CellClassifierConfig):
        super().__init__(config)
        self.cell_classifier = CellClassifierModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.cell_classifier.num_features, config.num_labels)
        self.post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also declares the `image-classification` pipeline with the group roll-up ([`CellClassificationPipeline`])
        in `config.json`; its file is copied beside the weights with this one (it is imported above), so that
        `pipeline(..., trust_remote_code=True)` gives the decision where cervix_hf is not installed."""
        self.config.custom_pipelines = {
            PIPELINE_TASK: {
                "impl": f"pipeline_cell_classifier.{CellClassificationPipeline.__name__}",
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
    ) -> CellClassifierOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Cell images normalised by [`CellClassifierImageProcessor`].
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, num_labels)`; when given, the loss is returned.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.cell_classifier(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.float(), labels.to(logits.device), label_smoothing=self.config.label_smoothing
            )
        if not return_dict:
            return tuple(v for v in (loss, logits, outputs.hidden_states) if v is not None)
        return CellClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


__all__ = [
    "CellClassifierPreTrainedModel",
    "CellClassifierModel",
    "CellClassifierForImageClassification",
    "CellClassifierModelOutput",
    "CellClassifierOutput",
]
