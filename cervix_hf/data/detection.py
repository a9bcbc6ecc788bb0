"""Readers for cell-detection data: SIPaKMeD cluster images, the ISBI 2014 EDF set, and generic CSV, COCO JSON and
Pascal VOC XML annotations, all returning boxes as xyxy absolute pixel coordinates with 0-based class indices."""

import json
import logging
import math
import re
import reprlib
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import PIL.Image

from cervix_hf.data.datasets import class_counts
from cervix_hf.data.layout import (
    IMAGE_READ_ERRORS,
    file_identity,
    found_inside,
    image_size,
    path_inside,
    read_csv_rows,
    read_text,
    visible_entries,
)
from cervix_hf.models.cell_detector.configuration_cell_detector import SIPAKMED_LABELS as SIPAKMED_CLASS_NAMES

logger = logging.getLogger(__name__)

SIPAKMED_LABELS = list(SIPAKMED_CLASS_NAMES)  # the detector's default labels, in the same order
ISBI2014_EDF_LABELS = ["nucleus"]
DETECTION_CSV_HEADER = ["filename", "xmin", "ymin", "xmax", "ymax", "label"]

_SIPAKMED_BOUNDARY_KINDS = {"cytoplasm": "cyt", "nucleus": "nuc"}
_SIPAKMED_LAYOUT = (
    "root/im_<Class>/NNN.bmp (or root/im_<Class>/im_<Class>/NNN.bmp) with one NNN_cytKK.dat and NNN_nucKK.dat per "
    f"cell, for the classes {', '.join(SIPAKMED_LABELS)}"
)
# NNN_cytKK.dat / NNN_nucKK.dat: the boundary of cell KK of cluster image NNN.bmp.
_SIPAKMED_BOUNDARY_FILE = re.compile(r"(?P<image>.+)_(?P<kind>cyt|nuc)(?P<cell>\d+)\.dat", re.IGNORECASE)

Box = tuple[float, float, float, float]
Size = tuple[float, float]  # (width, height) of an image
_Label = TypeVar("_Label")


@dataclass
class DetectionRecord:
    r"""
    One image and the objects in it.

    Args:
        image_path (`str`):
            Image file.
        boxes (`list[tuple[float, float, float, float]]`):
            One box per object, `(xmin, ymin, xmax, ymax)` in absolute pixel coordinates: the box covers the
            continuous area from its top-left to its bottom-right corner, so a box around pixel columns 3 to 5
            (inclusive) has `xmin=3.0, xmax=6.0`. Empty for an image with no objects.
        labels (`list[int]`):
            Class index of each box, 0-based, into `DetectionRecords.label_names` (there is no background class).
        image_id (`int`):
            Identifier of the image: the COCO image id for COCO files, the position in the reader's output otherwise.
    """

    image_path: str
    boxes: list[Box]
    labels: list[int]
    image_id: int

    def __post_init__(self):
        if len(self.boxes) != len(self.labels):
            raise ValueError(
                f"{self.image_path}: boxes and labels must have one entry per object, got {len(self.boxes)} boxes "
                f"and {len(self.labels)} labels."
            )


@dataclass
class DetectionRecords:
    r"""
    Detection annotations of a set of images, as read by one of the `read_*` functions of this module.

    Args:
        records (`list[DetectionRecord]`):
            One record per image, images without objects included.
        label_names (`list[str]`):
            Class names, in class-index order.
        warnings (`list[str]`, *optional*, defaults to `[]`):
            Problems the reader skipped (e.g. a malformed boundary file), one message each, naming the file.
    """

    records: list[DetectionRecord]
    label_names: list[str]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def select(self, indices: Sequence[int]) -> "DetectionRecords":
        """The records at `indices` (e.g. one split of [`stratified_split`]), in that order."""
        return DetectionRecords(
            records=[self.records[i] for i in indices],
            label_names=list(self.label_names),
            warnings=list(self.warnings),
        )

    def box_counts(self) -> dict[str, int]:
        """Number of boxes of each class, zero included, in the order of `label_names`."""
        return class_counts([label for record in self.records for label in record.labels], self.label_names)


