"""Publish the demo Space (Gradio) to the Hugging Face Hub, in one commit.

    python -m train.push_space --space-id OWNER/NAME [--model colponet=OWNER/NAME[@REVISION] ...] \
        [--examples DIR] [--private] [--commit-message MSG] [--dry-run] [--staging-dir DIR]

Uploads `app.py`, `requirements.txt`, `cervix_hf/`, the `release/` models (the app serves them before the Hub
repos) and a `README.md` whose front matter makes it a Gradio Space (`sdk: gradio`, `app_file: app.py`, `models:` the
model repos). The app loads the repos of `cervix_hf/hub/repos.py`, or
those given with `--model`, which are set as the Space's `CERVIX_HF_<MODEL_TYPE>_REPO` variables. `--examples DIR`
(e.g. the sample data, `../shared/data`) adds the few example images per tab that the app would pick there, in
`examples/`, where the Space's app finds them, and lists each in the README with its data set's terms and citation.
`--dry-run` stages the folder, lists it and touches no network.

The token comes from HF_TOKEN or `hf auth login` and is never printed; HF_ENDPOINT selects another Hub.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.hub.repos import PUBLISHED_MODELS, is_repo_reference

from .push_to_hub import print_staged


def model_repo(value: str) -> tuple[str, str]:
    model_type, _, reference = value.partition("=")
    if model_type not in PUBLISHED_MODELS or not is_repo_reference(reference):
        raise argparse.ArgumentTypeError(
            f"{value!r}: give MODEL_TYPE=OWNER/NAME[@REVISION] with MODEL_TYPE one of {', '.join(PUBLISHED_MODELS)}."
        )
    return model_type, reference


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--space-id", required=True, help="OWNER/NAME of the Space")
    parser.add_argument(
        "--model",
        type=model_repo,
        action="append",
        default=[],
        metavar="MODEL_TYPE=OWNER/NAME[@REVISION]",
        help="load this model type from another repo, optionally at a revision (repeatable)",
    )
    parser.add_argument(
        "--examples",
        type=Path,
        metavar="DIR",
        help="folder laid out like the public data sets (Type_N/ photos, EDFnnn.png Pap smears, IARC case folders) "
        "to copy the app's example images from, the few per tab the app picks there; each file's data set is told "
        "by that layout and one without recorded terms is refused (default: no examples)",
    )
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--commit-message", help="default: Upload the cervix_hf demo")
    parser.add_argument("--dry-run", action="store_true", help="stage and list the files; no network")
    parser.add_argument(
        "--staging-dir", type=Path, help="where to stage (default: a temporary folder, kept with --dry-run)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    # Imported when the command runs, so that --help answers without torch.
    from cervix_hf.hub.cards import ModelCardError
    from cervix_hf.hub.publishing import PublishError, push_space, space_models, stage_space

    models = dict(args.model)
    try:
        if args.dry_run:
            staging_dir = args.staging_dir or Path(tempfile.mkdtemp(prefix="cervix_hf-space-"))
            print_staged(staging_dir, stage_space(staging_dir, models, examples_dir=args.examples))
            print(f"Dry run: nothing uploaded to {args.space_id}; it would load {space_models(models)}.")
            return 0
        commit = push_space(
            args.space_id,
            models=models,
            private=args.private,
            commit_message=args.commit_message,
            staging_dir=args.staging_dir,
            examples_dir=args.examples,
        )
    except (PublishError, ModelCardError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Committed {commit.oid} to {commit.repo_url}: {commit.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
