"""One record per model: every fact the rest of cervix_hf needs about a model, in one place.

A model is a folder (`cervix_hf/<model folder>/`: configuration, modeling, image processing; self-contained, because
`save_pretrained` copies it beside the weights as remote code) plus one `ModelFamily` here that points into it.
Registration with transformers' Auto classes, the model sizes, the published repo ids, the app's model resolution,
the model cards and publishing all read `FAMILIES`; adding a model is adding a folder and a record (see
ARCHITECTURE.md).

Each model has one stem, its `model_type` (`colponet`, `cell_detector`, `prepost_fusion`): the folder, the classes,
the card template, the published repo and its `CERVIX_HF_<MODEL_TYPE>_REPO` variable follow it. `name` is the
shorter word the app and the command line have always used (`--prepost`, `CERVIX_HF_PREPOST`,
`python -m train.train_prepost`); it stays so that existing commands and Space variables keep working.

Two registrations, for two kinds of users:
- in-process (`AutoConfig.register` ...): after `import cervix_hf`, `AutoModel.from_pretrained(dir)` resolves our
  classes without `trust_remote_code`;
- for remote code (`register_for_auto_class`): `save_pretrained` writes `auto_map` into `config.json` and copies the
  model folder's `.py` files beside the weights, so code that never imports cervix_hf loads the model with
  `trust_remote_code=True`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForObjectDetection,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .models import cell_detector, colponet, prepost_fusion
from .metrics import binary, classification, detection

# The published ResNet-50 size (each config's defaults), and a tiny one for smoke runs and tests on a CPU: the same
# architecture with a few channels per layer, which trains in seconds and says nothing about the full model's accuracy.
MODEL_SIZES = ("resnet-50", "tiny")
TINY_RESNET = {
    "model_type": "resnet",
    "embedding_size": 8,
    "hidden_sizes": [8, 16, 32, 64],
    "depths": [1, 1, 1, 1],
    "layer_type": "bottleneck",
}


def tiny_backbone_config(out_features: list[str]) -> dict:
    return {**TINY_RESNET, "out_features": out_features}


@dataclass(frozen=True)
class IndexMetric:
    """A model-index entry of the card: Hub metric `type`, its display `name`, and its path in `eval_results.json`."""

    type: str
    name: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class ModelFamily:
    r"""
    Everything cervix_hf knows about one model, keyed by its `model_type`.

    Args:
        model_type (`str`): `config.model_type`, the model's stem; a saved config names it, so it never changes.
        name (`str`): the app's and the command line's word for it: the app's flag `--<name>` and its variable
            `CERVIX_HF_<NAME>`.
        title (`str`): what the app calls it.
        config_class, base_model_class, task_model_class, processor_class (`type`): its classes; the base model
            (features, no task head) is what `AutoModel` loads.
        task_auto_class (`type`): the Auto class of its task model.
        pipeline_task (`str`): the transformers pipeline that runs it, also the `task` of its `eval_results.json`.
        pipeline_tag (`str`): the Hub's `pipeline_tag` in its card.
        label_names (`tuple[str, ...]`): its default labels, in class order.
        tiny_config (`Mapping`): the config arguments of the `"tiny"` size.
        repo_id (`str`): its published Hub repo.
        checkpoint_folder (`str`): the folder under `checkpoints/` the app looks in, as in the training command.
        training_script (`str`): the module that trains it (`python -m <training_script>`).
        training_data (`str`): what `--data` is, for the command shown to users.
        card_sections (`tuple[str, ...]`): the card sections it requires besides every card's.
        index_metrics (`tuple[IndexMetric, ...]`): the card's model-index entries.
        eval_problems (`Callable[[dict], list[str]]`): the contradictions between the numbers of its evaluation file,
            defined beside its metrics (`cervix_hf.metrics`).
        pipeline_class (`type`, *optional*): a pipeline class to register for `pipeline_task`, where transformers has
            none.
    """

    model_type: str
    name: str
    title: str
    config_class: type
    base_model_class: type
    task_model_class: type
    processor_class: type
    task_auto_class: type
    pipeline_task: str
    pipeline_tag: str
    label_names: tuple[str, ...]
    tiny_config: Mapping[str, Any]
    repo_id: str
    checkpoint_folder: str
    training_script: str
    training_data: str
    card_sections: tuple[str, ...]
    index_metrics: tuple[IndexMetric, ...]
    eval_problems: Callable[[dict], list[str]]
    pipeline_class: type | None = field(default=None)

    @property
    def env_var(self) -> str:
        """The app's variable naming a folder or Hub id to load it from, e.g. `CERVIX_HF_CELL_DETECTOR`."""
        return f"CERVIX_HF_{self.name.upper()}"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def repo_env_var(self) -> str:
        """The variable overriding its published repo id, e.g. `CERVIX_HF_COLPONET_REPO`."""
        return f"CERVIX_HF_{self.model_type.upper()}_REPO"

    @property
    def card_template(self) -> str:
        return f"{self.model_type}.md.j2"

    @property
    def train_command(self) -> str:
        return (
            f"python -m {self.training_script} --data {self.training_data} "
            f"--output-dir checkpoints/{self.checkpoint_folder}"
        )

    @property
    def auto_class_name(self) -> str:
        return self.task_auto_class.__name__

    def config(self, size: str = "resnet-50", **overrides):
        """A config of the named size (`MODEL_SIZES`); `overrides` are passed to the config."""
        if size not in MODEL_SIZES:
            raise ValueError(f"Unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}.")
        base = self.tiny_config if size == "tiny" else {}
        return self.config_class(**{**base, **overrides})


