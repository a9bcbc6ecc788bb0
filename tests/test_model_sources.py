"""Where a model comes from, as a user meets it: a path or a Hub id told apart at once, a folder that cannot load
stopping the app at start, the release models served before the Hub (and staged with the Space), and the first
minutes' messages (a busy port, export without calibration, --quiet, masks in the ISBI folder, file modes, the API).

Commands run as a user runs them, in a subprocess; the app is driven over HTTP.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from cervix_hf.app.models import TASKS_BY_NAME, AppModels, ModelSlot

from .conftest import launch_app
from .test_security_api import call

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path, timeout: int = 240, **environ: str) -> subprocess.CompletedProcess:
    """`python -m ARGS` in `cwd` with this checkout's package, the Hub switched off unless `environ` says otherwise."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environ}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def save_tiny(model_type: str, folder: Path) -> Path:
    """A tiny model of `model_type` with random weights, saved as a training run saves it."""
    from cervix_hf.registry import family

    record = family(model_type)
    record.task_model_class(record.config("tiny")).save_pretrained(folder)
    record.processor_class().save_pretrained(folder)
    return folder


def test_a_path_that_does_not_exist_is_a_missing_folder_at_once_without_asking_the_hub(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"")
    # The Hub "online" at a closed port: a value taken for a repo id would print huggingface_hub's retries.
    hub = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    for model in ("checkpoints/colponet", "./colponet", "runs/a/b"):
        result = run("cervix_hf.predict", "--model", model, "photo.jpg", cwd=tmp_path, **hub)
        assert result.returncode == 2, result.stderr
        assert "no such folder" in result.stderr and str(tmp_path / model.removeprefix("./")) in result.stderr
        assert "Retrying" not in result.stderr and "Traceback" not in result.stderr


def test_an_interrupted_training_run_given_as_a_model_points_to_resume(tmp_path):
    (tmp_path / "run" / "stage1" / "checkpoint-12").mkdir(parents=True)
    (tmp_path / "photo.jpg").write_bytes(b"")
    result = run("cervix_hf.predict", "--model", "run", "photo.jpg", cwd=tmp_path)
    assert result.returncode == 2
    assert "training run that did not finish" in result.stderr and "--resume" in result.stderr
    assert "model_type" not in result.stderr
    exported = run("cervix_hf.export", "--model", "run", "--calibration", ".", cwd=tmp_path)
    assert exported.returncode == 2 and "--resume" in exported.stderr


def test_export_without_calibration_says_what_to_give(tmp_path, tiny_colponet_dir):
    result = run("cervix_hf.export", "--model", str(tiny_colponet_dir), cwd=tmp_path)
    assert result.returncode == 2
    assert "--calibration DATA is needed" in result.stderr and "None" not in result.stderr


