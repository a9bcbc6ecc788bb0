"""Heat maps drawn over images: Grad-CAM for an image classifier such as ColpoNet, and where the pre/post fusion
model's pre-stain image looks in the post-stain image.

Both are relative pictures of what a network used, not findings: a heat map over an untrained model is noise, and
even a trained model's heat map need not point at a lesion.
"""

from collections.abc import Mapping

import cv2
import numpy as np
import PIL.Image
import PIL.ImageColor
import PIL.ImageDraw
import PIL.ImageFont
import torch

# The displayed image's longest side: heat maps are for looking at, and a 100-megapixel overlay would only cost memory.
DEFAULT_DISPLAY_SIZE = 1024


def grad_cam(model, pixel_values: torch.Tensor, target_class: int | None = None) -> tuple[torch.Tensor, int]:
    """
    Grad-CAM (Selvaraju et al., ICCV 2017) of one image on the model's last convolutional feature map.

    The feature map is the last of `hidden_states` (for ColpoNet, the inception block's output, 7x7 for a 224x224
    input), taken from the model's own output rather than through module hooks, so concurrent calls on a shared
    model never see each other's activations. Gradients are computed even when called under `torch.inference_mode`;
    no parameter's `.grad` is touched.

    Args:
        model (`PreTrainedModel`): an image classifier in eval mode whose output has `logits` and, with
            `output_hidden_states=True`, spatial `hidden_states`.
        pixel_values (`torch.Tensor` of shape `(1, 3, height, width)`): one image, from the model's processor.
        target_class (`int`, *optional*): the class to explain; defaults to the most probable one.

    Returns:
        `tuple[torch.Tensor, int]`: the class activation map of shape `(feature_height, feature_width)`,
        non-negative and not normalised, and the class it explains.
    """
    if pixel_values.ndim != 4 or pixel_values.shape[0] != 1:
        raise ValueError(
            f"grad_cam explains one image: expected pixel_values of shape (1, 3, H, W), got "
            f"{tuple(pixel_values.shape)}."
        )
    with torch.inference_mode(False), torch.enable_grad():
        pixel_values = pixel_values.detach().clone().requires_grad_(True)
        outputs = model(pixel_values=pixel_values, output_hidden_states=True)
        features = outputs.hidden_states[-1]
        logits = outputs.logits[0]
        target = int(logits.argmax()) if target_class is None else int(target_class)
        (gradients,) = torch.autograd.grad(logits[target], features)
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # one weight per channel: its average gradient
    return torch.relu((weights * features).sum(dim=1))[0].detach(), target


def attention_received(pre_to_post_attention: torch.Tensor) -> torch.Tensor:
    """
    The share of the pre-stain image's attention that each post-stain position receives, averaged over the
    pre-stain positions (it sums to 1 over the grid).

    Args:
        pre_to_post_attention (`torch.Tensor` of shape `(height, width, height, width)`): as in
            `cervix_hf.prediction.inference.PrePostPrediction` (pre-stain position, then post-stain position).

    Returns:
        `torch.Tensor` of shape `(height, width)`, over the post-stain image.
    """
    height, width = pre_to_post_attention.shape[-2:]
    return pre_to_post_attention.reshape(-1, height, width).mean(dim=0)


