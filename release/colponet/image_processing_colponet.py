"""ColpoNet image processor: resize to 224x224, ImageNet normalisation, and the image-quality gate.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import ImagesKwargs

from .image_quality import (
    DEFAULT_FFT_THRESHOLD,
    DEFAULT_LAPLACIAN_THRESHOLD,
    ImageQualityReport,
    assess_image_quality,
    sharpen_image,
)


class ColpoNetImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    quality_laplacian_threshold (`float`, *optional*):
        Minimum variance of the 3x3 Laplacian (grayscale, shrunk to at most 500x500, never upscaled) for a photo to
        pass the quality gate. The default (12) is calibrated on 224-px phone photos; the seed work's 100 suits
        sharp full-resolution photos (see `image_quality.py`).
    quality_fft_threshold (`float`, *optional*):
        Minimum FFT blur score for a photo to pass the quality gate.
    do_sharpen (`bool`, *optional*):
        Whether to sharpen each photo with a 3x3 Laplacian kernel before resizing.
    """

    quality_laplacian_threshold: float
    quality_fft_threshold: float
    do_sharpen: bool


class ColpoNetImageProcessor(TorchvisionBackend):
    r"""
    Prepares colposcopy photos for [`ColpoNetForImageClassification`]: optional Laplacian sharpening, resize to
    224x224 (bilinear, aspect ratio not kept), rescale to [0, 1] and ImageNet mean/std normalisation. It is the
    single owner of resizing and normalisation.

    It also carries the quality gate ("automatic remove image") thresholds, so a published model carries its
    gate: `processor(images, return_quality_report=True)` adds `quality_reports`, one
    [`ImageQualityReport`] per image, computed on the image as given (before sharpening and resizing).

    Args:
        quality_laplacian_threshold (`float`, *optional*, defaults to `DEFAULT_LAPLACIAN_THRESHOLD`):
            See [`ColpoNetImageProcessorKwargs`].
        quality_fft_threshold (`float`, *optional*, defaults to `DEFAULT_FFT_THRESHOLD`):
            See [`ColpoNetImageProcessorKwargs`].
        do_sharpen (`bool`, *optional*, defaults to `False`):
            See [`ColpoNetImageProcessorKwargs`].
    """

    valid_kwargs = ColpoNetImageProcessorKwargs
    model_input_names = ["pixel_values"]

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 224, "width": 224}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    quality_laplacian_threshold = DEFAULT_LAPLACIAN_THRESHOLD
    quality_fft_threshold = DEFAULT_FFT_THRESHOLD
    do_sharpen = False

    def assess_quality(
        self, images, laplacian_threshold: float | None = None, fft_threshold: float | None = None
    ) -> list[ImageQualityReport]:
        """The quality gate's report for each image (a PIL image, an HxWxC array or a list of them), at the given
        thresholds or this processor's."""
        return [
            assess_image_quality(
                image,
                laplacian_threshold=self.quality_laplacian_threshold
                if laplacian_threshold is None
                else laplacian_threshold,
                fft_threshold=self.quality_fft_threshold if fft_threshold is None else fft_threshold,
            )
            for image in _as_list(images)
        ]

    def post_process_classification(self, outputs, config) -> list[dict]:
        """
        The answer for each photo: its most probable type and every type's probability.

        Args:
            outputs: the model's output (or a dict) with `logits` of shape `(batch_size, num_labels)`.
            config ([`ColpoNetConfig`]): gives the labels (`id2label`).

        Returns:
            `list[dict]`: per photo, `label` and `probabilities` (type -> probability, in class order).
        """
        probabilities = torch.as_tensor(outputs["logits"]).float().softmax(dim=-1).tolist()
        labels = [config.id2label[index] for index in range(config.num_labels)]
        return [
            {"label": labels[max(range(len(row)), key=row.__getitem__)], "probabilities": dict(zip(labels, row))}
            for row in probabilities
        ]

    def preprocess(self, images, *args, return_quality_report: bool = False, **kwargs) -> BatchFeature:
        """
        return_quality_report (`bool`, *optional*, defaults to `False`):
            Whether to add `quality_reports` (one [`ImageQualityReport`] per image) to the output.
        """
        images = _as_list(images)
        do_sharpen = kwargs.get("do_sharpen", self.do_sharpen)
        reports = None
        if return_quality_report:
            reports = self.assess_quality(
                images, kwargs.get("quality_laplacian_threshold"), kwargs.get("quality_fft_threshold")
            )
        if do_sharpen:
            images = [sharpen_image(_to_rgb_array(image)) for image in images]
        batch = super().preprocess(images, *args, **kwargs)
        if reports is not None:
            batch["quality_reports"] = reports
        return batch


def _as_list(images) -> list:
    return list(images) if isinstance(images, (list, tuple)) else [images]


def _to_rgb_array(image) -> np.ndarray:
    """HxWx3 uint8 array from a PIL image, an HxW(xC) array or a CxHxW tensor."""
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.permute(1, 2, 0).numpy() if image.ndim == 3 and image.shape[0] in (1, 3) else image.numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(array * 255.0 if array.max() <= 1.0 else array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return array[..., :3]


__all__ = ["ColpoNetImageProcessor"]
