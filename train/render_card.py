"""Render (again) the model card README.md of a trained model folder, from its evaluation and training files.

    python -m train.render_card --model-dir checkpoints/colponet [--repo-id OWNER/NAME] [--revision BRANCH]

Every training run already writes its card; use this after editing a template, or to pin another repo or
revision in the card's code. The card is checked against the folder's files before it is written.
"""

import argparse
import sys
from pathlib import Path

from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.hub import DEFAULT_REVISION
from cervix_hf.hub.cards import ModelCardError, write_model_card


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model-dir", required=True, type=Path, help="a training run's output folder")
    parser.add_argument("--repo-id", help="repo the card's code loads from (default: the published one)")
    parser.add_argument("--revision", default=DEFAULT_REVISION, help="branch the card's code pins")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        path = write_model_card(args.model_dir, repo_id=args.repo_id, revision=args.revision)
    except ModelCardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
