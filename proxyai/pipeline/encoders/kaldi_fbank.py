"""Kaldi-style log mel filterbank features in numpy (what CAM++ was trained on).

The same computation as Kaldi's ``compute-fbank-feats`` with its defaults and no dither: 25 ms frames
every 10 ms with no frame past the edges, each frame's DC offset removed, pre-emphasis 0.97, Povey's
window, a 512-point power spectrum, 80 triangular filters on Kaldi's mel scale from 20 Hz to Nyquist,
natural log floored at float32's epsilon.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
FRAME = 400  # 25 ms
SHIFT = 160  # 10 ms
N_FFT = 512
N_MELS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97
EPS = float(np.finfo(np.float32).eps)


def _mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=2)
def filters(n_mels: int = N_MELS) -> np.ndarray:
    """``(N_FFT // 2 + 1, n_mels)`` filters; the Nyquist bin's row is zero, as in Kaldi."""
    bins = N_FFT // 2
    lo, hi = _mel(np.array(LOW_HZ)), _mel(np.array(SAMPLE_RATE / 2))
    delta = (hi - lo) / (n_mels + 1)
    left = lo + np.arange(n_mels) * delta
    centre, right = left + delta, left + 2 * delta
    mel = _mel(np.arange(bins) * SAMPLE_RATE / N_FFT)[:, None]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    weights = np.maximum(0.0, np.minimum(up, down))
    return np.vstack([weights, np.zeros((1, n_mels))]).astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(FRAME)
    return np.power(0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME - 1)), 0.85).astype(np.float32)


def num_frames(n_samples: int) -> int:
    return 0 if n_samples < FRAME else 1 + (n_samples - FRAME) // SHIFT


def fbank(wav: np.ndarray, n_mels: int = N_MELS) -> np.ndarray:
    """Log mel energies of 16 kHz audio: ``(..., frames, n_mels)`` for ``(..., samples)`` input."""
    wav = np.asarray(wav, dtype=np.float32)
    n = num_frames(wav.shape[-1])
    if n == 0:
        return np.zeros((*wav.shape[:-1], 0, n_mels), dtype=np.float32)
    wav = np.ascontiguousarray(wav)
    step = wav.strides[-1]
    frames = np.lib.stride_tricks.as_strided(
        wav, shape=(*wav.shape[:-1], n, FRAME), strides=(*wav.strides[:-1], step * SHIFT, step), writeable=False
    )
    frames = frames - frames.mean(axis=-1, keepdims=True)
    previous = np.concatenate([frames[..., :1], frames[..., :-1]], axis=-1)
    frames = (frames - PREEMPHASIS * previous) * _window()
    power = np.square(np.abs(np.fft.rfft(frames, n=N_FFT, axis=-1))).astype(np.float32)
    energies: np.ndarray = np.log(np.maximum(power @ filters(n_mels), EPS)).astype(np.float32)
    return energies


def mean_normalised(feats: np.ndarray) -> np.ndarray:
    """Each utterance's features less their mean over time (per window: the axis before last)."""
    return np.asarray(feats - feats.mean(axis=-2, keepdims=True), dtype=np.float32)
