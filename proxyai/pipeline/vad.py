"""Speech regions from the Silero VAD that faster-whisper ships, and chunks for the recogniser.

``VAD_LEVEL`` presets (0 keeps the most audio, 3 is the most aggressive):

====== ========= ============= ================= ============== ==========
level  threshold  off threshold  min speech (ms)  min pause (ms)  pad (ms)
====== ========= ============= ================= ============== ==========
0      0.25       0.10           100              600             300
1      0.40       0.25           150              400             250
2      0.50       0.35           200              300             200
3      0.65       0.50           250              200             100
====== ========= ============= ================= ============== ==========

A region starts when the speech probability reaches ``threshold`` and ends once it has stayed below
``off threshold`` for ``min pause``; regions shorter than ``min speech`` are dropped, the rest padded
by ``pad`` on each side (never past a neighbour). Level 2 is the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from proxyai.pipeline.audio import SAMPLE_RATE

WINDOW = 512  # samples per Silero frame (32 ms)
FRAME_S = WINDOW / SAMPLE_RATE
_PIECE = WINDOW * 1875  # one minute


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5
    off_threshold: float = 0.35
    min_speech_s: float = 0.2
    min_silence_s: float = 0.3
    pad_s: float = 0.2


PRESETS: dict[int, VadOptions] = {
    0: VadOptions(0.25, 0.10, 0.10, 0.6, 0.3),
    1: VadOptions(0.40, 0.25, 0.15, 0.4, 0.25),
    2: VadOptions(0.50, 0.35, 0.20, 0.3, 0.2),
    3: VadOptions(0.65, 0.50, 0.25, 0.2, 0.1),
}
DEFAULT_LEVEL = 2


def preset(level: int) -> VadOptions:
    """The options of ``VAD_LEVEL`` 0–3."""
    if level not in PRESETS:
        raise ValueError(f"VAD level must be 0, 1, 2 or 3, not {level!r}")
    return PRESETS[level]


@dataclass(frozen=True)
class Region:
    """A span in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class SpeechMap:
    """Speech regions plus the per-frame probabilities they came from (one per 32 ms)."""

    regions: list[Region]
    probs: np.ndarray
    duration: float

    @property
    def speech_duration(self) -> float:
        return sum(r.duration for r in self.regions)


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    """Silero speech probability for every 32 ms frame of 16 kHz mono audio."""
    from proxyai.pipeline.models import silero_vad

    if len(samples) == 0:
        return np.zeros(0, dtype=np.float32)
    model = silero_vad()
    # Pieces of one minute (bounded memory: the model's activations for a piece are ~25 MB), run on
    # every core (the model is single-threaded and releases the GIL).
    workers = max(1, min(os.cpu_count() or 1, 4))
    size = _PIECE

    def run(i: int) -> np.ndarray:
        piece = samples[i : i + size]
        if len(piece) % WINDOW:
            piece = np.pad(piece, (0, WINDOW - len(piece) % WINDOW))
        # a copy: the model writes into its input
        return np.asarray(model(np.array(piece, dtype=np.float32, copy=True))).reshape(-1)

    starts = range(0, len(samples), size)
    if len(starts) == 1 or workers == 1:
        out = [run(i) for i in starts]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            out = list(pool.map(run, starts))
    return np.concatenate(out).astype(np.float32)


