"""Publish a trained model folder to the Hugging Face Hub, in one commit.

    python -m train.push_to_hub --model-dir checkpoints/colponet --repo-id cervix-hf/colponet \
        [--private] [--revision BRANCH] [--commit-message MSG] [--dry-run] [--staging-dir DIR]

Stages what a user needs (`config.json` with `auto_map`, `model.safetensors`, `preprocessor_config.json`, the
model's `.py` files, the checked model card `README.md`, `eval_results.json`, `training_args.json`), creates the
repo (and branch) if needed, uploads everything in one commit and prints the commit's URL. `--dry-run` stages the
folder, lists it and touches no network.

The token comes from HF_TOKEN or `hf auth login` and is never printed; HF_ENDPOINT selects another Hub.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.hub.repos import DEFAULT_REVISION


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model-dir", required=True, type=Path, help="a training run's output folder")
    parser.add_argument("--repo-id", required=True, help="OWNER/NAME of the model repo")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", help="branch to commit to (created if needed; default: main)")
    parser.add_argument("--commit-message", help="default: Upload <model type> from <folder>")
    parser.add_argument("--dry-run", action="store_true", help="stage and list the files; no network")
    parser.add_argument(
        "--staging-dir", type=Path, help="where to stage (default: a temporary folder, kept with --dry-run)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    # Imported when the command runs, so that --help answers without torch.
    from cervix_hf.hub.cards import ModelCardError
    from cervix_hf.hub.publishing import PublishError, push_to_hub, stage_model

    try:
        if args.dry_run:
            staging_dir = args.staging_dir or Path(tempfile.mkdtemp(prefix="cervix_hf-staging-"))
            revision = args.revision or DEFAULT_REVISION
            files = stage_model(args.model_dir, staging_dir, repo_id=args.repo_id, revision=revision)
            print_staged(staging_dir, files)
            print(f"Dry run: nothing uploaded to {args.repo_id}.")
            return 0
        commit = push_to_hub(
            args.model_dir,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            staging_dir=args.staging_dir,
        )
    except (PublishError, ModelCardError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Committed {commit.oid} to {commit.repo_url}: {commit.commit_url}")
    return 0


def print_staged(staging_dir: Path, files: list[str]) -> None:
    print(f"Staged in {staging_dir}:")
    for name in files:
        print(f"  {name}  ({(staging_dir / name).stat().st_size:,} bytes)")


if __name__ == "__main__":
    sys.exit(main())
