"""Cell detector image processor: images to a padded `[0, 1]` batch, annotations to labels, detections to boxes.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

import torch
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling


class CellDetectorImageProcessor(TorchvisionBackend):
    r"""
    Prepares images for [`CellDetectorForObjectDetection`] and turns its output into boxes.

    Resizing and normalisation belong to the model (torchvision's Faster R-CNN contract, see
    `CellDetectorConfig`): this processor only converts each image to RGB `[0, 1]` floats and pads the batch at the
    bottom and right to a common size, returning `pixel_values` and `pixel_mask`. Given `annotations` (one dict per
    image with `boxes`, xyxy pixels, and `class_labels`) it also returns `labels` for training, checked against
    the image size.
    """

    model_input_names = ["pixel_values", "pixel_mask"]
    resample = PILImageResampling.BILINEAR
    do_resize = False
    do_rescale = True
    do_normalize = False
    do_convert_rgb = True

    def preprocess(self, images, *args, annotations: list[dict] | None = None, **kwargs) -> BatchFeature:
        """
        annotations (`list[dict]`, *optional*):
            One dict per image: `boxes` (`[N, 4]`, xyxy pixels of that image) and `class_labels` (`[N]`).
        """
        batch = super().preprocess(images, *args, **kwargs)
        if annotations is not None:
            sizes = batch["pixel_mask"].any(dim=2).sum(dim=1), batch["pixel_mask"].any(dim=1).sum(dim=1)
            if len(annotations) != len(sizes[0]):
                raise ValueError(f"Got {len(sizes[0])} images but {len(annotations)} annotations.")
            batch["labels"] = [
                _check_annotation(annotation, int(height), int(width), index)
                for index, (annotation, height, width) in enumerate(zip(annotations, *sizes))
            ]
        return batch

    def _preprocess(self, images: list[torch.Tensor], do_rescale, rescale_factor, return_tensors, **kwargs):
        height = max(image.shape[-2] for image in images)
        width = max(image.shape[-1] for image in images)
        pixel_values = torch.zeros(len(images), 3, height, width)
        pixel_mask = torch.zeros(len(images), height, width, dtype=torch.long)
        for index, image in enumerate(images):
            image = image.float() * rescale_factor if do_rescale else image.float()
            pixel_values[index, :, : image.shape[-2], : image.shape[-1]] = image
            pixel_mask[index, : image.shape[-2], : image.shape[-1]] = 1
        return BatchFeature({"pixel_values": pixel_values, "pixel_mask": pixel_mask}, tensor_type=return_tensors)

    @staticmethod
    def keeps(scores, threshold: float):
        """Whether a detection of `scores` (a number or a tensor of them) is kept at `threshold`: strictly above it,
        as `post_process_object_detection` keeps them."""
        return scores > threshold

    def post_process_object_detection(self, outputs, threshold: float = 0.5, target_sizes=None) -> list[dict]:
        """
        Detections above `threshold` for each image, as transformers' object-detection post-processing returns
        them.

        Args:
            outputs ([`CellDetectorOutput`]): the model's output in inference mode.
            threshold (`float`, *optional*, defaults to 0.5): keep detections scoring strictly above this.
            target_sizes (`torch.Tensor` of shape `(batch_size, 2)` or `list[tuple[int, int]]`, *optional*):
                (height, width) of each original image; boxes are rescaled from the model's input size to it.
                Without it, boxes are in pixels of the input given to the processor.

        Returns:
            `list[dict]`: per image, `scores` (`[K]`), `labels` (`[K]`, class index) and `boxes` (`[K, 4]`, absolute
            xyxy), highest score first.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"`threshold` must be in [0, 1], got {threshold!r}.")
        image_sizes = outputs["image_sizes"]
        if target_sizes is not None and len(target_sizes) != len(image_sizes):
            raise ValueError(f"Got {len(target_sizes)} target sizes for {len(image_sizes)} images.")
        results = []
        for index in range(len(image_sizes)):
            keep = outputs["detection_mask"][index] & self.keeps(outputs["scores"][index], threshold)
            boxes = outputs["pred_boxes"][index][keep]
            if target_sizes is not None:
                target_height, target_width = (float(v) for v in target_sizes[index])
                height, width = (float(v) for v in image_sizes[index])
                scale = boxes.new_tensor([target_width / width, target_height / height] * 2)
                boxes = boxes * scale
            results.append(
                {
                    "scores": outputs["scores"][index][keep],
                    "labels": outputs["pred_labels"][index][keep],
                    "boxes": boxes,
                }
            )
        return results


def _check_annotation(annotation: dict, height: int, width: int, index: int) -> dict[str, torch.Tensor]:
    boxes = torch.as_tensor(annotation.get("boxes", []), dtype=torch.float32).reshape(-1, 4)
    classes = torch.as_tensor(annotation.get("class_labels", []), dtype=torch.int64).reshape(-1)
    if len(boxes) != len(classes):
        raise ValueError(f"annotations[{index}] has {len(boxes)} boxes but {len(classes)} class_labels.")
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    outside = (boxes[:, :2] < 0).any(dim=1) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
    if degenerate.any() or outside.any():
        bad = int(torch.nonzero(degenerate | outside)[0])
        raise ValueError(
            f"annotations[{index}] box {bad} {boxes[bad].tolist()} is not a valid xyxy box inside the "
            f"{width}x{height} image."
        )
    return {"boxes": boxes, "class_labels": classes}


__all__ = ["CellDetectorImageProcessor"]
