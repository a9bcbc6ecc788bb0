"""`cervix-hf evaluate`: a saved model evaluated on another labelled data set writes `eval_results.json` in the
training runs' layout (checked by the same contract), its plots, and a card that links them; and every run's card
shows its own plots."""

import csv
import json
import re
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
    ColpoNetForImageClassification,
    ColpoNetImageProcessor,
    PrePostFusionForImageClassification,
    PrePostFusionImageProcessor,
    assess_image_quality,
)
from cervix_hf.data import read_iarc_atlas, read_isbi2014_edf
from cervix_hf.evaluation.results import eval_results_problems
from cervix_hf.io.files import EVAL_RESULTS_FILE
from cervix_hf.prediction.inference import load_classifier
from cervix_hf.registry import cell_detector_config, colponet_config, prepost_config

from . import expectations
from .conftest import SHARED_DATA, require_data
from .model_runs import colponet_run

REPO_ROOT = Path(__file__).resolve().parents[1]


def evaluate(*arguments) -> subprocess.CompletedProcess:
    """`cervix-hf evaluate` as a user runs it, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "cervix_hf", "evaluate", *map(str, arguments)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


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
    by_name = {row["path"]: row for row in results["predictions"]}  # named inside the data set, as training does
    assert len(by_name) == len(photos)
    for photo, probabilities, label in zip(photos, expected, truth):
        assert by_name[f"clinic/{label}/{photo.name}"]["label"] == label
        assert by_name[f"clinic/{label}/{photo.name}"]["probabilities"] == pytest.approx(probabilities, abs=1e-5)
    rejected = sum(not assess_image_quality(Image.open(photo).convert("RGB")).is_acceptable for photo in photos)
    assert results["data"]["quality_gate"]["would_reject"] == rejected
    assert is_png(folder / "plots" / "confusion_matrix.png") and is_png(folder / "plots" / "roc.png")

    card = (run / "README.md").read_text()  # rendered again: it links the evaluation beside the training one
    assert "[eval_results.json](evaluations/clinic/eval_results.json)" in card
    assert "(evaluations/clinic/plots/roc.png)" in card
    assert "![Confusion matrix](plots/confusion_matrix.png)" in card


def copy_as(photos: dict[str, Path], data: Path) -> Path:
    """A data set folder holding real photos at the given places inside it."""
    for place, photo in photos.items():
        (data / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, data / place)
    return data


def write_solution_csv(data: Path, types: dict[str, str], separator: str = ",", bom: bool = False) -> None:
    """The competition's labels of test/: image_name,Type_1,Type_2,Type_3, one-hot."""
    names = ["Type_1", "Type_2", "Type_3"]
    lines = [separator.join(["image_name", *names])]
    lines += [
        separator.join([image, *("1" if name == kind else "0" for name in names)]) for image, kind in types.items()
    ]
    text = ("\ufeff" if bom else "") + "\r\n".join(lines) + "\r\n"
    (data / "solution_stg1_release.csv").write_text(text, encoding="utf-8", newline="")


def predicted_labels(results: dict) -> dict[str, str]:
    return {row["path"]: row["label"] for row in results["predictions"]}


def tiny_colponet(folder: Path, held_out: list[str] | None = None) -> Path:
    """A tiny ColpoNet with random weights, saved; with `held_out`, the record a training run on
    intel-mobileodt-sample writes beside it, naming those photos (inside the data set) as the ones it evaluated on."""
    torch.manual_seed(0)
    ColpoNetForImageClassification(colponet_config("tiny")).save_pretrained(folder)
    ColpoNetImageProcessor().save_pretrained(folder)
    if held_out is not None:
        record = {
            "model_type": "colponet",
            "evaluated_on": "validation",
            "label_names": ["Type_1", "Type_2", "Type_3"],
            "data": {
                "source": "intel-mobileodt-sample",
                "split_fractions": {"train": 0.7, "validation": 0.3, "test": 0.0},
                "seed": 42,
            },
            "training": {"stages": [], "augmentation": "flip", "batch_size": 16, "model_size": "tiny"},
            "predictions": [
                {
                    "path": f"intel-mobileodt-sample/{place}",
                    "label": place.split("/")[1],
                    "probabilities": {"Type_1": 0.4, "Type_2": 0.3, "Type_3": 0.3},
                }
                for place in held_out
            ],
        }
        (folder / EVAL_RESULTS_FILE).write_text(json.dumps(record))
    return folder


