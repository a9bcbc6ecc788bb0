#!/usr/bin/env bash
# Sets up from nothing (a virtual environment in .venv, installed from the requirements files) and runs the
# whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet -r requirements.txt -r requirements-test.txt
.venv/bin/python -m pytest "$@"
