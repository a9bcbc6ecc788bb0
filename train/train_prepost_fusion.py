"""Train the pre/post fusion model (Negative/Positive from a pre-stain and a post-stain image).

Reproduce the seed work's schedule (two `microsoft/resnet-50` backbones; backbones frozen at lr 1e-4 for 30
epochs with batch 16, then everything at lr 1e-5 for 20 epochs with batch 8; early stopping and
reduce-on-plateau on the validation loss)::

    python -m train.train_prepost_fusion --data pairs.csv --output-dir checkpoints/prepost_fusion

Several GPUs: ``torchrun --nproc_per_node 4 -m train.train_prepost_fusion ...`` (or ``accelerate launch -m ...``).

Real-data check on the IARC colposcopy atlas sample beside the project (pre = after normal saline, post = after
acetic acid; Positive = CIN2 or worse; a tiny backbone on the CPU)::

    python -m train.train_prepost_fusion --data ../shared/data/iarc-colposcopy-atlas --output-dir runs/prepost-iarc \
        --model-size tiny --stage1-epochs 10 --stage2-epochs 10 --stage2-lr 1e-3 --batch-size 8

Data: a CSV (`pre,post,label[,case_id]`) or the IARC atlas layout (`--post acetic|lugol`). Cases are split
70:20:10 with no case in two splits (stratified, `--seed`). The loss weighs Positive by negatives/positives of the
training split (`--pos-weight none` turns that off). After training, the operating points (screening, balanced,
confirmatory) are chosen on the validation split and saved in the config with the decision threshold
(`--decision-threshold`: a number, or an operating point's name); `eval_results.json` reports the test split at
that threshold, with the validation-chosen operating points measured again on the test cases.
"""

import argparse
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.registry import MODEL_SIZES

from .arguments import add_common_args
from .presets import PAIR_PRESETS


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], add_help=add_help, formatter_class=DefaultsHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="pairs CSV, or the IARC colposcopy atlas folder")
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="let a pairs CSV name images outside its folder (absolute paths, ..), or the atlas folder hold "
        "symbolic links leading out of it; refused by default",
    )
    parser.add_argument("--post", default="acetic", choices=("acetic", "lugol"), help="IARC post-stain view")
    parser.add_argument("--from-checkpoint", type=Path, help="start from a saved pre/post model folder")
    parser.add_argument("--model-size", default="resnet-50", choices=MODEL_SIZES)
    parser.add_argument("--share-backbone", action="store_true", help="one backbone reads both images")
    parser.add_argument("--stage1-epochs", default=30, type=float, help="backbones frozen")
    parser.add_argument("--stage1-lr", default=1e-4, type=float)
    parser.add_argument("--stage2-epochs", default=20, type=float, help="everything trained")
    parser.add_argument("--stage2-lr", default=1e-5, type=float)
    parser.add_argument("--stage2-batch-size", default=8, type=int, help="the seed work's fine-tuning batch")
    parser.add_argument("--augmentation", default="default", choices=PAIR_PRESETS)
    parser.add_argument("--pos-weight", default="balanced", choices=("balanced", "none"))
    parser.add_argument("--target-sensitivity", default=0.9, type=float, help="of the screening operating point")
    parser.add_argument("--target-specificity", default=0.9, type=float, help="of the confirmatory point")
    parser.add_argument(
        "--decision-threshold",
        default="0.5",
        help="a probability in [0, 1], or an operating point chosen on validation: screening, balanced or confirmatory",
    )
    parser = add_common_args(parser)
    parser.set_defaults(batch_size=16)
    return parser


def main(args: argparse.Namespace) -> dict:
    """Trains, evaluates and saves the model as `args` say (`train.prepost_fusion_training.run`); returns its evaluation."""
    from .prepost_fusion_training import run

    return run(args)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
