"""Readers for image-classification folders: the Intel & MobileODT Cervical Cancer Screening layout and a generic
`root/<class>/*.jpg` layout for users retraining on their own data."""

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cervix_hf.data.layout import found_inside, read_text, visible_entries

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
INTEL_MOBILEODT_LABELS = ["Type_1", "Type_2", "Type_3"]
INTEL_MOBILEODT_SUBSETS = ("train", "additional", "test")
SOLUTION_CSV_NAME = "solution_stg1_release.csv"

_INTEL_LAYOUT = (
    "train/Type_N/*.jpg, additional_Type_N_v2/Type_N/*.jpg (or additional_Type_N_v2/*.jpg) and test/*.jpg labelled "
    f"by {SOLUTION_CSV_NAME} (image_name,Type_1,Type_2,Type_3, one-hot), with N in 1, 2, 3"
)


@dataclass
class ImageFolderRecords:
    r"""
    Labelled image files, one record per image.

    Args:
        paths (`list[str]`):
            Image file paths.
        labels (`list[int]`):
            Class index of each image, into `label_names`.
        label_names (`list[str]`):
            Class names, in class-index order.
        subsets (`list[str]`):
            Subset each image comes from (e.g. `"train"`, `"additional"`, `"test"`).
        skipped (`dict[str, int]`, *optional*, defaults to `{}`):
            Number of cases the reader skipped, per reason (readers of one photo per case, e.g.
            [`read_iarc_atlas_types`]).
        skipped_cases (`list[tuple[str, str]]`, *optional*, defaults to `[]`):
            `(case_id, reason)` of each skipped case.
    """

    paths: list[str]
    labels: list[int]
    label_names: list[str]
    subsets: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_cases: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        if not len(self.paths) == len(self.labels) == len(self.subsets):
            raise ValueError(
                f"paths, labels and subsets must have one entry per image, got {len(self.paths)}, "
                f"{len(self.labels)} and {len(self.subsets)}."
            )

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, indices: Sequence[int]) -> "ImageFolderRecords":
        """The records at `indices` (e.g. one split of [`stratified_split`]), in that order."""
        return ImageFolderRecords(
            paths=[self.paths[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            label_names=list(self.label_names),
            subsets=[self.subsets[i] for i in indices],
            skipped=dict(self.skipped),
            skipped_cases=list(self.skipped_cases),
        )


def read_image_folder(
    root: str | Path, label_names: Sequence[str] | None = None, allow_outside_root: bool = False
) -> ImageFolderRecords:
    r"""
    Reads a `root/<class name>/<image>` folder (extensions .jpg, .jpeg, .png, .bmp, .tif, .tiff, any case; hidden
    files skipped), sorted by path. The subset of every record is the name of `root`.

    Args:
        root (`str` or `Path`):
            Folder holding one sub-folder of images per class.
        label_names (`Sequence[str]`, *optional*, defaults to the sorted names of the sub-folders holding images):
            Class names, in class-index order; sub-folders of other names are ignored and a class may have no
            folder.
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept images that lead outside `root` through a symbolic link (of the file or of its class folder); by
            default they are refused, as the annotation readers refuse paths outside their root.

    Raises:
        `ValueError`: when `root` is not a folder or holds no images in that layout, or, naming it, an image whose
        symbolic link leads outside `root`.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"Image folder {root} does not exist or is not a folder.")
    if label_names is None:
        label_names = sorted(
            entry.name for entry in visible_entries(root) if entry.is_dir() and _list_images(entry, root, True)
        )
    items = sorted(_read_class_folders(root, label_names, root, allow_outside_root))
    if not items:
        raise ValueError(f"No images found in {root}: expected root/<class name>/*.jpg (or .png, .bmp, .tif).")
    return ImageFolderRecords(
        paths=[path for path, _ in items],
        labels=[label for _, label in items],
        label_names=list(label_names),
        subsets=[root.name] * len(items),
    )


def read_intel_mobileodt(
    root: str | Path, subsets: Sequence[str] = INTEL_MOBILEODT_SUBSETS, allow_outside_root: bool = False
) -> ImageFolderRecords:
    r"""
    Reads the Intel & MobileODT Cervical Cancer Screening data (Kaggle, 2017) in its competition layout:
    `train/Type_N/*.jpg`, `additional_Type_N_v2/Type_N/*.jpg` (or flat `additional_Type_N_v2/*.jpg`) and `test/*.jpg`
    labelled by `solution_stg1_release.csv` (`image_name,Type_1,Type_2,Type_3` one-hot, `,` or `;` separated, UTF-8
    with or without a byte-order mark). Absent subsets are skipped; test images without the csv are skipped with a
    warning. Records follow the order of `subsets`, each subset sorted by path.

    Args:
        root (`str` or `Path`):
            Folder holding the competition's `train/`, `additional_Type_N_v2/`, `test/` and csv.
        subsets (`Sequence[str]`, *optional*, defaults to `("train", "additional", "test")`):
            Subsets to read.
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept images (and the csv) that lead outside `root` through a symbolic link; by default they are
            refused, as the annotation readers refuse paths outside their root.

    Raises:
        `ValueError`: when `subsets` names an unknown subset, when no image is found, or when the csv has a header
        other than the competition's or a malformed row (not exactly one 1, unknown or repeated image), or a test
        image has no row; naming it, an image or the csv whose symbolic link leads outside `root`.
    """
    unknown = sorted(set(subsets) - set(INTEL_MOBILEODT_SUBSETS))
    if unknown:
        raise ValueError(f"subsets must be among {INTEL_MOBILEODT_SUBSETS}, got unknown {unknown}.")
    root = Path(root)
    readers = {"train": _read_intel_train, "additional": _read_intel_additional, "test": _read_intel_test}
    records = ImageFolderRecords(paths=[], labels=[], label_names=list(INTEL_MOBILEODT_LABELS), subsets=[])
    for subset in subsets:
        for path, label in sorted(readers[subset](root, allow_outside_root)):
            records.paths.append(path)
            records.labels.append(label)
            records.subsets.append(subset)
    if not records.paths:
        raise ValueError(f"No images found in {root}. Expected the Intel & MobileODT layout: {_INTEL_LAYOUT}.")
    return records


def is_intel_mobileodt(root: str | Path) -> bool:
    """Whether `root` holds any subset of the competition layout: `train/`, an `additional_Type_N_v2/` folder, or
    the test photos' `solution_stg1_release.csv` (a folder of only `test/` and the csv is a data set too)."""
    root = Path(root)
    return (root / "train").is_dir() or any(root.glob("additional_Type_*")) or (root / SOLUTION_CSV_NAME).is_file()


def _read_intel_train(root: Path, allow_outside_root: bool) -> list[tuple[str, int]]:
    return _read_class_folders(root / "train", INTEL_MOBILEODT_LABELS, root, allow_outside_root)


def _read_intel_additional(root: Path, allow_outside_root: bool) -> list[tuple[str, int]]:
    items = []
    for label, name in enumerate(INTEL_MOBILEODT_LABELS):
        folder = root / f"additional_{name}_v2"
        items += _read_class_folders(folder, INTEL_MOBILEODT_LABELS, root, allow_outside_root)
        items += [(path, label) for path in _list_images(folder, root, allow_outside_root)]
    return items


def _read_intel_test(root: Path, allow_outside_root: bool) -> list[tuple[str, int]]:
    test_folder, csv_path = root / "test", root / SOLUTION_CSV_NAME
    images = {Path(path).name: path for path in _list_images(test_folder, root, allow_outside_root)}
    if not images:
        return []
    if not csv_path.is_file():
        logger.warning(f"Skipping the {len(images)} images of {test_folder}: their labels, {csv_path}, are missing.")
        return []
    found_inside(root, csv_path, allow_outside_root)
    labels = _read_solution_csv(csv_path, test_folder, set(images))
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise ValueError(f"{csv_path} has no row for {len(unlabelled)} image(s) of {test_folder}: {unlabelled[:5]}.")
    return [(images[name], label) for name, label in labels.items()]


def _read_solution_csv(csv_path: Path, test_folder: Path, image_names: set[str]) -> dict[str, int]:
    lines = read_text(csv_path).splitlines()
    header = lines[0] if lines else ""
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    expected_header = ["image_name", *INTEL_MOBILEODT_LABELS]
    if [name.strip() for name in reader.fieldnames or []] != expected_header:
        raise ValueError(f"{csv_path}, line 1: expected the header {','.join(expected_header)}, got {header!r}.")
    reader.fieldnames = expected_header

    labels = {}
    for row in reader:
        where = f"{csv_path}, line {reader.line_num}"
        name = (row["image_name"] or "").strip()
        one_hot = _parse_one_hot([row[label_name] for label_name in INTEL_MOBILEODT_LABELS])
        if None in row or one_hot is None:
            raise ValueError(f"{where}: expected an image name and a one-hot Type_1,Type_2,Type_3, got {row}.")
        if name not in image_names:
            raise ValueError(f"{where}: image {name!r} is not in {test_folder}.")
        if name in labels:
            raise ValueError(f"{where}: image {name!r} is listed twice.")
        labels[name] = one_hot
    return labels


def _parse_one_hot(values: list[str | None]) -> int | None:
    """The index of the single 1 in `values` ("0"/"1", "0.0"/"1.0"), or None when they are not one-hot."""
    try:
        numbers = [float(value) for value in values]
    except (TypeError, ValueError):
        return None
    if sorted(numbers) != [0.0] * (len(numbers) - 1) + [1.0]:
        return None
    return numbers.index(1.0)


def _read_class_folders(
    folder: Path, label_names: Sequence[str], root: Path, allow_outside_root: bool
) -> list[tuple[str, int]]:
    return [
        (path, label)
        for label, name in enumerate(label_names)
        for path in _list_images(folder / name, root, allow_outside_root)
    ]


def _list_images(folder: Path, root: Path, allow_outside_root: bool) -> list[str]:
    """The image files of `folder`, sorted; one whose symbolic link leads outside `root` is refused (`found_inside`)."""
    if not folder.is_dir():
        return []
    return sorted(
        str(found_inside(root, path, allow_outside_root))
        for path in visible_entries(folder)
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    )


def read_unlabeled_folder(root: str | Path, allow_outside_root: bool = False) -> list[str]:
    r"""
    The image files directly inside `root` (the competition's unlabelled photos, `unlabeled/*.jpg`), sorted by path.

    Raises:
        `ValueError`: naming `root`, when it is not a folder or holds no image; naming the image, when its symbolic
        link leads outside `root` and `allow_outside_root` is not set.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"Unlabelled photo folder {root} does not exist or is not a folder.")
    paths = _list_images(root, root, allow_outside_root)
    if not paths:
        raise ValueError(f"No images found in {root}: expected {root}/*.jpg (or .png, .bmp, .tif).")
    return paths
