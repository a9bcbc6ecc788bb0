"""Per-image export of detections, as CSV (one row per detection) and JSON (one object per image)."""

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from cervix_hf.io.files import atomic_open, atomic_write_text

CSV_FIELDS = ("image", "label", "score", "xmin", "ymin", "xmax", "ymax")
# A text cell starting with one of these is run as a formula by spreadsheet programs (CSV injection, OWASP).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# The formats of prediction rows: CSV, or JSON Lines (one object a line).
FORMATS = ("csv", "jsonl")


def spreadsheet_safe(value):
    """
    `value`, with a text cell that a spreadsheet would run as a formula prefixed by `'` (shown as text). A text that
    already starts with `'`s before such a character gets one more too, so that [`spreadsheet_unsafe`] gives every
    text back as it was (`'=x` is written `''=x`, never read back as `=x`).
    """
    return "'" + value if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_PREFIXES) else value


def spreadsheet_unsafe(cell: str) -> str:
    """The text [`spreadsheet_safe`] was given, from the cell it wrote."""
    return cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_PREFIXES) else cell


def write_detections(per_image: Iterable[tuple[str, list]], csv_path: Path, json_path: Path) -> None:
    """
    Writes `[(image name, [CellDetection, ...]), ...]` to `csv_path` and `json_path`. An image without detections
    has no CSV row but is listed in the JSON with an empty list, so the files tell "nothing found" from "not run".
    Text cells of the CSV that a spreadsheet would run as formulas (an image named `=HYPERLINK(...)`) are written
    as text ([`spreadsheet_safe`]); the JSON keeps the names as they are.
    Each file is written to a temporary name and moved into place, so a crash never leaves half a file.
    """
    per_image = [(str(name), [d.to_dict() for d in detections]) for name, detections in per_image]
    atomic_write_text(
        json_path,
        json.dumps([{"image": name, "detections": detections} for name, detections in per_image], indent=2),
    )
    with atomic_open(csv_path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for name, detections in per_image:
            for detection in detections:
                writer.writerow({key: spreadsheet_safe(value) for key, value in {"image": name, **detection}.items()})