FAMILIES = (
    ModelFamily(
        model_type="colponet",
        name="colponet",
        title="ColpoNet: cervix type (Type 1/2/3)",
        config_class=colponet.ColpoNetConfig,
        base_model_class=colponet.ColpoNetModel,
        task_model_class=colponet.ColpoNetForImageClassification,
        processor_class=colponet.ColpoNetImageProcessor,
        task_auto_class=AutoModelForImageClassification,
        pipeline_task="image-classification",
        pipeline_tag="image-classification",
        label_names=tuple(colponet.COLPONET_LABELS),
        tiny_config={
            "backbone_config": tiny_backbone_config(["stage4"]),
            "use_pretrained_backbone": False,
            "reduction_channels": 16,
            "dense_num_layers": 2,
            "dense_growth_rate": 8,
            "dense_bottleneck_factor": 2,
            "inception_branch_channels": [8, 8, 8, 4, 4, 4],
        },
        repo_id="cervix-hf/colponet",
        checkpoint_folder="colponet",
        training_script="train.train_colponet",
        training_data="DATA",
        card_sections=("Quality gate", "Classification report", "Confusion matrix"),
        index_metrics=(
            IndexMetric("accuracy", "Accuracy", ("metrics", "accuracy")),
            IndexMetric("f1", "Macro F1", ("metrics", "classification_report", "macro avg", "f1-score")),
            IndexMetric("log_loss", "Log loss", ("metrics", "log_loss")),
            IndexMetric("roc_auc", "Macro ROC-AUC (one-vs-rest)", ("metrics", "roc_auc")),
        ),
        eval_problems=classification.eval_results_problems,
    ),
    ModelFamily(
        model_type="cell_detector",
        name="cell_detector",
        title="Cell detector (Faster R-CNN)",
        config_class=cell_detector.CellDetectorConfig,
        base_model_class=cell_detector.CellDetectorModel,
        task_model_class=cell_detector.CellDetectorForObjectDetection,
        processor_class=cell_detector.CellDetectorImageProcessor,
        task_auto_class=AutoModelForObjectDetection,
        pipeline_task="object-detection",
        pipeline_tag="object-detection",
        label_names=tuple(cell_detector.SIPAKMED_LABELS),
        tiny_config={
            "backbone_config": tiny_backbone_config(["stage1", "stage2", "stage3", "stage4"]),
            "use_pretrained_backbone": False,
            "trainable_backbone_stages": 4,
            "fpn_out_channels": 16,
            "min_size": 256,
            "max_size": 256,
            "rpn_pre_nms_top_n": 200,
            "rpn_post_nms_top_n": 100,
            "detections_per_image": 50,
        },
        repo_id="cervix-hf/cell-detector",
        checkpoint_folder="cell-detector",
        training_script="train.train_detector",
        training_data="DATA",
        card_sections=("Per-class average precision",),
        index_metrics=(
            IndexMetric("mean_average_precision", "mAP@[.5:.95]", ("metrics", "map")),
            IndexMetric("mean_average_precision_50", "mAP@.5", ("metrics", "map_50")),
            IndexMetric("mean_average_recall", "mAR@[.5:.95]", ("metrics", "mar")),
        ),
        eval_problems=detection.eval_results_problems,
    ),
    ModelFamily(
        model_type="prepost_fusion",
        name="prepost",
        title="Pre/post fusion: Negative/Positive",
        config_class=prepost_fusion.PrePostFusionConfig,
        base_model_class=prepost_fusion.PrePostFusionModel,
        task_model_class=prepost_fusion.PrePostFusionForImageClassification,
        processor_class=prepost_fusion.PrePostFusionImageProcessor,
        task_auto_class=AutoModelForImageClassification,
        pipeline_task=prepost_fusion.PIPELINE_TASK,
        pipeline_tag="image-classification",
        label_names=tuple(prepost_fusion.PREPOST_LABELS),
        tiny_config={
            "backbone_config": tiny_backbone_config(["stage4"]),
            "use_pretrained_backbone": False,
            "fusion_hidden_size": 16,
            "num_attention_heads": 2,
        },
        repo_id="cervix-hf/prepost-fusion",
        checkpoint_folder="prepost",
        training_script="train.train_prepost",
        training_data="PAIRS",
        card_sections=("Sensitivity and specificity", "Confusion matrix", "Threshold table", "Operating points"),
        index_metrics=(
            IndexMetric("sensitivity", "Sensitivity at the decision threshold", ("metrics", "report", "sensitivity")),
            IndexMetric("specificity", "Specificity at the decision threshold", ("metrics", "report", "specificity")),
            IndexMetric("accuracy", "Accuracy at the decision threshold", ("metrics", "report", "accuracy")),
            IndexMetric("roc_auc", "ROC-AUC", ("metrics", "report", "roc_auc")),
            IndexMetric("average_precision", "PR-AUC (average precision)", ("metrics", "report", "pr_auc")),
        ),
        eval_problems=binary.eval_results_problems,
        pipeline_class=prepost_fusion.PrePostClassificationPipeline,
    ),
)
FAMILIES_BY_TYPE = {family.model_type: family for family in FAMILIES}


def family(model_type: str) -> ModelFamily:
    """The record of `model_type`, or a `ValueError` naming the known ones."""
    try:
        return FAMILIES_BY_TYPE[model_type]
    except KeyError:
        raise ValueError(
            f"Unknown model type {model_type!r}; cervix_hf's models are {', '.join(FAMILIES_BY_TYPE)}."
        ) from None


def register_auto_classes() -> None:
    for record in FAMILIES:
        config_class, processor_class = record.config_class, record.processor_class
        AutoConfig.register(record.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, record.base_model_class, exist_ok=True)
        record.base_model_class.register_for_auto_class("AutoModel")
        AutoImageProcessor.register(
            config_class, image_processor_classes={"torchvision": processor_class}, exist_ok=True
        )
        config_class.register_for_auto_class()
        processor_class.register_for_auto_class("AutoImageProcessor")
        record.task_auto_class.register(config_class, record.task_model_class, exist_ok=True)
        record.task_model_class.register_for_auto_class(record.auto_class_name)
        if record.pipeline_class is not None:
            PIPELINE_REGISTRY.register_pipeline(
                record.pipeline_task,
                pipeline_class=record.pipeline_class,
                pt_model=record.task_auto_class,
                type="image",
            )
