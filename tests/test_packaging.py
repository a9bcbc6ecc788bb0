"""cervix_hf as an installed package: the wheel and an editable install in fresh virtual environments outside the
checkout, the `cervix-hf` command and its subcommands, and pyproject.toml against requirements.txt.

The fresh environments see this environment's third-party packages through a `.pth` file (installing torch again
would take minutes) but not the checkout, and install cervix_hf itself with `--no-deps`."""

import argparse
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

import httpx2
import pytest
from packaging.requirements import Requirement

from cervix_hf import __version__, cli
from cervix_hf.io.files import CARD_FILE, TRAINING_ARGS_FILE

from .conftest import free_port
from .model_runs import colponet_run

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
COMMAND_TIMEOUT = 300  # seconds; a command here takes seconds, a build or an install tens of seconds
# Where the fresh environment's cervix_hf is, without importing it, and the version its metadata says.
FIND_PACKAGE = """
import importlib.metadata, importlib.util, json, pathlib
print(json.dumps([str(pathlib.Path(importlib.util.find_spec("cervix_hf").origin).parent),
                  importlib.metadata.version("cervix_hf")]))
"""


def pip(*args: str, python: Path | None = None) -> None:
    """This environment's pip, acting on `python`'s environment when given; fails the test with pip's output."""
    target = ["--python", str(python)] if python else []
    command = [sys.executable, "-m", "pip", *target, *args, "--no-deps", "--disable-pip-version-check", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def build_isolation() -> list[str]:
    """Build with this environment's setuptools when it has one (no network); else pip fetches it."""
    return ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []


def fresh_environment(folder: Path) -> Path:
    """A new virtual environment (no pip, no cervix_hf) that imports this one's dependencies; returns its python."""
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Appended to sys.path after the fresh site-packages, so the fresh environment's own cervix_hf comes first.
    Path(site_packages, "test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def run_outside(command: list, cwd: Path) -> subprocess.CompletedProcess:
    """Runs `command` in `cwd`, outside the checkout, with nothing pointing Python at the checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def copy_checkout(destination: Path) -> Path:
    """The checkout as git sees it (the folders .gitignore names left out), so that building leaves it untouched."""
    ignored = [line.strip().rstrip("/") for line in (REPO_ROOT / ".gitignore").read_text().splitlines()]
    shutil.copytree(REPO_ROOT, destination, ignore=shutil.ignore_patterns(".git", *filter(None, ignored)))
    return destination


@pytest.fixture(scope="module")
def training_run(tmp_path_factory) -> Path:
    """A tiny ColpoNet run folder written by this process; its card is what an installed command must render."""
    return colponet_run(tmp_path_factory.mktemp("run") / "colponet")


def assert_renders_the_card(cervix_hf_command: Path, training_run: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(training_run, tmp_path / "model")
    expected = (model_dir / CARD_FILE).read_text()  # rendered in this process, from the checkout's templates
    (model_dir / CARD_FILE).unlink()
    result = run_outside([cervix_hf_command, "render-card", "--model-dir", model_dir], cwd=tmp_path)
    assert f"Wrote {model_dir / CARD_FILE}" in result.stdout
    assert (model_dir / CARD_FILE).read_text() == expected


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The wheel built from the checkout, installed into a fresh environment; returns that environment's folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = copy_checkout(root / "source")
    pip("wheel", *build_isolation(), "--wheel-dir", str(root / "dist"), str(source))
    (wheel,) = (root / "dist").glob("cervix_hf-*.whl")
    environment = root / "venv"
    pip("install", "--ignore-installed", "--no-index", str(wheel), python=fresh_environment(environment))
    return environment


@pytest.mark.slow
def test_the_wheel_installs_a_cervix_hf_command_that_renders_cards(installed_wheel, training_run, tmp_path):
    bin_dir = installed_wheel / "bin"
    # The package and its templates are the fresh environment's, not the checkout's.
    found = run_outside([bin_dir / "python", "-c", FIND_PACKAGE], cwd=tmp_path)
    package_dir, version = json.loads(found.stdout)
    assert Path(package_dir).is_relative_to(installed_wheel) and version == __version__
    assert sorted(path.name for path in Path(package_dir, "model_cards").glob("*.j2")) == sorted(
        path.name for path in (REPO_ROOT / "model_cards").glob("*.j2")
    )

    usage = run_outside([bin_dir / "cervix-hf", "--help"], cwd=tmp_path).stdout
    for command in ("train", "predict", "render-card", "push-to-hub", "push-space", "app"):
        assert re.search(rf"^    {command}\b", usage, re.MULTILINE), usage
    train_help = run_outside([bin_dir / "cervix-hf", "train", "colponet", "--help"], cwd=tmp_path).stdout
    assert train_help.startswith("usage: cervix-hf train colponet")
    assert re.search(r"--batch-size BATCH_SIZE\s+per device \(default: 16\)", train_help), train_help

    assert_renders_the_card(bin_dir / "cervix-hf", training_run, tmp_path)


@pytest.mark.slow
def test_the_installed_app_serves_its_page(installed_wheel, tmp_path):
    port = free_port()
    log = tmp_path / "app.log"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    command = [installed_wheel / "bin" / "cervix-hf", "app", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while "Running on local URL" not in log.read_text():
                assert process.poll() is None, f"cervix-hf app exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"cervix-hf app did not start in 120 s:\n{log.read_text()}"
                time.sleep(0.5)
            page = httpx2.get(f"http://127.0.0.1:{port}/", timeout=30)
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert page.status_code == 200 and "research demo, not a diagnosis" in page.text
    # No trained weights anywhere (a fresh folder, the Hub offline): the start-up log says how to get them.
    assert "no trained weights found" in log.read_text()


@pytest.mark.slow
def test_an_editable_install_runs_the_checkout(training_run, tmp_path):
    python = fresh_environment(tmp_path / "venv")
    pip("install", "--ignore-installed", *build_isolation(), "--editable", str(REPO_ROOT), python=python)
    found = run_outside(
        [
            python,
            "-c",
            "import cervix_hf.hub.card_spec as m, cervix_hf.train as t; print(m.__file__, t.__file__, "
            "m.TEMPLATES_DIR, sep='\\n')",
        ],
        cwd=tmp_path,
    ).stdout.split()
    assert [Path(path) for path in found] == [
        REPO_ROOT / "cervix_hf" / "hub" / "card_spec.py",
        REPO_ROOT / "train" / "__init__.py",
        REPO_ROOT / "model_cards",
    ]
    assert_renders_the_card(tmp_path / "venv" / "bin" / "cervix-hf", training_run, tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# The command, in this process


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda command: command.name)
def test_every_command_has_help_with_its_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command.name.split(), "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"usage: cervix-hf {command.name} ")
    if command.name.startswith("train "):
        assert re.search(r"--batch-size BATCH_SIZE\s+per device \(default: \d+\)", help_text)
    if command.name == "render-card":
        assert "(default: main)" in help_text  # --revision


def test_every_model_has_a_train_command_and_its_aliases_still_run_it(monkeypatch):
    from cervix_hf.registry import FAMILIES

    assert [command.name for command in cli.COMMANDS if command.name.startswith("train ")] == [
        f"train {family.model_type}" for family in FAMILIES
    ]
    for argv, script in (
        (["train", "prepost"], "train.train_prepost_fusion"),
        (["train", "detector"], "train.train_cell_detector"),
        (["train", "cell_detector"], "train.train_cell_detector"),
    ):
        chosen, _ = cli.get_args_parser().parse_known_args(argv)
        assert chosen.command.module == script


def test_the_command_names_the_choices_for_a_missing_or_unknown_command(capsys):
    for argv, message in (([], "required: COMMAND"), (["train"], "required: MODEL"), (["fit"], "invalid choice")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_training_command_gets_its_scripts_parsed_arguments(monkeypatch):
    (command,) = [command for command in cli.COMMANDS if command.name == "train colponet"]
    received = []
    monkeypatch.setattr(cli.import_command_module(command), "main", lambda args: received.append(args) or {"done": 1})
    assert cli.main(["train", "colponet", "--data", "photos", "--output-dir", "out", "--seed", "7"]) == 0
    (args,) = received
    assert (str(args.data), str(args.output_dir), args.seed, args.batch_size) == ("photos", "out", 7, 16)


def test_a_checkout_that_is_not_installed_runs_the_top_level_training_package(monkeypatch):
    import train.train_colponet

    (command,) = [command for command in cli.COMMANDS if command.name == "train colponet"]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no cervix_hf.train
    assert cli.training_package() == "train" and cli.import_command_module(command) is train.train_colponet


def test_a_command_returns_its_exit_code(training_run, tmp_path, capsys):
    model_dir = shutil.copytree(training_run, tmp_path / "model")
    assert cli.main(["render-card", "--model-dir", str(model_dir), "--repo-id", "me/colponet"]) == 0
    assert "me/colponet" in (model_dir / CARD_FILE).read_text()
    (model_dir / TRAINING_ARGS_FILE).unlink()
    assert cli.main(["render-card", "--model-dir", str(model_dir)]) == 1
    assert TRAINING_ARGS_FILE in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_cervix_hf_is_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "cervix_hf", "--version"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == f"cervix-hf {__version__}"


# ----------------------------------------------------------------------------------------------------------------
# pyproject.toml


def test_every_pin_of_requirements_txt_is_within_the_packages_dependencies():
    ranges = {Requirement(line).name.lower(): Requirement(line) for line in PYPROJECT["project"]["dependencies"]}
    pins = [
        Requirement(line)
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {pin.name.lower() for pin in pins} == set(ranges)
    for pin in pins:
        (version,) = [specifier.version for specifier in pin.specifier]
        assert ranges[pin.name.lower()].specifier.contains(version), f"{pin} is outside {ranges[pin.name.lower()]}"


def test_the_package_list_names_every_package_of_the_checkout():
    settings = PYPROJECT["tool"]["setuptools"]
    folders = {"cervix_hf": REPO_ROOT / "cervix_hf"} | {
        name: REPO_ROOT / folder for name, folder in settings["package-dir"].items()
    }
    found = set()
    for name, folder in folders.items():
        found.add(name)
        found |= {
            ".".join([name, *init.parent.relative_to(folder).parts])
            for init in folder.glob("*/**/__init__.py")
            if "__pycache__" not in init.parts
        }
    assert set(settings["packages"]) == found


BENCHMARKS = sorted(path.stem for path in (REPO_ROOT / "benchmarks").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_s_help_gives_each_default(name):
    """Each option with a default says it in `--help` (argparse's own help leaves defaults out)."""
    import importlib

    parser = importlib.import_module(f"benchmarks.{name}").get_args_parser()
    help_text = " ".join(parser.format_help().split())
    for action in parser._actions:
        default = action.default
        if action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        if default is None or default is False or default == [] or default == argparse.SUPPRESS:
            continue
        shown = default if isinstance(default, str) else repr(default) if isinstance(default, list) else str(default)
        assert f"(default: {shown}" in help_text or "(default:" in (action.help or ""), (name, action.dest)