def guess_detection_format(root: str | Path) -> str | None:
    """The layout of a data folder that needs no annotation file: `"isbi2014"` (`EDF*_GT.png` masks beside the
    images) or `"sipakmed"` (`im_*` class folders); `None` when it is neither (CSV, COCO and VOC name their file)."""
    root = Path(root)
    if any(root.glob("EDF*_GT.png")):
        return "isbi2014"
    if any(root.glob("im_*")):
        return "sipakmed"
    return None


def read_sipakmed(root: str | Path, box_from: str = "cytoplasm") -> DetectionRecords:
    r"""
    Reads the SIPaKMeD cluster images (Plissiti et al., ICIP 2018) as detection data: one box per cell, labelled with
    the class of its folder. Layout: `root/im_<Class>/NNN.bmp` (or `root/im_<Class>/im_<Class>/NNN.bmp`, as in a
    common mirror) with `NNN_cytKK.dat` and `NNN_nucKK.dat`, the cytoplasm and nucleus boundaries of cell KK as
    `x,y` points (comma or spaces, one point a line). The box of a cell spans its boundary points, clipped to the
    image. The single-cell crops of `CROPPED/` are ignored. Records are in class order, each class sorted by path.

    A cell whose boundary file has a line that is not two numbers, fewer than two points or a box of zero width or
    height after clipping is skipped and reported in `warnings`; so is a cluster image that cannot be opened and a
    missing class folder. Cluster images without cells are kept, with no boxes.

    Args:
        root (`str` or `Path`):
            Folder holding the `im_<Class>` folders.
        box_from (`str`, *optional*, defaults to `"cytoplasm"`):
            Boundary the boxes span: `"cytoplasm"` (whole cells) or `"nucleus"`.

    Raises:
        `ValueError`: when `box_from` is unknown or `root` holds none of the class folders.
    """
    if box_from not in _SIPAKMED_BOUNDARY_KINDS:
        raise ValueError(f"box_from must be one of {', '.join(_SIPAKMED_BOUNDARY_KINDS)}, got {box_from!r}.")
    root = Path(root)
    class_folders = {label: _sipakmed_class_folder(root, name) for label, name in enumerate(SIPAKMED_LABELS)}
    if not any(class_folders.values()):
        raise ValueError(f"No SIPaKMeD class folder found in {root}. Expected the layout {_SIPAKMED_LAYOUT}.")

    records, warnings = [], []
    for label, folder in class_folders.items():
        if folder is None:
            warnings.append(f"{root}: no folder im_{SIPAKMED_LABELS[label]}; that class has no images.")
            continue
        for image_path, boundary_files in _sipakmed_cluster_images(folder, _SIPAKMED_BOUNDARY_KINDS[box_from]):
            try:
                with PIL.Image.open(image_path) as image:
                    width, height = image.size
            except (OSError, SyntaxError) as error:
                warnings.append(f"{image_path}: cannot open the cluster image ({error}); image skipped.")
                continue
            boxes = [_sipakmed_cell_box(path, width, height, warnings) for path in boundary_files]
            boxes = [box for box in boxes if box is not None]
            records.append(DetectionRecord(str(image_path), boxes, [label] * len(boxes), image_id=len(records)))
    if warnings:
        logger.warning(f"{len(warnings)} problem(s) skipped while reading {root}, the first: {warnings[0]}")
    return DetectionRecords(records, list(SIPAKMED_LABELS), warnings)


