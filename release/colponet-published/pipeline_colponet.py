"""ColpoNet's `image-classification` pipeline: transformers' own, behind the image-quality gate.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only third-party
libraries and files of this folder.
"""

import os

import numpy as np
import torch
from transformers import ImageClassificationPipeline
from transformers.image_utils import load_image

from .image_quality import PhotoRejectedError

PIPELINE_TASK = "image-classification"


class ColpoNetImageClassificationPipeline(ImageClassificationPipeline):
    """
    transformers' `ImageClassificationPipeline`, which first runs the processor's quality gate (the blur check of
    `image_quality.py`, at the thresholds saved with the processor) on each photo as given:

    - a photo the gate rejects is refused: the call raises [`PhotoRejectedError`] (a `ValueError`, with the gate's
      report as `.report`) before the model runs, unless it is called with `ignore_quality_gate=True`, which
      classifies the photo anyway;
    - every result dict carries `"quality"`, the gate's report on its photo as a dict (`ImageQualityReport.to_dict`:
      the scores, the thresholds, `is_acceptable`, `reasons` and `message`), beside `"label"` and `"score"`.

    Other arguments (`top_k`, `function_to_apply`, `timeout`, `batch_size`) are transformers'.

    Example:

    ```python
    >>> from transformers import pipeline

    >>> classifier = pipeline("image-classification", model="path/or/hub-id", trust_remote_code=True)
    >>> classifier("photo.jpg", top_k=1)
    [{'label': 'Type_2', 'score': 0.71, 'quality': {..., 'is_acceptable': True, 'message': 'Image accepted: ...'}}]
    ```
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not hasattr(self.image_processor, "assess_quality"):
            raise ValueError(
                f"{type(self).__name__} runs the quality gate of ColpoNet's image processor, but was given "
                f"{type(self.image_processor).__name__}, which has none: load the processor saved with the model "
                "(leave `image_processor` unset), or use transformers' ImageClassificationPipeline to classify "
                "without the gate."
            )

    def _sanitize_parameters(self, ignore_quality_gate=None, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        if ignore_quality_gate is not None:
            if not isinstance(ignore_quality_gate, bool):
                raise ValueError(f"ignore_quality_gate must be True or False, got {ignore_quality_gate!r}.")
            preprocess["ignore_quality_gate"] = ignore_quality_gate
        return preprocess, forward, postprocess

    def preprocess(self, image, timeout=None, ignore_quality_gate=False):
        source = image
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            image = load_image(image, timeout=timeout)
        report = self.image_processor.assess_quality(image)[0]
        if not (report.is_acceptable or ignore_quality_gate):
            override = "To classify it anyway, call the pipeline with ignore_quality_gate=True."
            raise PhotoRejectedError(f"{_photo_name(source)}{report.message} {override}", report=report)
        model_inputs = super().preprocess(image, timeout=timeout)
        # A plain object: batching (`batch_size` > 1) gathers it into a list and hands each photo its own back.
        model_inputs["quality"] = report
        return model_inputs

    def _forward(self, model_inputs):
        report = model_inputs.pop("quality")
        return {**super()._forward(model_inputs), "quality": report}

    def postprocess(self, model_outputs, function_to_apply=None, top_k=5):
        results = super().postprocess(model_outputs, function_to_apply=function_to_apply, top_k=top_k)
        return [{**result, "quality": model_outputs["quality"].to_dict()} for result in results]


def _photo_name(image) -> str:
    """`"<path or URL>: "` for a photo given by its path or URL, so that a refusal in a list names its photo; else
    nothing (a PIL image or an array has no name, and a base64 string is no name to print)."""
    is_named = isinstance(image, str) and (image.startswith(("http://", "https://")) or os.path.isfile(image))
    return f"{image}: " if is_named else ""


__all__ = ["ColpoNetImageClassificationPipeline", "PIPELINE_TASK"]