def test_predict_skips_isbi_masks_and_quiet_silences_the_weight_loading_bar(tmp_path, tiny_colponet_dir):
    fields = tmp_path / "isbi"
    fields.mkdir()
    Image.new("RGB", (96, 96), "purple").save(fields / "EDF000.png")
    Image.new("L", (96, 96), 255).save(fields / "EDF000_GT.png")  # the nucleus mask beside its image
    output = tmp_path / "rows.csv"
    result = run(
        "cervix_hf.predict",
        "--model",
        str(tiny_colponet_dir),
        str(fields),
        "--output",
        str(output),
        "--quiet",
        "--ignore-quality-gate",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "skipped 1 ground-truth mask" in result.stderr
    rows = output.read_text().splitlines()[1:]
    assert len(rows) == 1 and "EDF000.png" in rows[0]
    assert "Loading weights" not in result.stderr and "it/s" not in result.stderr


def test_the_app_stops_at_start_on_a_flag_that_cannot_load_naming_the_flag_and_the_kind(tmp_path, tiny_colponet_dir):
    missing = run("cervix_hf.app", "--colponet", "./colponet", cwd=tmp_path, timeout=180)
    assert missing.returncode == 2
    assert "--colponet" in missing.stderr and "no such folder" in missing.stderr
    wrong = run("cervix_hf.app", "--cell-detector", str(tiny_colponet_dir), cwd=tmp_path, timeout=180)
    assert wrong.returncode == 2
    assert "--cell-detector" in wrong.stderr and "holds a 'colponet' model" in wrong.stderr
    assert "Detr" not in wrong.stderr and "Running on" not in wrong.stderr


def test_a_busy_port_names_the_port_option(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("cervix_hf.app", "--port", str(port), "--no-warm-up", cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr and "terminate called" not in result.stderr


def test_sources_are_flag_then_checkpoints_then_release_then_hub(tmp_path, monkeypatch):
    release = tmp_path / "release"
    monkeypatch.setenv("CERVIX_HF_RELEASE_DIR", str(release))
    save_tiny("colponet", release / "colponet")
    save_tiny("colponet", tmp_path / "checkpoints" / "colponet")
    slot = ModelSlot(TASKS_BY_NAME["colponet"], checkpoints_dir=tmp_path / "checkpoints", hub_timeout=0.1)
    origins = [source.origin for source, _ in slot.resolve()]
    assert origins == ["the training script's folder", "the repository's release model", "the published repo"]
    assert slot.get().source.location == str((tmp_path / "checkpoints" / "colponet").resolve())
    flagged = ModelSlot(TASKS_BY_NAME["colponet"], str(release / "colponet"), tmp_path / "checkpoints")
    assert flagged.resolve()[0][0].origin == "--colponet / CERVIX_HF_COLPONET"


def test_the_app_serves_release_models_and_its_api_names_every_output(tmp_path, monkeypatch):
    release = tmp_path / "release"
    save_tiny("colponet", release / "colponet")
    monkeypatch.setenv("CERVIX_HF_RELEASE_DIR", str(release))
    from cervix_hf import app

    models = AppModels.from_settings(checkpoints_dir=tmp_path / "none", untrained_size="tiny")
    demo = launch_app(app.build_demo(models, tmp_path / "no-examples"))
    try:
        url = demo.local_url.rstrip("/")
        status, cards = call(url, "models", [])
        assert status == "complete", cards
        assert "local model 'colponet'" in cards[0] and "untrained" not in cards[0].lower()
        info = httpx.get(f"{url}/gradio_api/info", timeout=60).json()["named_endpoints"]
        unnamed = {
            name: [r["label"] for r in e["returns"] if re.fullmatch(r"value_\d+", r["label"])]
            for name, e in info.items()
        }
        assert not any(unnamed.values()), unnamed
        # The untrained fusion model defines no operating points: the API offers none of them.
        offered = info["/prepost_operating_point"]["parameters"][0]["python_type"]["type"]
        assert offered == "Literal['model default', 'custom threshold']", offered
    finally:
        demo.close()


def test_the_staged_space_carries_the_release_models_and_serves_them(tmp_path):
    from cervix_hf.hub.publishing import stage_space

    project = tmp_path / "project"
    project.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "cervix_hf", project / "cervix_hf", ignore=shutil.ignore_patterns("__pycache__"))
    save_tiny("colponet", project / "release" / "colponet")
    files = stage_space(tmp_path / "space", project_root=project)
    assert "release/colponet/model.safetensors" in files and "release/colponet/config.json" in files
    # The Space's app, run from the staged folder: its package finds release/ beside it.
    environ = {key: value for key, value in os.environ.items() if key != "CERVIX_HF_RELEASE_DIR"}
    probe = (
        "from cervix_hf.app.models import AppModels; "
        "print(AppModels.from_settings()['colponet'].get().source.describe())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path / "space", env=environ, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"local folder {(tmp_path / 'space' / 'release' / 'colponet').resolve()}"


def test_a_training_run_writes_its_weights_with_the_mode_of_its_other_files(tmp_path):
    from .model_runs import prepost_run

    old = os.umask(0o022)
    try:
        run_dir = prepost_run(tmp_path / "run")
    finally:
        os.umask(old)
    mode = (run_dir / "config.json").stat().st_mode & 0o777
    assert mode == 0o644 and (run_dir / "model.safetensors").stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("value", ["./x", "../x", "/no/such/x", "~/no-such-x", "checkpoints/colponet", "a/b/c", "x"])
def test_path_like_values_are_folders_and_owner_name_is_a_hub_id(value, tmp_path, monkeypatch):
    from cervix_hf.hub import ModelReferenceError, resolve_model_reference

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelReferenceError, match="no such folder"):
        resolve_model_reference(value)
    reference = resolve_model_reference("someone/colponet@v1")
    assert (reference.kind, reference.location, reference.revision) == ("hub", "someone/colponet", "v1")
