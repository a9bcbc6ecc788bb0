"""Cell classifier: the class of one Pap-smear cell (the Herlev database's seven), with its normal/abnormal roll-up."""

from .configuration_cell_classifier import (
    HERLEV_GROUPS,
    HERLEV_LABELS,
    HERLEV_POSITIVE_GROUP,
    OPERATING_POINT_NAMES,
    CellClassifierConfig,
)
from .image_processing_cell_classifier import CellClassifierImageProcessor
from .modeling_cell_classifier import (
    CellClassifierForImageClassification,
    CellClassifierModel,
    CellClassifierModelOutput,
    CellClassifierOutput,
    CellClassifierPreTrainedModel,
)
from .pipeline_cell_classifier import PIPELINE_TASK, CellClassificationPipeline
