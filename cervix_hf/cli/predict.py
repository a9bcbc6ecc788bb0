"""Predict with any saved model over files, folders, globs or lists, into a CSV or JSON Lines file.

    cervix-hf predict --model checkpoints/colponet photos/ --output predictions.csv
    cervix-hf predict --model checkpoints/cell_detector 'fields/*.png' --output cells.jsonl
    cervix-hf predict --model checkpoints/prepost_fusion pairs.csv --output decisions.csv   # or the IARC atlas folder
    cervix-hf predict --model checkpoints/cell_classifier cells/ --operating-point screening --output cells.csv
    torchrun --nproc_per_node 2 -m cervix_hf.predict --model M photos/ --output predictions.csv

The model's type (ColpoNet, cell detector, pre/post fusion, cell classifier) is read from its folder or Hub repo.
One row per input: for ColpoNet the quality gate's verdict and scores, and the type probabilities when it classified
the photo; for the detector one row per cell (`row=cell`) and a summary per image (`row=image`: cells per class); for
the fusion model one row per pair; for the cell classifier one row per cell image, with the class and group
probabilities and the normal/abnormal decision. A file that cannot be read becomes a row with an `error`, counted at
the end; the exit code is 1 when any input failed (2 when nothing could run). `--resume` skips the inputs an output
file already holds.

Under `torchrun` or `accelerate launch` each process predicts its share of the inputs and the first one merges the
shares into the output, sorted by input. Research demo, not a diagnosis.
"""

import argparse
import os
import sys
from pathlib import Path

from cervix_hf.commands import DefaultsHelpFormatter
from cervix_hf.io.results import FORMATS
from cervix_hf.registry import RUNTIMES


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument(
        "inputs",
        nargs="+",
        help="image files, folders (searched recursively), glob patterns, or .txt/.csv lists of paths; for the "
        "fusion model, a pairs csv (columns pre, post) or the IARC atlas folder",
    )
    parser.add_argument("--model", required=True, help="saved model folder or Hub repo id (owner/name)")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    parser.add_argument("--output", type=Path, help="output file (default: standard output)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="csv, or jsonl (JSON Lines); default: from --output's suffix (.jsonl, .json: jsonl), else csv",
    )
    parser.add_argument("--json", action="store_true", help="same as --format jsonl")
    parser.add_argument("--batch-size", type=int, default=8, help="inputs per batch (the detector: one at a time)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip the inputs --output already holds (failed ones are tried again), and append",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars, the weight loading's included (predict's own shows only on a terminal)",
    )
    parser.add_argument("--ignore-quality-gate", action="store_true", help="ColpoNet: classify rejected photos too")
    parser.add_argument(
        "--threshold",
        type=float,
        help="detector: score threshold (default: the model's); fusion "
        "and cell classifier: decision threshold (default: the operating point's, else the "
        "model's)",
    )
    parser.add_argument(
        "--operating-point", help="fusion and cell classifier: a named operating point of the model (e.g. screening)"
    )
    parser.add_argument(
        "--device",
        help="where a PyTorch model runs, e.g. cpu, cuda:0 (default: this process's GPU "
        "under torchrun, LOCAL_RANK, when there is one; else cpu). Exports run on the CPU",
    )
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=RUNTIMES,
        help="auto: the model folder's export (cervix-hf export) when it has one, run by OpenVINO where it is "
        "installed and passed the export's check, else ONNX Runtime; else PyTorch",
    )
    return parser


