"""Shared fixtures. The suite never touches the network: the Hub is switched off before anything imports it.

Real-data tests read the sample data found by `cervix_hf.sample_data` (`$CERVIX_HF_SAMPLE_DATA`, else
`../shared/data` from the repository root). Locally a test whose prerequisite is missing skips, and `-ra` names it
in the summary; under CI (`CI` set) nothing may pass by skipping: missing sample data stops the run at once with
what is missing, and any test that would skip fails with its reason.
"""

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
# The app never serves the repository's own release models in tests: a test that wants one sets its own folder.
os.environ["CERVIX_HF_RELEASE_DIR"] = os.path.join(tempfile.gettempdir(), "cervix_hf_tests_no_release")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Each test process (each pytest-xdist worker) gets its own gradio cache. gradio names a cached file by its content,
# and an app deletes the files it cached when it closes: the other worker's app closing would delete a file that an
# app of this one, given the same detections, had just handed out (its download then answers 403).
GRADIO_CACHE = tempfile.mkdtemp(prefix="cervix_hf_tests_gradio_")
os.environ["GRADIO_TEMP_DIR"] = GRADIO_CACHE
atexit.register(shutil.rmtree, GRADIO_CACHE, ignore_errors=True)

import pytest  # noqa: E402

from cervix_hf.sample_data import SAMPLE_DATA_ENV, missing_sample_data, sample_data_dir  # noqa: E402

SHARED_DATA = sample_data_dir()
UNDER_CI = bool(os.environ.get("CI"))


def pytest_sessionstart(session):
    missing = missing_sample_data()
    if UNDER_CI and missing:
        pytest.exit(
            "CI must run every test, but the real sample data is missing: "
            + ", ".join(map(str, missing))
            + f". Put the shared data beside the repository (../shared/data) or set {SAMPLE_DATA_ENV} to its folder.",
            returncode=1,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI a skipped test is a failure that says what was missing."""
    outcome = yield
    report = outcome.get_result()
    if UNDER_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI runs every test, but this one would skip: {reason}"


INTEL_SAMPLE = SHARED_DATA / "intel-mobileodt-sample"


def require_data(path: Path) -> Path:
    """Skips the calling test, with the reason, when the real sample data is missing (a failure under CI)."""
    if not path.exists():
        pytest.skip(f"real sample data not found at {path}")
    return path


@pytest.fixture(scope="session")
def intel_sample() -> Path:
    return require_data(INTEL_SAMPLE)


@pytest.fixture(scope="session")
def intel_photos(intel_sample) -> list[Path]:
    return sorted(intel_sample.glob("train/Type_*/*.jpg"))


@pytest.fixture(scope="session")
def tiny_colponet_dir(tmp_path_factory):
    """A tiny ColpoNet with random weights and its processor, saved with `save_pretrained`."""
    import torch

    from cervix_hf import ColpoNetForImageClassification, ColpoNetImageProcessor
    from cervix_hf.registry import colponet_config

    torch.manual_seed(0)
    model = ColpoNetForImageClassification(colponet_config("tiny", class_weights=[2.0, 0.6, 1.1])).eval()
    # Give batch norm non-trivial statistics so a loader that dropped buffers would change the logits.
    with torch.no_grad():
        model.train()
        model(torch.randn(4, 3, 64, 64))
        model.eval()
    directory = tmp_path_factory.mktemp("tiny-colponet")
    model.save_pretrained(directory)
    ColpoNetImageProcessor().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def app_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """The app's three models trained for a few steps on the real samples and saved: {task name: folder}."""
    for dataset in ("intel-mobileodt-sample", "isbi2014-edf", "iarc-colposcopy-atlas"):
        require_data(SHARED_DATA / dataset)
    from .app_checkpoints import train_tiny_checkpoints

    return train_tiny_checkpoints(SHARED_DATA, tmp_path_factory.mktemp("app-checkpoints"))


@pytest.fixture(scope="session")
def running_app(app_checkpoints, tmp_path_factory):
    """The app serving `app_checkpoints` over HTTP on a free loopback port, in this process, examples included."""
    from cervix_hf import app
    from cervix_hf.app.models import AppModels

    models = AppModels.from_settings(
        {task: str(folder) for task, folder in app_checkpoints.items()},
        checkpoints_dir=tmp_path_factory.mktemp("no-checkpoints"),
    )
    demo = launch_app(app.build_demo(models, SHARED_DATA))
    yield demo
    demo.close()


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_app(demo):
    """Launches a `build_demo()` app on a free port of 127.0.0.1 without blocking; `demo.local_url` is its address."""
    from cervix_hf import app

    demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **app.LAUNCH_SETTINGS
    )
    return demo
