"""The peak resident memory of a fresh process that loads a saved model with one runtime and predicts one batch of
real inputs (8 photos or pairs, or one 1024-px ISBI field); `benchmarks.runtimes` runs it once per runtime.

    python -m benchmarks.peak_memory MODEL_DIR RUNTIME [--threads N]

RUNTIME is a loader's runtime (`torch`, `bf16` for the detector) or an export's engine and precision
(`onnx:fp32`, `onnx:int8`, `openvino:fp32`, `openvino:int8`). It prints `{"peak_mib": ..., "model_mib": ...}`:
the process's peak while loading and predicting, and the part of it above what the process held before loading
the model (imports, the preprocessed inputs), which is the runtime's own. Linux only (it reads /proc/self).
"""

import argparse
import gc
import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoImageProcessor

from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.data import read_iarc_atlas
from cervix_hf.export.classifiers import load_onnx
from cervix_hf.export.detector import use_onnx_parts
from cervix_hf.prediction.inference import EXPORT_ENGINES, load_classifier, load_detector, load_model_input
from cervix_hf.sample_data import sample_data_dir

SHARED_DATA = sample_data_dir()


def memory_inputs(model_type: str) -> list:
    """One batch of real inputs for the memory run: 8 photos or pairs, or one 1024-px ISBI field."""
    if model_type == "cell_detector":
        return [load_model_input(SHARED_DATA / "isbi2014-edf" / "EDF010.png", model_type)]
    if model_type == "prepost_fusion":
        record = read_iarc_atlas(SHARED_DATA / "iarc-colposcopy-atlas").records[0]
        return [tuple(load_model_input(view, model_type) for view in (record.pre_path, record.post_path))] * 8
    photo = sorted((SHARED_DATA / "intel-mobileodt-sample").rglob("*.jpg"))[0]
    return [load_model_input(photo, model_type)] * 8


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (`VmRSS`: now; `VmHWM`: the peak), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def main(model_dir: str, runtime: str, threads: int | None = None) -> dict:
    """
    In the fresh process: the inputs are read and preprocessed first; then the peak is reset (Linux's
    `clear_refs`), the model is loaded with `runtime` (`torch`, `bf16`, `onnx:fp32`, `openvino:int8`, ...) and
    predicts the batch. Prints and returns the process's peak resident MiB from then on, and how much that is above
    what the process held before loading the model (the runtime's own share).
    """
    if threads:
        torch.set_num_threads(threads)
    runtime, _, precision = runtime.partition(":")
    model_type = AutoConfig.from_pretrained(model_dir).model_type
    items = memory_inputs(model_type)
    processor = AutoImageProcessor.from_pretrained(model_dir)
    if model_type == "prepost_fusion":
        features = processor([pre for pre, _ in items], [post for _, post in items], return_tensors="pt")
    else:
        features = processor(items, return_tensors="pt")
    del items
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from what is resident now
    before = _status_mib("VmRSS")
    if model_type == "cell_detector":
        if precision:  # this precision's parts, not the fastest exported
            model, _ = load_detector(model_dir, runtime="torch")
            model = use_onnx_parts(model, model_dir, precision, threads, EXPORT_ENGINES[runtime])
        else:
            model, _ = load_detector(model_dir, runtime=runtime)
    elif precision:
        model, _ = load_onnx(model_dir, precision, threads, EXPORT_ENGINES[runtime])
    else:
        model, _ = load_classifier(model_dir, runtime=runtime)
    with torch.inference_mode():
        model(**features)
    peak = _status_mib("VmHWM")
    result = {"peak_mib": round(peak), "model_mib": round(peak - before)}
    print(json.dumps(result))
    return result


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("runtime")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    return parser


if __name__ == "__main__":
    args = get_args_parser().parse_args()
    main(args.model_dir, args.runtime, args.threads)
