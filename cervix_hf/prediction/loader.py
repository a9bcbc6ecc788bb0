"""One loader for every saved model and runtime: `load(model_id_or_path, runtime) -> LoadedModel`.

`cervix-hf predict`, `evaluate` and `export`, `publish` and the app load models through it: a folder or Hub repo id
is told apart at once (`cervix_hf.hub.resolve_model_reference`), the model's kind is read from its config, and its
record's loader (`ModelFamily.loader_ref`) builds it in the runtime asked for.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cervix_hf.hub import resolve_model_reference
from cervix_hf.prediction.inference import load_config
from cervix_hf.registry import FAMILIES_BY_TYPE, RUNTIMES, ModelFamily


@dataclass
class LoadedModel:
    r"""
    A saved model ready to predict.

    Args:
        model_type (`str`): its `config.model_type`.
        model: the model in its runtime (a PyTorch module, or an export called like one), in eval mode.
        processor: its image processor.
        source (`str`): the folder or Hub repo id it was loaded from.
        runtime (`str`): the runtime asked for.
    """

    model_type: str
    model: Any
    processor: Any
    source: str
    runtime: str

    @property
    def record(self) -> ModelFamily:
        return FAMILIES_BY_TYPE[self.model_type]

    @property
    def is_export(self) -> bool:
        """Whether an ONNX export runs it (all of it, or the detector's learned layers)."""
        return getattr(self.model, "onnx_precision", None) is not None


def load(model: str, runtime: str = "torch", revision: str | None = None) -> LoadedModel:
    """
    The saved model `model` (a folder, or a Hub repo id `OWNER/NAME[@REVISION]`) in `runtime`: `torch`; `bf16`
    (the detector's backbone under CPU bfloat16 autocast); the folder's ONNX export run by ONNX Runtime (`onnx`) or
    OpenVINO (`openvino`); or `auto`, the export when the folder has one, else PyTorch (`cervix_hf.registry.RUNTIMES`;
    each model's record lists those it takes).

    Raises:
        `ValueError`: naming `model`, when it is no saved model of cervix_hf (a missing folder, an interrupted run,
            a config of another kind) or `runtime` is unknown or not one the model runs in; `ModelLoadError` (a
            `ValueError`) naming the file, for a config, weights or processor file that describes no model it runs.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    reference = resolve_model_reference(model, revision)  # a missing folder is told at once, without the Hub
    source, revision = reference.location, reference.revision
    try:
        model_type = load_config(source, revision).model_type
    except OSError as error:
        where = (
            f"the folder {source} is not a saved model"
            if reference.kind == "folder"
            else (f"there is no folder {Path(model).resolve()}, and the Hub did not provide {source}")
        )
        raise ValueError(f"cannot load {model}: {where} ({str(error).splitlines()[0]}).") from None
    record = FAMILIES_BY_TYPE.get(model_type)
    if record is None:
        raise ValueError(f"{model} holds a {model_type!r} model; cervix_hf's models are {', '.join(FAMILIES_BY_TYPE)}.")
    if runtime not in record.runtimes:
        raise ValueError(
            f"{model} holds a {record.title} model, which runs in {', '.join(record.runtimes)}, not {runtime!r}."
        )
    loaded_model, processor = record.loader(source, revision, runtime=runtime)
    return LoadedModel(model_type, loaded_model, processor, source, runtime)


__all__ = ["RUNTIMES", "LoadedModel", "load"]
