"""Augmentation for detection: torchvision `transforms.v2` moves the boxes with the pixels, then boxes that became
degenerate are dropped. The named presets built from these are in `train/presets.py`."""

from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class RandomRightAngleRotation(v2.Transform):
    """
    Rotates the image and its boxes counter-clockwise by 0, 90, 180 or 270 degrees, chosen uniformly; the canvas
    turns with the image, so nothing is cropped.
    """

    def make_params(self, flat_inputs: list) -> dict:
        return {"angle": 90 * int(torch.randint(4, ()))}

    def transform(self, inpt, params: dict):
        output = v2.functional.rotate(inpt, params["angle"], expand=True)
        if isinstance(output, tv_tensors.BoundingBoxes) and params["angle"] % 180:
            # torchvision leaves the canvas of an empty box tensor unrotated; later transforms would see two sizes.
            output = tv_tensors.wrap(output, like=output, canvas_size=inpt.canvas_size[::-1])
        return output


class DetectionTransform:
    r"""
    Applies torchvision `transforms.v2` to an image and its boxes, then drops the boxes that became smaller than
    `min_size` (e.g. pushed out of the image by a zoom) with their labels.

    Called as `transform(image, boxes, labels)` with a `PIL.Image.Image`, N boxes `(xmin, ymin, xmax, ymax)` in
    absolute pixels (a sequence or an array of shape `[N, 4]`, N may be 0) and N class indices; returns
    `(image, boxes, labels)`: the transformed `PIL.Image.Image`, the M boxes kept as a float32 `np.ndarray` of shape
    `[M, 4]` in the new image's pixels, and their labels as `list[int]`.

    Args:
        transforms (`Sequence[v2.Transform]`):
            Transforms applied in order to the image and the boxes (as `tv_tensors.BoundingBoxes`, XYXY).
        min_size (`float`, *optional*, defaults to 1.0):
            Boxes narrower or lower than this, in pixels after the transforms, are dropped.
    """

    def __init__(self, transforms: Sequence[v2.Transform], min_size: float = 1.0):
        self.pipeline = v2.Compose([*transforms, v2.SanitizeBoundingBoxes(min_size=min_size)])

    def __call__(
        self, image: PIL.Image.Image, boxes, labels: Sequence[int]
    ) -> tuple[PIL.Image.Image, np.ndarray, list[int]]:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) != len(labels):
            raise ValueError(f"boxes and labels must have one entry per object, got {len(boxes)} and {len(labels)}.")
        sample = self.pipeline(
            {
                "image": image,
                "boxes": tv_tensors.BoundingBoxes(
                    torch.from_numpy(boxes), format="XYXY", canvas_size=(image.height, image.width)
                ),
                "labels": torch.as_tensor(labels, dtype=torch.int64),
            }
        )
        return sample["image"], sample["boxes"].as_subclass(torch.Tensor).numpy(), sample["labels"].tolist()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline})"
