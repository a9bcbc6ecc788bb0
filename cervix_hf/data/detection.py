"""Readers for cell-detection data: SIPaKMeD cluster images, the ISBI 2014 EDF set, and generic CSV, COCO JSON and
Pascal VOC XML annotations, all returning boxes as xyxy absolute pixel coordinates with 0-based class indices."""

import csv
import json
import logging
import math
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import PIL.Image

from ..models.cell_detector.configuration_cell_detector import SIPAKMED_LABELS as SIPAKMED_CLASS_NAMES
from .datasets import class_counts
from .intel_mobileodt import _visible_entries

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


def read_sipakmed(root: Union[str, Path], box_from: str = "cytoplasm") -> DetectionRecords:
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
    csv_path: Union[str, Path],
    image_root: Optional[Union[str, Path]] = None,
    label_names: Optional[Sequence[str]] = None,
) -> DetectionRecords:
    r"""
    Reads boxes from a csv with the header `filename,xmin,ymin,xmax,ymax,label`, one box a row, in absolute pixel
    coordinates (`xmax` and `ymax` are the box's bottom-right corner, not its last pixel). A row whose four box fields
    and label are empty lists an image with no objects. Records follow the order in which images first appear.

    Args:
        csv_path (`str` or `Path`):
            The csv file (UTF-8, with or without a byte-order mark).
        image_root (`str` or `Path`, *optional*, defaults to the csv's folder):
            Folder the filenames are relative to.
        label_names (`Sequence[str]`, *optional*, defaults to the sorted labels of the csv):
            Class names, in class-index order.

    Raises:
        `ValueError`, naming the file and line: a wrong header, a row with missing fields, an empty filename or a
        non-number, a box with `xmax <= xmin` or `ymax <= ymin`, or a label not in `label_names`.
    """
    csv_path = Path(csv_path)
    image_root = csv_path.parent if image_root is None else Path(image_root)
    with csv_path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader, [])]
        if header != DETECTION_CSV_HEADER:
            raise ValueError(
                f"{csv_path}, line 1: expected the header {','.join(DETECTION_CSV_HEADER)}, got {','.join(header)!r}."
            )
        objects: dict[str, list[tuple[Box, str]]] = {}
        for row in reader:
            where = f"{csv_path}, line {reader.line_num}"
            if not any(value.strip() for value in row):
                continue
            if len(row) != len(DETECTION_CSV_HEADER):
                raise ValueError(f"{where}: expected {len(DETECTION_CSV_HEADER)} fields, got {len(row)}: {row}.")
            filename, *coordinates, label = [value.strip() for value in row]
            if not filename:
                raise ValueError(f"{where}: the filename is empty.")
            image_objects = objects.setdefault(filename, [])
            if not any(coordinates) and not label:
                continue
            if not label:
                raise ValueError(f"{where}: the box has no label.")
            _check_label(label, label_names, where)
            image_objects.append((_parse_box(coordinates, where), label))
    return _records_from_named_boxes(
        [(str(image_root / filename), image_objects) for filename, image_objects in objects.items()], label_names
    )


