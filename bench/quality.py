"""Per-file accuracy on the shared recordings with default settings: one table for the README.

Usage: ``python bench/quality.py [--shared ../shared/audio] [--encoder campplus]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from proxyai.pipeline.diarize import Turn
from proxyai.pipeline.models import models
from proxyai.pipeline.run import PipelineOptions, run
from proxyai.pipeline.scoring import der, read_rttm, speaker_mapping, wer, word_attribution

HERE = Path(__file__).resolve().parent
FILES = {
    "jfk.flac": 1,
    "multilingual.mp3": 1,
    "stereo_diarization.wav": 2,
    "dialogue_2spk.wav": 2,
    "meeting_4spk.wav": 4,
    "ru_support_call.wav": 2,
    "phone_2spk.wav": 2,
}
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "audio"))
    parser.add_argument("--encoder", default=PipelineOptions().encoder, help="speaker encoder (default: the default)")
    args = parser.parse_args()
    shared = Path(args.shared)
    models.whisper()
    models.encoder(args.encoder)
    print("| file | speakers (found/true) | language | DER ±0.25 s | words to right speaker | WER | × real time |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, n in FILES.items():
        t0 = time.perf_counter()
        result = run(shared / name, PipelineOptions(encoder=args.encoder))
        wall = time.perf_counter() - t0
        stem = name.rsplit(".", 1)[0]
        hyp = [Turn(t["start"], t["end"], t["speaker"]) for t in result["diarization"]]
        text = " ".join(s["text"] for s in result["segments"])
        lang = result["language"]
        d = w = words = "—"
        if (shared / f"{stem}.rttm").exists():
            ref = read_rttm(str(shared / f"{stem}.rttm"))
            segments = json.loads((shared / f"{stem}.json").read_text())["segments"]
            d = f"{der(ref, hyp).der * 100:.1f} %"
            share = word_attribution(
                [(s["speaker"], s["text"]) for s in segments],
                [(s["speaker"], s["text"]) for s in result["segments"]],
                speaker_mapping(ref, hyp),
                lang,
            )
            words = f"{share * 100:.1f} %"
            w = f"{wer(' '.join(s['text'] for s in segments), text, lang) * 100:.1f} %"
        elif name == "jfk.flac":
            w = f"{wer(JFK, text, lang) * 100:.1f} %"
        found = len(result["speakers"])
        mark = "" if found == n else " ✗"
        rt = result["duration"] / wall
        print(f"| `{name}` | {found}/{n}{mark} | {lang} | {d} | {words} | {w} | {rt:.1f} |")


if __name__ == "__main__":
    main()
