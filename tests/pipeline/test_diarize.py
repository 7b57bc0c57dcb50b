"""Window labels to turns, speaker naming, stereo channel test and diarization options."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from proxyai.pipeline.audio import SAMPLE_RATE, decode
from proxyai.pipeline.cluster import ClusterOptions
from proxyai.pipeline.diarize import (
    DiarizationOptions,
    Turn,
    Windows,
    channels_differ,
    diarize_channels,
    diarize_embedded,
    embed_windows,
    labels_to_turns,
    name_speakers,
    window_seconds,
)
from proxyai.pipeline.vad import Region, SpeechMap


def sliding(start: float, end: float, window: float = 1.5, hop: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(start, end - window + 1e-9, hop)
    return starts, starts + window


def make_windows(spans: list[tuple[float, float]]) -> Windows:
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    return Windows(starts, ends, np.zeros((len(spans), 4), dtype=np.float32))


def inside_some(turn: Turn, regions: list[Region]) -> bool:
    return any(r.start - 1e-6 <= turn.start and turn.end <= r.end + 1e-6 for r in regions)


# --- labels_to_turns ---------------------------------------------------------------------------


def test_two_speakers_in_one_region() -> None:
    starts, ends = sliding(0.0, 10.0)
    centres = (starts + ends) / 2
    labels = np.where(centres < 5.0, 3, 7)  # cluster ids need not start at 0
    windows = Windows(starts, ends, np.zeros((len(starts), 4)))
    turns = labels_to_turns(windows, labels, [Region(0.0, 10.0)])
    assert [t.speaker for t in turns] == ["SPEAKER_00", "SPEAKER_01"]
    assert turns[0].start == 0.0
    assert turns[-1].end == 10.0
    assert turns[0].end == pytest.approx(5.0, abs=0.3)
    assert turns[0].end == turns[1].start


def test_turns_stay_inside_regions() -> None:
    regions = [Region(0.5, 3.0), Region(4.2, 8.0), Region(9.0, 12.5)]
    spans: list[tuple[float, float]] = []
    for r in regions:
        s, e = sliding(r.start, r.end)
        spans += list(zip(s.tolist(), e.tolist(), strict=True))
    windows = make_windows(spans)
    labels = np.arange(len(spans)) // 3 % 2  # a speaker change every three windows
    turns = labels_to_turns(windows, labels, regions)
    assert turns
    for t in turns:
        assert inside_some(t, regions), t
        assert t.end > t.start
    # all the speech is covered by turns, and turns do not overlap
    assert sum(t.duration for t in turns) == pytest.approx(sum(r.duration for r in regions), abs=0.05)
    for a, b in itertools.pairwise(turns):
        assert a.end <= b.start + 1e-6


def test_short_runs_are_absorbed() -> None:
    # windows every 0.1 s: a one-window blip of speaker 1 lasts 0.1 s < min_turn_s
    starts = np.arange(0.0, 6.0, 0.1)
    ends = starts + 0.1
    labels = np.zeros(len(starts), dtype=np.int64)
    labels[30] = 1
    turns = labels_to_turns(Windows(starts, ends, np.zeros((len(starts), 4))), labels, [Region(0.0, 6.0)])
    assert turns == [Turn(0.0, 6.0, "SPEAKER_00")]
    # a long enough run survives
    labels[25:35] = 1
    turns = labels_to_turns(Windows(starts, ends, np.zeros((len(starts), 4))), labels, [Region(0.0, 6.0)])
    assert [t.speaker for t in turns] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    assert turns[1].start == pytest.approx(2.5, abs=0.02)
    assert turns[1].end == pytest.approx(3.5, abs=0.02)


def test_min_turn_is_an_option() -> None:
    starts = np.arange(0.0, 6.0, 0.1)
    labels = np.zeros(len(starts), dtype=np.int64)
    labels[25:29] = 1  # 0.4 s
    windows = Windows(starts, starts + 0.1, np.zeros((len(starts), 4)))
    assert len(labels_to_turns(windows, labels, [Region(0.0, 6.0)], min_turn_s=0.3)) == 3
    assert len(labels_to_turns(windows, labels, [Region(0.0, 6.0)], min_turn_s=0.5)) == 1


def test_speakers_named_in_order_of_appearance() -> None:
    regions = [Region(0.0, 3.0), Region(4.0, 7.0), Region(8.0, 11.0)]
    windows = make_windows([(0.0, 3.0), (4.0, 7.0), (8.0, 11.0)])
    turns = labels_to_turns(windows, np.array([5, 2, 5]), regions)
    assert [t.speaker for t in turns] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    assert [(t.start, t.end) for t in turns] == [(0.0, 3.0), (4.0, 7.0), (8.0, 11.0)]


def test_region_without_windows_takes_nearest() -> None:
    # the second region is too short to have been embedded: it takes the nearest window's label
    regions = [Region(0.0, 3.0), Region(3.5, 3.9), Region(6.0, 9.0)]
    windows = make_windows([(0.0, 3.0), (6.0, 9.0)])
    turns = labels_to_turns(windows, np.array([0, 1]), regions)
    assert len(turns) == 3
    assert turns[1] == Turn(3.5, 3.9, "SPEAKER_00")


def test_no_labels_no_turns() -> None:
    assert labels_to_turns(make_windows([]), np.zeros(0, dtype=np.int64), [Region(0.0, 1.0)]) == []


def test_name_speakers() -> None:
    turns = [Turn(5.0, 6.0, "x"), Turn(0.0, 1.0, "b"), Turn(2.0, 3.0, "a"), Turn(4.0, 5.0, "b")]
    named = name_speakers(turns)
    assert named == [
        Turn(0.0, 1.0, "SPEAKER_00"),
        Turn(2.0, 3.0, "SPEAKER_01"),
        Turn(4.0, 5.0, "SPEAKER_00"),
        Turn(5.0, 6.0, "SPEAKER_02"),
    ]
    assert name_speakers([]) == []


def test_name_speakers_many() -> None:
    named = name_speakers([Turn(float(i), i + 0.5, f"s{i}") for i in range(12)])
    assert named[10].speaker == "SPEAKER_10"
    assert len({t.speaker for t in named}) == 12


def test_turn_duration() -> None:
    assert Turn(1.25, 3.0, "a").duration == pytest.approx(1.75)


# --- embedding windows -------------------------------------------------------------------------


def test_embed_windows_spans_and_batches() -> None:
    rng = np.random.default_rng(0)
    samples = (0.1 * rng.standard_normal(SAMPLE_RATE * 12)).astype(np.float32)
    regions = [Region(0.5, 5.0), Region(6.0, 6.8), Region(7.0, 7.05), Region(8.0, 12.0)]
    seen: list[tuple[int, ...]] = []

    def embed(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return np.stack([batch.mean(axis=1), batch.std(axis=1)], axis=1).astype(np.float32)

    windows = embed_windows(samples, regions, embed, window_s=1.5, hop_s=0.5)
    assert all(shape[1:] == (int(1.5 * SAMPLE_RATE),) for shape in seen)
    assert len(windows.starts) == len(windows.ends) == len(windows.embeddings)

    # a region of s seconds holds 1 + ceil((s - 1.5) / 0.5) windows; one shorter than a window is one
    # window of its own; one under 0.1 s (7.0–7.05 s) is skipped
    def count(seconds: float) -> int:
        return 1 + int(np.ceil((seconds - 1.5) / 0.5 - 1e-9))

    assert len(windows.starts) == count(4.5) + 1 + count(4.0)
    assert not any(7.0 <= s < 7.05 for s in windows.starts)
    for s, e in zip(windows.starts, windows.ends, strict=True):
        assert e > s
        assert any(r.start - 1e-6 <= s and e <= r.end + 1e-6 for r in regions)
    assert (windows.starts[1:] >= windows.starts[:-1]).all()
    # windows inside a region are hop_s apart; the last one ends at the region's end
    assert windows.starts[1] - windows.starts[0] == pytest.approx(0.5)
    assert windows.ends[count(4.5) - 1] == pytest.approx(5.0)
    # the short region is one window spanning the region itself, its audio repeated to 1.5 s
    i = int(np.nonzero(windows.starts == 6.0)[0][0])
    assert windows.ends[i] == 6.8
    piece = samples[6 * SAMPLE_RATE : int(6.8 * SAMPLE_RATE)]
    assert windows.embeddings[i, 1] == pytest.approx(np.resize(piece, int(1.5 * SAMPLE_RATE)).std(), rel=1e-5)


def test_embed_windows_carries_the_audio_of_each_window() -> None:
    samples = np.arange(SAMPLE_RATE * 4, dtype=np.float32) / SAMPLE_RATE  # the value is the time
    windows = embed_windows(samples, [Region(0.0, 4.0)], lambda b: b[:, [0, -1]], window_s=1.5, hop_s=0.5)
    np.testing.assert_allclose(windows.embeddings[:, 0], windows.starts, atol=1e-3)
    np.testing.assert_allclose(windows.embeddings[:, 1], windows.ends, atol=1e-3)


def test_embed_windows_uses_span_embedding_when_offered() -> None:
    class Spans:
        same_speaker = 0.5

        def __init__(self) -> None:
            self.calls: list[list[tuple[float, float]]] = []

        def embed(self, windows: np.ndarray) -> np.ndarray:
            raise AssertionError("windows embedded one by one")

        def embed_spans(self, samples: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
            self.calls.append(spans)
            return np.array([[s, e] for s, e in spans], dtype=np.float32)

    encoder = Spans()
    windows = embed_windows(np.zeros(SAMPLE_RATE * 4, np.float32), [Region(0.0, 4.0)], encoder)  # type: ignore[arg-type]
    assert encoder.calls and len(encoder.calls[0]) == len(windows.starts)
    np.testing.assert_allclose(windows.embeddings[:, 0], windows.starts)
    with pytest.raises(AssertionError, match="one by one"):
        embed_windows(np.zeros(SAMPLE_RATE * 4, np.float32), [Region(0.0, 4.0)], encoder, frame_pooling=False)  # type: ignore[arg-type]


def test_embed_windows_no_regions() -> None:
    windows = embed_windows(np.zeros(SAMPLE_RATE, dtype=np.float32), [], lambda m: m[:, :2])
    assert len(windows.starts) == 0
    assert windows.embeddings.shape[0] == 0


def test_diarize_embedded_without_speech() -> None:
    speech = SpeechMap([], np.zeros(10, dtype=np.float32), 1.0)
    assert diarize_embedded(np.zeros(SAMPLE_RATE, dtype=np.float32), speech, lambda m: m, DiarizationOptions()) == []


# --- channels ----------------------------------------------------------------------------------


def noise(seed: int, n: int = SAMPLE_RATE * 3) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_independent_channels_differ() -> None:
    assert channels_differ(np.stack([noise(0), noise(1)]))


def test_different_tones_differ() -> None:
    t = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
    assert channels_differ(np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 1170 * t)]).astype(np.float32))


def test_identical_channels_do_not_differ() -> None:
    x = noise(0)
    assert not channels_differ(np.stack([x, x]))
    assert not channels_differ(np.stack([x, 0.3 * x]))  # panned
    assert not channels_differ(np.stack([x, -x]))  # inverted


def test_silent_channel_does_not_differ() -> None:
    x = noise(0)
    assert not channels_differ(np.stack([x, np.zeros_like(x)]))
    assert not channels_differ(np.stack([np.zeros_like(x), x]))


@pytest.mark.parametrize("delay", [1, 5, 100])
def test_delayed_copy_does_not_differ(delay: int) -> None:
    x = noise(0)
    assert not channels_differ(np.stack([x[delay:], x[:-delay]]))
    assert not channels_differ(np.stack([x[:-delay], x[delay:]]))


def test_copy_delayed_beyond_max_lag_differs() -> None:
    x = noise(0)
    assert channels_differ(np.stack([x[1000:], x[:-1000]]))


def test_zero_max_lag_checks_only_lag_zero() -> None:
    x = noise(0)
    delayed = np.stack([x[1000:], x[:-1000]])
    assert not channels_differ(np.stack([x, x]), max_lag_s=0.0)
    assert channels_differ(delayed, max_lag_s=0.0)


def test_channels_without_speech_do_not_differ() -> None:
    stereo = np.stack([noise(0), noise(1)])
    with_speech = SpeechMap([Region(0.0, 1.0)], np.zeros(3), 3.0)
    without = SpeechMap([], np.zeros(3), 3.0)
    assert channels_differ(stereo, [with_speech, with_speech])
    assert not channels_differ(stereo, [with_speech, without])


def test_not_stereo_does_not_differ() -> None:
    assert not channels_differ(noise(0))
    assert not channels_differ(np.stack([noise(0), noise(1), noise(2)]))


def test_real_stereo_call_differs(shared_audio: Path) -> None:
    stereo = decode(shared_audio / "stereo_diarization.wav", keep_channels=True).samples
    assert stereo.shape[0] == 2
    assert channels_differ(stereo)
    mono = stereo.mean(axis=0)
    assert not channels_differ(np.stack([mono, mono]))


def test_diarize_channels() -> None:
    left = SpeechMap([Region(0.0, 2.0), Region(5.0, 6.0)], np.zeros(1), 7.0)
    right = SpeechMap([Region(1.5, 4.0)], np.zeros(1), 7.0)
    turns = diarize_channels([left, right])
    assert turns == [Turn(0.0, 2.0, "CH0"), Turn(1.5, 4.0, "CH1"), Turn(5.0, 6.0, "CH0")]


# --- options -----------------------------------------------------------------------------------


def test_default_options() -> None:
    options = DiarizationOptions()
    assert options.backend == "embedded"
    assert options.cluster_options().num_speakers is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backend": "magic"},
        {"num_speakers": 0},
        {"min_speakers": 0},
        {"max_speakers": -1},
        {"min_speakers": 3, "max_speakers": 2},
    ],
)
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DiarizationOptions(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["embedded", "pyannote", "none"])
def test_backends_accepted(backend: str) -> None:
    assert DiarizationOptions(backend=backend).backend == backend


def test_cluster_options_carry_counts() -> None:
    options = DiarizationOptions(num_speakers=2, min_speakers=2, max_speakers=3)
    cluster = options.cluster_options()
    assert (cluster.num_speakers, cluster.min_speakers, cluster.max_speakers) == (2, 2, 3)
    defaults = DiarizationOptions().cluster_options()
    assert defaults.min_speakers == 1
    assert defaults.max_speakers == ClusterOptions().max_speakers


def test_cluster_options_keep_every_setting() -> None:
    base = ClusterOptions(method="spectral", threshold=0.6, min_speaker_s=3.0, switch_penalty=0.2)
    cluster = DiarizationOptions(cluster=base, max_speakers=4).cluster_options()
    assert cluster.method == "spectral"
    assert cluster.threshold == 0.6
    assert cluster.min_speaker_s == 3.0
    assert cluster.switch_penalty == 0.2
    assert cluster.max_speakers == 4


def test_window_seconds_share_each_region() -> None:
    regions = [Region(0.0, 4.0), Region(5.0, 6.0)]
    windows = embed_windows(np.zeros(SAMPLE_RATE * 7, np.float32), regions, lambda b: b[:, :2])
    seconds = window_seconds(windows, regions)
    assert seconds.sum() == pytest.approx(5.0)
    assert seconds[-1] == pytest.approx(1.0)  # the short region is one window
