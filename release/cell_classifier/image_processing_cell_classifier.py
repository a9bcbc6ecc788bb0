"""Cell classifier image processor: resize to 128x128, ImageNet normalisation, and the post-processing (class
probabilities, the normal/abnormal roll-up, the decision at a threshold).

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries and files of this folder.
"""

import torch
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling


class CellClassifierImageProcessor(TorchvisionBackend):
    r"""
    Prepares single-cell Pap-smear images for [`CellClassifierForImageClassification`]: resize to 128x128
    (bilinear; the Herlev cells are square, letterboxed crops, so their aspect ratio is kept; another image is
    squeezed), rescale to [0, 1] and normalise with ImageNet's mean and standard deviation. It is the single owner
    of resizing and normalisation, and of the post-processing ([`post_process_classification`]).
    """

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 128, "width": 128}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    def post_process_classification(
        self, outputs, config, threshold: float | None = None, operating_point: str | None = None
    ) -> list[dict]:
        """
        The answer for each image: its class probabilities, their roll-up into the config's two groups, and the
        decision.

        Args:
            outputs: the model's output (or a dict) with `logits` of shape `(batch_size, num_labels)`.
            config ([`CellClassifierConfig`]): gives the labels, the groups and the thresholds.
            threshold (`float`, *optional*): the decision threshold on the positive group's probability.
            operating_point (`str`, *optional*): a named operating point of the config instead (see
                `CellClassifierConfig.threshold_for`); with neither, `config.decision_threshold`.

        Returns:
            `list[dict]`: per image, `label` (the most probable class), `probabilities` (class -> probability, in
            class order), `groups` (group -> the sum of its classes' probabilities), `decision` (the positive group's
            name when its probability is at or above `threshold`, else the negative group's), `threshold` and
            `operating_point`.
        """
        threshold = config.threshold_for(operating_point, threshold)
        logits = torch.as_tensor(outputs["logits"]).float()
        probabilities = logits.softmax(dim=-1).tolist()
        labels = [config.id2label[index] for index in range(config.num_labels)]
        negative, positive = config.group_names
        answers = []
        for row in probabilities:
            by_class = dict(zip(labels, row))
            groups = {name: sum(by_class[label] for label in members) for name, members in config.label_groups.items()}
            answers.append(
                {
                    "label": labels[max(range(len(row)), key=row.__getitem__)],
                    "probabilities": by_class,
                    "groups": groups,
                    "decision": positive if groups[positive] >= threshold else negative,
                    "threshold": threshold,
                    "operating_point": operating_point,
                }
            )
        return answers


__all__ = ["CellClassifierImageProcessor"]
