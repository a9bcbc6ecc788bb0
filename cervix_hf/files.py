"""The files of a training run's output folder, by name, and writing them so that a crash never leaves half a file.

A run folder (`train/train_*.py --output-dir`) holds what `save_pretrained` writes (`config.json`, the weights,
`preprocessor_config.json`, the model's code), the run's `eval_results.json` (`cervix_hf.eval_results`) and
`training_args.json`, and the model card `README.md` rendered from them (`cervix_hf.hub.cards`).
"""

from contextlib import contextmanager
from pathlib import Path

CARD_FILE = "README.md"
CONFIG_FILE = "config.json"
PROCESSOR_FILE = "preprocessor_config.json"
EVAL_RESULTS_FILE = "eval_results.json"
TRAINING_ARGS_FILE = "training_args.json"


@contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """Opens a temporary file beside `path` and moves it onto `path` only when the block finishes without error."""
    path = Path(path)
    temporary = path.with_suffix(path.suffix + ".tmp")
    try:
        with temporary.open(mode, **kwargs) as handle:
            yield handle
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)
