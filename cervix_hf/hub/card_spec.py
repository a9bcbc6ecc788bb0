"""The model cards' spec: which run files a card is rendered from, where the templates are, what every card must
hold, the datasets a card can name, and the error a card that breaks any of it raises.

The rendering (`cervix_hf.hub.cards`), the value tracking (`cervix_hf.hub.card_values`) and the checks
(`cervix_hf.hub.card_checks`) all read it; each model's own sections and model-index metrics are in its record
(`cervix_hf.registry`).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from cervix_hf.io.files import CONFIG_FILE, EVAL_RESULTS_FILE, PROCESSOR_FILE, TRAINING_ARGS_FILE

# Where each tracked source of a template comes from.
SOURCE_FILES = {
    "eval": EVAL_RESULTS_FILE,
    "config": CONFIG_FILE,
    "processor": PROCESSOR_FILE,
    "args": TRAINING_ARGS_FILE,
}


def _templates_dir() -> Path:
    """The templates inside the installed package, else at the root of the checkout this package runs from."""
    package_dir = Path(__file__).resolve().parent.parent  # cervix_hf/
    installed, checkout = package_dir / "model_cards", package_dir.parent / "model_cards"
    return checkout if checkout.is_dir() and not installed.is_dir() else installed


TEMPLATES_DIR = _templates_dir()
MACROS_TEMPLATE = "_macros.md.j2"

# The weights inherit the research-only terms of their training data (see each card's licence section).
MODEL_LICENSE = {"license": "other", "license_name": "research-only"}

REQUIRED_SECTIONS = (
    "Model details",
    "Version and changelog",
    "Uses",
    "Direct use",
    "Downstream use",
    "Out-of-scope use",
    "Bias, risks and limitations",
    "How to get started",
    "Input specification",
    "Labels",
    "Training data",
    "Training procedure",
    "Evaluation",
    "Hardware and software",
    "Citation and data licences",
)
INDEX_DIGITS = 4
NOT_AVAILABLE = "n/a"


class ModelCardError(ValueError):
    """A model card cannot be rendered: a file is missing or inconsistent, or the card disagrees with the files."""


@dataclass(frozen=True)
class Dataset:
    """What a card says about a training dataset."""

    name: str
    slug: str
    url: str | None
    licence: str
    citation: str


DATASETS = {
    "intel-mobileodt": Dataset(
        name="Intel & MobileODT Cervical Cancer Screening",
        slug="intel-mobileodt-cervical-cancer-screening",
        url="https://www.kaggle.com/competitions/intel-mobileodt-cervical-cancer-screening",
        licence="the Kaggle competition's rules: research use; the images are not redistributed with the model",
        citation="Intel & MobileODT Cervical Cancer Screening. Kaggle, 2017.",
    ),
    "iarc-atlas": Dataset(
        name="IARC Atlas of Colposcopy",
        slug="iarc-colposcopy-atlas",
        url="https://screening.iarc.fr/atlascolpo.php",
        licence="IARC owns the images: research and education use only, with citation",
        citation="IARC Screening Group. Atlas of Colposcopy: Principles and Practice. International Agency for "
        "Research on Cancer, Lyon.",
    ),
    "isbi2014": Dataset(
        name="ISBI 2014 Overlapping Cervical Cytology Image Segmentation Challenge (EDF images)",
        slug="isbi2014-overlapping-cervical-cytology",
        url=None,
        licence="the challenge's terms: research use, with citation",
        citation="Lu Z., Carneiro G., Bradley A. P. et al. An improved joint optimization of multiple level set "
        "functions for the segmentation of overlapping cervical cells. IEEE Transactions on Image Processing, 2015.",
    ),
    "herlev": Dataset(
        name="Herlev Pap-smear database (DTU/Herlev)",
        slug="herlev-pap-smear",
        url="https://mde-lab.aegean.gr/index.php/downloads",
        licence="free for research, with citation of the dataset paper; the images are not redistributed with the "
        "model",
        citation="Jantzen J., Norup J., Dounias G., Bjerregaard B. Pap-smear benchmark data for pattern "
        "classification. NiSIS 2005.",
    ),
    "sipakmed": Dataset(
        name="SIPaKMeD",
        slug="sipakmed",
        url="https://www.cs.uoi.gr/~marina/sipakmed.html",
        licence="research use, with citation of the dataset paper",
        citation="Plissiti M. E., Dimitrakopoulos P., Sfikas G. et al. SIPaKMeD: a new dataset for feature and "
        "image based classification of normal and pathological cervical cells in Pap smear images. ICIP 2018.",
    ),
}


def read_sources(model_dir: Path) -> dict[str, dict]:
    """The four files a card is rendered from, by source name; a clear error for a missing or unreadable one."""
    sources = {}
    for source, name in SOURCE_FILES.items():
        path = model_dir / name
        if not path.is_file():
            raise ModelCardError(
                f"{path} is missing: a model card is rendered from the output folder of a training run "
                "(train/train_*.py --output-dir), which holds it."
            )
        try:
            sources[source] = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelCardError(f"{path} is not valid JSON: {err}.") from err
    return sources


def lookup_or_none(data, path: tuple):
    try:
        for key in path:
            data = data[key]
        return data
    except (KeyError, IndexError, TypeError):
        return None


def dotted(path: tuple) -> str:
    return ".".join(str(key) for key in path)
