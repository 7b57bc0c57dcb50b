"""The pyannote.audio backend: a pipeline from a hub id (with a token) or a local directory."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from proxyai.pipeline.audio import SAMPLE_RATE
from proxyai.pipeline.diarize import DiarizationError, DiarizationOptions, Turn, name_speakers

DEFAULT_PROTOCOL = "pyannote/speaker-diarization-3.1"


def load_pipeline(protocol: str | None, token: str | None = None, device: str = "cpu", cache: str | None = None) -> Any:
    """Load ``protocol`` (a hub id, or a directory or ``config.yaml`` on disk) on ``device``; a hub
    pipeline and its models are downloaded into ``cache`` when given (else the hub's own cache)."""
    try:
        from pyannote.audio import Pipeline
    except Exception as exc:  # ImportError, or a torchaudio that does not match torch
        raise DiarizationError(
            f"the pyannote backend needs pyannote.audio, which cannot be imported here ({type(exc).__name__}: "
            f"{exc}); pip install 'proxyai[pyannote]' with a matching torch/torchaudio, or use --diarization embedded"
        ) from None
    protocol = protocol or DEFAULT_PROTOCOL
    source: str = protocol
    if os.path.isdir(protocol):
        source = os.path.join(protocol, "config.yaml")
    try:
        try:
            pipeline = Pipeline.from_pretrained(source, token=token, cache_dir=cache)
        except TypeError:  # pyannote.audio 3.x
            pipeline = Pipeline.from_pretrained(source, use_auth_token=token, cache_dir=cache)
    except Exception as exc:
        raise DiarizationError(
            f"cannot load the pyannote pipeline {protocol!r} ({type(exc).__name__}: {exc}); set PYANNOTE_PROTOCOL "
            "to a local pipeline directory, or HUGGINGFACE_TOKEN for a gated hub model"
        ) from None
    if pipeline is None:
        raise DiarizationError(f"cannot load the pyannote pipeline {protocol!r}: a gated model needs HUGGINGFACE_TOKEN")
    if device != "cpu":
        import torch

        pipeline.to(torch.device(device))
    return pipeline


def annotation_to_turns(output: Any) -> list[Turn]:
    """Turns from a ``pyannote.core.Annotation`` (or pyannote 4's output holding one)."""
    annotation = getattr(output, "speaker_diarization", output)
    turns = [
        Turn(round(float(seg.start), 3), round(float(seg.end), 3), str(label))
        for seg, _, label in annotation.itertracks(yield_label=True)
        if seg.end > seg.start
    ]
    return name_speakers(turns)


def diarize_pyannote(pipeline: Any, samples: np.ndarray, options: DiarizationOptions) -> list[Turn]:
    import torch

    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0)
    kwargs: dict[str, int] = {}
    if options.num_speakers:
        kwargs["num_speakers"] = options.num_speakers
    if options.min_speakers:
        kwargs["min_speakers"] = options.min_speakers
    if options.max_speakers:
        kwargs["max_speakers"] = options.max_speakers
    output = pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **kwargs)
    return annotation_to_turns(output)
