"""Speed, memory and accuracy of the pipeline against plain faster-whisper, measured in one run.

Builds a multi-speaker file of at least five minutes by concatenating the shared recordings (with
their reference turns and words), then runs each configuration in its own process (so each peak RSS
is its own):

* ``plain``    — ``WhisperModel.transcribe`` sequentially, same model, same beam size, ASR only
* ``asr``      — proxyai's ASR only (voice chunks, batched)
* ``full``     — proxyai's whole pipeline (ASR ‖ diarization, then the merge)
* ``diarize``  — proxyai's diarization alone (decode + VAD + embeddings + clustering)
* ``full-1h``  — the whole pipeline on a one-hour file (``--hour``; slow on a laptop CPU)

Usage: ``python bench/pipeline.py [--shared ../shared/audio] [--rounds 4] [--repeat 3] [--hour]
[--device cuda --compute-type float16 --batch-size 16 --model large-v3]`` (``bench/gpu.sh`` runs it on a GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# Wideband English recordings whose speaker names are global (spk1, spk2, lj and jfk recur). The
# telephone file is left out: its voices are the same people through a phone line, which no speaker
# encoder here recognises as the same voice, and the Russian call would need per-chunk languages.
FILES = ("dialogue_2spk", "meeting_4spk")
GAP_S = 1.0


def build(shared: Path, rounds: int, out: Path) -> tuple[list[tuple[float, float, str]], str]:
    """Concatenate the recordings ``rounds`` times; write a 16 kHz wav; return reference turns and text."""
    from proxyai.pipeline.audio import decode

    pieces: list[np.ndarray] = []
    turns: list[tuple[float, float, str]] = []
    text: list[str] = []
    offset = 0.0
    gap = np.zeros(int(GAP_S * 16000), dtype=np.float32)
    for _ in range(rounds):
        for name in FILES:
            audio = decode(shared / f"{name}.wav").samples
            for line in (shared / f"{name}.rttm").read_text().splitlines():
                p = line.split()
                start, dur = float(p[3]), float(p[4])
                turns.append((offset + start, offset + start + dur, p[7]))
            text += [s["text"] for s in json.loads((shared / f"{name}.json").read_text())["segments"]]
            pieces += [audio, gap]
            offset += (len(audio) + len(gap)) / 16000
    samples = np.concatenate(pieces)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return turns, " ".join(text)


@dataclass(frozen=True)
class Setup:
    """Where recognition runs: ``device`` (``cpu``, ``cuda``, ``auto``), its compute type and batch."""

    model: str = "base"
    beam: int = 5
    device: str = "cpu"
    compute_type: str = "auto"
    batch_size: int = 0  # 0: the pipeline's default for the device

    def argv(self) -> list[str]:
        return [
            *("--model", self.model, "--beam", str(self.beam), "--device", self.device),
            *("--compute-type", self.compute_type, "--batch-size", str(self.batch_size)),
        ]


class GpuMemory:
    """The peak of the GPU's used memory (``nvidia-smi``, every 0.2 s) while it runs; None without one."""

    def __init__(self) -> None:
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            try:
                used = float(subprocess.run(query, capture_output=True, text=True, check=True).stdout.split()[0])
            except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
                return
            self.peak = max(self.peak or 0.0, used)
            self._stop.wait(0.2)

    def __enter__(self) -> GpuMemory:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def child(mode: str, path: str, setup: Setup) -> dict[str, object]:
    """Run one configuration in this process and return its figures."""
    from proxyai.pipeline.models import models, resolve_compute_type, resolve_device, resolve_whisper
    from proxyai.pipeline.run import PipelineOptions, diarize, encoder_threads_beside_asr, prepare, run, transcribe

    device = resolve_device(setup.device)
    options = PipelineOptions(model=setup.model, device=device, compute_type=setup.compute_type)
    options.asr.beam_size = setup.beam
    options.asr.batch_size = setup.batch_size or None
    out: dict[str, object] = {}
    if mode == "plain":
        from faster_whisper import WhisperModel

        wm = WhisperModel(
            resolve_whisper(setup.model),
            device=device,
            compute_type=resolve_compute_type(setup.compute_type, device),
            cpu_threads=os.cpu_count() or 4,
        )
        with GpuMemory() as gpu:
            t0 = time.perf_counter()
            segments, _ = wm.transcribe(path, beam_size=setup.beam)
            out["text"] = " ".join(s.text for s in segments)
            out["wall"] = time.perf_counter() - t0
    else:
        models.whisper(setup.model, device, options.compute_type)  # load outside the timing, as plain does
        # the encoder as each mode uses it: beside recognition as run() sizes it, every core alone
        beside = encoder_threads_beside_asr(device) or os.cpu_count() or 1
        models.encoder(threads=beside if mode == "full" else os.cpu_count() or 1)
        with GpuMemory() as gpu:
            t0 = time.perf_counter()
            if mode == "asr":
                prep = prepare(path, options)
                tr = transcribe(prep, options)
                out["text"] = " ".join(s.text for s in tr.segments)
            elif mode == "diarize":
                prep = prepare(path, options)
                turns = diarize(prep, options)
                out["turns"] = [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in turns]
            else:
                result = run(path, options)
                out["text"] = " ".join(s["text"] for s in result["segments"])
                out["turns"] = result["diarization"]
                out["speakers"] = len(result["speakers"])
            out["wall"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_gpu_mb"] = gpu.peak
    return out


def measure(mode: str, path: Path, setup: Setup) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", mode, "--input", str(path), *setup.argv()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


MODES = ("plain", "asr", "full", "diarize")


def median_run(runs: list[dict[str, object]]) -> dict[str, object]:
    """The run of median wall time (of an even number, the faster of the middle two)."""
    ordered = sorted(runs, key=lambda r: float(r["wall"]))  # type: ignore[arg-type]
    return ordered[(len(ordered) - 1) // 2]


def hour_file(src: Path, out: Path) -> float:
    """Loop ``src`` to one hour (written piece by piece, never whole in memory)."""
    with wave.open(str(src), "rb") as r:
        frames = r.readframes(r.getnframes())
    n = len(frames) // 2
    reps = int(np.ceil(3600 * 16000 / n))
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        for _ in range(reps):
            w.writeframes(frames)
    return reps * n / 16000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "audio"))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--model", default="base")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="where recognition runs: cpu, cuda or auto")
    parser.add_argument("--compute-type", default="auto", help="auto: int8 on a CPU, float16 on a GPU")
    parser.add_argument("--batch-size", type=int, default=0, help="recognition's batch (0: the default)")
    parser.add_argument("--check-model", metavar="MODEL", help="resolve MODEL (as the bench would) and exit")
    parser.add_argument("--hour", action="store_true", help="also run the full pipeline on a 1-hour file")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every mode, interleaved; the median is shown")
    parser.add_argument("--child")
    parser.add_argument("--input")
    args = parser.parse_args()
    setup = Setup(args.model, args.beam, args.device, args.compute_type, args.batch_size)
    if args.check_model:
        from proxyai.pipeline.models import ModelError, resolve_whisper

        try:
            print(resolve_whisper(args.check_model))
        except ModelError as exc:
            raise SystemExit(f"--check-model: {exc}") from None
        return
    if args.child:
        print(json.dumps(child(args.child, args.input, setup)))
        return

    from proxyai.pipeline.diarize import Turn
    from proxyai.pipeline.scoring import der, wer

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.wav"
        ref_turns, ref_text = build(Path(args.shared), args.rounds, path)
        duration = ref_turns[-1][1] + GAP_S
        reference = [Turn(a, b, s) for a, b, s in ref_turns]
        runs: dict[str, list[dict[str, object]]] = {m: [] for m in MODES}
        for _ in range(args.repeat):  # interleaved, so that a slow minute of the machine hits every mode
            for mode in MODES:
                r = measure(mode, path, setup)
                runs[mode].append(r)
                print(f"# {mode}: {float(r['wall']):.1f} s", file=sys.stderr, flush=True)
        rows = [(mode, median_run(runs[mode])) for mode in MODES]
        if args.hour:
            long_path = Path(tmp) / "hour.wav"
            hour = hour_file(path, long_path)
            r = measure("full", long_path, setup)
            r["duration"] = hour
            rows.append(("full-1h", r))

    plain_wall = float(rows[0][1]["wall"])
    print(
        f"\nInput: {duration / 60:.1f} min, {len({t.speaker for t in reference})} speakers "
        f"({' + '.join(FILES)} × {args.rounds}); model {args.model}, beam {args.beam}, recognition on "
        f"{args.device} ({args.compute_type}), {os.cpu_count()} CPU cores; median of {args.repeat} "
        "interleaved run(s) each\n"
    )
    gpu = any(r.get("peak_gpu_mb") is not None for _, r in rows)
    print(
        "| run | wall s | × real time | speed vs plain | peak RSS MB | WER | DER |" + (" peak GPU MB |" if gpu else "")
    )
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if gpu else ""))
    for mode, r in rows:
        dur = float(r.get("duration", duration))  # type: ignore[arg-type]
        wall = float(r["wall"])  # type: ignore[arg-type]
        w = f"{wer(ref_text, str(r['text']), 'en') * 100:.1f} %" if "text" in r and mode != "full-1h" else "—"
        d = "—"
        if "turns" in r and mode != "full-1h":
            hyp = [Turn(t["start"], t["end"], t["speaker"]) for t in r["turns"]]  # type: ignore[union-attr]
            d = f"{der(reference, hyp).der * 100:.1f} %"
        ratio = f"{plain_wall / wall:.2f}×" if mode != "full-1h" else "—"
        line = f"| {mode} | {wall:.1f} | {dur / wall:.1f} | {ratio} | {float(r['peak_rss_mb']):.0f} | {w} | {d} |"
        if gpu:
            line += f" {r['peak_gpu_mb'] or 0:.0f} |"
        print(line)


if __name__ == "__main__":
    main()