def read_detection_csv(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    label_names: Sequence[str] | None = None,
    allow_outside_root: bool = False,
) -> DetectionRecords:
    r"""
    Reads boxes from a csv with the header `filename,xmin,ymin,xmax,ymax,label`, one box a row, in absolute pixel
    coordinates (`xmax` and `ymax` are the box's bottom-right corner, not its last pixel). A row whose four box fields
    and label are empty lists an image with no objects. Records follow the order in which images first appear.

    Boxes are clipped to their image when it exists (its size read from the file header), and boxes left with no
    area dropped, with one logged warning for the file that counts both (also in `warnings`).

    Args:
        csv_path (`str` or `Path`):
            The csv file (UTF-8, with or without a byte-order mark).
        image_root (`str` or `Path`, *optional*, defaults to the csv's folder):
            Folder the filenames are relative to.
        label_names (`Sequence[str]`, *optional*, defaults to the sorted labels of the csv):
            Class names, in class-index order.
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept filenames that are absolute or lead outside `image_root` (through `..` or a symbolic link); by
            default they are refused, so that a csv from elsewhere cannot make training read any file.

    Raises:
        `ValueError`, naming the file and line: a file that is not UTF-8 csv, a wrong header, a row with missing
        fields, an empty filename or a non-number, a box with `xmax <= xmin` or `ymax <= ymin`, a label not in
        `label_names`, a filename outside `image_root`, one image written two ways (e.g. `a.png` and `./a.png`), or an
        image that exists but cannot be read.
    """
    csv_path = Path(csv_path)
    image_root = csv_path.parent if image_root is None else Path(image_root)
    rows = read_csv_rows(csv_path)
    header_line, header = rows[0] if rows else (1, [])
    header = [name.strip() for name in header]
    if header != DETECTION_CSV_HEADER:
        raise ValueError(
            f"{csv_path}, line {header_line}: expected the header {','.join(DETECTION_CSV_HEADER)}, got "
            f"{reprlib.repr(','.join(header))}."
        )
    objects: dict[str, list[tuple[Box, str]]] = {}
    images: dict[str, tuple[Path, str]] = {}  # filename -> (path, where it first appears)
    first_listed: dict[Path, tuple[str, int]] = {}  # resolved image -> (filename as written, line)
    for line, row in rows[1:]:
        where = f"{csv_path}, line {line}"
        if not any(value.strip() for value in row):
            continue
        if len(row) != len(DETECTION_CSV_HEADER):
            raise ValueError(
                f"{where}: expected {len(DETECTION_CSV_HEADER)} fields, got {len(row)}: {reprlib.repr(row)}."
            )
        filename, *coordinates, label = [value.strip() for value in row]
        if not filename:
            raise ValueError(f"{where}: the filename is empty.")
        if filename not in images:
            path = path_inside(image_root, filename, where, allow_outside_root)
            key = file_identity(path)
            if key in first_listed:
                raise ValueError(
                    f"{where}: {filename!r} is the image listed as {first_listed[key][0]!r} on line "
                    f"{first_listed[key][1]}; write each image the same way on every line, or its boxes split into "
                    "two records."
                )
            first_listed[key] = (filename, line)
            images[filename] = (path, where)
        image_objects = objects.setdefault(filename, [])
        if not any(coordinates) and not label:
            continue
        if not label:
            raise ValueError(f"{where}: the box has no label.")
        _check_label(label, label_names, where)
        image_objects.append((_parse_box(coordinates, where), label))

    clipped = dropped = 0
    named_boxes = []
    for filename, (path, where) in images.items():
        image_objects, image_clipped, image_dropped = _clip_to_image(objects[filename], image_size(path, where))
        clipped, dropped = clipped + image_clipped, dropped + image_dropped
        named_boxes.append((str(path), image_objects))
    warnings = _clipping_warnings(csv_path, clipped, dropped)
    return _records_from_named_boxes(named_boxes, label_names, warnings)


