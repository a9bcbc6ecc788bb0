"""File access shared by the dataset readers: listing a folder, resolving the paths an annotation file names, and
reading text, csv and image headers, each turning a malformed file into a `ValueError` that names it."""

import csv
import io
import reprlib
from pathlib import Path

import PIL.Image

# What PIL raises for a file that is not an image it can read: unknown or truncated data, a bad header, a decompression
# bomb.
IMAGE_READ_ERRORS = (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError)


def visible_entries(folder: Path) -> list[Path]:
    """The entries of `folder` whose names do not start with a dot, in no particular order."""
    # Skips hidden entries such as macOS "._<name>.jpg" resource forks, which are not images.
    return [path for path in folder.iterdir() if not path.name.startswith(".")]


def path_inside(root: Path, name: str, where: str, allow_outside_root: bool = False) -> Path:
    r"""
    `root / name`, for a file `name` that an annotation file lists, once it is known to stay inside `root`.

    Args:
        root (`Path`):
            Folder the dataset's files must lie in.
        name (`str`):
            The path as written in the annotation file, relative to `root`.
        where (`str`):
            The annotation file and entry (e.g. `"train.json, images[3]"`), for the error message.
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept absolute paths and paths that leave `root` (through `..` or a symbolic link).

    Raises:
        `ValueError`, starting with `where`: when `name` is empty or cannot name a file (longer than the file system
        allows, a loop of symbolic links, a NUL character), or, unless `allow_outside_root`, absolute or resolving
        (after `..` and symbolic links) to `root` itself or to a place outside it.
    """
    if not name:
        raise ValueError(f"{where}: the image path is empty.")
    path = root / name
    try:
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        pass  # the reader says what is missing
    except (OSError, ValueError) as error:
        problem = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ValueError(f"{where}: cannot use the path {reprlib.repr(name)} ({problem}).") from None
    if allow_outside_root:
        return path
    if Path(name).is_absolute():
        raise ValueError(
            f"{where}: the absolute path {name!r} is refused; write it relative to {root}, or pass "
            "allow_outside_root=True if you trust this file."
        )
    try:
        resolved, resolved_root = path.resolve(), root.resolve()
    except (OSError, RuntimeError, ValueError) as error:  # a symbolic link loop, a NUL character
        raise ValueError(f"{where}: cannot resolve the path {name!r} ({error}).") from error
    if resolved == resolved_root or not resolved.is_relative_to(resolved_root):
        raise ValueError(
            f"{where}: the path {name!r} resolves to {resolved}, outside {root}; move the file into that folder, or "
            "pass allow_outside_root=True if you trust this file."
        )
    return path


def found_inside(root: Path, path: Path, allow_outside_root: bool = False) -> Path:
    """
    `path`, a file a folder reader found under `root` (by listing it), once it is known to stay inside `root`: a
    symbolic link, of the file or of a folder on the way, that leads out of `root` is refused as [`path_inside`]
    refuses one an annotation file names (`ValueError` naming `root` and the path); `allow_outside_root=True`
    accepts it.
    """
    return path_inside(root, str(path.relative_to(root)), str(root), allow_outside_root)


def file_identity(path: Path) -> Path:
    """What tells two spellings of one file (`a.png`, `./a.png`, a symbolic link to it) from two files: its resolved
    path, or the path itself where it cannot be resolved."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path


def read_text(path: Path) -> str:
    """The text of a UTF-8 file (with or without a byte-order mark); a `ValueError` naming it for a folder or a file
    that is not UTF-8 text."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, expected a file.")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: not UTF-8 text (byte {error.start}: {error.reason}); save the file as UTF-8."
        ) from error


def read_csv_rows(path: Path, delimiter: str = ",") -> list[tuple[int, list[str]]]:
    """Rows of a UTF-8 csv file as `(line number, fields)`, header included, blank lines skipped; a `ValueError`
    naming the file and line for what the csv module refuses (e.g. a field over its size limit)."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            if row:
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise ValueError(f"{path}, line {reader.line_num}: not a valid csv row ({error}).") from error
    return rows


def image_size(path: str | Path, where: str) -> tuple[int, int] | None:
    """`(width, height)` of an image from its header, without decoding the pixels; None when the file does not
    exist, a `ValueError` starting with `where` when it is a folder or not an image PIL can read."""
    path = Path(path)
    try:
        if not path.exists():
            return None
    except ValueError as error:  # a NUL character in the path
        raise ValueError(f"{where}: cannot read the image {path!r} ({error}).") from error
    if path.is_dir():
        raise ValueError(f"{where}: the image {path} is a folder, expected an image file.")
    try:
        with PIL.Image.open(path) as image:
            return image.size
    except IMAGE_READ_ERRORS as error:
        raise ValueError(f"{where}: cannot read the image {path} ({error}).") from error
