"""`cervix-hf publish` end to end, the real command in a fresh process: a ColpoNet trained on the real Intel &
MobileODT sample, exported and published to the local Hub (tests/hub_server.py), through a push that fails halfway
and is resumed, an interrupted training that is resumed, and `--staging-dir`.

The model is the `small` size at 64 px for one epoch, from random weights: the `tiny` size's 8-channel layers
crash PyTorch's CPU backward pass in channels_last memory (oneDNN) with this version. The export is fp32 (checked
against PyTorch as int8 is), since a one-epoch model's near-even probabilities make int8's top-1 check a coin toss."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load, load_file

from cervix_hf import ColpoNetForImageClassification
from cervix_hf.hub.card_checks import check_model_card
from cervix_hf.hub.cards import build_model_card
from cervix_hf.hub.publishing import PROJECT_ROOT

from .hub_server import LocalHub
from .test_publishing import TOKEN, hub_env

REPO_ID = "tester/published-colponet"
TRAINING = [
    "--model-size",
    "small",
    "--image-size",
    "64",
    "--stage1-epochs",
    "0",
    "--batch-size",
    "16",
    "--workers",
    "0",
    "--no-progress-bar",
    "--augmentation",
    "flip",
    "--no-pretrained-backbone",
]
UPLOADED = {
    "README.md",
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "eval_results.json",
    "training_args.json",
    "modeling_colponet.py",
    "plots/confusion_matrix.png",
    "onnx/model.onnx",
    "onnx/export.json",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub():
    with LocalHub(TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def calibration(intel_sample, tmp_path_factory) -> Path:
    """A few real photos to calibrate and check the export on (a quick export; any photo folder does)."""
    folder = tmp_path_factory.mktemp("calibration")
    for photo in sorted(intel_sample.glob("train/Type_*/*.jpg"))[::12]:
        shutil.copy(photo, folder / f"{photo.parent.name}_{photo.name}")
    return folder


def publish_command(work_dir: Path, data: Path, calibration: Path, *options: str, epochs: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cervix_hf",
        "publish",
        "colponet",
        "--data",
        str(data),
        "--repo-id",
        REPO_ID,
        "--work-dir",
        str(work_dir),
        "--calibration",
        str(calibration),
        "--precision",
        "fp32",
        *options,
        "--",
        *TRAINING,
        "--stage2-epochs",
        str(epochs),
    ]


def publish(hub, home, *command_args, **keywords) -> subprocess.CompletedProcess:
    return subprocess.run(
        publish_command(*command_args, **keywords),
        cwd=PROJECT_ROOT,
        env=hub_env(hub, home),
        capture_output=True,
        text=True,
        timeout=1800,
    )


def state(work_dir: Path) -> dict:
    return json.loads((work_dir / "publish_state.json").read_text())


@pytest.fixture(scope="module")
def pushed(hub, intel_sample, calibration, tmp_path_factory):
    """A publish whose commit the Hub refuses once, then the same command again."""
    work_dir, home = tmp_path_factory.mktemp("publish") / "run", tmp_path_factory.mktemp("home")
    hub.fail_commits = 1
    failed = publish(hub, home, work_dir, intel_sample, calibration)
    after_failure = {
        "state": state(work_dir) if (work_dir / "publish_state.json").is_file() else None,
        "files": dict(hub.files(REPO_ID)) if (("model", REPO_ID) in hub.repos) else None,
        "weights_mtime": (work_dir / "model" / "model.safetensors").stat().st_mtime_ns,
    }
    hub.fail_commits = 0
    retried = publish(hub, home, work_dir, intel_sample, calibration)
    return work_dir, home, failed, after_failure, retried


def test_a_push_that_fails_halfway_is_retried_without_training_again(pushed, hub):
    work_dir, _, failed, after_failure, retried = pushed
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "nothing was committed" in failed.stderr and "run the same command again" in failed.stderr
    # Trained, evaluated, exported and carded; the repo was created, but nothing of the model reached it.
    assert set(after_failure["state"]["steps"]) == {"train", "evaluate", "export", "card"}
    assert set(after_failure["files"]) == {".gitattributes"}

    assert retried.returncode == 0, retried.stdout + retried.stderr
    for step in ("train", "evaluate", "export", "card"):
        assert f"publish: {step} finished in an earlier run" in retried.stdout
    assert (work_dir / "model" / "model.safetensors").stat().st_mtime_ns == after_failure["weights_mtime"]
    assert "train_runtime" not in retried.stdout + retried.stderr  # the Trainer's summary of a training run

    files = hub.files(REPO_ID)
    assert UPLOADED <= set(files), sorted(files)
    assert state(work_dir)["steps"]["push"]["commit"] == hub.repo(REPO_ID).branches["main"]
    # The weights the Hub holds are the trained ones, and the card names the repo it was pushed to.
    trained = load_file(work_dir / "model" / "model.safetensors")
    served = load(files["model.safetensors"])
    assert served.keys() == trained.keys() and all((served[k] == trained[k]).all() for k in trained)
    assert f"{REPO_ID}" in files["README.md"].decode()
    assert json.loads(files["eval_results.json"]) == json.loads((work_dir / "model" / "eval_results.json").read_text())
    assert json.loads(files["onnx/export.json"])["fp32"]["accepted"] is True


def test_a_finished_publish_run_again_does_nothing(pushed, hub, intel_sample, calibration):
    work_dir, home, *_ = pushed
    commits = len(hub.repo(REPO_ID).commits)
    again = publish(hub, home, work_dir, intel_sample, calibration)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "publish: push finished in an earlier run" in again.stdout
    assert len(hub.repo(REPO_ID).commits) == commits


def test_staging_dir_stages_what_is_uploaded_a_strictly_loading_model_with_a_checked_card(
    pushed, hub, intel_sample, calibration, tmp_path
):
    work_dir, home, *_ = pushed
    staged = tmp_path / "release" / "colponet"
    result = publish(hub, home, work_dir, intel_sample, calibration, "--staging-dir", str(staged))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Staged: nothing uploaded to {REPO_ID}" in result.stdout
    files = {path.relative_to(staged).as_posix() for path in staged.rglob("*") if path.is_file()}
    assert files == set(hub.files(REPO_ID)) - {".gitattributes"}

    model, loading = ColpoNetForImageClassification.from_pretrained(staged, output_loading_info=True)
    assert not any(loading.values()), loading
    card, values = build_model_card(staged, repo_id=REPO_ID)
    check_model_card((staged / "README.md").read_text(), values, staged)  # raises when the card disagrees
    assert (staged / "README.md").read_text() == str(card)


def test_an_interrupted_training_resumes_from_its_last_checkpoint(hub, intel_sample, calibration, tmp_path):
    work_dir = tmp_path / "run"
    command = publish_command(work_dir, intel_sample, calibration, "--dry-run", epochs=3)
    log = tmp_path / "first.log"
    with log.open("w") as output:
        first = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=hub_env(hub, tmp_path / "home"),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 1200
            while not list((work_dir / "model" / "stage2_full").glob("checkpoint-*")):
                assert first.poll() is None, f"publish ended before its first checkpoint:\n{log.read_text()}"
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # as a lost machine stops it: no chance to clean up
            first.wait(timeout=60)
    assert not (work_dir / "publish_state.json").exists(), "training finished before it could be interrupted"

    resumed = publish(hub, tmp_path / "home", work_dir, intel_sample, calibration, "--dry-run", epochs=3)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "publish: train (resumed: --resume)" in resumed.stdout
    assert "Resuming stage stage2_full from" in resumed.stderr
    assert state(work_dir)["steps"]["train"]["resumed"] is True
    assert json.loads((work_dir / "model" / "training_args.json").read_text())["resume"] is True
    assert "Dry run: nothing uploaded" in resumed.stdout and "model.safetensors" in resumed.stdout