def default_device() -> str:
    """This process's GPU (`LOCAL_RANK` of a torchrun / accelerate launch run) when there is one, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    return "cpu"


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    # Imported when the command runs, so that --help answers without torch.
    from cervix_hf.export.classifiers import describe_runtime
    from cervix_hf.prediction.batch import (
        InputError,
        Predictor,
        Processes,
        completed_keys,
        find_inputs,
        keep_completed,
        merge_shards,
        output_format,
        shard,
    )
    from cervix_hf.prediction.inference import DISCLAIMER, OperatingPointError
    from cervix_hf.prediction.loader import load

    fmt = "jsonl" if args.json else output_format(args.output, args.format)
    processes = Processes.from_environment()
    if args.batch_size < 1:
        return _fail("--batch-size must be at least 1.")
    if (args.resume or processes.world_size > 1) and args.output is None:
        return _fail("--resume and several processes need --output FILE.")
    if args.quiet:  # transformers' and the Hub's bars too (loading the weights, downloading them)
        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils.logging import disable_progress_bar

        disable_progress_bar()
        disable_progress_bars()
    try:
        loaded = load(args.model, args.runtime, args.revision)
        model_type, model, processor = loaded.model_type, loaded.model, loaded.processor
        if not loaded.is_export:
            model.to(args.device or default_device())
        predictor = Predictor(
            model_type,
            model,
            processor,
            ignore_quality_gate=args.ignore_quality_gate,
            threshold=args.threshold,
            operating_point=args.operating_point,
        )
        inputs = find_inputs(args.inputs, model_type)
    except (InputError, OperatingPointError) as error:
        return _fail(str(error))
    except (OSError, ValueError, ImportError) as error:
        return _fail(f"cannot load the model {args.model!r}: {error}")
    done = set()
    resuming = args.resume and args.output.is_file() and args.output.stat().st_size > 0
    if resuming and processes.is_main:
        try:
            done = keep_completed(args.output, fmt, model_type, predictor.columns)
        except (ValueError, KeyError) as error:
            return _fail(f"cannot resume from {args.output}: {error}")
    processes.barrier()  # the output is cleaned before any process reads which inputs are done
    if resuming and not processes.is_main:
        done = completed_keys(args.output, fmt, model_type, columns=predictor.columns)
    todo = shard([item for item in inputs if item.key not in done], processes.rank, processes.world_size)
    if processes.is_main:
        print(
            f"{model_type} on {describe_runtime(model)}: {len(inputs)} input(s), {len(done)} already done; "
            f"{processes.world_size} process(es).",
            file=sys.stderr,
        )
        print(DISCLAIMER, file=sys.stderr)
    failed, rows_written = _run(args, predictor, todo, fmt, processes, append=resuming)
    processes.barrier()
    if processes.world_size > 1 and processes.is_main:
        merge_shards(args.output, processes.world_size, fmt, model_type, predictor.columns, keep_existing=resuming)
    processes.close()
    where = args.output or "standard output"
    print(
        f"process {processes.rank}: {len(todo)} input(s) predicted, {failed} failed; {rows_written} row(s) "
        f"written to {where}.",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _run(args, predictor, todo: list, fmt: str, processes, append: bool) -> tuple[int, int]:
    from tqdm.auto import tqdm

    from cervix_hf.prediction.batch import RowWriter, chunks, row_key, shard_path

    if args.output is None:
        handle, header = sys.stdout, True
    elif processes.world_size > 1:
        handle, header = shard_path(args.output, processes.rank, processes.world_size).open("w", newline=""), True
    else:
        handle = args.output.open("a" if append else "w", newline="", encoding="utf-8")
        header = not append
    bar = tqdm(
        total=len(todo),
        unit="input",
        disable=args.quiet or not sys.stderr.isatty(),
        file=sys.stderr,
        position=processes.rank,
        desc=f"process {processes.rank}" if processes.world_size > 1 else None,
    )
    failed = rows_written = 0
    try:
        writer = RowWriter(handle, fmt, predictor.columns, header=header)
        for chunk in chunks(todo, args.batch_size):
            rows = predictor(chunk)
            writer.write(rows)
            rows_written += len(rows)
            failed += len({row_key(row, predictor.model_type) for row in rows if row.get("error")})
            bar.update(len(chunk))
    finally:
        bar.close()
        if handle is not sys.stdout:
            handle.close()
    return failed, rows_written


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
