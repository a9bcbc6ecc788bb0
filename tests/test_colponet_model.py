"""ColpoNet as a transformers model: config checks, forward, save/load, Auto classes and remote code."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    ResNetBackbone,
    ResNetConfig,
)

from cervix_hf import (
    ColpoNetConfig,
    ColpoNetForImageClassification,
    ColpoNetImageProcessor,
    ColpoNetModel,
    PretrainedBackboneUnavailableError,
    assess_image_quality,
    load_pretrained_backbone,
)
from cervix_hf.registry import TINY_RESNET, colponet_config


def test_default_config_is_resnet50_with_cervix_types():
    config = ColpoNetConfig()
    assert config.id2label == {0: "Type_1", 1: "Type_2", 2: "Type_3"}
    assert config.label2id == {"Type_1": 0, "Type_2": 1, "Type_3": 2}
    assert config.backbone == "microsoft/resnet-50"
    assert config.backbone_config.hidden_sizes == [256, 512, 1024, 2048]
    assert list(config.backbone_config.depths) == [3, 4, 6, 3]


@pytest.mark.parametrize(
    "argument, value",
    [
        ("classifier_dropout", 1.5),
        ("reduction_channels", 0),
        ("dense_num_layers", -1),
        ("inception_branch_channels", [8, 8, 8]),
        ("class_weights", [1.0, 2.0]),
    ],
)
def test_bad_config_values_name_the_argument(argument, value):
    with pytest.raises(ValueError, match=argument):
        ColpoNetConfig(**{argument: value})


def test_full_size_forward_shapes_and_hidden_states():
    model = ColpoNetForImageClassification(ColpoNetConfig()).eval()
    with torch.inference_mode():
        outputs = model(torch.randn(2, 3, 224, 224), output_hidden_states=True)
    assert outputs.logits.shape == (2, 3)
    # stem + 4 stages of the backbone, then the reduction, dense and inception blocks
    assert len(outputs.hidden_states) == 8
    assert outputs.hidden_states[-1].shape == (2, 128 + 32 + 32 + 64, 7, 7)
    assert outputs.hidden_states[-2].shape == (2, 256 + 4 * 32, 7, 7)


def test_loss_is_class_weighted_cross_entropy():
    torch.manual_seed(0)
    weights = [3.0, 0.5, 1.2]
    model = ColpoNetForImageClassification(colponet_config("tiny", class_weights=weights)).eval()
    pixels, labels = torch.randn(5, 3, 64, 64), torch.tensor([0, 1, 2, 1, 0])
    with torch.inference_mode():
        outputs = model(pixels, labels=labels)
    log_probs = outputs.logits.log_softmax(-1)
    w = torch.tensor(weights)[labels]
    expected = -(w * log_probs[torch.arange(5), labels]).sum() / w.sum()
    torch.testing.assert_close(outputs.loss, expected)


def test_save_writes_safetensors_auto_map_and_model_code(tiny_colponet_dir):
    files = {p.name for p in tiny_colponet_dir.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    assert not files & {"pytorch_model.bin", "model.bin"}
    assert {
        "configuration_colponet.py",
        "modeling_colponet.py",
        "image_processing_colponet.py",
        "image_quality.py",
        "pipeline_colponet.py",
    } <= files
    config = json.loads((tiny_colponet_dir / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_colponet.ColpoNetConfig",
        "AutoModel": "modeling_colponet.ColpoNetModel",
        "AutoModelForImageClassification": "modeling_colponet.ColpoNetForImageClassification",
    }
    pipeline_impl = config["custom_pipelines"]["image-classification"]["impl"]
    assert pipeline_impl == "pipeline_colponet.ColpoNetImageClassificationPipeline"
    processor = json.loads((tiny_colponet_dir / "preprocessor_config.json").read_text())
    assert processor["auto_map"]["AutoImageProcessor"] == "image_processing_colponet.ColpoNetImageProcessor"
    assert "quality_laplacian_threshold" in processor and "quality_fft_threshold" in processor


def test_auto_classes_resolve_in_process_and_reload_identical_logits(tiny_colponet_dir):
    model = ColpoNetForImageClassification.from_pretrained(tiny_colponet_dir).eval()
    assert isinstance(AutoConfig.from_pretrained(tiny_colponet_dir), ColpoNetConfig)
    auto_model = AutoModelForImageClassification.from_pretrained(tiny_colponet_dir).eval()
    assert isinstance(auto_model, ColpoNetForImageClassification)
    assert isinstance(AutoModel.from_pretrained(tiny_colponet_dir), ColpoNetModel)
    assert isinstance(AutoImageProcessor.from_pretrained(tiny_colponet_dir), ColpoNetImageProcessor)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model(pixels).logits, auto_model(pixels).logits, rtol=0, atol=0)
    assert model.config.class_weights == [2.0, 0.6, 1.1]


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    model_dir, image_path, blurred_path = sys.argv[1], sys.argv[2], sys.argv[3]
    model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, trust_remote_code=True)
    image = Image.open(image_path).convert("RGB")
    with torch.inference_mode():
        logits = model(**processor(image, return_tensors="pt")).logits[0].tolist()
    classifier = pipeline("image-classification", model=model_dir, trust_remote_code=True)
    top = classifier(image_path, top_k=3)
    try:
        classifier(blurred_path, top_k=3)
        refusal = None
    except Exception as error:
        refusal = {
            "type": type(error).__name__,
            "is_value_error": isinstance(error, ValueError),
            "message": str(error),
            "report_acceptable": getattr(getattr(error, "report", None), "is_acceptable", None),
        }
    overridden = classifier(blurred_path, top_k=3, ignore_quality_gate=True)
    batched = classifier([image_path, blurred_path], top_k=3, batch_size=2, ignore_quality_gate=True)
    report = processor(image, return_tensors="pt", return_quality_report=True)["quality_reports"][0]
    print(json.dumps({
        "logits": logits,
        "pipeline": top,
        "refusal": refusal,
        "overridden": overridden,
        "batched": batched,
        "quality_acceptable": bool(report.is_acceptable),
        "imported_cervix_hf": any(name.startswith("cervix_hf") for name in sys.modules),
        "model_class": type(model).__name__,
        "pipeline_class": type(classifier).__name__,
    }))
    """
)


