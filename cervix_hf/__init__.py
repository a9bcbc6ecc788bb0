"""cervix_hf: transformers-style models for cervical-cancer images, with training, evaluation and a Gradio Space.

A research demo, never a diagnosis: no output of these models is a clinical finding.

`import cervix_hf` registers the models with transformers' Auto classes (`cervix_hf.registry.register_auto_classes`),
so that `AutoModel.from_pretrained(folder)` resolves them without `trust_remote_code`. The names below are imported
on first use, as transformers' own are. The `cervix-hf` command itself (`cervix-hf ...` or `python -m cervix_hf`)
registers them only when a command first uses a model class (a name below, or a record's class), so that `--help`
answers without importing torch.
"""

import importlib
import os
import sys

__version__ = "0.1.0"

# Public name -> the module defining it, imported on first access (PEP 562).
_EXPORTS = {
    "cervix_hf.models.colponet": (
        "COLPONET_LABELS",
        "ColpoNetConfig",
        "ColpoNetForImageClassification",
        "ColpoNetImageClassificationPipeline",
        "ColpoNetImageProcessor",
        "ColpoNetModel",
        "ImageQualityReport",
        "PhotoRejectedError",
        "assess_image_quality",
        "sharpen_image",
    ),
    "cervix_hf.models.cell_detector": (
        "SIPAKMED_LABELS",
        "CellDetectorConfig",
        "CellDetectorForObjectDetection",
        "CellDetectorImageProcessor",
        "CellDetectorModel",
    ),
    "cervix_hf.models.cell_classifier": (
        "HERLEV_LABELS",
        "CellClassificationPipeline",
        "CellClassifierConfig",
        "CellClassifierForImageClassification",
        "CellClassifierImageProcessor",
        "CellClassifierModel",
    ),
    "cervix_hf.models.prepost_fusion": (
        "PREPOST_LABELS",
        "PrePostClassificationPipeline",
        "PrePostFusionConfig",
        "PrePostFusionForImageClassification",
        "PrePostFusionImageProcessor",
        "PrePostFusionModel",
    ),
    "cervix_hf.io.images": ("ImageLoadError", "load_image"),
    # Training-only, in the training scripts' package (`train` in a checkout, `cervix_hf.train` installed).
    "{training}.pretrained_backbone": ("PretrainedBackboneUnavailableError", "load_pretrained_backbone"),
    "cervix_hf.registry": ("register_auto_classes",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'cervix_hf' has no attribute {name!r}")
    module = _MODULE_OF[name]
    if module.startswith("{training}"):
        module = module.format(training=importlib.import_module("cervix_hf.commands").training_package())
    if module.startswith("cervix_hf.models."):
        importlib.import_module("cervix_hf.registry").register_auto_classes()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _started_as_command() -> bool:
    """Whether this process is the `cervix-hf` command: its console script, or `python -m cervix_hf`."""
    script = os.path.splitext(os.path.basename(sys.argv[0]))[0] if sys.argv else ""
    orig_argv = list(getattr(sys, "orig_argv", []))
    as_module = any(orig_argv[i : i + 2] == ["-m", "cervix_hf"] for i in range(len(orig_argv) - 1))
    return script == "cervix-hf" or as_module


if not _started_as_command():
    importlib.import_module("cervix_hf.registry").register_auto_classes()
