"""Diarization: who speaks when.

Backends: ``embedded`` (speech regions → overlapping windows → speaker embeddings → clustering),
``pyannote`` (see :mod:`proxyai.pipeline.pyannote_backend`) and ``none``. A stereo call whose
channels carry different voices is diarized by channel (see :func:`diarize_channels`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from proxyai.pipeline.audio import SAMPLE_RATE
from proxyai.pipeline.cluster import DEFAULT_THRESHOLD, ClusterOptions, cluster
from proxyai.pipeline.encoders.base import Encoder
from proxyai.pipeline.vad import Region, SpeechMap

BACKENDS = ("embedded", "pyannote", "none")
MIN_WINDOW_S = 0.1  # speech shorter than this gets no embedding of its own
EMBED_BATCH = 128


class DiarizationError(RuntimeError):
    """A diarization backend cannot run (missing package, model or token)."""


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class DiarizationOptions:
    backend: str = "embedded"
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    window_s: float = 1.5
    hop_s: float = 0.5
    min_turn_s: float = 0.3
    frame_pooling: bool = True  # pool frame-level outputs per window where the encoder can (CAM++)
    device: str = "cpu"
    cluster: ClusterOptions = field(default_factory=ClusterOptions)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"diarization must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers is larger than max_speakers")

    def cluster_options(self) -> ClusterOptions:
        return dataclasses.replace(
            self.cluster,
            num_speakers=self.num_speakers,
            min_speakers=self.min_speakers or 1,
            max_speakers=self.max_speakers or self.cluster.max_speakers,
        )


Embedder = Callable[[np.ndarray], np.ndarray]  # (n, samples) 16 kHz windows → (n, d) unit embeddings


@dataclass
class Windows:
    """Embedding windows: their spans in seconds and their embeddings."""

    starts: np.ndarray
    ends: np.ndarray
    embeddings: np.ndarray


def window_spans(regions: list[Region], window_s: float = 1.5, hop_s: float = 0.5) -> list[tuple[float, float]]:
    """Windows of ``window_s`` every ``hop_s`` inside each speech region (the last one flush with the
    region's end); a region shorter than a window is one window of its own length."""
    spans: list[tuple[float, float]] = []
    for region in regions:
        length = region.end - region.start
        if length < MIN_WINDOW_S:
            continue
        if length <= window_s:
            spans.append((region.start, region.end))
            continue
        n = 1 + int(np.ceil((length - window_s) / hop_s - 1e-9))
        for i in range(n):
            start = min(region.start + i * hop_s, region.end - window_s)
            spans.append((start, start + window_s))
    return spans


def embed_windows(
    samples: np.ndarray,
    regions: list[Region],
    encoder: Encoder | Embedder,
    window_s: float = 1.5,
    hop_s: float = 0.5,
    frame_pooling: bool = True,
) -> Windows:
    """Slide windows over every speech region and embed them, a batch at a time (bounded memory).

    An encoder that can pool frame-level outputs (``embed_spans``) runs once over each stretch of
    overlapping windows when ``frame_pooling``; otherwise each window is embedded on its own, and a
    window shorter than ``window_s`` (a short region) is repeated to the full length."""
    spans = window_spans(regions, window_s, hop_s)
    starts, ends = np.array([s for s, _ in spans]), np.array([e for _, e in spans])
    if frame_pooling and hasattr(encoder, "embed_spans"):
        return Windows(starts, ends, encoder.embed_spans(samples, spans) if spans else np.zeros((0, 1), np.float32))
    embed = encoder if callable(encoder) else encoder.embed
    length = round(window_s * SAMPLE_RATE)
    out: list[np.ndarray] = []
    for i in range(0, len(spans), EMBED_BATCH):
        batch = np.zeros((len(spans[i : i + EMBED_BATCH]), length), dtype=np.float32)
        for j, (start, end) in enumerate(spans[i : i + EMBED_BATCH]):
            a = int(start * SAMPLE_RATE)
            piece = samples[a : min(a + length, int(end * SAMPLE_RATE))]
            batch[j] = np.resize(piece, length) if 0 < len(piece) < length else piece[:length]
        out.append(embed(batch))
    emb = np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)
    return Windows(starts, ends, emb)


def window_seconds(windows: Windows, regions: list[Region]) -> np.ndarray:
    """The speech each window stands for: its region's length shared equally by the region's windows."""
    out = np.zeros(len(windows.starts))
    for region in regions:
        inside = np.flatnonzero((windows.starts >= region.start - 1e-6) & (windows.ends <= region.end + 1e-6))
        if len(inside):
            out[inside] = (region.end - region.start) / len(inside)
    return out


