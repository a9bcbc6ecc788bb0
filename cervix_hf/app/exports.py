"""The files the app writes for download: one folder per request under the process's own folder, and the folders of
processes that have ended removed at start."""

import os
import shutil
import tempfile
import time
from pathlib import Path


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
