"""Facts the rest of the suite did not pin down, found by `scripts/mutation_check.py`: each test kills the mutant it
names (a one-line bug that every other fast test let through). Expectations are worked out by hand, read from the
model called directly, or follow from geometry; none comes from the function under test."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from cervix_hf import (
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    ColpoNetImageProcessor,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
)
from cervix_hf.data import read_isbi2014_edf
from cervix_hf.evaluation.metrics import compute_detection_metrics
from cervix_hf.models.colponet.image_quality import assess_image_quality, fft_blur_score, working_image
from cervix_hf.prediction.inference import classify_prepost, detect_cells
from cervix_hf.registry import cell_detector_config, prepost_config

# ImageNet's statistics, written out rather than imported, so that a processor using other constants fails.
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])


def random_photo(seed: int, size=(96, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


# Metrics


def test_per_class_ap_is_each_classs_own():
    """Mutant coco-per-class-ap-wrong-axis. The nucleus is found exactly: AP 1. The cell's one true box is found too,
    but below a false positive: precision 1/2 at recall 1, so COCO's interpolated precision is 0.5 at every recall
    point and every IoU threshold: AP 0.5. The mean over the two classes is 0.75."""
    truth = [{"boxes": [[10, 10, 30, 30], [50, 50, 90, 80]], "labels": [0, 1]}]
    found = [
        {
            "boxes": [[100, 100, 140, 130], [50, 50, 90, 80], [10, 10, 30, 30]],
            "labels": [1, 1, 0],
            "scores": [0.9, 0.8, 0.7],
        }
    ]
    metrics = compute_detection_metrics(truth, found, ["nucleus", "cell"])
    nucleus, cell = metrics["per_class"]["nucleus"], metrics["per_class"]["cell"]
    assert (nucleus["ap"], nucleus["ap_50"], nucleus["recall"]) == pytest.approx((1.0, 1.0, 1.0))
    assert (cell["ap"], cell["ap_50"], cell["recall"]) == pytest.approx((0.5, 0.5, 1.0))
    assert metrics["map"] == pytest.approx(0.75)


# Pre/post fusion: processor, model and prediction function


@pytest.fixture(scope="module")
def fusion():
    torch.manual_seed(0)
    model = PrePostFusionForImageClassification(prepost_config("tiny", decision_threshold=0.3)).eval()
    return model, PrePostFusionImageProcessor()


def test_the_fusion_decision_uses_the_saved_threshold_by_default(fusion):
    """Mutant prepost-default-threshold-ignored."""
    model, processor = fusion
    prediction = classify_prepost(model, processor, random_photo(1), random_photo(2))
    assert prediction.threshold == 0.3
    assert prediction.label == ("Positive" if prediction.probability >= 0.3 else "Negative")


def test_the_attention_shown_is_the_pre_to_post_attention(fusion):
    """Mutant prepost-attention-read-backwards: the map shown is the model's pre-to-post attention, averaged over
    heads, on the 7x7 token grid of 224x224 inputs."""
    model, processor = fusion
    pre, post = random_photo(3), random_photo(4)
    with torch.no_grad():
        outputs = model(**processor(pre, post, return_tensors="pt"))
    expected = outputs.pre_to_post_attentions[0].mean(0).reshape(7, 7, 7, 7)
    assert not torch.allclose(expected, outputs.post_to_pre_attentions[0].mean(0).reshape(7, 7, 7, 7))
    attention = classify_prepost(model, processor, pre, post).pre_to_post_attention
    torch.testing.assert_close(attention, expected)


def test_pre_to_post_attention_has_a_row_per_pre_stain_position():
    """Mutant prepost-cross-attention-backwards. The tiny backbone has stride 32: a 64x64 pre-stain image gives 2x2
    tokens and a 128x128 post-stain image 4x4, so the two directions have different shapes."""
    torch.manual_seed(0)
    model = PrePostFusionForImageClassification(prepost_config("tiny")).eval()
    heads = model.config.num_attention_heads
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 128, 128))
    assert outputs.feature_map_size == (2, 2)
    assert outputs.pre_to_post_attentions.shape == (1, heads, 4, 16)
    assert outputs.post_to_pre_attentions.shape == (1, heads, 16, 4)
    torch.testing.assert_close(outputs.pre_to_post_attentions.sum(-1), torch.ones(1, heads, 4))


def test_a_probability_equal_to_the_threshold_is_positive():
    """Mutant prepost-threshold-itself-negative: Positive at or above the threshold (0.5 is exact in float32)."""
    outputs = {"probabilities": torch.tensor([0.25, 0.5, 0.75])}
    decisions = PrePostFusionImageProcessor().post_process_classification(outputs, threshold=0.5)
    assert [decision["label"] for decision in decisions] == ["Negative", "Positive", "Positive"]


@pytest.mark.parametrize("model_type", ["colponet", "prepost"])
def test_processors_normalise_with_imagenets_mean_and_std(model_type):
    """Mutants colponet-normalisation-mean and prepost-normalisation-std-is-mean: a white pixel becomes
    (1 - mean) / std, a black one -mean / std, with ImageNet's numbers (white red channel: 0.515 / 0.229 = 2.2489)."""
    white, black = Image.new("RGB", (40, 30), (255, 255, 255)), Image.new("RGB", (40, 30), (0, 0, 0))
    if model_type == "colponet":
        pixels = ColpoNetImageProcessor()([white, black], return_tensors="pt")["pixel_values"]
        white_pixels, black_pixels = pixels[0], pixels[1]
    else:
        pixels = PrePostFusionImageProcessor()(white, black, return_tensors="pt")
        white_pixels, black_pixels = pixels["pre_pixel_values"][0], pixels["post_pixel_values"][0]
    torch.testing.assert_close(white_pixels[:, 100, 100], (1 - IMAGENET_MEAN) / IMAGENET_STD)
    torch.testing.assert_close(black_pixels[:, 100, 100], -IMAGENET_MEAN / IMAGENET_STD)
    assert white_pixels[0, 100, 100].item() == pytest.approx(2.2489, abs=1e-4)


