"""Diarization on the generated development set: every encoder × clustering, per half, in one run.

For each conversation of ``bench/conversations.py``'s set: decode and VAD once (the pipeline's own),
embed the speech windows once per encoder (cached under ``<devset>/emb/``), cluster with each method
and score against the RTTM reference. Prints, per half (``tune``: parameters are chosen here;
``check``: never tuned on): median and 90th-percentile DER at a ±0.25 s collar and at collar 0, the
share of conversations with the exact speaker count, the share of recognised words given to the right
speaker (Whisper's words, recognised once and cached under ``<devset>/asr/``; ``--no-words`` skips
them) and the diarization speed in × real time (decode, VAD, embeddings and clustering; embeddings
on one thread).

``--sweep`` also prints, per encoder × method, the tuning half's figures over a grid of each parameter
(threshold, held-out test, its blocks, floor, prior pairs, switch penalty, least speech; the others at
their defaults: the sensitivity around the chosen values) with the check half beside them.

Usage: ``python bench/diarization.py [--devset bench/.devset] [--encoders campplus,ecapa,ge2e]
[--methods ahc,spectral] [--sweep] [--no-words]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from proxyai.pipeline.align import speaker_for  # noqa: E402
from proxyai.pipeline.audio import decode  # noqa: E402
from proxyai.pipeline.cluster import ClusterOptions, cluster  # noqa: E402
from proxyai.pipeline.diarize import (  # noqa: E402
    DiarizationOptions,
    Turn,
    Windows,
    embed_windows,
    labels_to_turns,
    window_seconds,
)
from proxyai.pipeline.models import models  # noqa: E402
from proxyai.pipeline.scoring import der, read_rttm, speaker_mapping  # noqa: E402
from proxyai.pipeline.vad import Region, detect_speech, preset  # noqa: E402


@dataclasses.dataclass
class Item:
    name: str
    half: str
    speakers: int
    duration: float
    reference: list[Turn]
    regions: list[Region]
    prep_s: float  # decode + VAD seconds
    samples: np.ndarray | None = None


def load(devset: Path, names: set[str] | None = None) -> list[Item]:
    index = json.loads((devset / "index.json").read_text())
    items = []
    for entry in index:
        if names and entry["name"] not in names:
            continue
        t0 = time.perf_counter()
        samples = decode(devset / f"{entry['name']}.wav").samples
        speech = detect_speech(samples, preset(2))
        prep_s = time.perf_counter() - t0
        items.append(
            Item(
                entry["name"],
                entry["half"],
                int(entry["speakers"]),
                len(samples) / 16000,
                read_rttm(str(devset / f"{entry['name']}.rttm")),
                speech.regions,
                prep_s,
                samples,
            )
        )
    return items


def embeddings(item: Item, encoder: str, devset: Path, options: DiarizationOptions) -> tuple[Windows, float]:
    """The item's window embeddings with ``encoder`` and the seconds they took (cached)."""
    mode = "frames" if options.frame_pooling else "windows"
    cache = devset / "emb" / f"{encoder}-{mode}-{options.window_s}-{options.hop_s}" / f"{item.name}.npz"
    if cache.exists():
        data = np.load(cache)
        return Windows(data["starts"], data["ends"], data["emb"]), float(data["seconds"])
    assert item.samples is not None
    enc = models.encoder(encoder, "cpu")
    t0 = time.perf_counter()
    windows = embed_windows(item.samples, item.regions, enc, options.window_s, options.hop_s, options.frame_pooling)
    seconds = time.perf_counter() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, starts=windows.starts, ends=windows.ends, emb=windows.embeddings, seconds=seconds)
    return windows, seconds


