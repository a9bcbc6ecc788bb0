"""The cell detector's `object-detection` pipeline: transformers' own, plus tiled detection of large slides.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only third-party
libraries and files of this folder.
"""

import torch
from transformers import ObjectDetectionPipeline
from transformers.image_utils import load_image

from .tiling_cell_detector import detect_tiled

PIPELINE_TASK = "object-detection"
# The model this pipeline is written for. Being remote code, it is in none of transformers' model mappings, which
# `check_model_type` reads.
MODEL_CLASS_NAME = "CellDetectorForObjectDetection"


class CellDetectionPipeline(ObjectDetectionPipeline):
    """
    transformers' `ObjectDetectionPipeline`, with two more call arguments:

    - `tile_size` (`int`, *optional*): detect an image larger than this many pixels on a side tile by tile (square
      tiles, merged by `detect_tiled`), so that a whole slide is not shrunk to the model's input size;
    - `overlap` (`int`, *optional*, defaults to 128): pixels shared by neighbouring tiles, wider than a cell.

    With tiles, the score `threshold` applies in each tile before the merge, as in `cervix_hf.inference.detect_cells`.
    """

    def check_model_type(self, supported_models):
        """transformers' check, which also accepts the cell detector: as remote code, it is in none of transformers'
        mappings and would be logged as unsupported."""
        if type(self.model).__name__ != MODEL_CLASS_NAME:
            super().check_model_type(supported_models)

    def _sanitize_parameters(self, tile_size=None, overlap=128, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        if tile_size is not None:
            preprocess.update(tile_size=tile_size, overlap=overlap, threshold=kwargs.get("threshold", 0.5))
        return preprocess, forward, postprocess

    def preprocess(self, image, timeout=None, tile_size=None, overlap=128, threshold=0.5):
        if tile_size is None:
            return super().preprocess(image, timeout=timeout)
        tiles = {"tile_size": int(tile_size), "overlap": int(overlap), "threshold": float(threshold)}
        return {"whole_image": load_image(image, timeout=timeout), **tiles}

    def _forward(self, model_inputs):
        if "whole_image" not in model_inputs:
            return super()._forward(model_inputs)

        def detect(tile):
            inputs = self.image_processor(images=[tile], return_tensors="pt").to(self.device)
            outputs = self.model(**inputs)
            sizes = [(tile.height, tile.width)]
            return self.image_processor.post_process_object_detection(outputs, model_inputs["threshold"], sizes)[0]

        merged = detect_tiled(detect, model_inputs["whole_image"], model_inputs["tile_size"], model_inputs["overlap"])
        return {"tiled_detections": merged}

    def postprocess(self, model_outputs, threshold=0.5):
        if "tiled_detections" not in model_outputs:
            return super().postprocess(model_outputs, threshold)
        found = model_outputs["tiled_detections"]
        return [
            {
                "score": float(score),
                "label": self.model.config.id2label[int(label)],
                "box": self._get_bounding_box(torch.as_tensor(box)),
            }
            for score, label, box in zip(found["scores"], found["labels"], found["boxes"])
            if score > threshold
        ]


__all__ = ["CellDetectionPipeline", "PIPELINE_TASK"]
