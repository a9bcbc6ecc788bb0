"""The real commands on the real Herlev cells, at tiny scale: `cervix-hf train cell_classifier` (a tiny ResNet, one
epoch at 32 px), then `predict`, `evaluate` and `export` (int8, checked) on the model it saved. A tiny run says
nothing about accuracy; it checks that every file the recipe's run publishes is written and agrees."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cervix_hf import CellClassifierForImageClassification
from cervix_hf.data import read_herlev, source_image_split

from .conftest import SHARED_DATA, require_data

CLI = [sys.executable, "-m", "cervix_hf"]


def run(*arguments, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run([*CLI, *map(str, arguments)], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def herlev():
    return require_data(SHARED_DATA / "herlev")


@pytest.fixture(scope="module")
def trained(herlev, tmp_path_factory):
    output = tmp_path_factory.mktemp("cell-classifier") / "model"
    run(
        "train",
        "cell_classifier",
        "--data",
        herlev,
        "--recipe",
        "tiny",
        "--output-dir",
        output,
        "--threads",
        "1",
        "--no-progress-bar",
        "--seed",
        "3",
    )
    return output


def test_train_writes_the_model_its_card_plots_and_a_consistent_evaluation(trained, herlev):
    eval_results = json.loads((trained / "eval_results.json").read_text())
    config = json.loads((trained / "config.json").read_text())
    assert config["model_type"] == "cell_classifier" and config["positive_group"] == "abnormal"
    points = config["operating_points"]
    assert set(points) == {"screening", "balanced", "confirmatory"}
    assert config["decision_threshold"] == points["screening"]["threshold"]  # the default --decision-threshold
    assert points["screening"]["sensitivity"] >= 0.95
    # The split is by source image, with this run's seed: the validation and test cells share no slide image.
    records = read_herlev(herlev)
    split = source_image_split(records, seed=3)
    validation = {p["source_image"] for p in eval_results["validation_predictions"]}
    test = {p["source_image"] for p in eval_results["predictions"]}
    assert validation == {records.source_images[i] for i in split["validation"]} and not validation & test
    assert eval_results["metrics"]["binary"]["num_cases"] == len(split["test"])
    summary = eval_results["summary"]["validation"]
    assert summary["num_cases"] == len(split["validation"])
    assert summary["points"]["screening"]["sensitivity"]["estimate"] >= 0.95
    card = (trained / "README.md").read_text()
    assert "trained from random weights (no imagenet)" in card.lower()
    assert "Herlev" in card and "### Baselines" in card
    for plot in ("confusion_matrix.png", "roc.png", "group_roc.png"):
        assert (trained / "plots" / plot).is_file() and f"plots/{plot}" in card


def test_predict_writes_one_row_per_cell_with_the_roll_up(trained, herlev, tmp_path):
    cells = [
        *sorted((herlev / "severe_dysplastic").glob("*.jpg"))[:3],
        *sorted((herlev / "normal_columnar").glob("*.jpg"))[:2],
    ]
    output = tmp_path / "cells.csv"
    run("predict", "--model", trained, *cells, "--operating-point", "balanced", "--output", output, "--quiet")
    rows = list(csv.DictReader(output.open()))
    assert [Path(row["image"]).name for row in rows] == [cell.name for cell in cells]
    threshold = json.loads((trained / "config.json").read_text())["operating_points"]["balanced"]["threshold"]
    for row in rows:
        abnormal = sum(
            float(row[f"probability_{name}"])
            for name in ("light_dysplastic", "moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ")
        )
        assert float(row["probability_abnormal"]) == pytest.approx(abnormal, abs=1e-6)
        assert row["decision"] == ("abnormal" if abnormal >= threshold else "normal")
        assert float(row["threshold"]) == pytest.approx(threshold)


def test_evaluate_and_export_int8(trained, herlev, tmp_path):
    run("evaluate", "--model", trained, "--data", herlev, "--output-dir", tmp_path / "eval")
    external = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    assert external["evaluated_on"] == "external" and external["metrics"]["binary"]["num_cases"] == 728
    result = run("export", "--model", trained, "--precision", "int8", "--calibration", herlev, "--max-images", "16")
    assert "top-1 agreement" in result.stdout
    report = json.loads((trained / "onnx" / "export.json").read_text())
    assert (trained / "onnx" / "model_int8.onnx").is_file() and report


def test_weights_from_a_finished_run_refinishes_it_with_the_same_predictions(trained, herlev, tmp_path):
    again = tmp_path / "again"
    run(
        "train",
        "cell_classifier",
        "--data",
        herlev,
        "--recipe",
        "tiny",
        "--output-dir",
        again,
        "--threads",
        "1",
        "--seed",
        "3",
        "--weights-from",
        trained,
    )
    first, second = (json.loads((folder / "eval_results.json").read_text()) for folder in (trained, again))
    assert second["predictions"] == first["predictions"]
    assert second["training"]["stages"] == first["training"]["stages"]
    assert second["training"]["weights_from"] == trained.name
    assert "--weights-from" not in second["training"]["command"]
    assert "weights are those of a finished run" in (again / "README.md").read_text()
    refused = subprocess.run(
        [
            *CLI,
            "train",
            "cell_classifier",
            "--data",
            str(herlev),
            "--recipe",
            "tiny",
            "--output-dir",
            str(tmp_path / "other"),
            "--seed",
            "4",
            "--weights-from",
            str(trained),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode != 0 and "another seed" in refused.stderr


def test_publish_trains_evaluates_exports_and_stages_the_cell_classifier(herlev, tmp_path):
    """`cervix-hf publish cell_classifier`, as a user runs it (the `tiny` recipe, staged with no network): the staged
    folder is the trained model with its card, its evaluation and its checked export."""
    work_dir, staged = tmp_path / "run", tmp_path / "staged"
    done = run(
        "publish",
        "cell_classifier",
        "--data",
        herlev,
        "--recipe",
        "tiny",
        "--repo-id",
        "tester/cell-classifier",
        "--work-dir",
        work_dir,
        "--calibration",
        herlev,
        "--precision",
        "fp32",
        "--staging-dir",
        staged,
        "--",
        "--threads",
        "1",
        "--no-progress-bar",
        timeout=900,
    )
    assert "Staged" in done.stdout
    for name in ("model.safetensors", "config.json", "README.md", "eval_results.json", "onnx/export.json"):
        assert (staged / name).is_file(), name
    trained = json.loads((work_dir / "model" / "eval_results.json").read_text())
    assert json.loads((staged / "eval_results.json").read_text())["metrics"] == trained["metrics"]
    assert json.loads((staged / "onnx" / "export.json").read_text())["fp32"]["accepted"] is True
    assert CellClassifierForImageClassification.from_pretrained(staged).config.model_type == "cell_classifier"
