"""Every file an event of the app is given, checked before gradio or the app reads it.

The events take their file payloads unprocessed (`preprocess=False`), so gradio's own check that a file was uploaded
(`processing_utils._check_allowed`, run only for payloads carrying gradio's `"meta"` key) does not cover a payload
without that key: `{"path": "/any/file.png"}` would reach the app as it is. [`CheckedBlocks`] checks the values of
every event, whatever its tab, before gradio processes them and again after, as the event function receives them:

- a file payload's path, `..` and symlinks resolved, must be a regular file inside gradio's upload folder (gradio's
  own test, `gradio.utils.is_allowed_file` with the upload folder as the only place files come from, and
  `/proc`, `/sys`, `/dev` and this package's folder blocked); any other path, whether it exists or not, gets one
  message that says nothing about it;
- a file input's value is a payload (or a list of them for a multi-file input), else an error naming the input;
- a request names at most `MAX_REQUEST_FILES` files holding at most `MAX_REQUEST_BYTES` bytes, each reference
  to the same upload counted, before anything is hashed or copied;
- every input gets a value: a missing one is named.
"""

import os
import stat
from pathlib import Path

import gradio as gr
from gradio import utils as gradio_utils

# Files per request and their bytes on disk, each reference counted (the Batch tab takes at most this many images).
MAX_REQUEST_FILES = 200
MAX_REQUEST_BYTES = 2_000_000_000
# Never a source of uploads, even where gradio's folder is set oddly (GRADIO_TEMP_DIR=/).
BLOCKED = ("/proc", "/sys", "/dev", str(Path(__file__).resolve().parents[1]))
FILE_META = {"_type": "gradio.FileData"}


class UploadError(gr.Error):
    """A request's file input that the app refuses, in words that name the input (gradio shows its message)."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)


def input_name(block) -> str:
    """How the page names an input: its label, else its element id, else its kind."""
    return getattr(block, "label", None) or getattr(block, "elem_id", None) or type(block).__name__


def is_file_input(block) -> bool:
    return isinstance(block, (gr.Image, gr.File))


def not_uploaded(what: str) -> UploadError:
    """The one answer for a path that is not an upload of this app: the same whatever the path, so that no
    request learns whether a file or folder exists on the server."""
    return UploadError(f"{what}: this file was not uploaded to this app. Upload it again.")


def checked_upload_path(path, what: str) -> Path:
    """
    `path` resolved (symlinks, `..`), when it is a regular file inside gradio's upload folder (where gradio puts
    uploads and its own copies of them and of the examples), else [`not_uploaded`]. The test is gradio's
    (`utils.is_allowed_file`, as `processing_utils._check_allowed` runs it for uploads), called here so that it
    also runs outside gradio's request context, where `_check_allowed` lets everything through.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise not_uploaded(what)
    resolved = Path(os.path.realpath(path))
    allowed, _ = gradio_utils.is_allowed_file(
        resolved, blocked_paths=BLOCKED, allowed_paths=[], created_paths=[gradio_utils.get_upload_folder()]
    )
    try:
        regular = stat.S_ISREG(resolved.stat().st_mode)
    except (OSError, ValueError):
        regular = False
    if not allowed or not regular:
        raise not_uploaded(what)
    return resolved


def file_payloads(block, value) -> list[dict]:
    """The file payloads of a file input's value (none when it is empty), or an error naming the input."""
    what = input_name(block)
    if value is None:
        return []
    multiple = isinstance(block, gr.File) and block.file_count in ("multiple", "directory")
    expected = "a list of uploaded files" if multiple else "an uploaded file"
    payloads = value if multiple else [value]
    for payload in payloads if isinstance(payloads, list) else [None]:
        if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
            given = value if payload is None else payload
            given = type(given).__name__ if not isinstance(given, dict) else "an object without a list or a text 'path'"
            raise UploadError(
                f'{what}: expected {expected} ({{"path": ..., "meta": {FILE_META}}} as gradio\'s upload '
                f"returns it), got {given}."
            )
    return payloads


def check_files(blocks, values, raw: bool) -> None:
    """
    Checks every file payload among `values` (the event's inputs `blocks`), rewriting each path to the file it
    resolves to, so that what is read is what was checked. `raw`: the values as the request sent them, where a
    payload must also carry gradio's `"meta"` key (as gradio's own `FileData` requires) and the request's files are
    counted before gradio hashes or copies any.
    """
    files, total = 0, 0
    for block, value in zip(blocks, values):
        if not is_file_input(block):
            continue
        what = input_name(block)
        payloads = file_payloads(block, value)
        for payload in payloads:
            resolved = checked_upload_path(payload["path"], what)
            if raw and payload.get("meta") != FILE_META:
                raise UploadError(f'{what}: send the file as gradio\'s upload returns it, with "meta": {FILE_META}.')
            payload["path"] = str(resolved)
            files += 1
            total += resolved.stat().st_size
        if raw and files > MAX_REQUEST_FILES:
            raise UploadError(
                f"{what}: {files} files in one request; at most {MAX_REQUEST_FILES} (each reference to the same "
                "upload counts). Use `cervix-hf predict` for more."
            )
        if raw and total > MAX_REQUEST_BYTES:
            raise UploadError(
                f"{what}: {total:,} bytes of files in one request; at most {MAX_REQUEST_BYTES:,} (each reference to "
                "the same upload counts). Send fewer files, or use `cervix-hf predict`."
            )


class CheckedBlocks(gr.Blocks):
    """`gr.Blocks` whose events check their inputs (see the module's docstring) before gradio or the app reads a
    file: every event, its API name public or not (the page calls them all by number)."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call: bool = False):
        blocks = block_fn.inputs
        if len(inputs) < len(blocks):
            missing = ", ".join(repr(input_name(block)) for block in blocks[len(inputs) :])
            raise UploadError(
                f"This request gives {len(inputs)} value(s) for {len(blocks)} input(s): missing {missing}. Send a "
                "value for every input, in order."
            )
        check_files(blocks, inputs, raw=True)
        processed = await super().preprocess_data(block_fn, inputs, state, explicit_call)
        check_files(blocks, processed, raw=False)
        return processed


__all__ = ["CheckedBlocks", "MAX_REQUEST_BYTES", "MAX_REQUEST_FILES", "UploadError", "checked_upload_path"]
