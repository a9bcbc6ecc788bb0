"""From a data folder to a published model in one command: train, evaluate, export, card, push (and the Space).

    cervix-hf publish colponet --data ../shared/data/intel-mobileodt-512 --recipe kaggle --repo-id ORG/colponet
    cervix-hf publish colponet --data DATA --repo-id ORG/colponet --space-id ORG/demo -- --stage2-epochs 10
    cervix-hf publish colponet --data DATA --repo-id ORG/colponet --staging-dir release/colponet   # no network
    torchrun --nproc_per_node 4 -m train.publish cell_detector --data DATA --repo-id ORG/cell-detector

The steps, each the project's own command, in a run folder (`--work-dir`, default `runs/publish-<model_type>`):

1. `train`: the model's training script (`cervix-hf train <model_type>`) into `<work-dir>/model`; it evaluates the
   held-out split and writes `eval_results.json`, its plots and the model card there. Under `torchrun` or
   `accelerate launch` every process trains; the main process alone does the steps after it.
2. `evaluate`: checks that the run left its evaluation and plots, and draws the plots again if they are missing.
3. `export`: `cervix-hf export` (int8 by default, `--precision`), calibrated and checked on `--calibration` (default
   `--data`). A refused export stops the publish, with the check's figures.
4. `card`: the model card rendered again for `--repo-id`, and checked against the run's files.
5. `push`: the model folder, with its card, evaluation, plots and export, in one commit (`push-to-hub`); then, with
   `--space-id`, the demo Space loading that repo (`push-space`, with `--examples`).

`--staging-dir DIR` stages exactly what `push` would upload into DIR, and `--dry-run` lists it; neither touches the
network, and neither stages the Space.

Resuming: each finished step is recorded in `<work-dir>/publish_state.json` (written atomically), and the same
command run again skips the finished steps: an interrupted training continues from its last checkpoint (the
training script's `--resume`), and a failed push is tried again without training again. A run folder remembers the
settings it was trained with (model type, data, recipe, training options, export) and refuses other ones.

Training options: any option publish does not define is the training script's (`--model-size small`,
`--stage2-epochs 10`; `cervix-hf train <model_type> --help` lists them), and everything after `--` is too. Publish
sets the script's `--data`, `--recipe`, `--output-dir` and `--resume` itself.
"""

import argparse
import importlib
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.registry import FAMILIES_BY_TYPE

STATE_FILE = "publish_state.json"
MODEL_FOLDER = "model"
# The training script's options that publish sets itself.
RESERVED_TRAINING_OPTIONS = ("--data", "--recipe", "--output-dir", "--resume")


