"""The training commands as users run them, in fresh processes: several processes under `torchrun` and
`accelerate launch` (gloo on the CPU, tiny models), compared with one process; and seeded runs that repeat exactly.

Every run is a real command line in a subprocess, from the repository root, exactly as the README shows it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cervix_hf import load_image

from .conftest import SHARED_DATA, require_data

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Wall-clock figures are the only part of a run that may differ between two runs with the same seed.
TIMING_SUFFIXES = ("_runtime", "_per_second")
PHOTOS_PER_CLASS = 27  # 81 photos: a 70:20:10 split gives 15 validation and 9 test photos, odd on purpose


def run(command: list[str], timeout: int = 600) -> str:
    """Runs a command from the repository root as a user would; returns its output, failing with it on error."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{output[-6000:]}"
    return output


def torchrun(*script_args: str) -> list[str]:
    return [str(BIN / "torchrun"), "--nproc_per_node", "2", "-m", *script_args]


def one_process(*script_args: str) -> list[str]:
    return [sys.executable, "-m", *script_args]


def eval_results(output_dir: Path) -> dict:
    return json.loads((output_dir / "eval_results.json").read_text())


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith(TIMING_SUFFIXES)}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def assert_one_run_wrote(output_dir: Path, log: str) -> None:
    """The main process wrote a complete run, once, and the trainer found every best checkpoint."""
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "eval_results.json",
        "training_args.json",
        "README.md",
    ):
        assert (output_dir / name).is_file(), name
    assert "Could not locate the best model" not in log
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in log
    for stage in eval_results(output_dir)["training"]["stages"]:
        assert stage["best_checkpoint"] and (output_dir / stage["best_checkpoint"]).is_dir(), stage["stage"]


@pytest.fixture(scope="module")
def odd_image_folder(tmp_path_factory) -> Path:
    """`<root>/<class>/*.jpg` with 27 real photos of each type (copies of the shared sample's: the readers refuse
    links out of the data folder)."""
    sample = require_data(SHARED_DATA / "intel-mobileodt-sample")
    root = tmp_path_factory.mktemp("odd-folder")
    for type_dir in sorted((sample / "train").glob("Type_*")):
        (root / type_dir.name).mkdir()
        for photo in sorted(type_dir.glob("*.jpg"))[:PHOTOS_PER_CLASS]:
            shutil.copyfile(photo, root / type_dir.name / photo.name)
    return root


def colponet_command(data: Path, output_dir: Path, seed: int = 42) -> list[str]:
    return [
        "train.train_colponet",
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
        "4",
        "--workers",
        "0",
        "--no-pretrained-backbone",
        "--no-progress-bar",
        "--augmentation",
        "default",
        "--seed",
        str(seed),
    ]


