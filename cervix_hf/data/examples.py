"""Example images for the app's tabs, found in a folder laid out like the public datasets the models are trained on.

`find_examples(root)` looks up to `MAX_DEPTH` folders below `root` (the project's sample data `../shared/data`, or
the `examples/` folder that `push-space --examples` stages into a Space with the same names) for:

- colposcopy photos in folders named `Type_1`, `Type_2`, `Type_3` (the Intel & MobileODT layout): one per type;
- Pap-smear images: ISBI 2014's `EDFnnn.png` (not the `_GT` masks) or SIPaKMeD's `im_<Class>/*.bmp` (not the
  `CROPPED` single cells);
- pre/post pairs: a folder holding an `N_After_normal_saline` view and an `N_After_acetic_acid` view (the IARC atlas'
  case folders), the lowest-numbered of each.

Nothing is required: a missing folder or kind simply gives no examples for that tab. `example_source(path)` names
the data set a file was recognised by; `default_examples()` is what the app finds when no folder is given.
"""

import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from PIL import Image

from cervix_hf.data import IMAGE_EXTENSIONS
from cervix_hf.data.prepost import IARC_POST_VIEWS, IARC_PRE_VIEW, first_view
from cervix_hf.models.colponet.image_quality import assess_image_quality
from cervix_hf.sample_data import sample_data_dir

MAX_DEPTH = 4
GATE_CANDIDATES = 40
EXAMPLES_PER_TAB = 3
# The folder beside a Space's app.py (the current folder when it runs) that push-space stages the examples into.
EXAMPLES_FOLDER = "examples"
# Data sets by the keys of the model cards' records (`cervix_hf.hub.card_spec.DATASETS`).
CERVIX_TYPE_SOURCE, PREPOST_SOURCE = "intel-mobileodt", "iarc-atlas"
CELL_SOURCES = ("isbi2014", "sipakmed")

_CERVIX_TYPE_FOLDER = re.compile(r"^Type_[123]$")
_EDF_IMAGE = re.compile(r"^EDF\d+\.png$", re.IGNORECASE)


@dataclass
class AppExamples:
    """
    Args:
        cervix_type (`list[str]`): colposcopy photos.
        cells (`list[str]`): Pap-smear images.
        prepost (`list[tuple[str, str]]`): (pre-stain, post-stain) image pairs.
    """

    cervix_type: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    prepost: list[tuple[str, str]] = field(default_factory=list)


def find_examples(root: str | Path | None, per_tab: int = EXAMPLES_PER_TAB) -> AppExamples:
    """Up to `per_tab` examples for each tab from `root` (see the module docstring); none when `root` is `None` or
    not a folder."""
    examples = AppExamples()
    if root is None or not Path(root).is_dir():
        return examples
    photos_by_type: dict[str, str] = {}
    for folder, images in _image_folders(Path(root).resolve()):
        sources = {name: example_source(folder / name) for name in images}
        photos = [name for name in images if sources[name] == CERVIX_TYPE_SOURCE]
        if photos and folder.name not in photos_by_type:
            photos_by_type[folder.name] = str(folder / _sharp_photo(folder, photos))
        examples.cells.extend(str(folder / name) for name in images if sources[name] in CELL_SOURCES)
        pre, post = first_view(folder, IARC_PRE_VIEW[1]), first_view(folder, IARC_POST_VIEWS["acetic"][1])
        if pre and post:
            examples.prepost.append((pre, post))
    examples.cervix_type = [photos_by_type[name] for name in sorted(photos_by_type)][:per_tab]
    examples.cells = examples.cells[:per_tab]
    examples.prepost = examples.prepost[:per_tab]
    return examples


def example_source(path: str | Path) -> str | None:
    """
    The public data set whose layout `find_examples` recognises `path` by: `"intel-mobileodt"` (a photo in a
    `Type_N` folder), `"isbi2014"` (`EDFnnn.png`), `"sipakmed"` (a `.bmp` in an `im_<Class>` folder), `"iarc-atlas"`
    (an `N_After_normal_saline` or `N_After_acetic_acid` view); `None` for any other file. Only the names are looked
    at: a file laid out like a data set is taken for one of its images.
    """
    path = Path(path)
    if _CERVIX_TYPE_FOLDER.match(path.parent.name):
        return CERVIX_TYPE_SOURCE
    if _EDF_IMAGE.match(path.name):
        return "isbi2014"
    if path.parent.name.startswith("im_") and path.suffix.lower() == ".bmp":
        return "sipakmed"
    if any(fnmatchcase(path.name, pattern) for pattern in (IARC_PRE_VIEW[1], IARC_POST_VIEWS["acetic"][1])):
        return PREPOST_SOURCE
    return None


def default_examples_dirs() -> list[Path]:
    """
    Where the app looks for examples when no folder is given, in order: `examples/` in the current folder (a
    Space's, beside its `app.py`, as `push-space --examples` stages it), then the project's sample data
    (`cervix_hf.sample_data`: `$CERVIX_HF_SAMPLE_DATA`, else `../shared/data` beside the checkout).
    """
    return [Path.cwd() / EXAMPLES_FOLDER, sample_data_dir()]


def default_examples() -> tuple[Path | None, AppExamples]:
    """The first of `default_examples_dirs()` in which `find_examples` finds an example, and its examples (each
    folder is searched once); `(None, AppExamples())` when none has one."""
    for folder in default_examples_dirs():
        examples = find_examples(folder)
        if examples.cervix_type or examples.cells or examples.prepost:
            return folder, examples
    return None, AppExamples()


def _sharp_photo(folder: Path, names: list[str]) -> str:
    """The first of the first `GATE_CANDIDATES` photos that the quality gate accepts at its default thresholds, else
    the first photo: an example the Cervix type tab turns away as blurry demonstrates nothing (a set of photos
    shrunk by a third party is soft throughout)."""
    for name in names[:GATE_CANDIDATES]:
        try:
            with Image.open(folder / name) as image:
                if assess_image_quality(image.convert("RGB")).is_acceptable:
                    return name
        except (OSError, ValueError):
            continue
    return names[0]


def _image_folders(root: Path):
    """(folder, sorted image file names) for every non-hidden folder with images, at most `MAX_DEPTH` below `root`,
    in sorted order."""
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")) if depth < MAX_DEPTH else []
        images = sorted(name for name in files if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS))
        if images:
            yield Path(folder), images


__all__ = [
    "AppExamples",
    "EXAMPLES_FOLDER",
    "EXAMPLES_PER_TAB",
    "MAX_DEPTH",
    "default_examples",
    "default_examples_dirs",
    "example_source",
    "find_examples",
]