def assert_same_top_k(results, probabilities, id2label):
    """The pipeline's results are the model's own softmax, all labels, most probable first."""
    expected = sorted(((id2label[i], float(p)) for i, p in enumerate(probabilities)), key=lambda item: -item[1])
    assert [item["label"] for item in results] == [label for label, _ in expected]
    np.testing.assert_allclose([item["score"] for item in results], [score for _, score in expected], rtol=1e-5)


def test_remote_code_in_fresh_process_gives_same_logits_and_labels(tiny_colponet_dir, tmp_path):
    """Loaded in a process that never imports cervix_hf, the model gives the same logits, and its pipeline the same
    probabilities behind the quality gate: a blurry photo is refused unless the caller overrides the gate."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)
    image, blurred = Image.fromarray(pixels), Image.fromarray(cv2.GaussianBlur(pixels, (0, 0), 4))
    assert assess_image_quality(np.asarray(image)).is_acceptable
    assert not assess_image_quality(np.asarray(blurred)).is_acceptable
    image_path, blurred_path = tmp_path / "photo.png", tmp_path / "blurred.png"
    image.save(image_path)
    blurred.save(blurred_path)
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_CODE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, str(script), str(tiny_colponet_dir), str(image_path), str(blurred_path)],
        cwd=tmp_path,  # the project is not importable from here
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is not supported for" not in result.stderr, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["imported_cervix_hf"] is False
    assert remote["model_class"] == "ColpoNetForImageClassification"
    assert remote["pipeline_class"] == "ColpoNetImageClassificationPipeline"

    model = ColpoNetForImageClassification.from_pretrained(tiny_colponet_dir).eval()
    processor = ColpoNetImageProcessor.from_pretrained(tiny_colponet_dir)
    with torch.inference_mode():
        logits = model(**processor([image, blurred], return_tensors="pt")).logits
    np.testing.assert_allclose(remote["logits"], logits[0].numpy(), rtol=1e-5, atol=1e-6)
    probabilities, blurred_probabilities = logits.softmax(-1)
    quality = processor(image, return_quality_report=True)["quality_reports"][0]
    assert remote["quality_acceptable"] == quality.is_acceptable

    # A sharp photo: the model's probabilities, each with the gate's verdict.
    assert_same_top_k(remote["pipeline"], probabilities, model.config.id2label)
    assert all(item["quality"] == quality.to_dict() for item in remote["pipeline"])
    # A blurred one is refused, with the gate's words and the way to override it.
    refusal = remote["refusal"]
    assert refusal is not None, "the pipeline classified a photo the quality gate rejects"
    assert refusal["type"] == "PhotoRejectedError" and refusal["is_value_error"], refusal
    assert "rejected" in refusal["message"] and "ignore_quality_gate=True" in refusal["message"], refusal
    assert refusal["report_acceptable"] is False
    # Overridden, it is classified, and says that the gate rejected it.
    assert_same_top_k(remote["overridden"], blurred_probabilities, model.config.id2label)
    assert all(item["quality"]["is_acceptable"] is False for item in remote["overridden"])
    # Batched, each photo keeps its own probabilities and verdict.
    sharp_results, blurred_results = remote["batched"]
    assert_same_top_k(sharp_results, probabilities, model.config.id2label)
    assert_same_top_k(blurred_results, blurred_probabilities, model.config.id2label)
    assert [results[0]["quality"]["is_acceptable"] for results in remote["batched"]] == [True, False]


def test_processor_resizes_any_image_to_224_with_imagenet_normalisation():
    processor = ColpoNetImageProcessor()
    white = Image.new("RGB", (500, 300), (255, 255, 255))
    gray = Image.new("L", (40, 90), 0)
    pixels = processor([white, gray], return_tensors="pt")["pixel_values"]
    assert pixels.shape == (2, 3, 224, 224)
    expected_white = (1 - torch.tensor(processor.image_mean)) / torch.tensor(processor.image_std)
    torch.testing.assert_close(pixels[0, :, 100, 100], expected_white.float())
    expected_black = -torch.tensor(processor.image_mean) / torch.tensor(processor.image_std)
    torch.testing.assert_close(pixels[1, :, 10, 10], expected_black.float())


def test_processor_thresholds_travel_with_the_saved_processor(tmp_path):
    ColpoNetImageProcessor(quality_laplacian_threshold=42.0, quality_fft_threshold=-3.0).save_pretrained(tmp_path)
    reloaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert (reloaded.quality_laplacian_threshold, reloaded.quality_fft_threshold) == (42.0, -3.0)
    report = reloaded(Image.new("RGB", (64, 64)), return_quality_report=True)["quality_reports"][0]
    assert (report.laplacian_threshold, report.fft_threshold) == (42.0, -3.0)


def test_offline_pretrained_backbone_warns_or_raises(caplog):
    model = ColpoNetForImageClassification(colponet_config("tiny", use_pretrained_backbone=True))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.WARNING):
        assert load_pretrained_backbone(model) is False
    assert "RANDOM" in caplog.text and "microsoft/resnet-50" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(PretrainedBackboneUnavailableError, match="microsoft/resnet-50"):
        load_pretrained_backbone(model, require=True)


def test_pretrained_backbone_weights_are_copied_from_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    source = ResNetBackbone(ResNetConfig(**{k: v for k, v in TINY_RESNET.items() if k != "model_type"}))
    source.save_pretrained(tmp_path / "resnet")
    model = ColpoNetForImageClassification(colponet_config("tiny", backbone=str(tmp_path / "resnet")))
    model.config.use_pretrained_backbone = True
    assert load_pretrained_backbone(model, require=True) is True
    loaded = model.colponet.backbone.state_dict()
    for name, tensor in source.state_dict().items():
        assert torch.equal(loaded[name], tensor), name


def test_pretrained_backbone_with_mismatched_architecture_is_a_clear_error(tmp_path):
    source = ResNetBackbone(ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1]))
    source.save_pretrained(tmp_path / "resnet")
    model = ColpoNetForImageClassification(colponet_config("tiny", backbone=str(tmp_path / "resnet")))
    model.config.use_pretrained_backbone = True
    with pytest.raises(ValueError, match="backbone_config"):
        load_pretrained_backbone(model)


def test_quality_thresholds_given_at_call_time_are_used():
    processor = ColpoNetImageProcessor()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 120, 3), dtype=np.uint8))
    assert processor(image, return_quality_report=True)["quality_reports"][0].is_acceptable
    strict = processor(image, return_quality_report=True, quality_laplacian_threshold=1e9)["quality_reports"][0]
    assert strict.laplacian_threshold == 1e9 and not strict.is_acceptable
