"""Changes to gradio's behaviour the app needs: drawn images written whole (a temporary file renamed into place) into
gradio's cache, so that a concurrent request never reads half a file."""

import os
import tempfile
from pathlib import Path


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
