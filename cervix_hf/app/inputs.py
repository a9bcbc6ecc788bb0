"""What the tabs check of a request's values before anything runs: uploads read within the app's bounds, choices, flags,
thresholds and opacities, and the content digest results are cached by."""

import hashlib
import re
from pathlib import Path

import gradio as gr

from cervix_hf.io.images import ImageLoadError
from cervix_hf.prediction.inference import load_model_input


def bad_input(message: str) -> gr.Error:
    """The error a user sees for a problem with their input: shown in the page, and no traceback in the log."""
    return gr.Error(message, print_exception=False)


def read_upload(upload: dict | None, what: str, model_type: str):
    """
    The uploaded file (gradio's file payload, left unprocessed so that this function reads the file itself) as an
    RGB image within `model_type`'s input bounds (`cervix_hf.prediction.inference.load_model_input`: a larger image is reduced
    while decoding, a smaller one refused), and its original name made safe ([`safe_upload_name`]). Every problem
    becomes a `gr.Error` with `cervix_hf.load_image`'s message.
    """
    if upload is None:
        raise bad_input(f"No {what}: upload an image file (JPEG, PNG, TIFF or BMP).")
    if not isinstance(upload, dict) or not isinstance(upload.get("path"), str) or not upload["path"]:
        raise bad_input(f"The {what} did not arrive as a file: upload it as an image file.")
    orig_name = upload.get("orig_name")
    name = safe_upload_name(orig_name if isinstance(orig_name, str) and orig_name else Path(upload["path"]).name)
    try:
        image = load_model_input(upload["path"], model_type, max_decoded_pixels=MAX_DECODED_PIXELS)
    except ImageLoadError as error:
        raise bad_input(str(ImageLoadError(name, error.problem))) from error
    # The app's results (boxes, heat maps) are in the pixels of the image it shows, which is this one.
    image.info.clear()
    return image, name


# The most pixels the app decodes per image (Pillow holds 4 bytes per RGB pixel: 100 MB). JPEG, the photos' format,
# is decoded at a reduced scale and never reaches it below Pillow's 100-MP limit; a larger PNG or TIFF is refused
# from its header instead of costing up to 400 MB per request.
MAX_DECODED_PIXELS = 25_000_000


# Longest upload name kept (file systems allow 255 bytes; the app adds suffixes such as `_detections.csv`).
MAX_NAME_LENGTH = 100


def safe_upload_name(name: str) -> str:
    """
    `name` as a file name the app can use in download names and show: its last path component, characters other
    than letters, digits, `.`, `-`, `_` and spaces replaced by `_` (NUL, control characters, slashes), no leading
    dot, at most `MAX_NAME_LENGTH` characters with the extension kept; `"image"` when nothing is left.
    """
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^\w.\- ]", "_", base, flags=re.ASCII).strip(" .")
    stem, dot, extension = cleaned.rpartition(".") if "." in cleaned else (cleaned, "", "")
    extension = extension[:10]
    stem = stem[: MAX_NAME_LENGTH - len(dot) - len(extension)].rstrip(" .")
    return (stem + dot + extension) if stem else "image" + dot + extension


def checked_flag(value, what: str) -> bool:
    """A checkbox's value from an API call: only `true` or `false` (a string such as "false" would read as true)."""
    if not isinstance(value, bool):
        raise bad_input(f"{what} must be true or false, got {value!r} ({type(value).__name__}).")
    return value


def checked_choice(value, choices, what: str) -> str:
    """A radio's value from an API call: one of `choices`, as text."""
    if not isinstance(value, str) or value not in choices:
        raise bad_input(f"{what} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


def checked_threshold(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_input(f"The threshold must be a number from 0 to 1, got {value!r}.")
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise bad_input(f"The threshold must be a number from 0 to 1, got {value!r}.") from None
    if not 0.0 <= threshold <= 1.0:  # also rejects NaN
        raise bad_input(f"The threshold must be from 0 to 1, got {value!r}.")
    return threshold


def checked_opacity(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise bad_input(f"The heat-map opacity must be a number from 0 to 1, got {value!r}.")
    return float(value)


def upload_digest(upload: dict) -> str:
    """The SHA-256 of an uploaded file's content (the cache key of its answers)."""
    digest = hashlib.sha256()
    with open(upload["path"], "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
