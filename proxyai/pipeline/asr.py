"""Speech recognition: faster-whisper's batched pipeline over voice chunks, with word timestamps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proxyai.pipeline.audio import SAMPLE_RATE
from proxyai.pipeline.vad import Chunk, Region, pack

TASKS = ("transcribe", "translate")


@dataclass
class AsrOptions:
    language: str | None = None  # None: detected
    task: str = "transcribe"
    beam_size: int = 5
    batch_size: int | None = None  # None: 8 on a GPU, 4 on a CPU (each item's encoder attention is ~70 MB)
    initial_prompt: str | None = None
    hotwords: str | None = None
    temperature: float = 0.0
    join_gap_s: float = 0.15
    min_missed_s: float = 1.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be transcribe or translate, not {self.task!r}")
        if self.batch_size is not None and self.batch_size < 1:
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


def default_batch_size(model: Any) -> int:
    """8 chunks per batch on a GPU; 4 on a CPU, where bigger batches are no faster and cost memory."""
    device = getattr(getattr(model, "model", None), "device", "cpu")
    return 8 if device == "cuda" else 4


def check_language(model: Any, language: str | None) -> None:
    if language is None:
        return
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if language not in _LANGUAGE_CODES:
        raise ValueError(f"unknown language {language!r}; use a Whisper language code such as en, ru, de")
    supported = getattr(model, "supported_languages", None)
    if supported and language not in supported:
        raise ValueError(
            f"this model knows only {', '.join(supported)}, not {language!r}: choose a multilingual model such as base"
        )


class _TimeMap:
    """Maps times in the packed audio (each chunk's pieces laid end to end, ``gap`` apart) back to
    the original timeline, within the chunk a segment came from."""

    def __init__(self, chunks: Sequence[Chunk], gap: float) -> None:
        self.chunks = list(chunks)
        self.gap = gap
        self.clip_starts: list[float] = []
        t = 0.0
        for chunk in self.chunks:
            self.clip_starts.append(t)
            t += chunk.packed_length(gap)

    def chunk_of(self, start: float, end: float) -> int:
        import bisect

        return max(0, bisect.bisect_right(self.clip_starts, (start + end) / 2) - 1)

    def __call__(self, index: int, t: float, is_end: bool = False) -> float:
        chunk = self.chunks[index]
        local = t - self.clip_starts[index]
        for k, piece in enumerate(chunk.pieces):
            last = k == len(chunk.pieces) - 1
            if local < piece.duration or (is_end and local <= piece.duration) or last:
                return round(piece.start + min(max(local, 0.0), piece.duration), 3)
            local -= piece.duration + self.gap
            if local < 0:  # inside the gap: the nearer edge
                return round(piece.end if local < -self.gap / 2 else chunk.pieces[k + 1].start, 3)
        return round(chunk.end, 3)


def transcribe_chunks(
    model: Any,
    samples: np.ndarray,
    chunks: Sequence[Chunk],
    options: AsrOptions | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> AsrResult:
    """Transcribe ``chunks`` of 16 kHz mono ``samples`` in batches.

    Each chunk's pieces are laid end to end (pauses shortened to ``join_gap_s``), so that every
    30-second Whisper window is filled with speech. Whisper sometimes stops before the end of a
    crowded window; speech regions that got no word are transcribed again in a second batched pass
    (what sequential decoding does by seeking). ``model`` is a ``faster_whisper.WhisperModel``;
    ``on_chunk(done, total)`` reports progress. Times are seconds from the start of ``samples``.
    """
    options = options or AsrOptions()
    check_language(model, options.language)
    if not chunks:
        return AsrResult(options.language, 0.0 if options.language is None else 1.0, [])
    total = len(chunks)

    def progress(done: int) -> None:
        if on_chunk is not None:
            on_chunk(min(done, total), total)

    # In groups, so that only a group's packed audio and features are in memory at once; the language
    # is detected on the first group and kept for the rest.
    batch = options.batch_size or default_batch_size(model)
    group = 8 * batch
    segments: list[Segment] = []
    language, probability = options.language, 1.0

    def after(offset: int) -> Callable[[int], None]:
        return lambda done: progress(offset + done)

    for start in range(0, len(chunks), group):
        part, lang, prob = _batched_pass(model, samples, chunks[start : start + group], options, language, after(start))
        segments += part
        if start == 0:
            language, probability = lang, prob
    missed = _uncovered(chunks, segments, options.min_missed_s)
    if missed:
        retry = pack(missed, max(c.packed_length(options.join_gap_s) for c in chunks), options.join_gap_s)
        total += len(retry)
        extra, _, _ = _batched_pass(model, samples, retry, options, language, after(len(chunks)))
        segments = sorted(segments + extra, key=lambda s: s.start)
    progress(total)
    return AsrResult(language, probability, segments)


def _uncovered(chunks: Sequence[Chunk], segments: Sequence[Segment], min_length: float) -> list[Region]:
    """Pieces of at least ``min_length`` seconds that no recognised word overlaps."""
    import bisect

    spans = sorted((w.start, w.end) for s in segments for w in s.words)
    starts = [a for a, _ in spans]
    missed = []
    for c in chunks:
        for p in c.pieces:
            if p.duration < min_length:
                continue
            i = bisect.bisect_left(starts, p.end)
            if not any(spans[j][1] > p.start for j in range(max(0, i - 50), i)):
                missed.append(p)
    return missed


def _batched_pass(
    model: Any,
    samples: np.ndarray,
    chunks: Sequence[Chunk],
    options: AsrOptions,
    language: str | None,
    progress: Callable[[int], None],
) -> tuple[list[Segment], str, float]:
    from faster_whisper import BatchedInferencePipeline

    gap = options.join_gap_s
    silence = np.zeros(round(gap * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    clips = []
    t = 0.0
    for c in chunks:
        for k, p in enumerate(c.pieces):
            if k:
                parts.append(silence)
            a = round(p.start * SAMPLE_RATE)
            parts.append(samples[a : a + round(p.duration * SAMPLE_RATE)])
        clips.append({"start": t, "end": t + c.packed_length(gap)})
        t += c.packed_length(gap)
    packed = np.concatenate(parts)
    del parts
    to_original = _TimeMap(chunks, gap)
    seg_iter, info = BatchedInferencePipeline(model=model).transcribe(
        packed,
        language=language,
        task=options.task,
        beam_size=options.beam_size,
        batch_size=options.batch_size or default_batch_size(model),
        word_timestamps=True,
        without_timestamps=False,
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
        # Whisper's own silence rule: a window it thinks silent and is unsure of is dropped.
        silent = seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0
        index = to_original.chunk_of(seg.start, seg.end)
        words = [
            Word(
                to_original(index, w.start),
                to_original(index, w.end, is_end=True),
                w.word,
                round(float(w.probability), 4),
            )
            for w in seg.words or []
            if w.word.strip()
        ]
        for w in words:
            w.end = max(w.end, w.start)
        if words and not silent:
            segments.append(Segment(words[0].start, words[-1].end, "".join(w.word for w in words).strip(), words))
        while done < len(ends) and ends[done] <= seg.end + 1e-3:
            done += 1
        progress(done)
    return segments, info.language, round(float(info.language_probability), 4)


def shift(result: AsrResult, offset: float, channel: int | None = None) -> list[Segment]:
    """Segments moved by ``-offset`` seconds (for audio laid end to end), tagged with ``channel``."""
    out = []
    for seg in result.segments:
        words = [Word(round(w.start - offset, 3), round(w.end - offset, 3), w.word, w.probability) for w in seg.words]
        out.append(Segment(round(seg.start - offset, 3), round(seg.end - offset, 3), seg.text, words, channel=channel))
    return out


__all__ = ["SAMPLE_RATE", "AsrOptions", "AsrResult", "Segment", "Word", "shift", "transcribe_chunks"]
