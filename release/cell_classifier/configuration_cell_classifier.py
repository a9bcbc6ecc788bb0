"""Cell classifier configuration.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# The Herlev database's seven classes, in class order (folder names as the data set spells them).
HERLEV_LABELS = (
    "normal_superficiel",
    "normal_intermediate",
    "normal_columnar",
    "light_dysplastic",
    "moderate_dysplastic",
    "severe_dysplastic",
    "carcinoma_in_situ",
)
# The binary roll-up: group name -> its classes; the decision threshold calls the positive group.
HERLEV_GROUPS = {"normal": list(HERLEV_LABELS[:3]), "abnormal": list(HERLEV_LABELS[3:])}
HERLEV_POSITIVE_GROUP = "abnormal"
OPERATING_POINT_NAMES = ("screening", "balanced", "confirmatory")
# A ResNet small enough to train from random weights on two CPU cores in minutes, at 128 px.
DEFAULT_BACKBONE = {
    "embedding_size": 32,
    "hidden_sizes": [32, 64, 128, 256],
    "depths": [1, 1, 1, 1],
    "layer_type": "basic",
    "out_features": ["stage4"],
}


class CellClassifierConfig(PreTrainedConfig):
    r"""
    Configuration of [`CellClassifierModel`] and [`CellClassifierForImageClassification`]: a small ResNet reads one
    Pap-smear cell image and a linear layer gives one logit per class (the Herlev database's seven). The classes roll
    up into two groups (`label_groups`, normal and abnormal): a group's probability is the sum of its classes'
    probabilities, and a cell is called abnormal when that sum is at or above the decision threshold.

    Resizing and normalisation are owned by [`CellClassifierImageProcessor`], which also owns the post-processing
    (class probabilities, roll-up, decision).

    Args:
        backbone_config (`dict` or `ResNetConfig`, *optional*):
            Backbone architecture. Defaults to a ResNet with basic blocks, one per stage, widths 32-64-128-256 and
            `out_features=["stage4"]` (`DEFAULT_BACKBONE`), trained from random weights.
        use_pretrained_backbone (`bool`, *optional*, defaults to `False`):
            Always `False`: this model is trained from random weights; kept for the field every cervix_hf config has.
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout before the linear classifier.
        label_smoothing (`float`, *optional*, defaults to 0.0):
            Label smoothing of the cross-entropy loss computed in `forward`, in [0, 1).
        label_groups (`dict[str, list[str]]`, *optional*, defaults to `HERLEV_GROUPS`):
            Two groups that together hold every label exactly once (normal and abnormal).
        positive_group (`str`, *optional*, defaults to `"abnormal"`):
            The group the decision threshold and the operating points are about (`config.json` sorts its keys, so
            the order of `label_groups` says nothing).
        decision_threshold (`float`, *optional*, defaults to 0.5):
            A cell is called the positive group (abnormal) when that group's probability is at or above it.
        operating_points (`dict`, *optional*):
            Named thresholds on the positive group's probability, chosen on the validation split by training:
            `screening` (the highest threshold whose validation sensitivity reaches the target), `balanced` (best
            Youden's J), `confirmatory` (the lowest threshold whose specificity reaches the target); each maps to a
            dict with `threshold`, `sensitivity`, `specificity`, `achieved`.
        id2label (`dict[int, str]`, *optional*, defaults to the seven `HERLEV_LABELS`):
            Label names.

    Example:
    ```python
    >>> from cervix_hf import CellClassifierConfig, CellClassifierForImageClassification
    >>> model = CellClassifierForImageClassification(CellClassifierConfig())  # random weights
    ```
    """

    model_type = "cell_classifier"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet", init_kwargs=DEFAULT_BACKBONE),
    }

    backbone: str | None = None
    backbone_config: dict | PreTrainedConfig | None = None
    use_pretrained_backbone: bool = False
    classifier_dropout: float = 0.1
    label_smoothing: float = 0.0
    label_groups: dict | None = None
    positive_group: str = HERLEV_POSITIVE_GROUP
    decision_threshold: float = 0.5
    operating_points: dict | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(HERLEV_LABELS))
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: int(idx) for idx, name in self.id2label.items()}
        if self.label_groups is None:
            self.label_groups = {name: list(labels) for name, labels in HERLEV_GROUPS.items()}
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self):
        for name in ("classifier_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)!r}.")
        if not 0.0 <= self.decision_threshold <= 1.0:
            raise ValueError(f"`decision_threshold` must be in [0, 1], got {self.decision_threshold!r}.")
        if self.use_pretrained_backbone:
            raise ValueError("`use_pretrained_backbone` must be False: the cell classifier trains from random weights.")
        labels = [self.id2label[index] for index in sorted(self.id2label)]
        grouped = [label for members in self.label_groups.values() for label in members]
        if len(self.label_groups) != 2 or sorted(grouped) != sorted(labels):
            raise ValueError(
                "`label_groups` must be two groups holding every label exactly once, got "
                f"{self.label_groups!r} for the labels {labels}."
            )
        if self.positive_group not in self.label_groups:
            raise ValueError(
                f"`positive_group` must name one of `label_groups` ({', '.join(self.label_groups)}), got "
                f"{self.positive_group!r}."
            )
        if self.operating_points is not None:
            unknown = set(self.operating_points) - set(OPERATING_POINT_NAMES)
            if unknown:
                raise ValueError(
                    f"`operating_points` has unknown names {sorted(unknown)}; use {', '.join(OPERATING_POINT_NAMES)}."
                )
            for name, point in self.operating_points.items():
                threshold = point.get("threshold") if isinstance(point, dict) else None
                if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
                    raise ValueError(f"`operating_points[{name!r}]` needs a `threshold` in [0, 1], got {point!r}.")
        if getattr(self.backbone_config, "model_type", None) != "resnet":
            raise ValueError("`backbone_config` must describe a ResNet (model_type 'resnet').")
        if list(self.backbone_config.out_features) != self.backbone_config.stage_names[-1:]:
            raise ValueError(
                "`backbone_config.out_features` must be the last stage only "
                f"([{self.backbone_config.stage_names[-1]!r}]): the classifier reads the last feature map."
            )

    @property
    def group_names(self) -> tuple[str, str]:
        """(negative group, positive group), e.g. ("normal", "abnormal")."""
        negative = next(name for name in self.label_groups if name != self.positive_group)
        return negative, self.positive_group

    def group_of(self, label: str) -> str:
        """The group a label belongs to."""
        return next(group for group, members in self.label_groups.items() if label in members)

    def threshold_for(self, operating_point: str | None = None, threshold: float | None = None) -> float:
        """
        The threshold of a decision on the positive group's probability: `threshold` when given, else the named
        operating point's, else `decision_threshold`.

        Raises:
            `ValueError`: both are given, or the model has no such point, or training could not define it.
        """
        if threshold is not None and operating_point is not None:
            raise ValueError("Pass either `threshold` or `operating_point`, not both.")
        if threshold is not None:
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"`threshold` must be in [0, 1], got {threshold!r}.")
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


__all__ = ["CellClassifierConfig", "HERLEV_LABELS", "HERLEV_GROUPS", "HERLEV_POSITIVE_GROUP", "OPERATING_POINT_NAMES"]
