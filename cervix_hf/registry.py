"""One record per model: every fact the rest of cervix_hf needs about a model, in one place.

A model is a folder (`cervix_hf/models/<model_type>/`: configuration, modeling, image processing; self-contained,
because `save_pretrained` copies it beside the weights as remote code) plus one `ModelFamily` here that points into
it.
Registration with transformers' Auto classes, the model sizes, the published repo ids, the app's model resolution,
the model cards and publishing all read `FAMILIES`; adding a model is adding a folder and a record (see
ARCHITECTURE.md).

Each model has one stem, its `model_type` (`colponet`, `cell_detector`, `prepost_fusion`): the folder, the classes,
the card template, the training script `train/train_<model_type>.py`, its `checkpoints/<model_type>` folder, the
app's flag (`--cell-detector`) and variables (`CERVIX_HF_<MODEL_TYPE>`, `CERVIX_HF_<MODEL_TYPE>_REPO`), the
`cervix-hf train <model_type>` command and the published repo follow it. A record's `aliases` (`--prepost`,
`CERVIX_HF_PREPOST`, `checkpoints/cell-detector`, `train detector`) are accepted wherever the stem is, so that
Space variables, checkpoint folders and commands saved under them keep working (ARCHITECTURE.md lists them).

A record names its classes and functions (`"module:name"`) and imports them on first use, so that reading the
records (the command line's list of models, `--help`) costs no torch import.

Two registrations, for two kinds of users ([`register_auto_classes`], run by `import cervix_hf` outside the
`cervix-hf` command, and before a record's classes are first used):
- in-process (`AutoConfig.register` ...): after `import cervix_hf`, `AutoModel.from_pretrained(dir)` resolves our
  classes without `trust_remote_code`;
- for remote code (`register_for_auto_class`): `save_pretrained` writes `auto_map` into `config.json` and copies the
  model folder's `.py` files beside the weights, so code that never imports cervix_hf loads the model with
  `trust_remote_code=True`.
"""

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cervix_hf.commands import module_command, training_package

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


# ColpoNet for training from random weights on a CPU: a ResNet-18 layout (basic blocks, two per stage) at half
# width (32-256 channels, 3.0 M parameters in all, 12 MB of float32 weights) and narrower new blocks: small enough
# to train in minutes per epoch on 2 CPU cores and to ship in a repository, where the ResNet-50 size is 100 MB.
COLPONET_SMALL = {
    "backbone_config": {
        "model_type": "resnet",
        "embedding_size": 32,
        "hidden_sizes": [32, 64, 128, 256],
        "depths": [2, 2, 2, 2],
        "layer_type": "basic",
        "out_features": ["stage4"],
    },
    "use_pretrained_backbone": False,
    "reduction_channels": 128,
    "dense_growth_rate": 16,
    "inception_branch_channels": [32, 48, 64, 8, 16, 16],
    "classifier_dropout": 0.3,
}


# Every runtime a saved model can be run in (`cervix_hf.prediction.loader.load`); each record lists those of its
# model (`ModelFamily.runtimes`).
RUNTIMES = ("torch", "bf16", "onnx", "openvino", "auto")
CLASSIFIER_RUNTIMES = ("torch", "onnx", "openvino", "auto")


