"""ONNX export of the classifiers (fp32, or int8 by static quantization calibrated on real images), run by ONNX
Runtime or OpenVINO behind the PyTorch model's own call, so that processors, the quality gate and post-processing are
the same code for every runtime.

    cervix-hf export --model checkpoints/colponet --precision int8 --calibration DATA

writes `onnx/model.onnx` (and `onnx/model_int8.onnx`) and `onnx/export.json` into the model folder, beside the
weights, so they travel with it to the Hub. The exporter checks the exported model against PyTorch on real images
before keeping it: top-1 agreement and the largest difference of a probability (`export.json` records both), run
by ONNX Runtime and, when it is installed, by OpenVINO too.

Tools: `torch.onnx.export` for the graph; onnxruntime's `quant_pre_process` and `quantize_static` (QDQ format,
per-channel int8 weights, uint8 activations) for int8, which uses the CPU's VNNI int8 instructions. Two engines run
the same `.onnx` files: ONNX Runtime (`engine="onnxruntime"`) and OpenVINO (`engine="openvino"`, which reads ONNX
directly, QDQ int8 included, with float32 as its inference precision so that an fp32 export computes what PyTorch
does). The speed-up and the agreement with PyTorch are measured by `python -m benchmarks.runtimes`; where OpenVINO
is installed and its own check passed, the automatic choice ([`preferred_engine`]) is OpenVINO, which that benchmark
measured faster on this kind of CPU.

The detector's parts are exported by `cervix_hf.export.detector`, with these same tools.
"""

import importlib.util
import json
import logging
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoImageProcessor
from transformers.utils import ModelOutput

from cervix_hf.io.files import EXPORT_REPORT, ONNX_FOLDER, PRECISIONS, atomic_write_text
from cervix_hf.registry import FAMILIES, register_auto_classes

logger = logging.getLogger(__name__)

ENGINES = ("onnxruntime", "openvino")
ENGINE_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
OPSET = 17
# The exported model is kept only if it agrees with PyTorch this well on the check images.
MIN_TOP1_AGREEMENT = 0.99
MAX_PROBABILITY_DIFFERENCE = 0.03


@dataclass(frozen=True)
class ExportSpec:
    """A model's graph interface: input names (as the processor returns them) and output names (as the model's)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


# From the model records: the processor's inputs, the record's `onnx_outputs`.
EXPORTABLE = {
    record.model_type: ExportSpec(tuple(record.processor_class.model_input_names), record.onnx_outputs)
    for record in FAMILIES
    if record.onnx_outputs
}


class ExportError(ValueError):
    """A model that cannot be exported, or whose export does not agree with PyTorch."""


def onnx_path(model_dir: str | Path, precision: str, part: str = "model") -> Path:
    """Where `cervix-hf export` writes `part` (the whole classifier is `"model"`; the detector has several parts)."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    return Path(model_dir) / ONNX_FOLDER / (f"{part}.onnx" if precision == "fp32" else f"{part}_int8.onnx")


def export_spec(model_type: str) -> ExportSpec:
    if model_type not in EXPORTABLE:
        raise ExportError(
            f"A {model_type!r} model cannot be exported to ONNX here; exportable: {', '.join(EXPORTABLE)}."
        )
    return EXPORTABLE[model_type]


class _Graph(torch.nn.Module):
    """The model with positional inputs and a tuple of the spec's outputs, as `torch.onnx.export` traces it."""

    def __init__(self, model, spec: ExportSpec):
        super().__init__()
        self.model, self.spec = model, spec

    def forward(self, *inputs):
        outputs = self.model(**dict(zip(self.spec.inputs, inputs)), return_dict=True)
        return tuple(outputs[name] for name in self.spec.outputs)


