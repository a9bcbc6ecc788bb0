"""The files of a training run's output folder, by name, and writing them so that a crash never leaves half a file.

A run folder (`train/train_*.py --output-dir`) holds what `save_pretrained` writes (`config.json`, the weights,
`preprocessor_config.json`, the model's code), the run's `eval_results.json` (`cervix_hf.eval_results`) and
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


def atomic_write_text(path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)
