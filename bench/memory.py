"""Peak memory of one job the way a worker runs it, on long and hostile files, measured in one run.

Each file runs in a fresh process that first loads the models (as a warmed-up worker has them), then
prepares the recording (decode + speech scan), saves it for the stages, loads it back and runs
recognition and diarization on it. Reported: the process's resident set with the models alone, its peak
(VmHWM) over the job, and the difference. The files are made here with PyAV:

* ``silence-2h``        — two hours of digital silence, mono 16 kHz FLAC (about 1.3 MB)
* ``silence-2h-stereo`` — two hours of stereo 44.1 kHz silence (about 1.1 MB)
* ``liar``              — a two-second FLAC whose header claims a million seconds (18 KB)

Usage: ``python bench/memory.py``
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the hostile files' makers
from audio_helpers import lying_flac, silent_flac  # noqa: E402

FILES = {
    "silence-2h": lambda p: silent_flac(p, 7200.0),
    "silence-2h-stereo": lambda p: silent_flac(p, 7200.0, 44100, channels=2),
    "liar": lambda p: lying_flac(p),
}

JOB = """
import json, sys, tempfile
from proxyai.pipeline import prepared
from proxyai.pipeline.models import models
from proxyai.pipeline.run import PipelineOptions, diarize, prepare, transcribe

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024

options = PipelineOptions(max_duration=2e6)
models.whisper(options.model)
models.encoder(options.encoder, "cpu", 1)
loaded = rss("VmRSS")
prep = prepare(sys.argv[1], options)
folder = tempfile.mkdtemp()
prepared.save(prep, folder)
duration = prep.duration
del prep
stages = prepared.load(folder)
transcribe(stages, options)
diarize(stages, options, threads=1)
print(json.dumps({"duration": duration, "loaded": loaded, "peak": rss("VmHWM")}))
"""


def main() -> None:
    import json

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in FILES.items():
            path = make(Path(tmp) / f"{name}.flac")
            done = subprocess.run([sys.executable, "-c", JOB, str(path)], capture_output=True, text=True, check=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((name, path.stat().st_size, measured))
    print("| file | size | audio | RSS with models MB | peak RSS MB | job's own MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, m in rows:
        own = m["peak"] - m["loaded"]
        print(f"| {name} | {size / 1e6:.2f} MB | {m['duration']:.0f} s | {m['loaded']} | {m['peak']} | {own} |")


if __name__ == "__main__":
    main()
