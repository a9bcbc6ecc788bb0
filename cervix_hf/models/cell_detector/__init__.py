"""Cell detector: Faster R-CNN finding and classifying cells in Pap-smear images."""

from .configuration_cell_detector import SIPAKMED_LABELS, CellDetectorConfig
from .image_processing_cell_detector import CellDetectorImageProcessor
from .modeling_cell_detector import (
    CellDetectorForObjectDetection,
    CellDetectorModel,
    CellDetectorModelOutput,
    CellDetectorOutput,
    CellDetectorPreTrainedModel,
)
