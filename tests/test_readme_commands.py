"""The README's remaining commands, run as a user runs them: `python -m ...` from the repository root in a fresh
process. Benchmarks print tables of ratios measured in the same run; these tests check that each runs and prints
its comparison, never its timings."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cervix_hf.data.examples import find_examples

from .conftest import SHARED_DATA, require_data
from .model_runs import colponet_run

REPO = Path(__file__).resolve().parents[1]


def run_module(*arguments: str, timeout: int = 600) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", *arguments], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return result.stdout


def test_render_card_writes_the_card_of_a_run_folder(tmp_path):
    run = colponet_run(tmp_path / "run")
    (run / "README.md").unlink()
    run_module("train.render_card", "--model-dir", str(run))
    card = (run / "README.md").read_text()
    accuracy = json.loads((run / "eval_results.json").read_text())["metrics"]["accuracy"]
    assert card.startswith("---") and "Research demo, never a diagnosis" in card
    assert f"- **Accuracy:** {accuracy:.3f}" in card


def readme_command_lines() -> list[str]:
    """Each command of the README's shell blocks, as its first line (continuation lines and comments left out)."""
    commands, in_shell, continued = [], False, False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_shell = not in_shell and line[3:].strip() in ("bash", "sh")
            continue
        if in_shell and line.strip() and not line.lstrip().startswith("#") and not continued:
            commands.append(line)
        continued = in_shell and line.rstrip().endswith("\\")
    return commands


def test_every_command_the_readme_shows_runs_as_written_on_a_fresh_machine():
    """A bare `python`, `pip` or `cervix-hf` on a fresh machine is not the project's environment (`No module named
    'torch'`): every command names the program in `.venv`, which the set-up line creates, and that program exists."""
    commands = readme_command_lines()
    assert len(commands) > 20
    for command in commands:
        program = command.split()[0]
        if program in ("bash", "git", "cd") or command.startswith("python3 -m venv .venv"):
            continue
        assert program.startswith(".venv/bin/"), command
        assert (REPO / program).is_file(), f"{program} does not exist after the set-up: {command}"
    # Commands quoted in the text, to copy: `python -m module ...` or `python app.py`.
    for inline in re.findall(r"`(python (?:-m \S|\S+\.py)[^`]*)`", (REPO / "README.md").read_text()):
        raise AssertionError(f"`{inline}` in the README's text: name .venv/bin/python")


def test_push_space_dry_run_stages_the_space_without_network(tmp_path):
    require_data(SHARED_DATA)
    staging = tmp_path / "space"
    out = run_module(
        "train.push_space",
        "--space-id",
        "someone/cervix-demo",
        "--dry-run",
        "--staging-dir",
        str(staging),
        "--examples",
        str(SHARED_DATA),
    )
    assert "Dry run: nothing uploaded to someone/cervix-demo" in out
    for name in ("app.py", "requirements.txt", "README.md", "cervix_hf/__init__.py"):
        assert (staging / name).is_file(), name
        assert name in out
    # The examples the app picks in the sample data, which the Space's app finds again in examples/, byte for byte,
    # and nothing else; the README gives each file's data set, terms and citation.
    picked, staged = find_examples(SHARED_DATA), find_examples(staging / "examples")
    kinds = {
        "cervix_type": ("Intel & MobileODT", "the Kaggle competition's rules: research use", "Kaggle, 2017"),
        "cells": ("ISBI 2014", "research use, with citation", "Lu Z., Carneiro G."),
        "prepost": (
            "IARC Atlas of Colposcopy",
            "IARC owns the images: research and education use only",
            "IARC Screening Group",
        ),
    }
    readme = (staging / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `examples/")]
    listed = []
    for kind, (dataset, terms, citation) in kinds.items():
        sources, copies = getattr(picked, kind), getattr(staged, kind)
        if kind == "prepost":
            sources, copies = [p for pair in sources for p in pair], [p for pair in copies for p in pair]
        assert len(copies) == len(sources) == (6 if kind == "prepost" else 3)
        for source, copy in zip(sources, copies):
            name = Path(copy).relative_to(staging).as_posix()
            assert Path(copy).name == Path(source).name and Path(copy).read_bytes() == Path(source).read_bytes()
            assert name in out
            row = next((row for row in rows if row.startswith(f"| `{name}` |")), None)
            assert row is not None and all(fact in row for fact in (dataset, terms, citation)), (name, row)
            listed.append(name)
    on_disk = [path.relative_to(staging).as_posix() for path in (staging / "examples").rglob("*") if path.is_file()]
    assert sorted(on_disk) == sorted(listed) and len(rows) == len(listed)


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, arguments, comparison",
    [
        ("benchmarks.colponet_inference", ["--repeats", "1", "--batch-sizes", "1"], r"ColpoNet \d+\.\d+ G"),
        ("benchmarks.prepost_inference", ["--repeats", "1"], r"fusion / two ResNet-50 passes = \d+\.\d+"),
        (
            "benchmarks.detector_inference",
            ["--repeats", "1", "--image-size", "384"],
            r"cell_detector / torchvision = \d+\.\d+",
        ),
        ("benchmarks.app_latency", ["--requests", "1"], r"classifier through gradio_client: \d+\.\d+x a direct call"),
        (
            "benchmarks.runtimes",
            ["--repeats", "1", "--max-inputs", "4", "--size", "tiny", "--skip-memory"],
            r"colponet: OpenVINO int8 at batch 1 is \d+\.\d+x PyTorch fp32(.|\n)*"
            r"cell_detector: the fastest export, [A-Za-z ]+ (fp32|int8), at batch 1 is \d+\.\d+x PyTorch fp32",
        ),
        (
            "benchmarks.predict",
            ["--size", "tiny", "--max-photos", "2", "--batch-sizes", "1"],
            r"predict: the fastest way, .+, is \d+\.\d+x one process at batch 1",
        ),
        # the app's row, the target's (the other rows are the same code without bounds); its load test: test_app
        (
            "benchmarks.request_memory",
            ["--models", "colponet", "--bounds", "app", "--skip-load-test"],
            r"colponet in the app: a 100-MP image's peak is \d+\.\d+x an ordinary photo's",
        ),
    ],
)
def test_inference_benchmarks_print_their_ratio_against_the_baseline(module, arguments, comparison):
    assert re.search(comparison, run_module(module, *arguments))