def export_onnx(
    model,
    processor,
    model_dir: str | Path,
    precision: str = "fp32",
    calibration: Sequence = (),
    check: Sequence = (),
    enforce: bool = True,
) -> dict:
    """
    Exports `model` (a ColpoNet or pre/post fusion task model, in eval mode) into `model_dir/onnx/`, checks it
    against PyTorch, and returns the check's report.

    Args:
        model, processor: the PyTorch model and its image processor.
        model_dir (`str` or `Path`): the saved model's folder; the ONNX files go into its `onnx/` subfolder.
        precision (`str`): `"fp32"`, or `"int8"` (static quantization, which needs `calibration`).
        calibration (`Sequence`): processor inputs (an image, or a (pre, post) pair) whose activations set the int8
            ranges: real images of the kind the model will see (for ColpoNet, photos the quality gate accepts).
        check (`Sequence`): processor inputs on which the export must agree with PyTorch (at least one); the
            calibration images when empty.
        enforce (`bool`, *optional*, defaults to `True`): refuse an export that disagrees; `False` keeps it anyway
            and reports `"accepted": False` (for benchmarks that measure the disagreement).

    Raises:
        `ExportError`: a model type that cannot be exported, no check images, int8 without calibration images, or an
        export that agrees with PyTorch less than `MIN_TOP1_AGREEMENT` (top-1) or differs by more than
        `MAX_PROBABILITY_DIFFERENCE` in a probability; nothing is kept then.
    """
    spec = export_spec(model.config.model_type)
    check = list(check) or list(calibration)
    check_export_inputs(precision, calibration, check)
    target = onnx_path(model_dir, precision)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        scratch = Path(scratch)
        fp32 = scratch / "model.onnx"
        _export_fp32(model, spec, model_inputs(processor, check[:1], spec), fp32)
        exported = fp32
        if precision == "int8":
            exported = scratch / "model_int8.onnx"
            feeds = (
                {name: tensor.numpy() for name, tensor in zip(spec.inputs, model_inputs(processor, [item], spec))}
                for item in calibration
            )
            quantize(fp32, exported, feeds)
        batches = [model_inputs(processor, [item], spec) for item in check]
        report = _compare(model, exported, batches, spec, "onnxruntime")
        report.update(export_facts(precision, calibration, started))
        report["accepted"] = _agrees(report)
        if report["accepted"] and openvino_installed():  # the same file, run by the other engine, checked alike
            report["openvino"] = _openvino_check(model, exported, batches, spec)
        if enforce and not report["accepted"]:
            raise ExportError(
                f"The {precision} export disagrees with PyTorch on {report['check_images']} check image(s): top-1 "
                f"agreement {report['top1_agreement']:.3f} (needs {MIN_TOP1_AGREEMENT}), largest probability "
                f"difference {report['max_probability_difference']:.4f} (allowed {MAX_PROBABILITY_DIFFERENCE}). "
                "Nothing was kept; calibrate on more, or more typical, images, or use fp32."
            )
        shutil.move(str(exported), target)  # complete and checked: only now in place
    save_report(model_dir, precision, report)
    logger.info("Exported %s (%s): %s", target, precision, report)
    return report


def _agrees(check: dict) -> bool:
    too_far = check["max_probability_difference"] > MAX_PROBABILITY_DIFFERENCE
    return check["top1_agreement"] >= MIN_TOP1_AGREEMENT and not too_far


def check_export_inputs(precision: str, calibration: Sequence, check: Sequence) -> None:
    """Refuses, before any work, an export without check images, or int8 without calibration images."""
    if not check:
        raise ExportError("No check images: pass real images to compare the export with PyTorch.")
    if precision == "int8" and not calibration:
        raise ExportError("int8 needs calibration images (--calibration): real images of the kind the model sees.")


def export_facts(precision: str, calibration: Sequence, started: float) -> dict:
    """What every export report records besides its check: precision, calibration size, time and versions."""
    return {
        "precision": precision,
        "calibration_images": len(calibration) if precision == "int8" else 0,
        "export_seconds": round(time.perf_counter() - started, 1),
        "opset": OPSET,
        "onnxruntime_version": _ort().__version__,
        **({"openvino_version": _openvino().__version__} if openvino_installed() else {}),
    }


