"""Prediction functions shared by the command line, the app and the tests."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForObjectDetection,
)

from cervix_hf.io.images import ImageLoadError, load_image, original_size
from cervix_hf.models.cell_detector.tiling_cell_detector import detect_tiled
from cervix_hf.models.colponet import ImageQualityReport
from cervix_hf.prediction.explain import grad_cam
from cervix_hf.registry import CLASSIFIER_RUNTIMES, FAMILIES_BY_TYPE, RUNTIMES, family, register_auto_classes

# `runtime=` of the loaders: PyTorch, an export run by one engine, or "auto" (the fastest that is there and checked).
EXPORT_ENGINES = {"onnx": "onnxruntime", "openvino": "openvino"}
DISCLAIMER = "Research demo, not a diagnosis: no output of this model is a clinical finding."


def load_model_input(image, model_type: str, reduce: bool = True, max_decoded_pixels: int | None = None):
    """
    `image` (a path, file, PIL image or array) loaded as RGB within `model_type`'s input bounds (its record's
    `input_max_side` and `input_min_side`): larger images are reduced while decoding, smaller ones refused with an
    `ImageLoadError` that gives both sizes. `reduce=False` keeps the full size (tiled detection);
    `max_decoded_pixels` is `load_image`'s memory budget (the app sets one).
    """
    record = family(model_type)
    loaded = load_image(
        image,
        max_side=record.input_max_side if reduce else None,
        min_side=record.input_min_side,
        max_decoded_pixels=max_decoded_pixels,
    )
    width, height = original_size(loaded)
    if record.input_max_aspect is not None and max(width, height) > record.input_max_aspect * min(width, height):
        given = image if isinstance(image, (str, Path)) else getattr(image, "name", None)  # a path, or a named file
        name = str(given) if isinstance(given, (str, Path)) and str(given) else "<in-memory image>"
        raise ImageLoadError(
            name,
            f"the image is {width}x{height} pixels, {max(width, height) / min(width, height):.1f} times longer than "
            f"it is wide; this model takes photos at most {record.input_max_aspect:g}:1 (a colposcopy photo is near "
            "4:3). Upload the photo itself, not a strip, a collage or a panorama.",
        )
    return loaded


def model_device(model) -> torch.device:
    """Where `model` computes: a PyTorch model's device (inputs must be moved there), the CPU for an export."""
    return getattr(model, "device", None) or torch.device("cpu")


@dataclass
class CervixTypePrediction:
    """
    The cervix type of one photo, or why it was not classified.

    Args:
        quality (`ImageQualityReport`): the quality gate's report.
        classified (`bool`): whether the model was run (the gate passed, or it was overridden).
        label (`str`, *optional*): the most probable type, when classified.
        probabilities (`dict[str, float]`): probability per type, when classified.
    """

    quality: ImageQualityReport
    classified: bool
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "classified": self.classified,
            "label": self.label,
            "probabilities": self.probabilities,
            "quality": self.quality.to_dict(),
        }


class ModelLoadError(ValueError):
    """A saved model that must not be used: weights missing, extra, of the wrong shape, corrupt, or not safetensors;
    a config or processor file that describes no model this package can run."""


# The largest side, in pixels, a model whose type has no record may ask its inputs to be resized to.
DEFAULT_MAX_INPUT_SIDE = 4096