def overlay_heatmap(
    image: PIL.Image.Image, heatmap, alpha: float = 0.45, display_size: int | None = DEFAULT_DISPLAY_SIZE
) -> PIL.Image.Image:
    """
    `heatmap` (a 2-D tensor or array over the whole image, any grid size) stretched to [0, 1], upsampled
    bilinearly, coloured with the jet colour map (blue low, red high) and blended over `image`.

    A constant heat map (e.g. Grad-CAM of a class with no positive evidence) leaves the image uncoloured. The result
    is shrunk to at most `display_size` pixels on its longest side (`None` keeps the image's size).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
    image = image.convert("RGB")
    if display_size is not None:
        image = image.copy()
        image.thumbnail((display_size, display_size))
    heat = torch.as_tensor(heatmap, dtype=torch.float32).detach().cpu()
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D, got shape {tuple(heat.shape)}.")
    low, high = heat.min(), heat.max()
    heat = (heat - low) / (high - low) if high > low else torch.zeros_like(heat)
    heat = torch.nn.functional.interpolate(
        heat[None, None], size=(image.height, image.width), mode="bilinear", align_corners=False
    )[0, 0]
    colours = cv2.applyColorMap(np.rint(heat.numpy() * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32)
    # Where the map is 0 the photo shows through unchanged, so low evidence reads as "nothing here".
    weight = alpha * heat.numpy()[..., None]
    blended = (1.0 - weight) * np.asarray(image, dtype=np.float32) + weight * colours
    return PIL.Image.fromarray(np.rint(blended).astype(np.uint8))


def _display_copy(image: PIL.Image.Image, display_size: int | None) -> tuple[PIL.Image.Image, np.ndarray]:
    """An RGB copy of `image` to draw on, shrunk to `display_size` at most (`None`: full size), and the factors
    (x, y, x, y) that take a box in `image`'s pixels to the copy's."""
    display = image.convert("RGB").copy()
    if display_size is not None:
        display.thumbnail((display_size, display_size))
    return display, np.array([display.width / image.width, display.height / image.height] * 2)


def detection_masks(
    image: PIL.Image.Image, detections, display_size: int | None = DEFAULT_DISPLAY_SIZE
) -> tuple[PIL.Image.Image, list[tuple[np.ndarray, str]]]:
    """
    The image shrunk for display and one mask per class drawing that class's boxes (outline 1.0, inside 0.25), as
    `gr.AnnotatedImage` takes them: one mask per class rather than per box keeps hundreds of cells cheap to draw.

    Args:
        image (`PIL.Image.Image`): the image the detections were made on.
        detections (`list[CellDetection]`): boxes in pixels of `image`.
        display_size (`int`, *optional*, defaults to `DEFAULT_DISPLAY_SIZE`): longest side of the displayed image;
            `None` keeps the image's size.

    Returns:
        `tuple[PIL.Image.Image, list[tuple[np.ndarray, str]]]`: the displayed image and, for each class with a
        detection (in order of first appearance), a float mask of the displayed image's (height, width) and the
        class name.
    """
    display, scale = _display_copy(image, display_size)
    limits = np.array([display.width, display.height] * 2)
    border = max(2, round(min(display.size) / 300))
    masks: dict[str, np.ndarray] = {}
    for detection in detections:
        mask = masks.setdefault(detection.label, np.zeros((display.height, display.width), dtype=np.float32))
        corners = np.asarray(detection.box) * scale
        corners = np.concatenate([np.floor(corners[:2]), np.ceil(corners[2:])])
        left, top, right, bottom = np.clip(corners, 0, limits).astype(int)
        inside = mask[top:bottom, left:right]
        np.maximum(inside, 0.25, out=inside)
        inside[:, :border] = inside[:, -border:] = inside[:border] = inside[-border:] = 1.0
    return display, [(mask, label) for label, mask in masks.items()]


def draw_detections(
    image: PIL.Image.Image,
    detections,
    colours: Mapping[str, str],
    display_size: int | None = DEFAULT_DISPLAY_SIZE,
    draw_boxes: bool = True,
) -> PIL.Image.Image:
    """
    `image` with each detection numbered and scored: a tag `"<n> <score>"` (`n` counts from 1 in the order of
    `detections`, as the app's per-cell table does) in its class's colour at the box's top-left corner, above the box
    where there is room, and the box outlined in that colour unless `draw_boxes` is `False` (for `gr.AnnotatedImage`,
    which draws the boxes itself as masks).

    Args:
        image (`PIL.Image.Image`): the image the detections were made on.
        detections (`list[CellDetection]`): boxes in pixels of `image`.
        colours (`Mapping[str, str]`): a `#rrggbb` colour per class name.
        display_size (`int`, *optional*, defaults to `DEFAULT_DISPLAY_SIZE`): longest side of the drawn image, as in
            [`detection_masks`]; `None` keeps the image's size (a download at full resolution).
        draw_boxes (`bool`, *optional*, defaults to `True`): whether to outline the boxes too.
    """
    drawn, scale = _display_copy(image, display_size)
    draw = PIL.ImageDraw.Draw(drawn)
    font = PIL.ImageFont.load_default(size=max(10, round(min(drawn.size) / 80)))
    width = max(1, round(min(drawn.size) / 400))
    for number, detection in enumerate(detections, start=1):
        colour = colours.get(detection.label, "#ffffff")
        left, top, right, bottom = (np.asarray(detection.box, dtype=float) * scale).tolist()
        if draw_boxes:
            draw.rectangle((left, top, right, bottom), outline=colour, width=width)
        tag = f"{number} {detection.score:.2f}"
        tag_left, tag_top, tag_right, tag_bottom = draw.textbbox((0, 0), tag, font=font)
        tag_width, tag_height = tag_right - tag_left + 2, tag_bottom - tag_top + 2
        x = min(max(left, 0), max(drawn.width - tag_width, 0))
        y = top - tag_height if top >= tag_height else min(max(top, 0), max(drawn.height - tag_height, 0))
        draw.rectangle((x, y, x + tag_width, y + tag_height), fill=colour)
        red, green, blue = PIL.ImageColor.getrgb(colour)[:3]
        ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "white"
        draw.text((x + 1 - tag_left, y + 1 - tag_top), tag, fill=ink, font=font)
    return drawn


__all__ = [
    "DEFAULT_DISPLAY_SIZE",
    "attention_received",
    "detection_masks",
    "draw_detections",
    "grad_cam",
    "overlay_heatmap",
]