def read_coco(json_path: Union[str, Path], image_root: Optional[Union[str, Path]] = None) -> DetectionRecords:
    r"""
    Reads a COCO object-detection file (`images`, `annotations` with `bbox` `[x, y, width, height]`, `categories`).
    Categories become class indices in the order of their ids; `iscrowd` annotations are skipped; images without
    annotations are kept. Records follow the order of `images` and keep the COCO image ids.

    Args:
        json_path (`str` or `Path`):
            The COCO JSON file.
        image_root (`str` or `Path`, *optional*, defaults to the JSON file's folder):
            Folder the images' `file_name` are relative to.

    Raises:
        `ValueError`, naming the file (and the annotation id): invalid JSON, a missing section, or an annotation with a
        bbox that is not four numbers with positive width and height, an unknown image or an unknown category.
    """
    json_path = Path(json_path)
    image_root = json_path.parent if image_root is None else Path(image_root)
    try:
        coco = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path}: not valid JSON ({error}).") from error
    missing = [key for key in ("images", "annotations", "categories") if key not in coco]
    if missing:
        raise ValueError(f"{json_path}: not a COCO detection file, it has no {', '.join(missing)}.")

    categories = sorted(coco["categories"], key=lambda category: category["id"])
    class_index = {category["id"]: index for index, category in enumerate(categories)}
    records = {
        image["id"]: DetectionRecord(str(image_root / image["file_name"]), [], [], image_id=image["id"])
        for image in coco["images"]
    }
    for annotation in coco["annotations"]:
        if annotation.get("iscrowd", 0):
            continue
        where = f"{json_path}, annotation {annotation.get('id')}"
        if annotation.get("image_id") not in records:
            raise ValueError(f"{where}: unknown image_id {annotation.get('image_id')!r}.")
        if annotation.get("category_id") not in class_index:
            raise ValueError(f"{where}: unknown category_id {annotation.get('category_id')!r}.")
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where}: bbox must be [x, y, width, height], got {bbox!r}.")
        record = records[annotation["image_id"]]
        record.boxes.append(_parse_box(bbox, where, last_is_size=True))
        record.labels.append(class_index[annotation["category_id"]])
    return DetectionRecords(list(records.values()), [category["name"] for category in categories])


def read_voc(
    xml_dir_or_files: Union[str, Path, Sequence[Union[str, Path]]],
    image_root: Optional[Union[str, Path]] = None,
    label_names: Optional[Sequence[str]] = None,
) -> DetectionRecords:
    r"""
    Reads Pascal VOC XML annotations (`<filename>`, and per `<object>` its `<name>` and `<bndbox>` with `<xmin>`,
    `<ymin>`, `<xmax>`, `<ymax>`), one file per image. VOC counts pixels from 1 and its `xmax`/`ymax` are the last
    pixel inside the box, so a VOC box covers the pixel-corner area `(xmin - 1, ymin - 1, xmax, ymax)`, which is the
    box returned. Objects marked `<difficult>` are kept; files without objects give images with no boxes.

    Args:
        xml_dir_or_files (`str`, `Path` or `Sequence`):
            A folder of `.xml` files (read in sorted order), or the XML files themselves.
        image_root (`str` or `Path`, *optional*, defaults to the folder of each XML file):
            Folder the `<filename>` are relative to (`<VOC>/JPEGImages` in the VOC devkit layout).
        label_names (`Sequence[str]`, *optional*, defaults to the sorted object names of all files):
            Class names, in class-index order.

    Raises:
        `ValueError`: when the folder has no `.xml` file, and naming the file: malformed XML (with the line), no
        `<filename>`, an object without a name or with a box that is missing, not numbers, or has `xmax < xmin` or
        `ymax < ymin`, or a name not in `label_names`.
    """
    if isinstance(xml_dir_or_files, (str, Path)) and Path(xml_dir_or_files).is_dir():
        xml_paths = sorted(Path(xml_dir_or_files).glob("*.xml"))
        if not xml_paths:
            raise ValueError(f"No .xml file in {xml_dir_or_files}: expected one Pascal VOC annotation per image.")
    elif isinstance(xml_dir_or_files, (str, Path)):
        xml_paths = [Path(xml_dir_or_files)]
    else:
        xml_paths = [Path(path) for path in xml_dir_or_files]

    images = [
        _read_voc_file(path, path.parent if image_root is None else Path(image_root), label_names) for path in xml_paths
    ]
    return _records_from_named_boxes(images, label_names)


def read_isbi2014_edf(root: Union[str, Path], names: Optional[Sequence[str]] = None) -> DetectionRecords:
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

    Raises:
        `ValueError`: when `root` has no EDF image, `names` lists an image not in `root`, or an image has no ground
        truth or a ground truth that is not single-channel.
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
        truth_path = root / f"{name}_GT.png"
        if not truth_path.is_file():
            raise ValueError(f"{root / name}.png has no ground truth: {truth_path} is missing.")
        with PIL.Image.open(truth_path) as mask:
            truth = np.asarray(mask)
        if truth.ndim != 2:
            raise ValueError(f"{truth_path}: expected a single-channel mask, got an array of shape {truth.shape}.")
        boxes = [box for value in np.unique(truth[truth > 0]) for box in _region_boxes(truth == value)]
        records.append(DetectionRecord(str(root / f"{name}.png"), boxes, [0] * len(boxes), image_id=len(records)))
    return DetectionRecords(records, list(ISBI2014_EDF_LABELS))


