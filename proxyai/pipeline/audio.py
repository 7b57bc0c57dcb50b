"""Decode any common audio or video file to 16 kHz float32 with PyAV."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """The input cannot be used as audio: empty, truncated, undecodable or without an audio stream."""


@dataclass
class Audio:
    """Decoded audio.

    ``samples`` is ``(n,)`` for mono or ``(channels, n)`` when channels were kept.
    """

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return float(self.samples.shape[-1]) / self.sample_rate

    def mono(self) -> np.ndarray:
        """The mono mix (the average of the channels)."""
        if self.samples.ndim == 1:
            return self.samples
        return np.asarray(self.samples.mean(axis=0), dtype=np.float32)


@dataclass
class AudioInfo:
    """What a probe found without decoding the whole file."""

    duration: float
    channels: int
    sample_rate: int
    codec: str
    container: str


def _open(path: str | os.PathLike[str]) -> Any:
    import av

    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: the file is empty")
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioError(f"{path}: not an audio or video file ({_reason(exc)})") from None
    if not container.streams.audio:
        container.close()
        raise AudioError(f"{path}: the file has no audio stream")
    return container


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the container header: duration, channels, rate, codec. Raises AudioError."""
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        return AudioInfo(
            duration=_stream_seconds(container, stream) or 0.0,
            channels=int(stream.codec_context.channels or 1),
            sample_rate=int(stream.codec_context.sample_rate or 0),
            codec=str(stream.codec_context.name),
            container=str(container.format.name),
        )
    finally:
        container.close()


def _stream_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return None


class DurationError(ValueError):
    """The decoded audio is longer than the most a job may hold (``MAX_DURATION``)."""


TRUSTED_HEADER_S = 600.0  # a header's duration sizes the first buffer only up to this: headers lie


class _Buffer:
    """A float32 array filled piece by piece, first sized from the stream's duration (at most
    :data:`TRUSTED_HEADER_S` of it), grown by half as the samples actually arrive, and never past
    ``limit`` samples: memory follows what is decoded, not what the header claims."""

    def __init__(self, capacity: int, limit: int | None = None, max_seconds: float | None = None) -> None:
        self.data = np.empty(max(capacity, 1024), dtype=np.float32)
        self.size = 0
        self.limit = limit
        self.max_seconds = max_seconds

    def add(self, piece: np.ndarray) -> None:
        end = self.size + len(piece)
        if self.limit is not None and end > self.limit:
            raise DurationError(
                f"the recording is longer than {self.max_seconds:g} s, the most one job may hold (MAX_DURATION)"
            )
        if end > len(self.data):
            grown = np.empty(max(end, int(len(self.data) * 1.5)), dtype=np.float32)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = piece
        self.size = end

    def view(self) -> np.ndarray:
        return self.data[: self.size]


def decode(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    keep_channels: bool = False,
    max_seconds: float | None = None,
) -> Audio:
    """Decode the first audio stream of ``path``, resampled to ``sample_rate``.

    Mono by default; with ``keep_channels`` a stereo (or multi-channel) file keeps up to two channels
    as ``(2, n)``. Raises :class:`AudioError` for anything that is not decodable audio, and
    :class:`DurationError` as soon as more than ``max_seconds`` have been decoded.
    """
    import av

    container = _open(path)
    try:
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        in_channels = int(stream.codec_context.channels or 1)
        layout = "stereo" if keep_channels and in_channels >= 2 else "mono"
        resampler = av.AudioResampler(format="flt", layout=layout, rate=sample_rate)
        width = 2 if layout == "stereo" else 1
        expected = _stream_seconds(container, stream)
        first = min(expected or 60.0, TRUSTED_HEADER_S, max_seconds or TRUSTED_HEADER_S)
        limit = None if max_seconds is None else int(max_seconds * sample_rate * width)
        buffer = _Buffer(int(first * 1.01 * sample_rate * width) + sample_rate, limit, max_seconds)
        try:
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    buffer.add(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                buffer.add(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            if not buffer.size:
                raise AudioError(f"{os.fspath(path)}: cannot decode the audio ({_reason(exc)})") from None
            # A truncated tail: keep what decoded, as players do.
    finally:
        container.close()
    if not buffer.size:
        raise AudioError(f"{os.fspath(path)}: the audio stream holds no samples")
    samples = buffer.view()
    if layout == "stereo":
        samples = np.ascontiguousarray(samples.reshape(-1, 2).T)
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, copy=False)
    return Audio(samples=samples, sample_rate=sample_rate)