def regions_from_probabilities(probs: np.ndarray, duration: float, options: VadOptions) -> list[Region]:
    """Hysteresis over the frame probabilities, then drop short regions and pad the rest."""
    spans: list[list[int]] = []
    start: int | None = None
    below = 0
    min_silence = max(1, round(options.min_silence_s / FRAME_S))
    for i, p in enumerate(probs):
        if start is None:
            if p >= options.threshold:
                start, below = i, 0
        elif p < options.off_threshold:
            below += 1
            if below >= min_silence:
                spans.append([start, i - below + 1])
                start = None
        else:
            below = 0
    if start is not None:
        spans.append([start, len(probs) - below])
    min_frames = options.min_speech_s / FRAME_S
    kept = [s for s in spans if s[1] - s[0] >= min_frames]
    regions: list[Region] = []
    for k, (a, b) in enumerate(kept):
        lo = a * FRAME_S - options.pad_s
        hi = b * FRAME_S + options.pad_s
        if k > 0:
            prev_end = kept[k - 1][1] * FRAME_S
            lo = max(lo, (prev_end + a * FRAME_S) / 2)
        if k + 1 < len(kept):
            lo_next = kept[k + 1][0] * FRAME_S
            hi = min(hi, (b * FRAME_S + lo_next) / 2)
        regions.append(Region(round(max(0.0, lo), 3), round(min(duration, hi), 3)))
    return [r for r in regions if r.end > r.start]


def detect_speech(samples: np.ndarray, options: VadOptions | None = None) -> SpeechMap:
    """Speech regions of 16 kHz mono audio."""
    options = options or preset(DEFAULT_LEVEL)
    duration = len(samples) / SAMPLE_RATE
    probs = speech_probabilities(samples)
    return SpeechMap(regions_from_probabilities(probs, duration, options), probs, duration)


def _quietest_cut(probs: np.ndarray, lo: float, hi: float) -> float:
    """The time of the lowest speech probability in ``[lo, hi]`` (a pause between words)."""
    a, b = int(lo / FRAME_S), max(int(lo / FRAME_S) + 1, int(hi / FRAME_S))
    window = probs[a:b]
    if len(window) == 0:
        return hi
    # Prefer the latest among nearly-equal minima so that chunks stay long.
    best = float(window.min())
    idx = int(np.nonzero(window <= best + 0.02)[0][-1])
    return (a + idx + 0.5) * FRAME_S


@dataclass(frozen=True)
class Chunk:
    """Speech regions recognised together: their audio is laid end to end (the pauses between them
    dropped), at most ``max_length`` seconds of it."""

    pieces: tuple[Region, ...]

    @property
    def start(self) -> float:
        return self.pieces[0].start

    @property
    def end(self) -> float:
        return self.pieces[-1].end

    @property
    def speech(self) -> float:
        return sum(p.duration for p in self.pieces)

    def packed_length(self, gap: float) -> float:
        """Seconds of audio once the pieces are laid end to end with ``gap`` seconds between them."""
        return self.speech + gap * (len(self.pieces) - 1)

    def shifted(self, offset: float) -> Chunk:
        return Chunk(tuple(Region(p.start + offset, p.end + offset) for p in self.pieces))


def make_chunks(speech: SpeechMap, max_length: float = 30.0, gap: float = 0.0) -> list[Chunk]:
    """Group speech regions into chunks of at most ``max_length`` seconds once packed (the regions
    laid end to end with ``gap`` seconds of silence between them).

    Whole regions are packed in order; a region longer than ``max_length`` is cut where the speech
    probability is lowest in the last third of the window, so that a cut falls between words.
    """
    pieces: list[Region] = []
    for region in speech.regions:
        start = region.start
        while region.end - start > max_length:
            cut = _quietest_cut(speech.probs, start + max_length * 2 / 3, start + max_length - FRAME_S)
            pieces.append(Region(round(start, 3), round(cut, 3)))
            start = cut
        pieces.append(Region(round(start, 3), region.end))
    return pack(pieces, max_length, gap)


def pack(pieces: list[Region], max_length: float = 30.0, gap: float = 0.0) -> list[Chunk]:
    """Group time-ordered pieces (each at most ``max_length``) into chunks, in order."""
    chunks: list[Chunk] = []
    current: list[Region] = []
    for piece in pieces:
        if current and Chunk((*current, piece)).packed_length(gap) > max_length:
            chunks.append(Chunk(tuple(current)))
            current = []
        current.append(piece)
    if current:
        chunks.append(Chunk(tuple(current)))
    return chunks
