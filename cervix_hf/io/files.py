"""The files of a training run's output folder, by name, and writing them so that a crash never leaves half a file.

A run folder (`train/train_*.py --output-dir`) holds what `save_pretrained` writes (`config.json`, the weights,
`preprocessor_config.json`, the model's code), the run's `eval_results.json` (`cervix_hf.evaluation.results`) and
`training_args.json`, and the model card `README.md` rendered from them (`cervix_hf.hub.cards`).
"""

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

CARD_FILE = "README.md"
CONFIG_FILE = "config.json"
PROCESSOR_FILE = "preprocessor_config.json"
EVAL_RESULTS_FILE = "eval_results.json"
# The ONNX exports of a model folder, and the report of their checks (`cervix_hf.export`).
ONNX_FOLDER = "onnx"
EXPORT_REPORT = "export.json"
PRECISIONS = ("fp32", "int8")
TRAINING_ARGS_FILE = "training_args.json"


@contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """
    Opens a new temporary file beside `path` and moves it onto `path` only when the block finishes without error.

    The temporary file has a random name and is created exclusively (`O_EXCL`): a file or a symbolic link already at
    that name is never opened, so a link planted beside the output cannot redirect the write to another file. It is
    created with the permissions `open` gives a new file (0666 less the umask).
    """
    path = Path(path)
    descriptor, temporary = _create_exclusively(path)
    try:
        try:
            handle = os.fdopen(descriptor, mode, **kwargs)
        except BaseException:
            os.close(descriptor)
            raise
        with handle:
            yield handle
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def _create_exclusively(path: Path) -> tuple[int, Path]:
    """A new file `.<name>.<random>.tmp` beside `path`, opened for writing: its descriptor and its path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        temporary = path.with_name(f".{path.name[:200]}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"Cannot create a temporary file beside {path}: every name tried exists.")


def give_default_mode(path) -> None:
    """
    Gives the file `path` the permissions `open` gives a new file (0666 less the umask): transformers writes
    `model.safetensors` readable by its owner only (0600), unlike every other file of a saved model.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_text(path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def model_folder_problem(folder) -> str | None:
    """
    Why `folder` (an existing folder) is not a saved model, or `None` when it is one (it has a `config.json`). A
    training run that was interrupted (checkpoint or stage folders, but no model saved at its top) is told apart, so
    that the message can point to `--resume`.
    """
    folder = Path(folder)
    if (folder / CONFIG_FILE).is_file():
        return None
    if _is_interrupted_run(folder):
        return (
            f"{folder} is a training run that did not finish: it holds checkpoints but no saved model ({CONFIG_FILE}) "
            "at its top. Continue it by running its training command again with --resume (same --output-dir), or "
            "give the folder of a finished run."
        )
    return f"{folder} has no {CONFIG_FILE}, so it is not a saved model folder"


def _is_interrupted_run(folder: Path) -> bool:
    """Whether `folder` holds a training run's checkpoints (`checkpoint-N`), directly or in its stage folders."""
    try:
        children = [path for path in folder.iterdir() if path.is_dir()]
        return any(
            path.name.startswith(("checkpoint-", ".tmp-checkpoint-"))
            or (path / "stage_done.json").is_file()
            or any(child.name.startswith("checkpoint-") for child in path.iterdir() if child.is_dir())
            for path in children
        )
    except OSError:
        return False
