"""`load_image`: every source and pixel mode becomes the RGB picture a user expects, every bad file a clear error."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from cervix_hf.io.images import ImageLoadError, load_image

RED = (255, 0, 0)


def noise_image(width=64, height=48, seed=0) -> Image.Image:
    """Random RGB pixels: they compress badly, so the JPEG is large enough to truncate meaningfully."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def assert_load_error(source, *expected_words, **kwargs) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as caught:
        load_image(source, **kwargs)
    message = str(caught.value)
    for word in expected_words:
        assert word in message, f"{word!r} not in {message!r}"
    return caught.value


def test_load_error_is_a_value_error():
    assert issubclass(ImageLoadError, ValueError)


def test_missing_file(tmp_path):
    assert_load_error(tmp_path / "nowhere.jpg", "nowhere.jpg", "file not found")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    assert_load_error(path, "empty.jpg", "empty (0 bytes)")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("patient notes, not a photo\n")
    assert_load_error(path, "notes.jpg", "not an image file")


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    buffer = io.BytesIO()
    noise_image(256, 256).save(buffer, "JPEG", quality=95)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert_load_error(path, "cut.jpg", "truncated or corrupt")


def test_directory_is_not_an_image(tmp_path):
    assert_load_error(tmp_path, str(tmp_path), "directory")


def test_empty_upload_has_a_placeholder_name():
    assert_load_error(io.BytesIO(b""), "<uploaded image>", "empty (0 bytes)")


def test_upload_of_a_non_image_has_a_placeholder_name():
    assert_load_error(io.BytesIO(b"%PDF-1.7 not a photo"), "<uploaded image>", "not an image file")


def test_upload_loads():
    buffer = io.BytesIO()
    Image.new("RGB", (5, 3), RED).save(buffer, "PNG")
    buffer.seek(0)
    image = load_image(buffer)
    assert image.size == (5, 3) and image.getpixel((2, 1)) == RED


def test_over_the_pixel_limit_says_how_to_raise_it(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 80)).save(path)
    error = assert_load_error(path, "big.png", "100x80", "8,000 pixels", "limit of 1,000 pixels", max_pixels=1000)
    assert "max_pixels=8000" in error.problem
    assert load_image(path, max_pixels=8000).size == (100, 80)


def test_zero_size_in_memory_image():
    assert_load_error(Image.new("RGB", (0, 0)), "<in-memory image>", "zero size")
    assert_load_error(np.zeros((0, 4, 3), dtype=np.uint8), "<in-memory image>", "zero size")


def test_one_pixel_image_loads(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), RED).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (1, 1) and image.getpixel((0, 0)) == RED


def test_grayscale_becomes_rgb_with_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (4, 4), 77).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.getpixel((1, 1)) == (77, 77, 77)


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "cutout.png"
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))
    rgba.save(path)
    image = load_image(path)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((3, 3)) == RED


def test_palette_image_keeps_its_colours(tmp_path):
    path = tmp_path / "palette.png"
    palette_image = Image.new("P", (4, 4), 1)
    palette_image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette_image.putpixel((0, 0), 0)
    palette_image.save(path)
    image = load_image(path)
    assert image.getpixel((0, 0)) == (0, 0, 0) and image.getpixel((2, 2)) == RED


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(path)
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")  # Pillow reads it as 16-bit, not already scaled
    image = load_image(path)
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, "JPEG", quality=95)
    pixel = np.array(load_image(path).getpixel((4, 4)))
    assert np.abs(pixel - RED).max() <= 3


def test_exif_orientation_is_applied(tmp_path):
    """A camera held sideways stores a 40x20 frame with orientation 6; the user expects the 20x40 upright photo."""
    path = tmp_path / "rotated.jpg"
    stored = Image.new("RGB", (40, 20), (0, 0, 0))
    stored.paste(RED, (0, 0, 10, 10))  # mark the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    stored.save(path, "JPEG", quality=95, exif=exif)
    image = load_image(path)
    assert image.size == (20, 40)
    assert np.abs(np.array(image.getpixel((15, 4))) - RED).max() <= 30  # now at the top-right
    assert max(image.getpixel((4, 4))) <= 30


