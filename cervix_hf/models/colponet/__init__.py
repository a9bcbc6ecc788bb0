"""ColpoNet: cervix transformation-zone type (Type 1/2/3) from colposcopy photos, with its image-quality gate."""

from .configuration_colponet import COLPONET_LABELS, ColpoNetConfig
from .image_processing_colponet import ColpoNetImageProcessor
from .image_quality import ImageQualityReport, PhotoRejectedError, assess_image_quality, sharpen_image
from .modeling_colponet import (
    ColpoNetForImageClassification,
    ColpoNetImageClassifierOutput,
    ColpoNetModel,
    ColpoNetModelOutput,
    ColpoNetPreTrainedModel,
)
from .pipeline_colponet import ColpoNetImageClassificationPipeline
