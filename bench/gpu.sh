#!/usr/bin/env bash
# The GPU bench, prepared for the day a GPU is lent (issue 13): installs nothing from the network.
#
#   bench/gpu.sh [--dry-run] [MODEL]
#
# MODEL: a CTranslate2 Whisper folder carried onto the machine (large-v3 or turbo), or a hub name when
# the machine is online (default: large-v3). Runs bench/pipeline.py on the GPU — plain sequential
# faster-whisper, proxyai's batched recognition, the whole pipeline (recognition on the GPU beside the
# CPU diarization) and diarization alone — float16, and prints its table: wall time, × real time, the
# ratio to plain faster-whisper on the same GPU, peak RSS and peak GPU memory. Target: the full
# pipeline ≥ 70× real time with large-v3.
#
# Without a virtual environment in .venv it makes one from wheels carried in bench/wheels (pip
# --no-index). --dry-run checks everything but the GPU (the script, the environment, the model's
# resolution, the bench's arguments) and prints the commands it would run.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
MODEL=${1:-large-v3}
SHARED=${SHARED:-../shared/audio}
ROUNDS=${ROUNDS:-4}
REPEAT=${REPEAT:-1}
BATCH=${BATCH:-16}

say() { echo "gpu.sh: $*" >&2; }

if [ ! -x .venv/bin/python ]; then
  [ -d bench/wheels ] || { say "no .venv and no bench/wheels to install from (offline)"; exit 2; }
  if [ "$DRY" = 1 ]; then say "would make .venv from bench/wheels (python3 -m venv; pip install --no-index)"
  else python3 -m venv .venv && .venv/bin/pip install -q --no-index --find-links bench/wheels -e .; fi
fi
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

"$PY" -c "import faster_whisper, ctranslate2, proxyai.pipeline.run" || { say "the environment does not import"; exit 2; }
[ -d "$SHARED" ] || { say "no shared recordings at $SHARED (SHARED=...)"; exit 2; }

CMD=("$PY" bench/pipeline.py --shared "$SHARED" --rounds "$ROUNDS" --repeat "$REPEAT" --model "$MODEL"
     --device cuda --compute-type float16 --batch-size "$BATCH")
if [ "$DRY" = 1 ]; then
  "${CMD[@]}" --check-model "$MODEL"  # the bench's own parsing of exactly these arguments, and the model
  say "would run: ${CMD[*]}"
  exit 0
fi

command -v nvidia-smi >/dev/null || { say "no nvidia-smi: no GPU on this machine"; exit 3; }
DEVICES=$("$PY" -c "import ctranslate2; print(ctranslate2.get_cuda_device_count())")
[ "$DEVICES" -gt 0 ] || { say "CTranslate2 sees no CUDA device (driver, or a CPU-only build)"; exit 3; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2
"${CMD[@]}"
