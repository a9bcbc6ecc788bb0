"""Image loading for every model, reader, training script and the app: one function, `load_image`.

`load_image` returns a fully decoded RGB `PIL.Image.Image` whatever the source (path, file object, PIL image,
numpy array) and pixel mode, with EXIF orientation applied, and turns every failure into an `ImageLoadError`
(a `ValueError`) whose message names the file and says what to do.
"""

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 100 megapixels is above any photo a colposcope, phone (12-50 MP) or camera (up to ~100 MP) takes, yet a decoded
# 100 MP RGB image still fits in memory (300 MB). A crafted file that claims e.g. 50000x50000 pixels (7.5 GB
# decoded) is refused from its header, before decoding. Whole-slide cytology scans are far larger: read those
# with a tile reader, not with this function.
DEFAULT_MAX_PIXELS = 100_000_000

UPLOADED_IMAGE_NAME = "<uploaded image>"
IN_MEMORY_IMAGE_NAME = "<in-memory image>"

# What Pillow raises while decoding a truncated or corrupt file depends on the format and on where it breaks.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error)
_HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


class ImageLoadError(ValueError):
    """
    An image could not be loaded.

    Args:
        source_name (`str`): the file's path, or `"<uploaded image>"` / `"<in-memory image>"` when it has none.
        problem (`str`): what is wrong and what to do about it, in words a user can act on.
    """

    def __init__(self, source_name: str, problem: str):
        self.source_name = source_name
        self.problem = problem
        shown = source_name if source_name.startswith("<") else f"'{source_name}'"
        super().__init__(f"Cannot load image {shown}: {problem}")