def as_feed(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as ONNX Runtime takes it: a contiguous float32 array on the CPU."""
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)


def save_report(model_dir: str | Path, precision: str, report: dict) -> None:
    """Records the check of one precision's export in `onnx/export.json`, beside the other precision's."""
    reports = _read_reports(model_dir)
    reports[precision] = report
    atomic_write_text(Path(model_dir) / ONNX_FOLDER / EXPORT_REPORT, json.dumps(reports, indent=2))


def session(path: str | Path, threads: int | None = None, spin: bool = True, engine: str = "onnxruntime"):
    """
    A session on the CPU for the graph at `path`, with ONNX Runtime's `run(output_names, feeds)` and `get_inputs()`
    whichever the `engine` (`"onnxruntime"` or `"openvino"`); `threads`: its threads, default all. `spin=False`
    stops ONNX Runtime's threads from busy-waiting between runs: needed where PyTorch computes between them (the
    detector's parts), whose threads would otherwise compete with spinning ones for the cores.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if engine == "openvino":
        return OpenVinoSession(path, threads)
    ort = _ort()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ort():
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError("ONNX export and runtime need onnxruntime: pip install onnxruntime onnx") from error
    return onnxruntime


def _openvino_check(model, exported: Path, batches, spec) -> dict:
    """The export run by OpenVINO and compared with PyTorch as ONNX Runtime's run is; an export OpenVINO cannot
    compile (some int8 graphs) is recorded as not accepted, with OpenVINO's reason, and ONNX Runtime serves it."""
    try:
        report = _compare(model, exported, batches, spec, "openvino")
    except RuntimeError as error:
        reason = " ".join(str(error).split())[:500]
        logger.warning("OpenVINO cannot run %s, so ONNX Runtime will serve it: %s", exported.name, reason)
        return {"accepted": False, "error": reason}
    report["accepted"] = _agrees(report)
    return report


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def _openvino():
    try:
        import openvino
    except ImportError as error:
        raise ImportError("The openvino runtime needs OpenVINO: pip install openvino") from error
    return openvino


@dataclass(frozen=True)
class _Port:
    name: str


class OpenVinoSession:
    """
    OpenVINO's compiled model for an `.onnx` graph on the CPU, called as an ONNX Runtime session is
    (`run(output_names, feeds)`, `get_inputs()`). Inference precision is float32 (OpenVINO would otherwise compute
    an fp32 graph in bfloat16 on CPUs that have it), so fp32 agrees with PyTorch and int8 is the graph's own int8.
    One inference at a time (an infer request is not thread-safe); its outputs are copies.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        settings = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            settings["INFERENCE_NUM_THREADS"] = threads
        self.compiled = _openvino().Core().compile_model(str(path), "CPU", settings)
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

    def get_inputs(self) -> list[_Port]:
        return [_Port(port.get_any_name()) for port in self.compiled.inputs]

    def run(self, output_names: Sequence[str] | None, feeds: dict) -> list[np.ndarray]:
        ports = self.compiled.outputs if output_names is None else [self.compiled.output(n) for n in output_names]
        with self._lock:
            results = self.request.infer(feeds, share_outputs=False)
            return [np.array(results[port]) for port in ports]


def model_inputs(processor, items: Sequence, spec: ExportSpec) -> tuple[torch.Tensor, ...]:
    """The processor's tensors for `items` (images, or (pre, post) pairs), in the graph's input order."""
    if len(spec.inputs) == 2:
        features = processor([item[0] for item in items], [item[1] for item in items], return_tensors="pt")
    else:
        features = processor(list(items), return_tensors="pt")
    return tuple(features[name] for name in spec.inputs)


def _export_fp32(model, spec: ExportSpec, example: tuple[torch.Tensor, ...], path: Path) -> None:
    dynamic = {name: {0: "batch"} for name in (*spec.inputs, *spec.outputs)}
    # The wrapper is put in eval mode too: the exporter restores the wrapper's mode afterwards, recursively, and a
    # wrapper left in training mode would switch the model's dropout and batch norm back on.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow that is constant here
        torch.onnx.export(
            _Graph(model, spec).eval(),
            example,
            str(path),
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


def quantize(fp32: Path, int8: Path, feeds, nodes_to_exclude: Sequence[str] = ()) -> None:
    """
    onnxruntime's static quantization of the graph `fp32` into `int8`: QDQ format, per-channel int8 weights, uint8
    activations whose ranges are calibrated on `feeds` (an iterable of `{input name: array}`, read once, one at a
    time; the calibrator keeps only each activation's minimum and maximum). `nodes_to_exclude` stay in float32.
    """
    _ort()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    prepared = fp32.with_name(fp32.stem + "_prepared.onnx")
    # onnxruntime's symbolic shape inference cannot follow the fusion model's token reshapes; ONNX's own suffices.
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(nodes_to_exclude),
    )
    prepared.unlink(missing_ok=True)


def probabilities_of(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities of one image's or pair's logits: softmax over classes, or the sigmoid of a binary logit."""
    logits = logits.reshape(logits.shape[0], -1)
    return torch.sigmoid(logits) if logits.shape[-1] == 1 else logits.softmax(-1)


@torch.no_grad()
def _compare(model, path: Path, batches: list[tuple[torch.Tensor, ...]], spec: ExportSpec, engine: str) -> dict:
    session = OnnxModel(path, model.config, engine=engine)
    agree, largest = 0, 0.0
    for batch in batches:
        inputs = dict(zip(spec.inputs, batch))
        expected = probabilities_of(model(**inputs).logits)
        got = probabilities_of(session(**inputs).logits)
        threshold = getattr(model.config, "decision_threshold", 0.5)
        agree += int(_decision(expected, threshold) == _decision(got, threshold))
        largest = max(largest, float((expected - got).abs().max()))
    return {
        "check_images": len(batches),
        "top1_agreement": agree / len(batches),
        "max_probability_difference": round(largest, 6),
    }


def _decision(probabilities: torch.Tensor, threshold: float) -> int:
    """The top-1 class; for a binary model, Positive when the probability reaches the model's decision threshold."""
    return int(probabilities[0, 0] >= threshold) if probabilities.shape[-1] == 1 else int(probabilities[0].argmax())


def _read_reports(model_dir: str | Path) -> dict:
    path = Path(model_dir) / ONNX_FOLDER / EXPORT_REPORT
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class OnnxOutput(ModelOutput):
    """What an exported model returns: the PyTorch model's fields that the inference functions read."""

    logits: torch.Tensor | None = None
    probabilities: torch.Tensor | None = None
    pre_to_post_attentions: torch.Tensor | None = None
    feature_map_size: tuple[int, int] | None = None


class OnnxModel:
    """
    An exported model run by ONNX Runtime or OpenVINO (`engine`), called like the PyTorch model
    (`model(**processor(...))`) and returning a `ModelOutput` with the same fields (`logits`, and for the fusion
    model `probabilities`, `pre_to_post_attentions` and `feature_map_size`), so the inference functions use it
    unchanged. `config` is the saved model's config.
    """

    def __init__(self, path: str | Path, config, threads: int | None = None, engine: str = "onnxruntime"):
        self.path = Path(path)
        self.config = config
        self.engine = engine
        self.spec = export_spec(config.model_type)
        self.session = session(path, threads, engine=engine)

    def eval(self):
        return self

    def __call__(self, return_dict: bool = True, **inputs) -> ModelOutput:
        feeds = {name: as_feed(inputs[name]) for name in self.spec.inputs}
        values = self.session.run(list(self.spec.outputs), feeds)
        outputs = {name: torch.from_numpy(value) for name, value in zip(self.spec.outputs, values)}
        if "pre_to_post_attentions" in outputs:
            height, width = feeds["pre_pixel_values"].shape[-2:]
            outputs["feature_map_size"] = (-(-height // 32), -(-width // 32))  # the backbone's stride-32 grid
        return OnnxOutput(**outputs)


def available_precision(model_dir: str | Path, part: str = "model") -> str | None:
    """The fastest precision of `part` exported in `model_dir` (`"int8"`, else `"fp32"`), or `None` if none was."""
    for precision in ("int8", "fp32"):
        if onnx_path(model_dir, precision, part).is_file():
            return precision
    return None


def preferred_engine(model_dir: str | Path, precision: str) -> str:
    """
    `"openvino"` when it is installed and the export's check (`onnx/export.json`) passed under it too, else
    `"onnxruntime"`: the faster engine that is known to agree with PyTorch on this export.
    """
    check = _read_reports(model_dir).get(precision, {}).get("openvino") or {}
    return "openvino" if openvino_installed() and check.get("accepted") else "onnxruntime"


def describe_runtime(model) -> str:
    """What `model` runs on, for logs and the app: "PyTorch", or e.g. "OpenVINO (int8 export)"."""
    precision = getattr(model, "onnx_precision", None)
    if precision is None:
        return "PyTorch"
    return f"{ENGINE_NAMES[getattr(model, 'onnx_engine', 'onnxruntime')]} ({precision} export)"


def load_onnx(
    model_dir: str | Path, precision: str | None = None, threads: int | None = None, engine: str | None = None
):
    """
    An exported model of the local folder `model_dir` and its processor: `precision` (`"int8"` or `"fp32"`), or the
    fastest one exported, run by `engine` (`"onnxruntime"` or `"openvino"`; by default [`preferred_engine`]).
    Raises `FileNotFoundError` naming the command to export it when there is none.
    """
    precision = precision or available_precision(model_dir)
    path = onnx_path(model_dir, precision or "fp32")
    if not path.is_file():
        raise FileNotFoundError(
            f"No ONNX export in {model_dir} ({path.relative_to(Path(model_dir))} is missing): run "
            f"`cervix-hf export --model {model_dir} --precision {precision or 'int8'} --calibration DATA` first."
        )
    register_auto_classes()  # the models' Auto classes, which the saved config names
    config = AutoConfig.from_pretrained(model_dir)
    precision = precision or "fp32"
    engine = engine or preferred_engine(model_dir, precision)
    model = OnnxModel(path, config, threads, engine)
    model.onnx_precision, model.onnx_engine = precision, engine
    return model, AutoImageProcessor.from_pretrained(model_dir)
