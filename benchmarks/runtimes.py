"""Inference runtimes side by side: PyTorch fp32, PyTorch bf16, ONNX Runtime fp32 and int8, OpenVINO fp32 and int8,
for each of the three models, on real images, in one run.

    python -m benchmarks.runtimes [--repeats 10] [--threads N]

For each model (the default ResNet-50 size, random weights: no trained weights exist offline; speed does not depend
on the weights, agreement does, see below):

- images (or pairs) per second at batch 1 and batch 8, and the ratio to PyTorch fp32 (target: int8 at least 5x at
  batch 1);
- agreement with PyTorch fp32 on the real sample (the Intel & MobileODT photos the quality gate accepts; the IARC
  atlas pairs): top-1 agreement (the fusion model's decision at 0.5) and the largest difference of a probability
  (targets: at least 99% and at most 0.03);
- the peak resident memory of a fresh process that loads the model with that runtime (as the CLI and app do) and
  predicts one batch of 8, and the model's share of it (`benchmarks.peak_memory`);
- the export's time.

bf16 is `torch.autocast("cpu", dtype=torch.bfloat16)` with channels-last memory. int8 is `cervix_hf.export.classifiers`'s
static quantization, calibrated on half of the real inputs; agreement is measured on all of them. OpenVINO runs the
same `.onnx` files as ONNX Runtime (it reads ONNX, QDQ int8 included), at float32 inference precision.

With random weights a ResNet-50's class probabilities are nearly equal, so a small numeric difference can change the
top-1 class: agreement here is a worst case, and is measured again on a trained model before publishing (the
exporter refuses an export that disagrees).

The cell detector's section gives, on a real 1024x1024 ISBI image at batch 1 (a Pap-smear field is one large image),
PyTorch fp32 against its backbone under bf16 autocast (`inference.use_bf16_backbone`, heads in float32), the whole
model under bf16 autocast, and its learned parts run by ONNX Runtime and OpenVINO in fp32 and int8
(`cervix_hf.export.detector`:
backbone with feature pyramid, RPN head and box head; calibrated on EDF000-009 and checked on EDF010-011), where
the time goes in fp32 and in int8 (seconds per stage, from forward hooks), and with `--detector DIR` (a detector
trained by `python -m benchmarks.detector_accuracy --output-dir DIR`) the mAP@.5 on EDF010-011 of each (target:
within 0.01 of fp32).

    python -m benchmarks.runtimes --skip-classifiers --detector DIR
"""

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cervix_hf.app.models import TASKS_BY_NAME
from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import read_isbi2014_edf
from cervix_hf.evaluation.metrics import compute_detection_metrics
from cervix_hf.export.calibration import calibration_items
from cervix_hf.export.classifiers import (
    ENGINE_NAMES,
    ENGINES,
    PRECISIONS,
    export_onnx,
    export_spec,
    load_onnx,
    model_inputs,
    probabilities_of,
)
from cervix_hf.export.detector import export_detector_onnx, use_onnx_parts
from cervix_hf.prediction.inference import load_detector, load_model_input, use_bf16_backbone
from cervix_hf.registry import MODEL_SIZES
from cervix_hf.sample_data import sample_data_dir

from .detector_accuracy import detector_predictions

SHARED_DATA = sample_data_dir()
TARGET_SPEEDUP = 5.0


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--repeats", default=10, type=int, help="timed batches per runtime and batch size")
    parser.add_argument("--threads", default=None, type=int, help="torch and ONNX Runtime threads (default: all)")
    parser.add_argument("--max-inputs", default=64, type=int, help="real inputs per model (half calibrate int8)")
    parser.add_argument("--size", default="resnet-50", choices=MODEL_SIZES, help="model size (tiny: a quick smoke run)")
    parser.add_argument("--skip-detector", action="store_true", help="leave out the detector")
    parser.add_argument("--skip-classifiers", action="store_true", help="only the detector")
    parser.add_argument(
        "--detector", type=Path, help="a trained detector (python -m benchmarks.detector_accuracy --output-dir DIR)"
    )
    parser.add_argument("--skip-memory", action="store_true", help="leave out the peak memory of each runtime")
    return parser


