"""Shared fixtures. The suite never touches the network: the Hub is switched off before anything imports it."""

import os
import socket
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
INTEL_SAMPLE = SHARED_DATA / "intel-mobileodt-sample"


def require_data(path: Path) -> Path:
    """Skips the calling test, with the reason, when the real sample data is not beside the project."""
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
    from cervix_hf.model_presets import colponet_config

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
    import app
    from cervix_hf.app_models import AppModels

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
    import app

    demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **app.LAUNCH_SETTINGS
    )
    return demo
