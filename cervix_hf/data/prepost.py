"""Pairs of cervix images taken before and after a stain (pre: normal saline; post: acetic acid or Lugol's iodine),
labelled Negative/Positive, for the pre/post fusion model: readers (a generic csv and the IARC Atlas of Colposcopy),
a case-level split, a PyTorch dataset and augmentation that keeps each pair aligned. The atlas is also read as a
cervix-type data set (one photo per case, its transformation-zone type) for ColpoNet: `read_iarc_atlas_types`."""

import csv
import logging
import re
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from cervix_hf.data.intel_mobileodt import INTEL_MOBILEODT_LABELS, ImageFolderRecords
from cervix_hf.data.layout import file_identity, found_inside, path_inside, read_csv_rows
from cervix_hf.data.splits import stratified_split
from cervix_hf.io.images import ImageLoadError, load_image
from cervix_hf.models.prepost_fusion.configuration_prepost_fusion import PREPOST_LABELS

logger = logging.getLogger(__name__)

PAIR_CSV_COLUMNS = ("pre", "post", "label")

# Atlas views, matched by glob pattern: the Lugol file names hold a stray non-ASCII character where the apostrophe
# was ("Lugol\x92s", "Lugols" or "Lugol's" depending on how the archive was extracted), so never match it exactly.
# The patterns exclude the green-filter, magnified and other variants of a step ("..._with_green_filter.jpg").
IARC_PRE_VIEW = ("normal saline", "*_After_normal_saline.jpg")
IARC_POST_VIEWS = {
    "acetic": ("acetic acid", "*_After_acetic_acid.jpg"),
    "lugol": ("Lugol's iodine", "*_After_Lugol*_iodine.jpg"),
}
_IARC_GRADE_FOLDERS = {"images_low_grade": 0, "images_high_grade": 1}
_IARC_CASES_CSV = "colposcopy_cases_*_grade.csv"
_IARC_LAYOUT = (
    "root/images_low_grade/case_<ID>/ and root/images_high_grade/case_<ID>/ holding N_After_normal_saline.jpg, "
    "N_After_acetic_acid.jpg and N_After_Lugol's_iodine.jpg views, beside colposcopy_cases_{low,high}_grade.csv"
)
# The worst lesion named decides, so the high-grade terms are looked for first.
_HIGH_GRADE_HISTOLOGY = re.compile(r"HSIL|CIN\s*[23]|invasive|carcinoma|cancer", re.IGNORECASE)
_LOW_GRADE_HISTOLOGY = re.compile(r"LSIL|CIN\s*1", re.IGNORECASE)
_VIEW_NUMBER = re.compile(r"(\d+)_")
# "Type 2 transformation zone; ..." in an atlas case's provisional diagnosis.
_TRANSFORMATION_ZONE_TYPE = re.compile(r"\bType\s*([123])\s+transformation\s+zone", re.IGNORECASE)
_CSV_LABELS = {"0": 0, "1": 1, "negative": 0, "positive": 1}


@dataclass
class PairRecord:
    r"""
    One pre-stain / post-stain pair of images of the same cervix.

    Args:
        pre_path (`str`):
            Image before the stain (after normal saline).
        post_path (`str`):
            Image after the stain (acetic acid or Lugol's iodine).
        label (`int`):
            0 (Negative) or 1 (Positive).
        case_id (`str`):
            The patient or examination the pair comes from; pairs of one case never go to different splits.
    """

    pre_path: str
    post_path: str
    label: int
    case_id: str


@dataclass
class PairRecords:
    r"""
    Labelled image pairs, as read by [`read_pairs_csv`] or [`read_iarc_atlas`].

    Args:
        records (`list[PairRecord]`):
            One record per pair.
        label_names (`list[str]`, *optional*, defaults to `["Negative", "Positive"]`):
            Class names, in class-index order.
        skipped (`dict[str, int]`, *optional*, defaults to `{}`):
            Number of cases the reader skipped, per reason (e.g. `"no normal saline view"`).
        skipped_cases (`list[tuple[str, str]]`, *optional*, defaults to `[]`):
            `(case_id, reason)` of each skipped case.
    """

    records: list[PairRecord]
    label_names: list[str] = field(default_factory=lambda: list(PREPOST_LABELS))
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_cases: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> list[int]:
        return [record.label for record in self.records]

    @property
    def case_ids(self) -> list[str]:
        return [record.case_id for record in self.records]

    def select(self, indices: Sequence[int]) -> "PairRecords":
        """The records at `indices` (e.g. one split of [`case_level_split`]), in that order; what the reader skipped
        is kept."""
        return PairRecords(
            records=[self.records[i] for i in indices],
            label_names=list(self.label_names),
            skipped=dict(self.skipped),
            skipped_cases=list(self.skipped_cases),
        )