def _sipakmed_class_folder(root: Path, name: str) -> Optional[Path]:
    folder = root / f"im_{name}"
    nested = folder / f"im_{name}"
    return nested if nested.is_dir() else folder if folder.is_dir() else None


def _sipakmed_cluster_images(folder: Path, kind: str) -> list[tuple[Path, list[Path]]]:
    """The cluster images of a class folder, sorted, each with its cells' `kind` boundary files in cell order."""
    images, cells = [], {}
    for path in _visible_entries(folder):
        match = _SIPAKMED_BOUNDARY_FILE.fullmatch(path.name)
        if path.is_file() and path.suffix.lower() == ".bmp":
            images.append(path)
        elif match and match["kind"].lower() == kind:
            cells.setdefault(match["image"], []).append((int(match["cell"]), path))
    return [(image, [path for _, path in sorted(cells.get(image.stem, []))]) for image in sorted(images)]


def _sipakmed_cell_box(path: Path, width: int, height: int, warnings: list[str]) -> Optional[Box]:
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


def _parse_point(line: str) -> Optional[tuple[float, float]]:
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
        raise ValueError(f"{where}: box coordinates must be four numbers, got {list(values)}.") from None
    box = (x, y, x + third, y + fourth) if last_is_size else (x, y, third, fourth)
    if not all(math.isfinite(value) for value in box):
        raise ValueError(f"{where}: box coordinates must be finite, got {list(values)}.")
    if box[2] <= box[0] or box[3] <= box[1]:
        expected = "width and height must be positive" if last_is_size else "need xmax > xmin and ymax > ymin"
        raise ValueError(f"{where}: empty box {list(values)}: {expected}.")
    return box


def _read_voc_file(
    xml_path: Path, image_root: Path, label_names: Optional[Sequence[str]]
) -> tuple[str, list[tuple[Box, str]]]:
    try:
        annotation = ElementTree.parse(xml_path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{xml_path}, line {error.position[0]}: malformed XML ({error}).") from error
    filename = (annotation.findtext("filename") or "").strip()
    if not filename:
        raise ValueError(f"{xml_path}: no <filename>, the image the annotation is for.")
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
            raise ValueError(f"{where} ({name}): box coordinates must be numbers, got {coordinates}.") from None
        # VOC's xmax/ymax are the last pixel inside the box, 1-based: the box ends at that pixel's far edge.
        image_objects.append((_parse_box([xmin - 1, ymin - 1, xmax, ymax], f"{where} ({name})"), name))
    return str(image_root / filename), image_objects


def _region_boxes(mask: np.ndarray) -> list[Box]:
    """The box of each 8-connected region of a boolean mask, covering its pixels."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [
        (float(x), float(y), float(x + width), float(y + height))
        for x, y, width, height in stats[1:count, :4].tolist()
    ]


def _check_label(label: str, label_names: Optional[Sequence[str]], where: str) -> None:
    if label_names is not None and label not in label_names:
        raise ValueError(f"{where}: label {label!r} is not in label_names {list(label_names)}.")


def _records_from_named_boxes(
    images: list[tuple[str, list[tuple[Box, str]]]], label_names: Optional[Sequence[str]]
) -> DetectionRecords:
    """Records of `(image path, [(box, class name), ...])`, with the sorted class names when `label_names` is None."""
    if label_names is None:
        label_names = sorted({name for _, image_objects in images for _, name in image_objects})
    class_index = {name: index for index, name in enumerate(label_names)}
    records = [
        DetectionRecord(path, [box for box, _ in objects], [class_index[name] for _, name in objects], image_id)
        for image_id, (path, objects) in enumerate(images)
    ]
    return DetectionRecords(records, list(label_names))
