"""Evaluate a saved model on a labelled data set: `eval_results.json` in the training runs' layout, its plots, and
optionally the model card again.

    python -m train.evaluate --model checkpoints/colponet --data ../shared/data/iarc-colposcopy-atlas
    cervix-hf evaluate --model checkpoints/cell_detector --data ../shared/data/isbi2014-edf --output-dir eval/isbi
    cervix-hf evaluate --model checkpoints/prepost_fusion --data ATLAS_OR_PAIRS_CSV --update-card

Every image (pair) of `--data` is evaluated, read by the readers training uses: ColpoNet the Intel & MobileODT
layout, the IARC atlas or a `<root>/<class>/` folder; the detector ISBI 2014, SIPaKMeD, or a CSV/COCO/VOC annotation
file (`--format`, `--annotations`); the fusion model the IARC atlas or a pairs CSV; the cell classifier the Herlev
layout (`labels.csv`). The metrics are the training runs' own (`cervix_hf.evaluation.metrics`), on the split named
`external`, and the file is checked against its contract before it is written. ColpoNet classifies every photo, as
its training evaluation does, and records how many its quality gate would have rejected; the fusion model decides at
its saved threshold and marks its saved operating points; on ISBI data the detector is compared with the classical
baseline on the same images.

ColpoNet's data is read by its layout: the competition's (`train/`, `additional_Type_N_v2/`, `test/` with
`solution_stg1_release.csv`, any of them alone; `--subset` picks some, by default every one present is evaluated),
the IARC atlas (one photo per case, after acetic acid, typed by the case's provisional diagnosis: an other-camera
test), or a `<root>/<class>/` folder. Photos that overlap the model's own training data are refused, told from the
model folder's `eval_results.json`: photos of the data set it was trained on (same name, or sharing photos with the
ones it recorded) that are not among the photos its training run held out and evaluated on. `--allow-overlap`
evaluates them anyway and names the split `overlapping-training-data` instead of `external`.

The results go to `--output-dir` (default: `<model>/evaluations/<data name>/`, `<data name>-<subset>` with
`--subset`). `--update-card` renders the model card again, which then links every evaluation in the model folder's
`evaluations/` (its file and plots) beside the training run's own, which it keeps describing; `push-to-hub`
publishes them with the model.
"""

import argparse
import sys
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.data.intel_mobileodt import INTEL_MOBILEODT_SUBSETS

SPLIT = "external"


# ColpoNet's split name when --allow-overlap evaluates photos of the model's own training data.
OVERLAP_SPLIT = "overlapping-training-data"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="a saved model folder")
    parser.add_argument("--data", required=True, type=Path, help="a labelled data set the readers understand")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: <model>/evaluations/<data name>)")
    parser.add_argument(
        "--update-card", action="store_true", help="render the model card again, linking the model folder's evaluations"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="photos or pairs per batch")
    parser.add_argument("--format", default="auto", help="detector data: auto, isbi2014, sipakmed, csv, coco, voc")
    parser.add_argument("--annotations", type=Path, help="detector data in csv, coco or voc: the annotation file")
    parser.add_argument("--box-from", default="nucleus", help="SIPaKMeD: boxes from the nucleus or cytoplasm masks")
    parser.add_argument("--post", default="acetic", help="IARC atlas: the post-stain view (acetic or lugol)")
    parser.add_argument(
        "--subset",
        nargs="+",
        choices=INTEL_MOBILEODT_SUBSETS,
        help="ColpoNet on the competition layout: the subsets to evaluate (default: every one present)",
    )
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="ColpoNet: evaluate photos of the model's own "
        f"training data anyway, under the split name {OVERLAP_SPLIT} (refused by default)",
    )
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept annotation paths, and symbolic links of a data folder, that lead outside --data",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluates the model as the arguments say (`train.evaluation.run`); the exit code (0, or 2 with a message)."""
    args = get_args_parser().parse_args(argv)
    from .evaluation import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
