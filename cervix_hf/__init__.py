"""cervix_hf: transformers-style models for cervical-cancer images, with training, evaluation and a Gradio Space.

A research demo, never a diagnosis: no output of these models is a clinical finding.
"""

from .image_io import ImageLoadError, load_image
from .models.cell_classifier import (
    HERLEV_LABELS,
    CellClassificationPipeline,
    CellClassifierConfig,
    CellClassifierForImageClassification,
    CellClassifierImageProcessor,
    CellClassifierModel,
)
from .models.cell_detector import (
    SIPAKMED_LABELS,
    CellDetectorConfig,
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    CellDetectorModel,
)
from .models.colponet import (
    COLPONET_LABELS,
    ColpoNetConfig,
    ColpoNetForImageClassification,
    ColpoNetImageClassificationPipeline,
    ColpoNetImageProcessor,
    ColpoNetModel,
    ImageQualityReport,
    PhotoRejectedError,
    assess_image_quality,
    sharpen_image,
)
from .models.prepost_fusion import (
    PREPOST_LABELS,
    PrePostClassificationPipeline,
    PrePostFusionConfig,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
    PrePostFusionModel,
)
from .pretrained_backbone import PretrainedBackboneUnavailableError, load_pretrained_backbone
from .registry import register_auto_classes

register_auto_classes()

__version__ = "0.1.0"

__all__ = [
    "HERLEV_LABELS",
    "CellClassificationPipeline",
    "CellClassifierConfig",
    "CellClassifierForImageClassification",
    "CellClassifierImageProcessor",
    "CellClassifierModel",
    "SIPAKMED_LABELS",
    "CellDetectorConfig",
    "CellDetectorForObjectDetection",
    "CellDetectorImageProcessor",
    "CellDetectorModel",
    "COLPONET_LABELS",
    "ColpoNetConfig",
    "ColpoNetForImageClassification",
    "ColpoNetImageClassificationPipeline",
    "ColpoNetImageProcessor",
    "ColpoNetModel",
    "ImageLoadError",
    "ImageQualityReport",
    "PREPOST_LABELS",
    "PhotoRejectedError",
    "PrePostClassificationPipeline",
    "PrePostFusionConfig",
    "PrePostFusionForImageClassification",
    "PrePostFusionImageProcessor",
    "PrePostFusionModel",
    "PretrainedBackboneUnavailableError",
    "assess_image_quality",
    "load_image",
    "load_pretrained_backbone",
    "register_auto_classes",
    "sharpen_image",
]