def read_pairs_csv(
    csv_path: str | Path, image_root: str | Path | None = None, allow_outside_root: bool = False
) -> PairRecords:
    r"""
    Reads image pairs from a csv with a header holding the columns `pre`, `post` and `label`, and optionally
    `case_id` (other columns are ignored), one pair a row. A label is `0`/`1` or `Negative`/`Positive` (any case).
    A row without a `case_id` is its own case, named by its `pre` path as written. Blank lines are skipped.

    Args:
        csv_path (`str` or `Path`):
            The csv file (UTF-8, with or without a byte-order mark).
        image_root (`str` or `Path`, *optional*, defaults to the csv's folder):
            Folder the relative image paths are relative to.
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept image paths that are absolute or lead outside `image_root` (through `..` or a symbolic link); by
            default they are refused, so that a csv from elsewhere cannot make training read any file.

    Raises:
        `ValueError`, naming the csv file and line: a file that is not UTF-8 csv, a missing column, a row with too
        many or too few fields, an empty or unknown label, an empty image path, one outside `image_root` or an image
        file that does not exist, or a pair listed twice (which could put one pair in two splits); also when no row
        lists a pair.
    """
    csv_path = Path(csv_path)
    image_root = csv_path.parent if image_root is None else Path(image_root)
    rows = read_csv_rows(csv_path)
    header_line, header = rows[0] if rows else (1, [])
    columns = [name.strip() for name in header]
    missing = [column for column in PAIR_CSV_COLUMNS if column not in columns]
    if missing:
        raise ValueError(
            f"{csv_path}, line {header_line}: missing column(s) {', '.join(missing)}. Expected a header with "
            f"pre,post,label (and optionally case_id), got {reprlib.repr(','.join(columns))}."
        )
    records, pair_lines = [], {}
    for line, row in rows[1:]:
        where = f"{csv_path}, line {line}"
        if len(row) != len(columns):
            raise ValueError(
                f"{where}: expected {len(columns)} fields ({','.join(columns)}), got {len(row)}: {reprlib.repr(row)}."
            )
        values = {column: value.strip() for column, value in zip(columns, row)}
        pre_path, post_path = (
            _existing_image(image_root, values[view], view, where, allow_outside_root) for view in ("pre", "post")
        )
        label = _CSV_LABELS.get(values["label"].lower())
        if label is None:
            raise ValueError(f"{where}: label {reprlib.repr(values['label'])} is not 0, 1, Negative or Positive.")
        pair = (file_identity(Path(pre_path)), file_identity(Path(post_path)))
        if pair in pair_lines:
            raise ValueError(
                f"{where}: the pair {values['pre']!r}, {values['post']!r} is already listed on line "
                f"{pair_lines[pair]}; list each pair once."
            )
        pair_lines[pair] = line
        records.append(PairRecord(pre_path, post_path, label, values.get("case_id") or values["pre"]))
    if not records:
        raise ValueError(f"{csv_path} lists no pairs: add one row per pair under the header pre,post,label.")
    return PairRecords(records)


