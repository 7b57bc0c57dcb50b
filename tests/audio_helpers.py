"""Hostile audio made in the tests with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def lying_flac(path: Path, seconds: float = 2.0, claimed: float = 1e6) -> Path:
    """A real 16 kHz FLAC of ``seconds`` (a tone) whose STREAMINFO claims ``claimed`` seconds (its 36-bit
    sample count rewritten), as a hostile or broken upload would."""
    rate = 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * rate)) / rate)).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        for i in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, i : i + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # the first metadata block is STREAMINFO
    info = 8  # after the marker and the block header
    packed = int.from_bytes(data[info + 10 : info + 18], "big")  # rate 20, channels 3, bits 5, samples 36
    packed = (packed & ~((1 << 36) - 1)) | int(claimed * rate)
    data[info + 10 : info + 18] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def silent_flac(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    """``seconds`` of digital silence as FLAC: hours of audio in a file of a few MB."""
    layout = "stereo" if channels == 2 else "mono"
    block = np.zeros((1, rate * 10 * channels), dtype=np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate, layout=layout)
        total = round(seconds * rate)
        for start in range(0, total, rate * 10):
            n = min(rate * 10, total - start)
            frame = av.AudioFrame.from_ndarray(block[:, : n * channels], format="s16", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
