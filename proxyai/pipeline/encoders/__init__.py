"""Speaker encoders: CAM++ (the default), ECAPA-TDNN and GE2E, each raw 16 kHz windows → unit vectors."""

from __future__ import annotations

from pathlib import Path

from proxyai.pipeline.encoders.base import Encoder, EncoderError


def load_encoder(kind: str, path: str, device: str = "cpu", threads: int = 1, cache: Path | None = None) -> Encoder:
    """Load the ``kind`` network (``campplus``, ``ecapa`` or ``ge2e``) with the weights at ``path``.

    ``threads``: CPU threads the encoder may use (CAM++ on onnxruntime embeds that many stretches at
    once; the torch encoders set torch's thread count, which is process-wide). ``cache``: where CAM++'s
    ONNX export is kept (default: the models cache)."""
    if kind == "campplus":
        from proxyai.pipeline.encoders.campplus import CamPlusPlusEncoder, CamPlusPlusOnnxEncoder

        if device == "cpu":  # onnxruntime: the same embeddings, faster
            return CamPlusPlusOnnxEncoder(path, cache=cache, threads=threads)
        return CamPlusPlusEncoder(path, device, threads)
    if kind == "ecapa":
        from proxyai.pipeline.encoders.ecapa import EcapaEncoder

        return EcapaEncoder(path, device, threads)
    if kind == "ge2e":
        from proxyai.pipeline.speaker import Ge2eEncoder

        return Ge2eEncoder(path, device, threads)
    raise EncoderError(f"unknown speaker encoder {kind!r}")


__all__ = ["Encoder", "EncoderError", "load_encoder"]
