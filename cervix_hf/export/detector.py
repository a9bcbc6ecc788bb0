"""ONNX export of the cell detector's learned layers, run by ONNX Runtime or OpenVINO inside its torchvision Faster
R-CNN.

Faster R-CNN is geometry around three learned parts: the backbone with its feature pyramid (about 70% of a pass
at 1024 px), the region proposal network's convolutional head, and the RoI box head (two fully connected layers
on every proposal). `cervix-hf export` exports each part as its own graph (`onnx/backbone.onnx`,
`onnx/rpn_head.onnx`, `onnx/box_head.onnx`; `*_int8.onnx` quantized), and [`use_onnx_parts`] puts them in place of
the PyTorch parts. Everything else, the resizing, anchors, box decoding, NMS, RoI pooling, the small class and
box predictor and the processor's post-processing, stays the same PyTorch code for every runtime, so thresholds,
box rescaling and tiling behave identically.

int8 is the same static quantization as the classifiers' (`onnx_runtime.quantize`), each part calibrated on the
inputs the detector itself gives it on real images. The RPN head's last two convolutions (objectness and box
deltas, 1x1 and cheap) stay in float32, so proposals keep their precision. The export is checked before it is
kept: mAP@.5 on the check images, against their boxes when they have labels (else against PyTorch's own
detections), must be within `MAX_MAP_50_DIFFERENCE` of PyTorch's, run by ONNX Runtime; where OpenVINO is
installed the same files are checked under it too, and it serves them by default only if that check passed.
"""

import copy
import logging
import shutil
import tempfile
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from cervix_hf.evaluation.metrics.detection import compute_detection_metrics
from cervix_hf.export.classifiers import (
    OPSET,
    ExportError,
    as_feed,
    check_export_inputs,
    export_facts,
    onnx_path,
    openvino_installed,
    preferred_engine,
    quantize,
    save_report,
    session,
)
from cervix_hf.io.images import original_size

logger = logging.getLogger(__name__)

# The export is kept only if its mAP@.5 on the check images is this close to PyTorch's.
MAX_MAP_50_DIFFERENCE = 0.01
# Without labels, PyTorch's own detections above this score are the boxes the export must find.
REFERENCE_SCORE = 0.5


@dataclass(frozen=True)
class DetectorPart:
    """One learned part: its file stem and where it sits in torchvision's `FasterRCNN` (`model.detector`)."""

    name: str
    attribute: str

    def module(self, detector) -> nn.Module:
        owner, _, leaf = self.attribute.rpartition(".")
        return getattr(_owner(detector, owner), leaf)

    def replace(self, detector, module: nn.Module) -> None:
        owner, _, leaf = self.attribute.rpartition(".")
        setattr(_owner(detector, owner), leaf, module)


def _owner(detector, path: str):
    owner = detector.detector
    for name in filter(None, path.split(".")):
        owner = getattr(owner, name)
    return owner


PARTS = (
    DetectorPart("backbone", "backbone"),
    DetectorPart("rpn_head", "rpn.head"),
    DetectorPart("box_head", "roi_heads.box_head"),
)


def part_paths(model_dir: str | Path, precision: str) -> dict[str, Path]:
    return {part.name: onnx_path(model_dir, precision, part.name) for part in PARTS}


def has_export(model_dir: str | Path, precision: str) -> bool:
    return all(path.is_file() for path in part_paths(model_dir, precision).values())


# The graphs: each part with positional tensors in and a flat tuple of tensors out, as `torch.onnx.export` needs.
class _BackboneGraph(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, images):
        return tuple(self.module(images).values())


class _RpnHeadGraph(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *feature_maps):
        objectness, deltas = self.module(list(feature_maps))
        return (*objectness, *deltas)


class _BoxHeadGraph(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, roi_features):
        return self.module(roi_features)


