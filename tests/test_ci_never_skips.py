"""Under CI nothing passes by skipping: the suite is run in a subprocess as CI runs it (`CI=true`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_pytest(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ci_without_the_sample_data_fails_at_once_naming_what_is_missing(tmp_path):
    missing = tmp_path / "no-such-data"
    result = run_pytest(["tests/test_ci_never_skips.py", "-q"], REPO, CI="true", CERVIX_HF_SAMPLE_DATA=str(missing))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "real sample data is missing" in output and str(missing / "intel-mobileodt-sample") in output


def test_locally_missing_sample_data_skips_and_the_summary_says_why(tmp_path):
    missing = tmp_path / "no-such-data"
    result = run_pytest(
        ["tests/test_prepost_fusion_training.py", "-q", "-k", "consistent"],
        REPO,
        CI="",
        CERVIX_HF_SAMPLE_DATA=str(missing),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "SKIPPED" in result.stdout and f"real sample data not found at {missing}" in result.stdout


def test_under_ci_a_test_that_would_skip_fails_with_its_reason(tmp_path):
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_needs_a_widget.py").write_text(
        "import pytest\n\ndef test_widget():\n    pytest.skip('the widget is not installed')\n"
    )
    under_ci = run_pytest(["-q", "-rA"], tmp_path, CI="true")
    assert under_ci.returncode == 1
    assert "would skip" in under_ci.stdout and "the widget is not installed" in under_ci.stdout
    locally = run_pytest(["-q", "-ra"], tmp_path, CI="")
    assert locally.returncode == 0 and "the widget is not installed" in locally.stdout