def _reason(error: BaseException) -> str:
    """An error's message, its first line, at most 300 characters: a hostile file's message can be long."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= 300 else text[:297] + "..."


def load_config(model_id: str, revision: str | None = None):
    """
    The config of a saved model (folder or Hub repo id).

    Raises:
        `ModelLoadError`: naming its `config.json`, when the file cannot describe a model: nested too deep to read,
            values of the wrong type, sizes out of range. `OSError` when there is no config to read.
    """
    register_auto_classes()  # the models' Auto classes, which a saved config names
    try:
        config = AutoConfig.from_pretrained(model_id, revision=revision)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise ModelLoadError(
            f"Cannot load the model in {model_id}: its config.json does not describe a model "
            f"({type(error).__name__}: {_reason(error)})."
        ) from None
    record = FAMILIES_BY_TYPE.get(config.model_type)
    bound = record.input_max_side if record is not None else DEFAULT_MAX_INPUT_SIDE
    for name in ("min_size", "max_size", "image_size"):
        value = getattr(config, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound):
            raise ModelLoadError(
                f"Cannot load the model in {model_id}: its config.json asks for `{name}` {value!r}; it must be a "
                f"whole number of pixels from 1 to {bound}, the largest input this model takes."
            )
    return config


def _check_processor_sizes(model_id: str, processor, model_type: str) -> None:
    """Refuses a processor whose `size` or `crop_size` is not a whole number of pixels from 1 to the model's bound
    (a negative size fails at the first prediction; 100000x100000 would allocate 30 GB per image)."""
    record = FAMILIES_BY_TYPE.get(model_type)
    bound = record.input_max_side if record is not None else DEFAULT_MAX_INPUT_SIDE
    for name in ("size", "crop_size"):
        value = getattr(processor, name, None)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):  # transformers' SizeDict
            value = dataclasses.asdict(value)
        sides = {key: side for key, side in value.items() if side is not None} if isinstance(value, dict) else value
        if (
            not isinstance(sides, dict)
            or not sides
            or any(
                isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= bound for side in sides.values()
            )
        ):
            raise ModelLoadError(
                f"Cannot load the model in {model_id}: its preprocessor_config.json asks for `{name}` "
                f"{_reason(repr(sides))}; each side must be a whole number of pixels from 1 to {bound}, the largest "
                "input this model takes."
            )


def _shape_mismatches(model_id: str, config, auto_class) -> list[str]:
    """The weights of a local `model.safetensors` whose shapes differ from those `config` gives them, as
    `name (file shape; config shape)`; empty when the folder is not local or holds other files."""
    from safetensors import safe_open

    weights = Path(model_id) / "model.safetensors"
    if not weights.is_file():
        return []
    try:
        with torch.device("meta"):
            expected = {name: tuple(t.shape) for name, t in auto_class.from_config(config).state_dict().items()}
        with safe_open(weights, "pt") as stored:
            shapes = {name: tuple(stored.get_slice(name).get_shape()) for name in stored.keys()}
    except Exception:  # only to name the weights: the caller says the shapes differ either way
        return []
    return [
        f"{name} ({'x'.join(map(str, shape))} in the file; {'x'.join(map(str, expected[name]))} in the config)"
        for name, shape in sorted(shapes.items())
        if name in expected and expected[name] != shape
    ]


def load_pretrained(model_id: str, revision: str | None = None, auto_class=AutoModelForImageClassification):
    """
    A model (the task model `auto_class` loads) and its processor from a folder or a Hub repo id, in eval mode.

    Strict, unlike `from_pretrained`'s default: only safetensors weights are read (a pickled `pytorch_model.bin`
    can run code when loaded), and a checkpoint whose weights do not match the model exactly (missing, unexpected
    or mismatched keys, which `from_pretrained` would fill with random values) is refused. The config and the
    processor are checked before anything runs: a file nested too deep, a size that is negative or larger than the
    model's input bound (its record's `input_max_side`), or a network that cannot be built is refused.

    Raises:
        `ModelLoadError`: naming the folder or repo and the file (`config.json`, `model.safetensors`,
            `preprocessor_config.json`), and the weights or the setting at fault.
    """
    config = load_config(model_id, revision)
    if type(config) not in auto_class._model_mapping:  # transformers would list every class it does take
        held = FAMILIES_BY_TYPE.get(config.model_type)
        taken = [record.model_type for record in FAMILIES_BY_TYPE.values() if record.task_auto_class is auto_class]
        raise ModelLoadError(
            f"Cannot load the model in {model_id} here: it holds a {config.model_type!r} model"
            + (f" ({held.title})" if held else "")
            + f", and this needs {' or '.join(map(repr, taken)) or auto_class.__name__}. Give the folder or repo of "
            "a model of that kind."
        )
    try:
        model, info = auto_class.from_pretrained(
            model_id, config=config, revision=revision, use_safetensors=True, output_loading_info=True
        )
    except SafetensorError as error:
        raise ModelLoadError(
            f"Cannot load the model in {model_id}: its weights file (model.safetensors) is corrupt or truncated "
            f"({error}). Copy or download it again."
        ) from error
    except OSError as error:
        folder = Path(model_id)
        if folder.is_dir() and not list(folder.glob("*.safetensors")) and list(folder.glob("*.bin")):
            raise ModelLoadError(
                f"Cannot load the model in {model_id}: it holds only pickled PyTorch weights (*.bin), which can run "
                "code when loaded; cervix_hf reads safetensors only. Convert it where you trust the file: "
                "load it with from_pretrained(..., use_safetensors=False) and save_pretrained() it again."
            ) from error
        raise
    except (RuntimeError, ValueError, TypeError) as error:  # RecursionError is a RuntimeError
        if "mismatch" in str(error):
            mismatches = _shape_mismatches(model_id, config, auto_class)
            shown = "; ".join(mismatches[:5]) + (f" and {len(mismatches) - 5} more" if len(mismatches) > 5 else "")
            raise ModelLoadError(
                f"Cannot load the model in {model_id}: the weights in model.safetensors have other shapes than "
                f"config.json gives them{': ' + shown if shown else ''}. Use the config saved with these weights."
            ) from None
        raise ModelLoadError(
            f"Cannot load the model in {model_id}: the network its config.json describes cannot be built "
            f"({type(error).__name__}: {_reason(error)})."
        ) from None
    problems = [
        f"{what.replace('_', ' ')}: {', '.join(sorted(map(str, keys))[:10])}"
        + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
        for what in ("missing_keys", "unexpected_keys", "mismatched_keys")
        if (keys := info.get(what))
    ]
    if problems or info.get("error_msgs"):
        raise ModelLoadError(
            f"The weights in {model_id} do not match its {type(model).__name__} ("
            + "; ".join(problems + list(info.get("error_msgs") or []))
            + "). Loading it would fill those weights with random values: use the complete checkpoint that "
            "save_pretrained wrote, or train it again."
        )
    try:
        processor = AutoImageProcessor.from_pretrained(model_id, revision=revision)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise ModelLoadError(
            f"Cannot load the model in {model_id}: its preprocessor_config.json does not describe a processor "
            f"({type(error).__name__}: {_reason(error)})."
        ) from None
    _check_processor_sizes(model_id, processor, config.model_type)
    return model.eval(), processor


def load_classifier(model_id: str, revision: str | None = None, runtime: str = "torch"):
    """
    A ColpoNet (or any image classifier) and its processor from a folder or a Hub repo id, in eval mode.

    `runtime`: `"torch"`; `"onnx"`, the folder's ONNX export run by ONNX Runtime (int8 when exported, else fp32;
    see `cervix_hf.export.classifiers`), called like the PyTorch model so every prediction function takes it;
    `"openvino"`, the same export run by OpenVINO; or `"auto"`, the export when the folder has one (run by OpenVINO
    where it is installed and passed the export's check, else ONNX Runtime), else PyTorch.
    """
    if runtime not in CLASSIFIER_RUNTIMES:
        raise ValueError(f"Unknown classifier runtime {runtime!r}; choose one of {', '.join(CLASSIFIER_RUNTIMES)}.")
    if runtime != "torch":
        from cervix_hf.export.classifiers import available_precision, load_onnx

        if runtime != "auto" or (Path(model_id).is_dir() and available_precision(model_id)):
            return load_onnx(model_id, engine=EXPORT_ENGINES.get(runtime))
    return load_pretrained(model_id, revision, AutoModelForImageClassification)


def passes_quality_gate(quality: ImageQualityReport, ignore_quality_gate: bool = False) -> bool:
    """Whether a photo with this quality report is classified: the gate passed it, or the user overrode the gate."""
    return quality.is_acceptable or ignore_quality_gate


@dataclass
class PreparedPhoto:
    """One colposcopy photo as the classifier takes it (`pixel_values`, `[1, 3, H, W]`), with the quality gate's
    report: computed once, then shared by classification and Grad-CAM."""

    pixel_values: torch.Tensor
    quality: ImageQualityReport


def prepare_cervix_photo(processor, image) -> PreparedPhoto:
    """Reads `image` (a path, file, PIL image or array), runs the quality gate and the processor on it."""
    inputs = processor(load_model_input(image, "colponet"), return_tensors="pt", return_quality_report=True)
    return PreparedPhoto(inputs["pixel_values"], inputs["quality_reports"][0])


@torch.inference_mode()
def classify_cervix_type(model, processor, image, ignore_quality_gate: bool = False) -> CervixTypePrediction:
    """
    Runs the quality gate on `image` (a path, file, PIL image or array, or a [`PreparedPhoto`]), then the classifier
    unless the photo is rejected and `ignore_quality_gate` is `False`.
    """
    prepared = image if isinstance(image, PreparedPhoto) else prepare_cervix_photo(processor, image)
    quality = prepared.quality
    if not passes_quality_gate(quality, ignore_quality_gate):
        return CervixTypePrediction(quality=quality, classified=False)
    answer = processor.post_process_classification(model(pixel_values=prepared.pixel_values), model.config)[0]
    return CervixTypePrediction(
        quality=quality, classified=True, label=answer["label"], probabilities=answer["probabilities"]
    )


@dataclass
class CervixTypeExplanation:
    """
    What drove the cervix-type prediction of one photo, or why there is none.

    Args:
        quality (`ImageQualityReport`): the quality gate's report.
        heatmap (`torch.Tensor`, *optional*): the Grad-CAM map on the model's last feature map (non-negative, not
            normalised); `None` when the photo was not classified.
        label (`str`, *optional*): the type it explains, the most probable one.
    """

    quality: ImageQualityReport
    heatmap: torch.Tensor | None = None
    label: str | None = None


@torch.inference_mode()
def explain_cervix_type(
    model, processor, image, ignore_quality_gate: bool = False, prediction: CervixTypePrediction | None = None
) -> CervixTypeExplanation:
    """
    Grad-CAM (in PyTorch: `model` must be the PyTorch model) of `image` (as [`classify_cervix_type`] takes it, a
    [`PreparedPhoto`] included), under the same quality-gate decision. It explains `prediction`'s type when given
    (the classification already made, possibly by an exported model, so the heat map is of the type shown beside
    it), else the PyTorch model's most probable type.
    """
    prepared = image if isinstance(image, PreparedPhoto) else prepare_cervix_photo(processor, image)
    if not passes_quality_gate(prepared.quality, ignore_quality_gate):
        return CervixTypeExplanation(prepared.quality)
    target = model.config.label2id[prediction.label] if prediction is not None and prediction.classified else None
    heatmap, target = grad_cam(model, prepared.pixel_values, target)
    return CervixTypeExplanation(prepared.quality, heatmap, model.config.id2label[target])


@dataclass
class CellDetection:
    """One detected cell: `box` is (xmin, ymin, xmax, ymax) in pixels of the original image."""

    label: str
    score: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict:
        xmin, ymin, xmax, ymax = self.box
        return {"label": self.label, "score": self.score, "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def load_detector(model_id: str, revision: str | None = None, runtime: str = "torch"):
    """
    A cell detector and its processor from a folder or a Hub repo id, in eval mode.

    `runtime`: `"torch"`; `"bf16"`, its backbone and feature pyramid (most of its time) under CPU bfloat16
    autocast ([`use_bf16_backbone`]); `"onnx"`, its backbone, RPN head and box head run by ONNX Runtime from the
    folder's export (int8 when exported, else fp32; see `cervix_hf.export.detector`), the rest of Faster R-CNN
    unchanged; `"openvino"`, those parts run by OpenVINO; or `"auto"`, the export when the folder has one (run by
    OpenVINO where it is installed and passed the export's check, else ONNX Runtime), else PyTorch.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown detector runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    model, processor = load_pretrained(model_id, revision, AutoModelForObjectDetection)
    if runtime in ("onnx", "openvino", "auto"):
        from cervix_hf.export.detector import available_detector_precision, use_onnx_parts

        precision = available_detector_precision(model_id) if Path(model_id).is_dir() else None
        if runtime != "auto" or precision:
            return use_onnx_parts(model, model_id, precision or "fp32", engine=EXPORT_ENGINES.get(runtime)), processor
    return (use_bf16_backbone(model) if runtime == "bf16" else model), processor


class _Bf16Features(torch.nn.Module):
    """A feature extractor run under CPU bfloat16 autocast, its feature maps returned in float32."""

    def __init__(self, features: torch.nn.Module):
        super().__init__()
        self.features = features
        self.out_channels = features.out_channels

    def forward(self, pixel_values: torch.Tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            maps = self.features(pixel_values)
        return type(maps)((name, value.float()) for name, value in maps.items())


def use_bf16_backbone(detector):
    """
    `detector` (changed in place, and returned) with its backbone and feature pyramid under bfloat16 autocast: the
    region proposals, RoI heads and box decoding stay in float32, so boxes keep their precision. For inference on
    CPUs with bfloat16 instructions (AVX-512 BF16, AMX); `python -m benchmarks.runtimes` measures speed and agreement.
    """
    inner = detector.detector
    if not isinstance(inner.backbone, _Bf16Features):
        inner.backbone = _Bf16Features(inner.backbone)
    return detector


@torch.inference_mode()
def detect_cells(
    model,
    processor,
    image,
    threshold: float = 0.5,
    tile_size: int | None = None,
    overlap: int = 128,
    max_decoded_pixels: int | None = None,
) -> list[CellDetection]:
    """
    Cells found in `image` (a path, file, PIL image or array) scoring above `threshold`, best first.

    With `tile_size`, an image larger than `tile_size` pixels on a side is detected tile by tile (square tiles
    sharing at least `overlap` pixels, merged by the detector folder's `detect_tiled`), so a whole slide is not
    shrunk to the model's input size; pick a `tile_size` at which the model keeps the tiles' scale (its `min_size`).
    Without it, an image over the detector's `input_max_side` (4096 px) is reduced to it first. Boxes are in pixels
    of `image` as given either way. `max_decoded_pixels` is `load_image`'s decoding budget (the app sets one).
    """
    image = load_model_input(image, "cell_detector", reduce=tile_size is None, max_decoded_pixels=max_decoded_pixels)
    width, height = original_size(image)

    def detect(tile, target_size=None):
        outputs = model(**processor(tile, return_tensors="pt").to(model_device(model)))
        target_sizes = [target_size or (tile.height, tile.width)]
        return processor.post_process_object_detection(outputs, threshold, target_sizes=target_sizes)[0]

    if tile_size is None:
        result = detect(image, (height, width))
    else:
        result = detect_tiled(detect, image, tile_size, overlap)
    return [
        CellDetection(model.config.id2label[int(label)], float(score), tuple(float(v) for v in box))
        for score, label, box in zip(result["scores"], result["labels"], result["boxes"])
    ]


@dataclass
class PrePostPrediction:
    """
    The decision for one case from its pre-stain and post-stain images.

    Args:
        label (`str`): "Negative" or "Positive" at `threshold`.
        probability (`float`): probability of Positive.
        threshold (`float`): the threshold the decision used.
        pre_to_post_attention (`torch.Tensor` of shape `(height, width, height, width)`): attention of each
            pre-stain position to each post-stain position, averaged over heads, on the backbone's token grid.
        threshold_origin (`str`): where the threshold came from, in words (see [`prepost_threshold`]).
    """

    label: str
    probability: float
    threshold: float
    pre_to_post_attention: torch.Tensor
    threshold_origin: str = ""

    def to_dict(self) -> dict:
        return {"label": self.label, "probability": self.probability, "threshold": self.threshold}


def load_prepost(model_id: str, revision: str | None = None):
    """A pre/post fusion model and its processor from a folder or a Hub repo id, in eval mode."""
    return load_classifier(model_id, revision)


class OperatingPointError(ValueError):
    """The threshold asked for cannot be used: both a threshold and an operating point, or a point the model lacks."""


def prepost_threshold(config, operating_point: str | None = None, threshold: float | None = None) -> tuple[float, str]:
    """
    The threshold a pre/post decision uses, and where it came from in words: `threshold` when given, else the named
    operating point's (chosen on the validation split, saved in `config`), else `config.decision_threshold`.

    Raises:
        [`OperatingPointError`]: both are given, or the model has no such operating point, or training could not
        define it.
    """
    try:
        value = config.threshold_for(operating_point, threshold)
    except ValueError as error:
        raise OperatingPointError(str(error)) from None
    if threshold is not None:
        return value, "your threshold"
    if operating_point is None:
        return value, "the model's decision threshold"
    point = config.operating_points[operating_point]
    origin = f"the {operating_point} operating point"
    if point.get("sensitivity") is not None and point.get("specificity") is not None:
        origin += f": validation sensitivity {point['sensitivity']:.2f}, specificity {point['specificity']:.2f}"
    if point.get("achieved") is False:
        origin += f"; its target was not reached: {point.get('reason')}"
    return value, origin


@torch.inference_mode()
def classify_cell_batch(model, processor, images: list, threshold: float) -> list[dict]:
    """
    The cell classifier's answers for loaded cell images (see `load_model_input`), one batch: the processor's
    `post_process_classification` (class probabilities, the group roll-up, the decision at `threshold`).
    """
    inputs = processor(images, return_tensors="pt")
    outputs = model(pixel_values=inputs["pixel_values"].to(model_device(model)))
    return processor.post_process_classification(outputs, model.config, threshold=threshold)


def classify_cell(model, processor, image, threshold: float | None = None, operating_point: str | None = None) -> dict:
    """
    One Pap-smear cell image (a path, file, PIL image or array) through the cell classifier: its class
    probabilities, their roll-up into normal and abnormal, and the decision at `threshold`, else the named
    `operating_point`'s, else the model's decision threshold; with `threshold_origin` saying which, in words.

    Raises:
        [`OperatingPointError`]: as [`prepost_threshold`].
    """
    value, origin = prepost_threshold(model.config, operating_point, threshold)
    answer = classify_cell_batch(model, processor, [load_model_input(image, "cell_classifier")], value)[0]
    return {**answer, "operating_point": operating_point if threshold is None else None, "threshold_origin": origin}


@torch.inference_mode()
def classify_prepost(
    model, processor, pre_image, post_image, threshold: float | None = None, operating_point: str | None = None
) -> PrePostPrediction:
    """
    Negative/Positive for one case, at `threshold`, else at the named `operating_point` (`"screening"`,
    `"balanced"`, `"confirmatory"`), else at the model's `config.decision_threshold` ([`prepost_threshold`]); a case
    is Positive when its probability is at or above it.
    """
    value, origin = prepost_threshold(model.config, operating_point, threshold)
    pre_image, post_image = (load_model_input(view, "prepost_fusion") for view in (pre_image, post_image))
    check_pair(pre_image, post_image)
    outputs = model(**processor(pre_image, post_image, return_tensors="pt"))
    decision = processor.post_process_classification(outputs, value)[0]
    height, width = outputs.feature_map_size
    attention = outputs.pre_to_post_attentions[0].mean(0).reshape(height, width, height, width)
    return PrePostPrediction(decision["label"], decision["probability"], decision["threshold"], attention, origin)


class PairError(ValueError):
    """A pre/post pair that cannot be two photos of one cervix: the same image twice, or sizes far apart."""


# Two photos of one examination come from one camera: their areas differ by a factor of 4 at most.
MAX_PAIR_AREA_RATIO = 4.0


def check_pair(pre_image, post_image) -> None:
    """Refuses a pair whose two images are the same picture, or whose sizes are too far apart to be one camera's."""
    (pre_width, pre_height), (post_width, post_height) = original_size(pre_image), original_size(post_image)
    if pre_image.size == post_image.size and np.array_equal(np.asarray(pre_image), np.asarray(post_image)):
        raise PairError(
            "The pre-stain and post-stain images are the same picture. Upload the photo taken before the stain "
            "(after normal saline) and the one taken after it (after acetic acid)."
        )
    areas = sorted((pre_width * pre_height, post_width * post_height))
    if areas[1] > MAX_PAIR_AREA_RATIO * areas[0]:
        raise PairError(
            f"The pre-stain image is {pre_width}x{pre_height} pixels and the post-stain image {post_width}x"
            f"{post_height}: more than {MAX_PAIR_AREA_RATIO:g} times apart in size, so not two photos of one "
            "examination from one camera. Upload the matching pair."
        )


def redecide_prepost(
    model, processor, prediction: PrePostPrediction, threshold: float | None = None, operating_point: str | None = None
) -> PrePostPrediction:
    """
    `prediction` decided again at another threshold or operating point (chosen as in [`classify_prepost`]) without
    running the model: the probability and the attention are the case's, only the decision changes.
    """
    value, origin = prepost_threshold(model.config, operating_point, threshold)
    outputs = {"probabilities": torch.tensor([prediction.probability])}
    decision = processor.post_process_classification(outputs, value)[0]
    return PrePostPrediction(
        decision["label"], prediction.probability, decision["threshold"], prediction.pre_to_post_attention, origin
    )
