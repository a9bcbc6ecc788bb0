"""ColpoNet configuration.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

COLPONET_LABELS = ("Type_1", "Type_2", "Type_3")


class ColpoNetConfig(PreTrainedConfig):
    r"""
    Configuration of [`ColpoNetModel`] and [`ColpoNetForImageClassification`]: a ResNet-50 backbone followed by a
    DenseNet-style densely connected block and a GoogLeNet-style inception block ("ColpoNet 2.0"), for the cervix
    transformation-zone type (Type 1/2/3) of a colposcopy photo.

    Resizing and normalisation are owned by [`ColpoNetImageProcessor`], which also carries the image-quality gate's
    thresholds; this configuration only describes the network.

    Args:
        backbone (`str`, *optional*, defaults to `"microsoft/resnet-50"`):
            Hub id of the checkpoint whose weights initialise the backbone when training starts with
            `use_pretrained_backbone=True`. Never read when a saved ColpoNet is loaded.
        backbone_config (`dict` or `ResNetConfig`, *optional*):
            Architecture of the backbone. Defaults to the ResNet-50 of `microsoft/resnet-50` with
            `out_features=["stage4"]`.
        use_pretrained_backbone (`bool`, *optional*, defaults to `True`):
            Whether training initialises the backbone from `backbone` (ImageNet weights). The model's `__init__`
            never downloads: see `cervix_hf.load_pretrained_backbone`.
        reduction_channels (`int`, *optional*, defaults to 256):
            Channels of the 1x1 convolution that reduces the backbone's last stage before the new blocks, which
            keeps them cheap.
        dense_num_layers (`int`, *optional*, defaults to 4):
            Layers of the densely connected block; each adds `dense_growth_rate` channels.
        dense_growth_rate (`int`, *optional*, defaults to 32):
            Channels each dense layer concatenates to its input (DenseNet's growth rate).
        dense_bottleneck_factor (`int`, *optional*, defaults to 4):
            Width of each dense layer's 1x1 bottleneck, as a multiple of the growth rate (DenseNet-BC).
        inception_branch_channels (`list[int]`, *optional*, defaults to `[64, 96, 128, 16, 32, 32]`):
            Widths of the inception block, in GoogLeNet's order: 1x1; 3x3 reduce, 3x3; 5x5 reduce, 5x5; pool
            projection. The block outputs `1x1 + 3x3 + 5x5 + pool projection` channels.
        classifier_dropout (`float`, *optional*, defaults to 0.5):
            Dropout probability before the linear classifier.
        class_weights (`list[float]`, *optional*):
            Per-class weights of the cross-entropy loss (one per label), for imbalanced data such as the
            competition's ~17% / 53% / 30%. `None` weighs every class equally.
        id2label (`dict[int, str]`, *optional*, defaults to `{0: "Type_1", 1: "Type_2", 2: "Type_3"}`):
            Label names.

    Example:
    ```python
    >>> from cervix_hf import ColpoNetConfig, ColpoNetForImageClassification
    >>> model = ColpoNetForImageClassification(ColpoNetConfig())  # random weights, ResNet-50 sized
    ```
    """

    model_type = "colponet"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(
            config_class=AutoConfig, model_type="resnet", init_kwargs={"out_features": ["stage4"]}
        ),
    }

    backbone: str | None = "microsoft/resnet-50"
    backbone_config: dict | PreTrainedConfig | None = None
    use_pretrained_backbone: bool = True
    reduction_channels: int = 256
    dense_num_layers: int = 4
    dense_growth_rate: int = 32
    dense_bottleneck_factor: int = 4
    inception_branch_channels: list[int] | tuple[int, ...] = (64, 96, 128, 16, 32, 32)
    classifier_dropout: float = 0.5
    class_weights: list[float] | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(COLPONET_LABELS))
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: int(idx) for idx, name in self.id2label.items()}
        self.inception_branch_channels = list(self.inception_branch_channels)
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self):
        for name in ("reduction_channels", "dense_num_layers", "dense_growth_rate", "dense_bottleneck_factor"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        branches = self.inception_branch_channels
        if len(branches) != 6 or any(not isinstance(c, int) or c < 1 for c in branches):
            raise ValueError(
                "`inception_branch_channels` must be six positive integers (1x1; 3x3 reduce, 3x3; 5x5 reduce, "
                f"5x5; pool projection), got {branches!r}."
            )
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"`classifier_dropout` must be in [0, 1), got {self.classifier_dropout!r}.")
        if self.class_weights is not None:
            if len(self.class_weights) != self.num_labels or any(w <= 0 for w in self.class_weights):
                raise ValueError(
                    f"`class_weights` must hold {self.num_labels} positive numbers (one per label), "
                    f"got {self.class_weights!r}."
                )
        if getattr(self.backbone_config, "model_type", None) != "resnet":
            raise ValueError(
                f"`backbone_config` must describe a ResNet (model_type 'resnet'), got "
                f"{getattr(self.backbone_config, 'model_type', self.backbone_config)!r}."
            )
        if list(self.backbone_config.out_features) != self.backbone_config.stage_names[-1:]:
            raise ValueError(
                "`backbone_config.out_features` must be the last stage only "
                f"([{self.backbone_config.stage_names[-1]!r}]): the new blocks read the last feature map."
            )

    @property
    def inception_out_channels(self) -> int:
        one, _, three, _, five, pool = self.inception_branch_channels
        return one + three + five + pool


__all__ = ["ColpoNetConfig", "COLPONET_LABELS"]