def read_coco(
    json_path: str | Path,
    image_root: str | Path | None = None,
    allow_outside_root: bool = False,
) -> DetectionRecords:
    r"""
    Reads a COCO object-detection file (`images`, `annotations` with `bbox` `[x, y, width, height]`, `categories`).
    Categories become class indices in the order of their ids; `iscrowd` annotations are skipped; images without
    annotations are kept. Records follow the order of `images` and keep the COCO image ids.

    Boxes are clipped to their image, whose size is the image entry's `width` and `height` or, without them, read
    from the header of the image file when it exists; boxes left with no area are dropped, with one logged warning
    for the file that counts both (also in `warnings`).

    Args:
        json_path (`str` or `Path`):
            The COCO JSON file.
        image_root (`str` or `Path`, *optional*, defaults to the JSON file's folder):
            Folder the images' `file_name` are relative to.
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept `file_name` values that are absolute or lead outside `image_root` (through `..` or a symbolic
            link); by default they are refused, so that a JSON file from elsewhere cannot make training read any file.

    Raises:
        `ValueError`, naming the file and the entry (`images[i]`, `categories[i]`, the annotation id or
        `annotations[i]`): a file that is not UTF-8 JSON (or is nested too deeply), a missing section or one that is
        not a list, an entry that is not an object or lacks an integer `id`, a repeated image or category id, an image
        without a string `file_name` or with one outside `image_root`, a `width` or `height` that is not a number, an
        image that exists but cannot be read, or an annotation with a bbox that is not four numbers with positive
        width and height, an unknown image or an unknown category.
    """
    json_path = Path(json_path)
    image_root = json_path.parent if image_root is None else Path(image_root)
    text = read_text(json_path)
    try:
        coco = json.loads(text)
    except RecursionError:
        raise ValueError(f"{json_path}: the JSON is nested too deeply to be a COCO detection file.") from None
    except ValueError as error:  # JSONDecodeError, or an integer of more digits than Python converts
        raise ValueError(f"{json_path}: not valid JSON ({error}).") from error
    sections = ("images", "annotations", "categories")
    if not isinstance(coco, dict):
        raise ValueError(
            f"{json_path}: not a COCO detection file, expected an object with {', '.join(sections)}, got "
            f"{reprlib.repr(coco)}."
        )
    missing = [key for key in sections if key not in coco]
    if missing:
        raise ValueError(f"{json_path}: not a COCO detection file, it has no {', '.join(missing)}.")
    for key in sections:
        if not isinstance(coco[key], list):
            raise ValueError(f"{json_path}: {key} must be a list, got {reprlib.repr(coco[key])}.")

    categories = {}  # id -> (name, where)
    for index, category in enumerate(coco["categories"]):
        where = f"{json_path}, categories[{index}]"
        category_id = _coco_id(category, where, "id and name")
        if category_id in categories:
            raise ValueError(f"{where}: category id {category_id} is repeated, first at {categories[category_id][1]}.")
        if not isinstance(category.get("name"), str) or not category["name"]:
            raise ValueError(f"{where}: name must be a non-empty string, got {reprlib.repr(category.get('name'))}.")
        categories[category_id] = (category["name"], f"categories[{index}]")
    class_index = {category_id: index for index, category_id in enumerate(sorted(categories))}

    images = {}  # id -> (path, size, where, [(box, class index), ...])
    for index, image in enumerate(coco["images"]):
        where = f"{json_path}, images[{index}]"
        image_id = _coco_id(image, where, "id and file_name")
        where = f"{where} (id {image_id})"
        if image_id in images:
            raise ValueError(
                f"{where}: image id {image_id} is repeated, first at {images[image_id][2]}; give each image its own "
                "id, or the annotations of the two cannot be told apart."
            )
        if not isinstance(image.get("file_name"), str):
            raise ValueError(f"{where}: file_name must be a string, got {reprlib.repr(image.get('file_name'))}.")
        path = path_inside(image_root, image["file_name"], where, allow_outside_root)
        size = _declared_size(image.get("width"), image.get("height"), where) or image_size(path, where)
        images[image_id] = (path, size, where.removeprefix(f"{json_path}, "), [])

    for index, annotation in enumerate(coco["annotations"]):
        if not isinstance(annotation, dict):
            raise ValueError(
                f"{json_path}, annotations[{index}]: expected an object with image_id, category_id and bbox, got "
                f"{reprlib.repr(annotation)}."
            )
        if annotation.get("iscrowd", 0):
            continue
        entry = f"annotation {reprlib.repr(annotation['id'])}" if "id" in annotation else f"annotations[{index}]"
        where = f"{json_path}, {entry}"
        image_id, category_id = annotation.get("image_id"), annotation.get("category_id")
        if not _is_coco_id(image_id) or image_id not in images:
            raise ValueError(f"{where}: unknown image_id {reprlib.repr(image_id)}.")
        if not _is_coco_id(category_id) or category_id not in class_index:
            raise ValueError(f"{where}: unknown category_id {reprlib.repr(category_id)}.")
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where}: bbox must be [x, y, width, height], got {reprlib.repr(bbox)}.")
        images[image_id][3].append((_parse_box(bbox, where, last_is_size=True), class_index[category_id]))

    records, clipped, dropped = [], 0, 0
    for image_id, (path, size, _, image_objects) in images.items():
        image_objects, image_clipped, image_dropped = _clip_to_image(image_objects, size)
        clipped, dropped = clipped + image_clipped, dropped + image_dropped
        boxes, labels = [box for box, _ in image_objects], [label for _, label in image_objects]
        records.append(DetectionRecord(str(path), boxes, labels, image_id=image_id))
    label_names = [categories[category_id][0] for category_id in sorted(categories)]
    return DetectionRecords(records, label_names, _clipping_warnings(json_path, clipped, dropped))


