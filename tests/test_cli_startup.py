"""`cervix-hf --help` and every command's `--help` answer without importing torch, transformers or gradio (seconds
each on a CPU): the installed command, in a fresh process, as a user types it. What a command imports is read from
Python's own import log (`-X importtime`), not from the code under test."""

import subprocess
import sys
from pathlib import Path

import pytest

from cervix_hf.cli import COMMANDS

CERVIX_HF = str(Path(sys.executable).with_name("cervix-hf"))
HEAVY = ("torch", "transformers", "gradio", "torchvision", "onnxruntime", "openvino", "matplotlib", "cv2")


def imported_top_level_modules(*arguments: str) -> tuple[set[str], str]:
    """The top-level modules the installed `cervix-hf ARGUMENTS` imports, and what it printed."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", CERVIX_HF, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return names, result.stdout


@pytest.mark.parametrize("command", [(), *(tuple(command.name.split()) for command in COMMANDS)], ids=" ".join)
def test_help_imports_no_heavy_library(command):
    names, usage = imported_top_level_modules(*command, "--help")
    assert usage.startswith("usage: cervix-hf"), usage[:200]
    assert not names & set(HEAVY), f"cervix-hf {' '.join(command)} --help imports {sorted(names & set(HEAVY))}"


def test_a_command_that_runs_still_loads_what_it_needs(tmp_path):
    """The lazy imports are deferred, not lost: `predict` on a missing model still answers, through torch."""
    result = subprocess.run(
        [CERVIX_HF, "predict", "--model", str(tmp_path / "missing"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "no such folder" in result.stderr
