"""CPU inference time of one pre/post pair against two plain ResNet-50 forward passes, in the same run.

    python -m benchmarks.prepost_inference [--repeats 20] [--threads N]

The full-size fusion model (random weights) against transformers' `ResNetModel` (the `microsoft/resnet-50`
architecture) run once on each image: the ratio is what the fusion head costs (target: at most 1.10). Also
prints the parameter memory that `share_backbone=True` saves. Timings interleave the two.
"""

import argparse
import statistics
import time

import torch
from transformers import ResNetConfig, ResNetModel

from cervix_hf import PrePostFusionConfig, PrePostFusionForImageClassification
from cervix_hf.cli import DefaultsHelpFormatter

TARGET_RATIO = 1.10


def parameter_mib(model: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fusion = PrePostFusionForImageClassification(PrePostFusionConfig()).eval()
    resnet = ResNetModel(ResNetConfig()).eval()
    pre, post = torch.randn(1, 3, 224, 224), torch.randn(1, 3, 224, 224)
    calls = {
        "two ResNet-50 passes": lambda: (resnet(pre), resnet(post)),
        "pre/post fusion": lambda: fusion(pre_pixel_values=pre, post_pixel_values=post),
    }
    timings = {name: [] for name in calls}
    with torch.inference_mode():
        for call in calls.values():
            call()  # warm-up
        for _ in range(args.repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - start)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, batch 1, 224x224, random weights")
    medians = {name: statistics.median(times) for name, times in timings.items()}
    for name, median in medians.items():
        print(f"{name:>22}: median {median * 1000:7.1f} ms, min {min(timings[name]) * 1000:7.1f} ms")
    ratio = medians["pre/post fusion"] / medians["two ResNet-50 passes"]
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"fusion / two ResNet-50 passes = {ratio:.3f} ({verdict} the {TARGET_RATIO} target)")
    shared = PrePostFusionForImageClassification(PrePostFusionConfig(share_backbone=True))
    separate_mib, shared_mib = parameter_mib(fusion), parameter_mib(shared)
    print(
        f"parameters: two backbones {separate_mib:.1f} MiB, shared backbone {shared_mib:.1f} MiB "
        f"(saves {separate_mib - shared_mib:.1f} MiB, {100 * (1 - shared_mib / separate_mib):.0f}%)"
    )
    return {"ratio": ratio, "saved_mib": separate_mib - shared_mib}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--repeats", default=20, type=int)
    parser.add_argument("--threads", type=int)
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
