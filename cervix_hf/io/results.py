"""Per-image export of detections, as CSV (one row per detection) and JSON (one object per image)."""

import csv
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from cervix_hf.io.files import atomic_open, atomic_write_text

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


class RowWriter:
    """Writes rows to an open text file as CSV (header first, when `header`) or JSON Lines, flushing each call."""

    def __init__(self, handle, fmt: str, columns: Sequence[str], header: bool = True):
        self.handle, self.fmt = handle, fmt
        if fmt == "csv":
            self.writer = csv.DictWriter(handle, fieldnames=list(columns))
            if header:
                self.writer.writeheader()

    def write(self, rows: Iterable[dict], escape: bool = True) -> None:
        """`escape=False` for rows read back from a CSV this writer wrote: their text cells are already safe."""
        for row in rows:
            if self.fmt == "csv":
                self.writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()} if escape else row)
            else:
                self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.handle.flush()


def detection_columns(labels: Sequence[str]) -> list[str]:
    """The columns of a detector's rows: per cell (`row=cell`) its number, class, score and box; per image
    (`row=image`) the number of cells and the count of each class; an `error` when the image could not be read."""
    return [
        "image",
        "row",
        "cell",
        "label",
        "score",
        "xmin",
        "ymin",
        "xmax",
        "ymax",
        "cells",
        *(f"count_{name}" for name in labels),
        "error",
    ]


def detection_rows(name: str, cells: Sequence, labels: Sequence[str]) -> list[dict]:
    """The rows of one image's detections (`CellDetection`s, best first): a row per cell, then the image's summary."""
    columns = detection_columns(labels)
    empty = dict.fromkeys(columns)
    rows = [
        empty
        | {"image": name, "row": "cell", "cell": number, "label": cell.label, "score": cell.score}
        | dict(zip(("xmin", "ymin", "xmax", "ymax"), cell.box))
        for number, cell in enumerate(cells, start=1)
    ]
    counts = Counter(cell.label for cell in cells)
    summary = {f"count_{label}": counts[label] for label in labels}
    return [*rows, empty | {"image": name, "row": "image", "cells": len(cells)} | summary]


def write_detections(
    per_image: Iterable[tuple[str, list]], csv_path: Path, json_path: Path, labels: Sequence[str]
) -> None:
    """
    Writes `[(image name, [CellDetection, ...]), ...]` to `csv_path`, in the rows `cervix-hf predict` writes for the
    detector ([`detection_rows`]: a row per cell and a summary per image, so an image without detections is there
    too), and to `json_path`, one object per image with its list of detections. Text cells of the CSV that a
    spreadsheet would run as formulas (an image named `=HYPERLINK(...)`) are written as text ([`spreadsheet_safe`]);
    the JSON keeps the names as they are. Each file is written to a temporary name and moved into place, so a crash
    never leaves half a file.
    """
    per_image = [(str(name), list(detections)) for name, detections in per_image]
    atomic_write_text(
        json_path,
        json.dumps(
            [{"image": name, "detections": [d.to_dict() for d in detections]} for name, detections in per_image],
            indent=2,
        ),
    )
    with atomic_open(csv_path, newline="") as handle:
        writer = RowWriter(handle, "csv", detection_columns(labels))
        for name, detections in per_image:
            writer.write(detection_rows(name, detections, labels))
