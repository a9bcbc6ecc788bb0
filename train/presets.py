"""Named augmentation presets, applied to PIL images before the image processor resizes and normalises them."""

from torchvision.transforms import v2

CLASSIFICATION_PRESETS = ("none", "flip", "default")


def classification_train_transform(preset: str = "default"):
    """
    Augmentation for colposcopy photos.

    Args:
        preset (`str`, *optional*, defaults to `"default"`):
            `"none"`: no augmentation. `"flip"`: horizontal and vertical flips. `"default"`: flips, rotation,
            brightness/contrast jitter and a shift-scale-rotate (the seed work's augmentation).
    """
    if preset == "none":
        return None
    flips = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if preset == "flip":
        return v2.Compose(flips)
    if preset == "default":
        return v2.Compose(
            flips
            + [
                v2.RandomApply([v2.RandomRotation(degrees=20)], p=0.5),
                v2.ColorJitter(brightness=0.2, contrast=0.2),
                v2.RandomAffine(degrees=10, translate=(0.06, 0.06), scale=(0.9, 1.1)),
            ]
        )
    raise ValueError(f"Unknown augmentation preset {preset!r}; choose one of {', '.join(CLASSIFICATION_PRESETS)}.")
