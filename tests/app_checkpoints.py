"""Tiny checkpoints of the app's three models, trained by the tests for a few steps on the real samples.

A few optimisation steps say nothing about accuracy; they give the app weights that are neither the random
initialisation nor the untrained fallback, saved and reloaded the way a real checkpoint is (`save_pretrained`).
"""

from pathlib import Path

import torch

from cervix_hf import (
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    ColpoNetForImageClassification,
    ColpoNetImageProcessor,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
    load_image,
)
from cervix_hf.data import ISBI2014_EDF_LABELS, read_iarc_atlas, read_intel_mobileodt, read_isbi2014_edf
from cervix_hf.evaluation.metrics import select_operating_points
from cervix_hf.registry import cell_detector_config, colponet_config, prepost_config

STEPS = 3


def train_tiny_checkpoints(shared_data: Path, output_dir: Path) -> dict[str, Path]:
    """Trains and saves the three models under `output_dir`; returns {model type: folder}, as the app names tasks."""
    torch.manual_seed(0)
    return {
        "colponet": _train_colponet(shared_data / "intel-mobileodt-sample", output_dir / "colponet"),
        "cell_detector": _train_detector(shared_data / "isbi2014-edf", output_dir / "cell_detector"),
        "prepost_fusion": _train_prepost(shared_data / "iarc-colposcopy-atlas", output_dir / "prepost_fusion"),
    }


def _optimise(model, batch) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(STEPS):
        loss = model(**batch).loss
        assert torch.isfinite(loss), f"non-finite loss {loss}"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _save(model, processor, folder: Path) -> Path:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _train_colponet(data: Path, folder: Path) -> Path:
    records = read_intel_mobileodt(data, subsets=["train"])
    chosen = [i for label in range(3) for i in [j for j, y in enumerate(records.labels) if y == label][:4]]
    processor = ColpoNetImageProcessor()
    model = ColpoNetForImageClassification(colponet_config("tiny"))
    batch = processor([load_image(records.paths[i]) for i in chosen], return_tensors="pt")
    _optimise(model, {**batch, "labels": torch.tensor([records.labels[i] for i in chosen])})
    return _save(model, processor, folder)


def _train_detector(data: Path, folder: Path) -> Path:
    records = read_isbi2014_edf(data, names=["EDF000", "EDF001"])
    processor = CellDetectorImageProcessor()
    model = CellDetectorForObjectDetection(cell_detector_config("tiny", id2label=dict(enumerate(ISBI2014_EDF_LABELS))))
    annotations = [{"boxes": record.boxes, "class_labels": record.labels} for record in records.records]
    batch = processor(
        [load_image(record.image_path) for record in records.records], annotations=annotations, return_tensors="pt"
    )
    _optimise(model, batch)
    return _save(model, processor, folder)


def _train_prepost(data: Path, folder: Path) -> Path:
    pairs = read_iarc_atlas(data).records
    chosen = [record for label in (0, 1) for record in [r for r in pairs if r.label == label][:3]]
    processor = PrePostFusionImageProcessor()
    model = PrePostFusionForImageClassification(prepost_config("tiny"))
    batch = processor(
        [load_image(r.pre_path) for r in chosen], [load_image(r.post_path) for r in chosen], return_tensors="pt"
    )
    labels = [record.label for record in chosen]
    _optimise(model, {**batch, "labels": torch.tensor(labels, dtype=torch.float32)})
    with torch.inference_mode():
        scores = model(**batch).probabilities.tolist()
    # Chosen on the training pairs here, only so that the app has operating points to offer.
    model.config.operating_points = select_operating_points(labels, scores)
    model.config.decision_threshold = model.config.operating_points["balanced"]["threshold"]
    return _save(model, processor, folder)