def load_image(source, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """
    Loads an image as a fully decoded RGB `PIL.Image.Image`.

    Args:
        source (`str`, `os.PathLike`, file object, `PIL.Image.Image` or `np.ndarray`):
            A path, an open binary file (e.g. an upload), a PIL image, or an HxW / HxWxC (C in 1-4) array of
            uint8, uint16 (or any integer), bool or float pixels.
        max_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_PIXELS`):
            Refuse encoded images with more pixels (width x height, read from the header before decoding);
            `None` disables this check (Pillow's own limit, `PIL.Image.MAX_IMAGE_PIXELS`, still applies).

    Conversion to RGB: EXIF orientation is applied; transparent pixels (RGBA, LA, P or L with transparency) are
    composited on white; 16-bit and 32-bit integer pixels are scaled by the bit depth they use (values up to 65535
    by 65535, 12-bit values up to 4095 by 4095, so the picture looks the same instead of clipping to white);
    negative integers and floats outside [0, 255] are stretched from their minimum to their maximum, floats in
    [0, 1] are multiplied by 255; CMYK, palette and 1-bit images are converted by Pillow.

    Raises:
        `ImageLoadError`: missing, empty, unreadable, non-image, truncated or corrupt file; an image over
        `max_pixels` or with zero width or height.
    """
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
    if isinstance(source, np.ndarray):
        return _rgb_from_array(source, IN_MEMORY_IMAGE_NAME)
    if isinstance(source, Image.Image):
        return _rgb_from_pil(source, getattr(source, "filename", "") or IN_MEMORY_IMAGE_NAME, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        _check_file(path)
        return _decode(path, str(path), max_pixels)
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        name = name if isinstance(name, str) and name else UPLOADED_IMAGE_NAME
        data = source.read()
        if not isinstance(data, bytes):
            raise ImageLoadError(name, "the file object returns text, not bytes: open it in binary mode ('rb').")
        if not data:
            raise ImageLoadError(name, "the file is empty (0 bytes). Upload the image again.")
        return _decode(io.BytesIO(data), name, max_pixels)
    raise ImageLoadError(
        IN_MEMORY_IMAGE_NAME,
        f"unsupported source type {type(source).__name__}: pass a path, a binary file object, a PIL image or a "
        "numpy array.",
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageLoadError(str(path), "file not found. Check the path and that the file was copied completely.")
    if path.is_dir():
        raise ImageLoadError(str(path), "this is a directory, not an image file.")
    if path.stat().st_size == 0:
        raise ImageLoadError(
            str(path), "the file is empty (0 bytes), probably from an interrupted copy or download. Replace it."
        )


def _decode(file, name: str, max_pixels: int | None) -> Image.Image:
    """Opens `file` (a path or a binary buffer) and decodes it, turning Pillow's errors into `ImageLoadError`."""
    try:
        with warnings.catch_warnings():
            # Our own header check below enforces `max_pixels`; Pillow's warning (above ~89 MP) would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
    except Image.DecompressionBombError as error:
        raise ImageLoadError(
            name,
            f"Pillow refused it as a possible decompression bomb ({error}). If you trust this file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before loading it.",
        ) from error
    except UnidentifiedImageError as error:
        raise ImageLoadError(
            name,
            "not an image file, or in a format Pillow cannot read (its content is not JPEG, PNG, TIFF, BMP or "
            "another image format, whatever its extension says). Check that it is the photo you meant.",
        ) from error
    except PermissionError as error:
        raise ImageLoadError(name, "permission denied. Check the file's read permissions.") from error
    except OSError as error:
        raise ImageLoadError(name, f"the file could not be read ({error}).") from error
    with image:
        return _rgb_from_pil(image, name, max_pixels)


def _rgb_from_pil(image: Image.Image, name: str, max_pixels: int | None) -> Image.Image:
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageLoadError(name, f"the image has zero size ({width}x{height} pixels).")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            name,
            f"{width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} pixels, a guard "
            f"against decompression bombs. If you trust this file, raise the limit: "
            f"load_image(..., max_pixels={width * height}) (or max_pixels=None to turn the check off).",
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as error:
        raise ImageLoadError(
            name,
            f"the file is truncated or corrupt ({error}). Copy or download it again, or re-export it from the "
            "original.",
        ) from error
    return _to_rgb(image, name)


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        return Image.fromarray(_to_uint8(np.asarray(image), name)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageLoadError(name, f"pixel mode {image.mode!r} cannot be converted to RGB ({error}).") from error


def _rgb_from_array(array: np.ndarray, name: str) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (2, 3, 4))):
        raise ImageLoadError(
            name, f"an array of shape {array.shape} is not an image: expected HxW or HxWxC with C in 1, 2, 3 or 4."
        )
    if array.size == 0:
        raise ImageLoadError(name, f"the image has zero size (array of shape {array.shape}).")
    # fromarray picks L, LA, RGB or RGBA from the channel count; _to_rgb then composites any alpha on white.
    return _to_rgb(Image.fromarray(np.ascontiguousarray(_to_uint8(array, name))), name)


def _to_uint8(pixels: np.ndarray, name: str) -> np.ndarray:
    """Pixels of any numeric dtype scaled to uint8 without clipping (see `load_image` for the rules)."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == bool:
        return pixels.astype(np.uint8) * 255
    if np.issubdtype(pixels.dtype, np.integer):
        low, high = int(pixels.min()), int(pixels.max())
        if low < 0:
            return _stretch(pixels, low, high)
        full_scale = 2 ** max(8, high.bit_length()) - 1
        return np.rint(pixels.astype(np.float32) * (255.0 / full_scale)).astype(np.uint8)
    if np.issubdtype(pixels.dtype, np.floating):
        if not np.isfinite(pixels).all():
            raise ImageLoadError(name, "the image contains NaN or infinite pixel values.")
        low, high = float(pixels.min()), float(pixels.max())
        if low >= 0 and high <= 1:
            return np.rint(pixels * 255.0).astype(np.uint8)
        if low >= 0 and high <= 255:
            return np.rint(pixels).astype(np.uint8)
        return _stretch(pixels, low, high)
    raise ImageLoadError(name, f"pixels of type {pixels.dtype} are not supported: use integers or floats.")


def _stretch(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """Maps [low, high] linearly to [0, 255]; a constant image becomes black."""
    if high == low:
        return np.zeros(pixels.shape, dtype=np.uint8)
    return np.rint((pixels.astype(np.float64) - low) * (255.0 / (high - low))).astype(np.uint8)


__all__ = ["DEFAULT_MAX_PIXELS", "ImageLoadError", "load_image"]
