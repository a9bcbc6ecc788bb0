"""CPU seconds per 1024x1024 image: the full-size cell detector against torchvision's `fasterrcnn_resnet50_fpn`.

    python -m benchmarks.detector_inference [--repeats 5] [--threads N] [--image-size 1024]

Both models are built with random weights and the same sizes (resize to 1024, the same anchors, proposal counts,
thresholds and detections per image), so the ratio measures what wrapping transformers' ResNet-50 in our model
costs over torchvision's own ResNet-50 (target: at most 1.10). `--image-size` sets the image side, and both models'
resize sizes in proportion (a smaller one makes a quick smoke run; the target is for 1024). Timings interleave the
two models. The peak resident memory of each (one image, including the ~0.7 GiB of importing torch) is measured in a
fresh process.
"""

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator

from cervix_hf import CellDetectorConfig, CellDetectorForObjectDetection
from cervix_hf.cli import DefaultsHelpFormatter

TARGET_RATIO = 1.10
IMAGE_SIZE = 1024


def build(name: str, config: CellDetectorConfig):
    if name == "cell_detector":
        return CellDetectorForObjectDetection(config).eval()
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in config.anchor_sizes),
        aspect_ratios=(tuple(config.anchor_aspect_ratios),) * len(config.anchor_sizes),
    )
    return fasterrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=config.num_labels + 1,
        min_size=config.min_size,
        max_size=config.max_size,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_test=config.rpn_pre_nms_top_n // 2,
        rpn_post_nms_top_n_test=config.rpn_post_nms_top_n // 2,
        box_score_thresh=config.box_score_threshold,
        box_nms_thresh=config.box_nms_threshold,
        box_detections_per_img=config.detections_per_image,
    ).eval()


def run(name: str, model, image: torch.Tensor):
    if name == "cell_detector":
        return model(pixel_values=image[None])
    return model([image])


def peak_memory_mib(name: str, repeats: int, image_size: int) -> float:
    """Peak resident memory of a fresh process that builds `name` and runs it `repeats` times."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.detector_inference",
            "--only",
            name,
            "--repeats",
            str(repeats),
            "--image-size",
            str(image_size),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    default = CellDetectorConfig()  # resizes a 1024-px image to its min_size; a smaller image is resized alike
    scale = args.image_size / IMAGE_SIZE
    config = CellDetectorConfig(min_size=round(default.min_size * scale), max_size=round(default.max_size * scale))
    image = torch.rand(3, args.image_size, args.image_size)
    if args.only:
        with torch.inference_mode():
            model = build(args.only, config)
            for _ in range(args.repeats):
                run(args.only, model, image)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return {}

    # Measured before this process grows: a child's peak RSS starts from its parent's at fork (Linux).
    memory = {name: peak_memory_mib(name, 1, args.image_size) for name in ("torchvision", "cell_detector")}
    models = {name: build(name, config) for name in memory}
    timings = {name: [] for name in models}
    with torch.inference_mode():
        for name, model in models.items():
            run(name, model, image)  # warm-up
        for _ in range(args.repeats):
            for name, model in models.items():
                start = time.perf_counter()
                run(name, model, image)
                timings[name].append(time.perf_counter() - start)
    size = f"{args.image_size}x{args.image_size}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, random weights, {size}")
    print(f"{'model':>14} {'median s/image':>15} {'min s':>7} {'peak RSS MiB':>13}")
    medians = {}
    for name in models:
        medians[name] = statistics.median(timings[name])
        print(f"{name:>14} {medians[name]:>15.3f} {min(timings[name]):>7.3f} {memory[name]:>13.0f}")
    ratio = medians["cell_detector"] / medians["torchvision"]
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"cell_detector / torchvision = {ratio:.3f} ({verdict} the {TARGET_RATIO} target)")
    return {"ratio": ratio, **medians}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--repeats", default=5, type=int, help="timed images per model")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--image-size",
        default=IMAGE_SIZE,
        type=int,
        help="square image side (the models' resize sizes follow in proportion)",
    )
    parser.add_argument("--only", choices=("cell_detector", "torchvision"), help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
