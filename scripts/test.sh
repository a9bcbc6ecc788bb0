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
.venv/bin/python -m pytest "$@"
