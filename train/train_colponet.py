"""Fine-tune ColpoNet (cervix type 1/2/3) on colposcopy photos.

Reproduce the published model (Intel & MobileODT competition data, `microsoft/resnet-50` backbone)::

    python -m train.train_colponet --data /path/to/intel-mobileodt --output-dir checkpoints/colponet

Several GPUs: ``torchrun --nproc_per_node 4 -m train.train_colponet ...`` (or ``accelerate launch -m ...``).

The real-data recipe (``--recipe kaggle``, ``train/recipes.py``): ColpoNet from random weights on the competition's
1,481 training photos, evaluated on a stratified 20% validation split (``--seed 42``) that training never uses to
choose; about 6 minutes on 2 CPU cores::

    python -m train.train_colponet --data ../shared/data/intel-mobileodt-512 --recipe kaggle \
        --output-dir checkpoints/colponet

Smoke run on the real sample beside the project (a tiny backbone, under a minute on 2 CPU cores)::

    python -m train.train_colponet --data ../shared/data/intel-mobileodt-sample --output-dir runs/colponet-smoke \
        --model-size tiny --stage1-epochs 2 --stage2-epochs 2 --batch-size 8

Data: the competition layout (`train/Type_N/`, `additional_Type_N_v2/`, `test/` + `solution_stg1_release.csv`),
or any `<root>/<class name>/*.jpg` folder. It is split by `--split` (stratified, `--seed`; 70:20:10 by default);
blurry training photos are dropped by the quality gate; the test split (the validation split when `--split` gives
the test 0) gives `eval_results.json`.

By default training runs in two stages, as in the seed work: the backbone frozen at lr 1e-4, then everything at
1e-5, each with early stopping on the validation log loss (the competition's metric) and reduce-on-plateau.
`--schedule cosine` trains for the fixed number of epochs instead and keeps the last weights.
"""

import argparse
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.registry import family

from .arguments import SCHEDULES, RecipeArgumentParser, add_common_args
from .presets import CLASSIFICATION_PRESETS
from .recipes import COLPONET_RECIPES

SPLIT_FRACTIONS = (0.7, 0.2, 0.1)
# `--recipe`'s fields, by argument name.
RECIPE_ARGS = (
    "model_size",
    "image_size",
    "augmentation",
    "stage1_epochs",
    "stage1_lr",
    "stage2_epochs",
    "stage2_lr",
    "schedule",
    "batch_size",
    "weight_decay",
    "label_smoothing",
    "mixup_alpha",
    "ema_decay",
    "class_weights",
    "split",
    "quality_percentile",
    "bf16",
    "channels_last",
    "decode_once",
    "baselines",
)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = RecipeArgumentParser(
        description=__doc__.split("\n\n")[0],
        add_help=add_help,
        formatter_class=DefaultsHelpFormatter,
        recipes={name: recipe_defaults(recipe) for name, recipe in COLPONET_RECIPES.items()},
    )
    parser.add_argument("--data", required=True, type=Path, help="competition folder or <root>/<class>/*.jpg")
    parser.add_argument(
        "--from-checkpoint", type=Path, help="start from a saved ColpoNet folder instead of a fresh model"
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(COLPONET_RECIPES),
        help="named recipe (train/recipes.py): its settings become the defaults of "
        + ", ".join("--" + name.replace("_", "-") for name in RECIPE_ARGS)
        + "; flags given still win",
    )
    parser.add_argument("--model-size", default="resnet-50", choices=family("colponet").sizes)
    parser.add_argument("--image-size", default=224, type=int, help="side of the model's square input (pixels)")
    parser.add_argument(
        "--split",
        default=list(SPLIT_FRACTIONS),
        type=float,
        nargs=3,
        metavar=("TRAIN", "VALIDATION", "TEST"),
        help="stratified fractions (--seed); a test fraction of 0 evaluates the model on its validation split",
    )
    parser.add_argument("--schedule", default="plateau", choices=SCHEDULES, help="see train/engine.TrainingStage")
    parser.add_argument("--label-smoothing", default=0.0, type=float, help="of the cross-entropy")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="weights in channels-last memory order: faster convolutions on CPUs (oneDNN) and GPUs",
    )
    parser.add_argument(
        "--decode-once",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="decode every photo once into memory instead of every epoch",
    )
    parser.add_argument("--stage1-epochs", default=5, type=float, help="frozen backbone")
    parser.add_argument("--stage1-lr", default=1e-4, type=float)
    parser.add_argument("--stage2-epochs", default=20, type=float, help="everything trained")
    parser.add_argument("--stage2-lr", default=1e-5, type=float)
    parser.add_argument("--augmentation", default="default", choices=CLASSIFICATION_PRESETS)
    parser.add_argument(
        "--class-weights",
        default="balanced",
        choices=("balanced", "none"),
        help="weigh the loss by inverse class frequency of the training split",
    )
    parser.add_argument(
        "--quality-gate",
        default="drop",
        choices=("drop", "list", "off"),
        help="drop blurry training photos, only list them, or skip the gate",
    )
    parser.add_argument(
        "--quality-laplacian-threshold",
        type=float,
        help="quality gate threshold, saved with the processor (default: the processor's, calibrated on 224-px "
        "photos; 100 is the seed work's value for full-resolution photos)",
    )
    parser.add_argument("--quality-fft-threshold", type=float, help="quality gate FFT threshold (default: 0)")
    parser.add_argument(
        "--quality-percentile",
        type=float,
        help="calibrate both quality-gate thresholds to this percentile of the training split's scores, saved with "
        "the processor (overrides --quality-laplacian-threshold and --quality-fft-threshold)",
    )
    parser.add_argument(
        "--mixup-alpha",
        default=0.0,
        type=float,
        help="train on mixup blends of photo pairs, lam ~ Beta(alpha, alpha) (train/engine.MixupTrainer); 0 for none",
    )
    parser.add_argument(
        "--ema-decay",
        default=0.0,
        type=float,
        help="per-step decay of an exponential moving average of the weights, which replaces the trained weights "
        "at the end of each stage (train/engine.WeightAverage); 0 keeps the trained weights",
    )
    parser.add_argument(
        "--unlabeled",
        type=Path,
        help="folder of unlabelled photos (<dir>/*.jpg): those the teacher is sure of join the training split "
        "(self-training, train/pseudo_labels.py)",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="saved ColpoNet folder that labels --unlabeled (default: first train one with the same settings, "
        "without --unlabeled, into OUTPUT_DIR/teacher)",
    )
    parser.add_argument(
        "--pseudo-label-threshold",
        default=0.5,
        type=float,
        help="keep an unlabelled photo when the teacher's top class probability is at least this",
    )
    parser.add_argument(
        "--soft-pseudo-labels",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="train on the teacher's class probabilities for the --unlabeled photos (distillation) instead of its "
        "top class",
    )
    parser.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also score the class prior and a colour-and-texture logistic regression (train/colponet_baselines.py) "
        "on the evaluated split, with paired bootstrap intervals, for the card",
    )
    return add_common_args(parser)


def recipe_defaults(recipe) -> dict:
    """A recipe's settings, as the defaults of the arguments they set."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in recipe.to_dict().items()
        if name in RECIPE_ARGS
    }


def main(args: argparse.Namespace) -> dict:
    """Trains, evaluates and saves the model as `args` say (`train.colponet_training.run`); returns its evaluation."""
    from .colponet_training import run

    return run(args)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
