"""`cervix-hf evaluate`: a saved model evaluated on another labelled data set writes `eval_results.json` in the
training runs' layout (checked by the same contract), its plots, and a card that links them; and every run's card
shows its own plots."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from cervix_hf import (
    CellDetectorForObjectDetection,
    CellDetectorImageProcessor,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
    assess_image_quality,
)
from cervix_hf.data import read_iarc_atlas, read_isbi2014_edf
from cervix_hf.eval_results import eval_results_problems
from cervix_hf.inference import load_classifier
from cervix_hf.model_presets import cell_detector_config, prepost_config

from . import expectations
from .conftest import SHARED_DATA, require_data
from .model_runs import colponet_run

REPO_ROOT = Path(__file__).resolve().parents[1]


def evaluate(*arguments) -> subprocess.CompletedProcess:
    """`cervix-hf evaluate` as a user runs it, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "cervix_hf", "evaluate", *map(str, arguments)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def evaluate_here(*arguments) -> int:
    """The same command's code in this process (the command itself is run by the ColpoNet test)."""
    from train.evaluate import main

    return main([str(argument) for argument in arguments])


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and min(Image.open(path).size) >= 200


def test_a_training_run_s_card_shows_its_plots(tmp_path):
    run = colponet_run(tmp_path / "run")
    card = (run / "README.md").read_text()
    assert "![Confusion matrix](plots/confusion_matrix.png)" in card  # a relative link: the Hub renders it
    assert is_png(run / "plots" / "confusion_matrix.png")


def test_colponet_evaluated_on_a_class_folder_gives_the_model_s_own_accuracy(tmp_path, intel_photos):
    run = colponet_run(tmp_path / "run")
    data = tmp_path / "clinic"  # another clinic's photos, in the <root>/<class>/ layout
    for photo in intel_photos[::20]:
        target = data / photo.parent.name / photo.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target)
    done = evaluate("--model", run, "--data", data, "--update-card")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = run / "evaluations" / "clinic"
    results = json.loads((folder / "eval_results.json").read_text())
    assert eval_results_problems(results) == [] and results["evaluated_on"] == "external"

    model, processor = load_classifier(str(run))
    photos = sorted(data.rglob("*.jpg"))
    expected = [expectations.type_probabilities(model, processor, photo) for photo in photos]
    truth = [photo.parent.name for photo in photos]
    hits = sum(max(p, key=p.get) == label for p, label in zip(expected, truth))
    assert results["metrics"]["accuracy"] == pytest.approx(hits / len(photos))
    by_name = {row["path"]: row for row in results["predictions"]}
    assert len(by_name) == len(photos)
    for photo, probabilities, label in zip(photos, expected, truth):
        assert by_name[photo.name]["label"] == label
        assert by_name[photo.name]["probabilities"] == pytest.approx(probabilities, abs=1e-5)
    rejected = sum(not assess_image_quality(Image.open(photo).convert("RGB")).is_acceptable for photo in photos)
    assert results["data"]["quality_gate"]["would_reject"] == rejected
    assert is_png(folder / "plots" / "confusion_matrix.png") and is_png(folder / "plots" / "roc.png")

    card = (run / "README.md").read_text()  # rendered again: it links the evaluation beside the training one
    assert "[eval_results.json](evaluations/clinic/eval_results.json)" in card
    assert "(evaluations/clinic/plots/roc.png)" in card
    assert "![Confusion matrix](plots/confusion_matrix.png)" in card


def test_the_fusion_model_evaluated_on_the_atlas_scores_every_pair(tmp_path):
    atlas = require_data(SHARED_DATA / "iarc-colposcopy-atlas")
    torch.manual_seed(0)
    model = PrePostFusionForImageClassification(prepost_config("tiny")).eval()
    processor = PrePostFusionImageProcessor()
    model.save_pretrained(tmp_path / "fusion")
    processor.save_pretrained(tmp_path / "fusion")
    assert evaluate_here("--model", tmp_path / "fusion", "--data", atlas, "--output-dir", tmp_path / "out") == 0
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert eval_results_problems(results) == []
    records = read_iarc_atlas(atlas).records
    assert results["metrics"]["num_cases"] == len(records) == len(results["predictions"])
    for record, row in list(zip(records, results["predictions"]))[:4]:
        expected = expectations.positive_probability(model, processor, record.pre_path, record.post_path)
        assert row["label"] == record.label and row["probability"] == pytest.approx(expected, abs=1e-5)
    scores = [row["probability"] for row in results["predictions"]]
    assert results["metrics"]["report"]["roc_auc"] == pytest.approx(roc_auc_score([r.label for r in records], scores))
    for name in ("roc.png", "precision_recall.png", "reliability.png"):
        assert is_png(tmp_path / "out" / "plots" / name)


def test_the_detector_evaluated_on_isbi_counts_every_box_and_beside_the_classical_baseline(tmp_path):
    data = require_data(SHARED_DATA / "isbi2014-edf")
    torch.manual_seed(0)
    folder = tmp_path / "detector"
    CellDetectorForObjectDetection(cell_detector_config("tiny", id2label={0: "nucleus"})).save_pretrained(folder)
    CellDetectorImageProcessor().save_pretrained(folder)
    assert evaluate_here("--model", folder, "--data", data) == 0
    out = folder / "evaluations" / data.name
    results = json.loads((out / "eval_results.json").read_text())
    assert eval_results_problems(results) == []
    records = read_isbi2014_edf(data).records
    assert results["metrics"]["num_images"] == len(records)
    assert results["metrics"]["per_class"]["nucleus"]["num_ground_truth"] == sum(len(r.boxes) for r in records)
    assert results["classical_baseline"]["metrics"]["map_50"] > 0.3  # the baseline finds nuclei: it really ran
    assert is_png(out / "plots" / "precision_recall.png") and is_png(out / "plots" / "detection_sample.png")


def test_evaluate_names_what_is_wrong(tmp_path, capsys):
    from train.evaluate import main

    assert main(["--model", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a saved model folder" in capsys.readouterr().err
    run = colponet_run(tmp_path / "run")
    assert main(["--model", str(run), "--data", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    wrong = tmp_path / "wrong"
    for name in ("benign", "malignant"):
        (wrong / name).mkdir(parents=True)
        Image.fromarray(np.full((300, 300, 3), 120, np.uint8)).save(wrong / name / "a.png")
    assert main(["--model", str(run), "--data", str(wrong)]) == 2
    assert "has the classes ['benign', 'malignant'], but the model predicts" in capsys.readouterr().err
    assert not (run / "evaluations").exists()  # nothing half-written
