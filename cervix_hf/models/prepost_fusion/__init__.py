"""Pre/post fusion: Negative/Positive from a pre-stain and a post-stain image of the same cervix."""

from .configuration_prepost_fusion import OPERATING_POINT_NAMES, PREPOST_LABELS, PrePostFusionConfig
from .image_processing_prepost_fusion import PrePostFusionImageProcessor
from .modeling_prepost_fusion import (
    PrePostFusionForImageClassification,
    PrePostFusionModel,
    PrePostFusionModelOutput,
    PrePostFusionOutput,
    PrePostFusionPreTrainedModel,
)
from .pipeline_prepost_fusion import PIPELINE_TASK, PrePostClassificationPipeline
