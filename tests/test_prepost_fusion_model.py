"""Pre/post fusion as a transformers model: forward contract, shared backbone, round trip, remote code, pipeline."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

from cervix_hf import PrePostFusionConfig, PrePostFusionForImageClassification, PrePostFusionImageProcessor
from cervix_hf.registry import prepost_config

OPERATING_POINTS = {
    "screening": {"threshold": 0.2, "sensitivity": 1.0, "specificity": 0.5, "achieved": True},
    "balanced": {"threshold": 0.45, "sensitivity": 0.8, "specificity": 0.8, "achieved": True},
    "confirmatory": {"threshold": 0.7, "sensitivity": 0.5, "specificity": 0.95, "achieved": True},
}


@pytest.fixture(scope="module")
def tiny_prepost_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = PrePostFusionForImageClassification(
        prepost_config("tiny", pos_weight=2.0, decision_threshold=0.4, operating_points=OPERATING_POINTS)
    ).eval()
    directory = tmp_path_factory.mktemp("tiny-prepost")
    model.save_pretrained(directory)
    PrePostFusionImageProcessor().save_pretrained(directory)
    return directory


def pair(seed=0):
    rng = np.random.default_rng(seed)
    pre = Image.fromarray(rng.integers(0, 256, (180, 240, 3), dtype=np.uint8))
    post = Image.fromarray(rng.integers(0, 256, (300, 200), dtype=np.uint8), mode="L")
    return pre, post


def test_forward_returns_loss_probabilities_and_attention_both_ways():
    torch.manual_seed(0)
    model = PrePostFusionForImageClassification(prepost_config("tiny", pos_weight=3.0)).eval()
    inputs = PrePostFusionImageProcessor()(*zip(pair(0), pair(1)), return_tensors="pt")
    labels = torch.tensor([1.0, 0.0])
    with torch.inference_mode():
        outputs = model(**inputs, labels=labels)
    assert outputs.logits.shape == outputs.probabilities.shape == (2,)
    torch.testing.assert_close(outputs.probabilities, torch.sigmoid(outputs.logits))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        outputs.logits, labels, pos_weight=torch.tensor(3.0)
    )
    torch.testing.assert_close(outputs.loss, expected)
    assert outputs.pre_to_post_attentions.shape == (2, 2, 49, 49) and outputs.feature_map_size == (7, 7)
    torch.testing.assert_close(outputs.post_to_pre_attentions.sum(-1), torch.ones(2, 2, 49))


def test_shared_backbone_halves_backbone_parameters_and_reads_both_images():
    separate = PrePostFusionForImageClassification(prepost_config("tiny"))
    shared = PrePostFusionForImageClassification(prepost_config("tiny", share_backbone=True))
    backbone = sum(p.numel() for p in shared.prepost.backbone.parameters())
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in shared.parameters()) == backbone
    inputs = PrePostFusionImageProcessor()(*pair(), return_tensors="pt")
    assert shared.eval()(**inputs).probabilities.shape == (1,)


@pytest.mark.parametrize(
    "argument, value",
    [("num_attention_heads", 3), ("decision_threshold", 1.2), ("pos_weight", -1.0), ("operating_points", {"fast": {}})],
)
def test_bad_config_values_name_the_argument(argument, value):
    with pytest.raises(ValueError, match=argument):
        PrePostFusionConfig(**{argument: value})


def test_processor_needs_both_images_of_every_case():
    processor = PrePostFusionImageProcessor()
    pre, post = pair()
    with pytest.raises(ValueError, match="post_images"):
        processor(pre, None)
    with pytest.raises(ValueError, match="2 pre-stain but 1 post-stain"):
        processor([pre, pre], [post])


def test_round_trip_keeps_logits_threshold_and_operating_points(tiny_prepost_dir):
    model = PrePostFusionForImageClassification.from_pretrained(tiny_prepost_dir).eval()
    auto = AutoModelForImageClassification.from_pretrained(tiny_prepost_dir).eval()
    assert isinstance(auto, PrePostFusionForImageClassification)
    assert isinstance(AutoImageProcessor.from_pretrained(tiny_prepost_dir), PrePostFusionImageProcessor)
    assert auto.config.decision_threshold == 0.4 and auto.config.operating_points == OPERATING_POINTS
    inputs = PrePostFusionImageProcessor()(*pair(), return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(model(**inputs).logits, auto(**inputs).logits, rtol=0, atol=0)


def test_pipeline_uses_the_saved_threshold_or_a_named_operating_point(tiny_prepost_dir):
    classify = pipeline("prepost-classification", model=str(tiny_prepost_dir), trust_remote_code=True)
    pre, post = pair()
    default = classify({"pre": pre, "post": post})
    assert default["threshold"] == 0.4
    assert default["label"] == ("Positive" if default["probability"] >= 0.4 else "Negative")
    assert classify({"pre": pre, "post": post}, operating_point="confirmatory")["threshold"] == 0.7
    assert classify({"pre": pre, "post": post}, threshold=0.0)["label"] == "Positive"
    with pytest.raises(ValueError, match="Unknown operating point"):
        classify({"pre": pre, "post": post}, operating_point="fastest")
    with pytest.raises(ValueError, match='"pre": image, "post": image'):
        classify(pre)


REMOTE = textwrap.dedent(
    """
    import json, sys
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    model_dir, pre_path, post_path = sys.argv[1:4]
    model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, trust_remote_code=True)
    with torch.inference_mode():
        out = model(**processor(Image.open(pre_path), Image.open(post_path), return_tensors="pt"))
    result = pipeline("prepost-classification", model=model_dir, trust_remote_code=True)(
        {"pre": pre_path, "post": post_path}, operating_point="screening"
    )
    print(json.dumps({"logits": out.logits.tolist(), "pipeline": result,
                      "imported_cervix_hf": any(m.startswith("cervix_hf") for m in sys.modules)}))
    """
)


def test_remote_code_and_pipeline_in_a_fresh_process(tiny_prepost_dir, tmp_path):
    pre, post = pair()
    pre.save(tmp_path / "pre.png")
    post.save(tmp_path / "post.png")
    (tmp_path / "remote.py").write_text(REMOTE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "remote.py", str(tiny_prepost_dir), "pre.png", "post.png"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["imported_cervix_hf"] is False
    model = PrePostFusionForImageClassification.from_pretrained(tiny_prepost_dir).eval()
    processor = PrePostFusionImageProcessor()
    with torch.inference_mode():
        logits = model(
            **processor(Image.open(tmp_path / "pre.png"), Image.open(tmp_path / "post.png"), return_tensors="pt")
        ).logits
    np.testing.assert_allclose(remote["logits"], logits.numpy(), rtol=1e-5, atol=1e-6)
    probability = float(torch.sigmoid(logits)[0])
    assert remote["pipeline"]["threshold"] == 0.2
    assert remote["pipeline"]["probability"] == pytest.approx(probability, abs=1e-6)
    assert remote["pipeline"]["label"] == ("Positive" if probability >= 0.2 else "Negative")


def test_an_undefined_operating_point_is_saved_and_refused_with_its_reason(tmp_path):
    reason = "sensitivity and specificity need both classes (only Negative cases)."
    undefined = {"threshold": None, "sensitivity": None, "specificity": None, "achieved": False, "reason": reason}
    model = PrePostFusionForImageClassification(prepost_config("tiny", operating_points={"screening": undefined}))
    model.save_pretrained(tmp_path)
    PrePostFusionImageProcessor().save_pretrained(tmp_path)
    classify = pipeline("prepost-classification", model=str(tmp_path), trust_remote_code=True)
    pre, post = pair()
    with pytest.raises(ValueError, match="only Negative cases"):
        classify({"pre": pre, "post": post}, operating_point="screening")
    assert classify({"pre": pre, "post": post})["threshold"] == 0.5