# Cell detector: processor and model


def test_a_box_inside_a_wide_image_is_accepted():
    """Mutant detector-annotation-check-x-y-swapped: in a 60x20 image x runs to 60 and y to 20."""
    processor = CellDetectorImageProcessor()
    wide = Image.new("RGB", (60, 20))
    labels = processor(wide, annotations=[{"boxes": [[5, 5, 60, 15]], "class_labels": [0]}])["labels"]
    assert labels[0]["boxes"].tolist() == [[5.0, 5.0, 60.0, 15.0]]
    with pytest.raises(ValueError, match="inside the 60x20 image"):
        processor(wide, annotations=[{"boxes": [[5, 5, 30, 21]], "class_labels": [0]}])


def test_a_detection_scoring_exactly_the_threshold_is_dropped():
    """Mutant detector-threshold-inclusive: detections are kept when they score strictly above the threshold."""
    outputs = {
        "pred_boxes": torch.tensor([[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]]),
        "scores": torch.tensor([[0.75, 0.5]]),
        "pred_labels": torch.tensor([[0, 1]]),
        "detection_mask": torch.tensor([[True, True]]),
        "image_sizes": torch.tensor([[10, 10]]),
    }
    result = CellDetectorImageProcessor().post_process_object_detection(outputs, threshold=0.5)[0]
    assert result["scores"].tolist() == [0.75] and result["labels"].tolist() == [0]


def _tiny_detector(classifier_bias: list[float]) -> CellDetectorForObjectDetection:
    """A tiny detector whose box classifier ignores the features: its class scores are `classifier_bias`, in
    torchvision's order (background first, then nucleus, cell)."""
    torch.manual_seed(0)
    model = CellDetectorForObjectDetection(cell_detector_config("tiny", id2label={0: "nucleus", 1: "cell"}))
    classifier = model.detector.roi_heads.box_predictor.cls_score
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.copy_(torch.tensor(classifier_bias))
    return model


def test_a_detector_certain_of_background_pays_for_the_cell_it_misses():
    """Mutant detector-targets-without-background-offset. The classifier gives background probability 1 - 2e-9
    everywhere. Proposals overlapping the drawn nucleus (its own box among them: torchvision adds the ground truth
    to the proposals) must be classified "nucleus", which costs -ln(e^-20 / (1 + 2e^-20)) = 20 each, so the loss, a
    mean over the proposals sampled per image, is at least 20 / (proposals sampled). Were the nucleus taken for
    background, every proposal would cost about 4e-9."""
    model = _tiny_detector([20.0, 0.0, 0.0]).train()
    image = Image.new("RGB", (128, 128), (20, 20, 20))
    image.paste((240, 240, 240), (40, 50, 80, 90))
    batch = CellDetectorImageProcessor()(
        image, annotations=[{"boxes": [[40, 50, 80, 90]], "class_labels": [0]}], return_tensors="pt"
    )
    loss = model(**batch).loss_dict["loss_classifier"]
    sampled = model.detector.roi_heads.fg_bg_sampler.batch_size_per_image
    assert loss.item() >= 0.99 * 20 / sampled


