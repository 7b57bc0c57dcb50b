"""Scores against references: diarization error rate, word error rate, word-to-speaker accuracy.

Used by the tests and benchmarks; pure numpy/scipy.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from proxyai.pipeline.diarize import Turn

STEP = 0.01  # scoring resolution, seconds


def read_rttm(path: str) -> list[Turn]:
    turns = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 8 and parts[0] == "SPEAKER":
                start, dur = float(parts[3]), float(parts[4])
                turns.append(Turn(start, start + dur, parts[7]))
    return turns


def _activity(turns: Sequence[Turn], speakers: list[str], n: int) -> np.ndarray:
    act = np.zeros((len(speakers), n), dtype=bool)
    index = {s: i for i, s in enumerate(speakers)}
    for t in turns:
        act[index[t.speaker], round(t.start / STEP) : round(t.end / STEP)] = True
    return act


def speaker_mapping(reference: Sequence[Turn], hypothesis: Sequence[Turn]) -> dict[str, str]:
    """The hypothesis→reference speaker map that maximises overlapping time (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    ref_spk = sorted({t.speaker for t in reference})
    hyp_spk = sorted({t.speaker for t in hypothesis})
    if not ref_spk or not hyp_spk:
        return {}
    end = max(t.end for t in [*reference, *hypothesis])
    n = round(end / STEP) + 1
    ref = _activity(reference, ref_spk, n).astype(np.float32)
    hyp = _activity(hypothesis, hyp_spk, n).astype(np.float32)
    overlap = hyp @ ref.T
    rows, cols = linear_sum_assignment(-overlap)
    return {hyp_spk[r]: ref_spk[c] for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}


@dataclass
class DerResult:
    der: float
    missed: float
    false_alarm: float
    confusion: float
    scored: float  # seconds of reference speech scored


def der(reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.25) -> DerResult:
    """NIST-style diarization error rate, overlap counted, ``collar`` seconds around every reference
    boundary left unscored."""
    ref_spk = sorted({t.speaker for t in reference})
    hyp_spk = sorted({t.speaker for t in hypothesis})
    end = max([t.end for t in [*reference, *hypothesis]] + [0.0])
    n = round(end / STEP) + 1
    ref = _activity(reference, ref_spk, n)
    hyp = _activity(hypothesis, hyp_spk, n)
    scored = np.ones(n, dtype=bool)
    c = round(collar / STEP)
    for t in reference:
        for edge in (t.start, t.end):
            i = round(edge / STEP)
            scored[max(0, i - c) : i + c] = False
    mapping = speaker_mapping(reference, hypothesis)
    n_ref = ref[:, scored].sum(axis=0)
    n_hyp = hyp[:, scored].sum(axis=0)
    correct = np.zeros(int(scored.sum()), dtype=np.int64)
    for h, r in mapping.items():
        correct += (hyp[hyp_spk.index(h), scored] & ref[ref_spk.index(r), scored]).astype(np.int64)
    total = float(n_ref.sum())
    missed = float(np.maximum(n_ref - n_hyp, 0).sum())
    false_alarm = float(np.maximum(n_hyp - n_ref, 0).sum())
    confusion = float((np.minimum(n_ref, n_hyp) - correct).sum())
    if total == 0:
        return DerResult(0.0, 0.0, 0.0, 0.0, 0.0)
    return DerResult(
        der=(missed + false_alarm + confusion) / total,
        missed=missed / total,
        false_alarm=false_alarm / total,
        confusion=confusion / total,
        scored=total * STEP,
    )


def _spell_numbers(text: str, language: str | None) -> str:
    """Write digit runs as words in ``language`` (``12.34`` → ``twelve thirty-four``), when num2words
    knows the language; otherwise leave them."""
    if not language or not re.search(r"\d", text):
        return text
    try:
        from num2words import num2words
    except ImportError:
        return text

    def spell(match: re.Match[str]) -> str:
        try:
            return f" {num2words(int(match.group(0)), lang=language)} "
        except (NotImplementedError, OverflowError, ValueError):
            return match.group(0)

    return re.sub(r"\d+", spell, text)


def normalize_words(text: str, language: str | None = None) -> list[str]:
    """Lower-case, spell out numbers in ``language``, drop punctuation, split on white space (for WER)."""
    text = _spell_numbers(unicodedata.normalize("NFKC", text), language)
    text = text.lower().replace("ё", "е").replace("-", " ")
    text = re.sub(r"[^\w\s']|_", " ", text)
    text = text.replace("'", "")
    return text.split()


def _align(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[int | None, int | None]]:
    """Levenshtein alignment as (ref index, hyp index) pairs; None marks an insertion or deletion."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int32)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    return pairs[::-1]


def wer(reference: str, hypothesis: str, language: str | None = None) -> float:
    """Word error rate after :func:`normalize_words` on both sides."""
    ref, hyp = normalize_words(reference, language), normalize_words(hypothesis, language)
    if not ref:
        return float(len(hyp) > 0)
    errors = sum(1 for r, h in _align(ref, hyp) if r is None or h is None or ref[r] != hyp[h])
    return errors / len(ref)


def word_attribution(
    reference: Iterable[tuple[str, str]],
    hypothesis: Iterable[tuple[str, str]],
    mapping: dict[str, str],
    language: str | None = None,
) -> float:
    """Share of reference words whose aligned hypothesis word carries the right speaker.

    ``reference`` and ``hypothesis`` are (speaker, text) pairs in time order; ``mapping`` maps
    hypothesis speakers to reference speakers (see :func:`speaker_mapping`). A reference word the
    recogniser dropped counts as wrong.
    """
    ref_words = [(s, w) for s, text in reference for w in normalize_words(text, language)]
    hyp_words = [(s, w) for s, text in hypothesis for w in normalize_words(text, language)]
    if not ref_words:
        return 1.0
    pairs = _align([w for _, w in ref_words], [w for _, w in hyp_words])
    right = sum(
        1 for r, h in pairs if r is not None and h is not None and mapping.get(hyp_words[h][0]) == ref_words[r][0]
    )
    return right / len(ref_words)
