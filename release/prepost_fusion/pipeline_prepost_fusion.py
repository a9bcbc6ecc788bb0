"""The `prepost-classification` pipeline: `{"pre": image, "post": image}` in; label, probability, threshold out.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

from transformers import Pipeline
from transformers.image_utils import load_image

PIPELINE_TASK = "prepost-classification"


class PrePostClassificationPipeline(Pipeline):
    """
    Classifies one case (or a list of cases) from a pre-stain and a post-stain image.

    Each input is a dict `{"pre": image, "post": image}` (paths, URLs or PIL images). Keyword arguments:
    `threshold` (a probability in [0, 1]) or `operating_point` (`"screening"`, `"balanced"` or `"confirmatory"`,
    as chosen on the validation split and saved in the config); by default `config.decision_threshold`.
    Returns `{"label", "probability", "threshold"}` per case: research output, not a diagnosis.
    """

    _load_image_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_processor = False

    def _sanitize_parameters(self, threshold=None, operating_point=None, **kwargs):
        return {}, {}, {"threshold": self.model.config.threshold_for(operating_point, threshold)}

    def preprocess(self, inputs):
        if not isinstance(inputs, dict) or not {"pre", "post"} <= set(inputs):
            raise ValueError(
                'Each input must be a dict {"pre": image, "post": image}: a pre-stain and a post-stain image of the '
                f"same case; got {type(inputs).__name__} with keys {sorted(inputs) if isinstance(inputs, dict) else '-'}."
            )
        return self.image_processor(load_image(inputs["pre"]), load_image(inputs["post"]), return_tensors="pt")

    def _forward(self, model_inputs):
        return self.model(**model_inputs)

    def postprocess(self, model_outputs, threshold: float = 0.5):
        return self.image_processor.post_process_classification(model_outputs, threshold)[0]
