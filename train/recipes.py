"""Named ColpoNet training recipes: every choice that makes it learn, in one place, by name.

A recipe sets the training script's defaults (`--recipe NAME`); a flag given on the command line still wins, and
`eval_results.json` and the model card report the recipe with the settings it ran with.

- `kaggle`: ColpoNet from random weights on the competition's training photos (about 1,500), on a CPU. The
  ablation in the README measures each choice on the validation split.
- `seed64`: the seed work's ColpoNet as it describes it (the ResNet-50 size, 64x64 px inputs, the seed's two
  stages, learning rates, class weighting and augmentation), from random weights: a baseline for `kaggle`.
"""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ColpoNetRecipe:
    r"""
    Args:
        description (`str`): one line for the help and the model card.
        model_size (`str`): the named size (`ModelFamily.sizes` of `colponet`).
        image_size (`int`): side of the model's square input (the processor's `size`).
        augmentation (`str`): classification augmentation preset (`train.presets.CLASSIFICATION_PRESETS`).
        stage1_epochs (`float`), stage1_lr (`float`): the frozen-backbone stage (0 epochs skips it).
        stage2_epochs (`float`), stage2_lr (`float`): the stage that trains everything.
        schedule (`str`): `"plateau"` or `"cosine"` (`train.engine.TrainingStage`).
        batch_size (`int`), weight_decay (`float`): AdamW's batch and decoupled weight decay.
        label_smoothing (`float`): label smoothing of the cross-entropy (0 for none).
        mixup_alpha (`float`): mixup's Beta parameter (`train.engine.MixupTrainer`; 0 for none).
        ema_decay (`float`): per-step decay of the weights' exponential moving average, which replaces the trained
            weights at the end of each stage (`train.engine.WeightAverage`; 0 keeps the last weights).
        class_weights (`str`): `"balanced"` (inverse class frequency) or `"none"`.
        split (`tuple[float, float, float]`): train, validation and test fractions (stratified, `--seed`); with
            test 0 the model is evaluated on its validation split, which the `"cosine"` schedule never uses to
            choose.
        quality_percentile (`float`, *optional*): calibrate the quality gate's two thresholds to this percentile
            of the training split's scores (the gate then rejects about this share of photos like them); `None`
            keeps the processor's thresholds.
        bf16 (`bool`): bfloat16 autocast.
        channels_last (`bool`): weights in channels-last memory order.
        decode_once (`bool`): decode every photo once into memory (`cervix_hf.data.DecodedImageDataset`).
        baselines (`bool`): score the non-learned baselines on the evaluated split (`train/colponet_baselines.py`).
    """

    description: str
    model_size: str
    image_size: int
    augmentation: str
    stage1_epochs: float
    stage1_lr: float
    stage2_epochs: float
    stage2_lr: float
    schedule: str
    batch_size: int
    weight_decay: float
    label_smoothing: float
    mixup_alpha: float
    ema_decay: float
    class_weights: str
    split: tuple[float, float, float]
    quality_percentile: float | None
    bf16: bool
    channels_last: bool
    decode_once: bool
    baselines: bool

    def to_dict(self) -> dict:
        return asdict(self)


COLPONET_RECIPES = {
    "kaggle": ColpoNetRecipe(
        description="competition photos, random init, CPU: small ResNet at 160 px, the seed's augmentation, "
        "label smoothing, one 20-epoch cosine stage, bf16",
        model_size="small",
        image_size=160,
        augmentation="default",
        stage1_epochs=0,
        stage1_lr=1e-4,
        stage2_epochs=20,
        stage2_lr=2e-3,
        schedule="cosine",
        batch_size=32,
        weight_decay=0.05,
        label_smoothing=0.1,
        mixup_alpha=0.0,
        ema_decay=0.0,
        class_weights="none",
        split=(0.8, 0.2, 0.0),
        quality_percentile=2.0,
        bf16=True,
        channels_last=True,
        decode_once=True,
        baselines=True,
    ),
    "seed64": ColpoNetRecipe(
        description="the seed work's ColpoNet at 64x64 px (ResNet-50 size, two stages), from random weights",
        model_size="resnet-50",
        image_size=64,
        augmentation="default",
        stage1_epochs=5,
        stage1_lr=1e-4,
        stage2_epochs=20,
        stage2_lr=1e-5,
        schedule="plateau",
        batch_size=16,
        weight_decay=1e-4,
        label_smoothing=0.0,
        mixup_alpha=0.0,
        ema_decay=0.0,
        class_weights="balanced",
        split=(0.8, 0.2, 0.0),
        quality_percentile=2.0,
        bf16=True,
        channels_last=True,
        decode_once=True,
        baselines=False,
    ),
}

__all__ = ["COLPONET_RECIPES", "ColpoNetRecipe"]
