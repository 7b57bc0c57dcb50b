"""Speed, memory and accuracy of the pipeline against plain faster-whisper, measured in one run.

Builds a multi-speaker file of at least five minutes by concatenating the shared recordings (with
their reference turns and words), then runs each configuration in its own process (so each peak RSS
is its own):

* ``plain``    — ``WhisperModel.transcribe`` sequentially, same model, same beam size, ASR only
* ``asr``      — proxyai's ASR only (voice chunks, batched)
* ``full``     — proxyai's whole pipeline (ASR ‖ diarization, then the merge)
* ``diarize``  — proxyai's diarization alone (decode + VAD + embeddings + clustering)
* ``full-1h``  — the whole pipeline on a one-hour file (``--hour``; slow on a laptop CPU)

Usage: ``python bench/pipeline.py [--shared ../shared/audio] [--rounds 4] [--repeat 3] [--hour]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
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


def child(mode: str, path: str, model: str, beam: int) -> dict[str, object]:
    """Run one configuration in this process and return its figures."""
    from proxyai.pipeline.models import models, resolve_whisper
    from proxyai.pipeline.run import PipelineOptions, diarize, prepare, run, transcribe

    options = PipelineOptions(model=model)
    options.asr.beam_size = beam
    out: dict[str, object] = {}
    if mode == "plain":
        from faster_whisper import WhisperModel

        wm = WhisperModel(resolve_whisper(model), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 4)
        t0 = time.perf_counter()
        segments, _ = wm.transcribe(path, beam_size=beam)
        out["text"] = " ".join(s.text for s in segments)
        out["wall"] = time.perf_counter() - t0
    else:
        models.whisper(model)  # load outside the timing, as plain does
        # the encoder as each mode uses it: one thread beside recognition, every core alone
        models.encoder(threads=1 if mode == "full" else os.cpu_count() or 1)
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
    return out


def measure(mode: str, path: Path, model: str, beam: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", mode, "--input", str(path), "--model", model, "--beam", str(beam)]
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
    parser.add_argument("--hour", action="store_true", help="also run the full pipeline on a 1-hour file")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every mode, interleaved; the median is shown")
    parser.add_argument("--child")
    parser.add_argument("--input")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.input, args.model, args.beam)))
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
                r = measure(mode, path, args.model, args.beam)
                runs[mode].append(r)
                print(f"# {mode}: {float(r['wall']):.1f} s", file=sys.stderr, flush=True)
        rows = [(mode, median_run(runs[mode])) for mode in MODES]
        if args.hour:
            long_path = Path(tmp) / "hour.wav"
            hour = hour_file(path, long_path)
            r = measure("full", long_path, args.model, args.beam)
            r["duration"] = hour
            rows.append(("full-1h", r))

    plain_wall = float(rows[0][1]["wall"])
    print(
        f"\nInput: {duration / 60:.1f} min, {len({t.speaker for t in reference})} speakers "
        f"({' + '.join(FILES)} × {args.rounds}); model {args.model}, beam {args.beam}, "
        f"{os.cpu_count()} CPU cores; median of {args.repeat} interleaved run(s) each\n"
    )
    print("| run | wall s | × real time | speed vs plain | peak RSS MB | WER | DER |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, r in rows:
        dur = float(r.get("duration", duration))  # type: ignore[arg-type]
        wall = float(r["wall"])  # type: ignore[arg-type]
        w = f"{wer(ref_text, str(r['text']), 'en') * 100:.1f} %" if "text" in r and mode != "full-1h" else "—"
        d = "—"
        if "turns" in r and mode != "full-1h":
            hyp = [Turn(t["start"], t["end"], t["speaker"]) for t in r["turns"]]  # type: ignore[union-attr]
            d = f"{der(reference, hyp).der * 100:.1f} %"
        ratio = f"{plain_wall / wall:.2f}×" if mode != "full-1h" else "—"
        print(f"| {mode} | {wall:.1f} | {dur / wall:.1f} | {ratio} | {float(r['peak_rss_mb']):.0f} | {w} | {d} |")


if __name__ == "__main__":
    main()