def read_iarc_atlas(root: str | Path, post: str = "acetic", allow_outside_root: bool = False) -> PairRecords:
    r"""
    Reads the IARC Atlas of Colposcopy (IARC Screening Group) as one pair per case: `root/images_low_grade/case_<ID>/`
    and `root/images_high_grade/case_<ID>/` hold numbered views `N_<step>.jpg`, and
    `root/colposcopy_cases_{low,high}_grade.csv` the cases' diagnoses. Records are the low-grade cases, then the
    high-grade ones, each sorted by case id (the `<ID>` of the folder).

    Views: pre is `N_After_normal_saline.jpg`; post is `N_After_acetic_acid.jpg` (`post="acetic"`) or
    `N_After_Lugol?s_iodine.jpg` (`post="lugol"`, matched as `*_After_Lugol*_iodine.jpg` because `?` is a stray
    non-ASCII character). Green-filter, magnified and other variants of a step are not used: their optics differ
    from the plain white-light views. A case with several views of a step (e.g. `3_After_acetic_acid.jpg` and
    `4_After_acetic_acid.jpg`) uses the lowest-numbered one, the first taken. A case lacking a view is skipped with
    the reason of the first view missing, pre first (`"no normal saline view"`, `"no acetic acid view"`,
    `"no Lugol's iodine view"`).

    Labels: Positive (1) is CIN2 or worse, Negative (0) is LSIL-CIN1 (the atlas has no normal cases). The label is
    the case's histopathology diagnosis (csv column `histopathology_diagnosis`), the reference standard: Positive
    when it names HSIL, CIN2, CIN3, invasive cancer or carcinoma, else Negative when it names LSIL or CIN1. It is
    checked against the folder: a case whose histopathology contradicts its folder is skipped (reason
    `"histopathology disagrees with folder"`); a case whose histopathology is absent from the csv files or
    unrecognised takes the folder's grade, with a logged warning. (In the atlas sample all 52 cases have a
    recognised histopathology that agrees with the folder; the colposcopist's provisional diagnosis, which
    disagrees for some cases, is not a label.)

    Args:
        root (`str` or `Path`):
            Folder holding `images_low_grade/`, `images_high_grade/` and the csv files.
        post (`str`, *optional*, defaults to `"acetic"`):
            Post-stain view: `"acetic"` (acetic acid) or `"lugol"` (Lugol's iodine).
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept views (and csv files) that lead outside `root` through a symbolic link, of the file or of its case
            folder; by default they are refused, as the annotation readers refuse paths outside their root.

    Raises:
        `ValueError`: when `post` is unknown, a csv lacks the `case_id` or `histopathology_diagnosis` column, or
        `root` holds no case folder; naming it, a view or csv whose symbolic link leads outside `root`.
    """
    if post not in IARC_POST_VIEWS:
        raise ValueError(f"post must be one of {', '.join(IARC_POST_VIEWS)}, got {post!r}.")
    root = Path(root)
    case_folders = _iarc_case_folders(root)
    histopathology = _read_iarc_case_column(root, "histopathology_diagnosis", allow_outside_root)

    records = PairRecords(records=[])
    labelled_by_folder = []
    for folder, folder_grade in case_folders:
        case_id = folder.name.removeprefix("case_")
        views = {name: first_view(folder, pattern) for name, pattern in (IARC_PRE_VIEW, IARC_POST_VIEWS[post])}
        for view in views.values():
            if view is not None:
                found_inside(root, Path(view), allow_outside_root)
        missing = [name for name, path in views.items() if path is None]
        histopathology_label = _histopathology_label(histopathology.get(case_id, ""))
        if missing:
            reason = f"no {missing[0]} view"
        elif histopathology_label not in (None, folder_grade):
            reason = "histopathology disagrees with folder"
        else:
            reason = None
        if reason is not None:
            records.skipped[reason] = records.skipped.get(reason, 0) + 1
            records.skipped_cases.append((case_id, reason))
            continue
        if histopathology_label is None:
            labelled_by_folder.append(case_id)
        label = folder_grade if histopathology_label is None else histopathology_label
        pre_path, post_path = views.values()
        records.records.append(PairRecord(pre_path, post_path, label, case_id))
    if labelled_by_folder:
        logger.warning(
            f"{len(labelled_by_folder)} case(s) of {root} have no recognised histopathology diagnosis in "
            f"{_IARC_CASES_CSV}; labelled by their folder instead: {labelled_by_folder}."
        )
    return records


