"""ColpoNet's quality gate: sharp photos pass, blurred ones are rejected with a readable reason, on real photos too."""

import json
import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from cervix_hf.io.images import ImageLoadError, load_image
from cervix_hf.models.colponet.image_quality import (
    DEFAULT_LAPLACIAN_THRESHOLD,
    assess_image_quality,
    laplacian_variance,
    sharpen_image,
)
from train.quality_filter import filter_by_quality


@pytest.fixture(scope="module")
def sharp_texture() -> np.ndarray:
    """A 256x256 RGB checkerboard of 8-px squares with pixel noise: crisp edges and fine detail."""
    rng = np.random.default_rng(0)
    squares = ((np.indices((256, 256)) // 8).sum(axis=0) % 2) * 160 + 40
    noisy = squares[..., None] + rng.normal(0, 12, (256, 256, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def test_sharp_texture_accepted_and_its_blurred_copy_rejected(sharp_texture):
    sharp = assess_image_quality(sharp_texture)
    blurry = assess_image_quality(gaussian_blur(sharp_texture, 4))
    assert sharp.is_acceptable and sharp.reasons == []
    assert not blurry.is_acceptable
    assert blurry.laplacian_variance < DEFAULT_LAPLACIAN_THRESHOLD < sharp.laplacian_variance


def test_pil_and_array_inputs_give_the_same_scores(sharp_texture):
    from_array = assess_image_quality(sharp_texture)
    from_pil = assess_image_quality(Image.fromarray(sharp_texture))
    assert from_pil.laplacian_variance == pytest.approx(from_array.laplacian_variance)
    assert from_pil.fft_score == pytest.approx(from_array.fft_score)


def test_report_message_and_fields(sharp_texture):
    accepted = assess_image_quality(sharp_texture, laplacian_threshold=50, fft_threshold=1)
    assert (accepted.laplacian_threshold, accepted.fft_threshold) == (50.0, 1.0)
    assert accepted.message.startswith("Image accepted: sharp enough for classification")
    assert f"Laplacian variance {accepted.laplacian_variance:.1f} ≥ 50" in accepted.message

    rejected = assess_image_quality(gaussian_blur(sharp_texture, 4))
    assert rejected.message.startswith("Image rejected as too blurry")
    assert rejected.message.endswith("Retake the photo with the cervix in focus.")
    assert any(reason.startswith("Laplacian variance") for reason in rejected.reasons)
    assert str(rejected) == rejected.message

    as_json = json.loads(json.dumps(rejected.to_dict()))
    assert as_json["is_acceptable"] is False and as_json["message"] == rejected.message
    assert as_json["laplacian_variance"] == pytest.approx(rejected.laplacian_variance)


def test_sharpening_increases_laplacian_variance_and_keeps_the_type(sharp_texture):
    soft = gaussian_blur(sharp_texture, 1.5)
    sharpened = sharpen_image(soft)
    assert sharpened.dtype == np.uint8 and sharpened.shape == soft.shape
    gray = cv2.cvtColor(soft, cv2.COLOR_RGB2GRAY)
    assert laplacian_variance(cv2.cvtColor(sharpened, cv2.COLOR_RGB2GRAY)) > 2 * laplacian_variance(gray)
    sharpened_pil = sharpen_image(Image.fromarray(soft))
    assert isinstance(sharpened_pil, Image.Image) and np.array_equal(np.asarray(sharpened_pil), sharpened)
    assert sharpen_image(gray).shape == gray.shape


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"laplacian_threshold": -1.0}, "laplacian_threshold"),
        ({"laplacian_threshold": float("nan")}, "laplacian_threshold"),
        ({"fft_threshold": "0"}, "fft_threshold"),
        ({"resize_to": 0}, "resize_to"),
        ({"fft_low_freq_size": 0}, "fft_low_freq_size"),
        ({"fft_low_freq_size": 250}, "fft_low_freq_size"),
    ],
)
def test_bad_arguments_name_the_argument(sharp_texture, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        assess_image_quality(sharp_texture, **kwargs)


@pytest.mark.parametrize(
    "image", [np.zeros((8, 8, 3), dtype=np.float32), np.zeros((8, 8, 4), dtype=np.uint8), "photo.jpg"]
)
def test_bad_images_name_the_argument(image):
    with pytest.raises(ValueError, match="image must be"):
        assess_image_quality(image)


def test_calibrated_gate_on_real_photos(intel_photos):
    """
    The separation claimed in the module docstring, measured with `python -m benchmarks.quality_gate_calibration`:
    95.0% of the 120 originals kept, 100% of their copies blurred with sigma 2 and sigma 4 rejected.
    """
    photos = [np.asarray(load_image(path)) for path in intel_photos]
    assert len(photos) == 120

    def accepted_share(images):
        return np.mean([assess_image_quality(image).is_acceptable for image in images])

    assert accepted_share(photos) >= 0.95
    assert accepted_share([gaussian_blur(photo, 2) for photo in photos]) == 0.0
    assert accepted_share([gaussian_blur(photo, 4) for photo in photos]) == 0.0


@pytest.fixture
def mixed_folder(tmp_path, sharp_texture):
    sharp, blurry, broken = tmp_path / "sharp.png", tmp_path / "blurry.png", tmp_path / "broken.jpg"
    Image.fromarray(sharp_texture).save(sharp)
    Image.fromarray(gaussian_blur(sharp_texture, 4)).save(blurry)
    broken.write_text("not a photo")
    return [sharp, blurry, broken]


def test_filter_drops_blurry_and_unreadable_images(mixed_folder, caplog):
    sharp, blurry, broken = mixed_folder
    with caplog.at_level(logging.INFO):
        result = filter_by_quality(mixed_folder, labels=["Type_1", "Type_1", "Type_2"])
    assert result.kept_paths == [sharp] and result.kept_labels == ["Type_1"]
    assert [path for path, _ in result.rejected] == [blurry, broken]
    assert not result.rejected[0][1].is_acceptable
    assert isinstance(result.rejected[1][1], ImageLoadError) and "broken.jpg" in str(result.rejected[1][1])
    assert (result.num_images, result.num_rejected, result.num_blurry, result.num_unreadable) == (3, 2, 1, 1)
    assert result.per_label == {"Type_1": {"total": 2, "rejected": 1}, "Type_2": {"total": 1, "rejected": 1}}
    assert "quality gate: kept 1 of 3 images, rejected 2 (1 blurry, 1 unreadable)" in caplog.text


def test_filter_list_mode_keeps_everything_but_reports(mixed_folder, caplog):
    with caplog.at_level(logging.INFO):
        result = filter_by_quality(mixed_folder, mode="list")
    assert result.kept_paths == mixed_folder and result.kept_labels is None
    assert result.num_rejected == 2 and result.per_label == {}
    assert "2 of 3 images would be rejected" in caplog.text


def test_filter_rejects_bad_arguments(mixed_folder):
    with pytest.raises(ValueError, match="mode"):
        filter_by_quality(mixed_folder, mode="delete")
    with pytest.raises(ValueError, match="labels"):
        filter_by_quality(mixed_folder, labels=["Type_1"])