# What each row's runtime is called by the loaders (`load_classifier` / `load_detector`), for its memory.
LOADER_RUNTIMES = {
    "PyTorch fp32": ("torch", None),
    "fp32": ("torch", None),
    "bf16 backbone": ("bf16", None),
    "ONNX Runtime fp32": ("onnx", "fp32"),
    "ONNX Runtime int8": ("onnx", "int8"),
    "OpenVINO fp32": ("openvino", "fp32"),
    "OpenVINO int8": ("openvino", "int8"),
}


def peak_memory(model_dir: Path, rows, threads: int | None) -> dict:
    """Peak resident MiB of a fresh process per row that the loaders can run (bf16 classifiers: not measured)."""
    found = {}
    for name in rows:
        if name not in LOADER_RUNTIMES:
            continue
        runtime, precision = LOADER_RUNTIMES[name]
        command = [
            sys.executable,
            "-m",
            "benchmarks.peak_memory",
            str(model_dir),
            f"{runtime}:{precision}" if precision else runtime,
        ]
        if threads:
            command += ["--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if done.returncode != 0:
            raise RuntimeError(f"the memory run of {name} failed: {done.stderr[-2000:]}")
        found[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def throughput(call, batch: tuple, repeats: int) -> float:
    """Inputs per second of `call(*batch)`: the median of `repeats` timed calls after one warm-up."""
    call(*batch)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(*batch)
        seconds.append(time.perf_counter() - start)
    return batch[0].shape[0] / statistics.median(seconds)


def runtimes(model, folder: Path, spec, threads: int | None) -> dict:
    def torch_call(bf16: bool):
        model_cl = model.to(memory_format=torch.channels_last) if bf16 else model

        @torch.inference_mode()
        def call(*inputs):
            named = dict(zip(spec.inputs, inputs))
            if not bf16:
                return model(**named).logits
            with torch.autocast("cpu", dtype=torch.bfloat16):
                named = {k: v.contiguous(memory_format=torch.channels_last) for k, v in named.items()}
                return model_cl(**named).logits.float()

        return call

    def export_call(precision: str, engine: str):
        session, _ = load_onnx(folder, precision, threads, engine)
        return lambda *inputs: session(**dict(zip(spec.inputs, inputs))).logits

    return {
        "PyTorch fp32": torch_call(False),
        "PyTorch bf16": torch_call(True),
        **{
            f"{ENGINE_NAMES[engine]} {precision}": export_call(precision, engine)
            for engine in ENGINES
            for precision in PRECISIONS
        },
    }


def agreement(reference, call, batches: list[tuple]) -> tuple[float, float]:
    agree, largest = 0, 0.0
    for batch in batches:
        expected, got = probabilities_of(reference(*batch)), probabilities_of(call(*batch))
        if expected.shape[-1] == 1:
            agree += int(bool(expected[0, 0] >= 0.5) == bool(got[0, 0] >= 0.5))
        else:
            agree += int(expected[0].argmax() == got[0].argmax())
        largest = max(largest, float((expected - got).abs().max()))
    return agree / len(batches), largest


def benchmark_model(model_type: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model, processor = TASKS_BY_NAME[model_type].build_untrained(args.size)
    spec = export_spec(model_type)
    data = SHARED_DATA / ("iarc-colposcopy-atlas" if model_type == "prepost_fusion" else "intel-mobileodt-sample")
    inputs = calibration_items(model_type, data, processor, args.max_inputs)  # what `cervix-hf export` would use
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        exports = {
            precision: export_onnx(
                model, processor, folder, precision, calibration=inputs[::2], check=inputs, enforce=False
            )
            for precision in ("fp32", "int8")
        }
        calls = runtimes(model, folder, spec, args.threads)
        singles = [model_inputs(processor, [item], spec) for item in inputs]
        eight = model_inputs(processor, (inputs * 8)[:8], spec)
        rows = {}
        for name, call in calls.items():
            rows[name] = {
                "batch 1": throughput(call, singles[0], args.repeats),
                "batch 8": throughput(call, eight, max(2, args.repeats // 4)),
                "agreement": agreement(calls["PyTorch fp32"], call, singles),
            }
        memory = {} if args.skip_memory else peak_memory(folder, rows, args.threads)
    base = rows["PyTorch fp32"]
    print(
        f"\n{model_type}: {len(inputs)} real input(s); export fp32 {exports['fp32']['export_seconds']} s, "
        f"int8 {exports['int8']['export_seconds']} s"
    )
    header = ("runtime", "batch 1/s", "ratio", "batch 8/s", "ratio", "top-1 agree", "max |dp|", "peak MiB (+model)")
    print("{:<20} {:>10} {:>6} {:>10} {:>6} {:>12} {:>9} {:>18}".format(*header))
    for name, row in rows.items():
        top1, largest = row["agreement"]
        peak = f"{memory[name]['peak_mib']:>11} (+{memory[name]['model_mib']:>4})" if name in memory else " " * 17 + "-"
        print(
            f"{name:<20} {row['batch 1']:>10.2f} {row['batch 1'] / base['batch 1']:>5.2f}x {row['batch 8']:>10.2f} "
            f"{row['batch 8'] / base['batch 8']:>5.2f}x {top1:>11.1%} {largest:>9.4f} {peak}"
        )
    for name in ("ONNX Runtime int8", "OpenVINO int8"):
        int8 = rows[name]
        speedup = int8["batch 1"] / base["batch 1"]
        verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
        print(
            f"{model_type}: {name} at batch 1 is {speedup:.2f}x PyTorch fp32 ({verdict} the {TARGET_SPEEDUP}x "
            f"target); top-1 agreement {int8['agreement'][0]:.1%}, max |probability difference| "
            f"{int8['agreement'][1]:.4f}"
        )
    return {"rows": rows, "exports": exports, "memory": memory}


def detector_map_50(model, processor, records) -> float:
    """mAP@.5 of `model` on `records`, scored as the accuracy benchmark scores it (every detection)."""
    truths = [{"boxes": np.asarray(r.boxes), "labels": np.asarray(r.labels)} for r in records.records]
    predictions = detector_predictions(model, processor, records.records)
    return compute_detection_metrics(truths, predictions, records.label_names)["map_50"]


def detector_profile(args: argparse.Namespace) -> dict:
    """
    The detector at 1024 px: images/s in PyTorch fp32, with its backbone under bf16 autocast (`use_bf16_backbone`),
    wholly under bf16 autocast, and with its learned parts (backbone, RPN head, box head) run by ONNX Runtime in fp32
    and int8 (`cervix_hf.export.detector`, calibrated on EDF000-009 and checked on EDF010-011); the seconds per stage
    of one pass in fp32 and in int8; with `--detector`, mAP@.5 on EDF010-011 for each.
    """
    torch.manual_seed(0)
    if args.detector:
        model, processor = load_detector(str(args.detector))
    else:
        model, processor = TASKS_BY_NAME["cell_detector"].build_untrained(args.size)
    folder = SHARED_DATA / "isbi2014-edf"
    image = load_model_input(folder / "EDF010.png", "cell_detector")
    pixels = processor(image, return_tensors="pt")["pixel_values"]
    test = read_isbi2014_edf(folder, ("EDF010", "EDF011"))
    check = [
        (
            load_model_input(r.image_path, "cell_detector"),
            {"boxes": np.asarray(r.boxes).reshape(-1, 4), "labels": np.asarray(r.labels)},
        )
        for r in test.records
    ]
    calibration = [load_model_input(folder / f"EDF{i:03d}.png", "cell_detector") for i in range(0, 10, 2)]
    ways = {"fp32": model, "bf16 backbone": use_bf16_backbone(copy.deepcopy(model))}
    exports = {}
    with tempfile.TemporaryDirectory() as scratch:
        model.save_pretrained(scratch)  # a complete model folder, for the memory runs
        processor.save_pretrained(scratch)
        for precision in PRECISIONS:
            exports[precision] = export_detector_onnx(
                model, processor, scratch, precision, calibration, check, enforce=False, on_progress=lambda _: None
            )
        for engine in ENGINES:
            for precision in PRECISIONS:
                ways[f"{ENGINE_NAMES[engine]} {precision}"] = use_onnx_parts(
                    copy.deepcopy(model), scratch, precision, args.threads, engine
                )

        @torch.inference_mode()
        def run(way: str):
            if way == "bf16 whole model":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(pixel_values=pixels)
            return ways[way](pixel_values=pixels)

        names = ("fp32", "bf16 backbone", "bf16 whole model", *list(ways)[2:])
        speed = {way: throughput(lambda _: run(way), (pixels,), max(2, args.repeats // 2)) for way in names}
        which = f"trained detector {args.detector}" if args.detector else f"{args.size} detector, random weights"
        print(f"\ncell_detector ({which}) at {image.width}x{image.height} (ISBI EDF010), batch 1:")
        print(
            "images/s: "
            + "; ".join(f"{way} {value:.2f} ({value / speed['fp32']:.2f}x)" for way, value in speed.items())
        )
        fastest = max(list(ways)[2:], key=speed.get)
        print(
            f"cell_detector: the fastest export, {fastest}, at batch 1 is {speed[fastest] / speed['fp32']:.2f}x "
            f"PyTorch fp32 (target 2.5x); exports took {exports['fp32']['export_seconds']} s (fp32) and "
            f"{exports['int8']['export_seconds']} s (int8)"
        )
        if not args.skip_memory:
            memory = peak_memory(Path(scratch), ways, args.threads)
            shares = (f"{way} {value['peak_mib']} (+{value['model_mib']})" for way, value in memory.items())
            print("peak MiB of a fresh process predicting one image (+ the model's share): " + "; ".join(shares))
        stages = {way: stage_seconds(ways[way], lambda way=way: run(way)) for way in ("fp32", fastest)}
        for way, (total, seconds) in stages.items():
            print(f"one {way} pass, {total:.2f} s:")
            for name, value in seconds.items():
                print(f"  {name:<36} {value:6.2f} s  {value / total:5.1%}")
        result = {"speed": speed, "stages": stages, "exports": exports}
        if args.detector:
            scores = {way: detector_map_50(ways[way], processor, test) for way in ways}
            print(
                "mAP@.5 on EDF010-011: "
                + "; ".join(
                    f"{way} {value:.4f} ({value - scores['fp32']:+.4f}, "
                    f"{'within' if abs(value - scores['fp32']) <= 0.01 else 'NOT within'} 0.01)"
                    for way, value in scores.items()
                )
            )
            result["map_50"] = scores
    return result


def stage_seconds(detector, run) -> tuple[float, dict]:
    """The seconds of one pass of `run` (the mean of two) and of each of `detector`'s stages, from forward hooks."""
    stages = {
        "resize and normalise": detector.detector.transform,
        "backbone + feature pyramid": detector.detector.backbone,
        "region proposals (RPN)": detector.detector.rpn,
        "  of which the RPN head": detector.detector.rpn.head,
        "RoI heads (pooling, box head, NMS)": detector.detector.roi_heads,
        "  of which the box head": detector.detector.roi_heads.box_head,
    }
    seconds = dict.fromkeys(stages, 0.0)
    started = {}

    def enter(name):
        return lambda *_: started.__setitem__(name, time.perf_counter())

    def leave(name):
        return lambda *_: seconds.__setitem__(name, seconds[name] + time.perf_counter() - started[name])

    hooks = []
    for name, module in stages.items():
        hooks += [module.register_forward_pre_hook(enter(name)), module.register_forward_hook(leave(name))]
    run()  # warm
    seconds = dict.fromkeys(stages, 0.0)
    start = time.perf_counter()
    for _ in range(2):
        run()
    total = (time.perf_counter() - start) / 2
    for hook in hooks:
        hook.remove()
    return total, {name: value / 2 for name, value in seconds.items()}


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.size} models, random weights")
    classifiers = () if args.skip_classifiers else ("colponet", "prepost_fusion")
    results = {model_type: benchmark_model(model_type, args) for model_type in classifiers}
    if not args.skip_detector:
        results["cell_detector"] = detector_profile(args)
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
