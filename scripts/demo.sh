#!/usr/bin/env bash
# Set up, then transcribe the bundled two-speaker sample on the embedded default (offline).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/proxyai transcribe samples/dialogue_2spk.wav --format txt
