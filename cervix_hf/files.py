"""Writing result files so that a crash never leaves half a file behind."""

from contextlib import contextmanager
from pathlib import Path


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
