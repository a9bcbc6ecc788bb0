"""`cervix-hf predict` over the Intel & MobileODT sample (120 photos, plus the additional ones): photos per second
at batch 1 and batch 16, in one process and in two (`torchrun --nproc_per_node 2`, one thread each), run as a user
runs it (the real command, a fresh process each), with ratios to one process at batch 1 measured in the same run.

    python -m benchmarks.predict [--size resnet-50] [--runtime torch]

The model is ColpoNet with random weights at the default (ResNet-50) size: speed does not depend on the weights.
Each figure is the whole command, start-up included (Python, torch and the model load: measured once alone, with
no input, and reported), so it is what a researcher waits for; the photos' reading and quality gate are part of it.
"""

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cervix_hf.app.models import TASKS_BY_NAME
from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.registry import MODEL_SIZES
from cervix_hf.sample_data import sample_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--size", default="resnet-50", choices=MODEL_SIZES, help="model size (tiny: a smoke run)")
    parser.add_argument("--runtime", default="torch", help="predict's --runtime")
    parser.add_argument("--max-photos", type=int, default=None, help="only the first N photos (a smoke run)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="predict's --batch-size values")
    return parser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: some photo failed, which the rows say
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def main(args: argparse.Namespace) -> dict:
    photos = sorted((sample_data_dir() / "intel-mobileodt-sample").rglob("*.jpg"))[: args.max_photos]
    torch.manual_seed(0)
    model, processor = TASKS_BY_NAME["colponet"].build_untrained(args.size)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model.save_pretrained(scratch / "model")
        processor.save_pretrained(scratch / "model")
        listing = scratch / "photos.txt"
        listing.write_text("\n".join(map(str, photos)) + "\n")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        predict = ["-m", "cervix_hf.predict", "--model", str(scratch / "model"), "--quiet", "--runtime", args.runtime]
        empty = scratch / "empty.txt"
        empty.write_text(str(photos[0]) + "\n")
        start_up = run([sys.executable, *predict, str(empty), "--output", str(scratch / "one.csv")], env)
        two = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
        ]
        ways = {}
        for processes, launcher, extra in ((1, [sys.executable], {}), (2, two, {"OMP_NUM_THREADS": "1"})):
            for batch in args.batch_sizes:
                name = "1 process" if processes == 1 else "2 processes x 1 thread"
                ways[f"{name}, batch {batch}"] = (launcher, batch, extra)
        for name, (launcher, batch, extra) in ways.items():
            output = scratch / f"{len(results)}.csv"
            seconds = run(
                [*launcher, *predict, str(listing), "--batch-size", str(batch), "--output", str(output)],
                {**env, **extra},
            )
            with output.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == len(photos), f"{name}: {len(rows)} rows for {len(photos)} photos"
            results[name] = {"seconds": seconds, "photos_per_second": len(photos) / seconds}
    base = results[f"1 process, batch {args.batch_sizes[0]}"]["photos_per_second"]
    print(
        f"cervix-hf predict, ColpoNet {args.size} (random weights), runtime {args.runtime}, {len(photos)} photos, "
        f"{torch.get_num_threads()} CPU threads; start-up with one photo {start_up:.1f} s (included below)"
    )
    for name, figures in results.items():
        ratio = figures["photos_per_second"] / base
        print(f"{name:<34} {figures['seconds']:7.1f} s  {figures['photos_per_second']:6.2f} photos/s  {ratio:5.2f}x")
    best = max(results, key=lambda name: results[name]["photos_per_second"])
    print(
        f"predict: the fastest way, {best}, is {results[best]['photos_per_second'] / base:.2f}x one process at "
        f"batch {args.batch_sizes[0]}"
    )
    return {"start_up_seconds": start_up, **results}


if __name__ == "__main__":
    main(get_args_parser().parse_args())