def read_voc(
    xml_dir_or_files: str | Path | Sequence[str | Path],
    image_root: str | Path | None = None,
    label_names: Sequence[str] | None = None,
    allow_outside_root: bool = False,
) -> DetectionRecords:
    r"""
    Reads Pascal VOC XML annotations (`<filename>`, and per `<object>` its `<name>` and `<bndbox>` with `<xmin>`,
    `<ymin>`, `<xmax>`, `<ymax>`), one file per image. VOC counts pixels from 1 and its `xmax`/`ymax` are the last
    pixel inside the box, so a VOC box covers the pixel-corner area `(xmin - 1, ymin - 1, xmax, ymax)`, which is the
    box returned. Objects marked `<difficult>` are kept; files without objects give images with no boxes.

    Boxes are clipped to their image, whose size is the file's `<size>` (`<width>`, `<height>`) or, without it (or
    with a zero size, as some tools write), read from the header of the image file when it exists; boxes left with
    no area are dropped, with one logged warning per XML file that counts both (also in `warnings`).

    Args:
        xml_dir_or_files (`str`, `Path` or `Sequence`):
            A folder of `.xml` files (read in sorted order), or the XML files themselves.
        image_root (`str` or `Path`, *optional*, defaults to the folder of each XML file):
            Folder the `<filename>` are relative to (`<VOC>/JPEGImages` in the VOC devkit layout).
        label_names (`Sequence[str]`, *optional*, defaults to the sorted object names of all files):
            Class names, in class-index order.
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept `<filename>` values that are absolute or lead outside the image folder (through `..` or a symbolic
            link); by default they are refused, so that an XML file from elsewhere cannot make training read any
            file.

    Raises:
        `ValueError`: when the folder has no `.xml` file, and naming the file: a folder in place of the file,
        malformed XML (with the line) or an unknown encoding, no `<filename>` or one outside the image folder, a
        `<size>` that is not numbers, an image that exists but cannot be read, an object without a name or with a box
        that is missing, not numbers, or has `xmax < xmin` or `ymax < ymin`, or a name not in `label_names`.
    """
    if isinstance(xml_dir_or_files, (str, Path)) and Path(xml_dir_or_files).is_dir():
        xml_paths = sorted(Path(xml_dir_or_files).glob("*.xml"))
        if not xml_paths:
            raise ValueError(f"No .xml file in {xml_dir_or_files}: expected one Pascal VOC annotation per image.")
    elif isinstance(xml_dir_or_files, (str, Path)):
        xml_paths = [Path(xml_dir_or_files)]
    else:
        xml_paths = [Path(path) for path in xml_dir_or_files]

    images, warnings = [], []
    for path in xml_paths:
        folder = path.parent if image_root is None else Path(image_root)
        images.append(_read_voc_file(path, folder, label_names, allow_outside_root, warnings))
    return _records_from_named_boxes(images, label_names, warnings)