@functools.cache
def resolve(reference: str) -> Any:
    """The object a `"package.module:name"` reference names, imported on first use; `train.` is the training
    scripts' package as installed here (`train` in a checkout, `cervix_hf.train` installed)."""
    module, _, name = reference.partition(":")
    if module.startswith("train."):
        module = f"{training_package()}.{module.removeprefix('train.')}"
    return getattr(importlib.import_module(module), name)


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
        title (`str`): what the app calls it.
        package (`str`): its model folder as a module (`cervix_hf.models.<model_type>`).
        config_name, base_model_name, task_model_name, processor_name (`str`): its classes in `package`, imported
            on first use as `config_class`, `base_model_class`, `task_model_class` and `processor_class`; the base
            model (features, no task head) is what `AutoModel` loads.
        task_auto_class_name (`str`): the transformers Auto class of its task model (`task_auto_class`).
        pipeline_task (`str`): the transformers pipeline that runs it, also the `task` of its `eval_results.json`.
        pipeline_tag (`str`): the Hub's `pipeline_tag` in its card.
        labels_name (`str`): the constant in `package` holding its default labels (`label_names`, in class order).
        tiny_config (`Mapping`): the config arguments of the `"tiny"` size.
        repo_id (`str`): its published Hub repo.
        training_data (`str`): what `--data` is, for the command shown to users.
        card_sections (`tuple[str, ...]`): the card sections it requires besides every card's.
        index_metrics (`tuple[IndexMetric, ...]`): the card's model-index entries.
        eval_problems_ref (`str`): `"module:function"` listing the contradictions between the numbers of its
            evaluation file, defined beside its metrics (`cervix_hf.evaluation.metrics`); `eval_problems` is the function.
        pipeline_name (`str`, *optional*): a pipeline class in `package` to register for `pipeline_task`, where
            transformers has none (`pipeline_class`).
        input_max_side (`int`, *optional*, defaults to 2048): the longest side, in pixels, an input image is reduced
            to before the model sees it (`load_image(max_side=...)`), so that no request holds more pixels than the
            model needs, whatever the upload's size.
        input_min_side (`int`, *optional*, defaults to 32): the shortest side, in pixels, an input needs: below it
            the backbone's stride-32 feature map would be empty, so the image is refused with its size.
        input_max_aspect (`float`, *optional*): the most elongated input accepted (longer side over shorter side):
            a colposcopy photo is near 4:3, and a strip or a panorama squeezed into a square would be read as
            nonsense; `None` accepts any (a Pap-smear field or slide may be long).
        input_columns (`tuple[str, ...]`, *optional*, defaults to `("image",)`): the columns naming one input in
            `cervix-hf predict`'s rows (the key `--resume` and the merge of shards go by): one image, or
            `("pre", "post")` for a pair.
        onnx_outputs (`tuple[str, ...]`, *optional*): the outputs of its ONNX graph (whose inputs are the processor's
            `model_input_names`), for `cervix-hf export`'s classifier path; `None` when that path cannot export it.
        evaluation_plots (`str`, *optional*, defaults to `"classification"`): which plots its evaluation gets
            (`cervix_hf.evaluation.plots.PLOTTERS`): `"classification"`, `"binary"`, `"detection"` or `"grouped"`.
        evaluation_ref (`str`): `"module:function"` of its evaluation on a labelled data set (`evaluation`, run by
            `cervix-hf evaluate`): `(model, processor, args, output_dir) -> EvalResults`.
        app_tab_ref (`str`): `"module:function"` building its tab of the app: `(slot, examples, exports) -> None`.
        app_examples (`str`, *optional*): the field of `cervix_hf.data.examples.AppExamples` holding its tab's
            examples; `None` for none.
        batch_choice (`str`): what the app's Batch tab calls it, with what its inputs are.
        label_explanation (`str`): what its labels mean, in a sentence or two (Markdown), shown under its tab's title.
        engine_ref (`str`): `"module:class"` of its prediction engine (`engine`, a
            `cervix_hf.prediction.engines.base.PredictionEngine`): the one path batch prediction, `evaluate` and the
            app's Batch tab run it through, which declares its output rows.
        loader_ref (`str`, *optional*): `"module:function"` building the model and its processor from a folder or
            repo id in a runtime (`loader`): `load(model_id, revision, runtime=...) -> (model, processor)`.
        runtimes (`tuple[str, ...]`, *optional*): the runtimes (`RUNTIMES`) its loader takes.
        sizes (`tuple[str, ...]`, *optional*, defaults to `MODEL_SIZES`): its named sizes, the published one first
            (its config's defaults), then `"tiny"` (`tiny_config`) and any of `size_configs`.
        size_configs (`Mapping[str, Mapping]`, *optional*): the config arguments of its other named sizes.
        aliases (`tuple[str, ...]`, *optional*): other names accepted for it where a user may have saved them: the
            app's flags and variables, the folders under `checkpoints/`, and `cervix-hf train <name>`.
    """

    model_type: str
    title: str
    package: str
    config_name: str
    base_model_name: str
    task_model_name: str
    processor_name: str
    task_auto_class_name: str
    pipeline_task: str
    pipeline_tag: str
    labels_name: str
    tiny_config: Mapping[str, Any]
    repo_id: str
    training_data: str
    card_sections: tuple[str, ...]
    index_metrics: tuple[IndexMetric, ...]
    eval_problems_ref: str
    engine_ref: str
    app_tab_ref: str
    batch_choice: str
    label_explanation: str
    evaluation_ref: str
    pipeline_name: str | None = None
    app_examples: str | None = None
    input_max_side: int = 2048
    input_min_side: int = 32
    input_max_aspect: float | None = None
    input_columns: tuple[str, ...] = ("image",)
    onnx_outputs: tuple[str, ...] | None = None
    evaluation_plots: str = "classification"
    loader_ref: str = "cervix_hf.prediction.inference:load_classifier"
    runtimes: tuple[str, ...] = CLASSIFIER_RUNTIMES
    sizes: tuple[str, ...] = MODEL_SIZES
    size_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def _model_attribute(self, name: str) -> Any:
        """`name` of the model folder, once every record is registered with transformers (so that a model built
        from the class saves its `auto_map` and code)."""
        register_auto_classes()
        return resolve(f"{self.package}:{name}")

    @property
    def config_class(self) -> type:
        return self._model_attribute(self.config_name)

    @property
    def base_model_class(self) -> type:
        return self._model_attribute(self.base_model_name)

    @property
    def task_model_class(self) -> type:
        return self._model_attribute(self.task_model_name)

    @property
    def processor_class(self) -> type:
        return self._model_attribute(self.processor_name)

    @property
    def pipeline_class(self) -> type | None:
        return self._model_attribute(self.pipeline_name) if self.pipeline_name else None

    @property
    def task_auto_class(self) -> type:
        return resolve(f"transformers:{self.task_auto_class_name}")

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self._model_attribute(self.labels_name))

    @property
    def evaluation(self) -> Callable:
        return resolve(self.evaluation_ref)

    @property
    def engine(self) -> type:
        return resolve(self.engine_ref)

    @property
    def loader(self) -> Callable:
        return resolve(self.loader_ref)

    @property
    def eval_problems(self) -> Callable[[dict], list[str]]:
        return resolve(self.eval_problems_ref)

    @property
    def env_var(self) -> str:
        """The app's variable naming a folder or Hub id to load it from, e.g. `CERVIX_HF_CELL_DETECTOR`."""
        return _env_var(self.model_type)

    @property
    def flag(self) -> str:
        """The app's flag naming a folder or Hub id to load it from, e.g. `--cell-detector`."""
        return _flag(self.model_type)

    @property
    def alias_env_vars(self) -> tuple[str, ...]:
        return _unique(_env_var(name) for name in self.aliases if _env_var(name) != self.env_var)

    @property
    def alias_flags(self) -> tuple[str, ...]:
        return _unique(_flag(name) for name in self.aliases if _flag(name) != self.flag)

    @property
    def checkpoint_folder(self) -> str:
        """The folder under `checkpoints/` its training command writes and the app looks in."""
        return self.model_type

    @property
    def training_script(self) -> str:
        """The module that trains it: `python -m train.train_<model_type>`."""
        return f"train.train_{self.model_type}"

    @property
    def repo_env_var(self) -> str:
        """The variable overriding its published repo id, e.g. `CERVIX_HF_COLPONET_REPO`."""
        return f"CERVIX_HF_{self.model_type.upper()}_REPO"

    @property
    def card_template(self) -> str:
        return f"{self.model_type}.md.j2"

    @property
    def train_command(self) -> str:
        """The training command as it runs here: this interpreter (not a bare `python`, which may be another one)."""
        return (
            f"{module_command(self.training_script)} --data {self.training_data} "
            f"--output-dir checkpoints/{self.checkpoint_folder}"
        )

    @property
    def auto_class_name(self) -> str:
        return self.task_auto_class_name

    @property
    def published_size(self) -> str:
        """The size it is published at: its config's defaults."""
        return self.sizes[0]

    def config(self, size: str | None = None, **overrides):
        """A config of the named size (`sizes`; the published one when `None`); `overrides` are passed to the
        config."""
        size = size or self.published_size
        if size not in self.sizes:
            raise ValueError(f"Unknown model size {size!r}; choose one of {', '.join(self.sizes)}.")
        base = self.tiny_config if size == "tiny" else self.size_configs.get(size, {})
        return self.config_class(**{**base, **overrides})


def _env_var(name: str) -> str:
    return "CERVIX_HF_" + name.upper().replace("-", "_")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unique(names) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


FAMILIES = (
    ModelFamily(
        model_type="colponet",
        title="ColpoNet: cervix type (Type 1/2/3)",
        package="cervix_hf.models.colponet",
        app_tab_ref="cervix_hf.app.cervix_type_tab:build_cervix_type_tab",
        app_examples="cervix_type",
        batch_choice="Cervix type (photos)",
        label_explanation=(
            "**What the types mean.** The transformation zone is where cervical precancer arises. **Type 1**: "
            "it lies wholly on the outside of the cervix and is fully visible; **Type 2**: it reaches into the "
            "cervical canal but is still fully visible; **Type 3**: it lies partly or wholly inside the canal, "
            "out of view. The type guides how to examine and treat; it says nothing about whether there is "
            "disease."
        ),
        evaluation_ref="train.evaluation:evaluate_colponet",
        engine_ref="cervix_hf.prediction.engines.colponet:ColpoNetEngine",
        config_name="ColpoNetConfig",
        base_model_name="ColpoNetModel",
        task_model_name="ColpoNetForImageClassification",
        processor_name="ColpoNetImageProcessor",
        task_auto_class_name="AutoModelForImageClassification",
        pipeline_task="image-classification",
        pipeline_tag="image-classification",
        labels_name="COLPONET_LABELS",
        tiny_config={
            "backbone_config": tiny_backbone_config(["stage4"]),
            "use_pretrained_backbone": False,
            "reduction_channels": 16,
            "dense_num_layers": 2,
            "dense_growth_rate": 8,
            "dense_bottleneck_factor": 2,
            "inception_branch_channels": [8, 8, 8, 4, 4, 4],
        },
        sizes=("resnet-50", "small", "tiny"),
        size_configs={"small": COLPONET_SMALL},
        repo_id="cervix-hf/colponet",
        input_max_aspect=3.0,
        training_data="DATA",
        card_sections=("Quality gate", "Classification report", "Confusion matrix"),
        index_metrics=(
            IndexMetric("accuracy", "Accuracy", ("metrics", "accuracy")),
            IndexMetric("f1", "Macro F1", ("metrics", "classification_report", "macro avg", "f1-score")),
            IndexMetric("log_loss", "Log loss", ("metrics", "log_loss")),
            IndexMetric("roc_auc", "Macro ROC-AUC (one-vs-rest)", ("metrics", "roc_auc")),
        ),
        eval_problems_ref="cervix_hf.evaluation.metrics.classification:eval_results_problems",
        onnx_outputs=("logits",),
    ),
    ModelFamily(
        model_type="cell_detector",
        title="Cell detector (Faster R-CNN)",
        package="cervix_hf.models.cell_detector",
        app_tab_ref="cervix_hf.app.cell_detection_tab:build_cell_detection_tab",
        app_examples="cells",
        batch_choice="Cell detection (Pap-smear images)",
        label_explanation=(
            "**What the classes mean.** Each box is one cell (or nucleus) with the class the model was trained "
            "on: for SIPaKMeD, superficial-intermediate and parabasal cells are normal, koilocytotic and "
            "dyskeratotic cells are abnormal (associated with HPV and precancer), metaplastic cells are benign; "
            "for ISBI 2014, nuclei. The score is the model's confidence in that box, not a probability of "
            "disease."
        ),
        evaluation_ref="train.evaluation:evaluate_cell_detector",
        engine_ref="cervix_hf.prediction.engines.cell_detector:CellDetectorEngine",
        config_name="CellDetectorConfig",
        base_model_name="CellDetectorModel",
        task_model_name="CellDetectorForObjectDetection",
        processor_name="CellDetectorImageProcessor",
        task_auto_class_name="AutoModelForObjectDetection",
        pipeline_task="object-detection",
        pipeline_tag="object-detection",
        labels_name="SIPAKMED_LABELS",
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
        training_data="DATA",
        card_sections=("Per-class average precision",),
        index_metrics=(
            IndexMetric("mean_average_precision", "mAP@[.5:.95]", ("metrics", "map")),
            IndexMetric("mean_average_precision_50", "mAP@.5", ("metrics", "map_50")),
            IndexMetric("mean_average_recall", "mAR@[.5:.95]", ("metrics", "mar")),
        ),
        eval_problems_ref="cervix_hf.evaluation.metrics.detection:eval_results_problems",
        # Four times the default input size's longer side (1333), and room for a 4096-px field of view at full
        # scale for detectors that keep the input's scale; larger slides go through tiling (`tile_size`).
        input_max_side=4096,
        evaluation_plots="detection",
        loader_ref="cervix_hf.prediction.inference:load_detector",
        runtimes=RUNTIMES,
        aliases=("detector", "cell-detector"),
    ),
    ModelFamily(
        model_type="prepost_fusion",
        title="Pre/post fusion: Negative/Positive",
        package="cervix_hf.models.prepost_fusion",
        app_tab_ref="cervix_hf.app.prepost_fusion_tab:build_prepost_tab",
        app_examples="prepost",
        batch_choice="Pre/post fusion (a zip with pairs.csv: columns pre, post)",
        label_explanation=(
            "**What the answer means.** **Positive**: the model's estimate that the case is CIN2 or worse "
            "(high-grade, HSIL) on histopathology; **Negative**: CIN1 (low-grade, LSIL). The training atlas has "
            "no normal cases, so Negative does not mean normal. The threshold trades sensitivity against "
            "specificity."
        ),
        evaluation_ref="train.evaluation:evaluate_prepost_fusion",
        engine_ref="cervix_hf.prediction.engines.prepost_fusion:PrePostFusionEngine",
        config_name="PrePostFusionConfig",
        base_model_name="PrePostFusionModel",
        task_model_name="PrePostFusionForImageClassification",
        processor_name="PrePostFusionImageProcessor",
        task_auto_class_name="AutoModelForImageClassification",
        pipeline_task="prepost-classification",
        pipeline_tag="image-classification",
        labels_name="PREPOST_LABELS",
        tiny_config={
            "backbone_config": tiny_backbone_config(["stage4"]),
            "use_pretrained_backbone": False,
            "fusion_hidden_size": 16,
            "num_attention_heads": 2,
        },
        repo_id="cervix-hf/prepost-fusion",
        input_max_aspect=3.0,
        training_data="PAIRS",
        card_sections=("Sensitivity and specificity", "Confusion matrix", "Threshold table", "Operating points"),
        index_metrics=(
            IndexMetric("sensitivity", "Sensitivity at the decision threshold", ("metrics", "report", "sensitivity")),
            IndexMetric("specificity", "Specificity at the decision threshold", ("metrics", "report", "specificity")),
            IndexMetric("accuracy", "Accuracy at the decision threshold", ("metrics", "report", "accuracy")),
            IndexMetric("roc_auc", "ROC-AUC", ("metrics", "report", "roc_auc")),
            IndexMetric("average_precision", "PR-AUC (average precision)", ("metrics", "report", "pr_auc")),
        ),
        eval_problems_ref="cervix_hf.evaluation.metrics.binary:eval_results_problems",
        pipeline_name="PrePostClassificationPipeline",
        input_columns=("pre", "post"),
        onnx_outputs=("logits", "probabilities", "pre_to_post_attentions"),
        evaluation_plots="binary",
        aliases=("prepost",),
    ),
    ModelFamily(
        model_type="cell_classifier",
        title="Pap cell: 7 classes, normal/abnormal",
        package="cervix_hf.models.cell_classifier",
        app_tab_ref="cervix_hf.app.cell_classifier_tab:build_cell_classifier_tab",
        batch_choice="Pap cell (single-cell images)",
        label_explanation=(
            "**What the classes mean.** The Herlev database's seven cell classes: three **normal** (superficial "
            "and intermediate squamous cells, columnar cells) and four **abnormal** (light, moderate and severe "
            "dysplasia, and carcinoma in situ: precancer of increasing grade). The probability of abnormal is "
            "the sum of the four abnormal classes'; a cell is called abnormal when it reaches the threshold. "
            "The screening point misses few abnormal cells at the cost of false alarms. A research demo on one "
            "public database, not a diagnosis."
        ),
        evaluation_ref="train.evaluation:evaluate_cell_classifier",
        engine_ref="cervix_hf.prediction.engines.cell_classifier:CellClassifierEngine",
        config_name="CellClassifierConfig",
        base_model_name="CellClassifierModel",
        task_model_name="CellClassifierForImageClassification",
        processor_name="CellClassifierImageProcessor",
        task_auto_class_name="AutoModelForImageClassification",
        pipeline_task="image-classification",
        pipeline_tag="image-classification",
        labels_name="HERLEV_LABELS",
        tiny_config={
            "backbone_config": {**TINY_RESNET, "layer_type": "basic", "out_features": ["stage4"]},
        },
        repo_id="cervix-hf/cell-classifier",
        training_data="HERLEV",
        card_sections=(
            "Classification report",
            "Confusion matrix",
            "Normal and abnormal",
            "Operating points",
            "Baselines",
        ),
        index_metrics=(
            IndexMetric("accuracy", "7-class accuracy", ("metrics", "accuracy")),
            IndexMetric("f1", "7-class macro F1", ("metrics", "classification_report", "macro avg", "f1-score")),
            IndexMetric(
                "binary_accuracy",
                "Normal/abnormal accuracy at the decision threshold",
                ("metrics", "binary", "report", "accuracy"),
            ),
            IndexMetric(
                "sensitivity",
                "Abnormal sensitivity at the decision threshold",
                ("metrics", "binary", "report", "sensitivity"),
            ),
            IndexMetric(
                "specificity",
                "Abnormal specificity at the decision threshold",
                ("metrics", "binary", "report", "specificity"),
            ),
            IndexMetric("roc_auc", "Normal/abnormal ROC-AUC", ("metrics", "binary", "report", "roc_auc")),
        ),
        eval_problems_ref="cervix_hf.evaluation.metrics.cell_classification:eval_results_problems",
        # A single cell is a small crop: the Herlev cells are 200 or 224 px; larger uploads are reduced.
        input_max_side=1024,
        input_max_aspect=3.0,
        onnx_outputs=("logits",),
        evaluation_plots="grouped",
        sizes=("small", "tiny"),
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


_registered = False


def register_auto_classes() -> None:
    """
    Registers every record with transformers' Auto classes and pipelines (in-process), and marks its classes for
    `save_pretrained` to write `auto_map` and copy their code (remote code). Idempotent.
    """
    global _registered
    if _registered:
        return
    _registered = True  # first: the classes read below call this again
    from transformers import AutoConfig, AutoImageProcessor, AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

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


def model_config(model_type: str, size: str = "resnet-50", **overrides):
    """The config of `model_type` at the named size (its record's `sizes`); `overrides` are passed to the config."""
    return family(model_type).config(size, **overrides)


def colponet_config(size: str = "resnet-50", **overrides):
    """A [`ColpoNetConfig`] of the named size; `overrides` are passed to the config."""
    return model_config("colponet", size, **overrides)


def cell_detector_config(size: str = "resnet-50", **overrides):
    """A [`CellDetectorConfig`] of the named size; `overrides` are passed to the config."""
    return model_config("cell_detector", size, **overrides)


def prepost_config(size: str = "resnet-50", **overrides):
    """A [`PrePostFusionConfig`] of the named size; `overrides` are passed to the config."""
    return model_config("prepost_fusion", size, **overrides)
