"""A prepared recording on disk, so that the stages run by different processes decode and scan it once.

A folder holds ``audio.npy`` (the decoded 16 kHz tracks, float32, one row per track) and the speech
map ``speech.json`` (duration, mixed or split, each track's speech regions and recognition chunks,
the preparation's timings). ``speech.json`` is written last, so a folder that has it is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from proxyai.pipeline.run import Prepared
from proxyai.pipeline.vad import Chunk, Region, SpeechMap

AUDIO = "audio.npy"
SPEECH = "speech.json"


def _regions(rows: list[list[float]]) -> tuple[Region, ...]:
    return tuple(Region(float(a), float(b)) for a, b in rows)


def speech_map(prep: Prepared) -> dict[str, Any]:
    """What the stages need besides the samples, as JSON."""
    return {
        "duration": prep.duration,
        "split": prep.split,
        "tracks": [
            {
                "regions": [[r.start, r.end] for r in speech.regions],
                "chunks": [[[p.start, p.end] for p in c.pieces] for c in chunks],
            }
            for speech, chunks in zip(prep.speech, prep.chunks, strict=True)
        ],
        "timings": {k: round(v, 3) for k, v in prep.timings.items()},
    }


def save(prep: Prepared, folder: str | os.PathLike[str]) -> None:
    """Write ``prep`` into ``folder`` (each file atomically, the speech map last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic(folder / AUDIO, lambda fh: _write_tracks(fh, prep.tracks))
    text = json.dumps(speech_map(prep)).encode()
    _atomic(folder / SPEECH, lambda fh: fh.write(text))


def _write_tracks(fh: Any, tracks: list[np.ndarray]) -> None:
    """The tracks as one ``(len(tracks), n)`` float32 ``.npy``, written row by row (no stacked copy)."""
    n = len(tracks[0])
    np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (len(tracks), n)})
    for track in tracks:
        for lo in range(0, n, 1 << 20):
            np.ascontiguousarray(track[lo : lo + (1 << 20)], dtype="<f4").tofile(fh)


def _atomic(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_speech_map(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The speech map alone (no samples), or None when the folder is not (completely) prepared."""
    try:
        return dict(json.loads((Path(folder) / SPEECH).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def load(folder: str | os.PathLike[str]) -> Prepared | None:
    """The prepared recording (samples mapped from disk, copy-on-write), or None when not prepared."""
    data = read_speech_map(folder)
    if data is None:
        return None
    try:
        stacked = np.load(Path(folder) / AUDIO, mmap_mode="c")
    except FileNotFoundError:
        return None
    duration = float(data["duration"])
    tracks = [stacked[i] for i in range(stacked.shape[0])]
    speech = [SpeechMap(list(_regions(t["regions"])), np.zeros(0, np.float32), duration) for t in data["tracks"]]
    chunks = [[Chunk(_regions(c)) for c in t["chunks"]] for t in data["tracks"]]
    return Prepared(tracks, speech, chunks, duration, bool(data["split"]), dict(data.get("timings") or {}))


def has_samples(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / AUDIO).exists()


def drop_samples(folder: str | os.PathLike[str]) -> None:
    """Free the disk the samples take once every stage has run (the speech map stays)."""
    (Path(folder) / AUDIO).unlink(missing_ok=True)
