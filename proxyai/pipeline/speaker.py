"""Speaker embeddings from the GE2E encoder that Resemblyzer ships (a 3-layer LSTM over 40 mel bands).

The mel front end is computed here with numpy (the same filters as librosa's defaults, which the
encoder was trained with), so the heavy librosa import is never needed.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np

from proxyai.pipeline.audio import SAMPLE_RATE
from proxyai.pipeline.encoders.base import check_state, read_state

N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
SAME_SPEAKER = 0.88  # corrected linkage, chosen on the tuning half of the development set (bench/diarization.py)
MAYBE_SAME = SAME_SPEAKER  # no adaptive band: any band costs on the tuning half
FRAMES_PER_SECOND = SAMPLE_RATE // HOP


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


@lru_cache(maxsize=4)
def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels]))[:, None]
    return weights.astype(np.float32)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Power mel spectrogram, ``(frames, 40)``, one frame per 10 ms (centred, zero-padded)."""
    wav = np.asarray(wav, dtype=np.float32)
    padded = np.pad(wav, N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    if n_frames <= 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0])
    )
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel: np.ndarray = (power.astype(np.float32) @ mel_filters().T).astype(np.float32)
    return mel


def normalize_volume(wav: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """Raise quiet audio to ``target_dbfs`` RMS (never lowers it), as the encoder's training did."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= 1e-6:
        return wav
    gain_db = target_dbfs - 20 * np.log10(rms)
    if gain_db <= 0:
        return wav
    louder: np.ndarray = (wav * (10 ** (gain_db / 20))).astype(np.float32)
    return louder


class Ge2eEncoder:
    """The GE2E LSTM; ``embed`` maps ``(n, samples)`` 16 kHz windows to ``(n, 256)`` unit vectors."""

    name = "ge2e"
    dim = 256
    same_speaker = SAME_SPEAKER
    maybe_same = MAYBE_SAME

    def __init__(self, weights_path: str, device: str = "cpu", threads: int = 1) -> None:
        import torch
        from torch import nn

        # One thread by default: the encoder runs beside Whisper, and torch's thread pool degrades
        # badly when its threads compete with another busy library for the same cores.
        if device == "cpu" and threads > 0:
            torch.set_num_threads(threads)

        class _Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
                self.linear = nn.Linear(256, 256)

            def forward(self, mels: Any) -> Any:
                _, (hidden, _) = self.lstm(mels)
                raw = torch.relu(self.linear(hidden[-1]))
                return raw / torch.clamp(torch.norm(raw, dim=1, keepdim=True), min=1e-8)

        checkpoint = read_state(weights_path, "GE2E")  # torch.load(weights_only=True): tensors, no code
        state = checkpoint.get("model_state", checkpoint)
        # the GE2E loss's two scalars are training state, not part of the encoder
        state = {k: v for k, v in state.items() if k not in ("similarity_weight", "similarity_bias")}
        net = _Net()
        check_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, state, weights_path)
        net.load_state_dict(state, strict=True)
        net.eval()
        self._torch = torch
        self.device = device
        self.net = net.to(device)
        self.path = weights_path
        self._lock = threading.Lock()

    def embed(self, windows: np.ndarray, batch_size: int = 64) -> np.ndarray:
        torch = self._torch
        mels = np.stack([mel_spectrogram(normalize_volume(w)) for w in windows]) if len(windows) else windows
        out = np.zeros((len(windows), 256), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for i in range(0, len(windows), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(mels[i : i + batch_size])).to(self.device)
                out[i : i + batch_size] = self.net(batch).float().cpu().numpy()
        return out
