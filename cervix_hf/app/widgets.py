"""What every tab shares: constants of the page, reading uploads, checking thresholds, labelling results."""

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import gradio as gr

from cervix_hf.app.models import LoadedModel
from cervix_hf.io.images import ImageLoadError
from cervix_hf.prediction.inference import load_model_input

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


def untrained_prefix(loaded: LoadedModel) -> str:
    return f"## ⚠️ {loaded.warning}\n\n" if loaded.warning else ""


# An untrained model's results are marked where they are shown: their components carry this class, which the page's
# style greys out, their labels say the output is meaningless, and the verdicts call the answer random.
UNTRAINED_CLASS = "untrained-output"
APP_CSS = f".{UNTRAINED_CLASS} {{ opacity: 0.45; filter: grayscale(1); }}"
UNTRAINED_ANSWER = "Untrained model, random output"


def marked(loaded: LoadedModel) -> list[str]:
    """The `elem_classes` of a result component: greyed out when the model is untrained."""
    return [] if loaded.trained else [UNTRAINED_CLASS]


def answer_heading(answer: str, loaded: LoadedModel) -> str:
    """`answer` in bold, called a random output when the model is untrained."""
    return f"**{answer}**" if loaded.trained else f"**{UNTRAINED_ANSWER}: {answer}**"


def meaningless(figure: str, loaded: LoadedModel) -> str:
    """A figure of the answer (a probability, a score), said to mean nothing when the model is untrained."""
    return figure if loaded.trained else f"{figure}: meaningless"


# Heat maps are blended over the photo at this opacity unless the user moves the tab's slider.
DEFAULT_HEATMAP_OPACITY = 0.45


def heatmap_opacity_slider(elem_id: str) -> gr.Slider:
    return gr.Slider(0.0, 1.0, value=DEFAULT_HEATMAP_OPACITY, step=0.05, label="Heat-map opacity", elem_id=elem_id)


def checked_opacity(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise bad_input(f"The heat-map opacity must be a number from 0 to 1, got {value!r}.")
    return float(value)


def result_label(title: str, loaded: LoadedModel) -> str:
    return f"{title} ({loaded.warning})" if loaded.warning else title


def model_footer(loaded: LoadedModel) -> str:
    return f"\n\n*Model: {loaded.source.shown()}. Research demo, not a diagnosis.*"


class ResultCache:
    """
    The model's answers for the last `size` inputs, by model and file content, so that moving a threshold decides
    again from the cached answer instead of running the model again. Thread-safe; two requests for the same missing
    entry may both compute it (the same answer), which costs time but never a wrong answer.
    """

    def __init__(self, size: int = 16):
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key, compute):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value


def upload_digest(upload: dict) -> str:
    """The SHA-256 of an uploaded file's content (the cache key of its answers)."""
    digest = hashlib.sha256()
    with open(upload["path"], "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_orphans(parent: Path, prefix: str) -> list[Path]:
    """Removes the `<prefix><pid>_*` directories in `parent` whose process no longer runs; returns them."""
    removed = []
    for folder in parent.glob(f"{prefix}*_*"):
        pid = folder.name[len(prefix) :].partition("_")[0]
        if folder.is_dir() and pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class ExportFolders:
    """
    One fresh folder per request for download files, under a temporary directory removed when the app exits.
    gradio serves its own copy of each returned file, so folders older than `lifetime` seconds are deleted as new
    ones are made, which keeps a long-running app's disk use flat. The directory's name holds the app's process id;
    an app that was killed (and so could not remove its own) has its directory removed by the next app to start.
    """

    PREFIX = "cervix_hf_app_"

    def __init__(self, lifetime: float = 600.0, parent: str | None = None):
        self.lifetime = lifetime
        remove_orphans(Path(parent or tempfile.gettempdir()), self.PREFIX)
        self._root = tempfile.TemporaryDirectory(prefix=f"{self.PREFIX}{os.getpid()}_", dir=parent)

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


def save_pil_to_cache_atomically(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """
    gradio's `processing_utils.save_pil_to_cache`, with the file written under a temporary name and renamed into
    place. gradio names a drawn image by its content and rewrites that file in place on every request that draws it,
    so two users drawing the same image at once (an example, a threshold moved back and forth) could be served a file
    being rewritten, cut short ("Too little data for declared Content-Length"). Renamed into place, a reader sees
    the whole old file or the whole new one; an existing file (the same content by its name) is kept, and touched so
    that `delete_cache`, which ages files by their change time, keeps it as long as it is handed out.
    """
    from gradio import processing_utils

    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    if target.exists():
        try:
            os.utime(target)
            return str(target)
        except OSError:  # removed meanwhile by delete_cache: written again below
            pass
    descriptor, staging = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return str(target)


def write_drawn_images_atomically() -> None:
    """Makes gradio save the images the app draws with [`save_pil_to_cache_atomically`] (idempotent)."""
    from gradio import processing_utils

    processing_utils.save_pil_to_cache = save_pil_to_cache_atomically


def card_link(model_type: str) -> str:
    """A Markdown link to the published model card of `model_type` (its repo, or the one its variable names)."""
    from cervix_hf.hub.repos import model_repo_id, split_revision

    repo_id, _ = split_revision(model_repo_id(model_type))
    return f"[model card](https://huggingface.co/{repo_id})"


def label_explanation(model_type: str) -> str:
    """What the model's labels mean (its record's `label_explanation`), with a link to its card."""
    from cervix_hf.registry import family

    return f"{family(model_type).label_explanation} More in the {card_link(model_type)}."