def read_iarc_atlas_types(root: str | Path, allow_outside_root: bool = False) -> ImageFolderRecords:
    r"""
    Reads the IARC Atlas of Colposcopy (layout as for [`read_iarc_atlas`]) as a cervix-type data set: one photo per
    case, the view after acetic acid (`N_After_acetic_acid.jpg`, the lowest-numbered one), labelled `Type_1`,
    `Type_2` or `Type_3` (the Intel & MobileODT classes) by the transformation-zone type that the case's
    `provisional_diagnosis` (csv column of `colposcopy_cases_{low,high}_grade.csv`) names: "Type N transformation
    zone; ...". Records are the low-grade cases, then the high-grade ones, each sorted by case id; each record's
    subset is its grade folder (`images_low_grade` or `images_high_grade`).

    A case is skipped, with its reason, when its provisional diagnosis names no transformation-zone type (or the
    case is absent from the csv files): `"no transformation-zone type"`; or when it has no acetic acid view: `"no
    acetic acid view"`. (In the atlas sample, 1 of 52 cases names no type and 2 lack the view.)

    Args:
        root (`str` or `Path`):
            Folder holding `images_low_grade/`, `images_high_grade/` and the csv files.
        allow_outside_root (`bool`, *optional*, defaults to `False`):
            Accept views (and csv files) that lead outside `root` through a symbolic link; by default they are
            refused.

    Raises:
        `ValueError`: when a csv lacks the `case_id` or `provisional_diagnosis` column, or `root` holds no case
        folder; naming it, a view or csv whose symbolic link leads outside `root`.
    """
    root = Path(root)
    case_folders = _iarc_case_folders(root)
    diagnoses = _read_iarc_case_column(root, "provisional_diagnosis", allow_outside_root)
    view_name, view_pattern = IARC_POST_VIEWS["acetic"]
    records = ImageFolderRecords(paths=[], labels=[], label_names=list(INTEL_MOBILEODT_LABELS), subsets=[])
    for folder, _ in case_folders:
        case_id = folder.name.removeprefix("case_")
        zone_type = _TRANSFORMATION_ZONE_TYPE.search(diagnoses.get(case_id, ""))
        view = first_view(folder, view_pattern)
        if zone_type is None:
            reason = "no transformation-zone type"
        elif view is None:
            reason = f"no {view_name} view"
        else:
            records.paths.append(str(found_inside(root, Path(view), allow_outside_root)))
            records.labels.append(int(zone_type.group(1)) - 1)
            records.subsets.append(folder.parent.name)
            continue
        records.skipped[reason] = records.skipped.get(reason, 0) + 1
        records.skipped_cases.append((case_id, reason))
    return records


def case_level_split(
    records: PairRecords, fractions: Sequence[float] = (0.7, 0.2, 0.1), seed: int = 42
) -> dict[str, list[int]]:
    r"""
    Splits pairs into train, validation and test sets by case, stratified by label: all pairs of a case go to the
    same split, so no patient is seen in training and tested on. See [`stratified_split`] for the rules.

    Args:
        records (`PairRecords`):
            The pairs.
        fractions (`Sequence[float]`, *optional*, defaults to `(0.7, 0.2, 0.1)`):
            Train, validation and test fractions of the cases.
        seed (`int`, *optional*, defaults to 42):
            Seed of the shuffle.

    Returns:
        `dict[str, list[int]]`: sorted record indices for `"train"`, `"validation"` and `"test"`.
    """
    return stratified_split(records.labels, fractions=fractions, seed=seed, groups=records.case_ids)


class PairDataset(Dataset):
    r"""
    Image pairs as model inputs: `{"pre_pixel_values": FloatTensor[3, H, W], "post_pixel_values": FloatTensor[3, H,
    W], "labels": FloatTensor[]}` per item, the label 0.0 (Negative) or 1.0 (Positive).

    Args:
        records (`PairRecords`):
            The pairs; images are read with [`load_image`] (RGB).
        processor (`Callable`):
            Called as `processor(pre_images=[pre], post_images=[post], return_tensors="pt")`, returning
            `pre_pixel_values` and `post_pixel_values` of shape `[1, 3, H, W]`; it owns resizing and normalisation.
        pair_transform (`Callable[[PIL.Image.Image, PIL.Image.Image], tuple]`, *optional*):
            Augmentation called as `pair_transform(pre, post)` before `processor`, returning `(pre, post)`, e.g. a
            [`PairTransform`] from [`paired_train_transform`].

    Reading an item whose image is missing or unreadable raises an `ImageLoadError` that names the file, says
    whether it is the pre or the post image, and names the case.
    """

    def __init__(
        self,
        records: PairRecords,
        processor: Callable,
        pair_transform: Callable[[PIL.Image.Image, PIL.Image.Image], tuple] | None = None,
    ):
        self.records = records
        self.processor = processor
        self.pair_transform = pair_transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records.records[index]
        pre = _load_view(record.pre_path, "pre", record.case_id)
        post = _load_view(record.post_path, "post", record.case_id)
        if self.pair_transform is not None:
            pre, post = self.pair_transform(pre, post)
        inputs = self.processor(pre_images=[pre], post_images=[post], return_tensors="pt")
        return {
            "pre_pixel_values": inputs["pre_pixel_values"][0],
            "post_pixel_values": inputs["post_pixel_values"][0],
            "labels": torch.tensor(float(record.label)),
        }