def test_numpy_inputs():
    rgb = np.zeros((3, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert load_image(rgb).getpixel((0, 0)) == RED
    assert load_image(np.full((3, 5), 9, dtype=np.uint8)).getpixel((0, 0)) == (9, 9, 9)
    assert load_image(np.full((2, 2, 3), 0.5)).getpixel((0, 0)) == (128, 128, 128)
    twelve_bit = np.array([[0, 4095]], dtype=np.uint16)
    assert load_image(twelve_bit).getpixel((1, 0)) == (255, 255, 255)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # fully transparent
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_array_that_is_not_an_image():
    assert_load_error(np.zeros((2, 2, 7), dtype=np.uint8), "<in-memory image>", "shape (2, 2, 7)")
    assert_load_error(np.array([[np.nan, 1.0]]), "NaN")


def test_pillow_decompression_bomb_guard_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (100, 80)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # Pillow errors above 2x this, warns above it
    assert_load_error(path, "bomb.png", "decompression bomb", "PIL.Image.MAX_IMAGE_PIXELS", max_pixels=None)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    assert load_image(path, max_pixels=None).size == (100, 80)  # our limit decides, Pillow's warning is silenced


def test_a_large_sixteen_bit_grayscale_image_is_reduced_and_scaled_by_its_bit_depth(tmp_path):
    """A 12-bit microscopy export saved as 16-bit PNG, over 4 times ColpoNet's 2048 px: four bands of known levels."""
    from cervix_hf.prediction.inference import load_model_input

    levels = [0, 1024, 2048, 4095]  # 12 bits used: 4095 is white
    band = 9000 // len(levels)
    pixels = np.repeat(np.array(levels, dtype=np.uint16), band)[None, :].repeat(3000, axis=0)
    path = tmp_path / "microscopy.png"
    Image.fromarray(pixels).save(path)
    with Image.open(path) as stored:
        assert stored.mode == "I;16" and stored.size == (9000, 3000)
    image = load_model_input(path, "colponet")
    assert image.size == (2048, 683) and image.mode == "RGB"
    centres = [round((index + 0.5) * image.width / len(levels)) for index in range(len(levels))]
    expected = [round(level * 255 / 4095) for level in levels]  # 0, 64, 128, 255
    assert [image.getpixel((x, 300)) for x in centres] == [(value,) * 3 for value in expected]


def _jpeg_ending_early(width: int, height: int, kept_bytes: int) -> bytes:
    """A noisy JPEG cut after `kept_bytes` bytes and closed with an end-of-image marker, as the header declared."""
    buffer = io.BytesIO()
    noise_image(width, height).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()[:kept_bytes] + b"\xff\xd9"


def test_a_jpeg_whose_data_is_mostly_missing_is_refused_not_decoded_as_grey(tmp_path):
    # A header claiming 9999x9999 pixels over 690 bytes: the 9999 written into a small JPEG's frame header.
    data = bytearray(_jpeg_ending_early(64, 64, 688))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = (9999).to_bytes(2, "big") * 2  # height, width
    claims = tmp_path / "claims_9999.jpg"
    claims.write_bytes(bytes(data))
    assert len(data) == 690
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(claims) as opened:
            assert opened.size == (9999, 9999)
    assert_load_error(claims, "claims_9999.jpg", "ends early", "9999x9999", max_side=2048)
    # A real photo cut after its first third, closed with the end marker: two thirds of it are missing.
    whole = io.BytesIO()
    noise_image(400, 300).save(whole, "JPEG", quality=90)
    cut = tmp_path / "cut_third.jpg"
    cut.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 3] + b"\xff\xd9")
    assert_load_error(cut, "cut_third.jpg", "ends early")
    # The whole photo loads.
    (tmp_path / "whole.jpg").write_bytes(whole.getvalue())
    assert load_image(tmp_path / "whole.jpg").size == (400, 300)
