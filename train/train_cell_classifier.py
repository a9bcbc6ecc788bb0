"""Train the cell classifier (one Pap-smear cell: seven Herlev classes, normal/abnormal) from random weights.

Reproduce the published model (the `herlev` recipe; about 10 minutes on 2 CPU cores)::

    python -m train.train_cell_classifier --data ../shared/data/herlev --recipe herlev \
        --output-dir checkpoints/cell_classifier

Data: the Herlev layout (`labels.csv`: `path,class,binary,source_image`). The cells are split 70:20:10 (train :
validation : test) by source image, so that the cells cut from one slide image are in one split, stratified by
class, with `--seed`. Every image is decoded once, resized by the image processor to the training size and kept in
memory; augmentation runs on whole batches (a rotation by any angle, a flip, a zoom and a shift in one resampling,
then brightness, contrast, saturation and per-channel stain jitter). Training is one fixed schedule (AdamW, linear
warm-up then cosine decay, label smoothing, bf16 autocast and channels-last on the CPU), with an exponential moving
average (EMA) of the weights, which is what is saved and evaluated; predictions average the four flips of each
image (test-time augmentation).

After training, the operating points on the abnormal group's probability (the sum of the four abnormal classes'
probabilities) are chosen on the validation split (screening: the highest threshold whose abnormal sensitivity is at
least `--target-sensitivity`; balanced: Youden's J; confirmatory: the lowest threshold whose specificity is at least
`--target-specificity`) and saved in the config with the decision threshold (`--decision-threshold`, a number or a
point's name). `eval_results.json` reports the validation split (where the targets are measured) and the held-out
test split, with 95% intervals. A run has no checkpoints to resume: it is minutes long.
"""

import argparse
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.registry import family

FAMILY = family("cell_classifier")


@dataclass(frozen=True)
class CellRecipe:
    """
    Every choice of a training run; each field is also a flag (`--image-size` ...) that overrides the recipe's.

    Args:
        model_size (`str`): `small` (the published size: a ResNet of widths 32-64-128-256) or `tiny` (tests).
        image_size (`int`): side, in pixels, of the square the cells are resized to (the processor's size).
        epochs (`int`): passes over the training split.
        batch_size (`int`): cells per optimiser step.
        learning_rate (`float`): AdamW's peak learning rate (after warm-up; cosine decay to 0).
        warmup_epochs (`float`): linear warm-up, in epochs.
        weight_decay (`float`): AdamW's decoupled weight decay.
        label_smoothing (`float`): of the cross-entropy.
        classifier_dropout (`float`): before the linear classifier.
        ema_decay (`float`): per-step decay of the weights' moving average (0 turns it off: the last weights).
        rotation (`bool`): rotate each cell by an angle drawn from [0, 360) (cells have no up or down).
        flip (`bool`): mirror half of the cells.
        zoom (`float`): scale drawn from [1 - zoom, 1 + zoom].
        shift (`float`): translation drawn from [-shift, shift], as a fraction of the side.
        colour_jitter (`float`): brightness, contrast and saturation factors drawn from [1 - x, 1 + x], and
            per-channel gains from [1 - x / 2, 1 + x / 2] (stain differences).
        test_time_flips (`bool`): average the predictions of the four flips of each cell.
        bf16 (`bool`): bfloat16 autocast on the CPU (float32 weights and loss).
        channels_last (`bool`): channels-last memory layout (faster convolutions on the CPU).
    """

    model_size: str = "small"
    image_size: int = 128
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_epochs: float = 3.0
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    classifier_dropout: float = 0.1
    ema_decay: float = 0.0
    rotation: bool = True
    flip: bool = True
    zoom: float = 0.1
    shift: float = 0.05
    colour_jitter: float = 0.2
    test_time_flips: bool = True
    bf16: bool = True
    channels_last: bool = True


RECIPES = {
    "herlev": CellRecipe(),
    # Seconds on a CPU, for tests and smoke runs: says nothing about accuracy.
    "tiny": CellRecipe(model_size="tiny", image_size=32, epochs=1, batch_size=16, warmup_epochs=0.0),
}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], add_help=add_help, formatter_class=DefaultsHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="the Herlev folder (labels.csv)")
    parser.add_argument("--output-dir", required=True, type=Path, help="where the model, its card and plots go")
    parser.add_argument("--recipe", default="herlev", choices=RECIPES, help="named settings; flags override them")
    parser.add_argument("--seed", default=42, type=int, help="the split, the initialisation and the augmentation")
    parser.add_argument("--target-sensitivity", default=0.95, type=float, help="abnormal sensitivity of screening")
    parser.add_argument("--target-specificity", default=0.95, type=float, help="of the confirmatory point")
    parser.add_argument(
        "--decision-threshold",
        default="screening",
        help="a probability of abnormal in [0, 1], or an operating point chosen on validation: screening, balanced "
        "or confirmatory",
    )
    parser.add_argument("--threads", default=None, type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--weights-from",
        type=Path,
        help="a finished run's folder of the same recipe, settings and seed: its weights and training summary are "
        "taken instead of training again; the predictions, operating points, evaluation, plots and card are made "
        "again (to re-finish a run with this code)",
    )
    parser.add_argument("--no-progress-bar", action="store_true", help="log one line per epoch only")
    recipe = parser.add_argument_group("recipe settings (default: the --recipe's; shown: the herlev recipe's)")
    for setting in fields(CellRecipe):
        flag = "--" + setting.name.replace("_", "-")
        value = getattr(RECIPES["herlev"], setting.name)
        shown = ("per device " if setting.name == "batch_size" else "") + f"(default: {value}) in the herlev recipe"
        if setting.type in (bool, "bool"):
            recipe.add_argument(flag, default=None, action=argparse.BooleanOptionalAction, help=shown)
        elif setting.name == "model_size":
            recipe.add_argument(flag, default=None, choices=FAMILY.sizes, help=shown)
        else:
            recipe.add_argument(flag, default=None, type=type(setting.default), help=shown)
    return parser


def recipe_of(args: argparse.Namespace) -> CellRecipe:
    """The named recipe with the flags given on the command line in place of its settings."""
    base = asdict(RECIPES[args.recipe])
    chosen = {name: value for name in base if (value := getattr(args, name, None)) is not None}
    recipe = CellRecipe(**{**base, **chosen})
    if recipe.image_size < 32 or recipe.epochs < 1 or recipe.batch_size < 1:
        raise SystemExit("--image-size must be at least 32, --epochs and --batch-size at least 1.")
    if not 0 <= recipe.ema_decay < 1:
        raise SystemExit(f"--ema-decay must be in [0, 1), got {recipe.ema_decay}.")
    return recipe


def main(args: argparse.Namespace) -> dict:
    """Trains, evaluates and saves the classifier as `args` say (`train.cell_classifier_training.run`); returns its
    evaluation."""
    from .cell_classifier_training import run

    return run(args)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