class PairTransform:
    r"""
    Applies torchvision `transforms.v2` to a pre/post pair with the same random parameters for both images, so a
    flip, rotation or shift moves both the same way and the pair stays aligned. Called as `transform(pre, post)`
    with two `PIL.Image.Image`; returns `(pre, post)`. When the sizes differ, post is first resized to pre's size,
    so that the same parameters (in pixels) move the same part of the cervix.

    Args:
        transforms (`Sequence[v2.Transform]`):
            Transforms applied in order to both images in one call, which is how `transforms.v2` shares its random
            parameters between inputs.
    """

    def __init__(self, transforms: Sequence[v2.Transform]):
        self.pipeline = v2.Compose(list(transforms))

    def __call__(self, pre: PIL.Image.Image, post: PIL.Image.Image) -> tuple[PIL.Image.Image, PIL.Image.Image]:
        if post.size != pre.size:
            post = post.resize(pre.size, PIL.Image.Resampling.BILINEAR)
        return tuple(self.pipeline(pre, post))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline})"


def _existing_image(image_root: Path, value: str, view: str, where: str, allow_outside_root: bool) -> str:
    if not value:
        raise ValueError(f"{where}: the {view} image path is empty.")
    path = path_inside(image_root, value, f"{where}, {view} image", allow_outside_root)
    if not path.is_file():
        raise ValueError(f"{where}: the {view} image {path} does not exist.")
    return str(path)


def _read_iarc_case_column(root: Path, column: str, allow_outside_root: bool) -> dict[str, str]:
    """One column of the cases' csv files (e.g. `histopathology_diagnosis`) per case id, from every
    `colposcopy_cases_*_grade.csv` of `root`."""
    values = {}
    for csv_path in sorted(root.glob(_IARC_CASES_CSV)):
        found_inside(root, csv_path, allow_outside_root)
        with csv_path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.DictReader(file)
            if not {"case_id", column} <= set(reader.fieldnames or []):
                raise ValueError(
                    f"{csv_path}, line 1: expected the columns case_id and {column}, got {reader.fieldnames}."
                )
            for row in reader:
                values[(row["case_id"] or "").strip()] = row[column] or ""
    return values


def _iarc_case_folders(root: Path) -> list[tuple[Path, int]]:
    """(case folder, grade of its folder: 0 low, 1 high) of every atlas case, low grade first, each sorted by id."""
    case_folders = [
        (folder, grade)
        for grade_folder, grade in _IARC_GRADE_FOLDERS.items()
        for folder in sorted((root / grade_folder).glob("case_*"))
        if folder.is_dir()
    ]
    if not case_folders:
        raise ValueError(f"No IARC atlas case found in {root}. Expected the layout {_IARC_LAYOUT}.")
    return case_folders


def is_iarc_atlas(root: str | Path) -> bool:
    """Whether `root` is laid out as the IARC atlas: an `images_low_grade/` or `images_high_grade/` folder."""
    return any((Path(root) / grade_folder).is_dir() for grade_folder in _IARC_GRADE_FOLDERS)


def _histopathology_label(diagnosis: str) -> int | None:
    """1 for CIN2 or worse, 0 for LSIL-CIN1, None when the text names neither."""
    if _HIGH_GRADE_HISTOLOGY.search(diagnosis):
        return 1
    if _LOW_GRADE_HISTOLOGY.search(diagnosis):
        return 0
    return None


def first_view(case_folder: Path, pattern: str) -> str | None:
    """The lowest-numbered file of an IARC case folder matching `pattern` (e.g. `IARC_PRE_VIEW[1]`; numbers compared
    as numbers), or None."""
    views = [path for path in case_folder.glob(pattern) if path.is_file()]
    if not views:
        return None

    def view_order(path: Path) -> tuple[float, str]:
        number = _VIEW_NUMBER.match(path.name)
        return (int(number.group(1)) if number else float("inf"), path.name)

    return str(min(views, key=view_order))


def _load_view(path: str, view: str, case_id: str) -> PIL.Image.Image:
    try:
        return load_image(path)
    except ImageLoadError as error:
        problem = f"{error.problem} It is the {view} image of case {case_id!r}."
        raise ImageLoadError(error.source_name, problem) from error
