"""A frozen backbone is frozen: its batch norm keeps its running statistics in training, as a frozen Keras layer."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from cervix_hf import ColpoNetForImageClassification, PrePostFusionForImageClassification, PrePostFusionImageProcessor
from cervix_hf.registry import colponet_config, prepost_config
from train import train_colponet, train_prepost_fusion

from .conftest import SHARED_DATA, require_data

TRAINING_ARGS = [
    "--stage1-epochs",
    "1",
    "--stage2-epochs",
    "0",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--no-progress-bar",
    "--max-steps",
    "2",
]


def backbones(model) -> list[nn.Module]:
    if isinstance(model, ColpoNetForImageClassification):
        return [model.colponet.backbone]
    return list(dict.fromkeys(model._backbones()))  # one module when shared


def backbone_buffers(model) -> dict[str, torch.Tensor]:
    """Every batch-norm buffer (running mean and variance, batches tracked) of the model's backbones."""
    return {
        f"{index}.{name}": buffer.clone()
        for index, backbone in enumerate(backbones(model))
        for name, buffer in backbone.named_buffers()
    }


def training_step(model) -> None:
    if isinstance(model, ColpoNetForImageClassification):
        outputs = model(torch.randn(4, 3, 64, 64), labels=torch.tensor([0, 1, 2, 0]))
    else:
        outputs = model(torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64), labels=torch.tensor([0, 1, 1, 0]))
    outputs.loss.backward()


MODELS = {
    "colponet": lambda: ColpoNetForImageClassification(colponet_config("tiny")),
    "prepost": lambda: PrePostFusionForImageClassification(prepost_config("tiny")),
    "prepost-shared": lambda: PrePostFusionForImageClassification(prepost_config("tiny", share_backbone=True)),
}


@pytest.mark.parametrize("name", MODELS)
def test_frozen_backbone_keeps_its_batch_norm_statistics_after_model_train(name):
    torch.manual_seed(0)
    model = MODELS[name]()
    model.set_backbone_trainable(False)
    model.train()  # what Trainer does before every step
    before = backbone_buffers(model)
    assert before
    training_step(model)
    after = backbone_buffers(model)
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert model.training and not any(backbone.training for backbone in backbones(model))

    model.set_backbone_trainable(True)  # stage 2, with the model still in training mode
    training_step(model)
    changed = backbone_buffers(model)
    assert all(not torch.equal(changed[key], value) for key, value in after.items() if "running_" in key)


def test_freezing_does_not_stop_the_rest_of_the_model_from_training_or_evaluating():
    torch.manual_seed(0)
    model = ColpoNetForImageClassification(colponet_config("tiny"))
    model.set_backbone_trainable(False)
    model.train()
    assert model.colponet.reduction.training and model.dropout.training
    head_mean = model.colponet.reduction[1].running_mean.clone()
    training_step(model)
    assert not torch.equal(model.colponet.reduction[1].running_mean, head_mean)
    model.eval()
    assert not any(module.training for module in model.modules())


def saved_weights(folder) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def assert_backbone_kept_and_head_trained(checkpoint, trained, backbone_prefixes, head_keys):
    backbone_keys = [key for key in checkpoint if key.startswith(backbone_prefixes)]
    statistics = [key for key in backbone_keys if "running_" in key]
    convolutions = [key for key in backbone_keys if "convolution.weight" in key]
    assert statistics and convolutions
    for key in backbone_keys:
        assert torch.equal(trained[key], checkpoint[key]), f"{key} changed while the backbone was frozen"
    for key in head_keys:
        assert not torch.equal(trained[key], checkpoint[key]), f"{key} did not train"


@pytest.mark.slow
def test_colponet_stage1_from_a_checkpoint_keeps_the_backbone_and_trains_the_head(
    intel_sample, tiny_colponet_dir, tmp_path
):
    args = train_colponet.get_args_parser().parse_args(
        [
            "--data",
            str(intel_sample),
            "--from-checkpoint",
            str(tiny_colponet_dir),
            "--output-dir",
            str(tmp_path),
            *TRAINING_ARGS,
        ]
    )
    train_colponet.main(args)
    checkpoint, trained = saved_weights(tiny_colponet_dir), saved_weights(tmp_path)
    assert checkpoint["colponet.backbone.embedder.embedder.normalization.running_var"].ne(1).any()  # non-trivial
    assert_backbone_kept_and_head_trained(
        checkpoint,
        trained,
        ("colponet.backbone.",),
        ["classifier.weight", "colponet.reduction.0.weight", "colponet.reduction.1.running_mean"],
    )


@pytest.fixture
def tiny_prepost_dir(tmp_path):
    """A tiny pre/post model saved with non-trivial batch-norm statistics in both backbones."""
    torch.manual_seed(0)
    model = PrePostFusionForImageClassification(prepost_config("tiny"))
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64))
    directory = tmp_path / "checkpoint"
    model.eval().save_pretrained(directory)
    PrePostFusionImageProcessor().save_pretrained(directory)
    return directory


@pytest.mark.slow
def test_prepost_stage1_from_a_checkpoint_keeps_both_backbones_and_trains_the_fusion(tiny_prepost_dir, tmp_path):
    data = require_data(SHARED_DATA / "iarc-colposcopy-atlas")
    output_dir = tmp_path / "run"
    args = train_prepost_fusion.get_args_parser().parse_args(
        [
            "--data",
            str(data),
            "--from-checkpoint",
            str(tiny_prepost_dir),
            "--output-dir",
            str(output_dir),
            *TRAINING_ARGS,
        ]
    )
    train_prepost_fusion.main(args)
    checkpoint, trained = saved_weights(tiny_prepost_dir), saved_weights(output_dir)
    assert_backbone_kept_and_head_trained(
        checkpoint,
        trained,
        ("prepost.pre_backbone.", "prepost.post_backbone."),
        ["classifier.weight", "prepost.projection.weight", "prepost.pre_to_post.attention.in_proj_weight"],
    )
