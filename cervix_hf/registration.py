"""Registers cervix_hf's models with transformers' Auto classes.

Two registrations, for two kinds of users:
- in-process (`AutoConfig.register` ...): after `import cervix_hf`, `AutoModel.from_pretrained(dir)` resolves our
  classes without `trust_remote_code`;
- for remote code (`register_for_auto_class`): `save_pretrained` writes `auto_map` into `config.json` and copies the
  model folder's `.py` files beside the weights, so code that never imports cervix_hf loads the model with
  `trust_remote_code=True`.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForObjectDetection,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .cell_detector import (
    CellDetectorConfig,
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    CellDetectorModel,
)
from .colponet import ColpoNetConfig, ColpoNetForImageClassification, ColpoNetImageProcessor, ColpoNetModel
from .prepost import (
    PIPELINE_TASK,
    PrePostClassificationPipeline,
    PrePostFusionConfig,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
    PrePostFusionModel,
)

# (config, base model, {auto class name: (auto class, task model)}, image processor) for every model. The base model
# (features, no task head) is what `AutoModel` loads, as transformers' `ResNetModel` beside
# `ResNetForImageClassification`.
MODEL_FAMILIES = (
    (
        ColpoNetConfig,
        ColpoNetModel,
        {"AutoModelForImageClassification": (AutoModelForImageClassification, ColpoNetForImageClassification)},
        ColpoNetImageProcessor,
    ),
    (
        CellDetectorConfig,
        CellDetectorModel,
        {"AutoModelForObjectDetection": (AutoModelForObjectDetection, CellDetectorForObjectDetection)},
        CellDetectorImageProcessor,
    ),
    (
        PrePostFusionConfig,
        PrePostFusionModel,
        {"AutoModelForImageClassification": (AutoModelForImageClassification, PrePostFusionForImageClassification)},
        PrePostFusionImageProcessor,
    ),
)


def register_auto_classes() -> None:
    for config_class, base_model, task_models, processor_class in MODEL_FAMILIES:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, base_model, exist_ok=True)
        base_model.register_for_auto_class("AutoModel")
        AutoImageProcessor.register(
            config_class, image_processor_classes={"torchvision": processor_class}, exist_ok=True
        )
        config_class.register_for_auto_class()
        processor_class.register_for_auto_class("AutoImageProcessor")
        for auto_name, (auto_class, task_model) in task_models.items():
            auto_class.register(config_class, task_model, exist_ok=True)
            task_model.register_for_auto_class(auto_name)
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK,
        pipeline_class=PrePostClassificationPipeline,
        pt_model=AutoModelForImageClassification,
        type="image",
    )