def read_isbi2014_edf(
    root: str | Path, names: Sequence[str] | None = None, allow_outside_root: bool = False
) -> DetectionRecords:
    r"""
    Reads the extended-depth-of-field images of the ISBI 2014 Overlapping Cervical Cytology challenge (`EDFnnn.png`
    with its nucleus ground truth `EDFnnn_GT.png`) as one-class ("nucleus") detection data.

    One box per 8-connected region of each non-zero ground-truth value, spanning that region's pixels (so
    `xmax = last column + 1`). Grey levels do not identify nuclei: in the public files the 8-bit outline masks
    (EDF000-EDF003) reuse each of their 8-9 levels for several nuclei and the 16-bit filled masks (EDF004-EDF011)
    draw every nucleus with one value; regions are split per value, so outlines of different levels that touch stay
    apart, while touching nuclei of the same value give one box (5 such pairs among the 448 boxes of the 12 files).

    Args:
        root (`str` or `Path`):
            Folder holding the `EDFnnn.png` and `EDFnnn_GT.png` files.
        names (`Sequence[str]`, *optional*, defaults to every image of `root`):
            Image names to read, in that order (e.g. `["EDF000", "EDF001"]`).
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept an image or ground truth that leads outside `root` through a symbolic link; by default it is
            refused, as the annotation readers refuse paths outside their root.

    Raises:
        `ValueError`: when `root` has no EDF image, `names` lists an image not in `root`, or, naming the file, an
        image or ground truth that cannot be read (empty, not a PNG, truncated, a folder), a ground truth that is
        missing, not single-channel or of another size than its image, or one whose symbolic link leads outside
        `root`.
    """
    root = Path(root)
    available = sorted(path.stem for path in root.glob("EDF*.png") if not path.stem.endswith("_GT"))
    if not available:
        raise ValueError(f"No ISBI 2014 EDF image found in {root}: expected EDFnnn.png with EDFnnn_GT.png.")
    names = available if names is None else list(names)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"Images {unknown} are not in {root}, which has {available}.")

    records = []
    for name in names:
        image_path, truth_path = root / f"{name}.png", root / f"{name}_GT.png"
        for path in (image_path, truth_path):
            found_inside(root, path, allow_outside_root)
        if truth_path.is_dir():
            raise ValueError(f"{truth_path} is a folder, expected the ground truth of {image_path.name}.")
        if not truth_path.is_file():
            raise ValueError(f"{image_path} has no ground truth: {truth_path} is missing.")
        size = image_size(image_path, f"{root}, image {name}")
        try:
            with PIL.Image.open(truth_path) as mask:
                mask.load()  # decodes here, so that a truncated file fails inside this block
                truth = np.asarray(mask)
        except IMAGE_READ_ERRORS as error:
            raise ValueError(
                f"{truth_path}: cannot read the ground truth of {image_path.name} ({error}); expected a PNG mask."
            ) from error
        if truth.ndim != 2:
            raise ValueError(f"{truth_path}: expected a single-channel mask, got an array of shape {truth.shape}.")
        if size is not None and truth.shape[::-1] != size:
            raise ValueError(
                f"{truth_path}: the ground truth is {truth.shape[1]}x{truth.shape[0]} pixels, its image "
                f"{image_path.name} is {size[0]}x{size[1]}; the boxes would not match the image."
            )
        boxes = [box for value in np.unique(truth[truth > 0]) for box in _region_boxes(truth == value)]
        records.append(DetectionRecord(str(image_path), boxes, [0] * len(boxes), image_id=len(records)))
    return DetectionRecords(records, list(ISBI2014_EDF_LABELS))


def _sipakmed_class_folder(root: Path, name: str) -> Path | None:
    folder = root / f"im_{name}"
    nested = folder / f"im_{name}"
    return nested if nested.is_dir() else folder if folder.is_dir() else None


def _sipakmed_cluster_images(folder: Path, kind: str) -> list[tuple[Path, list[Path]]]:
    """The cluster images of a class folder, sorted, each with its cells' `kind` boundary files in cell order."""
    images, cells = [], {}
    for path in visible_entries(folder):
        match = _SIPAKMED_BOUNDARY_FILE.fullmatch(path.name)
        if path.is_file() and path.suffix.lower() == ".bmp":
            images.append(path)
        elif match and match["kind"].lower() == kind:
            if not path.is_file():
                raise ValueError(
                    f"{path} is a folder, expected the {match['kind']} boundary of cell {match['cell']} of "
                    f"{match['image']}.bmp; move it out of {folder}."
                )
            cells.setdefault(match["image"], []).append((int(match["cell"]), path))
    return [(image, [path for _, path in sorted(cells.get(image.stem, []))]) for image in sorted(images)]


def _sipakmed_cell_box(path: Path, width: int, height: int, warnings: list[str]) -> Box | None:
    """The box of one SIPaKMeD boundary file clipped to the image, or None (with a warning) for a bad cell."""
    points = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        point = _parse_point(line)
        if point is None:
            warnings.append(
                f"{path}, line {line_number}: expected two numbers 'x,y', got {line.strip()!r}; cell skipped."
            )
            return None
        points.append(point)
    if len(points) < 2:
        warnings.append(f"{path}: {len(points)} boundary point(s), at least 2 are needed; cell skipped.")
        return None
    xs, ys = np.clip([x for x, _ in points], 0, width), np.clip([y for _, y in points], 0, height)
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    if box[2] <= box[0] or box[3] <= box[1]:
        warnings.append(f"{path}: the boundary spans no area inside the {width}x{height} image {box}; cell skipped.")
        return None
    return box


def _parse_point(line: str) -> tuple[float, float] | None:
    values = [value for value in re.split(r"[,\s]+", line.strip()) if value]
    try:
        point = tuple(float(value) for value in values)
    except ValueError:
        return None
    return point if len(point) == 2 and all(math.isfinite(value) for value in point) else None


