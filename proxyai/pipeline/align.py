"""Words to speakers: each word takes the speaker whose turn overlaps it most (the nearest turn when
none does), then segments are re-cut so that no segment mixes two speakers."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from proxyai.pipeline.asr import Segment, Word
from proxyai.pipeline.diarize import Turn


class TurnIndex:
    """Time-sorted turns with what a word look-up needs: starts, the longest turn, and for every
    prefix the turn that ends last (turns may overlap, as pyannote's do)."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = sorted(turns, key=lambda t: (t.start, t.end))
        self.starts = [t.start for t in self.turns]
        self.longest = max((t.duration for t in self.turns), default=0.0)
        self.last_ending: list[int] = []
        best = -1
        for i, t in enumerate(self.turns):
            if best < 0 or t.end > self.turns[best].end:
                best = i
            self.last_ending.append(best)

    def speaker(self, start: float, end: float) -> str | None:
        """The speaker overlapping ``[start, end]`` most, else the nearest turn's."""
        turns = self.turns
        if not turns:
            return None
        overlap: dict[str, float] = {}
        j = bisect.bisect_right(self.starts, end) - 1
        while j >= 0 and turns[j].start >= start - self.longest:
            t = turns[j]
            ov = min(end, t.end) - max(start, t.start)
            if ov > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + ov
            j -= 1
        if overlap:
            return max(overlap.items(), key=lambda kv: kv[1])[0]
        mid = (start + end) / 2
        k = bisect.bisect_left(self.starts, mid)
        candidates = [turns[k]] if k < len(turns) else []
        if k > 0:
            candidates.append(turns[self.last_ending[k - 1]])
        best = min(candidates, key=lambda t: max(t.start - mid, mid - t.end, 0.0))
        return best.speaker


def speaker_for(start: float, end: float, turns: Sequence[Turn]) -> str | None:
    """The speaker of ``[start, end]``: the turn overlapping it most, else the nearest turn."""
    return TurnIndex(turns).speaker(start, end)


def assign_speakers(segments: Sequence[Segment], turns: Sequence[Turn], max_pause: float = 1.5) -> list[Segment]:
    """Give every word a speaker and re-cut segments at speaker changes (and at pauses over
    ``max_pause`` seconds). Words that already carry a speaker keep it."""
    index = TurnIndex(turns)
    out: list[Segment] = []
    for seg in segments:
        words = seg.words or [Word(seg.start, seg.end, seg.text, 1.0)]
        current: list[Word] = []
        for w in words:
            speaker = w.speaker or seg.speaker or index.speaker(w.start, w.end)
            word = Word(w.start, w.end, w.word, w.probability, speaker)
            if current and (current[-1].speaker != speaker or word.start - current[-1].end > max_pause):
                out.append(_segment(current, seg.channel))
                current = []
            current.append(word)
        if current:
            out.append(_segment(current, seg.channel))
    out.sort(key=lambda s: (s.start, s.end))
    return out


def _segment(words: list[Word], channel: int | None) -> Segment:
    text = "".join(w.word for w in words).strip()
    return Segment(words[0].start, words[-1].end, text, words, speaker=words[0].speaker, channel=channel)


def speakers_in_order(segments: Sequence[Segment], turns: Sequence[Turn]) -> list[str]:
    """Speaker ids in order of first appearance (words first, then turns with no words)."""
    seen: dict[str, None] = {}
    for seg in segments:
        if seg.speaker:
            seen.setdefault(seg.speaker, None)
    for t in sorted(turns, key=lambda t: t.start):
        seen.setdefault(t.speaker, None)
    return list(seen)


def rename_in_order(segments: list[Segment], turns: list[Turn]) -> tuple[list[Segment], list[Turn]]:
    """Rename speakers ``SPEAKER_00``, ``SPEAKER_01``, … in order of first appearance in the transcript."""
    names = {old: f"SPEAKER_{i:02d}" for i, old in enumerate(speakers_in_order(segments, turns))}
    new_segments = []
    for seg in segments:
        words = [Word(w.start, w.end, w.word, w.probability, names.get(w.speaker or "", w.speaker)) for w in seg.words]
        new_segments.append(
            Segment(seg.start, seg.end, seg.text, words, names.get(seg.speaker or "", seg.speaker), seg.channel)
        )
    new_turns = [Turn(t.start, t.end, names[t.speaker]) for t in turns]
    return new_segments, new_turns
