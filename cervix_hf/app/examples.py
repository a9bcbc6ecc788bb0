"""Example images for the app's tabs, found in a folder laid out like the public datasets the models are trained on.

`find_examples(root)` looks up to `MAX_DEPTH` folders below `root` (the project's tests point it at `../shared/data`;
a Space can ship a small folder with the same names) for:

- colposcopy photos in folders named `Type_1`, `Type_2`, `Type_3` (the Intel & MobileODT layout): one per type;
- Pap-smear images: ISBI 2014's `EDFnnn.png` (not the `_GT` masks) or SIPaKMeD's `im_<Class>/*.bmp` (not the
  `CROPPED` single cells);
- pre/post pairs: a folder holding an `N_After_normal_saline` view and an `N_After_acetic_acid` view (the IARC atlas'
  case folders), the lowest-numbered of each.

Nothing is required: a missing folder or kind simply gives no examples for that tab.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..data import IMAGE_EXTENSIONS
from ..data.prepost import IARC_POST_VIEWS, IARC_PRE_VIEW, first_view

MAX_DEPTH = 4
EXAMPLES_PER_TAB = 3

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
        if _CERVIX_TYPE_FOLDER.match(folder.name) and folder.name not in photos_by_type:
            photos_by_type[folder.name] = str(folder / images[0])
        if folder.name.startswith("im_"):
            examples.cells.extend(str(folder / name) for name in images if name.lower().endswith(".bmp"))
        examples.cells.extend(str(folder / name) for name in images if _EDF_IMAGE.match(name))
        pre, post = first_view(folder, IARC_PRE_VIEW[1]), first_view(folder, IARC_POST_VIEWS["acetic"][1])
        if pre and post:
            examples.prepost.append((pre, post))
    examples.cervix_type = [photos_by_type[name] for name in sorted(photos_by_type)][:per_tab]
    examples.cells = examples.cells[:per_tab]
    examples.prepost = examples.prepost[:per_tab]
    return examples


def _image_folders(root: Path):
    """(folder, sorted image file names) for every non-hidden folder with images, at most `MAX_DEPTH` below `root`,
    in sorted order."""
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")) if depth < MAX_DEPTH else []
        images = sorted(name for name in files if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS))
        if images:
            yield Path(folder), images


__all__ = ["AppExamples", "EXAMPLES_PER_TAB", "MAX_DEPTH", "find_examples"]
