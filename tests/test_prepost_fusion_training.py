"""The pre/post training script end to end on the real IARC atlas sample, and its consistent evaluation file."""

import json

import pytest

from cervix_hf import PrePostFusionForImageClassification, PrePostFusionImageProcessor
from cervix_hf.evaluation.metrics import check_binary_consistency
from cervix_hf.prediction.inference import classify_prepost
from train import prepost_fusion_training, train_prepost_fusion

from .conftest import SHARED_DATA, require_data


@pytest.fixture(scope="module")
def iarc_run(tmp_path_factory):
    data = require_data(SHARED_DATA / "iarc-colposcopy-atlas")
    output_dir = tmp_path_factory.mktemp("prepost-run")
    args = train_prepost_fusion.get_args_parser().parse_args(
        [
            "--data",
            str(data),
            "--output-dir",
            str(output_dir),
            "--model-size",
            "tiny",
            "--stage1-epochs",
            "1",
            "--stage2-epochs",
            "1",
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--no-progress-bar",
            "--augmentation",
            "flip",
            "--decision-threshold",
            "balanced",
        ]
    )
    return output_dir, train_prepost_fusion.main(args)


@pytest.mark.slow
def test_evaluation_file_is_internally_consistent(iarc_run):
    output_dir, _ = iarc_run
    saved = json.loads((output_dir / "eval_results.json").read_text())
    metrics = saved["metrics"]
    check_binary_consistency(metrics)  # raises on any contradiction
    test_counts = saved["data"]["class_counts"]["test"]
    assert metrics["num_cases"] == sum(test_counts.values()) == len(saved["predictions"])
    classes = metrics["report"]["classification_report"]
    assert classes["Negative"]["support"] + classes["Positive"]["support"] == metrics["num_cases"]
    assert metrics["report"]["sensitivity"] == classes["Positive"]["recall"]
    # 38 acetic-acid pairs in the sample (13 cases lack a saline view, 1 an acetic-acid view), split by case
    assert sum(sum(c.values()) for c in saved["data"]["class_counts"].values()) == 38
    assert saved["data"]["skipped"] == {"no normal saline view": 13, "no acetic acid view": 1}


@pytest.mark.slow
def test_operating_points_are_chosen_on_validation_and_saved_in_the_config(iarc_run):
    output_dir, results = iarc_run
    model = PrePostFusionForImageClassification.from_pretrained(output_dir).eval()
    points = model.config.operating_points
    assert set(points) == {"screening", "balanced", "confirmatory"}
    assert model.config.decision_threshold == points["balanced"]["threshold"]
    assert results["metrics"]["operating_points"]["balanced"]["chosen_on"] == "validation"
    assert results["metrics"]["threshold"] == model.config.decision_threshold


def rates(labels: list[int], scores: list[float], threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) with Positive when score >= threshold, counted by hand."""
    positive = [s >= threshold for s in scores]
    tp = sum(p and y == 1 for p, y in zip(positive, labels))
    tn = sum(not p and y == 0 for p, y in zip(positive, labels))
    return tp / labels.count(1), tn / labels.count(0)


@pytest.mark.slow
def test_operating_points_are_those_of_the_saved_validation_scores(iarc_run):
    """Recomputed here from the validation cases saved in the run, by the rules the README states."""
    output_dir, results = iarc_run
    saved = json.loads((output_dir / "eval_results.json").read_text())
    validation = saved["validation_predictions"]
    assert len(validation) == sum(saved["data"]["class_counts"]["validation"].values())
    assert not {row["case_id"] for row in validation} & {row["case_id"] for row in saved["predictions"]}
    labels = [row["label"] for row in validation]
    scores = [row["probability"] for row in validation]
    candidates = sorted({0.0, 1.0, *scores})
    measured = {t: rates(labels, scores, t) for t in candidates}
    screening = max(t for t in candidates if measured[t][0] >= 0.9)
    confirmatory = min(t for t in candidates if measured[t][1] >= 0.9)
    best_j = max(sens + spec - 1 for sens, spec in measured.values())
    balanced = min(
        (t for t in candidates if measured[t][0] + measured[t][1] - 1 == best_j), key=lambda t: (abs(t - 0.5), t)
    )
    points = PrePostFusionForImageClassification.from_pretrained(output_dir).config.operating_points
    assert points["screening"]["threshold"] == pytest.approx(screening)
    assert points["confirmatory"]["threshold"] == pytest.approx(confirmatory)
    assert points["balanced"]["threshold"] == pytest.approx(balanced)
    # and the saved model gives those validation scores
    model = PrePostFusionForImageClassification.from_pretrained(output_dir).eval()
    processor = PrePostFusionImageProcessor.from_pretrained(output_dir)
    from cervix_hf.data import read_iarc_atlas

    records = {r.case_id: r for r in read_iarc_atlas(SHARED_DATA / "iarc-colposcopy-atlas").records}
    for row in validation[:3]:
        record = records[row["case_id"]]
        prediction = classify_prepost(model, processor, record.pre_path, record.post_path)
        assert prediction.probability == pytest.approx(row["probability"], abs=1e-5)


@pytest.mark.slow
def test_saved_model_reproduces_the_test_probabilities(iarc_run):
    output_dir, results = iarc_run
    model = PrePostFusionForImageClassification.from_pretrained(output_dir).eval()
    processor = PrePostFusionImageProcessor.from_pretrained(output_dir)
    from cervix_hf.data import read_iarc_atlas

    records = {r.case_id: r for r in read_iarc_atlas(SHARED_DATA / "iarc-colposcopy-atlas").records}
    for row in results["predictions"]:
        record = records[row["case_id"]]
        prediction = classify_prepost(model, processor, record.pre_path, record.post_path)
        assert prediction.probability == pytest.approx(row["probability"], abs=1e-5)


def test_an_unknown_or_undefined_decision_threshold_is_a_clear_error():
    from cervix_hf import PrePostFusionConfig

    with pytest.raises(SystemExit, match="--decision-threshold"):
        prepost_fusion_training.threshold_from_argument("strict", PrePostFusionConfig())
    undefined = {"threshold": None, "achieved": False, "reason": "only Positive cases in validation"}
    with pytest.raises(SystemExit, match="only Positive cases"):
        prepost_fusion_training.threshold_from_argument(
            "screening", PrePostFusionConfig(operating_points={"screening": undefined})
        )
