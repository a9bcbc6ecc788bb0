"""Named training recipes for the cell detector: every choice that makes it learn, in one place, by name.

A recipe is a base model size with config overrides and the training settings that go with them; the training
script applies it with `--recipe NAME` (its flags still override each setting) and the model card reports it.

`nuclei` learns nuclei from a handful of images, from random weights, on a CPU. What each setting is for (the
ablation in the README measures them on ISBI 2014 EDF010-EDF011, trained on EDF000-EDF009):

- the model keeps the input's scale (`keep_input_scale`): it trains on random 320 px crops, many per image per
  epoch, and detects the whole 1024 px image (or tiles of a larger slide) with nuclei at the same size in pixels;
- a "small" ResNet between "tiny" and ResNet-50 (widths 16-128, one block per stage), whose batch norm and stem
  train (`freeze_batch_norm=False`, `trainable_backbone_stages=5`): frozen batch norm only suits loaded weights;
- square anchors of 24 px on the finest pyramid level (nuclei are 12-34 px, median 23), doubling per level;
- 128 RoIs sampled per image (a crop holds a few nuclei; 512 would be almost all background), up to 500
  proposals kept at test time and 300 detections per image;
- flips, right-angle rotations and brightness/contrast jitter, no zoom.
"""

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class DetectorRecipe:
    r"""
    Args:
        description (`str`): one line for the help and the model card.
        model_size (`str`): the named size the config starts from (`cervix_hf.registry.MODEL_SIZES`).
        config (`dict`): overrides of that size's [`CellDetectorConfig`].
        augmentation (`str`): detection augmentation preset (`cervix_hf.data.DETECTION_PRESETS`).
        crop_size (`int`, *optional*): side of the random training crops; `None` trains on whole images.
        crops_per_image (`int`): training samples drawn from each image per epoch.
        epochs (`float`), learning_rate (`float`), batch_size (`int`): the schedule (AdamW, 10x cut on plateau).
        early_stopping_patience (`int`), plateau_patience (`int`): evaluations, as the training engine counts.
        score_threshold (`float`): the operating point the card reports precision, recall and F1 at.
    """

    description: str
    model_size: str
    config: dict = field(default_factory=dict)
    augmentation: str = "default"
    crop_size: int | None = None
    crops_per_image: int = 1
    epochs: float = 26
    learning_rate: float = 1e-4
    batch_size: int = 2
    early_stopping_patience: int = 5
    plateau_patience: int = 2
    score_threshold: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


SMALL_RESNET = {
    "model_type": "resnet",
    "embedding_size": 16,
    "hidden_sizes": [16, 32, 64, 128],
    "depths": [1, 1, 1, 1],
    "layer_type": "bottleneck",
    "out_features": ["stage1", "stage2", "stage3", "stage4"],
}

DETECTOR_RECIPES = {
    "nuclei": DetectorRecipe(
        description="nuclei from a few images, random init, CPU: native scale, 320 px crops, small ResNet",
        model_size="tiny",
        config={
            "backbone_config": SMALL_RESNET,
            "fpn_out_channels": 32,
            "keep_input_scale": True,
            "freeze_batch_norm": False,
            "trainable_backbone_stages": 5,
            "anchor_sizes": [24, 48, 96, 192, 384],
            "anchor_aspect_ratios": [1.0],
            "rpn_pre_nms_top_n": 2000,
            "rpn_post_nms_top_n": 1000,
            "box_batch_size_per_image": 128,
            "detections_per_image": 300,
        },
        augmentation="nuclei",
        crop_size=320,
        crops_per_image=30,
        epochs=5,
        learning_rate=1e-3,
        batch_size=4,
        early_stopping_patience=5,
        plateau_patience=2,
        score_threshold=0.5,
    ),
}

__all__ = ["DETECTOR_RECIPES", "DetectorRecipe", "SMALL_RESNET"]