@pytest.fixture(scope="module")
def colponet_runs(odd_image_folder, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """The same ColpoNet command: one process twice, once with another seed, under torchrun and accelerate launch."""
    base = tmp_path_factory.mktemp("colponet-runs")
    commands = {
        "single": one_process(*colponet_command(odd_image_folder, base / "single")),
        "single_again": one_process(*colponet_command(odd_image_folder, base / "single_again")),
        "other_seed": one_process(*colponet_command(odd_image_folder, base / "other_seed", seed=7)),
        "torchrun": torchrun(*colponet_command(odd_image_folder, base / "torchrun")),
        "accelerate": [
            str(BIN / "accelerate"),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            *colponet_command(odd_image_folder, base / "accelerate"),
        ],
    }
    return {name: (base / name, run(command)) for name, command in commands.items()}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_colponet_under_several_processes_counts_each_test_photo_once(colponet_runs, odd_image_folder, launcher):
    output_dir, log = colponet_runs[launcher]
    assert_one_run_wrote(output_dir, log)
    results, single = eval_results(output_dir), eval_results(colponet_runs["single"][0])
    test_paths = [p["path"] for p in results["predictions"]]
    assert len(test_paths) == len(set(test_paths)) == 9  # 3 per type, none twice: no padding duplicates kept
    assert sorted(test_paths) == sorted(p["path"] for p in single["predictions"])
    report = results["metrics"]["classification_report"]
    assert sum(report[name]["support"] for name in results["label_names"]) == 9
    assert sum(map(sum, results["metrics"]["confusion_matrix"])) == 9
    assert results["data"]["class_counts"] == single["data"]["class_counts"]
    # the quality gate read the photos once, on the main process, and every process trained on its verdict
    assert log.count("quality gate: kept") == 1 and "[rank 0] train.train_colponet INFO quality gate: kept" in log


@pytest.mark.slow
def test_the_model_saved_by_several_processes_is_the_one_evaluated(colponet_runs, odd_image_folder):
    from cervix_hf import ColpoNetForImageClassification, ColpoNetImageProcessor

    output_dir, _ = colponet_runs["torchrun"]
    model = ColpoNetForImageClassification.from_pretrained(output_dir).eval()
    processor = ColpoNetImageProcessor.from_pretrained(output_dir)
    predictions = eval_results(output_dir)["predictions"]
    # each photo is named inside the data set, which lies in odd_image_folder.parent
    inputs = processor([load_image(odd_image_folder.parent / p["path"]) for p in predictions], return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**inputs).logits.softmax(-1).numpy()
    expected = np.array([[p["probabilities"][name] for name in model.config.id2label.values()] for p in predictions])
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_weights_and_evaluation(colponet_runs):
    (first, _), (second, _) = colponet_runs["single"], colponet_runs["single_again"]
    weights, again = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert weights.keys() == again.keys()
    for name in weights:
        assert torch.equal(weights[name], again[name]), name
    assert without_timings(eval_results(first)) == without_timings(eval_results(second))


@pytest.mark.slow
def test_another_seed_gives_other_weights(colponet_runs):
    weights = load_file(colponet_runs["single"][0] / "model.safetensors")
    other = load_file(colponet_runs["other_seed"][0] / "model.safetensors")
    changed = [name for name in weights if not torch.equal(weights[name], other[name])]
    assert "classifier.weight" in changed and len(changed) > len(weights) // 2


def single_and_torchrun(script_args: list[str], base: Path) -> dict[str, dict]:
    """Runs one training command in one process and under torchrun; {"single"/"torchrun": eval_results.json}."""
    results = {}
    for name, launch in (("single", one_process), ("torchrun", torchrun)):
        log = run(launch(*script_args, "--output-dir", str(base / name)))
        assert_one_run_wrote(base / name, log)
        results[name] = eval_results(base / name)
    return results


@pytest.mark.slow
def test_prepost_under_torchrun_counts_each_case_once(tmp_path):
    from transformers import AutoModelForImageClassification

    data = require_data(SHARED_DATA / "iarc-colposcopy-atlas")
    runs = single_and_torchrun(
        [
            "train.train_prepost_fusion",
            "--data",
            str(data),
            "--model-size",
            "tiny",
            "--stage1-epochs",
            "1",
            "--stage2-epochs",
            "1",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--no-pretrained-backbone",
            "--no-progress-bar",
            "--decision-threshold",
            "0.5",
        ],
        tmp_path,
    )
    results, single = runs["torchrun"], runs["single"]
    cases = [p["case_id"] for p in results["predictions"]]
    assert len(cases) % 2 == 1  # an odd split: two processes must not count a padded case twice
    assert len(cases) == len(set(cases)) == sum(results["data"]["class_counts"]["test"].values())
    assert sorted(cases) == sorted(p["case_id"] for p in single["predictions"])
    assert results["metrics"]["num_cases"] == len(cases) == single["metrics"]["num_cases"]
    assert sum(map(sum, results["metrics"]["report"]["confusion_matrix"])) == len(cases)
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "torchrun")
    with torch.no_grad():
        probability = model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).probabilities
    assert probability.shape == (1,) and 0 <= float(probability) <= 1


@pytest.mark.slow
def test_detector_under_torchrun_evaluates_each_test_image_once(tmp_path):
    from transformers import AutoModelForObjectDetection

    data = require_data(SHARED_DATA / "isbi2014-edf")
    test_names = ["EDF009", "EDF010", "EDF011"]
    runs = single_and_torchrun(
        [
            "train.train_cell_detector",
            "--data",
            str(data),
            "--format",
            "isbi2014",
            "--test-names",
            *test_names,
            "--model-size",
            "tiny",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--workers",
            "0",
            "--min-size",
            "256",
            "--max-size",
            "256",
            "--no-pretrained-backbone",
            "--no-progress-bar",
        ],
        tmp_path,
    )
    for results in runs.values():
        assert results["data"]["test_images"] == [f"{name}.png" for name in test_names]
        assert results["metrics"]["num_images"] == 3
    assert runs["torchrun"]["data"]["images_per_split"] == runs["single"]["data"]["images_per_split"]
    model = AutoModelForObjectDetection.from_pretrained(tmp_path / "torchrun").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 128, 128)).pred_boxes.shape[-1] == 4
