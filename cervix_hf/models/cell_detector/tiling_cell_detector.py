"""Detection on images larger than a detector's input, tile by tile, so that no slide is shrunk until its nuclei
vanish.

This file is copied next to the weights by `save_pretrained` (the detector's pipeline imports it) and runs as remote
code: it imports only third-party libraries.

The image is cut into overlapping tiles of one size, each tile is detected at its own resolution, the boxes are
shifted into the image's pixels and merged. An object that a tile border cuts is seen whole in the neighbouring
tile when the overlap is wider than the object, so the merge prefers boxes that no interior tile border touches:
they go first through a class-aware greedy NMS, and a border-cut box is kept only where no kept box of its class
already covers most of it.
"""

from collections.abc import Callable

import numpy as np
import PIL.Image


def tile_origins(length: int, tile_size: int, overlap: int) -> list[int]:
    """
    Start offsets of tiles of `tile_size` covering `0..length` with at least `overlap` pixels shared by
    neighbours; the last tile ends at `length`, so every tile has the full size (one tile when `length` fits).
    """
    if tile_size < 1 or not 0 <= overlap < tile_size:
        raise ValueError(
            f"`tile_size` must be positive and `overlap` in [0, tile_size), got {tile_size} and {overlap}."
        )
    if length <= tile_size:
        return [0]
    count = int(np.ceil((length - overlap) / (tile_size - overlap)))
    return np.linspace(0, length - tile_size, count).round().astype(int).tolist()


def detect_tiled(
    detect: Callable[[PIL.Image.Image], dict],
    image: PIL.Image.Image,
    tile_size: int,
    overlap: int = 128,
    iou_threshold: float = 0.5,
    border_margin: float = 2.0,
    covered_fraction: float = 0.5,
) -> dict[str, np.ndarray]:
    r"""
    Runs `detect` on overlapping tiles of `image` and merges the detections.

    Args:
        detect (`Callable`):
            Called with one tile (a `PIL.Image.Image` of `tile_size` x `tile_size`, or the whole image when it is
            smaller); returns `boxes` (`[K, 4]` xyxy in the tile's pixels), `scores` (`[K]`) and `labels` (`[K]`),
            as arrays or tensors.
        image (`PIL.Image.Image`):
            The whole image.
        tile_size (`int`):
            Side of the square tiles, in pixels of `image`.
        overlap (`int`, *optional*, defaults to 128):
            Pixels shared by neighbouring tiles at least; wider than the largest object, so each object lies whole
            in some tile.
        iou_threshold (`float`, *optional*, defaults to 0.5):
            IoU above which two boxes of the same class found in different tiles are one object.
        border_margin (`float`, *optional*, defaults to 2.0):
            A box within this many pixels of a tile edge that lies inside the image is cut by that tile.
        covered_fraction (`float`, *optional*, defaults to 0.5):
            A cut box is dropped when a kept box of its class covers more than this fraction of it.

    Returns:
        `dict` with `boxes` (`float32 [N, 4]`, xyxy in `image`'s pixels), `scores` (`float32 [N]`, highest first)
        and `labels` (`int64 [N]`).
    """
    width, height = image.size
    boxes, scores, labels, cut = [], [], [], []
    for top in tile_origins(height, tile_size, overlap):
        for left in tile_origins(width, tile_size, overlap):
            right, bottom = min(left + tile_size, width), min(top + tile_size, height)
            found = detect(image.crop((left, top, right, bottom)))
            tile_boxes = _array(found["boxes"], np.float32).reshape(-1, 4) + np.float32([left, top, left, top])
            # Tile edges that are not image edges: a box touching one may be a part of its object.
            inner_edges = np.array([left > 0, top > 0, right < width, bottom < height])
            near = np.concatenate(
                [
                    tile_boxes[:, :2] <= np.float32([left, top]) + border_margin,
                    tile_boxes[:, 2:] >= np.float32([right, bottom]) - border_margin,
                ],
                axis=1,
            )
            boxes.append(tile_boxes)
            scores.append(_array(found["scores"], np.float32).reshape(-1))
            labels.append(_array(found["labels"], np.int64).reshape(-1))
            cut.append((near & inner_edges).any(axis=1))
    boxes, scores, labels, cut = (np.concatenate(parts) for parts in (boxes, scores, labels, cut))
    keep = _merge(boxes, scores, labels, cut, iou_threshold, covered_fraction)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def _merge(boxes, scores, labels, cut, iou_threshold: float, covered_fraction: float) -> np.ndarray:
    """Indices kept by a greedy, class-aware NMS that visits whole boxes before cut ones, each by score."""
    order = np.lexsort((-scores, cut))  # whole boxes first, each group best first
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    kept: list[int] = []
    for index in order:
        same_class = [k for k in kept if labels[k] == labels[index]]
        if same_class:
            others = boxes[same_class]
            corner_min = np.maximum(others[:, :2], boxes[index, :2])
            corner_max = np.minimum(others[:, 2:], boxes[index, 2:])
            inter = np.prod(np.clip(corner_max - corner_min, 0, None), axis=1)
            iou = inter / np.maximum(areas[same_class] + areas[index] - inter, 1e-9)
            if (iou > iou_threshold).any():
                continue
            if cut[index] and (inter / max(areas[index], 1e-9) > covered_fraction).any():
                continue
        kept.append(index)
    return np.asarray(kept, dtype=np.int64)


def _array(values, dtype) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


__all__ = ["detect_tiled", "tile_origins"]
