"""Grad-CAM, the pre/post attention map and the drawing of heat maps and detection boxes."""

import numpy as np
import pytest
import torch
from PIL import Image

from cervix_hf import ColpoNetForImageClassification, ColpoNetImageProcessor
from cervix_hf.prediction.explain import attention_received, detection_masks, draw_detections, grad_cam, overlay_heatmap
from cervix_hf.prediction.inference import CellDetection
from cervix_hf.registry import colponet_config


@pytest.fixture(scope="module")
def colponet():
    torch.manual_seed(0)
    return ColpoNetForImageClassification(colponet_config("tiny")).eval()


def photo(seed=0, size=(240, 180)):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_grad_cam_of_a_pooled_linear_head_is_the_class_activation_map(colponet):
    # ColpoNet ends in global average pooling and a linear layer, so the gradient of class c's logit at every
    # position of channel k is W[c, k] / (h * w): Grad-CAM reduces to CAM (Zhou et al. 2016), computable by hand.
    pixel_values = ColpoNetImageProcessor()(photo(), return_tensors="pt")["pixel_values"]
    with torch.inference_mode():  # as the app calls it: gradients are still computed
        cam, target = grad_cam(colponet, pixel_values, target_class=2)
    with torch.no_grad():
        features = colponet(pixel_values, output_hidden_states=True).hidden_states[-1][0]
    weights = colponet.classifier.weight[2] / (features.shape[1] * features.shape[2])
    expected = torch.relu((weights[:, None, None] * features).sum(0))
    assert target == 2 and cam.shape == (7, 7)
    torch.testing.assert_close(cam, expected, rtol=1e-4, atol=1e-7)
    assert all(parameter.grad is None for parameter in colponet.parameters())


def test_grad_cam_explains_the_predicted_class_by_default(colponet):
    pixel_values = ColpoNetImageProcessor()(photo(1), return_tensors="pt")["pixel_values"]
    _, target = grad_cam(colponet, pixel_values)
    with torch.no_grad():
        assert target == int(colponet(pixel_values).logits.argmax())
    with pytest.raises(ValueError, match="explains one image"):
        grad_cam(colponet, pixel_values.repeat(2, 1, 1, 1))


def test_attention_received_averages_over_pre_positions_and_sums_to_one():
    attention = torch.softmax(torch.randn(3, 4, 12), dim=-1).reshape(3, 4, 3, 4)
    received = attention_received(attention)
    assert received.shape == (3, 4)
    torch.testing.assert_close(received.sum(), torch.tensor(1.0))
    torch.testing.assert_close(received, attention.reshape(12, 3, 4).mean(0))


def test_overlay_colours_where_the_map_is_high_and_leaves_the_rest():
    image = Image.new("RGB", (400, 200), (128, 128, 128))
    heat = torch.zeros(2, 4)
    heat[0, 0] = 1.0
    overlay = np.asarray(overlay_heatmap(image, heat), dtype=int)
    assert overlay.shape == (200, 400, 3)
    assert (overlay[-1, -1] == 128).all()  # far from the hot cell: unchanged
    assert overlay[0, 0, 0] >= 128 and overlay[0, 0, 1] < 100 and overlay[0, 0, 2] < 100  # the hot corner: red
    assert np.array_equal(np.asarray(overlay_heatmap(image, torch.ones(7, 7))), np.asarray(image))  # flat map
    big = overlay_heatmap(Image.new("RGB", (4000, 2000)), heat)
    assert big.size == (1024, 512)  # shrunk for display


def test_detection_masks_draw_one_mask_per_class_scaled_to_the_display():
    image = Image.new("RGB", (2048, 1024))
    detections = [
        CellDetection("Parabasal", 0.9, (100.0, 100.0, 300.0, 500.0)),
        CellDetection("Koilocytotic", 0.8, (0.0, 0.0, 2048.0, 1024.0)),
        CellDetection("Parabasal", 0.7, (1900.0, 900.0, 2100.0, 1100.0)),  # runs off the image: clipped
    ]
    display, masks = detection_masks(image, detections)
    assert display.size == (1024, 512)
    assert [label for _, label in masks] == ["Parabasal", "Koilocytotic"]
    parabasal = masks[0][0]
    assert parabasal.shape == (512, 1024)
    assert parabasal[50, 50] == 1.0 and parabasal[150, 100] == 0.25 and parabasal[300, 100] == 0.0  # edge, inside
    assert parabasal[-1, -1] == 1.0


def test_each_drawn_detection_is_outlined_in_its_class_colour_and_tagged_with_its_score():
    grey = Image.new("RGB", (400, 300), (128, 128, 128))
    colours = {"nucleus": "#e6194b", "cell": "#4363d8"}
    detections = [CellDetection("nucleus", 0.93, (100, 100, 160, 150)), CellDetection("cell", 0.41, (250, 20, 300, 60))]
    drawn = np.asarray(draw_detections(grey, detections, colours, display_size=None))
    assert drawn.shape == (300, 400, 3)  # full size for the download
    assert (drawn[125, 100] == (230, 25, 75)).all() and (drawn[40, 250] == (67, 99, 216)).all()  # left edges
    assert (drawn[125, 130] == 128).all()  # inside a box: the image
    # Each box's tag sits above its top-left corner in the box's colour, with the text's ink inside it.
    for (left, top), colour in (((100, 100), (230, 25, 75)), ((250, 20), (67, 99, 216))):
        tag = drawn[top - 12 : top, left : left + 30].reshape(-1, 3)
        assert (tag == colour).all(axis=1).mean() > 0.3 and not (tag == colour).all(axis=1).all()
    # The tag carries the score: the same box with another score is drawn differently there, and nowhere else.
    rescored = np.asarray(
        draw_detections(
            grey, [detections[0], CellDetection("cell", 0.77, (250, 20, 300, 60))], colours, display_size=None
        )
    )
    changed = np.argwhere((rescored != drawn).any(axis=-1))
    assert len(changed) and (changed[:, 0] < 20).all() and (changed[:, 1] >= 250).all()
    # Without boxes (the app's AnnotatedImage draws them as masks) only the tags are drawn; shrunk for display.
    tags_only = np.asarray(draw_detections(grey, detections, colours, display_size=200, draw_boxes=False))
    assert tags_only.shape == (150, 200, 3) and (tags_only[62, 50] == 128).all()
