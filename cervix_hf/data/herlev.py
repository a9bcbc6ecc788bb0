"""Reader for the Herlev Pap-smear single-cell layout, and its split by source image.

The layout: `root/labels.csv` with the columns `path,class,binary,source_image`, one row per cell image, `path`
relative to `root` (`<class>/<name>.jpg`). Cells cut from one slide image share a `source_image`: near-copies of
one another, so a split keeps each source image whole.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cervix_hf.data.layout import path_inside, read_csv_rows
from cervix_hf.data.splits import stratified_split
from cervix_hf.models.cell_classifier import HERLEV_GROUPS, HERLEV_LABELS

HERLEV_COLUMNS = ("path", "class", "binary", "source_image")
LABELS_FILE = "labels.csv"
# Train, validation, test: fractions of the source images, stratified by class.
HERLEV_SPLIT_FRACTIONS = (0.7, 0.2, 0.1)


@dataclass
class HerlevRecords:
    r"""
    Single-cell images with their class and source image, one record per cell.

    Args:
        paths (`list[str]`): image files.
        labels (`list[int]`): class index of each cell, into `label_names`.
        label_names (`list[str]`): class names, in class order (`HERLEV_LABELS`).
        source_images (`list[str]`): the slide image each cell was cut from.
    """

    paths: list[str]
    labels: list[int]
    label_names: list[str]
    source_images: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, indices: Sequence[int]) -> "HerlevRecords":
        """The records at `indices`, in that order."""
        return HerlevRecords(
            [self.paths[i] for i in indices],
            [self.labels[i] for i in indices],
            list(self.label_names),
            [self.source_images[i] for i in indices],
        )


def read_herlev(root: str | Path, allow_outside_root: bool = False) -> HerlevRecords:
    r"""
    Reads `root/labels.csv` (columns `path,class,binary,source_image`), in the file's order.

    Every `class` must be one of `HERLEV_LABELS` and its `binary` the group that class belongs to (`HERLEV_GROUPS`);
    every `path` must stay inside `root` unless `allow_outside_root`.

    Raises:
        `ValueError` naming the file and line: a missing file or column, an unknown class, a `binary` that disagrees
        with the class, an empty `source_image`, a path outside `root`, a missing image; or no rows.
    """
    root = Path(root)
    csv_path = root / LABELS_FILE
    if not csv_path.is_file():
        raise ValueError(f"{csv_path} not found: a Herlev folder holds labels.csv ({','.join(HERLEV_COLUMNS)}).")
    rows = read_csv_rows(csv_path)
    if not rows:
        raise ValueError(f"{csv_path} is empty.")
    _, header = rows[0]
    missing = [column for column in HERLEV_COLUMNS if column not in header]
    if missing:
        raise ValueError(f"{csv_path}: the header lacks {', '.join(missing)} (it needs {','.join(HERLEV_COLUMNS)}).")
    column = {name: header.index(name) for name in HERLEV_COLUMNS}
    group_of = {label: group for group, members in HERLEV_GROUPS.items() for label in members}
    records = HerlevRecords([], [], list(HERLEV_LABELS), [])
    for line, row in rows[1:]:
        where = f"{csv_path}, line {line}"
        if len(row) < len(header):
            raise ValueError(f"{where}: {len(row)} fields, the header has {len(header)}.")
        name, label, binary, source = (row[column[key]].strip() for key in HERLEV_COLUMNS)
        if label not in group_of:
            raise ValueError(f"{where}: unknown class {label!r}; the classes are {', '.join(HERLEV_LABELS)}.")
        if binary != group_of[label]:
            raise ValueError(f"{where}: binary is {binary!r}, but the class {label} is {group_of[label]}.")
        if not source:
            raise ValueError(f"{where}: source_image is empty; every cell needs the slide image it was cut from.")
        path = path_inside(root, name, where, allow_outside_root)
        if not path.is_file():
            raise ValueError(f"{where}: the image {path} does not exist.")
        records.paths.append(str(path))
        records.labels.append(HERLEV_LABELS.index(label))
        records.source_images.append(source)
    if not records.paths:
        raise ValueError(f"{csv_path} lists no cells.")
    return records


def source_image_split(
    records: HerlevRecords, seed: int = 42, fractions: Sequence[float] = HERLEV_SPLIT_FRACTIONS
) -> dict[str, list[int]]:
    r"""
    Train, validation and test indices of `records`, with every source image's cells in one split: the source images
    of each class are shuffled with `seed` and cut by `fractions` (counted in source images), as
    [`stratified_split`] does with `groups`. The same records and seed give the same split.
    """
    return stratified_split(records.labels, fractions, seed, groups=records.source_images)


__all__ = ["HERLEV_COLUMNS", "HERLEV_SPLIT_FRACTIONS", "HerlevRecords", "read_herlev", "source_image_split"]