def test_colponet_evaluated_on_a_folder_of_only_the_competition_s_test_photos(tmp_path, intel_photos):
    run = tiny_colponet(tmp_path / "run")
    chosen = intel_photos[5::20]  # two photos of each type, renamed as the test set names them
    data = copy_as({f"test/{number}.jpg": photo for number, photo in enumerate(chosen)}, tmp_path / "stage1-test")
    types = {f"{number}.jpg": photo.parent.name for number, photo in enumerate(chosen)}
    write_solution_csv(data, types, separator=";", bom=True)  # as some copies of the csv are
    done = evaluate("--model", run, "--data", data)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every subset present" in done.stdout and "test 6 photo(s)" in done.stdout
    results = json.loads((run / "evaluations" / "stage1-test" / EVAL_RESULTS_FILE).read_text())
    assert results["evaluated_on"] == "external"
    assert predicted_labels(results) == {f"stage1-test/test/{image}": kind for image, kind in types.items()}
    assert results["data"]["class_counts"]["external"] == {"Type_1": 2, "Type_2": 2, "Type_3": 2}


def test_colponet_evaluates_only_the_subset_asked_for(tmp_path, intel_photos):
    run = tiny_colponet(tmp_path / "run")
    test_photos = intel_photos[7::30]
    data = copy_as(
        {
            **{f"train/{photo.parent.name}/{photo.name}": photo for photo in intel_photos[1::20]},
            **{f"additional_{p.parent.name}_v2/{p.parent.name}/{p.name}": p for p in intel_photos[2::40]},
            **{f"test/{number}.jpg": photo for number, photo in enumerate(test_photos)},
        },
        tmp_path / "competition",
    )
    write_solution_csv(data, {f"{number}.jpg": photo.parent.name for number, photo in enumerate(test_photos)})
    done = evaluate("--model", run, "--data", data, "--subset", "test")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the subset(s) asked for: test 4 photo(s)." in done.stdout
    results = json.loads((run / "evaluations" / "competition-test" / EVAL_RESULTS_FILE).read_text())
    assert predicted_labels(results) == {
        f"competition/test/{number}.jpg": photo.parent.name for number, photo in enumerate(test_photos)
    }
    assert results["data"]["subsets"] == {"test": 4}


def test_colponet_refuses_photos_of_its_own_training_data_unless_told_and_then_says_so(tmp_path, intel_photos):
    photos = {f"train/{photo.parent.name}/{photo.name}": photo for photo in intel_photos[::15]}
    held_out = sorted(photos)[::3]  # what its training run evaluated on
    run = tiny_colponet(tmp_path / "run", held_out)  # trained on intel-mobileodt-sample, by its record

    same = copy_as(photos, tmp_path / "intel-mobileodt-sample")  # the training data set itself
    done = evaluate("--model", run, "--data", same)
    assert done.returncode == 2
    assert f"5 of 8 photo(s) of {same} overlap the model's own training data" in done.stderr
    assert "--allow-overlap" in done.stderr
    assert not (run / "evaluations").exists()

    copy = copy_as(photos, tmp_path / "my-photos")  # the same photos under another name
    done = evaluate("--model", run, "--data", copy, "--allow-overlap")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING: 5 of 8 photo(s)" in done.stderr and "overlapping-training-data" in done.stdout
    results = json.loads((run / "evaluations" / "my-photos" / EVAL_RESULTS_FILE).read_text())
    assert results["evaluated_on"] == "overlapping-training-data"
    assert sum(results["data"]["class_counts"]["overlapping-training-data"].values()) == 8

    only_held_out = copy_as({place: photos[place] for place in held_out}, tmp_path / "held-out")
    done = evaluate("--model", run, "--data", only_held_out)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((run / "evaluations" / "held-out" / EVAL_RESULTS_FILE).read_text())
    assert results["evaluated_on"] == "external" and len(results["predictions"]) == 3


def test_colponet_evaluated_on_the_atlas_types_each_case_by_its_csv(tmp_path):
    atlas = require_data(SHARED_DATA / "iarc-colposcopy-atlas")
    run = tiny_colponet(tmp_path / "run")
    types = {}  # case id: Type_N, from the csv text
    for csv_path in atlas.glob("colposcopy_cases_*_grade.csv"):
        for row in csv.DictReader(csv_path.read_text(encoding="utf-8-sig").splitlines()):
            found = re.match(r"Type ([123]) transformation zone", row["provisional_diagnosis"])
            if found:
                types[row["case_id"]] = f"Type_{found.group(1)}"
    done = evaluate("--model", run, "--data", atlas)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "49 case(s), one photo after acetic acid each" in done.stdout and "skipped 3 case(s)" in done.stdout
    assert "AACV (no transformation-zone type)" in done.stdout
    results = json.loads((run / "evaluations" / atlas.name / EVAL_RESULTS_FILE).read_text())
    assert results["evaluated_on"] == "external" and len(results["predictions"]) == 49
    for path, label in predicted_labels(results).items():
        case_folder, view = path.split("/")[-2:]
        assert label == types[case_folder.removeprefix("case_")] and view.endswith("_After_acetic_acid.jpg")


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
