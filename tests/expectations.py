"""Expected answers computed by calling the models directly, independently of `cervix_hf.prediction.inference` (which the app,
the command line and the pipelines call): what a test compares a user-facing answer with."""

import numpy as np
import torch
from PIL import Image

from cervix_hf import load_image


@torch.no_grad()
def type_probabilities(model, processor, image) -> dict[str, float]:
    """ColpoNet's softmax over its logits, each named by the config's `id2label`."""
    logits = model(pixel_values=processor(load_image(image), return_tensors="pt")["pixel_values"]).logits[0]
    return {model.config.id2label[index]: float(p) for index, p in enumerate(logits.softmax(-1))}


@torch.no_grad()
def detections(model, image, threshold: float) -> list[tuple[str, float, list[float]]]:
    """(label, score, xyxy box) of the detector's own output above `threshold`, best first. The detector resizes
    inside and answers in pixels of the image it is given, here the photo itself as `[0, 1]` floats."""
    photo = load_image(image)
    pixels = torch.from_numpy(np.array(photo, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    output = model(pixel_values=pixels)
    keep = output.detection_mask[0] & (output.scores[0] > threshold)
    return [
        (model.config.id2label[int(label)], float(score), box.tolist())
        for label, score, box in zip(output.pred_labels[0][keep], output.scores[0][keep], output.pred_boxes[0][keep])
    ]


@torch.no_grad()
def positive_probability(model, processor, pre, post) -> float:
    """The fusion model's sigmoid of its logit for one pair."""
    logits = model(**processor(load_image(pre), load_image(post), return_tensors="pt")).logits
    return float(torch.sigmoid(logits[0]))


def as_rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)
