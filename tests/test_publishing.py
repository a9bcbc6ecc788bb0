"""Publishing through the real huggingface_hub client to a local Hub on 127.0.0.1 (tests/hub_server.py), and
loading what was published, in a fresh process that has never heard of cervix_hf, with the same outputs.

Nothing here reaches the real Hub: every endpoint is the local one and the token is fake."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import SpaceCard, constants
from PIL import Image, ImageDraw
from transformers import AutoImageProcessor, AutoModelForImageClassification, AutoModelForObjectDetection

from cervix_hf.hub import PUBLISHED_MODELS, model_repo_id, publishing, repo_env_var
from cervix_hf.hub.publishing import PROJECT_ROOT, PublishError, push_space, push_to_hub, stage_space
from train import push_to_hub as push_to_hub_command

from .hub_server import LocalHub
from .model_runs import RUNS

TOKEN = "hf_test_secret_token_value"
COLPONET_FILES = {
    "README.md",
    "config.json",
    "configuration_colponet.py",
    "eval_results.json",
    "image_processing_colponet.py",
    "image_quality.py",
    "model.safetensors",
    "modeling_colponet.py",
    "pipeline_colponet.py",
    "preprocessor_config.json",
    "training_args.json",
    "plots/confusion_matrix.png",  # drawn from eval_results.json, linked by the card
}
# model type -> (repo id, revision) of what the tests publish
PUBLISHED = {
    "colponet": ("tester/colponet", "main"),  # through the command line, private
    "cell_detector": ("tester/cell-detector", "main"),
    "prepost_fusion": ("tester/prepost", "research"),  # on a branch
}


def hub_env(hub: LocalHub, home: Path) -> dict:
    """A fresh process's environment: the local Hub, the fake token, its own cache, online."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_")) and k != "PYTHONPATH"
    }
    env.update(
        HF_ENDPOINT=hub.url,
        HF_TOKEN=TOKEN,
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


@pytest.fixture(scope="module")
def hub():
    with LocalHub(TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {model_type: make(root / model_type) for model_type, make in RUNS.items()}


@pytest.fixture
def online(monkeypatch, hub):
    """This process as a publisher: the suite's HF_HUB_OFFLINE lifted, the fake token, the local Hub by default."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)


@pytest.fixture(scope="module")
def published(hub, runs, tmp_path_factory):
    """The three models published: ColpoNet by the command in a fresh process, the others by `push_to_hub`."""
    home = tmp_path_factory.mktemp("publisher")
    command = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.push_to_hub",
            "--model-dir",
            str(runs["colponet"]),
            "--repo-id",
            PUBLISHED["colponet"][0],
            "--private",
            "--commit-message",
            "First ColpoNet",
        ],
        cwd=PROJECT_ROOT,
        env=hub_env(hub, home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    staged = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_OFFLINE", False)
        patch.setenv("HF_TOKEN", TOKEN)
        for model_type in ("cell_detector", "prepost_fusion"):
            repo_id, revision = PUBLISHED[model_type]
            staged[model_type] = home / f"staged-{model_type}"
            push_to_hub(runs[model_type], repo_id, revision=revision, staging_dir=staged[model_type], endpoint=hub.url)
    return command, staged


def write_inputs(folder: Path) -> None:
    """The images the consumer and the cards' code read."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    Image.fromarray(rng.integers(0, 256, (200, 260, 3), dtype=np.uint8)).save(folder / "pre.jpg")
    Image.fromarray(rng.integers(0, 256, (260, 200, 3), dtype=np.uint8)).save(folder / "post.jpg")
    smear = Image.new("RGB", (300, 240), (30, 30, 30))
    ImageDraw.Draw(smear).rectangle((100, 80, 160, 130), fill=(240, 240, 240))
    smear.save(folder / "smear.png")


CONSUMER = textwrap.dedent(
    """
    import json, re, sys, traceback
    import torch
    from PIL import Image
    from huggingface_hub import hf_hub_download
    from transformers import AutoImageProcessor, AutoModelForImageClassification, AutoModelForObjectDetection

    outputs, snippets = {}, {}
    for model_type, (repo_id, revision) in json.loads(sys.argv[1]).items():
        auto = AutoModelForObjectDetection if model_type == "cell_detector" else AutoModelForImageClassification
        model = auto.from_pretrained(repo_id, trust_remote_code=True, revision=revision).eval()
        processor = AutoImageProcessor.from_pretrained(repo_id, trust_remote_code=True, revision=revision)
        images = {"colponet": ["photo.jpg"], "cell_detector": ["smear.png"], "prepost_fusion": ["pre.jpg", "post.jpg"]}
        with torch.inference_mode():
            out = model(**processor(*[Image.open(name) for name in images[model_type]], return_tensors="pt"))
        outputs[model_type] = {key: value for key, value in out.items() if isinstance(value, torch.Tensor)}
        card = open(hf_hub_download(repo_id, "README.md", revision=revision), encoding="utf-8").read()
        code = re.search(r"## How to get started\\n\\n```python\\n(.*?)\\n```", card, re.S).group(1)
        try:
            exec(code, {})
            snippets[model_type] = "ok"
        except Exception:
            snippets[model_type] = traceback.format_exc()
    torch.save(outputs, "outputs.pt")
    print(json.dumps({"snippets": snippets, "imported_cervix_hf": any(m.startswith("cervix_hf") for m in sys.modules)}))
    """
)


@pytest.fixture(scope="module")
def downloaded(hub, published, tmp_path_factory):
    """What a fresh process loads from the local Hub (HF_ENDPOINT, empty cache, no cervix_hf), and its output."""
    folder = tmp_path_factory.mktemp("consumer")
    write_inputs(folder)
    (folder / "consumer.py").write_text(CONSUMER)
    result = subprocess.run(
        [sys.executable, "consumer.py", json.dumps(PUBLISHED)],
        cwd=folder,
        env=hub_env(hub, folder / "hf-home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return folder, result, torch.load(folder / "outputs.pt")


def test_the_command_publishes_in_one_commit_and_prints_its_url(hub, published):
    command, _ = published
    assert command.returncode == 0, command.stderr[-3000:]
    repo = hub.repo(PUBLISHED["colponet"][0])
    commit = repo.resolve("main")
    assert f"{hub.url}/tester/colponet/commit/{commit.oid}" in command.stdout
    assert len(repo.commits) == 2 and commit.message == "First ColpoNet"  # the Hub's initial commit, then ours
    assert set(commit.files) == COLPONET_FILES | {".gitattributes"} and repo.private
    config = json.loads(commit.files["config.json"])
    assert config["auto_map"]["AutoModelForImageClassification"] == "modeling_colponet.ColpoNetForImageClassification"
    assert 'repo_id, revision = "tester/colponet", "main"' in commit.files["README.md"].decode()


def test_a_branch_push_leaves_main_alone_and_the_card_pins_the_branch(hub, published):
    repo = hub.repo(PUBLISHED["prepost_fusion"][0])
    assert set(repo.resolve("main").files) == {".gitattributes"}
    files = repo.resolve("research").files
    assert 'repo_id, revision = "tester/prepost", "research"' in files["README.md"].decode()
    assert "pipeline_prepost_fusion.py" in files
    assert hub.unhandled == []


def test_published_models_load_anywhere_with_identical_outputs(runs, published, downloaded):
    folder, result, remote = downloaded
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["imported_cervix_hf"] is False  # the Hub repos carry their own code
    images = {"colponet": ["photo.jpg"], "cell_detector": ["smear.png"], "prepost_fusion": ["pre.jpg", "post.jpg"]}
    for model_type in PUBLISHED:  # the models this module publishes
        run = runs[model_type]
        auto = AutoModelForObjectDetection if model_type == "cell_detector" else AutoModelForImageClassification
        model = auto.from_pretrained(run).eval()
        processor = AutoImageProcessor.from_pretrained(run)
        with torch.inference_mode():
            local = model(**processor(*[Image.open(folder / name) for name in images[model_type]], return_tensors="pt"))
        compared = [key for key in ("logits", "pred_boxes", "scores", "pred_labels") if key in remote[model_type]]
        assert compared, model_type
        for key in compared:
            torch.testing.assert_close(remote[model_type][key], local[key], rtol=0, atol=0, msg=f"{model_type} {key}")


def test_every_cards_get_started_code_runs_against_the_published_repo(downloaded):
    _, result, _ = downloaded
    snippets = json.loads(result.stdout.strip().splitlines()[-1])["snippets"]
    assert snippets == dict.fromkeys(PUBLISHED, "ok"), snippets


def test_the_token_is_sent_to_the_hub_and_nowhere_else(hub, runs, published, downloaded):
    command, staged = published
    _, consumer, _ = downloaded
    assert hub.authorizations == {f"Bearer {TOKEN}"}  # HF_TOKEN reached the Hub, as the only credential
    for output in (command.stdout, command.stderr, consumer.stdout, consumer.stderr):
        assert TOKEN not in output
    files = [path for folder in (*runs.values(), *staged.values()) for path in folder.rglob("*") if path.is_file()]
    assert files and not [path for path in files if TOKEN.encode() in path.read_bytes()]
    for repo in hub.repos.values():
        for commit in repo.commits.values():
            assert not [name for name, content in commit.files.items() if TOKEN.encode() in content]


def test_dry_run_stages_exactly_what_a_user_needs_and_touches_no_network(hub, runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # any request would land on the local Hub
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    requests_before = len(hub.requests)
    staging = tmp_path / "staged"
    code = push_to_hub_command.main(
        ["--model-dir", str(runs["colponet"]), "--repo-id", "tester/dry", "--dry-run", "--staging-dir", str(staging)]
    )
    out = capsys.readouterr().out
    assert code == 0 and len(hub.requests) == requests_before  # this process is offline (conftest) all along
    staged = [path for path in staging.rglob("*") if path.is_file()]
    assert {path.relative_to(staging).as_posix() for path in staged} == COLPONET_FILES
    assert all(f"  {name}  (" in out for name in COLPONET_FILES) and "nothing uploaded" in out
    assert 'repo_id, revision = "tester/dry", "main"' in (staging / "README.md").read_text()
    assert not [path for path in staged if TOKEN.encode() in path.read_bytes()]


def test_offline_is_a_clear_error_and_uploads_nothing(hub, runs, monkeypatch, capsys):
    assert constants.HF_HUB_OFFLINE  # as tests/conftest.py sets it, like a user's HF_HUB_OFFLINE=1
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    requests_before = len(hub.requests)
    code = push_to_hub_command.main(["--model-dir", str(runs["colponet"]), "--repo-id", "tester/offline"])
    err = capsys.readouterr().err
    assert code == 1 and "HF_HUB_OFFLINE is set" in err and "nothing was uploaded" in err
    assert len(hub.requests) == requests_before


def test_an_unreachable_hub_is_a_clear_error(runs, online, monkeypatch, capsys):
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", closed)
    code = push_to_hub_command.main(["--model-dir", str(runs["colponet"]), "--repo-id", "tester/unreachable"])
    err = capsys.readouterr().err
    assert code == 1 and f"on {closed} failed, and nothing was committed" in err and "HF_ENDPOINT" in err
    assert TOKEN not in err


def test_a_wrong_or_missing_token_is_a_clear_error(hub, runs, online, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "hf_not_the_right_one")
    with pytest.raises(PublishError, match="401"):
        push_to_hub(runs["colponet"], "tester/wrong-token")
    assert ("model", "tester/wrong-token") not in hub.repos
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(PublishError, match="No Hugging Face token: set HF_TOKEN"):
        push_to_hub(runs["colponet"], "tester/no-token")


def test_the_space_is_published_with_its_front_matter_and_model_repos(hub, online, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text("import cervix_hf\n")
    # A pin other than the installed gradio shows that sdk_version is read from requirements.txt.
    pins = [
        line for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("gradio")
    ]
    (project / "requirements.txt").write_text("\n".join(pins + ["gradio==5.9.1"]) + "\n")
    shutil.copytree(PROJECT_ROOT / "cervix_hf", project / "cervix_hf", ignore=shutil.ignore_patterns("__pycache__"))
    photo = tmp_path / "data" / "train" / "Type_3" / "7.jpg"
    photo.parent.mkdir(parents=True)
    Image.new("RGB", (32, 32), "pink").save(photo)
    commit = push_space(
        "tester/demo", models={"colponet": "tester/colponet@v1"}, project_root=project, examples_dir=tmp_path / "data"
    )
    repo = hub.repo("tester/demo", "space")
    files = repo.resolve("main").files
    package = {path.relative_to(project).as_posix() for path in (project / "cervix_hf").rglob("*.py")}
    examples = {"examples/Type_3/7.jpg"}  # where the Space's app finds it
    assert set(files) == {".gitattributes", "README.md", "app.py", "requirements.txt"} | package | examples
    assert files["examples/Type_3/7.jpg"] == photo.read_bytes()
    assert "| `examples/Type_3/7.jpg` | [Intel & MobileODT" in files["README.md"].decode()
    assert len(repo.commits) == 2 and commit.oid == repo.branches["main"]
    card = SpaceCard(files["README.md"].decode())
    assert (card.data.sdk, card.data.app_file, card.data.sdk_version) == ("gradio", "app.py", "5.9.1")
    assert card.data.models == [
        "tester/colponet",
        PUBLISHED_MODELS["cell_detector"],
        PUBLISHED_MODELS["prepost_fusion"],
        PUBLISHED_MODELS["cell_classifier"],
    ]
    space_environment = {key: value["value"] for key, value in repo.variables.items()}
    expected = {**PUBLISHED_MODELS, "colponet": "tester/colponet@v1"}
    assert space_environment == {repo_env_var(model_type): repo_id for model_type, repo_id in expected.items()}
    assert model_repo_id("colponet", space_environment) == "tester/colponet@v1"  # what the app will load


def test_staging_the_space_needs_the_app(tmp_path):
    with pytest.raises(PublishError, match="has no app.py"):
        stage_space(tmp_path / "staged", project_root=tmp_path)


def test_space_examples_without_recorded_terms_or_too_heavy_are_refused_and_nothing_is_staged(tmp_path, monkeypatch):
    examples = tmp_path / "examples"
    photo, cluster = examples / "Type_1" / "0.jpg", examples / "im_Parabasal" / "001.bmp"
    for path in (photo, cluster):
        path.parent.mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(path)
    staging = tmp_path / "staged"
    # A SIPaKMeD cluster image, whose terms the project does not record: refused by name, before anything is written.
    with pytest.raises(PublishError, match=rf"Cannot publish {cluster} \(SIPaKMeD\) as an example") as refused:
        stage_space(staging, examples_dir=examples)
    assert str(photo) not in str(refused.value) and "nothing was staged" in str(refused.value)
    assert not staging.exists()
    cluster.unlink()
    monkeypatch.setattr(publishing, "MAX_EXAMPLES_BYTES", photo.stat().st_size - 1)
    with pytest.raises(PublishError, match=f"The examples picked in {examples} weigh .* smaller images"):
        stage_space(staging, examples_dir=examples)
    assert not staging.exists()
    photo.unlink()
    with pytest.raises(PublishError, match="No example image found in"):
        stage_space(staging, examples_dir=examples)
    with pytest.raises(PublishError, match="The examples folder .* does not exist"):
        stage_space(staging, examples_dir=tmp_path / "missing")
    assert not staging.exists()


def test_model_repo_ids_come_from_one_place_with_an_environment_override():
    assert model_repo_id("cell_detector", {}) == PUBLISHED_MODELS["cell_detector"]
    assert model_repo_id("cell_detector", {"CERVIX_HF_CELL_DETECTOR_REPO": "me/det"}) == "me/det"
    with pytest.raises(ValueError, match="Unknown model type 'resnet'"):
        model_repo_id("resnet", {})