def _parse_box(values: Sequence, where: str, last_is_size: bool = False) -> Box:
    """`xyxy` (or `xywh` with `last_is_size`) values as an xyxy box of floats with positive width and height."""
    try:
        x, y, third, fourth = (float(value) for value in values)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: box coordinates must be four numbers, got {reprlib.repr(list(values))}.") from None
    box = (x, y, x + third, y + fourth) if last_is_size else (x, y, third, fourth)
    if not all(math.isfinite(value) for value in box):
        raise ValueError(f"{where}: box coordinates must be finite, got {list(values)}.")
    if box[2] <= box[0] or box[3] <= box[1]:
        expected = "width and height must be positive" if last_is_size else "need xmax > xmin and ymax > ymin"
        raise ValueError(f"{where}: empty box {list(values)}: {expected}.")
    return box


def _read_voc_file(
    xml_path: Path,
    image_root: Path,
    label_names: Sequence[str] | None,
    allow_outside_root: bool,
    warnings: list[str],
) -> tuple[str, list[tuple[Box, str]]]:
    """The image and named boxes of one VOC file, clipped to the image; a clipping warning is added to `warnings`."""
    if xml_path.is_dir():
        raise ValueError(f"{xml_path} is a folder, expected a Pascal VOC .xml file.")
    try:
        annotation = ElementTree.parse(xml_path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{xml_path}, line {error.position[0]}: malformed XML ({error}).") from error
    except LookupError as error:
        raise ValueError(f"{xml_path}: the XML declares an encoding Python does not know ({error}).") from error
    filename = (annotation.findtext("filename") or "").strip()
    if not filename:
        raise ValueError(f"{xml_path}: no <filename>, the image the annotation is for.")
    where = f"{xml_path}, <filename>"
    image_path = path_inside(image_root, filename, where, allow_outside_root)
    size = _declared_size(annotation.findtext("size/width"), annotation.findtext("size/height"), f"{xml_path}, <size>")
    image_objects = []
    for number, element in enumerate(annotation.iter("object"), 1):
        where = f"{xml_path}, object {number}"
        name = (element.findtext("name") or "").strip()
        if not name:
            raise ValueError(f"{where}: no <name>.")
        _check_label(name, label_names, where)
        coordinates = [element.findtext(f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")]
        if None in coordinates:
            raise ValueError(f"{where} ({name}): <bndbox> must hold <xmin>, <ymin>, <xmax> and <ymax>.")
        try:
            xmin, ymin, xmax, ymax = (float(value) for value in coordinates)
        except ValueError:
            raise ValueError(
                f"{where} ({name}): box coordinates must be numbers, got {reprlib.repr(coordinates)}."
            ) from None
        # VOC's xmax/ymax are the last pixel inside the box, 1-based: the box ends at that pixel's far edge.
        image_objects.append((_parse_box([xmin - 1, ymin - 1, xmax, ymax], f"{where} ({name})"), name))
    image_objects, clipped, dropped = _clip_to_image(image_objects, size or image_size(image_path, where))
    warnings.extend(_clipping_warnings(xml_path, clipped, dropped))
    return str(image_path), image_objects


def _clip_to_image(objects: list[tuple[Box, _Label]], size: Size | None) -> tuple[list[tuple[Box, _Label]], int, int]:
    """`(box, label)` pairs with the boxes clipped to a `(width, height)` image and those left without area dropped,
    with the numbers of boxes clipped and dropped; unchanged when the size is unknown (None)."""
    if size is None:
        return objects, 0, 0
    width, height = float(size[0]), float(size[1])
    kept, clipped, dropped = [], 0, 0
    for box, label in objects:
        xmin, ymin, xmax, ymax = box
        inside = (
            min(max(xmin, 0.0), width),
            min(max(ymin, 0.0), height),
            min(max(xmax, 0.0), width),
            min(max(ymax, 0.0), height),
        )
        if inside != box:
            clipped += 1
        if inside[2] <= inside[0] or inside[3] <= inside[1]:
            dropped += 1
        else:
            kept.append((inside, label))
    return kept, clipped, dropped


def _clipping_warnings(source: Path, clipped: int, dropped: int) -> list[str]:
    """The one warning for an annotation file whose boxes were clipped (logged too), or none."""
    if not clipped:
        return []
    message = f"clipped {clipped} box(es) to the image in {source}"
    if dropped:
        message += f", dropping {dropped} left with no area inside it"
    logger.warning(f"{message}.")
    return [f"{message}."]


def _declared_size(width, height, where: str) -> Size | None:
    """The image size an annotation declares, None when it declares none or a zero size (as some tools write)."""
    if width is None or height is None:
        return None
    try:
        size = float(width), float(height)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: width and height must be numbers, got {reprlib.repr(width)} and {reprlib.repr(height)}."
        ) from None
    if not all(math.isfinite(value) and value > 0 for value in size):
        return None
    return size


def _coco_id(entry, where: str, expected: str) -> int:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with {expected}, got {reprlib.repr(entry)}.")
    if not _is_coco_id(entry.get("id")):
        raise ValueError(f"{where}: id must be an integer, got {reprlib.repr(entry.get('id'))}.")
    return entry["id"]


def _is_coco_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _region_boxes(mask: np.ndarray) -> list[Box]:
    """The box of each 8-connected region of a boolean mask, covering its pixels."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [
        (float(x), float(y), float(x + width), float(y + height)) for x, y, width, height in stats[1:count, :4].tolist()
    ]


def _check_label(label: str, label_names: Sequence[str] | None, where: str) -> None:
    if label_names is not None and label not in label_names:
        raise ValueError(f"{where}: label {label!r} is not in label_names {list(label_names)}.")


def _records_from_named_boxes(
    images: list[tuple[str, list[tuple[Box, str]]]], label_names: Sequence[str] | None, warnings: list[str]
) -> DetectionRecords:
    """Records of `(image path, [(box, class name), ...])`, with the sorted class names when `label_names` is None."""
    if label_names is None:
        label_names = sorted({name for _, image_objects in images for _, name in image_objects})
    class_index = {name: index for index, name in enumerate(label_names)}
    records = [
        DetectionRecord(path, [box for box, _ in objects], [class_index[name] for _, name in objects], image_id)
        for image_id, (path, objects) in enumerate(images)
    ]
    return DetectionRecords(records, list(label_names), warnings)


# The annotation layouts `read_detection_data` reads (`auto`: told from the folder, `guess_detection_format`).
DETECTION_FORMATS = ("auto", "sipakmed", "isbi2014", "csv", "coco", "voc")


def read_detection_data(
    data: str | Path,
    data_format: str = "auto",
    annotations: str | Path | None = None,
    box_from: str = "cytoplasm",
    allow_outside_root: bool = False,
) -> tuple["DetectionRecords", str]:
    r"""
    A labelled detection data set in any of its layouts, and the format it was read in (`auto` resolved): what
    training and `cervix-hf evaluate` both read.

    Args:
        data (`str` or `Path`): the data set's folder (the image root for `csv`, `coco`, `voc`).
        data_format (`str`): one of `DETECTION_FORMATS`.
        annotations (`str` or `Path`, *optional*): the annotation file or folder of `csv`, `coco` and `voc`.
        box_from (`str`): SIPaKMeD boxes from the `cytoplasm` or the `nucleus` masks.
        allow_outside_root (`bool`): accept annotation paths and links that lead outside `data`.

    Raises:
        `ValueError`: naming the argument, when the format cannot be told or needs `annotations`.
    """
    if data_format == "auto":
        data_format = guess_detection_format(data)
        if data_format is None:
            raise ValueError(
                f"--data {data}: cannot tell the format; pass --format (one of {', '.join(DETECTION_FORMATS[1:])})."
            )
    if data_format in ("csv", "coco", "voc") and annotations is None:
        raise ValueError(f"--format {data_format} needs --annotations (the annotation file or folder).")
    where = {"image_root": data, "allow_outside_root": allow_outside_root}
    readers = {
        "sipakmed": lambda: read_sipakmed(data, box_from=box_from),
        "isbi2014": lambda: read_isbi2014_edf(data, allow_outside_root=allow_outside_root),
        "csv": lambda: read_detection_csv(annotations, **where),
        "coco": lambda: read_coco(annotations, **where),
        "voc": lambda: read_voc(annotations, **where),
    }
    if data_format not in readers:
        raise ValueError(f"--format {data_format}: choose one of {', '.join(DETECTION_FORMATS)}.")
    return readers[data_format](), data_format