# What replaces each part at run time: the exported graph, returning what the PyTorch part returns.
class _OnnxPart(nn.Module):
    def __init__(self, path: Path, threads: int | None, engine: str = "onnxruntime"):
        super().__init__()
        self.path = Path(path)
        self.session = session(path, threads, spin=False, engine=engine)
        self.input_names = [value.name for value in self.session.get_inputs()]

    def run(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        feeds = {name: as_feed(tensor) for name, tensor in zip(self.input_names, tensors)}
        return [torch.from_numpy(value) for value in self.session.run(None, feeds)]


class OnnxBackbone(_OnnxPart):
    """The backbone and feature pyramid: images in, the pyramid's `OrderedDict` of feature maps out."""

    def __init__(self, path: Path, threads: int | None, keys: Sequence[str], out_channels: int, engine: str):
        super().__init__(path, threads, engine)
        self.keys, self.out_channels = list(keys), out_channels

    def forward(self, images: torch.Tensor) -> OrderedDict:
        return OrderedDict(zip(self.keys, self.run(images)))


class OnnxRpnHead(_OnnxPart):
    """The RPN head: the pyramid's feature maps in, objectness and box deltas per level out."""

    def forward(self, feature_maps: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        outputs = self.run(*feature_maps)
        levels = len(feature_maps)
        return outputs[:levels], outputs[levels:]


class OnnxBoxHead(_OnnxPart):
    """The box head: pooled RoI features in, one representation per RoI out (none for an image without RoIs)."""

    def __init__(self, path: Path, threads: int | None, out_features: int, engine: str):
        super().__init__(path, threads, engine)
        self.out_features = out_features

    def forward(self, roi_features: torch.Tensor) -> torch.Tensor:
        if roi_features.shape[0] == 0:
            return roi_features.new_zeros((0, self.out_features))
        return self.run(roi_features)[0]


def available_detector_precision(model_dir: str | Path) -> str | None:
    """The fastest precision in which all of the detector's parts are exported in `model_dir`, or `None`."""
    for precision in ("int8", "fp32"):
        if has_export(model_dir, precision):
            return precision
    return None


def use_onnx_parts(
    detector, model_dir: str | Path, precision: str, threads: int | None = None, engine: str | None = None
):
    """
    `detector` (changed in place, and returned) with its backbone, RPN head and box head run from `model_dir`'s
    export in `precision` (`"fp32"` or `"int8"`) by `engine` (`"onnxruntime"` or `"openvino"`; by default
    `onnx_runtime.preferred_engine`, OpenVINO where it is installed and passed the export's check). Everything else
    stays PyTorch.
    """
    paths = part_paths(model_dir, precision)
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"No {precision} ONNX export of the detector in {model_dir} ({', '.join(missing)} missing): run "
            f"`cervix-hf export --model {model_dir} --precision {precision} --calibration DATA` first."
        )
    engine = engine or preferred_engine(model_dir, precision)
    inner = detector.detector
    backbone = inner.backbone
    graph = onnx.load(paths["backbone"], load_external_data=False).graph
    keys = [output.name.removeprefix("features_") for output in graph.output]
    replacements = {
        "backbone": OnnxBackbone(paths["backbone"], threads, keys, backbone.out_channels, engine),
        "rpn_head": OnnxRpnHead(paths["rpn_head"], threads, engine),
        "box_head": OnnxBoxHead(
            paths["box_head"], threads, inner.roi_heads.box_predictor.cls_score.in_features, engine
        ),
    }
    for part in PARTS:
        part.replace(detector, replacements[part.name])
    detector.onnx_precision, detector.onnx_engine = precision, engine
    return detector


def _captured_inputs(detector, processor, images: Sequence, part: DetectorPart) -> Iterator[tuple[torch.Tensor, ...]]:
    """The inputs the detector gives `part` on each of `images`, one image at a time (PyTorch, float32)."""
    for image in images:
        captured = []

        def keep(module, args):
            value = args[0]
            captured.append(tuple(value) if isinstance(value, list) else (value,))

        handle = part.module(detector).register_forward_pre_hook(keep)
        try:
            with torch.no_grad():
                detector(**processor(image, return_tensors="pt"))
        finally:
            handle.remove()
        yield captured[0]


def _export_part(detector, part: DetectorPart, example: tuple[torch.Tensor, ...], path: Path) -> None:
    module = part.module(detector)
    if part.name == "backbone":
        keys = list(module(example[0]).keys())
        graph = _BackboneGraph(module)
        inputs, outputs = ["images"], [f"features_{key}" for key in keys]
        spatial = {0: "batch", 2: "height", 3: "width"}
        dynamic = {name: spatial for name in inputs + outputs}
    elif part.name == "rpn_head":
        levels = len(example)
        graph = _RpnHeadGraph(module)
        inputs = [f"features_{level}" for level in range(levels)]
        outputs = [f"objectness_{level}" for level in range(levels)] + [
            f"box_deltas_{level}" for level in range(levels)
        ]
        dynamic = {name: {0: "batch", 2: f"height_{name[-1]}", 3: f"width_{name[-1]}"} for name in inputs + outputs}
    else:
        graph = _BoxHeadGraph(module)
        inputs, outputs = ["roi_features"], ["box_features"]
        dynamic = {"roi_features": {0: "rois"}, "box_features": {0: "rois"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow that is constant here
        torch.onnx.export(
            graph.eval(),
            example,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


def _float32_nodes(path: Path) -> list[str]:
    """The RPN head's last convolutions (those producing a graph output), which int8 would coarsen for little gain."""
    graph = onnx.load(path).graph
    outputs = {output.name for output in graph.output}
    return [node.name for node in graph.node if node.op_type == "Conv" and set(node.output) & outputs]


def _detections(detector, processor, images: Sequence) -> list[dict]:
    """Every detection (score above 0) on each image, in its pixels, as `compute_detection_metrics` takes them."""
    found = []
    with torch.no_grad():
        for image in images:
            width, height = original_size(image)
            outputs = detector(**processor(image, return_tensors="pt"))
            result = processor.post_process_object_detection(outputs, 0.0, target_sizes=[(height, width)])[0]
            found.append({key: value.numpy() for key, value in result.items()})
    return found


def _compare(
    detector, exported: dict, processor, check: Sequence[tuple], label_names: Sequence[str], reference_score: float
) -> dict:
    """The check of the detector run by each engine in `exported` (engine: detector) against PyTorch's, by engine."""
    images = [image for image, _ in check]
    reference = _detections(detector, processor, images)
    labelled = all(target is not None for _, target in check)
    if labelled:
        truths = [target for _, target in check]
    else:
        truths = [
            {
                "boxes": found["boxes"][found["scores"] >= reference_score],
                "labels": found["labels"][found["scores"] >= reference_score],
            }
            for found in reference
        ]
    pytorch_map = compute_detection_metrics(truths, reference, label_names)["map_50"]
    return {
        engine: _scores(
            pytorch_map,
            compute_detection_metrics(truths, _detections(model, processor, images), label_names)["map_50"],
            labelled,
            len(check),
            reference_score,
        )
        for engine, model in exported.items()
    }


def _scores(pytorch_map, export_map, labelled: bool, images: int, reference_score: float) -> dict:
    difference = None if pytorch_map is None else round(export_map - pytorch_map, 6)
    return {
        "check_images": images,
        "scored_against": "labels" if labelled else f"PyTorch's detections scoring {reference_score} or more",
        "pytorch_map_50": None if pytorch_map is None else round(pytorch_map, 6),
        "export_map_50": None if export_map is None else round(export_map, 6),
        "map_50_difference": difference,
        "accepted": difference is not None and abs(difference) <= MAX_MAP_50_DIFFERENCE,
    }


def export_detector_onnx(
    model,
    processor,
    model_dir: str | Path,
    precision: str = "fp32",
    calibration: Sequence = (),
    check: Sequence[tuple] = (),
    enforce: bool = True,
    reference_score: float = REFERENCE_SCORE,
    on_progress: Callable[[str], None] = logger.info,
) -> dict:
    """
    Exports the detector's backbone, RPN head and box head into `model_dir/onnx/`, checks the detector running
    them against PyTorch, and returns the check's report (also written to `onnx/export.json`).

    Args:
        model, processor: the PyTorch detector (in eval mode) and its image processor.
        model_dir (`str` or `Path`): the saved model's folder.
        precision (`str`): `"fp32"` or `"int8"` (static quantization on `calibration`).
        calibration (`Sequence`): real images (PIL) of the kind the detector sees; int8 needs at least one.
        check (`Sequence[tuple]`): `(image, target)` pairs on which the export is checked; `target` is `None` or a
            dict with `boxes` (`[N, 4]` xyxy pixels of the image) and `labels` (`[N]`, 0-based). With labels on
            every image, mAP@.5 is scored against them; otherwise against PyTorch's own detections.
        enforce (`bool`): refuse an export whose mAP@.5 differs from PyTorch's by more than
            `MAX_MAP_50_DIFFERENCE`; `False` keeps it anyway with `"accepted": False`.
        reference_score (`float`): without labels, PyTorch's detections scoring this or more are the check's boxes.

    Raises:
        `ExportError`: no check images, int8 without calibration images, or an export that disagrees (nothing is
        kept then).
    """
    check_export_inputs(precision, calibration, check)
    label_names = [model.config.id2label[index] for index in range(model.config.num_labels)]
    folder = onnx_path(model_dir, precision).parent
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
        scratch = Path(scratch)
        for part in PARTS:
            on_progress(f"exporting the {part.name.replace('_', ' ')}")
            example = next(_captured_inputs(model, processor, [check[0][0]], part))
            fp32 = onnx_path(scratch, "fp32", part.name)
            fp32.parent.mkdir(exist_ok=True)
            _export_part(model, part, example, fp32)
            if precision == "int8":
                on_progress(f"calibrating the {part.name.replace('_', ' ')} on {len(calibration)} image(s)")
                names = [value.name for value in onnx.load(fp32).graph.input]
                feeds = (
                    {name: tensor.numpy() for name, tensor in zip(names, tensors)}
                    for tensors in _captured_inputs(model, processor, calibration, part)
                )
                exclude = _float32_nodes(fp32) if part.name == "rpn_head" else ()
                quantize(fp32, onnx_path(scratch, "int8", part.name), feeds, exclude)
        on_progress(f"checking the {precision} export on {len(check)} image(s)")
        engines = ("onnxruntime", "openvino") if openvino_installed() else ("onnxruntime",)
        exported = {
            engine: use_onnx_parts(copy.deepcopy(model), scratch, precision, engine=engine) for engine in engines
        }
        checks = _compare(model, exported, processor, check, label_names, reference_score)
        report = checks.pop("onnxruntime")
        report.update(export_facts(precision, calibration, started))
        if report["accepted"] and "openvino" in checks:  # the same files, run by OpenVINO, checked alike
            report["openvino"] = {
                key: checks["openvino"][key] for key in ("export_map_50", "map_50_difference", "accepted")
            }
        if report["pytorch_map_50"] is None:
            raise ExportError(
                f"Nothing to check the export against: the {len(check)} check image(s) have no labelled cells and "
                f"PyTorch finds none scoring {reference_score} or more. Check on labelled images (an ISBI 2014 or "
                "SIPaKMeD folder), or export a trained detector."
            )
        if enforce and not report["accepted"]:
            raise ExportError(
                f"The {precision} export of the detector disagrees with PyTorch on {len(check)} check image(s): "
                f"mAP@.5 {report['export_map_50']} against PyTorch's {report['pytorch_map_50']} (scored against "
                f"{report['scored_against']}; allowed difference {MAX_MAP_50_DIFFERENCE}). Nothing was kept; "
                "calibrate on more, or more typical, images, or use fp32."
            )
        del exported  # its sessions hold the scratch files open
        for part in PARTS:
            shutil.move(str(onnx_path(scratch, precision, part.name)), onnx_path(model_dir, precision, part.name))
    save_report(model_dir, precision, report)
    logger.info("Exported the detector's parts (%s) into %s: %s", precision, folder, report)
    return report
