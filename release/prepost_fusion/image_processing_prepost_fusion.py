"""Pre/post fusion image processor: a pre-stain and a post-stain image per case, and the decision.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

import torch
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

from .configuration_prepost_fusion import PREPOST_LABELS


class PrePostFusionImageProcessor(TorchvisionBackend):
    r"""
    Prepares (pre-stain, post-stain) image pairs for [`PrePostFusionForImageClassification`]: each image resized
    to 224x224 (bilinear), rescaled to [0, 1] and normalised with ImageNet's mean and standard deviation. It is the
    single owner of resizing and normalisation.

    Call it as `processor(pre_images, post_images, return_tensors="pt")` with one image or a list of images each
    (any size or mode, the same number of both): it returns `pre_pixel_values` and `post_pixel_values`, so
    `model(**processor(pre, post, return_tensors="pt"))` works.
    """

    model_input_names = ["pre_pixel_values", "post_pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 224, "width": 224}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    def __call__(self, pre_images=None, post_images=None, **kwargs) -> BatchFeature:
        if pre_images is None or post_images is None:
            missing = "pre_images" if pre_images is None else "post_images"
            raise ValueError(f"`{missing}` is missing: every case needs a pre-stain and a post-stain image.")
        pre_images, post_images = _as_list(pre_images), _as_list(post_images)
        if len(pre_images) != len(post_images):
            raise ValueError(
                f"Got {len(pre_images)} pre-stain but {len(post_images)} post-stain images: pass one of each per case."
            )
        pre = self.preprocess(pre_images, **kwargs)["pixel_values"]
        post = self.preprocess(post_images, **kwargs)["pixel_values"]
        return BatchFeature(
            {"pre_pixel_values": pre, "post_pixel_values": post}, tensor_type=kwargs.get("return_tensors")
        )

    def post_process_classification(self, outputs, threshold: float) -> list[dict]:
        """
        The decision for each case: Positive when the probability is at or above `threshold`.

        Returns:
            `list[dict]`: per case, `label` ("Negative"/"Positive"), `probability` (of Positive) and `threshold`.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"`threshold` must be in [0, 1], got {threshold!r}.")
        probabilities = torch.as_tensor(outputs["probabilities"]).reshape(-1).tolist()
        return [
            {"label": PREPOST_LABELS[int(p >= threshold)], "probability": p, "threshold": threshold}
            for p in probabilities
        ]


def _as_list(images) -> list:
    return list(images) if isinstance(images, (list, tuple)) else [images]


__all__ = ["PrePostFusionImageProcessor"]
