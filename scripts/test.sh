#!/usr/bin/env bash
# Sets up from nothing (a virtual environment in .venv, installed from the requirements files, the project installed
# editable, and Debian's Chromium for the browser tests) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet -r requirements.txt -r requirements-test.txt
# The project itself, editable: the tests and the commands they start run the `cervix-hf` an installed user gets.
.venv/bin/pip install --quiet --no-deps -e .
# tests/test_app_browser.py drives the system's Chromium through Playwright (never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq chromium
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo apt-get update -qq && sudo apt-get install -y -qq chromium
    else
        echo "Chromium is missing and cannot be installed without root: the browser tests will be skipped." >&2
    fi
fi
# Lint and format (ruff, configured in pyproject.toml) before the tests.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two worker processes, each test file on one of them in order (its module fixtures built once), each worker's torch
# with its share of the cores: the suite's subprocesses and start-ups then overlap instead of queueing (about 770 s
# to 520 s on 2 cores). PYTEST_WORKERS=0 runs everything in this process.
workers="${PYTEST_WORKERS:-2}"
cores="$(nproc)"
threads=$(( workers > 0 ? cores / workers : cores ))
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}"
if [ "$workers" -gt 0 ]; then
    .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
else
    .venv/bin/python -m pytest "$@"
fi
