"""What every tab shares: constants of the page, reading uploads, checking thresholds, labelling results."""

import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from ..image_io import ImageLoadError, load_image
from .models import LoadedModel

DEFAULT_DETECTION_THRESHOLD = 0.5
MODEL_DEFAULT = "model default"
CUSTOM_THRESHOLD = "custom threshold"
# Distinct colours (Sasha Trubetskoy's list), one per cell class in the model's class order.
CLASS_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")
IMAGE_SOURCES = ["upload", "clipboard"]
OUTPUT_IMAGE_BUTTONS = ["download", "fullscreen"]  # not "share", which posts to the Hub
# Drawn images are sent as JPEG: PNG took ~190 ms to encode an 800x600 overlay, JPEG takes ~2 ms.
DRAWN_IMAGE_FORMAT = "jpeg"


def bad_input(message: str) -> gr.Error:
    """The error a user sees for a problem with their input: shown in the page, and no traceback in the log."""
    return gr.Error(message, print_exception=False)


def read_upload(upload: dict | None, what: str):
    """
    The uploaded file (gradio's file payload, left unprocessed so that this function reads the file itself) as an
    RGB image, and its original name. Every problem becomes a `gr.Error` with `cervix_hf.load_image`'s message.
    """
    if upload is None:
        raise bad_input(f"No {what}: upload an image file (JPEG, PNG, TIFF or BMP).")
    if not isinstance(upload, dict) or not upload.get("path"):
        raise bad_input(f"The {what} did not arrive as a file: upload it as an image file.")
    name = upload.get("orig_name") or Path(upload["path"]).name
    try:
        return load_image(upload["path"]), name
    except ImageLoadError as error:
        raise bad_input(str(ImageLoadError(name, error.problem))) from error


def checked_threshold(value) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise bad_input(f"The threshold must be a number from 0 to 1, got {value!r}.") from None
    if not 0.0 <= threshold <= 1.0:  # also rejects NaN
        raise bad_input(f"The threshold must be from 0 to 1, got {value!r}.")
    return threshold


def untrained_prefix(loaded: LoadedModel) -> str:
    return f"## ⚠️ {loaded.warning}\n\n" if loaded.warning else ""


def result_label(title: str, loaded: LoadedModel) -> str:
    return f"{title} ({loaded.warning})" if loaded.warning else title


def model_footer(loaded: LoadedModel) -> str:
    return f"\n\n*Model: {loaded.source.describe()}. Research demo, not a diagnosis.*"


class ExportFolders:
    """
    One fresh folder per request for download files, under a temporary directory removed when the app exits.
    gradio serves its own copy of each returned file, so folders older than `lifetime` seconds are deleted as new
    ones are made, which keeps a long-running app's disk use flat.
    """

    def __init__(self, lifetime: float = 600.0):
        self.lifetime = lifetime
        self._root = tempfile.TemporaryDirectory(prefix="cervix_hf_app_")

    def new(self) -> Path:
        cutoff = time.time() - self.lifetime
        for folder in Path(self._root.name).iterdir():
            try:
                expired = folder.stat().st_mtime < cutoff
            except FileNotFoundError:  # pruned meanwhile by a concurrent request
                continue
            if expired:
                shutil.rmtree(folder, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self._root.name))
