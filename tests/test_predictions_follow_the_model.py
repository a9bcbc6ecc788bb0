"""What users read from the prediction functions and the command line is what the model computes: expectations come
from calling the model directly (or from a geometric fact), never from the function under test."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cervix_hf import (
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    ColpoNetForImageClassification,
    ColpoNetImageProcessor,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
)
from cervix_hf.prediction.inference import classify_cervix_type, classify_prepost, detect_cells
from cervix_hf.registry import cell_detector_config, prepost_config

from . import expectations

REPO = Path(__file__).resolve().parents[1]


def textured_photo(seed: int, size=(96, 80)) -> Image.Image:
    """A sharp random photo (the quality gate passes it)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def colponet(tiny_colponet_dir):
    model = ColpoNetForImageClassification.from_pretrained(tiny_colponet_dir).eval()
    return model, ColpoNetImageProcessor.from_pretrained(tiny_colponet_dir)


def test_cervix_type_probabilities_are_the_models_under_their_own_names(colponet):
    model, processor = colponet
    for seed in range(4):
        photo = textured_photo(seed)
        expected = expectations.type_probabilities(model, processor, photo)
        assert len(set(np.round(list(expected.values()), 6))) == 3  # distinct, so any mix-up of names shows
        prediction = classify_cervix_type(model, processor, photo, ignore_quality_gate=True)
        assert prediction.probabilities.keys() == expected.keys()
        for name, probability in expected.items():
            assert prediction.probabilities[name] == pytest.approx(probability, abs=1e-6), name
        assert prediction.label == max(expected, key=expected.get)


def test_the_predict_command_prints_the_models_probabilities(colponet, tiny_colponet_dir, tmp_path):
    model, processor = colponet
    paths = []
    for seed in range(2):
        paths.append(tmp_path / f"photo{seed}.png")
        textured_photo(seed).save(paths[-1])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cervix_hf.predict",
            "--model",
            str(tiny_colponet_dir),
            "--json",
            "--ignore-quality-gate",
            *map(str, paths),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 2
    for path, row in zip(paths, rows):
        expected = expectations.type_probabilities(model, processor, Image.open(path).convert("RGB"))
        assert row["image"] == str(path) and row["label"] == max(expected, key=expected.get)
        got = {name: row[f"probability_{name}"] for name in expected}
        assert got == pytest.approx(expected, abs=1e-6)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    config = cell_detector_config("tiny", id2label={0: "nucleus", 1: "cell"}, min_size=256, max_size=256)
    return CellDetectorForObjectDetection(config).eval(), CellDetectorImageProcessor()


def test_detector_boxes_scale_with_the_image_they_are_drawn_on(detector):
    """The model resizes every image to 256 px inside. An image and its exact 2x bilinear upscale (the resize the
    model itself applies) give the same internal tensor, so the boxes on the small image, in its own pixels, must
    be exactly half those on the large one. Boxes left in the model's internal frame would be equal instead."""
    model, _ = detector
    torch.manual_seed(1)
    small = torch.rand(1, 3, 16, 16)
    small = torch.nn.functional.interpolate(small, size=(128, 128), mode="bicubic").clamp(0, 1)  # smooth blobs
    large = torch.nn.functional.interpolate(
        small, scale_factor=2.0, mode="bilinear", recompute_scale_factor=True, align_corners=False
    )
    with torch.no_grad():
        small_out, large_out = model(pixel_values=small), model(pixel_values=large)
    small_boxes = small_out.pred_boxes[small_out.detection_mask]
    large_boxes = large_out.pred_boxes[large_out.detection_mask]
    assert len(small_boxes) >= 5
    torch.testing.assert_close(small_out.scores, large_out.scores, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(small_boxes * 2, large_boxes, atol=1e-2, rtol=1e-4)
    assert small_boxes[:, 2].max() <= 128 + 1e-3 and large_boxes[:, 2].max() > 128


def test_detect_cells_returns_the_models_boxes_in_the_photos_pixels(detector):
    model, processor = detector
    photo = textured_photo(3, size=(200, 150))
    expected = expectations.detections(model, photo, threshold=0.0)
    found = detect_cells(model, processor, photo, threshold=0.0)
    assert len(found) == len(expected) > 0
    assert [d.label for d in found] == [label for label, _, _ in expected]
    np.testing.assert_allclose([d.score for d in found], [score for _, score, _ in expected], atol=1e-6)
    np.testing.assert_allclose([d.box for d in found], [box for _, _, box in expected], atol=1e-3)


@pytest.fixture(scope="module")
def fusion():
    torch.manual_seed(0)
    model = PrePostFusionForImageClassification(prepost_config("tiny")).eval()
    return model, PrePostFusionImageProcessor()


def test_the_fusion_decision_reads_the_post_stain_image(fusion):
    model, processor = fusion
    pre, post, other_post = textured_photo(10), textured_photo(11), textured_photo(12)
    first = classify_prepost(model, processor, pre, post).probability
    assert classify_prepost(model, processor, pre, post).probability == first  # deterministic in eval mode
    assert abs(classify_prepost(model, processor, pre, other_post).probability - first) > 1e-6


def test_the_fusion_decision_reads_the_pre_stain_image(fusion):
    model, processor = fusion
    pre, other_pre, post = textured_photo(10), textured_photo(13), textured_photo(11)
    first = classify_prepost(model, processor, pre, post).probability
    assert abs(classify_prepost(model, processor, other_pre, post).probability - first) > 1e-6


def test_the_fusion_probability_is_the_sigmoid_of_the_models_logit(fusion):
    model, processor = fusion
    pre, post = textured_photo(20), textured_photo(21)
    expected = expectations.positive_probability(model, processor, pre, post)
    prediction = classify_prepost(model, processor, pre, post, threshold=0.5)
    assert prediction.probability == pytest.approx(expected, abs=1e-6)
    assert prediction.label == ("Positive" if expected >= 0.5 else "Negative")