def labels_to_turns(windows: Windows, labels: np.ndarray, regions: list[Region], min_turn_s: float = 0.3) -> list[Turn]:
    """Turn window labels into speaker turns inside the speech regions.

    Each 10 ms frame of a region takes the label of the window whose centre is nearest; runs of one
    label become turns; a turn shorter than ``min_turn_s`` joins its neighbour.
    """
    if len(labels) == 0:
        return []
    centres = (windows.starts + windows.ends) / 2
    turns: list[Turn] = []
    step = 0.01
    for region in regions:
        times = np.arange(region.start, region.end, step) + step / 2
        if len(times) == 0:
            continue
        inside = np.nonzero((windows.ends > region.start) & (windows.starts < region.end))[0]
        pool = inside if len(inside) else np.arange(len(centres))
        nearest = pool[np.argmin(np.abs(times[:, None] - centres[pool][None, :]), axis=1)]
        frame_labels = labels[nearest]
        runs: list[list[float]] = []  # [start, end, label]
        for t, lab in zip(times, frame_labels, strict=True):
            if runs and runs[-1][2] == lab:
                runs[-1][1] = t + step / 2
            else:
                runs.append([t - step / 2, t + step / 2, float(lab)])
        # absorb short runs into the longer neighbour
        changed = True
        while changed and len(runs) > 1:
            changed = False
            for i, run in enumerate(runs):
                if run[1] - run[0] < min_turn_s:
                    left = runs[i - 1] if i > 0 else None
                    right = runs[i + 1] if i + 1 < len(runs) else None
                    target = (
                        left
                        if right is None or (left is not None and left[1] - left[0] >= right[1] - right[0])
                        else right
                    )
                    assert target is not None
                    target[0], target[1] = min(target[0], run[0]), max(target[1], run[1])
                    del runs[i]
                    changed = True
                    break
            merged: list[list[float]] = []
            for run in runs:
                if merged and merged[-1][2] == run[2]:
                    merged[-1][1] = run[1]
                else:
                    merged.append(run)
            runs = merged
        for s, e, lab in runs:
            turns.append(Turn(round(max(s, region.start), 3), round(min(e, region.end), 3), f"{int(lab)}"))
    return name_speakers(turns)


def name_speakers(turns: list[Turn]) -> list[Turn]:
    """Rename speakers ``SPEAKER_00``, ``SPEAKER_01``, … in order of first appearance."""
    names: dict[str, str] = {}
    out = []
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        name = names.setdefault(t.speaker, f"SPEAKER_{len(names):02d}")
        out.append(Turn(t.start, t.end, name))
    return out


def diarize_embedded(
    samples: np.ndarray, speech: SpeechMap, encoder: Encoder | Embedder, options: DiarizationOptions
) -> list[Turn]:
    """The bundled backend over 16 kHz mono samples and their speech regions. ``encoder`` is a speaker
    encoder (its ``same_speaker`` is the clustering threshold, see :mod:`proxyai.pipeline.cluster`) or
    a bare function from windows to embeddings (clustered with the default threshold)."""
    if not speech.regions:
        return []
    windows = embed_windows(samples, speech.regions, encoder, options.window_s, options.hop_s, options.frame_pooling)
    same_speaker = float(getattr(encoder, "same_speaker", DEFAULT_THRESHOLD))
    seconds = window_seconds(windows, speech.regions)
    spans = (windows.starts, windows.ends)
    maybe_same = getattr(encoder, "maybe_same", None)
    labels = cluster(
        windows.embeddings, options.hop_s, options.cluster_options(), same_speaker, seconds, spans, maybe_same
    )
    return labels_to_turns(windows, labels, speech.regions, options.min_turn_s)


COMPARED_S = 60  # channels_differ looks at the first minute


def channels_differ(stereo: np.ndarray, speech: list[SpeechMap] | None = None, max_lag_s: float = 0.01) -> bool:
    """Whether the two channels of ``(2, n)`` audio carry different voices (a call recorded one side per
    channel), not one scene heard by two microphones or one signal copied or panned.

    The channels differ when both hold speech and their normalised cross-correlation stays below 0.5
    at every lag up to ``max_lag_s`` (measured on the first minute).
    """
    if stereo.ndim != 2 or stereo.shape[0] != 2:
        return False
    n = min(stereo.shape[1], COMPARED_S * SAMPLE_RATE)
    left, right = stereo[0, :n].astype(np.float64), stereo[1, :n].astype(np.float64)
    el, er = float(np.dot(left, left)), float(np.dot(right, right))
    if el < 1e-6 or er < 1e-6:
        return False
    if speech is not None and any(not s.regions for s in speech):
        return False
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xcorr = np.fft.irfft(np.fft.rfft(left, size) * np.conj(np.fft.rfft(right, size)), size)
    lag = int(max_lag_s * SAMPLE_RATE)
    near = np.concatenate([xcorr[: lag + 1], xcorr[len(xcorr) - lag :]])
    return bool(float(np.max(np.abs(near))) / np.sqrt(el * er) < 0.5)


def _mask(speech: SpeechMap, step: float = 0.01) -> np.ndarray:
    mask = np.zeros(int(speech.duration / step) + 1, dtype=bool)
    for r in speech.regions:
        mask[int(r.start / step) : int(r.end / step)] = True
    return mask


def diarize_channels(speech: list[SpeechMap]) -> list[Turn]:
    """One speaker per channel: each channel's speech regions are its speaker's turns (overlaps kept).

    Speakers are named ``CH0``, ``CH1`` after their channel; the pipeline names them in order of
    appearance when it merges."""
    turns = [Turn(r.start, r.end, f"CH{ch}") for ch, s in enumerate(speech) for r in s.regions]
    return sorted(turns, key=lambda t: (t.start, t.end))
