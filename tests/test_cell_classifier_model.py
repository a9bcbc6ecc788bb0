"""The cell classifier's config, model, processor and pipeline: the class probabilities, their normal/abnormal
roll-up, the decision at an operating point, and a round trip through remote code in a fresh interpreter."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from cervix_hf import CellClassifierConfig, CellClassifierForImageClassification, CellClassifierImageProcessor
from cervix_hf.registry import family

# Written out here, not read from the package: the roll-up is checked against groups stated independently.
NORMAL = ("normal_superficiel", "normal_intermediate", "normal_columnar")
ABNORMAL = ("light_dysplastic", "moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ")
POINTS = {
    "screening": {"threshold": 0.2, "sensitivity": 0.96, "specificity": 0.7, "achieved": True},
    "balanced": {"threshold": 0.5, "sensitivity": 0.9, "specificity": 0.85, "achieved": True},
    "confirmatory": {"threshold": 0.9, "sensitivity": 0.6, "specificity": 0.96, "achieved": True},
}


def tiny_config(**overrides) -> CellClassifierConfig:
    return family("cell_classifier").config("tiny", **overrides)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = CellClassifierForImageClassification(tiny_config(operating_points=POINTS, decision_threshold=0.2)).eval()
    with torch.no_grad():  # batch-norm statistics that a loader dropping buffers would change
        model.train()
        model(torch.randn(4, 3, 64, 64))
        model.eval()
    folder = tmp_path_factory.mktemp("tiny-cell-classifier")
    model.save_pretrained(folder)
    CellClassifierImageProcessor().save_pretrained(folder)
    return folder


def cell_image(seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (90, 80, 3), dtype=np.uint8))


def test_forward_gives_one_logit_per_class_and_a_smoothed_loss():
    model = CellClassifierForImageClassification(tiny_config(label_smoothing=0.2)).eval()
    outputs = model(torch.randn(2, 3, 64, 64), labels=torch.tensor([0, 6]))
    assert outputs.logits.shape == (2, 7)
    expected = torch.nn.functional.cross_entropy(outputs.logits, torch.tensor([0, 6]), label_smoothing=0.2)
    assert torch.allclose(outputs.loss, expected)


@pytest.mark.parametrize(
    "overrides, argument",
    [
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"classifier_dropout": -0.1}, "classifier_dropout"),
        ({"decision_threshold": 1.5}, "decision_threshold"),
        ({"label_groups": {"normal": list(NORMAL), "abnormal": list(ABNORMAL[:3])}}, "label_groups"),
        ({"positive_group": "dysplastic"}, "positive_group"),
        ({"operating_points": {"triage": {"threshold": 0.3}}}, "operating_points"),
        ({"use_pretrained_backbone": True}, "use_pretrained_backbone"),
    ],
)
def test_bad_config_values_name_the_argument(overrides, argument):
    with pytest.raises(ValueError, match=argument):
        tiny_config(**overrides)


def test_roll_up_is_the_sum_of_each_group_and_decides_at_the_threshold():
    config = tiny_config(operating_points=POINTS)
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(1)) * 3
    probabilities = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(axis=1, keepdims=True)
    abnormal = probabilities[:, 3:].sum(axis=1)  # HERLEV order: the last four are the abnormal classes
    # A threshold exactly at one cell's probability of abnormal: that cell is called abnormal (>=).
    threshold = float(np.sort(abnormal)[2])
    processor = CellClassifierImageProcessor()
    answers = processor.post_process_classification({"logits": logits}, config, threshold=threshold)
    for answer, row, p_abnormal in zip(answers, probabilities, abnormal):
        assert answer["groups"]["normal"] == pytest.approx(sum(answer["probabilities"][name] for name in NORMAL))
        assert answer["groups"]["abnormal"] == pytest.approx(p_abnormal, abs=1e-6)
        assert answer["groups"]["normal"] == pytest.approx(row[:3].sum(), abs=1e-6)
        assert answer["decision"] == ("abnormal" if p_abnormal >= threshold - 1e-7 else "normal")
        assert answer["label"] == config.id2label[int(row.argmax())]
    assert [a["decision"] for a in answers].count("abnormal") == int((abnormal >= threshold - 1e-7).sum())
    screening = CellClassifierImageProcessor().post_process_classification(
        {"logits": logits}, config, operating_point="screening"
    )
    assert {a["threshold"] for a in screening} == {0.2}
    with pytest.raises(ValueError, match="triage"):
        CellClassifierImageProcessor().post_process_classification({"logits": logits}, config, operating_point="triage")


def test_saved_config_names_both_auto_classes_and_the_pipeline(tiny_dir):
    config = json.loads((tiny_dir / "config.json").read_text())
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
    assert config["custom_pipelines"]["image-classification"]["impl"].startswith("pipeline_cell_classifier.")
    assert config["positive_group"] == "abnormal"
    assert (tiny_dir / "pipeline_cell_classifier.py").is_file()


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

    model_dir, image_path = sys.argv[1], sys.argv[2]
    assert "cervix_hf" not in sys.modules
    model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, trust_remote_code=True)
    features = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    image = Image.open(image_path)
    with torch.inference_mode():
        inputs = processor(image, return_tensors="pt")
        logits = model(**inputs).logits[0].tolist()
        pooled = features(**inputs).pooler_output.shape[-1]
    answer = processor.post_process_classification({"logits": torch.tensor([logits])}, model.config,
                                                   operating_point="screening")[0]
    results = pipeline("image-classification", model=model_dir, trust_remote_code=True)(image_path,
                                                                                         operating_point="screening")
    print(json.dumps({"logits": logits, "pooled": pooled, "answer": answer, "pipeline": results,
                      "modules": sorted(name for name in sys.modules if name.startswith("cervix_hf"))}))
    """
)


def test_remote_code_round_trip_and_pipeline_in_a_fresh_process(tiny_dir, tmp_path):
    image_path = tmp_path / "cell.png"
    cell_image(3).save(image_path)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(tiny_dir), str(image_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["modules"] == []  # nothing of cervix_hf was needed
    model = CellClassifierForImageClassification.from_pretrained(tiny_dir).eval()
    processor = CellClassifierImageProcessor.from_pretrained(tiny_dir)
    with torch.inference_mode():
        expected = model(**processor(Image.open(image_path), return_tensors="pt")).logits[0]
    assert np.allclose(found["logits"], expected.tolist(), atol=1e-5)
    assert found["pooled"] == model.cell_classifier.num_features
    answer = found["answer"]
    assert answer["threshold"] == 0.2 and answer["decision"] == (
        "abnormal" if answer["groups"]["abnormal"] >= 0.2 else "normal"
    )
    results = found["pipeline"]
    assert len(results) == 7 and {r["label"] for r in results} == set(NORMAL + ABNORMAL)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert all(r["group"] == ("normal" if r["label"] in NORMAL else "abnormal") for r in results)
    decision = results[0]["decision"]
    assert decision["groups"]["abnormal"] == pytest.approx(sum(r["score"] for r in results if r["label"] in ABNORMAL))
    assert decision["threshold"] == 0.2 and decision["label"] == answer["decision"]
