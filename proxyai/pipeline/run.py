"""The whole pipeline in one process: decode → voice chunks → (Whisper ‖ diarization) → merge.

The stages are also callable one by one (``prepare``, ``transcribe``, ``diarize``, ``merge``) so that
a task queue can run recognition and diarization on different workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proxyai.pipeline import vad
from proxyai.pipeline.align import assign_speakers, rename_in_order
from proxyai.pipeline.asr import AsrOptions, Segment, Word, shift, transcribe_chunks
from proxyai.pipeline.audio import SAMPLE_RATE, Audio, decode_tracks
from proxyai.pipeline.diarize import (
    COMPARED_S,
    DiarizationOptions,
    Turn,
    channels_differ,
    diarize_channels,
    diarize_embedded,
)
from proxyai.pipeline.models import DEFAULT_ENCODER, DEFAULT_WHISPER, ModelManager, models, resolve_device

CHANNEL_MODES = ("auto", "mix", "split")
Progress = Callable[[str, float], None]  # (stage, fraction 0–1)


@dataclass
class PipelineOptions:
    model: str = DEFAULT_WHISPER
    device: str = "auto"
    compute_type: str = "auto"
    cpu_threads: int = 0
    encoder: str = DEFAULT_ENCODER
    vad_level: int = vad.DEFAULT_LEVEL
    segment_length: float = 30.0
    channels: str = "auto"
    pyannote_protocol: str | None = None
    huggingface_token: str | None = None
    diarizer_cache_dir: str | None = None  # where pyannote and hub speaker encoders are downloaded
    max_duration: float | None = None  # seconds of audio one job may hold; decoding stops past it
    asr: AsrOptions = field(default_factory=AsrOptions)
    diarization: DiarizationOptions = field(default_factory=DiarizationOptions)

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_MODES:
            raise ValueError(f"channels must be auto, mix or split, not {self.channels!r}")
        if not 1.0 <= self.segment_length <= 30.0:
            raise ValueError(f"segment length must be between 1 and 30 seconds, not {self.segment_length}")
        vad.preset(self.vad_level)


@dataclass
class Prepared:
    """Decoded audio and its speech: one track when mixed, one per channel when split."""

    tracks: list[np.ndarray]
    speech: list[vad.SpeechMap]
    chunks: list[list[vad.Chunk]]
    duration: float
    split: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def mono(self) -> np.ndarray:
        if len(self.tracks) == 1:
            return self.tracks[0]
        return np.asarray(np.mean(np.stack(self.tracks), axis=0), dtype=np.float32)


def prepare(source: str | os.PathLike[str] | Audio, options: PipelineOptions) -> Prepared:
    """Decode (keeping stereo channels unless mixing) and find speech; decide mixed or split.

    The samples are held once: each channel in an array of its own, mixed into the first one in place
    when the channels are not kept apart."""
    t0 = time.perf_counter()
    if isinstance(source, Audio):
        tracks = [source.samples] if source.channels == 1 else [source.samples[0], source.samples[1]]
    else:
        tracks = decode_tracks(source, keep_channels=options.channels != "mix", max_seconds=options.max_duration)
    t1 = time.perf_counter()
    vad_opts = vad.preset(options.vad_level)
    split = False
    speech: list[vad.SpeechMap] = []
    if len(tracks) == 2 and options.channels != "mix":
        speech = [vad.detect_speech(t, vad_opts) for t in tracks]
        opening = np.stack([t[: COMPARED_S * SAMPLE_RATE] for t in tracks])
        split = options.channels == "split" or channels_differ(opening, speech)
    if not split:
        tracks = [_mix(tracks, owned=not isinstance(source, Audio))]
        speech = [vad.detect_speech(tracks[0], vad_opts)]
    chunks = [vad.make_chunks(s, options.segment_length, options.asr.join_gap_s) for s in speech]
    t2 = time.perf_counter()
    duration = len(tracks[0]) / SAMPLE_RATE
    return Prepared(tracks, speech, chunks, duration, split, {"decode": t1 - t0, "vad": t2 - t1})


def _mix(tracks: list[np.ndarray], owned: bool) -> np.ndarray:
    """The mean of the tracks; into the first one, block by block, when it is ``owned`` (ours to change)."""
    if len(tracks) == 1:
        return tracks[0]
    out = tracks[0] if owned else np.empty_like(tracks[0])
    for lo in range(0, len(out), 1 << 20):
        hi = lo + (1 << 20)
        np.add(tracks[0][lo:hi], tracks[1][lo:hi], out=out[lo:hi])
        out[lo:hi] *= 0.5
    return out


@dataclass
class Transcription:
    language: str | None
    language_probability: float
    segments: list[Segment]


def transcribe(
    prep: Prepared, options: PipelineOptions, manager: ModelManager = models, progress: Progress | None = None
) -> Transcription:
    """Recognise every chunk of every track in one batched pass."""
    model = manager.whisper(options.model, options.device, options.compute_type, options.cpu_threads)
    if len(prep.tracks) == 1:
        samples, chunks = prep.tracks[0], prep.chunks[0]
    else:  # lay the channels end to end so that their chunks share batches
        samples = np.concatenate(prep.tracks)
        chunks = list(prep.chunks[0])
        for ch in range(1, len(prep.tracks)):
            offset = ch * prep.duration
            chunks += [c.shifted(offset) for c in prep.chunks[ch]]

    def on_chunk(done: int, total: int) -> None:
        if progress is not None:
            progress("transcribing", done / max(total, 1))

    result = transcribe_chunks(model, samples, chunks, options.asr, on_chunk)
    if len(prep.tracks) == 1:
        segments = result.segments
    else:
        segments = []
        for ch in range(len(prep.tracks)):
            lo, hi = ch * prep.duration, (ch + 1) * prep.duration
            part = type(result)(
                result.language,
                result.language_probability,
                [s for s in result.segments if lo <= (s.start + s.end) / 2 < hi],
            )
            for seg in shift(part, lo, channel=ch):
                seg.speaker = f"CH{ch}"
                segments.append(seg)
        segments.sort(key=lambda s: s.start)
    return Transcription(result.language, result.language_probability, segments)


def diarize(prep: Prepared, options: PipelineOptions, manager: ModelManager = models, threads: int = 0) -> list[Turn]:
    """Who speaks when, by the configured backend (by channel for a split stereo call). ``threads``:
    CPU threads for the speaker encoder (0: every core, for diarization on its own)."""
    dopts = options.diarization
    if dopts.backend == "none":
        return []
    if prep.split:
        return diarize_channels(prep.speech)
    if dopts.backend == "pyannote":
        from proxyai.pipeline.pyannote_backend import diarize_pyannote

        return diarize_pyannote(pyannote_pipeline(options, manager), prep.mono, dopts)
    encoder = manager.encoder(options.encoder, dopts.device, threads or os.cpu_count() or 1, options.diarizer_cache_dir)
    return diarize_embedded(prep.tracks[0], prep.speech[0], encoder, dopts)


def pyannote_pipeline(options: PipelineOptions, manager: ModelManager = models) -> Any:
    """The pyannote pipeline of ``options``, loaded once per process."""
    from proxyai.pipeline.pyannote_backend import load_pipeline

    device, cache = options.diarization.device, options.diarizer_cache_dir
    return manager.get(
        ("pyannote", options.pyannote_protocol, device, cache),
        lambda: load_pipeline(options.pyannote_protocol, options.huggingface_token, device, cache),
    )


def merge(
    prep: Prepared,
    transcription: Transcription,
    turns: list[Turn],
    options: PipelineOptions,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Words to speakers, speakers named in order of appearance, the JSON result."""
    return build_result(prep.duration, prep.split, transcription, turns, options, timings)


