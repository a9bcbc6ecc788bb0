"""The `eval_results.json` contract: what a training run writes about its held-out evaluation, and what the model
card is rendered from.

One typed record, [`EvalResults`], is built by every training script (and the tests' hand-made runs), validated
before it is written (`train.engine.finish_run`) and again when it is read (`cervix_hf.hub.cards`):

    {
      "task": the model's pipeline task (from its `ModelFamily`),
      "model_type": its `config.model_type`,
      "evaluated_on": the split the metrics were computed on ("test"),
      "label_names": the class names, in class order,
      "metrics": what the model's metric function returned (`cervix_hf.evaluation.metrics`),
      "data": where the data came from and how it was split: at least "source" (the data set's folder or file
              name, never a local path: the file is published) and "seed",
      "training": the stages and settings: at least "stages", "augmentation", "batch_size", "model_size",
      ...: model-specific extras (per-image predictions, the export threshold),
      "software": versions and hardware, added when it is written
    }

Validation checks the layout and then the numbers against each other, with the model's own checks
(`ModelFamily.eval_problems`, beside its metrics): a tampered accuracy no longer matches its confusion matrix.
"""

import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from cervix_hf.io.files import EVAL_RESULTS_FILE, atomic_write_text
from cervix_hf.registry import FAMILIES_BY_TYPE, family

REQUIRED_KEYS = ("model_type", "label_names", "metrics", "data", "training", "software")
REQUIRED_DATA_KEYS = ("source", "seed")
REQUIRED_TRAINING_KEYS = ("stages", "augmentation", "batch_size", "model_size")


class EvalResultsError(ValueError):
    """An evaluation file does not have the contract's layout, or its numbers contradict each other."""


class StageSummary(TypedDict):
    """One training stage, as `train.engine.run_stages` summarises it."""

    stage: str
    name: str
    learning_rate: float
    epochs: float
    train_backbone: bool
    batch_size: int | None
    global_step: int
    epochs_run: float
    train_loss: float
    best_metric: float | None
    metric_for_best_model: str
    best_checkpoint: str | None
    log_history: list[dict]


@dataclass
class EvalResults:
    r"""
    A run's evaluation on its held-out split, in the layout of `eval_results.json`.

    Args:
        model_type (`str`): the evaluated model's `config.model_type`; gives `task`.
        label_names (`list[str]`): the class names, in class order.
        metrics (`dict`): the model's metric function's result.
        data (`dict`): the data: at least `source` and `seed`.
        training (`dict`): at least `stages` (`StageSummary` each), `augmentation`, `batch_size`, `model_size`.
        evaluated_on (`str`, *optional*, defaults to `"test"`): the split the metrics were computed on.
        extra (`dict`, *optional*): model-specific entries written after `training` (predictions, thresholds).
        software (`dict`, *optional*): versions and hardware; `train.engine.finish_run` fills it in.
    """

    model_type: str
    label_names: list[str]
    metrics: dict
    data: dict
    training: dict
    evaluated_on: str = "test"
    extra: dict[str, Any] = field(default_factory=dict)
    software: dict[str, str] | None = None

    @property
    def task(self) -> str:
        return family(self.model_type).pipeline_task

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "model_type": self.model_type,
            "evaluated_on": self.evaluated_on,
            "label_names": list(self.label_names),
            "metrics": self.metrics,
            "data": self.data,
            "training": self.training,
            **self.extra,
            **({"software": self.software} if self.software is not None else {}),
        }

    def validate(self, name: str = EVAL_RESULTS_FILE) -> "EvalResults":
        """Raises [`EvalResultsError`] listing every problem of [`eval_results_problems`]; returns itself."""
        raise_problems(eval_results_problems(self.to_dict()), name)
        return self


def eval_results_problems(eval_results: dict) -> list[str]:
    """Every way `eval_results` (the parsed file) breaks the contract; empty when it keeps it."""
    missing = [key for key in REQUIRED_KEYS if key not in eval_results]
    if missing:
        return [f"{EVAL_RESULTS_FILE} lacks {', '.join(missing)}: it was not written by a training script's finish_run"]
    model_type = eval_results["model_type"]
    if model_type not in FAMILIES_BY_TYPE:
        return []  # another project's model: its own card, its own checks
    problems = []
    expected_task = family(model_type).pipeline_task
    if eval_results.get("task") != expected_task:
        problems.append(f"task is {eval_results.get('task')!r}, but a {model_type} evaluation is {expected_task!r}")
    for section, keys in (("data", REQUIRED_DATA_KEYS), ("training", REQUIRED_TRAINING_KEYS)):
        absent = [key for key in keys if key not in (eval_results[section] or {})]
        if absent:
            problems.append(f"{section} lacks {', '.join(absent)}")
    try:
        problems += family(model_type).eval_problems(eval_results)
    except (KeyError, IndexError, TypeError, ZeroDivisionError) as err:
        problems.append(f"{EVAL_RESULTS_FILE} does not have the layout of a {model_type} evaluation ({err!r})")
    return problems


def raise_problems(problems: list[str], name: str = EVAL_RESULTS_FILE) -> None:
    if problems:
        raise EvalResultsError(f"{name} contradicts itself:\n- " + "\n- ".join(problems))


def software_versions() -> dict[str, str]:
    """Versions and hardware read at run time, for the eval file and the model card."""
    import torch
    import transformers

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "device_count": str(torch.cuda.device_count()) if torch.cuda.is_available() else "0",
    }
    try:
        import torchvision

        versions["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    return versions


def write_json(path: Path, payload: dict) -> None:
    """Writes `payload` as indented JSON, whole or not at all: paths as text, tensors and NumPy scalars as numbers,
    non-finite floats as `null`."""
    atomic_write_text(path, json.dumps(_json_safe(payload), indent=2))


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
