"""Named augmentation presets, one table per model, in one place (as torchvision's reference scripts keep theirs).

Each preset is applied to PIL images before the image processor resizes and normalises them. The transforms that
move boxes with the pixels (`cervix_hf.data.DetectionTransform`) or a pre/post pair together
(`cervix_hf.data.PairTransform`) live beside their datasets; which transforms make up a named preset lives here.
A training script offers `--augmentation` with `choices=<MODEL>_PRESETS` and calls `<model>_train_transform(name)`.
The preset names cost nothing to import; torchvision is imported when a transform is built, so that the scripts'
`--help` answers without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchvision.transforms import v2

    from cervix_hf.data import DetectionTransform, PairTransform

CLASSIFICATION_PRESETS = ("none", "flip", "default", "strong")
DETECTION_PRESETS = ("none", "flip", "default", "nuclei")
PAIR_PRESETS = ("none", "flip", "default")


def _check(preset: str, presets: tuple[str, ...]) -> None:
    if preset not in presets:
        raise ValueError(f"Unknown augmentation preset {preset!r}; choose one of {', '.join(presets)}.")


def _flips() -> list[v2.Transform]:
    from torchvision.transforms import v2

    return [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]


def classification_train_transform(preset: str = "default", size: int | None = None) -> v2.Compose | None:
    """
    Augmentation for colposcopy photos (`None` for `"none"`), of PIL images or uint8 tensors.

    Args:
        preset (`str`, *optional*, defaults to `"default"`):
            `"none"`: no augmentation. `"flip"`: horizontal and vertical flips. `"default"`: flips, rotation,
            brightness/contrast jitter and a shift-scale-rotate (the seed work's augmentation). `"strong"`: for
            training from random weights: a random crop of 35-100% of the photo's area (aspect 3:4 to 4:3) resized
            to `size`, flips, a rotation up to 30 degrees, and brightness, contrast, saturation and hue jitter (other
            cameras, light and white balance).
        size (`int`, *optional*):
            Side of the output of `"strong"`'s crop; required by it, unused by the others.
    """
    from torchvision.transforms import v2

    _check(preset, CLASSIFICATION_PRESETS)
    if preset == "strong":
        if size is None:
            raise ValueError("The 'strong' augmentation preset needs the model's input size (size=...).")
        return v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=(0.35, 1.0), ratio=(0.75, 4 / 3), antialias=True),
                *_flips(),
                v2.RandomRotation(degrees=30),
                v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.2, hue=0.03),
            ]
        )
    extra = {
        "none": None,
        "flip": [],
        "default": [
            v2.RandomApply([v2.RandomRotation(degrees=20)], p=0.5),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
            v2.RandomAffine(degrees=10, translate=(0.06, 0.06), scale=(0.9, 1.1)),
        ],
    }[preset]
    return None if extra is None else v2.Compose(_flips() + extra)


def detection_train_transform(preset: str = "default", crop_size: int | None = None) -> DetectionTransform | None:
    r"""
    Augmentation for Pap-smear detection training, as a [`DetectionTransform`] (`None` for `"none"` without a crop).

    Args:
        preset (`str`, *optional*, defaults to `"default"`):
            `"none"`: no augmentation. `"flip"`: horizontal and vertical flips. `"default"`: flips, a rotation by a
            multiple of 90 degrees (cells have no up or down), a zoom by 0.8-1.25 on a fixed canvas (the cells'
            size changes, so the image processor's resize does not undo it; the area uncovered by zooming out is
            white, like an empty slide) and colour jitter for staining differences. `"nuclei"`: for a detector that
            keeps the input's scale (`keep_input_scale`): flips, right-angle rotations and brightness/contrast
            jitter, no zoom (the nuclei's size in pixels is what it learns).
        crop_size (`int`, *optional*):
            Side of a random square crop taken first (padded with white where the image is smaller); boxes cut by
            the crop are clipped to it. Many small crops per image give many training steps at little cost.
    """
    from torchvision.transforms import v2

    from cervix_hf.data import DetectionTransform, RandomRightAngleRotation

    _check(preset, DETECTION_PRESETS)
    crop = [] if crop_size is None else [v2.RandomCrop(crop_size, pad_if_needed=True, fill=255)]
    if preset == "none":
        return DetectionTransform(crop) if crop else None
    extra = {
        "flip": [],
        "nuclei": [RandomRightAngleRotation(), v2.ColorJitter(brightness=0.2, contrast=0.2)],
        "default": [
            RandomRightAngleRotation(),
            v2.RandomAffine(degrees=0, scale=(0.8, 1.25), fill=255),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03),
        ],
    }[preset]
    return DetectionTransform(crop + _flips() + extra, min_size=4 if preset == "nuclei" else 1.0)


def paired_train_transform(preset: str = "default") -> PairTransform | None:
    r"""
    Augmentation for pre/post fusion training, as a [`PairTransform`] (`None` for `"none"`).

    Colour jitter, like the geometric transforms, uses the same parameters for both images: what the model learns
    from is the change of colour from pre to post (acetowhitening, iodine uptake), which a jitter drawn per image
    could fake or erase; a shared jitter imitates another camera or light for the whole examination.

    Args:
        preset (`str`, *optional*, defaults to `"default"`):
            `"none"`: no augmentation. `"flip"`: horizontal and vertical flips. `"default"`: flips, a rotation up to
            15 degrees, a shift up to 6% and a zoom by 0.9-1.1, and brightness, contrast and saturation jitter of
            20%.
    """
    from torchvision.transforms import v2

    from cervix_hf.data import PairTransform

    _check(preset, PAIR_PRESETS)
    extra = {
        "none": None,
        "flip": [],
        "default": [
            v2.RandomAffine(degrees=15, translate=(0.06, 0.06), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ],
    }[preset]
    return None if extra is None else PairTransform(_flips() + extra)