def build_result(
    duration: float,
    split: bool,
    transcription: Transcription,
    turns: list[Turn],
    options: PipelineOptions,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """:func:`merge` from the parts alone (as a worker that did neither stage has them)."""
    segments = (
        assign_speakers(transcription.segments, turns)
        if turns or split
        else [Segment(s.start, s.end, s.text, s.words) for s in transcription.segments]
    )
    segments, turns = rename_in_order(segments, turns)
    speakers = sorted({s.speaker for s in segments if s.speaker} | {t.speaker for t in turns})
    backend = "channels" if split and options.diarization.backend != "none" else options.diarization.backend
    return {
        "duration": round(duration, 3),
        "language": transcription.language,
        "language_probability": transcription.language_probability,
        "speakers": [{"id": s, "label": s} for s in speakers],
        "segments": [_segment_json(s) for s in segments],
        "diarization": [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in turns],
        "model": {"asr": options.model, "diarization": backend},
        "timings": {k: round(v, 3) for k, v in (timings or {}).items()},
    }


def _segment_json(seg: Segment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": seg.start,
        "end": seg.end,
        "speaker": seg.speaker,
        "text": seg.text,
        "words": [_word_json(w) for w in seg.words],
    }
    if seg.channel is not None:
        out["channel"] = seg.channel
    return out


def _word_json(w: Word) -> dict[str, Any]:
    return {"start": w.start, "end": w.end, "word": w.word.strip(), "probability": w.probability}


def encoder_threads_beside_asr(device: str) -> int:
    """CPU threads for the speaker encoder while recognition runs on ``device``: one beside recognition
    on the CPU (which uses every core), every core (0) beside recognition on a GPU."""
    return 1 if resolve_device(device) == "cpu" else 0


def run(
    source: str | os.PathLike[str] | Audio,
    options: PipelineOptions | None = None,
    progress: Progress | None = None,
    manager: ModelManager = models,
) -> dict[str, Any]:
    """Transcribe and diarize ``source``; recognition and diarization run side by side."""
    options = options or PipelineOptions()
    t0 = time.perf_counter()
    if progress:
        progress("decoding", 0.0)
    prep = prepare(source, options)
    timings = dict(prep.timings)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            timings[name] = time.perf_counter() - start

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="proxyai")
    try:
        threads = encoder_threads_beside_asr(options.device)
        diar = pool.submit(timed, "diarization", lambda: diarize(prep, options, manager, threads=threads))
        asr = pool.submit(timed, "asr", lambda: transcribe(prep, options, manager, progress))
        transcription = asr.result()
        turns = diar.result()
    except BaseException:
        # an interrupt or a failed stage: do not wait for the other stage to finish its work
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    if progress:
        progress("merging", 1.0)
    timings["total"] = time.perf_counter() - t0
    return merge(prep, transcription, turns, options, timings)


def transcription_to_dict(t: Transcription) -> dict[str, Any]:
    """A JSON-ready copy of a :class:`Transcription` (words keep their channel speaker, if any)."""
    return {
        "language": t.language,
        "language_probability": t.language_probability,
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "speaker": s.speaker,
                "channel": s.channel,
                "words": [[w.start, w.end, w.word, w.probability] for w in s.words],
            }
            for s in t.segments
        ],
    }


def transcription_from_dict(data: dict[str, Any]) -> Transcription:
    segments = [
        Segment(
            s["start"],
            s["end"],
            s["text"],
            [Word(a, b, text, p) for a, b, text, p in s["words"]],
            speaker=s.get("speaker"),
            channel=s.get("channel"),
        )
        for s in data["segments"]
    ]
    return Transcription(data.get("language"), float(data.get("language_probability", 0.0)), segments)


def turns_to_list(turns: list[Turn]) -> list[list[Any]]:
    return [[t.start, t.end, t.speaker] for t in turns]


def turns_from_list(rows: list[list[Any]]) -> list[Turn]:
    return [Turn(float(a), float(b), str(s)) for a, b, s in rows]
