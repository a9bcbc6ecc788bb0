"""Train the cell detector (Faster R-CNN) and evaluate it with COCO mAP.

Reproduce the SIPaKMeD detector (5 cell classes, one box per cell from its cytoplasm boundary)::

    python -m train.train_cell_detector --data /path/to/SIPaKMeD --output-dir checkpoints/cell_detector

Several GPUs: ``torchrun --nproc_per_node 4 -m train.train_cell_detector ...`` (or ``accelerate launch -m ...``).

Real-data check on the ISBI 2014 EDF nuclei beside the project (one class; train on EDF000-EDF009 minus two
for validation, test on EDF010-EDF011; a tiny backbone from random weights, about 4 minutes on 2 CPU cores,
test mAP@.5 0.17 when last run)::

    python -m train.train_cell_detector --data ../shared/data/isbi2014-edf --format isbi2014 \
        --test-names EDF010 EDF011 --output-dir runs/edf-detector --model-size tiny \
        --epochs 60 --lr 1e-3 --batch-size 2 --min-size 1024 --max-size 1024 \
        --early-stopping-patience 20 --plateau-patience 8

Nuclei from a few images (the ``nuclei`` recipe, ``train.detector_recipes``: native scale, 320 px crops, a
small ResNet trained from random weights; the benchmark ``python -m benchmarks.detector_accuracy`` runs it beside the
classical baseline)::

    python -m train.train_cell_detector --data ../shared/data/isbi2014-edf --format isbi2014 \
        --test-names EDF010 EDF011 --output-dir runs/edf-nuclei --recipe nuclei

On ISBI 2014 data the test split is also scored by the classical baseline (``train.classical_detection``),
stored as ``classical_baseline`` in ``eval_results.json`` and shown beside the model in its card.

Other formats: ``--format csv|coco|voc --annotations FILE_OR_DIR --data IMAGE_ROOT``. Without ``--test-names``
the images are split 70:20:10 (stratified by each image's most frequent class, ``--seed``).

A run keeps the checkpoint with the best validation mAP@[.5:.95], stops early, and ends with
``save_pretrained``, ``eval_results.json`` (mAP@[.5:.95], mAP@.5, per-class AP and recall on the test split) and
the test detections per image in ``detections.csv`` and ``detections.json``.
"""

import argparse
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.registry import MODEL_SIZES

from .arguments import add_common_args
from .detector_recipes import DETECTOR_RECIPES
from .presets import DETECTION_PRESETS

FORMATS = ("auto", "sipakmed", "isbi2014", "csv", "coco", "voc")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], add_help=add_help, formatter_class=DefaultsHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="dataset folder (or image root with --annotations)")
    parser.add_argument("--format", default="auto", choices=FORMATS)
    parser.add_argument("--annotations", type=Path, help="CSV/COCO file or VOC folder (with --format csv|coco|voc)")
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="let --annotations name images outside --data (absolute paths, ..), or an ISBI folder hold symbolic "
        "links leading out of it; refused by default",
    )
    parser.add_argument("--box-from", default="cytoplasm", choices=("cytoplasm", "nucleus"), help="SIPaKMeD boxes")
    parser.add_argument("--test-names", nargs="+", help="image names (file stems) held out as the test split")
    parser.add_argument("--validation-fraction", default=0.2, type=float, help="of the rest, with --test-names")
    parser.add_argument("--from-checkpoint", type=Path, help="start from a saved detector folder")
    parser.add_argument("--model-size", default="resnet-50", choices=MODEL_SIZES)
    parser.add_argument("--min-size", type=int, help="override the model's resize (short side, pixels)")
    parser.add_argument("--max-size", type=int, help="override the model's resize (long side bound)")
    parser.add_argument("--epochs", default=26, type=float)
    parser.add_argument("--lr", default=1e-4, type=float)
    parser.add_argument("--augmentation", default="default", choices=DETECTION_PRESETS)
    parser.add_argument("--crop-size", type=int, help="side of random square training crops (default: whole images)")
    parser.add_argument("--crops-per-image", default=1, type=int, help="training samples per image per epoch")
    parser.add_argument(
        "--recipe",
        choices=sorted(DETECTOR_RECIPES),
        help="named recipe (train.detector_recipes): its model config and training settings replace the "
        "defaults of --model-size, --augmentation, --crop-size, --crops-per-image, --epochs, --lr, --batch-size, "
        "--early-stopping-patience, --plateau-patience and --export-threshold; flags given still win",
    )
    parser.add_argument("--export-threshold", default=0.5, type=float, help="score threshold of detections.csv")
    parser = add_common_args(parser)
    parser.set_defaults(batch_size=2)
    return parser


RECIPE_ARGS = {
    "model_size": "model_size",
    "augmentation": "augmentation",
    "crop_size": "crop_size",
    "crops_per_image": "crops_per_image",
    "epochs": "epochs",
    "lr": "learning_rate",
    "batch_size": "batch_size",
    "early_stopping_patience": "early_stopping_patience",
    "plateau_patience": "plateau_patience",
    "export_threshold": "score_threshold",
}


def apply_recipe(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with `--recipe`'s settings wherever a setting still has the parser's default."""
    if not args.recipe:
        return args
    recipe = DETECTOR_RECIPES[args.recipe]
    defaults = get_args_parser(add_help=False).parse_args(["--data", ".", "--output-dir", "."])
    for arg_name, recipe_field in RECIPE_ARGS.items():
        if getattr(args, arg_name) == getattr(defaults, arg_name):
            setattr(args, arg_name, getattr(recipe, recipe_field))
    return args


def main(args: argparse.Namespace) -> dict:
    """Trains, evaluates and saves the detector as `args` say (`train.cell_detector_training.run`); returns its evaluation."""
    from .cell_detector_training import run

    return run(args)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
