"""Every saved model loads through `AutoModel` (its features) and its task Auto class where cervix_hf is unknown."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from cervix_hf import (
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    CellDetectorModel,
    ColpoNetForImageClassification,
    ColpoNetModel,
    PrePostFusionForImageClassification,
    PrePostFusionModel,
)
from cervix_hf.registry import cell_detector_config, colponet_config, prepost_config


def detector_inputs():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)) for size in ((96, 128, 3), (120, 80, 3))]
    return dict(CellDetectorImageProcessor()(images, return_tensors="pt"))  # padded: pixel_mask included


def detector_features(model, inputs):
    """What torchvision's FasterRCNN feeds its region proposal network: the backbone over the resized images."""
    mask = inputs["pixel_mask"]
    heights, widths = mask.any(dim=2).sum(dim=1).tolist(), mask.any(dim=1).sum(dim=1).tolist()
    images = [image[:, :h, :w] for image, h, w in zip(inputs["pixel_values"], heights, widths)]
    resized, _ = model.detector.transform(images)
    feature_maps = tuple(model.detector.backbone(resized.tensors).values())
    return {"feature_maps": feature_maps, "image_sizes": torch.tensor(resized.image_sizes)}


# model name: (task model, features model, task Auto class, config, inputs, the task model's own features)
MODELS = {
    "colponet": (
        ColpoNetForImageClassification,
        ColpoNetModel,
        "AutoModelForImageClassification",
        lambda: colponet_config("tiny"),
        lambda: {"pixel_values": torch.randn(2, 3, 64, 64)},
        lambda model, inputs: model.colponet(**inputs),
    ),
    "cell_detector": (
        CellDetectorForObjectDetection,
        CellDetectorModel,
        "AutoModelForObjectDetection",
        lambda: cell_detector_config("tiny", box_score_threshold=0.0),
        detector_inputs,
        detector_features,
    ),
    "prepost": (
        PrePostFusionForImageClassification,
        PrePostFusionModel,
        "AutoModelForImageClassification",
        lambda: prepost_config("tiny"),
        lambda: {"pre_pixel_values": torch.randn(2, 3, 64, 64), "post_pixel_values": torch.randn(2, 3, 64, 64)},
        lambda model, inputs: model.prepost(**inputs),
    ),
}

FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["cervix_hf"] = None  # importing cervix_hf fails: only the code saved beside the weights can run
    import json
    import torch
    import transformers

    model_dir, task_auto_class, inputs_file, outputs_file = sys.argv[1:5]
    inputs = torch.load(inputs_file, weights_only=True)
    outputs, classes = {}, {}
    for name, auto_class in (("features", transformers.AutoModel), ("task", getattr(transformers, task_auto_class))):
        model = auto_class.from_pretrained(model_dir, trust_remote_code=True).eval()
        with torch.inference_mode():
            outputs[name] = dict(model(**inputs))
        classes[name] = f"{type(model).__module__}.{type(model).__name__}"
    torch.save(outputs, outputs_file)
    print(json.dumps(classes))
    """
)


@pytest.mark.parametrize("name", MODELS)
def test_auto_model_and_task_class_load_in_a_fresh_process_with_the_same_outputs(name, tmp_path):
    task_class, features_class, task_auto_class, make_config, make_inputs, task_model_features = MODELS[name]
    torch.manual_seed(0)
    model = task_class(make_config())
    if name != "cell_detector":  # (the detector's batch norm never trains)
        with torch.no_grad():  # batch norm with non-trivial statistics, so dropped buffers would show
            model.train()(**make_inputs())
    model.eval()
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)

    auto_map = json.loads((model_dir / "config.json").read_text())["auto_map"]
    module = features_class.__module__.rsplit(".", 1)[-1]
    assert auto_map == {
        "AutoConfig": f"{module.replace('modeling_', 'configuration_')}.{model.config.__class__.__name__}",
        "AutoModel": f"{module}.{features_class.__name__}",
        task_auto_class: f"{module}.{task_class.__name__}",
    }

    inputs = make_inputs()
    with torch.inference_mode():
        expected = {"features": dict(task_model_features(model, inputs)), "task": dict(model(**inputs))}
    torch.save(inputs, tmp_path / "inputs.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(model_dir), task_auto_class, "inputs.pt", "outputs.pt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    classes = json.loads(result.stdout.strip().splitlines()[-1])
    assert classes["features"].startswith("transformers_modules.")
    assert classes["features"].endswith(f"{module}.{features_class.__name__}")
    assert classes["task"].endswith(f"{module}.{task_class.__name__}")
    remote = torch.load(tmp_path / "outputs.pt", weights_only=True)
    assert remote["features"].keys() == expected["features"].keys()
    torch.testing.assert_close(remote, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_features_model_loaded_from_a_saved_task_model_matches_its_features(name, tmp_path):
    task_class, features_class, _, make_config, make_inputs, task_model_features = MODELS[name]
    torch.manual_seed(0)
    model = task_class(make_config()).eval()
    model.save_pretrained(tmp_path)
    features = features_class.from_pretrained(tmp_path).eval()
    inputs = make_inputs()
    with torch.inference_mode():
        torch.testing.assert_close(dict(features(**inputs)), dict(task_model_features(model, inputs)), rtol=0, atol=0)


def test_cell_detector_features_are_the_pyramid_over_the_resized_images():
    config = cell_detector_config("tiny")
    inputs = detector_inputs()
    with torch.inference_mode():
        outputs = CellDetectorModel(config).eval()(**inputs)
    # short side to min_size (256), long side at most max_size (256); the batch is padded to a multiple of 32
    assert outputs.image_sizes.tolist() == [[192, 256], [256, 170]]
    strides = [4, 8, 16, 32, 64]
    assert [tuple(f.shape) for f in outputs.feature_maps] == [
        (2, config.fpn_out_channels, 256 // s, 256 // s) for s in strides
    ]


def test_a_pre_post_model_saved_before_the_features_model_existed_loads_unchanged(tmp_path):
    """Checkpoints saved when the fusion layers sat on the classifier itself (no `prepost.` prefix) still load."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = PrePostFusionForImageClassification(prepost_config("tiny")).eval()
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    save_file(
        {k.removeprefix("prepost."): v for k, v in weights.items()},
        tmp_path / "model.safetensors",
        metadata={"format": "pt"},
    )
    reloaded = PrePostFusionForImageClassification.from_pretrained(tmp_path).eval()
    inputs = MODELS["prepost"][4]()
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits)
