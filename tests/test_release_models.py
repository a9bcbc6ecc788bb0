"""The trained models shipped in `release/`: each loads strictly, its card says what its evaluation file says, its
int8 export passed its check, and all of them fit the repository's budget."""

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from cervix_hf.hub.cards import render_model_card
from cervix_hf.registry import FAMILIES, family

RELEASE = Path(__file__).resolve().parents[1] / "release"
MODEL_TYPES = [record.model_type for record in FAMILIES]
MAX_TOTAL_BYTES, MAX_FILE_BYTES = 40 * 10**6, 20 * 10**6


def release_files() -> list[Path]:
    return [path for path in RELEASE.rglob("*") if path.is_file()]


def test_every_model_has_a_release_folder_and_nothing_else_is_there():
    assert sorted(path.name for path in RELEASE.iterdir() if path.is_dir()) == sorted(MODEL_TYPES)


def test_the_release_fits_the_repository_budget():
    sizes = {path: path.stat().st_size for path in release_files()}
    assert sum(sizes.values()) <= MAX_TOTAL_BYTES, f"{sum(sizes.values()) / 1e6:.1f} MB in release/"
    assert not [path for path, size in sizes.items() if size > MAX_FILE_BYTES]
    # weights and their exports only, no training state (optimizer, checkpoints)
    assert not [path for path in sizes if path.name in ("optimizer.pt", "scheduler.pt", "trainer_state.json")]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_release_model_loads_strictly_with_its_own_code(model_type):
    folder = RELEASE / model_type
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == model_type and "auto_map" in config
    record = family(model_type)
    model, info = record.task_auto_class.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
    assert {key: value for key, value in info.items() if value} == {}, info
    assert type(model).__name__ == record.task_model_class.__name__


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_release_card_says_what_its_evaluation_file_says(model_type):
    folder = RELEASE / model_type
    saved = (folder / "README.md").read_text()
    assert str(render_model_card(folder)) == saved  # rendered again from the files, and checked against them
    evaluation = json.loads((folder / "eval_results.json").read_text())
    card = ModelCard.load(folder / "README.md")
    for entry in card.data.eval_results:  # the model-index figures, read from the card's metadata
        metric = next(m for m in family(model_type).index_metrics if m.type == entry.metric_type)
        value = evaluation
        for key in metric.path:
            value = value[key]
        assert entry.metric_value == pytest.approx(value, abs=5e-4), metric.name
    assert "random weights" in saved  # trained here without ImageNet, and the card says so
    assert "python -m" in saved or "cervix-hf" in saved  # the command that produced it


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_release_export_passed_its_check(model_type):
    report = json.loads((RELEASE / model_type / "onnx" / "export.json").read_text())
    assert report["int8"]["accepted"] is True
    assert list((RELEASE / model_type / "onnx").glob("*int8.onnx"))  # one graph, or the detector's parts


def test_the_cell_classifier_benchmark_reports_the_release_model_s_own_test_figures():
    """The README's benchmark over the release model, as a user runs it: its test row is the model's evaluation."""
    import subprocess
    import sys

    folder = RELEASE / "cell_classifier"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.cell_classifier_accuracy", "--model", str(folder)],
        cwd=RELEASE.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((folder / "eval_results.json").read_text())
    assert evaluation["evaluated_on"] == "test"
    assert f"| model | test | {evaluation['metrics']['accuracy']:.3f} [" in result.stdout
    assert "model beats class prior on validation accuracy_7" in result.stdout