class PublishArgumentParser(argparse.ArgumentParser):
    """Publish's options; whatever else it is given (the unknown options, everything after `--`) is kept, in order,
    as `training_args` for the training script, whose own parser checks them."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        head, tail = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])
        namespace, unknown = super().parse_known_args(head, namespace)
        namespace.training_args = [*unknown, *tail]
        return namespace, []


def get_args_parser() -> argparse.ArgumentParser:
    parser = PublishArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=DefaultsHelpFormatter,
        allow_abbrev=False,  # an option of the training script is never read as an abbreviation of one of these
        usage="%(prog)s MODEL_TYPE --data DIR --repo-id ORG/NAME [options] [TRAINING OPTIONS] [-- TRAINING OPTIONS]",
        epilog="Any other option, and everything after --, goes to the model's training script "
        "(cervix-hf train MODEL_TYPE --help lists them), e.g. -- --model-size small --stage2-epochs 10.",
    )
    parser.add_argument(
        "model_type",
        metavar="MODEL_TYPE",
        choices=sorted(FAMILIES_BY_TYPE),
        help=f"the model to train and publish: {', '.join(FAMILIES_BY_TYPE)}",
    )
    parser.add_argument("--data", required=True, type=Path, help="the labelled data the training script reads")
    parser.add_argument("--repo-id", required=True, help="OWNER/NAME of the model repo (the card names it)")
    parser.add_argument(
        "--recipe", help="the training script's named recipe (cervix-hf train MODEL_TYPE --help lists them)"
    )
    parser.add_argument("--work-dir", type=Path, help="the run folder (default: runs/publish-<model_type>)")
    parser.add_argument(
        "--calibration", type=Path, help="real inputs to calibrate and check the export (default: --data)"
    )
    parser.add_argument("--precision", default="int8", choices=("int8", "fp32"), help="of the ONNX export")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--dry-run", action="store_true", help="do every step but the upload, and list what it would upload"
    )
    target.add_argument(
        "--staging-dir", type=Path, help="stage what would be uploaded into this new or empty folder, not uploading"
    )
    parser.add_argument("--space-id", help="OWNER/NAME of a demo Space to publish after the model, loading its repo")
    parser.add_argument(
        "--examples", type=Path, metavar="DIR", help="the Space's example images, as push-space --examples"
    )
    parser.add_argument("--private", action="store_true", help="create the repo (and Space) private")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    reserved = [arg for arg in args.training_args if arg.split("=")[0] in RESERVED_TRAINING_OPTIONS]
    if reserved:
        print(
            f"error: {', '.join(reserved)}: publish sets the training script's "
            f"{', '.join(RESERVED_TRAINING_OPTIONS)} itself (give --data and --recipe to publish; --work-dir "
            "chooses the run folder).",
            file=sys.stderr,
        )
        return 2
    if not args.data.exists():
        print(f"error: --data {args.data}: no such file or folder.", file=sys.stderr)
        return 2
    work_dir = args.work_dir or Path("runs") / f"publish-{args.model_type}"
    model_dir = work_dir / MODEL_FOLDER
    calibration = args.calibration or args.data
    script_name = FAMILIES_BY_TYPE[args.model_type].training_script.rpartition(".")[2]
    script = importlib.import_module(f"{__package__}.{script_name}")  # train or cervix_hf.train, as installed
    training_parser = script.get_args_parser()
    training_parser.prog = f"cervix-hf publish {args.model_type} (training options)"
    training_argv = [
        "--data",
        str(args.data),
        "--output-dir",
        str(model_dir),
        *(["--recipe", args.recipe] if args.recipe else []),
        *args.training_args,
    ]
    training = training_parser.parse_args(training_argv)  # a wrong training option stops here, before any work
    settings = {
        "model_type": args.model_type,
        "data": str(args.data.resolve()),
        "recipe": args.recipe,
        "training_args": args.training_args,
        "calibration": str(calibration.resolve()),
        "precision": args.precision,
    }

    from .engine import on_main_process, start_run

    process = start_run(training)  # joins the process group under torchrun / accelerate launch
    state = on_main_process(process, lambda: _read_state(work_dir, settings))  # one decision for every process
    if _done(state, "train"):
        _skipped("train", work_dir)
    else:
        training.resume = model_dir.is_dir() and any(model_dir.iterdir())
        print(f"publish: train{' (resumed: --resume)' if training.resume else ''} -> {model_dir}", flush=True)
        script.main(training)
        if process.is_main_process:
            _record(work_dir, state, "train", resumed=training.resume)
    if not process.is_main_process:
        return 0
    return _publish(args, work_dir, model_dir, calibration, state)


def _publish(args, work_dir: Path, model_dir: Path, calibration: Path, state: dict) -> int:
    """The steps after training, on the main process: evaluate, export, card, then push or stage."""
    from cervix_hf.cli import export
    from cervix_hf.evaluation.plots import plots_in, write_evaluation_plots
    from cervix_hf.hub.cards import ModelCardError, write_model_card
    from cervix_hf.hub.publishing import PublishError, push_space, push_to_hub, stage_model
    from cervix_hf.io.files import EVAL_RESULTS_FILE

    from .push_to_hub import print_staged

    if _done(state, "evaluate"):
        _skipped("evaluate", work_dir)
    else:
        eval_results = model_dir / EVAL_RESULTS_FILE
        if not eval_results.is_file():
            print(f"error: the training run left no {eval_results}; rerun to train again.", file=sys.stderr)
            return 1
        if not plots_in(model_dir):
            write_evaluation_plots(json.loads(eval_results.read_text()), model_dir)
        _record(work_dir, state, "evaluate", plots=[plot.path for plot in plots_in(model_dir)])

    if _done(state, "export"):
        _skipped("export", work_dir)
    else:
        print(f"publish: export ({args.precision}, checked on {calibration})", flush=True)
        code = export.main(
            ["--model", str(model_dir), "--precision", args.precision, "--calibration", str(calibration)]
        )
        if code:
            print(
                f"error: publish stopped at the export, which was refused (its check above); nothing was uploaded. "
                f"The trained model stays in {model_dir}: run the command again with other --calibration data or "
                "--precision fp32, and training is not repeated.",
                file=sys.stderr,
            )
            return code
        _record(work_dir, state, "export", precision=args.precision)

    try:
        if _done(state, "card", repo_id=args.repo_id):
            _skipped("card", work_dir)
        else:
            write_model_card(model_dir, repo_id=args.repo_id)
            _record(work_dir, state, "card", repo_id=args.repo_id)
        if args.dry_run or args.staging_dir:
            staging_dir = args.staging_dir or Path(tempfile.mkdtemp(prefix="cervix_hf-staging-"))
            print_staged(staging_dir, stage_model(model_dir, staging_dir, repo_id=args.repo_id))
            if args.space_id:
                print(
                    f"The Space is not staged here: `cervix-hf push-space --space-id {args.space_id} "
                    f"--model {args.model_type}={args.repo_id} --dry-run` shows it."
                )
            print(f"{'Dry run' if args.dry_run else 'Staged'}: nothing uploaded to {args.repo_id}.")
            return 0
        if _done(state, "push", repo_id=args.repo_id):
            _skipped("push", work_dir)
        else:
            commit = push_to_hub(model_dir, args.repo_id, private=args.private)
            print(f"Committed {commit.oid} to {commit.repo_url}: {commit.commit_url}")
            _record(work_dir, state, "push", repo_id=args.repo_id, commit=commit.oid)
        if args.space_id:
            if _done(state, "space", space_id=args.space_id, repo_id=args.repo_id):
                _skipped("space", work_dir)
            else:
                commit = push_space(
                    args.space_id,
                    models={args.model_type: args.repo_id},
                    private=args.private,
                    examples_dir=args.examples,
                )
                print(f"Committed {commit.oid} to {commit.repo_url}: {commit.commit_url}")
                _record(work_dir, state, "space", space_id=args.space_id, repo_id=args.repo_id, commit=commit.oid)
    except (PublishError, ModelCardError) as err:
        print(
            f"error: {err}\nThe finished steps are kept in {work_dir / STATE_FILE}: run the same command again to "
            "go on from here, without training again.",
            file=sys.stderr,
        )
        return 1
    return 0


def _read_state(work_dir: Path, settings: dict) -> dict:
    """The run folder's state (a new one for a new folder); a `SystemExit` when it was made with other settings."""
    path = work_dir / STATE_FILE
    if not path.is_file():
        return {"settings": settings, "steps": {}}
    state = json.loads(path.read_text())
    changed = sorted(name for name in settings if state["settings"].get(name) != settings[name])
    if changed:
        was = ", ".join(f"{name} {state['settings'].get(name)!r} (now {settings[name]!r})" for name in changed)
        raise SystemExit(
            f"error: {work_dir} was trained with other settings: {was}. Give another --work-dir for a new run, or "
            "the same settings to go on with this one."
        )
    return state


def _done(state: dict, step: str, **facts) -> bool:
    """Whether `step` finished, for the same `facts` (the repo it pushed to, ...)."""
    record = state["steps"].get(step)
    return bool(record) and all(record.get(name) == value for name, value in facts.items())


def _record(work_dir: Path, state: dict, step: str, **facts) -> None:
    from cervix_hf.io.files import atomic_write_text

    state["steps"][step] = {"finished": datetime.now(UTC).isoformat(timespec="seconds"), **facts}
    work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work_dir / STATE_FILE, json.dumps(state, indent=2))


def _skipped(step: str, work_dir: Path) -> None:
    print(f"publish: {step} finished in an earlier run ({work_dir / STATE_FILE}), skipped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
