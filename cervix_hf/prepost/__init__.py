"""Pre/post fusion: Negative/Positive from a pre-stain and a post-stain image of the same cervix."""

from .configuration_prepost import OPERATING_POINT_NAMES, PREPOST_LABELS, PrePostFusionConfig
from .image_processing_prepost import PrePostFusionImageProcessor
from .modeling_prepost import (
    PrePostFusionForImageClassification,
    PrePostFusionModel,
    PrePostFusionModelOutput,
    PrePostFusionOutput,
    PrePostFusionPreTrainedModel,
)
from .pipeline_prepost import PIPELINE_TASK, PrePostClassificationPipeline
