"""CPU inference of the full-size ColpoNet against the bare ResNet-50 it is built on, measured in the same run.

    python -m benchmarks.colponet_inference [--repeats 10] [--threads N]

Prints images/s at batch 1 and 8 for ColpoNet and transformers' `ResNetForImageClassification` (the
`microsoft/resnet-50` architecture, random weights), their ratio (target: ColpoNet's added blocks cost at most
15%), the FLOPs of one image, and the achieved GFLOP/s beside a large fp32 matrix multiply on the same machine.
Timings interleave the two models so that drift of the machine affects both alike.
"""

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import ResNetConfig, ResNetForImageClassification

from cervix_hf import ColpoNetConfig, ColpoNetForImageClassification
from cervix_hf.cli import DefaultsHelpFormatter

TARGET_OVERHEAD = 1.15


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--repeats", default=10, type=int, help="timed forward passes per model and batch size")
    parser.add_argument("--batch-sizes", default=[1, 8], type=int, nargs="+")
    parser.add_argument("--threads", default=None, type=int, help="torch threads (default: torch's choice)")
    return parser


def forward_flops(model: torch.nn.Module, pixels: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(pixels)
    return counter.get_total_flops()


def seconds_per_call(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = min(seconds_per_call(lambda: a @ b, repeats))
    return 2 * size**3 / best / 1e9


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "resnet50": ResNetForImageClassification(ResNetConfig(num_labels=3)).eval(),
        "colponet": ColpoNetForImageClassification(ColpoNetConfig()).eval(),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, random weights")
    one_image = torch.randn(1, 3, 224, 224)
    flops = {name: forward_flops(model, one_image) for name, model in models.items()}
    results = {}
    header = f"{'batch':>5} {'model':>9} {'median s':>9} {'images/s':>9} {'GFLOP/s':>8}"
    print(header)
    for batch_size in args.batch_sizes:
        pixels = torch.randn(batch_size, 3, 224, 224)
        timings = {name: [] for name in models}
        with torch.inference_mode():
            for _ in range(args.repeats):  # interleaved: each round times both models once
                for name, model in models.items():
                    timings[name] += seconds_per_call(lambda: model(pixels), 1)
        for name in models:
            median = statistics.median(timings[name])
            results[(batch_size, name)] = median
            print(
                f"{batch_size:>5} {name:>9} {median:>9.4f} {batch_size / median:>9.2f} "
                f"{flops[name] * batch_size / median / 1e9:>8.1f}"
            )
        ratio = results[(batch_size, "colponet")] / results[(batch_size, "resnet50")]
        verdict = "meets" if ratio <= TARGET_OVERHEAD else "MISSES"
        print(
            f"      batch {batch_size}: ColpoNet / ResNet-50 time = {ratio:.3f} ({verdict} the {TARGET_OVERHEAD} target)"
        )
    print(
        f"FLOPs per image: ResNet-50 {flops['resnet50'] / 1e9:.2f} G, ColpoNet {flops['colponet'] / 1e9:.2f} G "
        f"(+{100 * (flops['colponet'] / flops['resnet50'] - 1):.1f}%)"
    )
    print(f"fp32 matmul 2048x2048 on this machine: {matmul_gflops():.1f} GFLOP/s")
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