def words(item: Item, devset: Path) -> list[tuple[float, float]]:
    """Whisper's recognised words of the item (start, end), cached."""
    cache = devset / "asr" / f"{item.name}.json"
    if cache.exists():
        return [tuple(w) for w in json.loads(cache.read_text())]  # type: ignore[misc]
    from proxyai.pipeline.run import PipelineOptions, prepare, transcribe

    options = PipelineOptions()
    prep = prepare(devset / f"{item.name}.wav", options)
    result = transcribe(prep, options)
    out = [(w.start, w.end) for s in result.segments for w in s.words]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def word_share(item: Item, hyp: list[Turn], spans: list[tuple[float, float]]) -> tuple[int, int]:
    """(words given to the right speaker, words) — right: the hypothesis speaker of the word, mapped
    to the reference, is the reference speaker at that time."""
    mapping = speaker_mapping(item.reference, hyp)
    right = total = 0
    for start, end in spans:
        truth = speaker_for(start, end, item.reference)
        if truth is None:
            continue
        total += 1
        right += mapping.get(speaker_for(start, end, hyp) or "", "") == truth
    return right, total


def score(
    item: Item,
    windows: Windows,
    options: DiarizationOptions,
    spans: list[tuple[float, float]] | None,
    maybe_same: float | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    seconds = window_seconds(windows, item.regions)
    extent = (windows.starts, windows.ends)
    labels = cluster(
        windows.embeddings,
        options.hop_s,
        options.cluster_options(),
        seconds=seconds,
        spans=extent,
        maybe_same=maybe_same,
    )
    hyp = labels_to_turns(windows, labels, item.regions, options.min_turn_s)
    seconds = time.perf_counter() - t0
    found = len({t.speaker for t in hyp})
    right, total = word_share(item, hyp, spans) if spans else (0, 0)
    return {
        "der": der(item.reference, hyp, 0.25).der,
        "der0": der(item.reference, hyp, 0.0).der,
        "exact": found == item.speakers,
        "right": right,
        "words": total,
        "cluster_s": seconds,
    }


def summary(rows: list[dict[str, Any]], items: list[Item]) -> str:
    d = np.array([r["der"] for r in rows]) * 100
    d0 = np.array([r["der0"] for r in rows]) * 100
    exact = np.mean([r["exact"] for r in rows]) * 100
    words_total = sum(r["words"] for r in rows)
    share = f"{100 * sum(r['right'] for r in rows) / words_total:.1f} %" if words_total else "—"
    audio = sum(i.duration for i in items)
    busy = sum(i.prep_s + r["embed_s"] + r["cluster_s"] for i, r in zip(items, rows, strict=True))
    return (
        f"{np.median(d):.1f} % | {np.percentile(d, 90):.1f} % | {np.median(d0):.1f} % | {np.percentile(d0, 90):.1f} % "
        f"| {exact:.0f} % | {share} | {audio / busy:.0f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devset", default=str(HERE / ".devset"))
    parser.add_argument("--encoders", default="campplus,ecapa,ge2e")
    parser.add_argument("--methods", default="ahc,spectral")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--no-words", action="store_true")
    parser.add_argument("--window", type=float, default=DiarizationOptions().window_s)
    parser.add_argument("--hop", type=float, default=DiarizationOptions().hop_s)
    parser.add_argument("--only", default="", help="comma-separated conversation names")
    args = parser.parse_args()
    devset = Path(args.devset)
    if not (devset / "index.json").exists():
        import conversations

        conversations.generate(devset)
    items = load(devset, set(args.only.split(",")) - {""} or None)
    spans = {i.name: ([] if args.no_words else words(i, devset)) for i in items}
    base = DiarizationOptions(window_s=args.window, hop_s=args.hop)
    halves = ("tune", "check")
    counts = {h: sum(i.half == h for i in items) for h in halves}
    minutes = {h: sum(i.duration for i in items if i.half == h) / 60 for h in halves}
    print(
        f"Development set: {counts['tune']} tuning conversations ({minutes['tune']:.0f} min), "
        f"{counts['check']} check conversations ({minutes['check']:.0f} min); window {base.window_s} s, "
        f"hop {base.hop_s} s\n"
    )
    print(
        "| encoder | clustering | half | median DER ±0.25 s | p90 DER | median DER collar 0 | p90 DER collar 0 "
        "| exact count | words to right speaker | × real time |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    sweeps: list[str] = []
    for encoder in args.encoders.split(","):
        name, _, mode = encoder.partition("/")
        dopts = dataclasses.replace(base, frame_pooling=mode != "windows")
        embedded = {i.name: embeddings(i, name, devset, dopts) for i in items}
        for method in args.methods.split(","):
            algorithm, _, linkage = method.partition("-")
            default = ClusterOptions(method=algorithm, linkage=linkage or "corrected", threshold=tuned_threshold(name))
            options = dataclasses.replace(dopts, cluster=default)
            rows = {i.name: score(i, embedded[i.name][0], options, spans[i.name], floor(name)) for i in items}
            for i in items:
                rows[i.name]["embed_s"] = embedded[i.name][1]
            for half in halves:
                part = [i for i in items if i.half == half]
                print(f"| {encoder} | {method} | {half} | {summary([rows[i.name] for i in part], part)} |")
            if args.sweep:
                sweeps += sweep(items, embedded, options, encoder, method, floor(name))
    if sweeps:
        print("\nSensitivity (one parameter at a time): median DER ±0.25 s / p90 DER / exact count\n")
        print("| encoder | clustering | setting | tuning half | check half |")
        print("|---|---|---|---|---|")
        print("\n".join(sweeps))


def sweep(
    items: list[Item],
    embedded: dict[str, tuple[Windows, float]],
    options: DiarizationOptions,
    encoder: str,
    method: str,
    maybe_same: float,
) -> list[str]:
    """The tuning and check halves over a grid of each parameter, the others at their defaults."""
    c = options.cluster
    grid: list[tuple[str, ClusterOptions]] = [
        (f"threshold {t:.2f}", dataclasses.replace(c, threshold=float(t))) for t in np.arange(0.5, 0.96, 0.05)
    ]
    top = c.threshold if c.threshold is not None else 0.0
    grid += [(f"held-out {h}", dataclasses.replace(c, held_out=h)) for h in (0.75, 0.8, 0.85, None)]
    grid += [(f"held-out blocks {b} s", dataclasses.replace(c, blocks_s=(b,))) for b in (3.0, 4.0, 6.0, 8.0)]
    grid += [(f"floor {f:.2f}", dataclasses.replace(c, band=max(0.0, top - f))) for f in (0.4, 0.45, 0.5, 0.55, 0.6)]
    if c.linkage == "corrected":
        grid += [(f"prior pairs {p}", dataclasses.replace(c, prior_pairs=p)) for p in (1.0, 4.0, 16.0, 64.0)]
    grid += [(f"switch penalty {p}", dataclasses.replace(c, switch_penalty=p)) for p in (0.0, 0.05, 0.1, 0.2, 0.4)]
    grid += [(f"min speaker {m} s", dataclasses.replace(c, min_speaker_s=m)) for m in (1.0, 2.0, 3.0, 4.0)]
    lines = []
    for label, cluster_options in grid:
        o = dataclasses.replace(options, cluster=cluster_options)
        cells = []
        for half in ("tune", "check"):
            part = [i for i in items if i.half == half]
            rows = [score(i, embedded[i.name][0], o, None, maybe_same) for i in part]
            d = np.array([r["der"] for r in rows]) * 100
            exact = np.mean([r["exact"] for r in rows]) * 100
            cells.append(f"{np.median(d):.1f} % / {np.percentile(d, 90):.1f} % / {exact:.0f} %")
        lines.append(f"| {encoder} | {method} | {label} | {cells[0]} | {cells[1]} |")
    return lines


def tuned_threshold(encoder: str) -> float:
    """The encoder's calibrated threshold (its ``same_speaker``)."""
    return float(models.encoder(encoder, "cpu").same_speaker)


def floor(encoder: str) -> float:
    """The encoder's floor for the adaptive band (its ``maybe_same``)."""
    return float(models.encoder(encoder, "cpu").maybe_same)


if __name__ == "__main__":
    main()
