"""A nucleus detector with no learning: the classical baseline that a learned cell detector must beat.

Nuclei are the darkest compact blobs of a Pap smear. The image is turned grey and smoothed, its slowly varying
background (a large median) is subtracted, and the darkness above background is thresholded at several levels:
each connected region of a plausible size and shape becomes a candidate box, scored by its mean darkness times
its fill (pixels of the region / pixels of its box), and overlapping candidates of different thresholds are merged
by NMS. The output has the detector's format (absolute xyxy boxes, scores, class 0), so both are scored by the same
code (`cervix_hf.evaluation.metrics.compute_detection_metrics`).
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
from torchvision.ops import nms

from cervix_hf.io.images import load_image


@dataclass(frozen=True)
class ClassicalNucleusDetector:
    r"""
    Threshold-and-components nucleus detection (OpenCV).

    Args:
        blur_size (`int`, *optional*, defaults to 5):
            Side of the Gaussian kernel that smooths the grey image (odd, pixels).
        background_size (`int`, *optional*, defaults to 51):
            Side of the median filter estimating the background (odd, pixels; wider than a nucleus).
        darkness_thresholds (`Sequence[float]`, *optional*, defaults to `(25, 35, 50, 70)`):
            Grey levels below background (0-255) at which dark regions are cut; several, so that both faint and
            dark nuclei, and dark nuclei touching faint ones, give a region at some level.
        open_size (`int`, *optional*, defaults to 3):
            Side of the square kernel of the morphological opening that detaches thin bridges between regions.
        min_area (`int`, *optional*, defaults to 40):
            Smallest region kept, in pixels.
        max_area (`int`, *optional*, defaults to 2500):
            Largest region kept, in pixels.
        min_aspect_ratio (`float`, *optional*, defaults to 0.3):
            Smallest width/height of a region's box.
        max_aspect_ratio (`float`, *optional*, defaults to 3.0):
            Largest width/height of a region's box.
        nms_iou (`float`, *optional*, defaults to 0.3):
            IoU above which the lower-scoring of two candidates is dropped.
        max_detections (`int`, *optional*, defaults to 300):
            Most detections returned per image, best first.
    """

    blur_size: int = 5
    background_size: int = 51
    darkness_thresholds: Sequence[float] = (25, 35, 50, 70)
    open_size: int = 3
    min_area: int = 40
    max_area: int = 2500
    min_aspect_ratio: float = 0.3
    max_aspect_ratio: float = 3.0
    nms_iou: float = 0.3
    max_detections: int = 300

    def __post_init__(self):
        for name in ("blur_size", "background_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value % 2 == 0:
                raise ValueError(f"`{name}` must be a positive odd integer, got {value!r}.")
        for name in ("open_size", "min_area", "max_area", "max_detections"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.max_area < self.min_area:
            raise ValueError(f"`max_area` ({self.max_area}) must be at least `min_area` ({self.min_area}).")
        if not 0 < self.min_aspect_ratio <= self.max_aspect_ratio:
            raise ValueError(
                f"`min_aspect_ratio` and `max_aspect_ratio` must satisfy 0 < min <= max, got "
                f"{self.min_aspect_ratio!r} and {self.max_aspect_ratio!r}."
            )
        if not self.darkness_thresholds or any(not 0 < t < 255 for t in self.darkness_thresholds):
            raise ValueError(
                f"`darkness_thresholds` must be grey levels in (0, 255), got {self.darkness_thresholds!r}."
            )
        if not 0.0 <= self.nms_iou <= 1.0:
            raise ValueError(f"`nms_iou` must be in [0, 1], got {self.nms_iou!r}.")
        object.__setattr__(self, "darkness_thresholds", tuple(float(t) for t in self.darkness_thresholds))

    def darkness(self, image) -> np.ndarray:
        """How much darker than its local background each pixel is (float32, grey levels, 0 where lighter)."""
        grey = cv2.cvtColor(np.asarray(load_image(image).convert("RGB")), cv2.COLOR_RGB2GRAY)
        smooth = cv2.GaussianBlur(grey, (self.blur_size, self.blur_size), 0)
        background = cv2.medianBlur(smooth, self.background_size)
        return np.clip(background.astype(np.float32) - smooth.astype(np.float32), 0, None)

    def __call__(self, image) -> dict[str, np.ndarray]:
        """
        Nuclei in `image` (a path, file, PIL image or array).

        Returns:
            `dict` with `boxes` (`float32 [K, 4]`, xyxy pixels, `xmax` one past the last column), `scores`
            (`float32 [K]`, mean darkness x fill, highest first) and `labels` (`int64 [K]`, all 0: "nucleus").
        """
        darkness = self.darkness(image)
        kernel = np.ones((self.open_size, self.open_size), np.uint8)
        boxes, scores = [], []
        for threshold in self.darkness_thresholds:
            mask = cv2.morphologyEx((darkness >= threshold).astype(np.uint8), cv2.MORPH_OPEN, kernel)
            count, regions, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for index in range(1, count):
                x, y, width, height, area = (int(v) for v in stats[index])
                if not self.min_area <= area <= self.max_area:
                    continue
                if not self.min_aspect_ratio <= width / height <= self.max_aspect_ratio:
                    continue
                window = regions[y : y + height, x : x + width] == index
                mean_darkness = float(darkness[y : y + height, x : x + width][window].mean())
                boxes.append((x, y, x + width, y + height))
                scores.append(mean_darkness * area / (width * height))
        if not boxes:
            return {
                "boxes": np.zeros((0, 4), np.float32),
                "scores": np.zeros(0, np.float32),
                "labels": np.zeros(0, np.int64),
            }
        boxes_tensor = torch.tensor(boxes, dtype=torch.float32)
        scores_tensor = torch.tensor(scores, dtype=torch.float32)
        keep = nms(boxes_tensor, scores_tensor, self.nms_iou)[: self.max_detections]  # sorted by score
        return {
            "boxes": boxes_tensor[keep].numpy(),
            "scores": scores_tensor[keep].numpy(),
            "labels": np.zeros(len(keep), np.int64),
        }

    def to_dict(self) -> dict:
        return {**asdict(self), "darkness_thresholds": list(self.darkness_thresholds)}


__all__ = ["ClassicalNucleusDetector"]
