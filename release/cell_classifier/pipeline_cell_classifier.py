"""The cell classifier's `image-classification` pipeline: transformers' own, with the normal/abnormal roll-up.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only third-party
libraries and files of this folder.
"""

from transformers import ImageClassificationPipeline

PIPELINE_TASK = "image-classification"


class CellClassificationPipeline(ImageClassificationPipeline):
    """
    transformers' `ImageClassificationPipeline` for the cell classifier: it returns every class by default
    (`top_k` = the number of classes), each result dict with its `group` (normal or abnormal), and each carries the
    image's `decision`: the group probabilities (the sum of each group's class probabilities), the decided group and
    the threshold, from the image processor's `post_process_classification`. Pass `operating_point="screening"`
    (or another of the config's points) or `threshold=0.3` to decide at another threshold than the config's
    `decision_threshold`.

    Example:

    ```python
    >>> from transformers import pipeline

    >>> classify = pipeline("image-classification", model="path/or/hub-id", trust_remote_code=True)
    >>> classify("cell.jpg", operating_point="screening")[0]
    {'label': 'severe_dysplastic', 'score': 0.61, 'group': 'abnormal',
     'decision': {'label': 'abnormal', 'groups': {'normal': 0.03, 'abnormal': 0.97}, 'threshold': 0.2, ...}}
    ```
    """

    def _sanitize_parameters(self, operating_point=None, threshold=None, top_k=None, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(top_k=top_k, **kwargs)
        postprocess.setdefault("top_k", self.model.config.num_labels)
        # Checked now, so that a wrong name fails before any image is read.
        postprocess["threshold"] = self.model.config.threshold_for(operating_point, threshold)
        postprocess["operating_point"] = operating_point
        return preprocess, forward, postprocess

    def postprocess(self, model_outputs, function_to_apply=None, top_k=None, threshold=None, operating_point=None):
        config = self.model.config
        answer = self.image_processor.post_process_classification(
            {"logits": model_outputs["logits"].float()}, config, threshold=threshold
        )[0]
        decision = {
            "label": answer["decision"],
            "groups": answer["groups"],
            "threshold": answer["threshold"],
            "operating_point": operating_point,
        }
        ranked = sorted(answer["probabilities"].items(), key=lambda item: -item[1])[: top_k or config.num_labels]
        return [
            {"label": label, "score": score, "group": config.group_of(label), "decision": decision}
            for label, score in ranked
        ]


__all__ = ["CellClassificationPipeline", "PIPELINE_TASK"]
