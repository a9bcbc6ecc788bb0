"""A checkpoint save cut short (a full disk, a killed job) never stops `--resume`: the run continues from the last
complete checkpoint and finishes."""

import argparse
import errno
import json
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import modeling_utils

from cervix_hf import ColpoNetForImageClassification
from train import train_colponet
from train.arguments import add_common_args
from train.engine import STAGE_DONE_FILE, TrainingStage, run_stages

RUN_ARGS = [
    "--model-size",
    "tiny",
    "--stage1-epochs",
    "2",
    "--stage2-epochs",
    "0",
    "--batch-size",
    "16",
    "--workers",
    "0",
    "--no-progress-bar",
    "--augmentation",
    "flip",
]


def _warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.slow
def test_resume_finishes_a_run_whose_checkpoint_save_filled_the_disk(intel_sample, tmp_path, monkeypatch, caplog):
    output_dir = tmp_path / "colponet"
    parser = train_colponet.get_args_parser()
    argv = ["--data", str(intel_sample), "--output-dir", str(output_dir), *RUN_ARGS]
    saved = []
    write_weights = modeling_utils.safe_save_file

    def disk_full_at_the_second_checkpoint(tensors, filename, metadata=None):
        saved.append(Path(filename))
        if len(saved) == 2:
            Path(filename).write_bytes(b"\0" * 64)  # what a write cut short leaves
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return write_weights(tensors, filename, metadata=metadata)

    monkeypatch.setattr(modeling_utils, "safe_save_file", disk_full_at_the_second_checkpoint)
    with pytest.raises(OSError) as cut_short:
        train_colponet.main(parser.parse_args(argv))
    assert cut_short.value.errno == errno.ENOSPC
    interrupted = saved[1].parent.name  # checkpoint-N of the second epoch
    stage_dir = output_dir / "stage1_frozen_backbone"
    assert (stage_dir / saved[0].parent.name / "trainer_state.json").is_file()
    assert not (stage_dir / interrupted / "trainer_state.json").is_file()

    monkeypatch.undo()  # space freed
    with caplog.at_level(logging.INFO, logger="train.engine"):
        results = train_colponet.main(parser.parse_args([*argv, "--resume"]))

    assert any(interrupted in message and "Ignoring" in message for message in _warnings(caplog)), _warnings(caplog)
    assert any(f"from {stage_dir / saved[0].parent.name}" in record.getMessage() for record in caplog.records)
    model = ColpoNetForImageClassification.from_pretrained(output_dir)
    assert model.config.model_type == "colponet"
    [stage] = results["training"]["stages"]
    assert stage["global_step"] == int(interrupted.split("-")[1]) and stage["epochs_run"] == pytest.approx(2.0)
    assert (output_dir / stage["best_checkpoint"] / "trainer_state.json").is_file()
    assert (stage_dir / interrupted / "model.safetensors").is_file()
    assert not [path.name for path in stage_dir.iterdir() if path.name.startswith(".")]


class _LinearModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.head = nn.Linear(2, 1)

    def set_backbone_trainable(self, trainable):
        self.backbone.requires_grad_(trainable)

    def forward(self, x, labels=None):
        out = self.head(self.backbone(x)).squeeze(-1)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _train_two_epochs(output_dir: Path, resume: bool):
    argv = ["--output-dir", str(output_dir), "--batch-size", "2", "--workers", "0", "--no-progress-bar"]
    args = add_common_args(argparse.ArgumentParser()).parse_args([*argv, *(["--resume"] if resume else [])])
    torch.manual_seed(0)
    data = [{"x": x, "labels": x.sum()} for x in torch.randn(8, 2)]
    stage = TrainingStage("only", 1e-2, 2, train_backbone=True)
    trainer, _ = run_stages(_LinearModel(), [stage], args, data, data, None, "loss", greater_is_better=False)
    return trainer


def test_resume_skips_an_incomplete_checkpoint_folder_with_a_warning(tmp_path, caplog):
    stage_dir = tmp_path / "only"
    trainer = _train_two_epochs(tmp_path, resume=False)
    # The best checkpoint is named by its final folder, in the trainer and in the state saved with it.
    best = Path(trainer.state.best_model_checkpoint)
    assert best.parent == stage_dir and best.name in ("checkpoint-4", "checkpoint-8")
    saved_state = json.loads((best / "trainer_state.json").read_text())
    assert saved_state["best_model_checkpoint"] == str(best)
    assert sorted(path.name for path in stage_dir.iterdir() if path.is_dir()) == ["checkpoint-4", "checkpoint-8"]

    # As a save cut short by an older version left it: the second epoch's folder without its state or weights.
    (stage_dir / STAGE_DONE_FILE).unlink()
    (stage_dir / "checkpoint-8" / "trainer_state.json").unlink()
    (stage_dir / "checkpoint-8" / "model.safetensors").unlink()
    with caplog.at_level(logging.INFO, logger="train.engine"):
        resumed = _train_two_epochs(tmp_path, resume=True)

    assert any(str(stage_dir / "checkpoint-8") in message and "Ignoring" in message for message in _warnings(caplog)), (
        _warnings(caplog)
    )
    assert resumed.state.global_step == 8
    assert (stage_dir / "checkpoint-8" / "trainer_state.json").is_file()
    assert (stage_dir / "checkpoint-8" / "model.safetensors").is_file()
    assert Path(resumed.state.best_model_checkpoint).parent == stage_dir


def test_resume_starts_a_stage_afresh_when_its_only_checkpoint_was_cut_short(tmp_path, caplog):
    stage_dir = tmp_path / "only"
    (stage_dir / ".tmp-checkpoint-4" / "checkpoint-4").mkdir(parents=True)
    (stage_dir / ".tmp-checkpoint-4" / "checkpoint-4" / "config.json").write_text("{}")
    with caplog.at_level(logging.INFO, logger="train.engine"):
        trainer = _train_two_epochs(tmp_path, resume=True)
    assert any(".tmp-checkpoint-4" in message for message in _warnings(caplog)), _warnings(caplog)
    assert trainer.state.global_step == 8
    assert sorted(path.name for path in stage_dir.iterdir() if path.is_dir()) == ["checkpoint-4", "checkpoint-8"]


@pytest.mark.parametrize("broken", ["model.safetensors", "optimizer.pt", "rng_state.pth"])
def test_resume_goes_on_from_the_newest_checkpoint_that_loads_when_the_latest_is_corrupt(tmp_path, caplog, broken):
    stage_dir = tmp_path / "only"
    _train_two_epochs(tmp_path, resume=False)
    (stage_dir / STAGE_DONE_FILE).unlink()  # as a run killed after its last checkpoint was written
    damaged = stage_dir / "checkpoint-8" / broken
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a disk that filled, a copy cut short
    with caplog.at_level(logging.INFO, logger="train.engine"):
        resumed = _train_two_epochs(tmp_path, resume=True)

    warnings = _warnings(caplog)
    assert any(str(stage_dir / "checkpoint-8") in m and broken in m and "Ignoring" in m for m in warnings), warnings
    assert any(f"from {stage_dir / 'checkpoint-4'}" in record.getMessage() for record in caplog.records)
    assert resumed.state.global_step == 8  # the second epoch trained again from checkpoint-4
    reloaded = load_file(stage_dir / "checkpoint-8" / "model.safetensors")  # written again, whole
    assert set(reloaded) == {"backbone.weight", "backbone.bias", "head.weight", "head.bias"}
