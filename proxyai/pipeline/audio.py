"""Decode any common audio or video file to 16 kHz float32 with PyAV."""

from __future__ import annotations

import os
import tempfile
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
        out = np.empty(self.samples.shape[1], dtype=np.float32)
        for lo in range(0, len(out), 1 << 20):  # in blocks: no float64 or whole-length temporaries
            block = self.samples[:, lo : lo + (1 << 20)]
            np.mean(block, axis=0, dtype=np.float32, out=out[lo : lo + block.shape[1]])
        return out


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


SPOOL_BLOCK = 1 << 16  # samples per channel gathered before a write (4 s at 16 kHz, 256 kB)


class _Spool:
    """Decoded samples written piece by piece to unnamed temporary files (one per channel), then read
    back into one array of exactly their size. Memory follows what was actually decoded, never what a
    header claims, and the samples are held once (no growing buffer and its copies); past ``limit``
    samples per channel decoding stops with :class:`DurationError`."""

    def __init__(self, channels: int, limit: int | None, max_seconds: float | None) -> None:
        # closed (and so deleted) by close(), which decode calls in a finally
        self.files = [tempfile.TemporaryFile(prefix="proxyai-") for _ in range(channels)]  # noqa: SIM115
        self.size = 0  # samples per channel
        self.pending: list[np.ndarray] = []  # pieces not yet written (a decoder's frames are small)
        self.pending_size = 0
        self.limit = limit
        self.max_seconds = max_seconds

    def add(self, piece: np.ndarray) -> None:
        """``piece``: ``(channels, m)`` float32."""
        if self.limit is not None and self.size + piece.shape[1] > self.limit:
            raise DurationError(
                f"the recording is longer than {self.max_seconds:g} s, the most one job may hold (MAX_DURATION)"
            )
        self.pending.append(piece)
        self.pending_size += piece.shape[1]
        self.size += piece.shape[1]
        if self.pending_size >= SPOOL_BLOCK:
            self._write()

    def _write(self) -> None:
        if not self.pending:
            return
        block = np.concatenate(self.pending, axis=1)
        for row, fh in zip(block, self.files, strict=True):
            row.tofile(fh)
        self.pending, self.pending_size = [], 0

    def read(self, joined: bool) -> np.ndarray | list[np.ndarray]:
        """The samples: one ``(channels, n)`` array when ``joined``, else one array per channel."""
        self._write()
        out = np.empty((len(self.files), self.size), dtype=np.float32) if joined else None
        rows = list(out) if out is not None else [np.empty(self.size, dtype=np.float32) for _ in self.files]
        for row, fh in zip(rows, self.files, strict=True):
            fh.flush()
            fh.seek(0)
            view, done = row.data.cast("B"), 0
            while done < len(view):
                got = fh.readinto(view[done:])
                if not got:
                    raise AudioError("the decoded samples could not be read back from the temporary folder")
                done += got
            _finite(row)
        return out if out is not None else rows

    def close(self) -> None:
        for fh in self.files:
            fh.close()


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
    samples = _decode(path, sample_rate, keep_channels, max_seconds, joined=True)
    assert isinstance(samples, np.ndarray)
    return Audio(samples[0] if len(samples) == 1 else samples, sample_rate)


def decode_tracks(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    keep_channels: bool = False,
    max_seconds: float | None = None,
) -> list[np.ndarray]:
    """:func:`decode`, each channel in an array of its own (so that one can be freed without the other)."""
    tracks = _decode(path, sample_rate, keep_channels, max_seconds, joined=False)
    assert isinstance(tracks, list)
    return tracks


def _decode(
    path: str | os.PathLike[str], sample_rate: int, keep_channels: bool, max_seconds: float | None, joined: bool
) -> np.ndarray | list[np.ndarray]:
    import av

    container = _open(path)
    try:
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        in_channels = int(stream.codec_context.channels or 1)
        layout = "stereo" if keep_channels and in_channels >= 2 else "mono"
        resampler = av.AudioResampler(format="flt", layout=layout, rate=sample_rate)
        width = 2 if layout == "stereo" else 1
        limit = None if max_seconds is None else int(max_seconds * sample_rate)
        spool = _Spool(width, limit, max_seconds)
        try:
            try:
                for frame in container.decode(stream):
                    frame.pts = None
                    for out in resampler.resample(frame):
                        spool.add(out.to_ndarray().reshape(-1, width).T)
                for out in resampler.resample(None):
                    spool.add(out.to_ndarray().reshape(-1, width).T)
            except av.error.FFmpegError as exc:
                if not spool.size:
                    raise AudioError(f"{os.fspath(path)}: cannot decode the audio ({_reason(exc)})") from None
                # A truncated tail: keep what decoded, as players do.
            if not spool.size:
                raise AudioError(f"{os.fspath(path)}: the audio stream holds no samples")
            return spool.read(joined)
        finally:
            spool.close()
    finally:
        container.close()


def _finite(samples: np.ndarray) -> None:
    """NaN and infinities (a broken float file) to numbers, in place, in blocks (no whole-length mask)."""
    for lo in range(0, len(samples), 1 << 20):
        block = samples[lo : lo + (1 << 20)]
        if not np.isfinite(block).all():
            np.nan_to_num(block, copy=False)