def test_a_detector_certain_of_a_class_labels_every_cell_with_it():
    """Mutant detector-labels-without-background-offset: a classifier certain of torchvision's class 2, our class 1
    ("cell"), labels every detection "cell"."""
    model = _tiny_detector([0.0, 0.0, 20.0]).eval()
    photo = random_photo(5, size=(128, 96))
    with torch.no_grad():
        outputs = model(**CellDetectorImageProcessor()(photo, return_tensors="pt"))
    assert outputs.detection_mask.any()
    assert outputs.pred_labels[outputs.detection_mask].unique().tolist() == [1]
    assert {detection.label for detection in detect_cells(model, CellDetectorImageProcessor(), photo)} == {"cell"}


# The quality gate


@pytest.fixture(scope="module")
def sharp_photo() -> np.ndarray:
    """A 224x300 RGB photo of 8-px checks with pixel noise: it passes the gate."""
    rng = np.random.default_rng(0)
    checks = ((np.indices((224, 300)) // 8).sum(axis=0) % 2) * 160 + 40
    return np.clip(checks[..., None] + rng.normal(0, 12, (224, 300, 3)), 0, 255).astype(np.uint8)


def test_scores_at_the_thresholds_pass_the_gate(sharp_photo):
    """Mutant quality-laplacian-threshold-excluded: a photo is accepted when both scores are at or above their
    thresholds, so a threshold equal to the photo's own score accepts it and the next float up rejects it."""
    scores = assess_image_quality(sharp_photo)
    at = assess_image_quality(
        sharp_photo, laplacian_threshold=scores.laplacian_variance, fft_threshold=scores.fft_score
    )
    assert at.is_acceptable and at.reasons == []
    above = assess_image_quality(sharp_photo, laplacian_threshold=math.nextafter(scores.laplacian_variance, math.inf))
    assert not above.is_acceptable and above.reasons[0].startswith("Laplacian variance")
    above = assess_image_quality(sharp_photo, fft_threshold=math.nextafter(scores.fft_score, math.inf))
    assert not above.is_acceptable and above.reasons[0].startswith("FFT blur score")


@pytest.mark.parametrize("colour, grey", [((255, 0, 0), 76), ((0, 255, 0), 150), ((0, 0, 255), 29)])
def test_the_working_image_weighs_red_green_and_blue_as_itu_r_601(colour, grey):
    """Mutant quality-gray-from-bgr: grey = 0.299 R + 0.587 G + 0.114 B, so pure red, green and blue give 76, 150
    and 29 (0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1)."""
    photo = np.zeros((40, 40, 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
    gray = working_image(photo)
    assert gray.min() == gray.max() == grey


def test_a_small_photo_is_scored_at_its_own_size_with_the_band_scaled_to_it(sharp_photo):
    """Mutants quality-upscales-small-photos and quality-fft-band-not-scaled, without the real photos: a 224x300
    photo is scored at 224x224 (its short side; never upscaled to 500), where the FFT's low-frequency square has
    half-width round(60 * 224 / 500) = 27."""
    gray = working_image(sharp_photo)
    assert gray.shape == (224, 224)
    report = assess_image_quality(sharp_photo)
    assert report.fft_score == pytest.approx(fft_blur_score(gray, 27), abs=1e-9)
    assert report.fft_score != pytest.approx(fft_blur_score(gray, 60), abs=1e-3)


# Readers


def test_isbi_boxes_cover_their_regions_pixels(tmp_path):
    """Mutant isbi-box-ends-at-last-pixel: a nucleus on columns 4-6 and rows 2-3 has the box (4, 2, 7, 4), the
    continuous area of its pixels; a nucleus of another grey level touching it keeps its own box."""
    mask = np.zeros((12, 16), dtype=np.uint8)
    mask[2:4, 4:7] = 255
    mask[4:9, 7:9] = 128
    Image.fromarray(mask).save(tmp_path / "EDF000_GT.png")
    Image.new("RGB", (16, 12)).save(tmp_path / "EDF000.png")
    records = read_isbi2014_edf(tmp_path)
    assert sorted(records.records[0].boxes) == [(4.0, 2.0, 7.0, 4.0), (7.0, 4.0, 9.0, 9.0)]
