"""Speech recognition: faster-whisper's batched pipeline over voice chunks, with word timestamps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proxyai.pipeline.audio import SAMPLE_RATE
from proxyai.pipeline.vad import Chunk

TASKS = ("transcribe", "translate")


@dataclass
class AsrOptions:
    language: str | None = None  # None: detected
    task: str = "transcribe"
    beam_size: int = 5
    batch_size: int = 8
    initial_prompt: str | None = None
    hotwords: str | None = None
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be transcribe or translate, not {self.task!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.beam_size < 1:
            raise ValueError("beam_size must be at least 1")
        if self.language is not None:
            self.language = self.language.strip().lower() or None


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None
    channel: int | None = None


@dataclass
class AsrResult:
    language: str | None
    language_probability: float
    segments: list[Segment]


def check_language(model: Any, language: str | None) -> None:
    if language is None:
        return
    supported = getattr(model, "supported_languages", None)
    if supported and language not in supported:
        raise ValueError(f"unknown language {language!r}; use a Whisper language code such as en, ru, de")


class _TimeMap:
    """Maps times in the packed audio (chunks' pieces laid end to end) back to the original."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.packed: list[float] = []
        self.original: list[float] = []
        self.lengths: list[float] = []
        t = 0.0
        for chunk in chunks:
            for piece in chunk.pieces:
                self.packed.append(t)
                self.original.append(piece.start)
                self.lengths.append(piece.duration)
                t += piece.duration

    def __call__(self, t: float, is_end: bool = False) -> float:
        import bisect

        i = (bisect.bisect_left if is_end else bisect.bisect_right)(self.packed, t) - 1
        i = min(max(i, 0), len(self.packed) - 1)
        inside = min(max(t - self.packed[i], 0.0), self.lengths[i])
        return round(self.original[i] + inside, 3)


def transcribe_chunks(
    model: Any,
    samples: np.ndarray,
    chunks: Sequence[Chunk],
    options: AsrOptions | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> AsrResult:
    """Transcribe ``chunks`` of 16 kHz mono ``samples`` in batches.

    Each chunk's pieces are laid end to end (pauses dropped), so every 30-second Whisper window is
    filled with speech. ``model`` is a ``faster_whisper.WhisperModel``; ``on_chunk(done, total)``
    reports progress. Times in the result are seconds from the start of ``samples``.
    """
    from faster_whisper import BatchedInferencePipeline

    options = options or AsrOptions()
    check_language(model, options.language)
    if not chunks:
        return AsrResult(options.language, 0.0 if options.language is None else 1.0, [])
    packed = np.concatenate(
        [samples[int(p.start * SAMPLE_RATE) : int(p.end * SAMPLE_RATE)] for c in chunks for p in c.pieces]
    )
    clips = []
    t = 0.0
    for c in chunks:
        clips.append({"start": t, "end": t + c.speech})
        t += c.speech
    to_original = _TimeMap(chunks)
    pipeline = BatchedInferencePipeline(model=model)
    seg_iter, info = pipeline.transcribe(
        packed,
        language=options.language,
        task=options.task,
        beam_size=options.beam_size,
        batch_size=options.batch_size,
        word_timestamps=True,
        initial_prompt=options.initial_prompt or None,
        hotwords=options.hotwords or None,
        temperature=options.temperature,
        clip_timestamps=clips,
        vad_filter=False,
    )
    ends = [c["end"] for c in clips]
    segments: list[Segment] = []
    done = 0
    for seg in seg_iter:
        words = [
            Word(to_original(w.start), to_original(w.end, is_end=True), w.word, round(float(w.probability), 4))
            for w in seg.words or []
            if w.word.strip()
        ]
        for w in words:
            w.end = max(w.end, w.start)
        if words:
            segments.append(Segment(words[0].start, words[-1].end, "".join(w.word for w in words).strip(), words))
        if on_chunk is not None:
            while done < len(ends) and ends[done] <= seg.end + 1e-3:
                done += 1
            on_chunk(done, len(chunks))
    del packed
    if on_chunk is not None:
        on_chunk(len(chunks), len(chunks))
    return AsrResult(info.language, round(float(info.language_probability), 4), segments)


def shift(result: AsrResult, offset: float, channel: int | None = None) -> list[Segment]:
    """Segments moved by ``-offset`` seconds (for audio laid end to end), tagged with ``channel``."""
    out = []
    for seg in result.segments:
        words = [Word(round(w.start - offset, 3), round(w.end - offset, 3), w.word, w.probability) for w in seg.words]
        out.append(Segment(round(seg.start - offset, 3), round(seg.end - offset, 3), seg.text, words, channel=channel))
    return out


__all__ = ["SAMPLE_RATE", "AsrOptions", "AsrResult", "Segment", "Word", "shift", "transcribe_chunks"]
