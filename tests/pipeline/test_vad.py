"""VAD presets, regions from frame probabilities, chunking, and the Silero model on real audio."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from proxyai.pipeline.audio import SAMPLE_RATE, decode
from proxyai.pipeline.vad import (
    DEFAULT_LEVEL,
    FRAME_S,
    PRESETS,
    WINDOW,
    Chunk,
    Region,
    SpeechMap,
    VadOptions,
    detect_speech,
    make_chunks,
    preset,
    regions_from_probabilities,
    speech_probabilities,
)

# Level-2 numbers: threshold 0.5, off 0.35, min pause round(0.3 / 0.032) = 9 frames, min speech 0.2 s, pad 0.2 s
L2 = preset(2)
NO_PAD = VadOptions(threshold=0.5, off_threshold=0.35, min_speech_s=0.2, min_silence_s=0.3, pad_s=0.0)


def frames(*parts: tuple[float, int]) -> np.ndarray:
    """Probabilities built from (value, number of frames) runs."""
    return np.concatenate([np.full(n, value, dtype=np.float32) for value, n in parts])


def duration_of(probs: np.ndarray) -> float:
    return len(probs) * FRAME_S


def covered(intervals: list[Region], start: float, end: float, tol: float = 1e-3) -> bool:
    """Whether the union of ``intervals`` covers ``[start, end]``."""
    pos = start
    for r in sorted(intervals, key=lambda r: r.start):
        if r.start > pos + tol:
            break
        pos = max(pos, r.end)
    return pos >= end - tol


# --- presets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_presets_exist(level: int) -> None:
    options = preset(level)
    assert isinstance(options, VadOptions)
    assert 0 < options.off_threshold < options.threshold < 1


@pytest.mark.parametrize("level", [4, -1, 10])
def test_unknown_preset(level: int) -> None:
    with pytest.raises(ValueError, match="VAD level"):
        preset(level)


def test_default_level_is_a_preset() -> None:
    assert DEFAULT_LEVEL in PRESETS
    assert preset(DEFAULT_LEVEL) == PRESETS[DEFAULT_LEVEL]


def test_presets_grow_more_aggressive() -> None:
    levels = [preset(i) for i in range(4)]
    for lower, higher in itertools.pairwise(levels):
        assert higher.threshold > lower.threshold
        assert higher.off_threshold > lower.off_threshold
        assert higher.min_speech_s >= lower.min_speech_s
        assert higher.min_silence_s <= lower.min_silence_s
        assert higher.pad_s <= lower.pad_s


def test_higher_levels_keep_less_speech() -> None:
    # loud speech, a murmur between the thresholds, a short burst, a short pause
    probs = frames(
        (0.05, 30), (0.9, 60), (0.3, 40), (0.05, 15), (0.7, 6), (0.05, 20), (0.6, 50), (0.45, 8), (0.6, 40), (0.05, 40)
    )
    kept = [sum(r.duration for r in regions_from_probabilities(probs, duration_of(probs), preset(i))) for i in range(4)]
    assert kept == sorted(kept, reverse=True)
    assert kept[0] > kept[3]


# --- regions from probabilities ----------------------------------------------------------------


def test_single_region_with_padding() -> None:
    probs = frames((0.0, 10), (0.9, 40), (0.0, 30))
    regions = regions_from_probabilities(probs, duration_of(probs), L2)
    assert len(regions) == 1
    assert regions[0].start == pytest.approx(10 * FRAME_S - 0.2, abs=1e-3)
    assert regions[0].end == pytest.approx(50 * FRAME_S + 0.2, abs=1e-3)


def test_hysteresis_keeps_region_above_off_threshold() -> None:
    # 0.4 is below the start threshold (0.5) but above the off threshold (0.35): the region continues
    probs = frames((0.0, 10), (0.9, 20), (0.4, 20), (0.0, 30))
    regions = regions_from_probabilities(probs, duration_of(probs), NO_PAD)
    assert regions == [Region(round(10 * FRAME_S, 3), round(50 * FRAME_S, 3))]


def test_hysteresis_does_not_start_below_threshold() -> None:
    probs = frames((0.0, 10), (0.45, 40), (0.0, 10))
    assert regions_from_probabilities(probs, duration_of(probs), NO_PAD) == []
    # the same murmur after real speech is kept as part of the region
    probs = frames((0.0, 10), (0.9, 10), (0.45, 40), (0.0, 20))
    regions = regions_from_probabilities(probs, duration_of(probs), NO_PAD)
    assert len(regions) == 1
    assert regions[0].end == pytest.approx(60 * FRAME_S, abs=1e-3)


def test_short_pause_is_joined() -> None:
    # 8 quiet frames (< 9 = min pause) do not end the region
    probs = frames((0.0, 10), (0.9, 20), (0.0, 8), (0.9, 20), (0.0, 20))
    regions = regions_from_probabilities(probs, duration_of(probs), NO_PAD)
    assert len(regions) == 1
    assert regions[0].start == pytest.approx(10 * FRAME_S, abs=1e-3)
    assert regions[0].end == pytest.approx(58 * FRAME_S, abs=1e-3)


def test_long_pause_splits() -> None:
    # 9 quiet frames (= min pause) split it; the first region ends where the quiet began
    probs = frames((0.0, 10), (0.9, 20), (0.0, 9), (0.9, 20), (0.0, 20))
    regions = regions_from_probabilities(probs, duration_of(probs), NO_PAD)
    assert len(regions) == 2
    assert regions[0].end == pytest.approx(30 * FRAME_S, abs=1e-3)
    assert regions[1].start == pytest.approx(39 * FRAME_S, abs=1e-3)


def test_min_silence_depends_on_options() -> None:
    probs = frames((0.0, 10), (0.9, 20), (0.0, 12), (0.9, 20), (0.0, 30))
    long_pause = VadOptions(0.5, 0.35, 0.2, 0.6, 0.0)  # 19 frames
    assert len(regions_from_probabilities(probs, duration_of(probs), long_pause)) == 1
    assert len(regions_from_probabilities(probs, duration_of(probs), NO_PAD)) == 2


def test_short_speech_dropped() -> None:
    # min speech 0.2 s = 6.25 frames: 6 frames are dropped, 7 are kept
    probs = frames((0.0, 20), (0.9, 6), (0.0, 40), (0.9, 7), (0.0, 20))
    regions = regions_from_probabilities(probs, duration_of(probs), NO_PAD)
    assert len(regions) == 1
    assert regions[0].start == pytest.approx(66 * FRAME_S, abs=1e-3)
    assert regions[0].duration == pytest.approx(7 * FRAME_S, abs=1e-3)


def test_padding_never_crosses_midpoint() -> None:
    # a 10-frame gap (0.32 s) is shorter than twice the padding (0.4 s)
    probs = frames((0.0, 20), (0.9, 20), (0.0, 10), (0.9, 20), (0.0, 20))
    regions = regions_from_probabilities(probs, duration_of(probs), L2)
    assert len(regions) == 2
    midpoint = (40 * FRAME_S + 50 * FRAME_S) / 2
    assert regions[0].end <= midpoint + 1e-3
    assert regions[1].start >= midpoint - 1e-3
    assert regions[0].end <= regions[1].start
    # the outer sides still get the full padding
    assert regions[0].start == pytest.approx(20 * FRAME_S - 0.2, abs=1e-3)
    assert regions[1].end == pytest.approx(70 * FRAME_S + 0.2, abs=1e-3)


def test_padding_kept_when_gap_is_wide() -> None:
    probs = frames((0.0, 20), (0.9, 20), (0.0, 40), (0.9, 20), (0.0, 20))
    regions = regions_from_probabilities(probs, duration_of(probs), L2)
    assert regions[0].end == pytest.approx(40 * FRAME_S + 0.2, abs=1e-3)
    assert regions[1].start == pytest.approx(80 * FRAME_S - 0.2, abs=1e-3)


def test_padding_clipped_to_recording() -> None:
    probs = frames((0.9, 30), (0.0, 20), (0.9, 30))
    duration = duration_of(probs) - 0.01
    regions = regions_from_probabilities(probs, duration, L2)
    assert regions[0].start == 0.0
    assert regions[-1].end == pytest.approx(duration, abs=1e-3)


def test_speech_to_the_end() -> None:
    probs = frames((0.0, 10), (0.9, 30))
    regions = regions_from_probabilities(probs, duration_of(probs), NO_PAD)
    assert len(regions) == 1
    assert regions[0].end == pytest.approx(duration_of(probs), abs=1e-3)


def test_trailing_quiet_shorter_than_pause_is_trimmed() -> None:
    probs = frames((0.0, 10), (0.9, 30), (0.0, 5))
    regions = regions_from_probabilities(probs, duration_of(probs), NO_PAD)
    assert regions[0].end == pytest.approx(40 * FRAME_S, abs=1e-3)


def test_no_speech() -> None:
    probs = np.full(100, 0.1, dtype=np.float32)
    assert regions_from_probabilities(probs, duration_of(probs), L2) == []
    assert regions_from_probabilities(np.zeros(0, dtype=np.float32), 0.0, L2) == []


def test_regions_are_sorted_and_disjoint() -> None:
    rng = np.random.default_rng(3)
    probs = np.convolve(rng.random(3000), np.ones(15) / 15, mode="same").astype(np.float32)
    probs = np.clip((probs - 0.5) * 4 + 0.5, 0, 1)
    for level in range(4):
        regions = regions_from_probabilities(probs, duration_of(probs), preset(level))
        assert regions
        for a, b in itertools.pairwise(regions):
            assert a.start < a.end <= b.start < b.end
        assert all(r.start >= 0 and r.end <= duration_of(probs) for r in regions)


# --- chunks ------------------------------------------------------------------------------------


def speech_map(regions: list[Region], probs: np.ndarray | None = None, duration: float | None = None) -> SpeechMap:
    duration = duration if duration is not None else max(r.end for r in regions)
    if probs is None:
        probs = np.full(int(np.ceil(duration / FRAME_S)), 0.9, dtype=np.float32)
    return SpeechMap(regions, probs, duration)


def check_chunks(chunks: list[Chunk], regions: list[Region], max_length: float) -> None:
    """Chunks in time order, each with at most ``max_length`` s of speech; pieces inside regions, covering them."""
    assert chunks
    pieces = [p for c in chunks for p in c.pieces]
    for c in chunks:
        assert c.pieces
        assert c.speech <= max_length + 1e-6
        assert c.start == c.pieces[0].start and c.end == c.pieces[-1].end
    for p in pieces:
        assert p.end > p.start
        assert any(r.start - 1e-6 <= p.start and p.end <= r.end + 1e-6 for r in regions), p
    for a, b in itertools.pairwise(pieces):
        assert a.end <= b.start + 1e-6
    for r in regions:
        assert covered(pieces, r.start, r.end), r


def test_short_regions_grouped_into_chunks() -> None:
    regions = [Region(0.5 + 4 * i, 3.0 + 4 * i) for i in range(20)]  # 20 regions of 2.5 s over 80 s
    chunks = make_chunks(speech_map(regions), max_length=30.0)
    check_chunks(chunks, regions, 30.0)
    # whole regions are packed: 12 × 2.5 s = 30 s fill the first chunk, the other 8 the second
    assert [len(c.pieces) for c in chunks] == [12, 8]
    assert [p for c in chunks for p in c.pieces] == regions
    assert chunks[0].speech == pytest.approx(30.0)


@pytest.mark.parametrize("max_length", [10.0, 20.0, 30.0])
def test_no_chunk_holds_more_than_max(max_length: float) -> None:
    rng = np.random.default_rng(7)
    regions, t = [], 0.0
    for _ in range(40):
        t += float(rng.uniform(0.2, 2.0))
        length = float(rng.uniform(0.3, 45.0))
        regions.append(Region(round(t, 3), round(t + length, 3)))
        t += length
    probs = rng.uniform(0.5, 1.0, int(np.ceil(t / FRAME_S) + 1)).astype(np.float32)
    chunks = make_chunks(speech_map(regions, probs, t), max_length=max_length)
    check_chunks(chunks, regions, max_length)
    # chunks are full: no two neighbours would fit in one
    for a, b in itertools.pairwise(chunks):
        assert a.speech + b.pieces[0].duration > max_length


def test_long_constant_region_cut_into_pieces() -> None:
    regions = [Region(0.0, 70.0)]
    chunks = make_chunks(speech_map(regions), max_length=30.0)
    check_chunks(chunks, regions, 30.0)
    assert len(chunks) == 3
    assert chunks[0].start == 0.0 and chunks[-1].end == 70.0
    # pieces are contiguous: nothing lost between cuts
    for a, b in itertools.pairwise(chunks):
        assert a.end == pytest.approx(b.start, abs=1e-3)
    # with no dip, the cut falls late in the window so that chunks stay long
    assert chunks[0].speech > 29.0


def test_long_region_cut_at_lowest_probability() -> None:
    n = int(np.ceil(70 / FRAME_S))
    probs = np.full(n, 0.95, dtype=np.float32)
    dip = int(25.0 / FRAME_S)
    probs[dip] = 0.05
    probs[int(10.0 / FRAME_S)] = 0.0  # outside the allowed window (the last third): ignored
    chunks = make_chunks(speech_map([Region(0.0, 70.0)], probs, 70.0), max_length=30.0)
    assert chunks[0].end == pytest.approx((dip + 0.5) * FRAME_S, abs=1e-3)
    assert chunks[1].start == chunks[0].end
    check_chunks(chunks, [Region(0.0, 70.0)], 30.0)


def test_long_region_cut_prefers_latest_of_equal_minima() -> None:
    n = int(np.ceil(60 / FRAME_S))
    probs = np.full(n, 0.95, dtype=np.float32)
    early, late = int(22.0 / FRAME_S), int(27.0 / FRAME_S)
    probs[early] = 0.10
    probs[late] = 0.11
    chunks = make_chunks(speech_map([Region(0.0, 60.0)], probs, 60.0), max_length=30.0)
    assert chunks[0].end == pytest.approx((late + 0.5) * FRAME_S, abs=1e-3)


def test_cut_region_next_to_short_ones() -> None:
    regions = [Region(0.0, 5.0), Region(6.0, 50.0), Region(51.0, 53.0)]
    chunks = make_chunks(speech_map(regions), max_length=30.0)
    check_chunks(chunks, regions, 30.0)
    assert chunks[0].pieces == (Region(0.0, 5.0),)
    # the rest of the cut region and the short region after it share a chunk
    assert chunks[-1].pieces[-1] == Region(51.0, 53.0)
    assert len(chunks[-1].pieces) == 2


def test_chunk_properties() -> None:
    chunk = Chunk((Region(1.0, 3.0), Region(5.0, 5.5)))
    assert (chunk.start, chunk.end) == (1.0, 5.5)
    assert chunk.speech == pytest.approx(2.5)
    moved = chunk.shifted(10.0)
    assert moved.pieces == (Region(11.0, 13.0), Region(15.0, 15.5))
    assert moved.speech == pytest.approx(chunk.speech)


def test_no_regions_no_chunks() -> None:
    assert make_chunks(SpeechMap([], np.zeros(10, dtype=np.float32), 0.32)) == []


# --- the Silero model --------------------------------------------------------------------------


def test_probabilities_one_per_frame() -> None:
    samples = np.zeros(SAMPLE_RATE * 2 + 100, dtype=np.float32)
    probs = speech_probabilities(samples)
    assert probs.dtype == np.float32
    assert len(probs) == int(np.ceil(len(samples) / WINDOW))
    assert len(speech_probabilities(np.zeros(0, dtype=np.float32))) == 0


def test_speech_probabilities_do_not_modify_input() -> None:
    # a length that is a multiple of the 512-sample frame, so no padded copy is made
    samples = (0.1 * np.random.default_rng(0).standard_normal(WINDOW * 40)).astype(np.float32)
    before = samples.copy()
    speech_probabilities(samples)
    np.testing.assert_array_equal(samples, before)


def test_silence_has_no_speech() -> None:
    speech = detect_speech(np.zeros(SAMPLE_RATE * 5, dtype=np.float32))
    assert speech.regions == []
    assert speech.duration == pytest.approx(5.0)
    assert speech.speech_duration == 0
    assert float(speech.probs.max()) < 0.5


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return decode(shared_audio / "jfk.flac").samples


def test_detect_speech_on_real_speech(jfk: np.ndarray) -> None:
    speech = detect_speech(jfk)
    assert speech.duration == pytest.approx(11.0, abs=0.1)
    assert len(speech.probs) == int(np.ceil(len(jfk) / WINDOW))
    assert speech.regions
    for r in speech.regions:
        assert 0.0 <= r.start < r.end <= 11.1
    inside = sum(max(0.0, min(r.end, 10.0) - max(r.start, 1.0)) for r in speech.regions)
    assert inside >= 0.7 * 9.0
    # the regions come from the probabilities: speech frames are mostly inside regions
    centres = (np.arange(len(speech.probs)) + 0.5) * FRAME_S
    loud = centres[speech.probs >= 0.5]
    in_region = [any(r.start <= t <= r.end for r in speech.regions) for t in loud]
    assert np.mean(in_region) > 0.95


def test_levels_on_real_speech(jfk: np.ndarray) -> None:
    kept = [detect_speech(jfk, preset(level)).speech_duration for level in range(4)]
    assert kept == sorted(kept, reverse=True)
    speech = detect_speech(jfk)
    chunks = make_chunks(speech, max_length=30.0)
    assert len(chunks) == 1
    check_chunks(chunks, speech.regions, 30.0)
