"""Image loading for every model, reader, training script and the app: one function, `load_image`.

`load_image` returns a fully decoded RGB `PIL.Image.Image` whatever the source (path, file object, PIL image,
numpy array) and pixel mode, with EXIF orientation applied, and turns every failure into an `ImageLoadError`
(a `ValueError`) whose message names the file and says what to do.

Decoding under a budget: with `max_side`, an image larger than the model needs is reduced while it is decoded
(JPEG decodes at 1/2, 1/4 or 1/8 scale through `Image.draft`; other formats are reduced right after decoding, before
any RGB or float copy is made), so a request never holds more pixels than the model's bound; with `min_side`, an
image too small for the model is refused with the size it has and the size it needs.
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

# `load_image`'s result carries the source's upright (width, height) before any reduction under this `info` key, so
# that results in pixels (boxes) can be given in the original image's pixels.
ORIGINAL_SIZE_KEY = "cervix_hf_original_size"
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


def load_image(
    source,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    min_side: int | None = None,
    max_decoded_pixels: int | None = None,
) -> Image.Image:
    """
    Loads an image as a fully decoded RGB `PIL.Image.Image`.

    Args:
        source (`str`, `os.PathLike`, file object, `PIL.Image.Image` or `np.ndarray`):
            A path, an open binary file (e.g. an upload), a PIL image, or an HxW / HxWxC (C in 1-4) array of
            uint8, uint16 (or any integer), bool or float pixels.
        max_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_PIXELS`):
            Refuse encoded images with more pixels (width x height, read from the header before decoding);
            `None` disables this check (Pillow's own limit, `PIL.Image.MAX_IMAGE_PIXELS`, still applies).
        max_side (`int`, *optional*):
            Reduce an image whose longer side is over `max_side` pixels, keeping its aspect ratio, so that its
            longer side is at most `max_side` (JPEG is decoded at a reduced scale, so the full-size image is never
            held in memory). `None` keeps the size.
        min_side (`int`, *optional*):
            Refuse an image (after any reduction) whose shorter side is under `min_side` pixels.
        max_decoded_pixels (`int`, *optional*):
            Refuse, from its header, an image that would be decoded with more pixels than this: a format the
            decoder cannot reduce (PNG, TIFF, BMP, ...) is decoded at full size before `max_side` applies, and Pillow
            holds 4 bytes per RGB pixel. A memory budget for servers; `None` (the default) has none.

    Conversion to RGB: EXIF orientation is applied; transparent pixels (RGBA, LA, P or L with transparency) are
    composited on white; 16-bit and 32-bit integer pixels are scaled by the bit depth they use (values up to 65535
    by 65535, 12-bit values up to 4095 by 4095, so the picture looks the same instead of clipping to white);
    negative integers and floats outside [0, 255] are stretched from their minimum to their maximum, floats in
    [0, 1] are multiplied by 255; CMYK, palette and 1-bit images are converted by Pillow.

    Raises:
        `ImageLoadError`: missing, empty, unreadable, non-image, truncated or corrupt file; an image over
        `max_pixels`, with zero width or height, or with a side under `min_side`.
    """
    limits = (("max_pixels", max_pixels), ("max_side", max_side), ("min_side", min_side))
    for argument, value in (*limits, ("max_decoded_pixels", max_decoded_pixels)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{argument} must be a positive integer or None, got {value!r}")
    bounds = _Bounds(max_pixels, max_side, min_side, max_decoded_pixels)
    if isinstance(source, np.ndarray):
        image = _rgb_from_array(source, IN_MEMORY_IMAGE_NAME)
        return _with_original_size(bounds.fit(image, IN_MEMORY_IMAGE_NAME), image.size)
    if isinstance(source, Image.Image):
        return _rgb_from_pil(source, getattr(source, "filename", "") or IN_MEMORY_IMAGE_NAME, bounds)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        _check_file(path)
        return _decode(path, str(path), bounds)
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        name = name if isinstance(name, str) and name else UPLOADED_IMAGE_NAME
        data = source.read()
        if not isinstance(data, bytes):
            raise ImageLoadError(name, "the file object returns text, not bytes: open it in binary mode ('rb').")
        if not data:
            raise ImageLoadError(name, "the file is empty (0 bytes). Upload the image again.")
        return _decode(io.BytesIO(data), name, bounds)
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


class _Bounds:
    """The size limits of one `load_image` call: refused above `max_pixels`, reduced above `max_side`, refused
    under `min_side`."""

    def __init__(self, max_pixels: int | None, max_side: int | None, min_side: int | None, max_decoded: int | None):
        self.max_pixels, self.max_side, self.min_side, self.max_decoded = max_pixels, max_side, min_side, max_decoded

    def check_header(self, width: int, height: int, name: str) -> None:
        if width == 0 or height == 0:
            raise ImageLoadError(name, f"the image has zero size ({width}x{height} pixels).")
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise ImageLoadError(
                name,
                f"{width}x{height} = {width * height:,} pixels is over the limit of {self.max_pixels:,} pixels, a "
                f"guard against decompression bombs. If you trust this file, raise the limit: "
                f"load_image(..., max_pixels={width * height}) (or max_pixels=None to turn the check off).",
            )

    def reduce_while_decoding(self, image: Image.Image, name: str) -> Image.Image:
        """
        Asks the decoder for a reduced scale (JPEG only; a no-op for other formats) before `load`, then refuses an
        image that would still be decoded with more than `max_decoded` pixels.
        """
        if self.max_side is not None and max(image.size) > self.max_side:
            scale = self.max_side / max(image.size)
            image.draft(image.mode, (max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        width, height = image.size
        if self.max_decoded is not None and width * height > self.max_decoded:
            raise ImageLoadError(
                name,
                f"{width}x{height} = {width * height:,} pixels in {image.format or 'this format'} is over the "
                f"{self.max_decoded:,} pixels this service decodes (only JPEG is decoded at a reduced size). Save it "
                "as JPEG, or reduce it to a few thousand pixels per side, and upload it again.",
            )
        return image

    def fit(self, image: Image.Image, name: str, original_size: tuple[int, int] | None = None) -> Image.Image:
        """The decoded image reduced to `max_side` (antialiased), then checked against `min_side`."""
        width, height = original_size or image.size
        if self.max_side is not None and max(image.size) > self.max_side:
            image = _sixteen_bit_to_eight(image, name)  # Pillow's reduction takes no 16-bit pixels
            scale = self.max_side / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        if self.min_side is not None and min(image.size) < self.min_side:
            reduced = "" if (width, height) == image.size else f", {image.width}x{image.height} once reduced"
            raise ImageLoadError(
                name,
                f"the image is {width}x{height} pixels{reduced}; at least {self.min_side} pixels per side are "
                "needed. Use a larger image, or a crop less tight around the region of interest.",
            )
        return image


def _decode(file, name: str, bounds: _Bounds) -> Image.Image:
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
        return _rgb_from_pil(image, name, bounds)


def _rgb_from_pil(image: Image.Image, name: str, bounds: _Bounds) -> Image.Image:
    bounds.check_header(*image.size, name)
    original_size = image.size
    try:
        bounds.reduce_while_decoding(image, name)
        image.load()
        # Reduced before the orientation and mode conversions below, each of which copies the image.
        reduced = bounds.fit(image, name, original_size)
        _refuse_missing_data(reduced, image.format, original_size, name)
        image = ImageOps.exif_transpose(reduced)
    except ImageLoadError:
        raise
    except _DECODE_ERRORS as error:
        raise ImageLoadError(
            name,
            f"the file is truncated or corrupt ({error}). Copy or download it again, or re-export it from the "
            "original.",
        ) from error
    if image.size != reduced.size:  # turned by 90 degrees
        original_size = original_size[::-1]
    return _with_original_size(_to_rgb(image, name), original_size)


def _sixteen_bit_to_eight(image: Image.Image, name: str) -> Image.Image:
    """
    A 16-bit grayscale image (mode `I;16*`, as microscopy and DICOM exports are) as 8-bit (`L`), scaled by the bit
    depth it uses as [`_to_uint8`] scales every image, through a table of its values rather than a float copy of
    every pixel; any other image as it is.
    """
    if not image.mode.startswith("I;16"):
        return image
    _, high = image.getextrema()
    table = _to_uint8(np.arange(int(high) + 1, dtype=np.uint32), name)
    converted = Image.fromarray(table[np.asarray(image)])
    converted.info.update(image.info)  # EXIF orientation, applied later
    return converted


def _refuse_missing_data(image: Image.Image, file_format: str | None, size: tuple[int, int], name: str) -> None:
    """
    Refuses a JPEG whose data is mostly missing. A JPEG that ends early, but with a marker (as a file cut short and
    closed, or one whose header claims 9999x9999 pixels over a few hundred bytes), decodes without an error: the
    decoder fills every block it has no data for with mid-grey (128 in every channel). When the whole lower half of
    the picture is that grey, at least half of it is missing. The bottom row is looked at first, so a photo costs
    one row.
    """
    if file_format != "JPEG" or image.mode not in ("L", "RGB") or image.height < 2:
        return

    def all_grey(top: int) -> bool:
        extrema = image.crop((0, top, image.width, image.height)).getextrema()
        return all(band == (128, 128) for band in (extrema if image.mode == "RGB" else (extrema,)))

    if all_grey(image.height - 1) and all_grey(image.height // 2):
        raise ImageLoadError(
            name,
            f"the file's image data ends early: the lower half or more of its {size[0]}x{size[1]} pixels is "
            "missing (only the grey a decoder puts where data is missing). Copy or download it again, or re-export "
            "it from the original.",
        )


def _with_original_size(image: Image.Image, original_size: tuple[int, int]) -> Image.Image:
    """Records the (width, height) the source had, upright, before any `max_side` reduction, in `image.info`."""
    image.info[ORIGINAL_SIZE_KEY] = tuple(original_size)
    return image


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


def original_size(image: Image.Image) -> tuple[int, int]:
    """The upright (width, height) of the source `image` was loaded from by `load_image`, before any reduction."""
    return tuple(image.info.get(ORIGINAL_SIZE_KEY, image.size))


__all__ = ["DEFAULT_MAX_PIXELS", "ImageLoadError", "load_image", "original_size"]
